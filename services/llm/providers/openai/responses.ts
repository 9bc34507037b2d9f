/**
 * The OpenAI Responses API, passed through: the body goes as the client sent it (the model
 * already the provider's; `stream` as the call says), and a successful answer comes back
 * unchanged, JSON or event stream. A failed one is a ProviderError like chat's, so retry,
 * fallback and the breaker treat it the same.
 */
import type { CallOptions, PassthroughResponse, ProviderConfig } from '../../types';
import { errorFromResponse, requireEventStream, type ProviderTransport } from '../transport';

/** Response headers passed on to the client (OpenAI's, and Azure's `apim-request-id`). */
const FORWARDED_HEADERS = ['content-type', 'openai-processing-ms', 'x-request-id', 'apim-request-id'] as const;

/**
 * One Responses API call through the adapter's transport, to `path` below the provider's base
 * URL (`/responses` at OpenAI, `/openai/v1/responses` at Azure).
 */
export async function responsesVia(
  transport: ProviderTransport,
  provider: ProviderConfig,
  body: Record<string, unknown>,
  headers: Record<string, string>,
  call: CallOptions & { stream: boolean },
  path = '/responses',
): Promise<PassthroughResponse> {
  const payload = { ...body, stream: call.stream };
  const res = await transport.post(provider, path, payload, { ...headers, accept: call.stream ? 'text/event-stream' : 'application/json' }, { signal: call.signal, headers: call.headers });
  if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
  if (call.stream) await requireEventStream(provider, res);
  const out: Record<string, string> = {};
  for (const h of FORWARDED_HEADERS) {
    const v = res.headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return { status: res.statusCode, headers: out, body: res.body as AsyncIterable<Uint8Array> };
}
