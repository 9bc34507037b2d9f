/**
 * Issue 14, item 6: two real promptmesh processes (`SERVICE=all`, each its own router and llm)
 * sharing one PostgreSQL database and one Redis of the test's own, against the fake provider.
 *
 * - One key with a $0.01 budget under parallel load through both: the spend in PostgreSQL is
 *   the sum of the costs of the usage the provider reported, exactly; requests past the budget
 *   get 429 budget_exceeded; the overshoot stays within one request per replica.
 * - A revoked key is refused by both processes within a second.
 * - Rotation: old and new secrets on both during the grace, the old one refused after.
 * - A Redis restart (its data lost) keeps the totals: they are reloaded from PostgreSQL.
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, PRICES, keysFixture, type KeysFixture } from '../../services/router/keys/test-support';
import { freePort, waitFor } from '../support/net';
import { PrivateRedis, ServiceProcess } from './support';

/** The ledger's rule, written again: exact picodollars, rounded once to microdollars, halves up. */
function expectedMicro(model: keyof typeof PRICES, usage: { prompt_tokens: number; completion_tokens: number }): number {
  const price = PRICES[model];
  const pico = (usd: number) => BigInt(Math.round(usd * 1e6));
  const total = BigInt(usage.prompt_tokens) * pico(price.input) + BigInt(usage.completion_tokens) * pico(price.output);
  return Number((total + 500_000n) / 1_000_000n);
}

interface Answer {
  status: number;
  body: any;
}

async function call(base: string, method: string, path: string, key: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // SSE
  }
  return { status: res.status, body: parsed };
}

