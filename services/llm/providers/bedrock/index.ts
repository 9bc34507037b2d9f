/**
 * The Amazon Bedrock adapter: chat through the Converse and ConverseStream APIs of the official
 * `@aws-sdk/client-bedrock-runtime`, embeddings through InvokeModel (Titan Text Embeddings and
 * Cohere Embed bodies). Credentials come from the AWS default chain (on EKS: IRSA's web identity
 * token or EKS Pod Identity; nothing in the providers file); `region` picks the endpoint, and
 * `baseUrl` overrides it (VPC endpoints, the fake provider in tests). The SDK's own retries are
 * off (`maxAttempts: 1`): the llm service retries and falls back.
 *
 * Translation (translate.ts): system messages become `system`, tools `toolConfig`,
 * `response_format` json_schema `outputConfig.textFormat`, reasoning Claude's thinking budget
 * (`additionalModelRequestFields.thinking`) or `outputConfig.effort`, images from data: URLs,
 * prompt-caching markers `cachePoint` blocks. Answers come back with reasoning as
 * `reasoning_content`, usage with cache reads and writes.
 */
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../../openai';
import { ProviderError, type CallOptions, type ProviderAdapter, type ProviderConfig, type ProviderErrorKind } from '../../types';
import type { EmbeddingsRequest, EmbeddingsResponse } from '../../../openai';
import { countTextTokens } from '../tokens';
import { refuse } from '../translation';
import { retryAfterMs, transportError, upstreamText } from '../transport';
import { converseToChunks, converseToCompletion, toConverseInput } from './translate';

/** Bedrock's exception names and what each means for retry and fallback. */
const EXCEPTION_KINDS: Record<string, ProviderErrorKind> = {
  ThrottlingException: 'rate_limited',
  ModelNotReadyException: 'rate_limited',
  ServiceQuotaExceededException: 'rate_limited',
  ServiceUnavailableException: 'overloaded',
  InternalServerException: 'server',
  ModelErrorException: 'server',
  ModelStreamErrorException: 'server',
  ModelTimeoutException: 'timeout',
  ValidationException: 'bad_request',
  ResourceNotFoundException: 'bad_request',
  SerializationException: 'bad_request',
  AccessDeniedException: 'auth',
  UnrecognizedClientException: 'auth',
  InvalidSignatureException: 'auth',
  MissingAuthenticationTokenException: 'auth',
  ExpiredTokenException: 'auth',
  CredentialsProviderError: 'auth',
};

/** Maps whatever the SDK threw to a {@link ProviderError}. */
export function bedrockError(provider: ProviderConfig, err: unknown, signal?: AbortSignal): ProviderError {
  if (err instanceof ProviderError) return err;
  if (signal?.aborted) return transportError(provider, err, signal);
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number }; $response?: { headers?: Record<string, string> } };
  const status = e?.$metadata?.httpStatusCode;
  const message = `${provider.name}: ${e?.name ?? 'Error'}: ${upstreamText(provider, String(e?.message ?? '')).slice(0, 500)}`;
  const kind = e?.name ? EXCEPTION_KINDS[e.name] : undefined;
  // A Retry-After on the answer (the SDK keeps the raw response on the error) is honoured as on the other types.
  const wait = e?.$response?.headers ? retryAfterMs(e.$response.headers) : undefined;
  if (kind) return new ProviderError(kind, message, status, wait);
  if (e?.code || e?.name === 'AbortError') return transportError(provider, err, signal);
  if (e?.name === 'TimeoutError' || e?.name === 'RequestTimeout') return new ProviderError('timeout', `${provider.name}: no data within the idle timeout (stalled)`);
  if (typeof status === 'number') {
    const byStatus: ProviderErrorKind = status === 429 ? 'rate_limited' : status === 503 ? 'overloaded' : status === 401 || status === 403 ? 'auth' : status >= 500 ? 'server' : 'bad_request';
    return new ProviderError(byStatus, message, status, wait);
  }
  // The SDK's own parse failures (a broken event-stream frame, an unexpected body).
  return new ProviderError('malformed', message);
}

