import { badRequest } from '../kit/errors';
import { redactUrl } from '../kit/config';
import type { Context } from '../kit/tracing';
import type { CircuitSnapshot, CircuitState } from './breaker';
import { completionToChunks, type CacheMode } from './cache';
import { listModels } from './routing';
import { buildPipeline } from './pipeline';
import { embeddingsUsage, passthroughBody, streamChunks, withCost } from './pipeline/answer';
import { createPipelineParts, type LlmCoreDeps } from './pipeline/parts';
import { newCall, newEmbeddingsCall, newResponsesCall } from './pipeline/stage';
import { estimateInputTokens } from './limits';
import { encodeEmbeddings, type ChatCompletion, type ChatCompletionChunk, type ChatRequest, type EmbeddingsRequest, type EncodedEmbeddingsResponse, type PassthroughRequest } from '../openai';
import type { PassthroughResponse, ProviderType } from './types';
import { toAnthropicEvents, toAnthropicResponse, toChatRequest, type AnthropicEvent, type AnthropicResponse, type MessagesRequest } from '../anthropic';
import { resolveTargets } from './routing';
import { ANTHROPIC_PASSTHROUGH, PassthroughSink } from './passthrough';

export type { LlmCoreDeps } from './pipeline/parts';
export type { UsageWithCost } from './pipeline/answer';
import type { UsageWithCost } from './pipeline/answer';

/** Whether an answer came from the cache: `skip` when the request was not cacheable (or Redis was down). */
export type CacheResult = 'hit' | 'miss' | 'skip';

/** Options of one {@link LlmCore} call. */
export interface LlmCallOptions {
  /**
   * Whose request this is; cache entries are kept apart per tenant (the router passes the API
   * key id). @default one shared anonymous tenant
   */
  tenant?: string;
  /** The caller's OpenTelemetry context; the llm spans become its children. @default a new trace */
  traceContext?: Context;
  /** Aborts the call (the client went away). */
  signal?: AbortSignal;
  /**
   * Cache policy: `default` caches deterministic requests (temperature 0) only, `force` caches
   * this one anyway, `off` bypasses the cache. @default the request body's `cache` field
   * (true = force, false = off), else `default`
   */
  cache?: CacheMode;
  /**
   * The tenant's own tokens-per-minute budget (the `tpm` of its API key), held in Redis across
   * replicas beside the providers' limits: the estimate is reserved before the call and settled
   * against the real usage after it. Needs `tenant`. @default no per-tenant token limit
   */
  tenantTpm?: number;
  /**
   * The team of the tenant's key: the `team` label of the cost metrics, and whose `teamTpm`
   * is taken beside the key's own. @default none
   */
  team?: string;
  /** The team's tokens-per-minute budget over all its keys. Needs `team`. @default none */
  teamTpm?: number;
  /**
   * The caller's admission of this call (the router's rpm, budget and concurrency checks, still
   * in flight): the pipeline waits for it before it serves a cache hit (cache stage) or calls a
   * provider (tenant-limits stage, beside its own token reservations, so the two round trips to
   * Redis overlap), and a rejection is the call's answer. @default admitted
   */
  admitted?: Promise<unknown>;
}

/** The result of {@link LlmCore.complete}. */
export interface LlmCompletionResult {
  /** The OpenAI `chat.completion`; `usage.cost_usd` holds the cost in USD. */
  completion: ChatCompletion;
  /** The provider that answered (for a cache hit: the one that answered originally). */
  provider: string;
  /** The provider's model name. */
  model: string;
  cache: CacheResult;
  /** What this request cost (0 for a cache hit or an unpriced model). */
  costUsd: number;
}

/** The result of {@link LlmCore.stream}: resolved once the first chunk is secured. */
export interface LlmStreamResult {
  provider: string;
  model: string;
  cache: CacheResult;
  /**
   * The chunks, starting with the one already received. A failure after the first chunk is
   * thrown from the iterator as an {@link ApiError} (the stream cannot fall back any more).
   * Consume it to the end or call `return()` on it: that releases the provider's slot.
   */
  chunks: AsyncIterable<ChatCompletionChunk>;
}

