import { setTimeout as delay } from 'node:timers/promises';
import { ApiError, badRequest, notFound, rateLimited, upstreamError } from '../kit/errors';
import { redactUrl } from '../kit/config';
import type { Logger } from '../kit/logger';
import type { RedisClient } from '../kit/redis';
import { PROVIDER_STATS_GROUP, type RollingStats } from '../kit/rolling-stats';
import { SpanKind, SpanStatusCode, injectTraceHeaders, startSpan, type Context, type Span, type Tracer } from '../kit/tracing';
import { CircuitBreaker, type BreakerPermit, type CircuitSnapshot, type CircuitState } from './breaker';
import { ChunkAssembler, ResponseCache, completionToChunks, isCacheable, type CacheMode } from './cache';
import { billedTokens, costOf, microUsdOf, type LlmConfig } from './config';
import { ProviderLimiter, estimateInputTokens, estimateTokens } from './limits';
import { UNKNOWN_MODEL_OUTPUT_RESERVATION, maxOutputTokensOf, requestedMaxTokens } from './model-limits';
import { SecretScrubber } from './secret-scrubber';
import type { LlmMetrics } from './metrics';
import { KEY_LABEL_CAP, LabelCap, TEAM_LABEL_CAP } from '../kit/label-cap';
import { LatencyTracker, listModels, orderCandidates, resolveTargets, type Candidate } from './routing';
import {
  ProviderError,
  type CallOptions,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatRequest,
  type ProviderAdapter,
  type ProviderConfig,
  type ProviderType,
  type Usage,
} from './types';

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
}

/**
 * The cost added to the OpenAI usage object (extension fields): `cost_usd` in USD, and
 * `cost_micro_usd`, the exact integer microdollars the spend ledger counts (docs/keys.md).
 */
export type UsageWithCost = Usage & { cost_usd?: number; cost_micro_usd?: number };

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
  /** The model aliases and provider models. */
  models(): ModelInfo[];
  /** Every provider's circuit, latency estimate and limits. */
  providers(): ProviderStatus[];
  /** The model aliases and their targets with weights (admin data, beside `providers()`). */
  aliases(): Record<string, Array<{ provider: string; model: string; weight: number }>>;
  /** Releases the adapters' connection pools. */
  close(): Promise<void>;
}

/** What {@link createLlmCore} is built from. */
export interface LlmCoreDeps {
  config: LlmConfig;
  /** The adapter of a provider type. */
  adapterFor: (type: ProviderType) => ProviderAdapter;
  /** Redis for limits and cache; without it both are off. */
  redis?: RedisClient;
  /** Prefix of every Redis key. */
  keyPrefix: string;
  logger: Logger;
  metrics: LlmMetrics;
  tracer: Tracer;
  /** Randomness for weights and jitter. @default Math.random */
  random?: () => number;
  /**
   * The per-provider rolling aggregates the console reads (`GET /v1/stats/providers`): every
   * provider call, with its latency, outcome and cost. @default not recorded
   */
  stats?: RollingStats;
}

/** Fields of the request body that are promptmesh's, never sent to a provider. */
const EXTENSION_FIELDS = ['cache', 'prompt', 'session_id'];

type Outcome =
  | { kind: 'open'; provider: string; retryInMs: number }
  | { kind: 'limited'; provider: string; retryAfterMs: number; reason: string }
  | { kind: 'failed'; provider: string; error: ProviderError };

/** One provider call in progress (for a stream: until its last chunk). */
interface Attempt {
  candidate: Candidate;
  permit: BreakerPermit;
  releaseSlot: () => void;
  startedAt: number;
  span: Span;
  controller: AbortController;
  /** Why the controller aborted, when it was our total timeout. */
  timedOut: () => boolean;
  /** Clears the timeout and the client-abort listener. */
  dispose: () => void;
  /** Tokens taken from the provider's `tpm` bucket; settled once against the real usage. */
  reserved: number;
  /** Whether the reservation was settled already. */
  settled: boolean;
}

