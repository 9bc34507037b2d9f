/**
 * The HTTP transport the network adapters share: one keep-alive undici Pool per provider origin
 * (reused across calls), the three timeouts, and the mapping of every way a call can fail to a
 * {@link ProviderError} kind. Adapters never retry; neither does this module.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { SecretScrubber, secretsOf } from '../secret-scrubber';
import { ProviderError, type CallOptions, type ProviderConfig, type ProviderErrorKind } from '../types';

/** A provider's answer once its headers arrived. */
export interface ProviderResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
}

/** A provider's whole answer, read by {@link ProviderTransport.postForText}. */
export interface BufferedResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** The body as UTF-8 text (for an error status, its first 64 KiB or so). */
  text: string;
}

/** Options of a {@link ProviderTransport}. */
export interface TransportOptions {
  /**
   * How long an idle keep-alive connection is kept when the provider sends no keep-alive hint.
   * @default 30000
   */
  keepAliveTimeoutMs?: number;
  /**
   * Connections per origin; `null` means as many as there are concurrent calls (the llm service
   * applies its own concurrency cap per provider).
   * @default null
   */
  connectionsPerOrigin?: number | null;
  /** Largest response body accepted, in bytes. @default 67108864 (64 MiB) */
  maxResponseBytes?: number;
}

/** Error bodies are read up to this size to find the provider's message. */
const MAX_ERROR_BODY = 64 * 1024;

interface Endpoint {
  origin: string;
  path: string;
}

/** Joins a base URL (`https://api.openai.com/v1`) and a path suffix (`/chat/completions`). */
export function endpointOf(baseUrl: string, suffix: string): Endpoint {
  const url = new URL(baseUrl);
  const base = url.pathname.replace(/\/+$/, '');
  return { origin: url.origin, path: `${base}${suffix}${url.search}` };
}

export class ProviderTransport {
  private readonly pools = new Map<string, Pool>();
  private readonly endpoints = new Map<string, Endpoint>();

  constructor(private readonly options: TransportOptions = {}) {}

