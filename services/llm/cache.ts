import { hash } from 'node:crypto';
import type { Logger } from '../kit/logger';
import type { RedisClient } from '../kit/redis';
import type { ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, EmbeddingsRequest, EncodedEmbeddingsResponse, ThinkingBlock } from '../openai';

/**
 * The exact-match response cache in Redis.
 *
 * The key is a hash of the normalised request (canonical JSON of the requested model, the
 * messages and every parameter that changes the answer; not `stream`, `user` or extension
 * fields), under a per-tenant namespace, so one tenant never sees another's answers. Only
 * deterministic requests are cached (temperature 0), unless the caller forces it; a caller can
 * also opt out. Redis being down means no cache, never an error.
 */

/** How a caller asks for caching: `default` caches deterministic requests only. */
export type CacheMode = 'default' | 'force' | 'off';

/** The parameters that change the answer, and so belong in the cache key. */
const KEY_FIELDS = [
  'model',
  'messages',
  'temperature',
  'top_p',
  'max_tokens',
  'max_completion_tokens',
  'stop',
  'n',
  'presence_penalty',
  'frequency_penalty',
  'seed',
  'tools',
  'tool_choice',
  'response_format',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'parallel_tool_calls',
  'reasoning_effort',
] as const;

/** JSON with object keys sorted at every level, so equal requests give equal strings. */
export function sortedKeysJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => sortedKeysJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sortedKeysJson(v)}`).join(',')}}`;
}

/** The normalised request: the fields of {@link KEY_FIELDS} that are set. */
export function normaliseForCache(request: ChatRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of KEY_FIELDS) if (request[field] !== undefined) out[field] = request[field];
  return out;
}

/**
 * The normalised embeddings request: what changes the vectors (model, input, dimensions), under
 * its own `operation` so it never shares a key with a chat request. `encoding_format` is left
 * out: vectors are stored as floats and encoded for each client.
 */
export function normaliseEmbeddingsForCache(request: EmbeddingsRequest): Record<string, unknown> {
  return { operation: 'embeddings', model: request.model, input: request.input, dimensions: request.dimensions };
}

/** Whether a request may be answered from (and stored in) the cache. */
export function isCacheable(request: ChatRequest, mode: CacheMode): boolean {
  if (mode === 'off') return false;
  if (mode === 'force') return true;
  return request.temperature === 0;
}

/** What the cache stores per answer. */
export interface CachedAnswer {
  /** A chat answer (absent for embeddings). */
  completion?: ChatCompletion;
  /** An embeddings answer, vectors stored as base64 (a quarter of the bytes of JSON floats). */
  embeddings?: EncodedEmbeddingsResponse;
  provider: string;
  model: string;
}

/** Reads and writes cached answers in Redis, under `<prefix>llm:cache:`, with the configured TTL. */
export class ResponseCache {
  private redisDown = false;

  constructor(
    private readonly redis: RedisClient | undefined,
    private readonly keyPrefix: string,
    private readonly ttlSeconds: number,
    private readonly logger: Logger,
  ) {}

  /** Tenant hashes by tenant id: one per API key, computed once (the request hash cannot be). */
  private readonly tenantHashes = new Map<string, string>();

  /** The Redis key of a request for a tenant (both hashed: no content or tenant id in key names). */
  key(request: ChatRequest, tenant: string | undefined): string {
    return this.keyOf(normaliseForCache(request), tenant);
  }

  /** The Redis key of a normalised request (see {@link normaliseForCache}, {@link normaliseEmbeddingsForCache}). */
  keyOf(normalised: Record<string, unknown>, tenant: string | undefined): string {
    const id = tenant ?? '';
    let tenantHash = this.tenantHashes.get(id);
    if (tenantHash === undefined) {
      tenantHash = hash('sha256', id, 'hex').slice(0, 16);
      // Bounded by the keys in use; a flood of distinct tenants only costs recomputing.
      if (this.tenantHashes.size < 10_000) this.tenantHashes.set(id, tenantHash);
    }
    // The one-shot hash: several times cheaper than a Hash object for one small input.
    const requestHash = hash('sha256', sortedKeysJson(normalised), 'hex');
    return `${this.keyPrefix}llm:cache:${tenantHash}:${requestHash}`;
  }

  /** The cached answer, `null` on a miss, or `undefined` when Redis could not be asked. */
  async get(key: string): Promise<CachedAnswer | null | undefined> {
    if (!this.redis) return undefined;
    try {
      const raw = await this.redis.get(key);
      this.up();
      if (raw === null) return null;
      const parsed = JSON.parse(raw) as CachedAnswer;
      if (!Array.isArray(parsed?.completion?.choices) && !Array.isArray(parsed?.embeddings?.data)) return null;
      return parsed;
    } catch (err) {
      this.down(err);
      return undefined;
    }
  }

  /** Stores an answer; failures are logged, never thrown. */
  async set(key: string, answer: CachedAnswer): Promise<boolean> {
    if (!this.redis) return false;
    try {
      await this.redis.set(key, JSON.stringify(answer), 'EX', this.ttlSeconds);
      this.up();
      return true;
    } catch (err) {
      this.down(err);
      return false;
    }
  }