/** The caller went away (its signal aborted); 499 in the access log, nobody reads the body. */
class ClientGone extends ApiError {
  constructor() {
    super(499, 'client_closed_request', 'the client went away before the answer was ready', null, 'client_closed');
  }
}

/** Builds the core. Adapters are looked up once per provider, so a missing one fails at start. */
export function createLlmCore(deps: LlmCoreDeps): LlmCore & { breakerStates(): Array<{ provider: string; state: CircuitState }> } {
  const { config, logger, metrics, tracer } = deps;
  const keyLabels = new LabelCap(KEY_LABEL_CAP);
  const teamLabels = new LabelCap(TEAM_LABEL_CAP);
  const random = deps.random ?? Math.random;
  const providers = new Map(config.providers.map((p) => [p.name, p]));
  const adapters = new Map<string, ProviderAdapter>();
  for (const p of config.providers) adapters.set(p.name, deps.adapterFor(p.type));
  const breakers = new Map(
    config.providers.map((p) => [
      p.name,
      new CircuitBreaker(config.routing.breaker, (state) => {
        const log = state === 'open' ? logger.warn.bind(logger) : logger.info.bind(logger);
        log({ provider: p.name, state }, `circuit of provider ${p.name} is ${state}`);
      }),
    ]),
  );
  const latency = new LatencyTracker();
  const limiter = new ProviderLimiter(deps.redis, deps.keyPrefix, logger);
  const cache = new ResponseCache(deps.redis, deps.keyPrefix, config.cache.ttlSeconds, logger);
  // Provider text (error bodies and events) may echo our credentials: scrubbed before it leaves
  // the service or reaches a log or span.
  const scrubber = SecretScrubber.forProviders(config.providers);

  function cacheModeOf(request: ChatRequest, options: LlmCallOptions): CacheMode {
    if (options.cache) return options.cache;
    if (request.cache === true) return 'force';
    if (request.cache === false) return 'off';
    return 'default';
  }

  /** Looks the request up in the cache: the key to store under on a miss, or the hit. */
  async function lookup(request: ChatRequest, options: LlmCallOptions) {
    if (!config.cache.enabled || !isCacheable(request, cacheModeOf(request, options))) {
      metrics.cacheRequests.inc({ result: 'skip' });
      return { result: 'skip' as const };
    }
    const key = cache.key(request, options.tenant);
    const found = await cache.get(key);
    if (found === undefined) {
      metrics.cacheRequests.inc({ result: 'error' });
      return { result: 'skip' as const };
    }
    if (found === null) {
      metrics.cacheRequests.inc({ result: 'miss' });
      return { result: 'miss' as const, key };
    }
    metrics.cacheRequests.inc({ result: 'hit' });
    return { result: 'hit' as const, key, hit: found };
  }

  function providerRequest(request: ChatRequest, model: string, stream: boolean): ChatRequest {
    const out: ChatRequest = { ...request, model, stream };
    for (const f of EXTENSION_FIELDS) delete out[f];
    if (!stream) delete out.stream_options;
    return out;
  }

  function normalise(err: unknown, attempt: Attempt, signal: AbortSignal | undefined): ProviderError {
    if (signal?.aborted) throw new ClientGone();
    if (attempt.timedOut()) return new ProviderError('timeout', `no complete answer within ${attempt.candidate.config.timeoutMs} ms`);
    if (err instanceof ProviderError) return new ProviderError(err.kind, scrubber.scrub(err.message), err.status, err.retryAfterMs);
    const e = err as Error;
    if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return new ProviderError('timeout', scrubber.scrub(e.message || 'aborted'));
    const message = scrubber.scrub(e?.message ?? String(err));
    logger.error({ err: { type: e?.name, message, stack: scrubber.scrub(e?.stack ?? '') }, provider: attempt.candidate.provider }, 'provider adapter threw a non-provider error');
    return new ProviderError('server', `adapter error: ${message}`);
  }

  /** Settles an attempt's `tpm` reservation against what it used (once; later calls do nothing). */
  function settle(attempt: Attempt, used: number): void {
    if (attempt.settled) return;
    attempt.settled = true;
    void limiter.reconcile(attempt.candidate.config, attempt.reserved, used);
  }

  function startAttempt(c: Candidate, permit: BreakerPermit, releaseSlot: () => void, parent: Context, signal: AbortSignal | undefined, reserved: number) {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new ProviderError('timeout', `no complete answer within ${c.config.timeoutMs} ms`));
    }, c.config.timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const { span, context } = startSpan(tracer, `chat ${c.model}`, parent, {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.system': c.config.type,
        'gen_ai.request.model': c.model,
        'promptmesh.provider': c.provider,
      },
    });
    const attempt: Attempt = {
      candidate: c,
      permit,
      releaseSlot,
      startedAt: performance.now(),
      span,
      controller,
      timedOut: () => timedOut,
      dispose: () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      },
      reserved,
      settled: false,
    };
    const headers = injectTraceHeaders(context, {});
    const callOptions: CallOptions = { signal: controller.signal, headers };
    return { attempt, callOptions };
  }

  /** Records a successful call: breaker, latency, metrics, cost, span, token charge. */
  function succeed(attempt: Attempt, usage: Usage | undefined, responseModel: string | undefined, latencyMs: number, owner: Owner): { usd: number; micro: number } {
    const { candidate: c } = attempt;
    attempt.dispose();
    attempt.releaseSlot();
    breakers.get(c.provider)!.success(attempt.permit);
    latency.observe(c.provider, c.model, latencyMs);
    const seconds = (performance.now() - attempt.startedAt) / 1000;
    metrics.operationDuration.observe({ provider: c.provider, model: c.model, outcome: 'success' }, seconds);
    let cost = 0;
    let micro = 0;
    if (usage) {
      cost = costOf(c.config, c.model, usage);
      micro = microUsdOf(c.config, c.model, usage);
      const billed = billedTokens(usage);
      metrics.tokenUsage.observe({ provider: c.provider, model: c.model, token_type: 'input' }, usage.prompt_tokens);
      metrics.tokenUsage.observe({ provider: c.provider, model: c.model, token_type: 'output' }, usage.completion_tokens);
      // Parts of `input` billed at other rates, observed only when the provider reports them.
      if (billed.cachedInput > 0) metrics.tokenUsage.observe({ provider: c.provider, model: c.model, token_type: 'cached_input' }, billed.cachedInput);
      if (billed.cacheWrite > 0) metrics.tokenUsage.observe({ provider: c.provider, model: c.model, token_type: 'cache_write' }, billed.cacheWrite);
      metrics.costUsd.inc({ provider: c.provider, model: c.model, ...ownerLabels(owner) }, cost);
      attempt.span.setAttributes({ 'gen_ai.usage.input_tokens': usage.prompt_tokens, 'gen_ai.usage.output_tokens': usage.completion_tokens, 'promptmesh.cost_usd': cost });
      settle(attempt, usage.total_tokens);
    } else {
      settle(attempt, attempt.reserved);
    }
    if (responseModel) attempt.span.setAttribute('gen_ai.response.model', responseModel);
    attempt.span.end();
    deps.stats?.record(PROVIDER_STATS_GROUP, c.provider, { latencyMs, error: false, costUsd: cost });
    return { usd: cost, micro };
  }

  /** The `key` and `team` labels of the cost metrics, bounded (see LabelCap). */
  function ownerLabels(owner: Owner): { key: string; team: string } {
    return { key: keyLabels.of(owner.tenant ?? 'anonymous'), team: teamLabels.of(owner.team ?? 'none') };
  }

  /**
   * Records a failed call. `used` is what it consumed as far as we know: 0 for an error answer
   * (providers do not bill those), the prompt plus what was streamed for a broken stream.
   */
  function fail(attempt: Attempt, error: ProviderError, countsAgainst: boolean, used = 0): void {
    const { candidate: c } = attempt;
    attempt.dispose();
    attempt.releaseSlot();
    settle(attempt, used);
    const breaker = breakers.get(c.provider)!;
    if (countsAgainst) breaker.failure(attempt.permit);
    else breaker.release(attempt.permit);
    metrics.operationDuration.observe({ provider: c.provider, model: c.model, outcome: error.kind }, (performance.now() - attempt.startedAt) / 1000);
    attempt.span.setAttribute('error.type', error.kind);
    attempt.span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    attempt.span.end();
    deps.stats?.record(PROVIDER_STATS_GROUP, c.provider, { latencyMs: performance.now() - attempt.startedAt, error: true });
  }

  /** The client left: the call says nothing about the provider. `used` as for {@link fail}. */
  function abandon(attempt: Attempt, used: number): void {
    attempt.controller.abort(new ClientGone());
    attempt.dispose();
    attempt.releaseSlot();
    settle(attempt, used);
    breakers.get(attempt.candidate.provider)!.release(attempt.permit);
    attempt.span.setAttribute('error.type', 'client_gone');
    attempt.span.end();
  }

  /**
   * Tries the candidates in strategy order, with retries and fallback, until `call` succeeds.
   * Returns the value with its (still open) attempt; throws the ApiError that sums up why
   * nobody could answer.
   */
  async function route<T>(
    request: ChatRequest,
    targets: Candidate[],
    options: LlmCallOptions,
    parent: Context,
    call: (c: Candidate, callOptions: CallOptions) => Promise<T>,
  ): Promise<{ value: T; attempt: Attempt }> {
    const ordered = orderCandidates(targets, config.routing.strategy, latency, random);
    const tryList = config.routing.fallback ? ordered : ordered.slice(0, 1);
    const { retries } = config.routing;
    const outcomes: Outcome[] = [];
    const signal = options.signal;

    for (let ci = 0; ci < tryList.length; ci++) {
      const c = tryList[ci]!;
      const hasNext = ci < tryList.length - 1;
      const breaker = breakers.get(c.provider)!;
      for (let n = 0; ; n++) {
        if (signal?.aborted) throw new ClientGone();
        const permit = breaker.tryAcquire();
        if (!permit) {
          outcomes.push({ kind: 'open', provider: c.provider, retryInMs: breaker.snapshot().retryInMs ?? 0 });
          break;
        }
        const estimate = estimateTokens(request, maxOutputTokensOf(c.config, c.model) ?? UNKNOWN_MODEL_OUTPUT_RESERVATION);
        const limit = await limiter.acquire(c.config, estimate);
        if (!limit.allowed) {
          breaker.release(permit);
          outcomes.push({ kind: 'limited', provider: c.provider, retryAfterMs: limit.retryAfterMs, reason: limit.reason });
          break;
        }
        const { attempt, callOptions } = startAttempt(c, permit, limit.release, parent, signal, limit.reserved);
        try {
          const value = await call(c, callOptions);
          return { value, attempt };
        } catch (err) {
          let error: ProviderError;
          try {
            error = normalise(err, attempt, signal);
          } catch (gone) {
            abandon(attempt, estimateInputTokens(request));
            throw gone;
          }
          if (error.kind === 'bad_request') {
            fail(attempt, error, false);
            throw new ApiError(400, 'invalid_request_error', `provider ${c.provider} rejected the request: ${error.message}`, null, 'upstream_bad_request');
          }
          fail(attempt, error, true);
          outcomes.push({ kind: 'failed', provider: c.provider, error });
          logger.debug({ provider: c.provider, kind: error.kind, attempt: n }, 'provider call failed');
          if (!error.retryable || n >= retries.attempts) break;
          // Waiting again for a provider that just timed out helps nobody when another can answer.
          if (error.kind === 'timeout' && hasNext) break;
          let waitMs: number;
          if (error.retryAfterMs !== undefined) {
            if (error.retryAfterMs > retries.maxRetryAfterMs) break;
            waitMs = error.retryAfterMs;
          } else {
            waitMs = random() * Math.min(retries.maxBackoffMs, retries.backoffMs * 2 ** n);
          }
          try {
            if (waitMs > 0) await delay(waitMs, undefined, { signal });
          } catch {
            throw new ClientGone();
          }
        }
      }
    }
    throw summarise(request.model, outcomes);
  }

  function summarise(model: string, outcomes: Outcome[]): ApiError {
    const describe = (o: Outcome) =>
      o.kind === 'open'
        ? `${o.provider}: circuit open`
        : o.kind === 'limited'
          ? `${o.provider}: ${o.reason}`
          : `${o.provider}: ${o.error.kind}${o.error.status ? ` (${o.error.status})` : ''}: ${o.error.message}`;
    // One line per provider: its last outcome.
    const last = new Map<string, Outcome>();
    for (const o of outcomes) last.set(o.provider, o);
    const summary = [...last.values()].map(describe).join('; ');
    const finals = [...last.values()];
    const limitedWait = (o: Outcome) =>
      o.kind === 'limited' ? o.retryAfterMs : o.kind === 'failed' && o.error.kind === 'rate_limited' ? (o.error.retryAfterMs ?? 1_000) : undefined;
    const waits = finals.map(limitedWait);
    if (finals.length > 0 && waits.every((w) => w !== undefined)) {
      return rateLimited(`every provider for model '${model}' is rate limited: ${summary}`, Math.min(...(waits as number[])));
    }
    if (finals.every((o) => o.kind !== 'failed')) {
      const retryIn = Math.min(...finals.map((o) => (o.kind === 'open' ? o.retryInMs : o.kind === 'limited' ? o.retryAfterMs : 1_000)));
      return new ApiError(503, 'service_unavailable_error', `no provider available for model '${model}': ${summary}`, null, 'providers_unavailable', {
        'retry-after': String(Math.max(1, Math.ceil(retryIn / 1000))),
      });
    }
    const lastFailure = [...outcomes].reverse().find((o) => o.kind === 'failed') as Extract<Outcome, { kind: 'failed' }>;
    return upstreamError(502, `every provider failed for model '${model}': ${summary} (last error from ${lastFailure.provider}: ${lastFailure.error.message})`, 'providers_failed');
  }

  function validateForRouting(request: ChatRequest): void {
    if (typeof request?.model !== 'string' || request.model === '') throw badRequest("'model' is required", 'model');
    if (!Array.isArray(request.messages) || request.messages.length === 0) throw badRequest("'messages' must be a non-empty list", 'messages');
  }

  /**
   * The targets that can serve the request: those of its model whose max output is at least the
   * `max_tokens` it asks for (as OpenAI does, more than the model can produce is a 400, not a
   * silent clamp: a client asking for a long answer must not get a short one unannounced).
   */
  function candidatesFor(request: ChatRequest): Candidate[] {
    const targets = resolveTargets(config, providers, request.model);
    if (targets.length === 0) {
      const err = notFound(`model '${request.model}' does not exist here: it is no alias and no provider lists it (see GET /v1/models)`, 'model');
      throw new ApiError(err.statusCode, err.type, err.message, 'model', 'model_not_found');
    }
    const asked = requestedMaxTokens(request);
    if (!asked) return targets;
    const fitting = targets.filter((t) => {
      const cap = maxOutputTokensOf(t.config, t.model);
      return cap === undefined || asked.value <= cap;
    });
    if (fitting.length > 0) return fitting;
    const caps = [...new Set(targets.map((t) => maxOutputTokensOf(t.config, t.model)!))];
    throw badRequest(
      `'${asked.field}' is ${asked.value}, more than model '${request.model}' can produce: at most ${Math.max(...caps)} output tokens`,
      asked.field,
      'max_tokens_too_large',
    );
  }

  /** The output a request may reserve against limits: the largest cap of its candidates. */
  function outputCapOf(targets: Candidate[]): number {
    return Math.max(...targets.map((t) => maxOutputTokensOf(t.config, t.model) ?? UNKNOWN_MODEL_OUTPUT_RESERVATION));
  }

  /**
   * Takes the request's estimate from the tenant's own `tpm`; `settle(used)` gives back what it
   * did not use (or takes what it used beyond), once. A tenant over its budget gets a 429.
   */
  async function reserveTenant(request: ChatRequest, targets: Candidate[], options: LlmCallOptions): Promise<(used: number) => void> {
    const { tenant, tenantTpm, team, teamTpm } = options;
    // The key's own budget and its team's, each a bucket of its own; the team's under a
    // `team:` prefix, which no key id can spell (key ids have no ':').
    const buckets: Array<{ id: string; tpm: number; what: string }> = [];
    if (tenant !== undefined && tenantTpm !== undefined) buckets.push({ id: tenant, tpm: tenantTpm, what: `API key '${tenant}'` });
    if (team !== undefined && teamTpm !== undefined) buckets.push({ id: `team:${team}`, tpm: teamTpm, what: `team '${team}'` });
    if (buckets.length === 0) return () => undefined;
    const estimate = estimateTokens(request, outputCapOf(targets));
    // Both buckets in one round trip; a refusal gives back what the other took.
    const decisions = await Promise.all(buckets.map((b) => limiter.acquireTenant(b.id, b.tpm, estimate)));
    const taken: Array<{ id: string; tpm: number; reserved: number }> = [];
    decisions.forEach((d, i) => {
      if (d.allowed) taken.push({ id: buckets[i]!.id, tpm: buckets[i]!.tpm, reserved: d.reserved });
    });
    const refused = decisions.findIndex((d) => !d.allowed);
    if (refused >= 0) {
      for (const t of taken) void limiter.reconcileTenant(t.id, t.tpm, t.reserved, 0);
      const b = buckets[refused]!;
      throw rateLimited(`${b.what} is over its limit of ${b.tpm} tokens per minute`, (decisions[refused] as { retryAfterMs: number }).retryAfterMs);
    }
    let settled = false;
    return (used: number) => {
      if (settled) return;
      settled = true;
      for (const t of taken) void limiter.reconcileTenant(t.id, t.tpm, t.reserved, used);
    };
  }

  function rootSpan(request: ChatRequest, options: LlmCallOptions, stream: boolean) {
    return startSpan(tracer, `chat ${request.model}`, options.traceContext, {
      kind: SpanKind.INTERNAL,
      attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': request.model, 'promptmesh.stream': stream },
    });
  }

  function finishRoot(span: Span, c: { provider: string; config?: ProviderConfig; model: string }, cacheResult: CacheResult, usage: Usage | undefined, responseModel: string | undefined) {
    span.setAttributes({ 'promptmesh.provider': c.provider, 'gen_ai.system': providers.get(c.provider)?.type ?? 'unknown', 'promptmesh.cache': cacheResult });
    if (responseModel) span.setAttribute('gen_ai.response.model', responseModel);
    if (usage) span.setAttributes({ 'gen_ai.usage.input_tokens': usage.prompt_tokens, 'gen_ai.usage.output_tokens': usage.completion_tokens });
  }

  function failRoot(span: Span, err: unknown): void {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    span.setAttribute('error.type', err instanceof ApiError ? (err.code ?? String(err.statusCode)) : (err as Error).name);
    span.end();
  }

  function withCost(usage: Usage | null | undefined, cost: { usd: number; micro: number }): UsageWithCost | undefined {
    if (!usage) return undefined;
    return { ...usage, cost_usd: roundUsd(cost.usd), cost_micro_usd: cost.micro };
  }

  /** A cache hit ends the root span and answers with the cached completion at no cost. */
  function answerFromCache(span: Span, hit: { completion: ChatCompletion; provider: string; model: string }, owner: Owner) {
    const { completion, provider, model } = hit;
    const providerConfig = providers.get(provider);
    if (providerConfig && completion.usage) metrics.cacheSavedUsd.inc({ provider, model, ...ownerLabels(owner) }, costOf(providerConfig, model, completion.usage));
    finishRoot(span, { provider, model }, 'hit', completion.usage, completion.model);
    span.end();
    return { provider, model, completion: { ...completion, usage: withCost(completion.usage, { usd: 0, micro: 0 })! } };
  }

  const core: LlmCore & { breakerStates(): Array<{ provider: string; state: CircuitState }> } = {
    async complete(request, options = {}) {
      validateForRouting(request);
      const { span, context } = rootSpan(request, options, false);
      let settleTenant: (used: number) => void = () => undefined;
      try {
        const targets = candidatesFor(request);
        const cached = await lookup(request, options);
        if (cached.result === 'hit') {
          const { completion, provider, model } = answerFromCache(span, cached.hit!, options);
          return { completion, provider, model, cache: 'hit', costUsd: 0 };
        }
        settleTenant = await reserveTenant(request, targets, options);
        const { value: completion, attempt } = await route(request, targets, options, context, (c, callOptions) =>
          adapters.get(c.provider)!.complete(c.config, providerRequest(request, c.model, false), callOptions),
        );
        const c = attempt.candidate;
        const cost = succeed(attempt, completion.usage, completion.model, performance.now() - attempt.startedAt, options);
        settleTenant(completion.usage?.total_tokens ?? estimateTokens(request, outputCapOf(targets)));
        if (cached.result === 'miss' && completion.choices?.every((ch) => ch.finish_reason !== null)) {
          await cache.set(cached.key, { completion, provider: c.provider, model: c.model });
        }
        finishRoot(span, c, cached.result, completion.usage, completion.model);
        span.end();
        return {
          completion: { ...completion, usage: withCost(completion.usage, cost) ?? completion.usage },
          provider: c.provider,
          model: c.model,
          cache: cached.result,
          costUsd: cost.usd,
        };
      } catch (err) {
        // The provider did not answer (or the client left while it did): only the prompt may count.
        settleTenant(err instanceof ClientGone ? estimateInputTokens(request) : 0);
        failRoot(span, err);
        throw err;
      }
    },

    async stream(request, options = {}) {
      validateForRouting(request);
      const includeUsage = request.stream_options?.include_usage === true;
      const { span, context } = rootSpan(request, options, true);
      let settleTenant: (used: number) => void = () => undefined;
      try {
        const targets = candidatesFor(request);
        const cached = await lookup(request, options);
        if (cached.result === 'hit') {
          const { completion, provider, model } = answerFromCache(span, cached.hit!, options);
          return { provider, model, cache: 'hit', chunks: toAsync(completionToChunks(completion, { includeUsage })) };
        }
        settleTenant = await reserveTenant(request, targets, options);
        const tenantSettle = settleTenant;
        const inputEstimate = estimateInputTokens(request);
        const { value, attempt } = await route(request, targets, options, context, async (c, callOptions) => {
          const iterable = await adapters.get(c.provider)!.stream(c.config, providerRequest(request, c.model, true), callOptions);
          const iterator = iterable[Symbol.asyncIterator]();
          let first: IteratorResult<ChatCompletionChunk>;
          try {
            first = await iterator.next();
          } catch (err) {
            void iterator.return?.();
            throw err;
          }
          if (first.done) throw new ProviderError('malformed', 'the stream ended before its first chunk');
          return { iterator, first: first.value, firstByteMs: performance.now() };
        });
        const c = attempt.candidate;
        const firstChunkLatency = value.firstByteMs - attempt.startedAt;
        const assembler = new ChunkAssembler();
        const cacheKey = cached.result === 'miss' ? cached.key : undefined;
        const signal = options.signal;

        /** What a stream that broke off used, as far as we know: the prompt and what was streamed. */
        let streamedChars = 0;
        const partialUse = () => inputEstimate + Math.ceil(streamedChars / 4);

        async function* chunks(): AsyncGenerator<ChatCompletionChunk> {
          let settled = false;
          let next: ChatCompletionChunk | undefined = value.first;
          try {
            while (next) {
              assembler.add(next);
              for (const ch of next.choices ?? []) {
                if (typeof ch.delta?.content === 'string') streamedChars += ch.delta.content.length;
                for (const tc of ch.delta?.tool_calls ?? []) streamedChars += tc.function?.arguments?.length ?? 0;
              }
              const out = shape(next);
              if (out) yield out;
              const r = await value.iterator.next();
              next = r.done ? undefined : r.value;
            }
            settled = true;
            const usage = assembler.usage;
            const completion = assembler.completion();
            const cost = succeed(attempt, usage, completion?.model ?? value.first.model, firstChunkLatency, options);
            tenantSettle(usage?.total_tokens ?? partialUse());
            if (cacheKey && completion) await cache.set(cacheKey, { completion, provider: c.provider, model: c.model });
            finishRoot(span, c, cached.result, usage, completion?.model);
            span.end();
            if (includeUsage) {
              // The usage chunk goes last, with the cost added.
              yield {
                id: value.first.id,
                object: 'chat.completion.chunk',
                created: value.first.created,
                model: value.first.model,
                choices: [],
                usage: withCost(usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, cost),
              };
            }
          } catch (err) {
            if (settled) throw err;
            settled = true;
            let error: ProviderError;
            try {
              error = normalise(err, attempt, signal);
            } catch (gone) {
              abandon(attempt, partialUse());
              tenantSettle(partialUse());
              failRoot(span, gone);
              throw gone;
            }
            fail(attempt, error, true, partialUse());
            tenantSettle(partialUse());
            const apiError = upstreamError(502, `provider ${c.provider} failed mid-stream: ${error.kind}: ${error.message}`, 'stream_interrupted');
            failRoot(span, apiError);
            throw apiError;
          } finally {
            if (!settled) {
              // The consumer stopped early (client went away): stop the upstream call too.
              abandon(attempt, partialUse());
              tenantSettle(partialUse());
              void value.iterator.return?.();
              span.setAttribute('error.type', 'client_gone');
              span.end();
            }
          }
        }

        /** Drops usage from chunks (it is sent once, last, with the cost) and usage-only chunks. */
        function shape(chunk: ChatCompletionChunk): ChatCompletionChunk | undefined {
          if (chunk.usage === undefined || chunk.usage === null) return chunk;
          if (!chunk.choices || chunk.choices.length === 0) return undefined;
          const { usage: _usage, ...rest } = chunk;
          return rest;
        }

        // A consumer that gives up before its first next() still releases the provider's slot.
        const generator = chunks();
        let started = false;
        const iterable: AsyncIterable<ChatCompletionChunk> = {
          [Symbol.asyncIterator]: () => ({
            next: () => {
              started = true;
              return generator.next();
            },
            return: async (v?: unknown) => {
              if (!started) {
                started = true;
                abandon(attempt, partialUse());
                tenantSettle(partialUse());
                void value.iterator.return?.();
                span.setAttribute('error.type', 'client_gone');
                span.end();
              }
              return generator.return(v as undefined);
            },
          }),
        };
        return { provider: c.provider, model: c.model, cache: cached.result, chunks: iterable };
      } catch (err) {
        settleTenant(err instanceof ClientGone ? estimateInputTokens(request) : 0);
        failRoot(span, err);
        throw err;
      }
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
    },
  };
  return core;
}

async function* toAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}

/** Whose call it is, for the cost metrics' `key` and `team` labels. */
type Owner = Pick<LlmCallOptions, 'tenant' | 'team'>;

/** USD rounded to 1e-10 (floating noise off, sub-cent precision kept). */
function roundUsd(usd: number): number {
  return Math.round(usd * 1e10) / 1e10;
}