/** Polls `check` every 20 ms; resolves with the milliseconds it took, or throws after `limitMs`. */
async function within(limitMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > limitMs) throw new Error(`not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('virtual keys across two router processes', () => {
  let redis: PrivateRedis;
  let fixture: KeysFixture;
  let a: ServiceProcess;
  let b: ServiceProcess;
  let pool: pg.Pool;
  const urls = () => [a.url, b.url];

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    fixture = await keysFixture('two', redis.url);
    const env = { ...fixture.env, LOG_LEVEL: 'warn' };
    a = new ServiceProcess('all', await freePort(), env, 90_000);
    b = new ServiceProcess('all', await freePort(), env, 90_000);
    // Started together: the router migrations run once under their advisory lock.
    await Promise.all([a.start(), b.start()]);
    pool = new pg.Pool({ connectionString: fixture.db.url, max: 2 });
  }, 180_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await pool?.end();
    await redis?.stop();
    await fixture?.close();
  });

  const admin = (base: string, method: string, path: string, body?: unknown) => call(base, method, path, ADMIN_KEY, body);

  it('a $0.01 budget under parallel load through both: PostgreSQL holds the exact sum, the rest is 429 budget_exceeded, overshoot within one request per replica', async () => {
    const created = await admin(a.url, 'POST', '/v1/keys', { name: 'load', scopes: ['invoke'], budget: { usd: 0.01, period: 'day' } });
    expect(created.status).toBe(201);
    const { id, key } = created.body as { id: string; key: string };
    // Replies of 20 tokens at $15/M: about 0.0003 USD a call, some 30 calls to spend $0.01.
    fixture.fake.setBehavior({ reply: { tokens: 20 } });
    // The other replica knows the key once the announcement arrived.
    await waitFor(async () => (await call(b.url, 'GET', '/v1/models', key)).status === 200, 5_000, 'replica b to know the key');

    const ok: Answer[] = [];
    const refused: Answer[] = [];
    const other: Answer[] = [];
    let n = 0;
    async function worker(w: number): Promise<void> {
      for (let i = 0; i < 80; i++) {
        const base = urls()[(w + i) % 2]!;
        const stream = i % 3 === 0;
        const r = await call(base, 'POST', '/v1/chat/completions', key, {
          model: 'model-a',
          messages: [{ role: 'user', content: `worker ${w} call ${i} ${'word '.repeat(n++ % 7)}` }],
          ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
        });
        if (r.status === 200) {
          const usage = stream
            ? JSON.parse((r.body as string).split('\n\n').filter((e) => e.includes('"usage":{')).pop()!.slice(6)).usage
            : r.body.usage;
          ok.push({ status: 200, body: usage });
        } else if (r.status === 429 && r.body.error?.code === 'budget_exceeded') {
          refused.push(r);
          if (i > 3) return;
        } else other.push(r);
      }
    }
    await Promise.all([0, 1, 2, 3, 4, 5].map(worker));
    expect(other, JSON.stringify(other.slice(0, 3))).toEqual([]);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.body.error).toMatchObject({ type: 'insufficient_quota', code: 'budget_exceeded' });
    expect(refused[0]!.body.error.message).toMatch(/resets at \d{4}-\d{2}-\d{2}T00:00:00\.000Z/);

    const costs = ok.map((r) => expectedMicro('model-a', r.body));
    for (const [i, r] of ok.entries()) expect(r.body.cost_micro_usd).toBe(costs[i]);
    const expected = costs.reduce((s, c) => s + c, 0);
    // Both replicas write their rows within their flush interval.
    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === ok.length, 10_000, 'every row in PostgreSQL');
    const { rows } = await pool.query('SELECT sum(micro_usd)::bigint AS micro, count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id]);
    expect(Number(rows[0].micro)).toBe(expected);
    // The budget is spent, and overshot by at most one request per replica.
    const budget = 10_000;
    const largest = Math.max(...costs);
    expect(expected).toBeGreaterThanOrEqual(budget);
    expect(expected).toBeLessThanOrEqual(budget + 2 * largest);
    // Both replicas refuse now.
    for (const base of urls()) {
      const r = await call(base, 'POST', '/v1/chat/completions', key, { model: 'model-a', messages: [{ role: 'user', content: 'more' }] });
      expect(r.status).toBe(429);
      expect(r.body.error.code).toBe('budget_exceeded');
    }
    // The spend API agrees, from either replica.
    const spend = await admin(b.url, 'GET', '/v1/spend?group_by=key');
    expect(spend.body.data.find((r: { key: string }) => r.key === id)).toMatchObject({ micro_usd: expected, requests: ok.length });
    fixture.fake.reset();
  });

  it('large limits admitted locally on both (leased rpm and tpm, budget and concurrency blocks): PostgreSQL still holds the exact sum, the overshoot stays within one request per replica, nothing stays reserved', async () => {
    // model-b replies of 20 tokens cost some 14 microdollars: a $0.005 budget is a few hundred
    // calls, large enough for blocks (4 estimates within a 64th of it), and every other limit is
    // large enough to be leased, so after the first call both processes admit from memory.
    const created = await admin(a.url, 'POST', '/v1/keys', {
      name: 'local',
      scopes: ['invoke'],
      budget: { usd: 0.005, period: 'day' },
      rpm: 100_000,
      tpm: 10_000_000,
      max_concurrent: 64,
    });
    expect(created.status).toBe(201);
    const { id, key } = created.body as { id: string; key: string };
    fixture.fake.setBehavior({ reply: { tokens: 20 } });
    await waitFor(async () => (await call(b.url, 'GET', '/v1/models', key)).status === 200, 5_000, 'replica b to know the key');
    const ask = (base: string, i: number) => call(base, 'POST', '/v1/chat/completions', key, { model: 'model-b', messages: [{ role: 'user', content: `local ${i}` }] });
    // The key's first call sets its estimate; blocks are asked for a second later.
    const first = await ask(a.url, -1);
    expect(first.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_100));

    const ok: Array<{ prompt_tokens: number; completion_tokens: number; cost_micro_usd: number }> = [first.body.usage];
    const refused: Answer[] = [];
    const other: Answer[] = [];
    async function worker(w: number): Promise<void> {
      for (let i = 0; i < 400; i++) {
        const r = await ask(urls()[(w + i) % 2]!, w * 1000 + i);
        if (r.status === 200) ok.push(r.body.usage);
        else if (r.status === 429 && r.body.error?.code === 'budget_exceeded') {
          refused.push(r);
          if (refused.length > 12) return;
        } else other.push(r);
      }
    }
    // Meanwhile, the key's in-flight set is watched for a replica's block (`<id>|<slots>s|<amount>`).
    const inflight = `${fixture.env.REDIS_KEY_PREFIX}budget:{budget}:inflight:k:${id}`;
    const watcher = new Redis(redis.url);
    let sawBlock = false;
    let loading = true;
    const watching = (async () => {
      while (loading && !sawBlock) {
        sawBlock = (await watcher.zrange(inflight, 0, -1)).some((m) => /\|\d+s\|\d+$/.test(m));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await Promise.all([0, 1, 2, 3, 4, 5].map(worker));
    loading = false;
    await watching;
    expect(sawBlock, 'a block in the in-flight set during the load').toBe(true);
    expect(other, JSON.stringify(other.slice(0, 3))).toEqual([]);
    expect(refused.length).toBeGreaterThan(0);
    const costs = ok.map((u) => expectedMicro('model-b', u));
    for (const [i, u] of ok.entries()) expect(u.cost_micro_usd).toBe(costs[i]);
    const expected = costs.reduce((s, c) => s + c, 0);
    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === ok.length, 10_000, 'every row in PostgreSQL');
    const { rows } = await pool.query('SELECT sum(micro_usd)::bigint AS micro FROM promptmesh_spend WHERE key_id = $1', [id]);
    expect(Number(rows[0].micro)).toBe(expected);
    const budget = 5_000;
    expect(expected).toBeGreaterThanOrEqual(budget);
    expect(expected).toBeLessThanOrEqual(budget + 2 * Math.max(...costs));
    // Idle blocks are given back within a second or two: the key's in-flight set empties.
    try {
      await waitFor(async () => (await watcher.zcard(inflight)) === 0, 5_000, 'the blocks to be given back');
    } finally {
      watcher.disconnect();
    }
    fixture.fake.reset();
  });

  it('a revoked key is refused by both processes within a second', async () => {
    const { id, key } = (await admin(a.url, 'POST', '/v1/keys', { name: 'revoke-me', scopes: ['invoke'] })).body as { id: string; key: string };
    await waitFor(async () => (await call(b.url, 'GET', '/v1/models', key)).status === 200, 5_000, 'replica b to know the key');
    expect((await call(a.url, 'GET', '/v1/models', key)).status).toBe(200);
    const revoked = await admin(b.url, 'DELETE', `/v1/keys/${id}`);
    expect(revoked.status).toBe(200);
    const took = await Promise.all(urls().map((base) => within(1_000, async () => (await call(base, 'GET', '/v1/models', key)).status === 401)));
    for (const ms of took) expect(ms).toBeLessThan(1_000);
  });

  it('rotation: both secrets on both processes during the grace, only the new one after it ends', async () => {
    const { id, key: first } = (await admin(a.url, 'POST', '/v1/keys', { name: 'rotate-me', scopes: ['invoke'] })).body as { id: string; key: string };
    const rotated = await admin(a.url, 'POST', `/v1/keys/${id}/rotate`, { grace_seconds: 3600 });
    expect(rotated.status).toBe(200);
    const second = rotated.body.key as string;
    for (const base of urls()) {
      await within(1_000, async () => (await call(base, 'GET', '/v1/models', second)).status === 200);
      expect((await call(base, 'GET', '/v1/models', first)).status).toBe(200);
    }
    const again = await admin(b.url, 'POST', `/v1/keys/${id}/rotate`, { grace_seconds: 0 });
    const third = again.body.key as string;
    for (const base of urls()) {
      await within(1_000, async () => (await call(base, 'GET', '/v1/models', first)).status === 401);
      expect((await call(base, 'GET', '/v1/models', second)).status).toBe(401);
      expect((await call(base, 'GET', '/v1/models', third)).status).toBe(200);
    }
  });

  it('a Redis restart keeps the totals: they come back from PostgreSQL, exactly', async () => {
    const { id, key } = (await admin(a.url, 'POST', '/v1/keys', { name: 'survivor', scopes: ['invoke'], budget: { usd: 5, period: 'month' } })).body as { id: string; key: string };
    await waitFor(async () => (await call(b.url, 'GET', '/v1/models', key)).status === 200, 5_000, 'replica b to know the key');
    let expected = 0;
    for (let i = 0; i < 6; i++) {
      const r = await call(urls()[i % 2]!, 'POST', '/v1/chat/completions', key, { model: 'model-a', messages: [{ role: 'user', content: `before restart ${i}` }] });
      expect(r.status).toBe(200);
      expected += expectedMicro('model-a', r.body.usage);
    }
    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === 6, 10_000, 'six rows');
    const month = new Date().toISOString().slice(0, 7);
    const totalKey = `${fixture.prefix}budget:{budget}:spent:k:${id}:${month}`;
    const read = async () => {
      const c = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return Number((await c.get(totalKey)) ?? -1);
      } finally {
        c.disconnect();
      }
    };
    expect(await read()).toBe(expected);

    await redis.stop();
    await redis.start();
    expect(await read()).toBe(-1);
    // The routers reconnect and reload the totals from PostgreSQL.
    await waitFor(async () => (await read()) === expected, 15_000, 'the totals reloaded');
    const after = await call(a.url, 'POST', '/v1/chat/completions', key, { model: 'model-a', messages: [{ role: 'user', content: 'after restart' }] });
    expect(after.status).toBe(200);
    // The budget-exhausted key of the first test is still refused on both.
    const exhausted = (await pool.query(`SELECT id FROM promptmesh_keys WHERE name = 'load'`)).rows[0].id as string;
    const total = async (keyId: string, period: string) => {
      const c = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return Number((await c.get(`${fixture.prefix}budget:{budget}:spent:k:${keyId}:${period}`)) ?? -1);
      } finally {
        c.disconnect();
      }
    };
    const loadSpent = Number((await pool.query('SELECT sum(micro_usd)::bigint AS m FROM promptmesh_spend WHERE key_id = $1', [exhausted])).rows[0].m);
    expect(await total(exhausted, new Date().toISOString().slice(0, 10))).toBe(loadSpent);
    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === 7, 10_000, 'the seventh row');
    const pgTotal = Number((await pool.query('SELECT sum(micro_usd)::bigint AS m FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].m);
    expect(await read()).toBe(pgTotal);
  });
});