  private up(): void {
    if (!this.redisDown) return;
    this.redisDown = false;
    this.logger.info('llm cache: Redis is back, caching again');
  }

  private down(err: unknown): void {
    if (this.redisDown) return;
    this.redisDown = true;
    this.logger.warn({ err: (err as Error).message }, 'llm cache: Redis unreachable, answering without the cache');
  }
}

/**
 * Replays a completion as a stream, the way a provider would send it: a role chunk, the content
 * in pieces, a chunk with the finish reason, and (when asked) a usage chunk.
 */
export function* completionToChunks(completion: ChatCompletion, options: { includeUsage: boolean; pieceChars?: number }): Generator<ChatCompletionChunk> {
  const base = { id: completion.id, object: 'chat.completion.chunk' as const, created: completion.created, model: completion.model };
  const size = options.pieceChars ?? 32;
  for (const choice of completion.choices) {
    yield { ...base, choices: [{ index: choice.index, delta: { role: 'assistant', content: '' }, finish_reason: null }] };
    // Reasoning first, as providers stream it: its text, then the signed blocks whole.
    const { reasoning_content: reasoning, thinking_blocks: blocks } = choice.message as ChatMessage;
    if (typeof reasoning === 'string' && reasoning !== '') yield { ...base, choices: [{ index: choice.index, delta: { reasoning_content: reasoning }, finish_reason: null }] };
    if (blocks?.length) yield { ...base, choices: [{ index: choice.index, delta: { thinking_blocks: blocks }, finish_reason: null }] };
    const content = choice.message.content ?? '';
    for (let i = 0; i < content.length; i += size) {
      yield { ...base, choices: [{ index: choice.index, delta: { content: content.slice(i, i + size) }, finish_reason: null }] };
    }
    if (choice.message.tool_calls?.length) {
      yield {
        ...base,
        choices: [{ index: choice.index, delta: { tool_calls: choice.message.tool_calls.map((tc, index) => ({ ...tc, index })) }, finish_reason: null }],
      };
    }
    yield { ...base, choices: [{ index: choice.index, delta: {}, finish_reason: choice.finish_reason }] };
  }
  if (options.includeUsage) yield { ...base, choices: [], usage: completion.usage };
}

/** Builds a completion from the chunks of a stream (to cache a streamed answer). */
export class ChunkAssembler {
  private readonly choices = new Map<number, { content: string; reasoning: string; thinking: ThinkingBlock[]; finish: ChatCompletion['choices'][number]['finish_reason']; tools: Map<number, any> }>();
  private first: ChatCompletionChunk | undefined;
  usage: ChatCompletion['usage'] | undefined;

  add(chunk: ChatCompletionChunk): void {
    this.first ??= chunk;
    if (chunk.usage) this.usage = chunk.usage;
    for (const c of chunk.choices ?? []) {
      let acc = this.choices.get(c.index);
      if (!acc) this.choices.set(c.index, (acc = { content: '', reasoning: '', thinking: [], finish: null, tools: new Map() }));
      if (typeof c.delta?.content === 'string') acc.content += c.delta.content;
      const delta = c.delta as { reasoning_content?: unknown; thinking_blocks?: unknown } | undefined;
      if (typeof delta?.reasoning_content === 'string') acc.reasoning += delta.reasoning_content;
      // Each delta's thinking blocks are whole (the adapters send a block when it ends).
      if (Array.isArray(delta?.thinking_blocks)) acc.thinking.push(...(delta.thinking_blocks as ThinkingBlock[]));
      if (c.finish_reason) acc.finish = c.finish_reason;
      for (const tc of c.delta?.tool_calls ?? []) {
        const prev = acc.tools.get(tc.index) ?? { id: '', type: 'function', function: { name: '', arguments: '' } };
        if (tc.id) prev.id = tc.id;
        if (tc.function?.name) prev.function.name += tc.function.name;
        if (tc.function?.arguments) prev.function.arguments += tc.function.arguments;
        acc.tools.set(tc.index, prev);
      }
    }
  }

  /** The completion, or undefined when the stream did not finish properly. */
  completion(): ChatCompletion | undefined {
    if (!this.first || this.choices.size === 0) return undefined;
    if ([...this.choices.values()].some((c) => c.finish === null)) return undefined;
    return {
      id: this.first.id,
      object: 'chat.completion',
      created: this.first.created,
      model: this.first.model,
      choices: [...this.choices.entries()]
        .sort(([a], [b]) => a - b)
        .map(([index, c]) => ({
          index,
          message: {
            role: 'assistant' as const,
            content: c.content,
            ...(c.tools.size ? { tool_calls: [...c.tools.values()] } : {}),
            ...(c.reasoning ? { reasoning_content: c.reasoning } : {}),
            ...(c.thinking.length ? { thinking_blocks: c.thinking } : {}),
          },
          finish_reason: c.finish,
        })),
      usage: this.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }
}
