/**
 * The llm service: provider adapters behind one routing core (weighted, priority, least-latency,
 * cheapest), with timeouts, retries that honour Retry-After, fallback, a circuit breaker per
 * provider, cluster-wide rate limits and an exact-match response cache in Redis, and token and
 * cost accounting. See docs/llm.md.
 */
import type { ServiceName } from '../../contracts';
import { closeRedis, createRedis, redisConnected, waitForRedis, type RedisClient } from '../kit/redis';
import { RollingStats, STATS_KINDS } from '../kit/rolling-stats';
import type { ServiceContext, ServiceInstance } from '../kit/service';
import { loadLlmConfig, type LlmConfig } from './config';
import { createLlmCore, type LlmCore } from './core';
import { createLlmMetrics } from './metrics';
import { getAdapter, loadAdapters } from './providers';
import { llmRoutes } from './routes';
import type { ProviderAdapter, ProviderType } from './types';

export type { LlmCallOptions, LlmCompletionResult, LlmCore, LlmStreamResult, ModelInfo, ProviderStatus, CacheResult } from './core';
export type { LlmConfig, ModelTarget, RoutingConfig, RoutingStrategy, BreakerConfig, RetryConfig, CacheConfig } from './config';
export { loadLlmConfig, parseLlmConfig } from './config';
export { COST_HEADER } from './routes';

/** Overrides for tests and embedding; production passes none. */
export interface LlmServiceOptions {
  /** The configuration to use instead of reading `PROVIDERS_FILE`. @default loaded from ctx.config.providersFile */
  config?: LlmConfig;
  /** The adapter lookup. @default the registry of services/llm/providers */
  adapterFor?: (type: ProviderType) => ProviderAdapter;
  /** Randomness for weights and jitter. @default Math.random */
  random?: () => number;
  /** How long start waits for Redis before going on without it. @default 2000 */
  redisWaitMs?: number;
}

/**
 * Builds the llm service. The providers file is read and validated here (a bad one stops the
 * process with a ConfigError naming the file and field); Redis is optional: while it is
 * unreachable the cache is skipped and the limits fail open.
 */
export async function createLlmService(
  ctx: ServiceContext,
  _peers: ReadonlyMap<ServiceName, ServiceInstance> = new Map(),
  options: LlmServiceOptions = {},
): Promise<ServiceInstance<LlmCore>> {
  const config = options.config ?? loadLlmConfig(ctx.config.providersFile);
  // Only the adapters of the configured provider types are loaded (docs/llm.md, "Memory").
  if (!options.adapterFor) await loadAdapters(config.providers.map((p) => p.type));
  const logger = ctx.logger.child({ component: 'llm' });
  const redis: RedisClient = createRedis(ctx.config, 'llm');
  // Connection errors surface through the cache and limiter (logged once per outage there).
  redis.on('error', () => undefined);
  let states: () => Array<{ provider: string; state: 'closed' | 'half-open' | 'open' }> = () => [];
  const metrics = createLlmMetrics(ctx.metrics.registry, () => states());
  const stats = new RollingStats({ redis, keyPrefix: ctx.config.redisKeyPrefix, kind: STATS_KINDS.providers, logger });
  let core;
  try {
    core = createLlmCore({
      config,
      adapterFor: options.adapterFor ?? getAdapter,
      redis,
      keyPrefix: ctx.config.redisKeyPrefix,
      logger,
      metrics,
      tracer: ctx.tracing.tracer,
      random: options.random,
      stats,
    });
  } catch (err) {
    await stats.close();
    await closeRedis(redis);
    throw err;
  }
  states = () => core.breakerStates();
  // Give Redis a moment, so the first requests use the cache and the limits; without it the
  // service starts anyway (degraded) and picks Redis up when it answers.
  if (!(await waitForRedis(redis, options.redisWaitMs ?? 2_000))) {
    logger.warn('llm: Redis is not reachable yet; starting without cache and rate limits until it is');
  }
  logger.info({ source: config.source, providers: config.providers.map((p) => p.name), models: Object.keys(config.models) }, 'llm providers loaded');
  const instance: ServiceInstance<LlmCore> = {
    name: 'llm',
    core,
    routes: llmRoutes(core),
    readiness: {
      // The providers file was loaded and validated at start; Redis is optional (degrades).
      providers: async () => {
        if (config.providers.length === 0) throw new Error('no providers configured');
      },
    },
    // Without Redis: no response cache, no cluster-wide rate limits; completions still work.
    degradations: { redis: redisConnected(redis) },
    async close() {
      await core.close();
      await stats.close();
      await closeRedis(redis);
    },
  };
  return instance;
}
