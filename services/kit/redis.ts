import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { KitConfig } from './config';

/** A standalone or cluster client; both speak the same command API. */
export type RedisClient = Redis | Cluster;

/**
 * A Redis client made for graceful degradation: while Redis is unreachable, commands fail at
 * once (no offline queue, one retry) instead of piling up, and the client keeps reconnecting in
 * the background. Callers treat a failed command as "no cache / no history", not as a crash.
 */
export function createRedis(config: Pick<KitConfig, 'redisUrl' | 'redisClusterNodes'>, name: string): RedisClient {
  const common: RedisOptions = {
    connectionName: `promptmesh-${name}`,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    commandTimeout: 2_000,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
  };
  if (config.redisClusterNodes && config.redisClusterNodes.length > 0) {
    // Cluster nodes share one password; it travels in REDIS_URL in both modes.
    const url = new URL(config.redisUrl);
    const password = url.password ? decodeURIComponent(url.password) : undefined;
    const username = url.username ? decodeURIComponent(url.username) : undefined;
    return new Cluster(config.redisClusterNodes, {
      enableOfflineQueue: false,
      clusterRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
      redisOptions: { ...common, ...(password ? { password } : {}), ...(username ? { username } : {}), ...(url.protocol === 'rediss:' ? { tls: {} } : {}) },
    });
  }
  return new Redis(config.redisUrl, common);
}

/** Resolves when the client is ready, or false after `timeoutMs` (it keeps trying after). */
export function waitForRedis(client: RedisClient, timeoutMs = 5_000): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve(true);
    };
    client.once('ready', onReady);
  });
}

/** Closes a client without throwing if it is already closed or never connected. */
export async function closeRedis(client: RedisClient): Promise<void> {
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

/**
 * A readiness check that the client is connected, without a round trip (the client notices a
 * lost connection by itself). For Redis a service serves without (see `degradations`).
 */
export function redisConnected(client: RedisClient): () => Promise<void> {
  return async () => {
    if (client.status !== 'ready') throw new Error(`Redis connection is ${client.status}`);
  };
}
