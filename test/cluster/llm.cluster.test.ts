/**
 * The llm service's Redis users on a real local Redis Cluster (three masters): the rate limits
 * (one Lua script over two keys per check) and the response cache, shared by two llm instances
 * configured the production way (`REDIS_CLUSTER_NODES` + `REDIS_URL`), called over real sockets.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, createRedis, readConfig, waitForRedis } from '../../services/kit';
import { buildProcess, type PromptmeshProcess } from '../../services/process';
import { ask, chat, fakeOpenAi, metricValue } from '../support/llm-service';
import { startFakeProvider, type FakeProvider } from '../fake-provider/server';
import { waitFor } from '../support/net';
import { uniquePrefix } from '../support/redis';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster';

let cluster: TestRedisCluster;
let fa: FakeProvider;
let probe: Cluster;
let dir: string;
const prefix = uniquePrefix('llmclu');
const instances: Array<{ proc: PromptmeshProcess; url: string }> = [];

// rpm: 12 requests in a burst. tpm: 1000 tokens; each request below estimates ~400, so two fit
// and the third does not unless 12 s of refill passed.
const PROVIDERS = (url: string) => ({
  providers: [
    fakeOpenAi('rpm-a', url, { limits: { rpm: 12 } }),
    fakeOpenAi('tpm-b', url, { limits: { rpm: 1000, tpm: 1000 } }),
    fakeOpenAi('cache-c', url),
  ],
  models: {
    limited: [{ provider: 'rpm-a', model: 'gpt-4o-mini' }],
    tokens: [{ provider: 'tpm-b', model: 'gpt-4o-mini' }],
    cached: [{ provider: 'cache-c', model: 'gpt-4o-mini' }],
  },
});

async function startLlmOnCluster(): Promise<{ proc: PromptmeshProcess; url: string }> {
  const proc = await buildProcess(
    readConfig({
      SERVICE: 'llm',
      HOST: '127.0.0.1',
      PORT: '0',
      REDIS_URL: cluster.redisUrl,
      REDIS_CLUSTER_NODES: cluster.nodesEnv,
      REDIS_KEY_PREFIX: prefix,
      PROVIDERS_FILE: join(dir, 'providers.json'),
      LOG_LEVEL: 'silent',
      DRAIN_DELAY_MS: '0',
    }),
  );
  const url = await proc.app.listen({ port: 0, host: '127.0.0.1' });
  const instance = { proc, url };
  instances.push(instance);
  await waitFor(async () => (await request(`${url}/readyz`)).statusCode === 200, 15_000, 'llm readyz');
  return instance;
}

/** Every key under the test prefix, per master port. */
async function keysByMaster(): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const node of probe.nodes('master')) out.set(node.options.port!, await node.keys(`${prefix}*`));
  return out;
}

beforeAll(async () => {
  [cluster, fa] = await Promise.all([startRedisCluster({ masters: 3 }), startFakeProvider()]);
  dir = mkdtempSync(join(tmpdir(), 'pm-llm-cluster-'));
  writeFileSync(join(dir, 'providers.json'), JSON.stringify(PROVIDERS(fa.url)));
  probe = createRedis({ redisUrl: cluster.redisUrl, redisClusterNodes: cluster.nodes }, 'probe') as Cluster;
  probe.on('error', () => undefined);
  expect(await waitForRedis(probe, 15_000)).toBe(true);
  await startLlmOnCluster();
  await startLlmOnCluster();
}, 60_000);