/** Options of {@link createBedrockAdapter}. */
export interface BedrockAdapterOptions {
  /**
   * Credentials for every client, instead of the default chain (tests).
   * @default the AWS default credential chain (env, web identity/IRSA, Pod Identity, ...)
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Creates a Bedrock adapter; one SDK client (with its keep-alive pool) per provider. */
export function createBedrockAdapter(options: BedrockAdapterOptions = {}): ProviderAdapter {
  const clients = new Map<string, BedrockRuntimeClient>();
  const clientOf = (provider: ProviderConfig): BedrockRuntimeClient => {
    const region = provider.bedrock?.region;
    if (!region) throw new ProviderError('bad_request', `${provider.name}: bedrock provider has no region`);
    const key = [provider.name, region, provider.baseUrl, provider.connectTimeoutMs, provider.idleTimeoutMs ?? provider.firstByteTimeoutMs].join('|');
    let client = clients.get(key);
    if (!client) {
      client = new BedrockRuntimeClient({
        region,
        endpoint: provider.baseUrl,
        maxAttempts: 1,
        ...(options.credentials ? { credentials: options.credentials } : {}),
        // HTTP/1.1 keep-alive like the other adapters (the client's default is HTTP/2, which
        // VPC endpoint proxies and the fake provider do not all speak); socketTimeout is the
        // idle timeout that turns a stalled stream into an error.
        requestHandler: new NodeHttpHandler({
          connectionTimeout: provider.connectTimeoutMs,
          socketTimeout: provider.idleTimeoutMs ?? provider.firstByteTimeoutMs,
          httpAgent: { keepAlive: true, maxSockets: 256 },
          httpsAgent: { keepAlive: true, maxSockets: 256 },
        }),
      });
      clients.set(key, client);
    }
    return client;
  };

  /**
   * The call's abort signal plus the first-byte timeout: the SDK resolves `send` once the
   * answer's headers are in (streams) or the whole answer is (plain calls, whose headers only
   * come when the answer is complete, as at OpenAI).
   */
  const withFirstByte = (provider: ProviderConfig, signal?: AbortSignal) => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new ProviderError('timeout', `${provider.name}: no response headers within firstByteTimeoutMs`)), provider.firstByteTimeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    return {
      signal: controller.signal,
      /** Headers arrived: from here on only the caller's signal (and the idle timeout) applies. */
      settled: () => clearTimeout(timer),
      release: () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      },
    };
  };

  const send = async <T>(provider: ProviderConfig, command: unknown, call: CallOptions, keepSignal: boolean): Promise<{ out: T; release: () => void }> => {
    const guard = withFirstByte(provider, call.signal);
    try {
      const out = (await clientOf(provider).send(command as never, { abortSignal: guard.signal })) as T;
      guard.settled();
      if (!keepSignal) guard.release();
      return { out, release: guard.release };
    } catch (err) {
      guard.release();
      throw bedrockError(provider, guard.signal.aborted ? (guard.signal.reason ?? err) : err, call.signal);
    }
  };

  const invokeJson = async (provider: ProviderConfig, modelId: string, body: unknown, call: CallOptions): Promise<any> => {
    const { out } = await send<{ body?: Uint8Array }>(provider, new InvokeModelCommand({ modelId, contentType: 'application/json', accept: 'application/json', body: JSON.stringify(body) }), call, false);
    try {
      return JSON.parse(new TextDecoder().decode(out.body));
    } catch {
      throw new ProviderError('malformed', `${provider.name}: InvokeModel answer is not valid JSON`);
    }
  };

  return {
    type: 'bedrock',
    async complete(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<ChatCompletion> {
      const input = { modelId: request.model, ...toConverseInput(request, provider) };
      const { out } = await send<any>(provider, new ConverseCommand(input as never), call, false);
      return converseToCompletion(provider, request, out, out?.$metadata?.requestId);
    },
    async stream(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
      const input = { modelId: request.model, ...toConverseInput(request, provider) };
      const { out, release } = await send<any>(provider, new ConverseStreamCommand(input as never), call, true);
      if (!out?.stream) {
        release();
        throw new ProviderError('malformed', `${provider.name}: ConverseStream answered without a stream`);
      }
      const id = `chatcmpl-${out.$metadata?.requestId ?? Date.now().toString(36)}`;
      const chunks = converseToChunks(provider, request, out.stream as AsyncIterable<any>, id, (err) => bedrockError(provider, err, call.signal));
      return (async function* () {
        try {
          yield* chunks;
        } finally {
          release();
        }
      })();
    },
    async embed(provider: ProviderConfig, request: EmbeddingsRequest, call: CallOptions): Promise<EmbeddingsResponse> {
      const inputs = typeof request.input === 'string' ? [request.input] : request.input;
      if (!inputs.every((x): x is string => typeof x === 'string')) throw refuse('input', 'Bedrock embedding models take text, not token arrays');
      if (/(^|[.:/])amazon\.titan-embed/.test(request.model)) {
        // Titan embeds one text per call.
        const answers = await Promise.all(inputs.map((inputText) => invokeJson(provider, request.model, { inputText, ...(request.dimensions !== undefined ? { dimensions: request.dimensions } : {}) }, call)));
        const data = answers.map((a, index) => {
          if (!Array.isArray(a?.embedding)) throw new ProviderError('malformed', `${provider.name}: Titan answer has no embedding`);
          return { object: 'embedding' as const, index, embedding: a.embedding as number[] };
        });
        const tokens = answers.reduce((n, a) => n + (typeof a?.inputTextTokenCount === 'number' ? a.inputTextTokenCount : 0), 0);
        return { object: 'list', data, model: request.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
      }
      if (/(^|[.:/])cohere\.embed/.test(request.model)) {
        if (request.dimensions !== undefined) throw refuse('dimensions', 'Cohere Embed on Bedrock has a fixed dimension');
        const a = await invokeJson(provider, request.model, { texts: inputs, input_type: 'search_document' }, call);
        const vectors = Array.isArray(a?.embeddings) ? a.embeddings : a?.embeddings?.float;
        if (!Array.isArray(vectors) || vectors.length !== inputs.length) throw new ProviderError('malformed', `${provider.name}: Cohere answer has no embeddings`);
        // Cohere reports no token count: count it as the prices are per token.
        const tokens = inputs.reduce((n, t) => n + countTextTokens(t), 0);
        return { object: 'list', data: vectors.map((embedding: number[], index: number) => ({ object: 'embedding', index, embedding })), model: request.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
      }
      throw refuse('model', `${JSON.stringify(request.model)} is not a Bedrock embedding model this adapter knows (amazon.titan-embed-*, cohere.embed-*)`);
    },
    async close(): Promise<void> {
      for (const c of clients.values()) c.destroy();
      clients.clear();
    },
  };
}

/** The shared Bedrock adapter (the default credential chain). */
export const bedrockAdapter: ProviderAdapter = createBedrockAdapter();
