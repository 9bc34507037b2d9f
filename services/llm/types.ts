import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../openai';

/**
 * The contract between the llm service and its provider adapters (the request and response
 * shapes they translate are the OpenAI ones, `services/openai`).
 *
 * Adapters live one folder each under `services/llm/providers/<type>/` and export one
 * {@link ProviderAdapter}; adding a provider type touches that folder and one line of the
 * registry in `services/llm/providers/index.ts`.
 */

/** The provider types a providers file may name. */
export const PROVIDER_TYPES = ['openai', 'anthropic', 'openai-compatible', 'echo'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/** USD per million tokens of one provider model. */
export interface ModelPrice {
  input: number;
  output: number;
  /**
   * Input tokens read from the prompt cache.
   * @default the known share of `input` for the model family (model-limits.ts), else `input`
   */
  cached_input?: number;
  /**
   * Input tokens written to the prompt cache (Anthropic).
   * @default the known share of `input` (1.25x for Claude), else `input`
   */
  cache_write?: number;
}

/** One provider as the providers file declares it, after validation and defaults. */
export interface ProviderConfig {
  /** Unique name, used in routing targets, metrics and headers. */
  name: string;
  type: ProviderType;
  /** API base URL, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com`. */
  baseUrl: string;
  /** The environment variable that holds the API key (the key never sits in the file). */
  apiKeyEnv?: string;
  /** The API key, read from `apiKeyEnv` at start; never logged. */
  apiKey?: string;
  /** Whole-request timeout. @default 30000 */
  timeoutMs: number;
  /** TCP/TLS connect timeout. @default min(timeoutMs, 5000) */
  connectTimeoutMs: number;
  /** Time allowed until the first response byte (headers). @default timeoutMs */
  firstByteTimeoutMs: number;
  /**
   * Longest silence allowed between two pieces of a response body; a stream that stalls longer
   * fails with a `timeout` ProviderError from its iterator.
   * @default firstByteTimeoutMs
   */
  idleTimeoutMs?: number;
  limits?: { rpm?: number; tpm?: number; concurrency?: number };
  /** USD per million tokens, per provider model. */
  prices?: Record<string, ModelPrice>;
  /**
   * The largest answer each provider model may produce; a request asking for more is a 400
   * naming `max_tokens`, and it is the Anthropic adapter's `max_tokens` when the client sets none.
   * @default the known figure of the model family (model-limits.ts), else no cap of ours
   */
  maxOutputTokens?: Record<string, number>;
  /** The provider models it serves (besides those named in prices and aliases). */
  models?: string[];
  /** Extra headers sent on every call (e.g. `anthropic-version`). */
  headers?: Record<string, string>;
}

/** Why a provider call failed; decides retry and fallback. */
export type ProviderErrorKind =
  | 'rate_limited' // 429
  | 'server' // 5xx
  | 'overloaded' // 503/529
  | 'timeout' // connect, first byte or total
  | 'connection' // refused, reset, closed early
  | 'malformed' // unparseable body or stream
  | 'bad_request' // 400/404/422: the request itself is wrong; never retried
  | 'auth'; // 401/403: never retried

/** A failed provider call, normalised by the adapter. */
export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    /** The provider's HTTP status, when it answered. */
    readonly status?: number,
    /** From the provider's Retry-After (or retry-after-ms) header. */
    readonly retryAfterMs?: number,
    /** For `bad_request` raised by an adapter: the request field it is about (the client's 400 names it). */
    readonly param?: string,
  ) {
    super(message);
    this.name = 'ProviderError';
  }

  /** Whether retrying (here or on another provider) can help. */
  get retryable(): boolean {
    return this.kind !== 'bad_request' && this.kind !== 'auth';
  }
}

/** What every adapter call receives besides the request. */
export interface CallOptions {
  /** Aborts the call (client went away, or the total timeout hit). */
  signal?: AbortSignal;
  /** Headers to add, e.g. `traceparent`. */
  headers?: Record<string, string>;
}

/**
 * A provider adapter: translates the canonical request to the provider's wire format and the
 * answer back. `request.model` is already the provider's model name. Errors are thrown as
 * {@link ProviderError}. Adapters do not retry: the llm service decides.
 */
export interface ProviderAdapter {
  readonly type: ProviderType;
  /** A non-streaming call. */
  complete(provider: ProviderConfig, request: ChatRequest, options: CallOptions): Promise<ChatCompletion>;
  /**
   * A streaming call. The promise settles once the provider has answered with a stream (so a
   * failure before the first byte rejects it, and the caller may still fall back); the
   * iterable then yields OpenAI chunks, the last one carrying `usage`. Errors mid-stream are
   * thrown from the iterator as {@link ProviderError}.
   */
  stream(provider: ProviderConfig, request: ChatRequest, options: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>>;
  /** Releases connection pools. */
  close?(): Promise<void>;
}