afterAll(async () => {
  for (const { proc } of instances) await proc.app.close();
  if (probe) await closeRedis(probe);
  await fa?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('llm rate limits on a 3-master Redis Cluster', () => {
  it('holds one rpm budget across two llm instances sharing the cluster', async () => {
    fa.reset();
    const [a, b] = instances;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 36 }, (_, i) => chat((i % 2 ? a : b)!.url, ask('limited', `r${i}`))));
    const refill = Math.ceil(((Date.now() - started) / 60_000) * 12);
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    // Failing open (a script error on the cluster) would let all 36 through.
    expect(ok.length).toBeGreaterThanOrEqual(12);
    expect(ok.length).toBeLessThanOrEqual(12 + refill);
    expect(ok.length + limited.length).toBe(36);
    expect(limited[0]!.json.error.message).toContain('12 rpm');
    expect(Number(limited[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(fa.stats.requests).toBe(ok.length);
    expect(new Set(results.map((r, i) => (r.status === 200 ? i % 2 : -1)).filter((x) => x >= 0)).size).toBe(2);
  });

  it('checks rpm and tpm atomically in one slot, and keeps the keys under the prefix', async () => {
    fa.reset();
    // Each answer really uses its 390 output tokens, so what was reserved stays spent after the
    // reservation is settled against the usage (a smaller answer would be refunded).
    fa.setBehavior({ reply: { tokens: 390 } });
    const [a, b] = instances;
    const body = (i: number) => ask('tokens', `t${i}`, { max_tokens: 390 });
    expect((await chat(a!.url, body(1))).status).toBe(200);
    expect((await chat(b!.url, body(2))).status).toBe(200);
    const third = await chat(a!.url, body(3));
    expect(third.status).toBe(429);
    expect(third.json.error.message).toContain('1000 tpm');
    expect(fa.stats.requests).toBe(2);

    // Both buckets of the provider exist, in one slot, under the prefix.
    const rpmKey = `${prefix}llm:limit:{tpm-b}:rpm`;
    const tpmKey = `${prefix}llm:limit:{tpm-b}:tpm`;
    expect(await probe.exists(rpmKey, tpmKey)).toBe(2);
    expect(await probe.cluster('KEYSLOT', rpmKey)).toBe(await probe.cluster('KEYSLOT', tpmKey));
    const all = [...(await keysByMaster()).values()].flat();
    expect(all.every((k) => k.startsWith(prefix))).toBe(true);
  });

  it('keeps enforcing after the script cache is flushed on every node (NOSCRIPT -> EVAL)', async () => {
    fa.reset();
    for (const node of cluster.nodes) expect((await cluster.exec(node.port, 'SCRIPT', 'FLUSH')).trim()).toBe('OK');
    const [a, b] = instances;
    // Both providers are still exhausted: a limiter failing on NOSCRIPT would fail open (200).
    const r1 = await chat(a!.url, ask('tokens', 'after flush', { max_tokens: 390 }));
    const r2 = await chat(b!.url, ask('limited', 'after flush'));
    expect([r1.status, r2.status]).toEqual([429, 429]);
    expect(fa.stats.requests).toBe(0);
    // The fallback loaded the script again on the nodes that own the buckets.
    const scripts = await Promise.all(cluster.nodes.map((n) => cluster.exec(n.port, 'INFO', 'memory')));
    expect(scripts.some((info) => /number_of_cached_scripts:[1-9]/.test(info))).toBe(true);
  });
});

describe('llm response cache on a 3-master Redis Cluster', () => {
  it('misses on one instance, then hits on the other; entries spread over the masters', async () => {
    fa.reset();
    const [a, b] = instances;
    const questions = Array.from({ length: 12 }, (_, i) => ask('cached', `question ${i}`, { temperature: 0 }));
    for (const q of questions) {
      const first = await chat(a!.url, q, { 'x-promptmesh-tenant': 'tenant-1' });
      expect(first.status).toBe(200);
      expect(first.headers['x-promptmesh-cache']).toBe('miss');
      const second = await chat(b!.url, q, { 'x-promptmesh-tenant': 'tenant-1' });
      expect(second.headers['x-promptmesh-cache']).toBe('hit');
      expect(second.json.choices).toEqual(first.json.choices);
    }
    expect(fa.stats.requests).toBe(12);
    // Another tenant does not see them.
    expect((await chat(b!.url, questions[0]!, { 'x-promptmesh-tenant': 'tenant-2' })).headers['x-promptmesh-cache']).toBe('miss');

    const byMaster = await keysByMaster();
    const cacheKeys = [...byMaster.values()].flat().filter((k) => k.startsWith(`${prefix}llm:cache:`));
    expect(cacheKeys).toHaveLength(13);
    const mastersWithEntries = [...byMaster.values()].filter((keys) => keys.some((k) => k.startsWith(`${prefix}llm:cache:`))).length;
    expect(mastersWithEntries).toBeGreaterThan(1);

    const metricsB = await (await request(`${b!.url}/metrics`)).body.text();
    expect(metricValue(metricsB, 'promptmesh_cache_requests_total', { result: 'hit' })).toBe(12);
    expect(metricValue(metricsB, 'promptmesh_cache_requests_total', { result: 'error' }) ?? 0).toBe(0);
  });
});
