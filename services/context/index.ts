import type { ServiceName } from '../../contracts';
import { closeRedis, createRedis, waitForRedis, type RedisClient, type ServiceContext, type ServiceInstance } from '../kit';
import { checkContextSettings, readContextSettings, type ContextSettings } from './config';
import { createContextMetrics } from './metrics';
import { contextRoutes } from './routes';
import { RedisContextStore, type ContextCore } from './store';
import { o200k } from '../kit/o200k';

export { CONTEXT_ENV, checkContextSettings, readContextSettings, type ContextSettings } from './config';
export { createContextHttpClient, type ContextHttpClientOptions } from './client';
export { CONTEXT_METRICS, createContextMetrics, type ContextMetrics } from './metrics';
export {
  MESSAGE_OVERHEAD_TOKENS,
  STORED_SESSION_ID_PATTERN,
  TURN_START_ROLES,
  countMessageTokens,
  type ContextMessageInput,
  type StoredMessage,
  type TextPart,
  type StoredToolCall,
} from './messages';
export {
  ContextUnavailableError,
  RedisContextStore,
  type AppendResult,
  type ContextCore,
  type ContextReadOptions,
  type ContextWindow,
} from './store';

/** Overrides for {@link createContextService}, mostly for tests and embedding. */
export interface ContextServiceOptions {
  /**
   * The service's settings.
   * @default read from the environment by {@link readContextSettings}
   */
  settings?: ContextSettings;
  /**
   * The environment the settings are read from when `settings` is not given.
   * @default process.env
   */
  env?: Record<string, string | undefined>;
  /**
   * A Redis client to use instead of making one; the service then does not close it.
   * @default `createRedis(ctx.config, 'context')` (standalone or cluster, as configured)
   */
  redis?: RedisClient;
}

/**
 * Builds the context service: conversation history per session in Redis (standalone or
 * cluster), its HTTP API under `/v1/sessions`, and a readiness check that PINGs Redis.
 * Throws a `ConfigError` naming the variable when a `CONTEXT_*` setting is invalid.
 */
export async function createContextService(
  ctx: ServiceContext,
  _peers: ReadonlyMap<ServiceName, ServiceInstance> = new Map(),
  options: ContextServiceOptions = {},
): Promise<ServiceInstance<ContextCore>> {
  const settings = options.settings ? checkContextSettings({ ...options.settings }) : readContextSettings(options.env ?? process.env);
  // Every append counts tokens, so the tokenizer is loaded now rather than by the first append:
  // its load makes tens of MB of garbage, which on a fresh heap is collected before traffic
  // instead of piling onto a heap busy with requests (the process's peak RSS, docs/bench.md).
  o200k();
  const redis = options.redis ?? createRedis(ctx.config, 'context');
  const ownsRedis = options.redis === undefined;
  // Connection errors are expected while Redis is down (requests answer 503 meanwhile); log
  // them at warn once per outage rather than letting an unhandled 'error' event crash us.
  let down = false;
  const onError = (err: Error) => {
    if (!down) ctx.logger.warn({ err: err.message }, 'context: Redis unreachable');
    down = true;
  };
  const onReady = () => {
    if (down) ctx.logger.info('context: Redis reachable again');
    down = false;
  };
  redis.on('error', onError);
  redis.on('ready', onReady);
  // Give a fresh connection a moment so the first requests do not meet a cold client; if
  // Redis is down at start we still start (readiness fails, requests answer 503 until it is back).
  if (ownsRedis && !(await waitForRedis(redis, 2_000))) ctx.logger.warn('context: Redis not reachable at start; retrying in the background');
  const metrics = createContextMetrics(ctx.metrics.registry);
  const core = new RedisContextStore({ redis, keyPrefix: ctx.config.redisKeyPrefix, settings, metrics });
  return {
    name: 'context',
    core,
    routes: contextRoutes(core, settings),
    readiness: {
      redis: async () => {
        await redis.ping();
      },
    },
    async close() {
      redis.off('error', onError);
      redis.off('ready', onReady);
      if (ownsRedis) await closeRedis(redis);
    },
  };
}