/** The result of {@link LlmCore.embed}. */
export interface LlmEmbeddingsResult {
  /** The OpenAI embeddings list, vectors in the `encoding_format` asked for; `usage.cost_usd` holds the cost. */
  response: EncodedEmbeddingsResponse;
  /** The provider that answered (for a cache hit: the one that answered originally). */
  provider: string;
  /** The provider's model name. */
  model: string;
  cache: CacheResult;
  /** What this request cost (0 for a cache hit or an unpriced model). */
  costUsd: number;
}

/** The result of {@link LlmCore.responses}: the provider's answer as it came, once its headers arrived. */
export interface LlmPassthroughResult extends PassthroughResponse {
  provider: string;
  model: string;
  /**
   * The usage the answer reported, with its cost (`cost_usd`, `cost_micro_usd`): known once
   * `body` was read to its end; undefined before, and for an answer without usage.
   */
  usage(): UsageWithCost | undefined;
}

/**
 * The result of {@link LlmCore.messages}: the Anthropic answer (`message`) or its event stream
 * (`events`, resolved once the first event is secured, like {@link LlmStreamResult}).
 */
export interface LlmMessagesResult {
  provider: string;
  model: string;
  cache: CacheResult;
  /** Whether an Anthropic provider answered the client's body as it came (else it was translated). */
  passthrough: boolean;
  /** What the call cost (plain answers; a stream's cost is known at its end, in {@link usage}). */
  costUsd?: number;
  message?: AnthropicResponse;
  events?: AsyncIterable<AnthropicEvent>;
  /**
   * The call's usage in the OpenAI shape with its cost (`cost_usd`, `cost_micro_usd`): at once
   * for a plain call; for a stream once its last event (`message_stop`) was read. Undefined
   * before that, and for a stream that broke off.
   */
  usage(): UsageWithCost | undefined;
}

/** Options of {@link LlmCore.messages}. */
export interface LlmMessagesOptions extends LlmCallOptions {
  /**
   * The client's `anthropic-beta` header, sent on to an Anthropic provider with the body (other
   * providers have no betas to turn on). @default none
   */
  anthropicBeta?: string;
}

/** One model a client may ask for (`GET /v1/models`). */
export interface ModelInfo {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  /** `alias` (from `models:`) or `provider` (a provider's own model name). */
  kind: 'alias' | 'provider';
}

/** One provider's state (`GET /v1/providers`). */
export interface ProviderStatus {
  name: string;
  type: ProviderType;
  baseUrl: string;
  models: string[];
  circuit: CircuitSnapshot;
  /** Latency estimate (EWMA, ms) per model, from observed calls in this process. */
  latencyMs: Record<string, number>;
  limits: { rpm: number | null; tpm: number | null; concurrency: number | null };
  /** Calls to this provider in flight in this process. */
  inFlight: number;
}

/**
 * The llm service's core: what the router calls in-process (`SERVICE=all`) and what the llm
 * HTTP routes expose.
 */
export interface LlmCore {
  /** A non-streaming completion: routed, retried, failed over, cached and costed. */
  complete(request: ChatRequest, options?: LlmCallOptions): Promise<LlmCompletionResult>;
  /**
   * A streaming completion. Resolves once the first chunk has arrived (so every failure before
   * it can still fall back, and the caller can still answer with an error status); rejects with
   * an {@link ApiError} when no candidate could answer.
   */
  stream(request: ChatRequest, options?: LlmCallOptions): Promise<LlmStreamResult>;
  /**
   * Embeddings: routed, retried, failed over, limited, cached and costed like a completion
   * (priced by the model's `input` price). A model none of whose providers has embeddings is a
   * 400 naming `model`.
   */
  embed(request: EmbeddingsRequest, options?: LlmCallOptions): Promise<LlmEmbeddingsResult>;
  /**
   * The OpenAI Responses API, passed through to a provider that speaks it (routed, retried,
   * failed over, limited and costed like a completion; never cached). Resolves once the
   * provider answered; the body (JSON or the event stream) is the provider's, unchanged.
   * Consume it to the end or call `return()` on it. A model none of whose providers speaks
   * the API is a 400 that names the providers that do.
   */
  responses(request: PassthroughRequest, options?: LlmCallOptions): Promise<LlmPassthroughResult>;
  /**
   * An Anthropic Messages call (`POST /v1/messages`), through the same pipeline as chat. To an
   * Anthropic provider the client's body goes as it came (model aside) and its answer comes back
   * raw (thinking blocks, cache usage and all); to the others it is translated to the canonical
   * request and back. When every provider the model may reach is Anthropic, nothing needs to be
   * translatable (and the response cache is bypassed: its key is the canonical request).
   */
  messages(body: MessagesRequest, options?: LlmMessagesOptions): Promise<LlmMessagesResult>;
  /** The model aliases and provider models. */
  models(): ModelInfo[];
  /** Every provider's circuit, latency estimate and limits. */
  providers(): ProviderStatus[];
  /** The model aliases and their targets with weights (admin data, beside `providers()`). */
  aliases(): Record<string, Array<{ provider: string; model: string; weight: number }>>;
  /** Releases the adapters' connection pools. */
  close(): Promise<void>;
}

