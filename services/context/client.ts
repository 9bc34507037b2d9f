import { request } from 'undici';
import { PATHS } from '../../contracts';
import { ApiError, type ErrorBody } from '../kit';
import type { ContextMessageInput } from './messages';
import { ContextUnavailableError, type AppendResult, type ContextCore, type ContextReadOptions, type ContextWindow } from './store';

/** Where and how {@link createContextHttpClient} reaches the context service. */
export interface ContextHttpClientOptions {
  /** The service's base URL (`CONTEXT_URL`), e.g. `http://context:8080`. */
  baseUrl: string;
  /**
   * Longest wait for an answer, per call; past it the call fails as unavailable.
   * @default 2000
   */
  timeoutMs?: number;
  /**
   * Headers added to every call (e.g. W3C `traceparent` of the current request).
   * @default none
   */
  headers?: () => Record<string, string>;
}

/**
 * {@link ContextCore} over HTTP, for the router in the mesh. It behaves like the in-process
 * core: 4xx answers become {@link ApiError}s with the service's message and param; an
 * unreachable service, a timeout or a 5xx becomes {@link ContextUnavailableError}.
 */
export function createContextHttpClient(options: ContextHttpClientOptions): ContextCore {
  const base = options.baseUrl.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 2_000;

  async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T | undefined> {
    const headers: Record<string, string> = { ...(options.headers?.() ?? {}) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    try {
      res = await request(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new ContextUnavailableError(`the context service is unreachable: ${(err as Error).message}`, err);
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new ContextUnavailableError(`the context service's answer was cut off: ${(err as Error).message}`, err);
    }
    if (res.statusCode === 204) return undefined;
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return parsed as T;
    const error = (parsed as Partial<ErrorBody> | undefined)?.error;
    const message = error?.message ?? `the context service answered ${res.statusCode}`;
    if (res.statusCode >= 500) throw new ContextUnavailableError(message);
    throw new ApiError({ status: res.statusCode, type: error?.type ?? 'invalid_request_error', message, param: error?.param ?? null, code: error?.code ?? null });
  }

  const sessionPath = (id: string) => `${PATHS.sessions}/${encodeURIComponent(id)}`;

  return {
    async read(sessionId: string, readOptions: ContextReadOptions = {}): Promise<ContextWindow> {
      const query = new URLSearchParams();
      if (readOptions.maxTokens !== undefined) query.set('max_tokens', String(readOptions.maxTokens));
      if (readOptions.maxMessages !== undefined) query.set('max_messages', String(readOptions.maxMessages));
      const qs = query.size > 0 ? `?${query}` : '';
      return (await call<ContextWindow>('GET', `${sessionPath(sessionId)}/messages${qs}`))!;
    },
    async append(sessionId: string, messages: ContextMessageInput[]): Promise<AppendResult> {
      return (await call<AppendResult>('POST', `${sessionPath(sessionId)}/messages`, { messages }))!;
    },
    async delete(sessionId: string): Promise<void> {
      await call('DELETE', sessionPath(sessionId));
    },
  };
}
