/**
 * The kit's cluster client against a password-protected Redis Cluster (every node with
 * `requirepass` and `masterauth`), the way production runs it: the password travels in
 * `REDIS_URL`, the nodes in `REDIS_CLUSTER_NODES`. Every connection the client opens must
 * authenticate: the per-node command connections and the separate pub/sub connection.
 */
import { Writable } from 'node:stream';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templateChangesChannel } from '../../contracts';
import { closeRedis, createLogger, createRedis, readConfig, waitForRedis, type RedisClient } from '../../services/kit';
import { ProviderLimiter } from '../../services/llm/limits';
import { buildProcess } from '../../services/process';
import { KeyRateLimiter } from '../../services/router';
import { waitFor } from '../support/net';
import { uniquePrefix } from '../support/redis';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster';

const PASSWORD = 'cl0sterSecret42';
let cluster: TestRedisCluster;
const clients: RedisClient[] = [];

function client(redisUrl: string, name: string): RedisClient {
  const c = createRedis(readConfig({ REDIS_URL: redisUrl, REDIS_CLUSTER_NODES: cluster.nodesEnv }), name);
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, password: PASSWORD });
}, 60_000);

afterAll(async () => {
  for (const c of clients) await closeRedis(c);
  await cluster?.stop();
});

describe('a password-protected 3-master Redis Cluster', () => {
  it('really requires the password', async () => {
    const out = await cluster.exec(cluster.nodes[0]!.port, 'CONFIG', 'GET', 'requirepass');
    expect(out).toContain(PASSWORD);
    const refused = [
      [`redis://127.0.0.1:${cluster.nodes[0]!.port}`, 'no password'],
      [`redis://:wrong${PASSWORD}@127.0.0.1:${cluster.nodes[0]!.port}`, 'wrong password'],
    ] as const;
    await Promise.all(
      refused.map(async ([url, label]) => {
        const c = client(url, label);
        expect(await waitForRedis(c, 3_000), label).toBe(false);
        await expect(c.get('anything')).rejects.toThrow();
      }),
    );
  });

  it('authenticates every node connection with the password from REDIS_URL: commands, scripts', async () => {
    const c = client(cluster.redisUrl, 'authed');
    expect(await waitForRedis(c, 15_000)).toBe(true);
    const prefix = uniquePrefix('pwclu');
    // Keys on every master: each node connection authenticated.
    const keys = Array.from({ length: 24 }, (_, i) => `${prefix}k${i}`);
    for (const k of keys) await c.set(k, k);
    for (const k of keys) expect(await c.get(k)).toBe(k);
    let masters = 0;
    for (const node of (c as Cluster).nodes('master')) if ((await node.keys(`${prefix}*`)).length > 0) masters++;
    expect(masters).toBe(3);

    // The Lua scripts (EVALSHA, and EVAL after a flush) on the authenticated nodes.
    const limiter = new KeyRateLimiter(c, prefix);
    expect((await limiter.take('k', 1)).allowed).toBe(true);
    for (const node of cluster.nodes) await cluster.exec(node.port, 'SCRIPT', 'FLUSH');
    expect((await limiter.take('k', 1)).allowed).toBe(false);
    const lines: string[] = [];
    const llm = new ProviderLimiter(c, prefix, createLogger('t', 'info', new Writable({ write: (b, _e, cb) => (lines.push(String(b)), cb()) })));
    const p = { name: 'p', type: 'openai' as const, baseUrl: 'http://127.0.0.1:1', timeoutMs: 1, connectTimeoutMs: 1, firstByteTimeoutMs: 1, limits: { rpm: 2 } };
    const decisions = [];
    for (let i = 0; i < 3; i++) decisions.push((await llm.acquire(p, 1)).allowed);
    expect(decisions).toEqual([true, true, false]);
    expect(lines.filter((l) => l.includes('fail open'))).toEqual([]);
  });

  it('authenticates the pub/sub connection too: a change notice reaches a subscriber', async () => {
    const prefix = uniquePrefix('pwsub');
    const channel = templateChangesChannel(prefix);
    const [sub, pub] = [client(cluster.redisUrl, 'sub'), client(cluster.redisUrl, 'pub')];
    expect(await waitForRedis(sub, 15_000)).toBe(true);
    expect(await waitForRedis(pub, 15_000)).toBe(true);
    const received: string[] = [];
    sub.on('message', (ch: string, message: string) => {
      if (ch === channel) received.push(message);
    });
    await sub.subscribe(channel);
    await waitFor(async () => (await pub.publish(channel, 'one')) >= 0 && received.includes('one'), 5_000, 'notice');
    // After the subscriber connection is dropped, the new one authenticates and resubscribes.
    await Promise.all(cluster.nodes.map((n) => cluster.exec(n.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')));
    await waitFor(async () => {
      await pub.publish(channel, 'two');
      return received.includes('two');
    }, 10_000, 'notice after the subscriber reconnected');
  });

  it('serves a service configured the production way (REDIS_URL with the password + REDIS_CLUSTER_NODES)', async () => {
    const prefix = uniquePrefix('pwctx');
    const proc = await buildProcess(
      readConfig({ SERVICE: 'context', REDIS_URL: cluster.redisUrl, REDIS_CLUSTER_NODES: cluster.nodesEnv, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' }),
    );
    try {
      await waitFor(async () => (await proc.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 15_000, 'readyz');
      const res = await proc.app.inject({ method: 'POST', url: '/v1/sessions/pw/messages', payload: { messages: [{ role: 'user', content: 'hi' }] } });
      expect(res.statusCode, res.body).toBe(201);
      const read = await proc.app.inject({ method: 'GET', url: '/v1/sessions/pw/messages' });
      expect(read.json().messages.map((m: { content: string }) => m.content)).toEqual(['hi']);
    } finally {
      await proc.app.close();
    }
  });
});
