import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from 'ioredis';
import { closeRedis, createRedis, readConfig, waitForRedis, type RedisClient } from '../kit';
import { buildProcess } from '../process';
import { waitFor } from '../../test/support/net';
import { uniquePrefix } from '../../test/support/redis';
import { startRedisCluster, type TestRedisCluster } from '../../test/support/redis-cluster';
import { describeContextCore } from '../../test/support/context-core-suite';

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

describe('context service configured with REDIS_CLUSTER_NODES', () => {
  it('serves the HTTP API on the cluster, ready when the cluster answers', async () => {
    const prefix = uniquePrefix('ctxclu');
    const proc = await buildProcess(readConfig({ SERVICE: 'context', REDIS_CLUSTER_NODES: cluster.nodesEnv, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' }));
    try {
      await waitFor(async () => (await proc.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 15_000, 'readyz');
      // Sessions spread over the masters; each one's keys stay in one slot.
      for (let i = 0; i < 12; i++) {
        const res = await proc.app.inject({
          method: 'POST',
          url: `/v1/sessions/cluster-${i}/messages`,
          payload: { messages: [{ id: 'a', role: 'user', content: `hi ${i}` }, { id: 'b', role: 'assistant', content: 'hello' }] },
        });
        expect(res.statusCode, res.body).toBe(201);
        const again = await proc.app.inject({ method: 'POST', url: `/v1/sessions/cluster-${i}/messages`, payload: { messages: [{ id: 'b', role: 'assistant', content: 'hello' }] } });
        expect(again.json().duplicates).toEqual(['b']);
        // A window starts at a turn (a user message), never at the assistant's answer alone.
        const read = await proc.app.inject({ method: 'GET', url: `/v1/sessions/cluster-${i}/messages?max_messages=2` });
        expect(read.json().messages.map((m: { content: string }) => m.content)).toEqual([`hi ${i}`, 'hello']);
      }
      // The sessions really landed on more than one master, each with all three keys together.
      const probe = createRedis({ redisUrl: 'redis://unused', redisClusterNodes: cluster.nodes }, 'probe');
      try {
        expect(await waitForRedis(probe, 15_000)).toBe(true);
        let mastersWithKeys = 0;
        for (const node of (probe as Cluster).nodes('master')) {
          const keys = await node.keys(`${prefix}*`);
          if (keys.length > 0) mastersWithKeys++;
          expect(keys.length % 3).toBe(0);
        }
        expect(mastersWithKeys).toBeGreaterThan(1);
      } finally {
        await closeRedis(probe);
      }
      for (let i = 0; i < 12; i++) {
        expect((await proc.app.inject({ method: 'DELETE', url: `/v1/sessions/cluster-${i}` })).statusCode).toBe(204);
        expect((await proc.app.inject({ method: 'GET', url: `/v1/sessions/cluster-${i}/messages` })).json().total_messages).toBe(0);
      }
    } finally {
      await proc.app.close();
    }
  });
});
