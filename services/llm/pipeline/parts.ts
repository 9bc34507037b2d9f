import type { Logger } from '../../kit/logger';
import type { RedisClient } from '../../kit/redis';
import type { RollingStats } from '../../kit/rolling-stats';
import type { Tracer } from '../../kit/tracing';
import { CircuitBreaker } from '../breaker';
import { ResponseCache } from '../cache';
import type { LlmConfig } from '../config';
import { ProviderLimiter } from '../limits';
import type { LlmMetrics } from '../metrics';
import { LatencyTracker } from '../routing';
import { SecretScrubber } from '../secret-scrubber';
import type { ProviderAdapter, ProviderConfig, ProviderType } from '../types';

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

/**
 * The state the stages share, built once per core: per-provider breakers and adapters, the
 * latency estimates, the limiter and the cache. The core reads it too (`GET /v1/providers`).
 */
export interface PipelineParts {
  readonly config: LlmConfig;
  readonly providers: ReadonlyMap<string, ProviderConfig>;
  readonly adapters: ReadonlyMap<string, ProviderAdapter>;
  readonly breakers: ReadonlyMap<string, CircuitBreaker>;
  readonly latency: LatencyTracker;
  readonly limiter: ProviderLimiter;
  readonly cache: ResponseCache;
  /** Provider text (error bodies and events) may echo our credentials: scrubbed before it leaves the service or reaches a log or span. */
  readonly scrubber: SecretScrubber;
  readonly metrics: LlmMetrics;
  readonly tracer: Tracer;
  readonly logger: Logger;
  readonly random: () => number;
  readonly stats?: RollingStats;
}

/** Builds the shared state. Adapters are looked up once per provider, so a missing one fails at start. */
export function createPipelineParts(deps: LlmCoreDeps): PipelineParts {
  const { config, logger } = deps;
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
  return {
    config,
    providers: new Map(config.providers.map((p) => [p.name, p])),
    adapters,
    breakers,
    latency: new LatencyTracker(),
    limiter: new ProviderLimiter(deps.redis, deps.keyPrefix, logger),
    cache: new ResponseCache(deps.redis, deps.keyPrefix, config.cache.ttlSeconds, logger),
    scrubber: SecretScrubber.forProviders(config.providers),
    metrics: deps.metrics,
    tracer: deps.tracer,
    logger,
    random: deps.random ?? Math.random,
    stats: deps.stats,
  };
}
