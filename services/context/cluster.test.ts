import { afterAll, beforeAll } from 'vitest';
import type { Cluster } from 'ioredis';
import { createRedis, type RedisClient } from '../kit';
import { startRedisCluster, type TestRedisCluster } from '../../test/support/redis-cluster';
import { describeContextCore } from './core.suite';

// One real three-master cluster for the whole file.
let cluster: TestRedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 });
});
afterAll(async () => {
  await cluster?.stop();
});

async function deleteEverywhere(client: RedisClient, prefix: string): Promise<void> {
  for (const node of (client as Cluster).nodes('master')) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      // Keys on one node may span slots; delete one by one.
      for (const key of keys) await node.unlink(key);
    } while (cursor !== '0');
  }
}

describeContextCore('a 3-master Redis Cluster', () => ({
  connect: () => createRedis({ redisUrl: 'redis://unused', redisClusterNodes: cluster.nodes }, 'context-cluster-test'),
  cleanup: deleteEverywhere,
}));