/**
 * Builds the core: the pipeline of stages (services/llm/pipeline, docs/llm.md "The pipeline")
 * behind the LlmCore interface. Adapters are looked up once per provider, so a missing one
 * fails at start.
 */
export function createLlmCore(deps: LlmCoreDeps): LlmCore & { breakerStates(): Array<{ provider: string; state: CircuitState }> } {
  const parts = createPipelineParts(deps);
  const { config, breakers, latency, limiter, adapters } = parts;
  const pipeline = buildPipeline(parts);

  return {
    async complete(request, options = {}) {
      validateForRouting(request);
      const answer = await pipeline(newCall(request, options, false));
      const completion = answer.completion!;
      await answer.end({ kind: 'success', usage: completion.usage, completion, responseModel: completion.model, used: undefined });
      return {
        completion: { ...completion, usage: withCost(completion.usage, answer.costUsd, answer.costMicroUsd) ?? completion.usage },
        provider: answer.provider,
        model: answer.model,
        cache: answer.cache,
        costUsd: answer.costUsd,
      };
    },

    async stream(request, options = {}) {
      validateForRouting(request);
      const includeUsage = request.stream_options?.include_usage === true;
      const answer = await pipeline(newCall(request, options, true));
      const { provider, model, cache } = answer;
      if (answer.stream) return { provider, model, cache, chunks: streamChunks(answer, request, includeUsage) };
      // A cache hit: the whole completion, replayed as chunks.
      const completion = answer.completion!;
      await answer.end({ kind: 'success', usage: completion.usage, completion, responseModel: completion.model, used: undefined });
      return { provider, model, cache, chunks: toAsync(completionToChunks(completion, { includeUsage })) };
    },

    async embed(request, options = {}) {
      const answer = await pipeline(newEmbeddingsCall(request, options));
      const embeddings = answer.embeddings!;
      const usage = embeddingsUsage(embeddings);
      await answer.end({ kind: 'success', usage, completion: undefined, responseModel: embeddings.model, used: undefined });
      const cost = Math.round(answer.costUsd * 1e10) / 1e10;
      const encoded = encodeEmbeddings(embeddings, request.encoding_format);
      return {
        response: { ...encoded, usage: { ...embeddings.usage, cost_usd: cost, cost_micro_usd: answer.costMicroUsd } },
        provider: answer.provider,
        model: answer.model,
        cache: answer.cache,
        costUsd: answer.costUsd,
      };
    },

    async responses(request, options = {}) {
      const call = newResponsesCall(request, options);
      const answer = await pipeline(call);
      const { status, headers } = answer.passthrough!;
      let usage: UsageWithCost | undefined;
      const body = passthroughBody(answer, estimateInputTokens(call.request), (u) => (usage = u));
      return { provider: answer.provider, model: answer.model, status, headers, body, usage: () => usage };
    },

    async messages(body, options = {}) {
      const targets = resolveTargets(config, parts.providers, body.model);
      const someAnthropic = targets.some((t) => t.config.type === 'anthropic');
      const allAnthropic = targets.length > 0 && targets.every((t) => t.config.type === 'anthropic');
      const request = toChatRequest(body, { strict: !allAnthropic });
      const { anthropicBeta, ...rest } = options;
      const sink = someAnthropic ? new PassthroughSink(body, anthropicBeta) : undefined;
      if (sink) (request as Record<symbol, unknown>)[ANTHROPIC_PASSTHROUGH] = sink;
      const callOptions: LlmCallOptions = allAnthropic ? { ...rest, cache: 'off' } : rest;
      const raw = (provider: string, cache: CacheResult) => sink !== undefined && cache !== 'hit' && parts.providers.get(provider)?.type === 'anthropic';
      if (body.stream !== true) {
        const r = await this.complete(request, callOptions);
        const passthrough = raw(r.provider, r.cache) && sink!.message !== undefined;
        const usage = r.completion.usage as UsageWithCost | undefined;
        return { provider: r.provider, model: r.model, cache: r.cache, passthrough, costUsd: r.costUsd, message: passthrough ? sink!.message! : toAnthropicResponse(r.completion), usage: () => usage };
      }
      const r = await this.stream(request, callOptions);
      const passthrough = raw(r.provider, r.cache);
      // The usage chunk (with the cost) comes last, before the final events are let out.
      let usage: UsageWithCost | undefined;
      const chunks = usageSeen(r.chunks, (u) => (usage = u));
      return { provider: r.provider, model: r.model, cache: r.cache, passthrough, events: passthrough ? rawEvents(chunks, sink!) : toAnthropicEvents(chunks, r.model), usage: () => usage };
    },

    models() {
      return listModels(config).map((m) => ({ id: m.id, object: 'model' as const, created: 0, owned_by: m.owned_by, kind: m.kind }));
    },

    providers() {
      return config.providers.map((p) => ({
        name: p.name,
        type: p.type,
        baseUrl: redactUrl(p.baseUrl),
        models: [...new Set([...(p.models ?? []), ...Object.keys(p.prices ?? {}), ...Object.values(config.models).flatMap((ts) => ts.filter((t) => t.provider === p.name).map((t) => t.model))])],
        circuit: breakers.get(p.name)!.snapshot(),
        latencyMs: latency.ofProvider(p.name),
        limits: { rpm: p.limits?.rpm ?? null, tpm: p.limits?.tpm ?? null, concurrency: p.limits?.concurrency ?? null },
        inFlight: limiter.concurrency(p.name),
      }));
    },

    aliases() {
      return Object.fromEntries(Object.entries(config.models).map(([alias, targets]) => [alias, targets.map((t) => ({ provider: t.provider, model: t.model, weight: t.weight }))]));
    },

    breakerStates() {
      return [...breakers].map(([provider, b]) => ({ provider, state: b.state }));
    },

    async close() {
      for (const adapter of new Set(adapters.values())) await adapter.close?.().catch(() => undefined);
      // Leased tokens go back while Redis is still open.
      await parts.limiter.close().catch(() => undefined);
    },
  };
}

function validateForRouting(request: ChatRequest): void {
  if (typeof request?.model !== 'string' || request.model === '') throw badRequest("'model' is required", 'model');
  if (!Array.isArray(request.messages) || request.messages.length === 0) throw badRequest("'messages' must be a non-empty list", 'messages');
}

/** The chunks as they came, telling `seen` each usage a chunk carries. */
async function* usageSeen(chunks: AsyncIterable<ChatCompletionChunk>, seen: (usage: UsageWithCost) => void): AsyncGenerator<ChatCompletionChunk> {
  for await (const chunk of chunks) {
    if (chunk.usage) seen(chunk.usage as UsageWithCost);
    yield chunk;
  }
}

/**
 * The raw events the Anthropic adapter recorded, in step with the pipeline's chunks.
 * `message_stop` waits for the chunks' end, so the usage (with the cost) is known when it goes out.
 */
async function* rawEvents(chunks: AsyncIterable<ChatCompletionChunk>, sink: PassthroughSink): AsyncGenerator<AnthropicEvent> {
  const { events } = sink;
  for await (const _chunk of chunks) {
    while (events.length > 0 && events[0].event !== 'message_stop') yield events.shift()!;
  }
  while (events.length > 0) yield events.shift()!;
}

async function* toAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}
