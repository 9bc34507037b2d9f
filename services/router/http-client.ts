import { Pool, type Dispatcher } from 'undici';
import { ApiError, injectTraceHeaders, unavailable, type Context } from '../kit';

/** What every call to a peer service carries from the router's request. */
export interface CallMeta {
  /** The router's request id, forwarded as `x-request-id`. */
  requestId?: string;
  /** The router request's trace context; its `traceparent` is sent along. */
  traceContext?: Context;
  /** Aborts the call (the client went away). */
  signal?: AbortSignal;
}

/** Options of {@link PeerHttp}. */
export interface PeerHttpOptions {
  /** Keep-alive connections per peer. @default 128 */
  connections?: number;
  /** TCP connect timeout. @default 2000 */
  connectTimeoutMs?: number;
  /** Time allowed until the response headers arrive. @default 30000 */
  headersTimeoutMs?: number;
  /** Time allowed between two body chunks (streams too). @default 60000 */
  bodyTimeoutMs?: number;
}

/** A peer's raw answer. */
export interface PeerResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

// Failures that mean "the peer is not there or stopped answering", as undici reports them.
const DOWN_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

/** Whether `err` says a peer is unreachable (as opposed to answering with an error). */
export function isDependencyDown(err: unknown): boolean {
  if (err instanceof ApiError) return err.statusCode === 503 && err.code === 'dependency_unavailable';
  const code = (err as { code?: string })?.code ?? (err as { cause?: { code?: string } })?.cause?.code;
  return code !== undefined && DOWN_CODES.has(code);
}

/**
 * A keep-alive connection pool to one peer service (templates, context or llm) with the
 * router's conventions: `traceparent` and `x-request-id` injected, failures to connect or to
 * answer in time mapped to a 503 "<peer> service is unreachable", and the peer's OpenAI-shaped
 * errors re-raised as {@link ApiError}s with the same status, message, param and Retry-After.
 */
export class PeerHttp {
  private readonly pool: Pool;
  private readonly basePath: string;

  constructor(
    /** The peer's name, used in error messages. */
    readonly peer: 'templates' | 'context' | 'llm',
    baseUrl: string,
    options: PeerHttpOptions = {},
  ) {
    const url = new URL(baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: options.connections ?? 128,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      connect: { timeout: options.connectTimeoutMs ?? 2_000 },
      headersTimeout: options.headersTimeoutMs ?? 30_000,
      bodyTimeout: options.bodyTimeoutMs ?? 60_000,
    });
  }

  /** Sends a request; throws a 503 ApiError when the peer is unreachable. Any status is returned. */
  async request(
    method: Dispatcher.HttpMethod,
    path: string,
    meta: CallMeta,
    options: { body?: string | Buffer; headers?: Record<string, string>; headersTimeoutMs?: number } = {},
  ): Promise<PeerResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    if (meta.requestId) headers['x-request-id'] = meta.requestId;
    injectTraceHeaders(meta.traceContext, headers);
    try {
      const res = await this.pool.request({
        method,
        path: this.basePath + path,
        headers,
        body: options.body,
        signal: meta.signal,
        ...(options.headersTimeoutMs ? { headersTimeout: options.headersTimeoutMs } : {}),
      });
      return { statusCode: res.statusCode, headers: res.headers, body: res.body };
    } catch (err) {
      throw this.mapError(err);
    }
  }

  /**
   * Sends a JSON request and parses the JSON answer. A non-2xx answer is thrown as the
   * ApiError it describes; `404` resolves to undefined when `allowNotFound`.
   */
  async json<T>(
    method: Dispatcher.HttpMethod,
    path: string,
    meta: CallMeta,
    options: { body?: unknown; headers?: Record<string, string>; allowNotFound?: boolean } = {},
  ): Promise<T> {
    const res = await this.request(method, path, meta, {
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      headers: options.headers,
    });
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw this.mapError(err);
    }
    if (res.statusCode === 404 && options.allowNotFound) return undefined as T;
    if (res.statusCode >= 400) throw this.errorFrom(res.statusCode, res.headers, text);
    if (res.statusCode === 204 || text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw unavailable(`${this.peer} service answered with a body that is not JSON`, 'dependency_malformed');
    }
  }

  /** The ApiError a peer's error answer describes (OpenAI error shape, or a generic one). */
  errorFrom(statusCode: number, headers: PeerResponse['headers'], text: string): ApiError {
    let parsed: { error?: { type?: string; message?: string; param?: string | null; code?: string | null } } | undefined;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const e = parsed?.error;
    const extra: Record<string, string> = {};
    const retryAfter = headers['retry-after'];
    if (typeof retryAfter === 'string') extra['retry-after'] = retryAfter;
    if (e && typeof e.message === 'string') {
      return new ApiError({ status: statusCode, type: e.type ?? 'upstream_error', message: e.message, param: e.param ?? null, code: e.code ?? null, headers: extra });
    }
    return new ApiError({ status: statusCode, type: statusCode >= 500 ? 'upstream_error' : 'invalid_request_error', message: `${this.peer} service answered ${statusCode}`, headers: extra });
  }

  /** Maps a transport failure to a 503 naming the peer; aborts are passed through. */
  mapError(err: unknown): unknown {
    if (err instanceof ApiError) return err;
    if ((err as Error)?.name === 'AbortError' || (err as { code?: string })?.code === 'UND_ERR_ABORTED') return err;
    if (isDependencyDown(err)) {
      const code = (err as { code?: string }).code ?? 'error';
      return unavailable(`${this.peer} service is unreachable (${code})`);
    }
    return unavailable(`${this.peer} service call failed: ${(err as Error)?.message ?? String(err)}`);
  }

  /** Closes the pool's connections. */
  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }
}
