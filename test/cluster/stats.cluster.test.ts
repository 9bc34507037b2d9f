/**
 * The console's rolling aggregates on a real Redis Cluster: one flush holding many groups (many
 * slots) lands, and every group reads back in one pipeline from its slot's node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, createLogger, createRedis, waitForRedis, type RedisClient } from '../../services/kit';
import { RollingStats } from '../../services/kit/rolling-stats';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster';

let cluster: TestRedisCluster;
let redis: RedisClient;

beforeAll(async () => {
  cluster = await startRedisCluster();
  redis = createRedis({ redisUrl: cluster.redisUrl, redisClusterNodes: cluster.nodes }, 'stats-test');
  redis.on('error', () => undefined);
  expect(await waitForRedis(redis, 20_000)).toBe(true);
});

afterAll(async () => {
  if (redis) await closeRedis(redis);
  await cluster?.stop();
});

describe('rolling stats on a Redis Cluster', () => {
  it('flushes many groups at once and reads each back', async () => {
    const writer = new RollingStats({ redis, keyPrefix: 'pm:', kind: 'prompts', logger: createLogger('test', 'silent'), flushIntervalMs: 60_000 });
    const groups = Array.from({ length: 20 }, (_, i) => `prompt-${i}`);
    groups.forEach((g, i) => {
      for (let n = 0; n <= i; n++) writer.record(g, '1', { latencyMs: 10 * n, error: n === 0, costUsd: 0.001 });
    });
    await writer.flush();
    for (const [i, g] of groups.entries()) {
      const window = await writer.read(g);
      expect(window.series, g).toHaveLength(1);
      expect(window.series[0]!.requests, g).toBe(i + 1);
      expect(window.series[0]!.errors, g).toBe(1);
      expect(window.series[0]!.cost_usd, g).toBeCloseTo((i + 1) * 0.001, 9);
    }
    await writer.close();
  });
});
