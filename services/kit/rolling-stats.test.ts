import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../test/support/redis';
import { createLogger } from './logger';
import { LATENCY_BUCKETS_MS, RollingStats, STATS_WINDOW_MINUTES } from './rolling-stats';

const logger = createLogger('test', 'silent');
const prefixes: string[] = [];
const clients: Redis[] = [];

function client(url = TEST_REDIS_URL): Redis {
  const reachable = url === TEST_REDIS_URL;
  const c = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: reachable, retryStrategy: () => null });
  c.on('error', () => undefined);
  clients.push(c);
  return c;
}

function stats(prefix: string, now: () => number, redis = client()): RollingStats {
  return new RollingStats({ redis, keyPrefix: prefix, kind: 'prompts', logger, flushIntervalMs: 60_000, now });
}

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const p of prefixes) await deletePrefix(p);
});

describe('RollingStats', () => {
  it('two replicas writing the same group read the same figures', async () => {
    const prefix = uniquePrefix('stats');
    prefixes.push(prefix);
    const t0 = Date.UTC(2026, 0, 1, 12, 0, 30);
    let now = t0;
    const a = stats(prefix, () => now);
    const b = stats(prefix, () => now);
    a.record('greet', '1', { latencyMs: 20, error: false, costUsd: 0.000001 });
    a.record('greet', '1', { latencyMs: 400, error: true });
    b.record('greet', '1', { latencyMs: 40, error: false, costUsd: 0.000002 });
    b.record('greet', '2', { latencyMs: 45_000, error: false });
    now = t0 + 60_000; // the next minute
    b.record('greet', '1', { latencyMs: 90, error: false, costUsd: 0.1 });
    await Promise.all([a.flush(), b.flush()]);

    const [ra, rb] = await Promise.all([a.read('greet'), b.read('greet')]);
    expect(ra).toEqual(rb);
    expect(ra.series.map((s) => s.series)).toEqual(['1', '2']);
    const v1 = ra.series[0]!;
    expect(v1.requests).toBe(4);
    expect(v1.errors).toBe(1);
    expect(v1.error_rate).toBe(0.25);
    // Integer nano-USD: no floating drift.
    expect(v1.cost_usd).toBe(0.100003);
    expect(v1.latency_ms.mean).toBe((20 + 400 + 40 + 90) / 4);
    expect(v1.latency_ms.p50).toBe(50);
    expect(v1.latency_ms.p99).toBe(500);
    expect(v1.points).toHaveLength(STATS_WINDOW_MINUTES);
    expect(v1.points.at(-1)).toMatchObject({ requests: 1, cost_usd: 0.1, latency_ms_mean: 90 });
    expect(v1.points.at(-2)).toMatchObject({ requests: 3, errors: 1 });
    expect(v1.points.at(-3)).toMatchObject({ requests: 0, latency_ms_mean: null });
    // Slower than the top bucket reads as the top bound (JSON has no Infinity).
    expect(ra.series[1]!.latency_ms.p50).toBe(LATENCY_BUCKETS_MS.at(-1));

    // An hour later the first minute has left the window; the second is its oldest.
    now = t0 + 60 * 60_000;
    const later = await a.read('greet');
    expect(later.series.map((s) => [s.series, s.requests])).toEqual([['1', 1]]);
    // And the keys expire by themselves.
    const ttl = await client().ttl(`${prefix}stats:prompts:{greet}:${Math.floor(t0 / 60_000)}`);
    expect(ttl).toBeGreaterThan(3600);
    expect(ttl).toBeLessThanOrEqual(7200);
    await a.close();
    await b.close();
  });

  it('keeps a braced group name inside its hash tag', async () => {
    const prefix = uniquePrefix('stats');
    prefixes.push(prefix);
    const s = stats(prefix, Date.now);
    s.record('a}b{c', 'x', { latencyMs: 1, error: false });
    await s.flush();
    const keys = await client().keys(`${prefix}*`);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/stats:prompts:\{a_b_c\}:\d+$/);
    expect((await s.read('a}b{c')).series[0]!.requests).toBe(1);
    await s.close();
  });

  it('drops a batch when Redis is down instead of failing or growing, and reading fails', async () => {
    const prefix = uniquePrefix('stats');
    const down = client('redis://127.0.0.1:1');
    const s = stats(prefix, Date.now, down);
    s.record('greet', '1', { latencyMs: 5, error: false });
    await expect(s.flush()).resolves.toBeUndefined();
    await expect(s.read('greet')).rejects.toThrow();
    await s.close();
  });
});