  /** The keep-alive pool for an origin and connect timeout, created on first use. */
  private pool(origin: string, connectTimeoutMs: number): Pool {
    const key = `${origin}|${connectTimeoutMs}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(origin, {
        connections: this.options.connectionsPerOrigin ?? null,
        connect: { timeout: connectTimeoutMs },
        keepAliveTimeout: this.options.keepAliveTimeoutMs ?? 30_000,
        maxResponseSize: this.options.maxResponseBytes ?? 64 * 1024 * 1024,
        pipelining: 1,
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  private endpoint(baseUrl: string, suffix: string): Endpoint {
    const key = `${baseUrl}\n${suffix}`;
    let ep = this.endpoints.get(key);
    if (!ep) {
      try {
        ep = endpointOf(baseUrl, suffix);
      } catch {
        throw new ProviderError('bad_request', `provider has an invalid baseUrl '${baseUrl}'`);
      }
      this.endpoints.set(key, ep);
    }
    return ep;
  }

  /**
   * POSTs a JSON body and resolves once the response headers arrived (any status). Network
   * failures, timeouts and aborts reject with a {@link ProviderError}.
   *
   * Timeouts: connect = `provider.connectTimeoutMs`; first byte (headers) =
   * `provider.firstByteTimeoutMs`; idle between body chunks = `provider.idleTimeoutMs`
   * (default `firstByteTimeoutMs`), which is what turns a stalled stream into a `timeout`;
   * the total is the caller's `options.signal`.
   */
  async post(provider: ProviderConfig, suffix: string, payload: unknown, headers: Record<string, string>, options: CallOptions): Promise<ProviderResponse> {
    const { origin, path } = this.endpoint(provider.baseUrl, suffix);
    const signal = options.signal;
    if (signal?.aborted) throw abortError(provider, signal);
    try {
      const res = await this.pool(origin, provider.connectTimeoutMs).request({ ...postRequest(provider, path, payload, headers, options), signal });
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw transportError(provider, err, signal);
    }
  }

  /**
   * {@link post} for an answer read whole (a non-streaming completion): the body is collected
   * from undici's dispatch callbacks into one string, without the Readable stream `post` hands
   * out (cheaper per call: no stream, no async iteration). An error status's body is kept up to
   * 64 KiB (the message is all it is read for). Same timeouts, abort and failure mapping as `post`.
   */
  postForText(provider: ProviderConfig, suffix: string, payload: unknown, headers: Record<string, string>, options: CallOptions): Promise<BufferedResponse> {
    const { origin, path } = this.endpoint(provider.baseUrl, suffix);
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortError(provider, signal));
    const pool = this.pool(origin, provider.connectTimeoutMs);
    return new Promise<BufferedResponse>((resolve, reject) => {
      let controller: Dispatcher.DispatchController | undefined;
      let settled = false;
      let statusCode = 0;
      let responseHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let kept = 0;
      // Rejected at once, like `post`; a request still waiting for a connection is aborted as
      // soon as it gets one (onRequestStart).
      const onAbort = () => {
        controller?.abort(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
        finish(signal!.reason ?? new Error('aborted'));
      };
      const finish = (err: unknown, value?: BufferedResponse) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (err !== undefined) reject(transportError(provider, err, signal));
        else resolve(value!);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        pool.dispatch(
          postRequest(provider, path, payload, headers, options),
          {
            onRequestStart(c) {
              controller = c;
              if (settled) c.abort(new Error('aborted'));
            },
            onResponseStart(_c, status, h) {
              statusCode = status;
              responseHeaders = h;
            },
            onResponseData(_c, chunk) {
              if (statusCode >= 400 && kept > MAX_ERROR_BODY) return;
              chunks.push(chunk);
              kept += chunk.length;
            },
            onResponseEnd() {
              finish(undefined, { statusCode, headers: responseHeaders, text: chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8') });
            },
            onResponseError(_c, err) {
              finish(err);
            },
          },
        );
      } catch (err) {
        finish(err);
      }
    });
  }

  /** Closes every pool (in-flight calls finish first); the transport stays usable afterwards. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }
}

/** A provider call's POST as undici takes it: the JSON body, the headers and the two timeouts. */
function postRequest(provider: ProviderConfig, path: string, payload: unknown, headers: Record<string, string>, options: CallOptions): Dispatcher.DispatchOptions {
  return {
    method: 'POST',
    path,
    headers: { ...provider.headers, ...options.headers, ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(payload),
    headersTimeout: provider.firstByteTimeoutMs,
    bodyTimeout: provider.idleTimeoutMs ?? provider.firstByteTimeoutMs,
  };
}

function abortError(provider: ProviderConfig, signal: AbortSignal): ProviderError {
  const reason: unknown = signal.reason;
  if (reason instanceof ProviderError) return reason;
  const why = reason instanceof Error && reason.name === 'TimeoutError' ? 'total timeout reached' : 'call aborted';
  return new ProviderError('timeout', `${provider.name}: ${why}`);
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);
const TIMEOUT_CODES = new Map([
  ['UND_ERR_CONNECT_TIMEOUT', 'connect timeout'],
  ['UND_ERR_HEADERS_TIMEOUT', 'no response headers within firstByteTimeoutMs'],
  ['UND_ERR_BODY_TIMEOUT', 'no data within the idle timeout (stalled)'],
  ['ETIMEDOUT', 'connect timeout'],
]);

/** Maps whatever the transport or a body read threw to a {@link ProviderError}. */
export function transportError(provider: ProviderConfig, err: unknown, signal?: AbortSignal): ProviderError {
  if (err instanceof ProviderError) return err;
  if (signal?.aborted) return abortError(provider, signal);
  const e = err as { code?: string; message?: string; name?: string };
  const code = e?.code ?? '';
  const timeout = TIMEOUT_CODES.get(code);
  if (timeout) return new ProviderError('timeout', `${provider.name}: ${timeout}`);
  if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') return new ProviderError('malformed', `${provider.name}: response too large`);
  if (code.startsWith('HPE_') || e?.name === 'HTTPParserError') return new ProviderError('malformed', `${provider.name}: invalid HTTP response (${code})`);
  if (code === 'UND_ERR_ABORTED' || e?.name === 'AbortError') return new ProviderError('timeout', `${provider.name}: call aborted`);
  const detail = CONNECTION_CODES.has(code) ? code : e?.message ?? String(err);
  return new ProviderError('connection', `${provider.name}: connection failed (${detail})`);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * How long the provider asks us to wait: `retry-after-ms` (OpenAI), else `retry-after` in
 * seconds or as an HTTP date. Undefined when absent or unparseable.
 */
export function retryAfterMs(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined && ms.trim() !== '') {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return Math.ceil(n);
  }
  const ra = header(headers, 'retry-after');
  if (ra === undefined || ra.trim() === '') return undefined;
  const seconds = Number(ra);
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.ceil(seconds * 1000) : undefined;
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The error kind for an HTTP status the provider answered with. */
export function kindOfStatus(status: number): ProviderErrorKind {
  if (status === 429) return 'rate_limited';
  if (status === 503 || status === 529) return 'overloaded';
  if (status === 401 || status === 403) return 'auth';
  if (status === 408) return 'timeout';
  if (status === 409 || status >= 500) return 'server';
  return 'bad_request';
}

/** The provider's own error message from a JSON error body (OpenAI, Anthropic, vLLM, TGI shapes). */
function providerMessage(text: string): string | undefined {
  try {
    const body = JSON.parse(text) as Record<string, any>;
    const m = body?.error?.message ?? (typeof body?.error === 'string' ? body.error : undefined) ?? body?.message ?? body?.detail;
    return typeof m === 'string' ? m : m !== undefined ? JSON.stringify(m) : undefined;
  } catch {
    return text.trim() || undefined;
  }
}

/** Reads (a bounded part of) an error response and turns it into a {@link ProviderError}. */
export async function errorFromResponse(provider: ProviderConfig, res: ProviderResponse): Promise<ProviderError> {
  let text = '';
  try {
    for await (const chunk of res.body) {
      text += chunk.toString('utf8');
      if (text.length > MAX_ERROR_BODY) {
        res.body.destroy();
        break;
      }
    }
  } catch {
    // the status is what matters; a broken error body does not change the kind
  }
  return errorFromText(provider, { statusCode: res.statusCode, headers: res.headers, text });
}

/** {@link errorFromResponse} for an answer already read whole. */
export function errorFromText(provider: ProviderConfig, res: BufferedResponse): ProviderError {
  const text = res.text;
  // Scrubbed before it is cut short, so no credential survives half-cut at the 500th character.
  const message = upstreamText(provider, providerMessage(text.slice(0, MAX_ERROR_BODY)) ?? '').slice(0, 500) || undefined;
  return new ProviderError(
    kindOfStatus(res.statusCode),
    `${provider.name}: HTTP ${res.statusCode}${message ? `: ${message}` : ''}`,
    res.statusCode,
    retryAfterMs(res.headers),
  );
}

/**
 * Text a provider sent (an error message), without credentials: the provider's own key and
 * anything shaped like one (see secret-scrubber.ts). The llm core scrubs again with every
 * provider's secrets before anything leaves the service.
 */
export function upstreamText(provider: ProviderConfig, text: string): string {
  return new SecretScrubber(secretsOf(provider)).scrub(text);
}

/** Parses a whole JSON body read by {@link ProviderTransport.postForText}; one that does not parse is `malformed`. */
export function parseJsonText(provider: ProviderConfig, res: BufferedResponse): any {
  try {
    return JSON.parse(res.text);
  } catch {
    throw new ProviderError('malformed', `${provider.name}: response body is not valid JSON`, res.statusCode);
  }
}

/** Reads a whole JSON body; a body that does not parse is `malformed`. */
export async function readJson(provider: ProviderConfig, res: ProviderResponse, signal?: AbortSignal): Promise<any> {
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    throw transportError(provider, err, signal);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ProviderError('malformed', `${provider.name}: response body is not valid JSON`, res.statusCode);
  }
}

/** Whether a response is an event stream (`text/event-stream`). */
export function isEventStream(res: ProviderResponse): boolean {
  return (header(res.headers, 'content-type') ?? '').toLowerCase().includes('text/event-stream');
}

/** A stream call's answer must be an event stream: otherwise its body is dropped and the call is `malformed`. */
export async function requireEventStream(provider: ProviderConfig, res: ProviderResponse): Promise<void> {
  if (isEventStream(res)) return;
  await res.body.dump().catch(() => undefined);
  throw new ProviderError('malformed', `${provider.name}: expected an event stream, got '${res.headers['content-type'] ?? 'no content-type'}'`, res.statusCode);
}
