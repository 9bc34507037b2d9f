/**
 * The router's Redis users on a real local Redis Cluster (three masters): the per-key rate limit
 * (one Lua script per check) shared by two limiters, the ledger's one-script admission (rpm,
 * budgets and concurrency of a key and its team under one hash tag), and the template change
 * notices end to end: the templates service (its own process wiring, Postgres,
 * REDIS_CLUSTER_NODES) publishes, the router's cluster-aware subscriber receives, and the
 * router's template cache updates. The
 * router's reconcile loop is set to ten minutes here, so only a pushed notice can update it in
 * time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { templateChangesChannel } from '../../contracts';
import { closeRedis, createLogger, createMetrics, createTracing, createRedis, readConfig, waitForRedis, type RedisClient, type ServiceInstance } from '../../services/kit';
import { buildProcess, type PromptmeshProcess } from '../../services/process';
import pg from 'pg';
import { createRouterService, hashApiKey, KeyRateLimiter, type RouterCore } from '../../services/router';
import { Ledger, RateRefusal, ROUTER_MIGRATIONS_DIR, ROUTER_MIGRATIONS_TABLE, ROUTER_MIGRATION_LOCK_KEY, type RateScope } from '../../services/router/keys';
import type { BudgetScope } from '../../services/router/keys/ledger';
import { migrate } from '../../services/templates/migrate';
import { callTemplates, startTemplates, type RunningTemplates } from '../support/templates-service';
import { waitFor } from '../support/net';
import { uniquePrefix } from '../support/redis';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster';

let cluster: TestRedisCluster;
const clients: RedisClient[] = [];

function clusterClient(name: string): RedisClient {
  const client = createRedis({ redisUrl: cluster.redisUrl, redisClusterNodes: cluster.nodes }, name);
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 });
}, 60_000);

afterAll(async () => {
  for (const c of clients) await closeRedis(c);
  await cluster?.stop();
});

describe('router key rate limit on a 3-master Redis Cluster', () => {
  it('holds one rpm budget per key across two limiters, keys spread over the masters', async () => {
    const prefix = uniquePrefix('rtrclu');
    const [ra, rb] = [clusterClient('router-a'), clusterClient('router-b')];
    expect(await waitForRedis(ra, 15_000)).toBe(true);
    expect(await waitForRedis(rb, 15_000)).toBe(true);
    const [a, b] = [new KeyRateLimiter(ra, prefix), new KeyRateLimiter(rb, prefix)];
    const ids = Array.from({ length: 6 }, (_, i) => `key-${i}`);
    const started = Date.now();
    const decisions = await Promise.all(ids.flatMap((id) => Array.from({ length: 15 }, (_, i) => (i % 2 ? a : b).take(id, 5).then((d) => ({ id, d })))));
    const refill = Math.ceil(((Date.now() - started) / 60_000) * 5);
    for (const id of ids) {
      const mine = decisions.filter((x) => x.id === id).map((x) => x.d);
      const allowed = mine.filter((d) => d.allowed).length;
      expect(allowed).toBeGreaterThanOrEqual(5);
      expect(allowed).toBeLessThanOrEqual(5 + refill);
      const refused = mine.find((d) => !d.allowed)!;
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(12_000);
    }
    // One key per API key id, under the prefix, on more than one master.
    let masters = 0;
    let total = 0;
    for (const node of (ra as Cluster).nodes('master')) {
      const keys = await node.keys(`${prefix}*`);
      expect(keys.every((k) => /^.+router:rpm:\{key-\d\}$/.test(k) && k.startsWith(prefix))).toBe(true);
      total += keys.length;
      if (keys.length > 0) masters++;
    }
    expect(total).toBe(ids.length);
    expect(masters).toBeGreaterThan(1);

    // With the script cache flushed on every node, the limiters fall back to EVAL and still refuse.
    for (const node of cluster.nodes) await cluster.exec(node.port, 'SCRIPT', 'FLUSH');
    const after = await Promise.all(ids.map((id) => a.take(id, 5)));
    expect(after.every((d) => !d.allowed)).toBe(true);
    expect((await b.take('fresh-key', 5)).allowed).toBe(true);
  });
});

describe('template change notices through a 3-master Redis Cluster', () => {
  let templates: RunningTemplates;
  let router: ServiceInstance<RouterCore>;
  const crashed = new Set<number>();

  beforeAll(async () => {
    templates = await startTemplates({ label: 'tplclu', env: { REDIS_URL: cluster.redisUrl, REDIS_CLUSTER_NODES: cluster.nodesEnv } });
    const config = readConfig({
      SERVICE: 'router',
      REDIS_URL: cluster.redisUrl,
      REDIS_CLUSTER_NODES: cluster.nodesEnv,
      REDIS_KEY_PREFIX: templates.prefix,
      TEMPLATES_URL: templates.url,
      // Never called here: the test reads the router's template cache.
      CONTEXT_URL: 'http://127.0.0.1:9',
      LLM_URL: 'http://127.0.0.1:9',
      LOG_LEVEL: 'silent',
    });
    const ctx = { config, logger: createLogger('router', 'silent'), metrics: createMetrics({ defaultMetrics: false }), tracing: createTracing('router', undefined) };
    router = await createRouterService(ctx, new Map(), { reconcileIntervalMs: 600_000 });
  }, 60_000);

  afterAll(async () => {
    await router?.close();
    await templates?.close();
  });

  const call = (method: string, path: string, body?: unknown) => callTemplates(templates.url, method, path, body);

  /** Subscribers of the change channel, summed over the nodes (PUBSUB NUMSUB is per node). */
  async function subscribers(): Promise<number> {
    let n = 0;
    for (const node of cluster.nodes) {
      if (crashed.has(node.port)) continue;
      const out = await cluster.exec(node.port, 'PUBSUB', 'NUMSUB', templateChangesChannel(templates.prefix));
      n += Number(out.trim().split('\n')[1] ?? 0);
    }
    return n;
  }

  /** Moves `production` and returns how long the router took to resolve the new version (ms). */
  async function moveAndWait(name: string, version: number): Promise<number> {
    await call('PUT', `/v1/templates/${name}/labels/production`, { version });
    const moved = Date.now();
    await waitFor(async () => (await router.core.templates.resolve(name, {})).version === version, 5_000, `router sees ${name} v${version}`);
    return Date.now() - moved;
  }

  it('a label move published by the templates service reaches the router cache at once', async () => {
    expect(await subscribers()).toBe(1);
    await call('POST', '/v1/templates', { name: 'greet', type: 'text', template: 'hello v1' });
    expect((await router.core.templates.resolve('greet', {})).version).toBe(1);
    await call('POST', '/v1/templates/greet/versions', { type: 'text', template: 'hello v2' });
    const ms = await moveAndWait('greet', 2);
    // Generous on a shared machine; the reconcile loop (10 min here) cannot be what delivered it.
    expect(ms).toBeLessThan(5_000);
    const publishFailures = await templates.process.context.metrics.registry.getSingleMetricAsString('promptmesh_template_publish_failures_total');
    expect(publishFailures).toMatch(/promptmesh_template_publish_failures_total 0/);
  });

  it('resubscribes after the subscriber connection is dropped, and notices flow again', async () => {
    const before = (await Promise.all(cluster.nodes.map((n) => cluster.exec(n.port, 'CLIENT', 'LIST', 'TYPE', 'pubsub')))).join('');
    const killed = await Promise.all(cluster.nodes.map((n) => cluster.exec(n.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')));
    // Normally exactly one; ioredis may briefly hold a second one while it re-selects a node.
    expect(killed.reduce((sum, out) => sum + Number(out.trim()), 0), before).toBeGreaterThanOrEqual(1);
    // The cluster client picks a node again and subscribes the channel there by itself.
    await waitFor(async () => (await subscribers()) === 1, 10_000, 'resubscribed');
    expect(await moveAndWait('greet', 1)).toBeLessThan(5_000);
  });

  it('a change published while the templates service reconnects to the cluster still arrives', async () => {
    // Drop only the publisher's connections (the subscriber stays), then change at once: the
    // publish meets a client that is reconnecting and must wait for it rather than be lost.
    let dropped = 0;
    for (const node of cluster.nodes) {
      const list = await cluster.exec(node.port, 'CLIENT', 'LIST', 'TYPE', 'normal');
      for (const line of list.split('\n').filter((l) => / name=promptmesh-templates /.test(l))) {
        await cluster.exec(node.port, 'CLIENT', 'KILL', 'ID', /^id=(\d+)/.exec(line)![1]!);
        dropped++;
      }
    }
    expect(dropped).toBeGreaterThan(0);
    expect(await moveAndWait('greet', 2)).toBeLessThan(5_000);
    const failures = await templates.process.context.metrics.registry.getSingleMetricAsString('promptmesh_template_publish_failures_total');
    expect(failures).toMatch(/promptmesh_template_publish_failures_total 0/);
  });

  it('keeps working when every connection to the cluster is dropped (publisher and subscriber)', async () => {
    await Promise.all(cluster.nodes.map((n) => cluster.exec(n.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')));
    await Promise.all(cluster.nodes.map((n) => cluster.exec(n.port, 'CLIENT', 'KILL', 'TYPE', 'normal')));
    await waitFor(async () => (await subscribers()) === 1, 10_000, 'resubscribed');
    expect(await moveAndWait('greet', 1)).toBeLessThan(5_000);
  });

  it('two router processes enforce one API key rpm (API_KEYS_FILE) through the auth hook on the cluster', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-router-cluster-'));
    const keysFile = join(dir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ keys: [{ id: 'team-a', sha256: hashApiKey('sk-team-a'), scopes: ['invoke'], rpm: 4 }] }));
    const prefix = uniquePrefix('rtrkeys');
    const routers: PromptmeshProcess[] = [];
    try {
      const urls: string[] = [];
      for (let i = 0; i < 2; i++) {
        const proc = await buildProcess(
          readConfig({
            SERVICE: 'router',
            HOST: '127.0.0.1',
            PORT: '0',
            REDIS_URL: cluster.redisUrl,
            REDIS_CLUSTER_NODES: cluster.nodesEnv,
            REDIS_KEY_PREFIX: prefix,
            TEMPLATES_URL: templates.url,
            CONTEXT_URL: 'http://127.0.0.1:9',
            LLM_URL: 'http://127.0.0.1:9',
            API_KEYS_FILE: keysFile,
            // With keys the router keeps virtual keys and spend in PostgreSQL (docs/keys.md).
            DATABASE_URL: templates.db.url,
            LOG_LEVEL: 'silent',
            DRAIN_DELAY_MS: '0',
          }),
        );
        routers.push(proc);
        urls.push(await proc.app.listen({ port: 0, host: '127.0.0.1' }));
      }
      const started = Date.now();
      const results = [];
      for (let i = 0; i < 12; i++) {
        const res = await request(`${urls[i % 2]}/v1/models`, { headers: { authorization: 'Bearer sk-team-a' } });
        results.push({ status: res.statusCode, degraded: res.headers['x-promptmesh-degraded'], retryAfter: res.headers['retry-after'], body: await res.body.text() });
      }
      const refill = Math.ceil(((Date.now() - started) / 60_000) * 4);
      // Allowed ones go on to the (absent) llm service and fail there; the limit answers 429.
      const limited = results.filter((r) => r.status === 429);
      expect(12 - limited.length).toBeGreaterThanOrEqual(4);
      expect(12 - limited.length).toBeLessThanOrEqual(4 + refill);
      expect(limited[0]!.body).toContain("API key 'team-a' is over its limit of 4 requests per minute");
      expect(Number(limited[0]!.retryAfter)).toBeGreaterThanOrEqual(1);
      // The limiter really ran on the cluster (failing open would mark the answers degraded).
      expect(results.filter((r) => String(r.degraded ?? '').includes('rate-limit'))).toEqual([]);
      const probe = clusterClient('probe-keys');
      expect(await waitForRedis(probe, 15_000)).toBe(true);
      // With virtual keys on, the rpm is taken by the ledger's one admission script, under its hash tag.
      expect(await probe.exists(`${prefix}budget:{budget}:rpm:k:team-a`)).toBe(1);
    } finally {
      for (const proc of routers) await proc.app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the ledger admits in one script on the cluster: a key\'s and its team\'s rpm, budgets and concurrency, seeded from PostgreSQL', async () => {
    const pool = new pg.Pool({ connectionString: templates.db.url, max: 2 });
    const ledgerRedis = clusterClient('router-ledger');
    expect(await waitForRedis(ledgerRedis, 15_000)).toBe(true);
    const ledger = new Ledger({ redis: ledgerRedis, pool, keyPrefix: uniquePrefix('rtrledger'), logger: createLogger('test', 'silent'), flushIntervalMs: 60_000 });
    try {
      await migrate(pool, { dir: ROUTER_MIGRATIONS_DIR, table: ROUTER_MIGRATIONS_TABLE, lockKey: ROUTER_MIGRATION_LOCK_KEY });
      const scopes: BudgetScope[] = [
        { kind: 'key', id: 'k-clu', maxConcurrent: 1, budget: { microUsd: 1_000, period: 'day' } },
        { kind: 'team', id: 't-clu', budget: { microUsd: 5_000, period: 'month' } },
      ];
      const rates: RateScope[] = [
        { kind: 'key', id: 'k-clu', rpm: 2 },
        { kind: 'team', id: 't-clu', rpm: 100 },
      ];
      const usage = (microUsd: number) => ({ provider: 'p', model: 'm', microUsd, inputTokens: 1, cachedInputTokens: 0, outputTokens: 1, cacheHit: false });
      // The first admission finds no epoch, seeds the totals from PostgreSQL, then admits.
      const a = await ledger.admitRequest('k-clu', scopes, rates);
      expect(a.degraded).toEqual([]);
      expect(a.lease).toBeDefined();
      await expect(ledger.admitRequest('k-clu', scopes, [])).rejects.toMatchObject({ reason: 'concurrency' });
      await ledger.settle(a.lease, 'k-clu', 't-clu', usage(400));
      const b = await ledger.admitRequest('k-clu', scopes, rates);
      await ledger.settle(b.lease, 'k-clu', 't-clu', usage(700));
      await expect(ledger.admitRequest('k-clu', scopes, [])).rejects.toMatchObject({ reason: 'budget' });
      // The key's third request in the minute: its rpm answers first.
      await expect(ledger.admitRequest('k-clu', scopes, rates)).rejects.toBeInstanceOf(RateRefusal);
      expect(await ledger.spent([{ kind: 'key', id: 'k-clu', period: 'day' }, { kind: 'team', id: 't-clu', period: 'month' }])).toEqual([1_100, 1_100]);
    } finally {
      await ledger.close();
      await pool.end();
    }
  });

  it('large limits are admitted locally on the cluster: leased rpm and a budget block under the ledger hash tag, charged exactly', async () => {
    const pool = new pg.Pool({ connectionString: templates.db.url, max: 2 });
    const ledgerRedis = clusterClient('router-ledger-local');
    expect(await waitForRedis(ledgerRedis, 15_000)).toBe(true);
    const prefix = uniquePrefix('rtrlocal');
    const ledger = new Ledger({ redis: ledgerRedis, pool, keyPrefix: prefix, logger: createLogger('test', 'silent'), flushIntervalMs: 60_000 });
    try {
      await migrate(pool, { dir: ROUTER_MIGRATIONS_DIR, table: ROUTER_MIGRATIONS_TABLE, lockKey: ROUTER_MIGRATION_LOCK_KEY });
      const scopes: BudgetScope[] = [{ kind: 'key', id: 'k-loc', maxConcurrent: 640, budget: { microUsd: 10_000_000, period: 'day' } }];
      const rates: RateScope[] = [{ kind: 'key', id: 'k-loc', rpm: 60_000 }];
      const usage = (microUsd: number) => ({ provider: 'p', model: 'm', microUsd, inputTokens: 1, cachedInputTokens: 0, outputTokens: 1, cacheHit: false });
      // The first call sets the key's estimate (and starts the rpm lease); a block follows.
      const first = await ledger.admitRequest('k-loc', scopes, rates);
      await ledger.settle(first.lease, 'k-loc', undefined, usage(100));
      await new Promise((r) => setTimeout(r, 1_100));
      await ledger.settle((await ledger.admitRequest('k-loc', scopes, rates)).lease, 'k-loc', undefined, usage(100));
      const probe = clusterClient('probe-local');
      expect(await waitForRedis(probe, 15_000)).toBe(true);
      const inflight = `${prefix}budget:{budget}:inflight:k:k-loc`;
      await waitFor(async () => (await probe.zrange(inflight, 0, -1)).some((m) => /\|\d+s\|\d+$/.test(m)), 5_000, 'a block in the in-flight set');
      const leases = await Promise.all(Array.from({ length: 20 }, () => ledger.admitRequest('k-loc', scopes, rates)));
      await Promise.all(leases.map((l) => ledger.settle(l.lease, 'k-loc', undefined, usage(100))));
      expect(await ledger.spent([{ kind: 'key', id: 'k-loc', period: 'day' }])).toEqual([22 * 100]);
      expect(await probe.exists(`${prefix}budget:{budget}:rpm:k:k-loc`)).toBe(1);
    } finally {
      await ledger.close();
      await pool.end();
    }
  });

  // Last: it leaves the cluster with a dead master.
  it('resubscribes on another node when the node holding the subscription crashes', async () => {
    let subscribedOn: number | undefined;
    for (const node of cluster.nodes) {
      if ((await cluster.exec(node.port, 'CLIENT', 'LIST', 'TYPE', 'pubsub')).includes('name=ioredis-cluster(subscriber)')) subscribedOn = node.port;
    }
    expect(subscribedOn).toBeDefined();
    await cluster.killNode(subscribedOn!);
    crashed.add(subscribedOn!);
    await waitFor(async () => (await subscribers()) === 1, 10_000, 'resubscribed on a live node');
    expect(await moveAndWait('greet', 2)).toBeLessThan(5_000);
  });
});
