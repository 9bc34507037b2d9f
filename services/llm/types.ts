/**
 * The canonical request and response shapes inside promptmesh (the OpenAI Chat Completions
 * shape), and the contract between the llm service and its provider adapters.
 *
 * Adapters live one folder each under `services/llm/providers/<type>/` and export one
 * {@link ProviderAdapter}; adding a provider type touches that folder and one line of the
 * registry in `services/llm/providers/index.ts`.
 */

/** The provider types a providers file may name. */
export const PROVIDER_TYPES = ['openai', 'anthropic', 'openai-compatible', 'echo'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool';

/** A part of a multi-part message (text only is carried through every adapter). */
export interface ContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/**
 * The JSON Schema of one tool call in a request's assistant message, as OpenAI requires it. The
 * adapters read `function.name` and `function.arguments`: a call without them is the client's
 * error (a 400 naming the field), never a provider failure.
 */
export const toolCallSchema = {
  type: 'object',
  required: ['id', 'type', 'function'],
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 256 },
    type: { type: 'string', enum: ['function'] },
    function: {
      type: 'object',
      required: ['name', 'arguments'],
      properties: { name: { type: 'string', minLength: 1, maxLength: 256 }, arguments: { type: 'string' } },
    },
  },
} as const;

export interface ChatMessage {
  role: Role;
  content: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

/** An OpenAI Chat Completions request (the fields promptmesh understands and forwards). */
export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  stop?: string | string[];
  n?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  user?: string;
  tools?: unknown[];
  tool_choice?: unknown;
  response_format?: unknown;
  [extra: string]: unknown;
}

export interface Usage {
  /** Every input token, cached or not (OpenAI's meaning; Anthropic's three input counts summed). */
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `cached_tokens`: input tokens read from the provider's prompt cache (part of `prompt_tokens`). */
  prompt_tokens_details?: { cached_tokens?: number; [detail: string]: unknown };
  /**
   * Input tokens written to the provider's prompt cache (Anthropic's
   * `cache_creation_input_tokens`; part of `prompt_tokens`, billed at `cache_write`).
   */
  cache_creation_input_tokens?: number;
  [extra: string]: unknown;
}

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

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | null;

/** An OpenAI `chat.completion` object. */
export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] };
    finish_reason: FinishReason;
    logprobs?: null;
  }>;
  usage: Usage;
  system_fingerprint?: string | null;
}

/** An OpenAI `chat.completion.chunk` object (one SSE event of a stream). */
export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: Array<Partial<ToolCall> & { index: number }> };
    finish_reason: FinishReason;
    logprobs?: null;
  }>;
  /** Present on the final chunk (OpenAI sends it when `stream_options.include_usage`). */
  usage?: Usage | null;
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
