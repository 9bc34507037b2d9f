import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../kit/logger';
import { createRedis, closeRedis, waitForRedis } from '../kit/redis';
import { freePort } from '../../test/support/net';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../test/support/redis';
import { ProviderLimiter, estimateTokens } from './limits';
import type { ProviderConfig } from './types';

const prefixes: string[] = [];
const clients: Redis[] = [];
const limiters: ProviderLimiter[] = [];
afterAll(async () => {
  for (const l of limiters) await l.close();
  for (const c of clients) await closeRedis(c);
  for (const p of prefixes) await deletePrefix(p);
});

function logCapture() {
  const lines: string[] = [];
  const logger = createLogger('test', 'info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  return { logger, lines };
}

async function replica(prefix: string) {
  return (await replicaWithRedis(prefix)).limiter;
}

/** A replica and its Redis client (to wait on what it sent); closed after the tests. */
async function replicaWithRedis(prefix: string, options: { lease?: boolean } = {}) {
  const redis = createRedis({ redisUrl: TEST_REDIS_URL, redisClusterNodes: undefined }, 'test') as Redis;
  clients.push(redis);
  await waitForRedis(redis);
  const limiter = new ProviderLimiter(redis, prefix, logCapture().logger, options);
  limiters.push(limiter);
  return { limiter, redis };
}

/** Every command `redis` sent so far (a lease, a give-back) has been answered and handled. */
async function answered(redis: Redis): Promise<void> {
  await redis.ping();
  await redis.ping();
}

/** The theoretical arrival time of an API key's token bucket (what every take moves). */
async function tenantTat(redis: Redis, prefix: string, tenant: string): Promise<number | undefined> {
  const v = await redis.get(`${prefix}llm:keylimit:{${tenant}}:tpm`);
  return v === null ? undefined : Number(v);
}

function provider(limits: ProviderConfig['limits']): ProviderConfig {
  return { name: 'p1', type: 'openai', baseUrl: 'http://127.0.0.1:1', timeoutMs: 1000, connectTimeoutMs: 1000, firstByteTimeoutMs: 1000, limits };
}

describe('ProviderLimiter (real Redis)', () => {
  it('holds requests per minute across two replicas sharing Redis', async () => {
    const prefix = uniquePrefix('llm-rpm');
    prefixes.push(prefix);
    const [a, b] = [await replica(prefix), await replica(prefix)];
    const p = provider({ rpm: 10 });
    const started = Date.now();
    const decisions = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).acquire(p, 1)));
    const elapsedMin = (Date.now() - started) / 60_000;
    const allowed = decisions.filter((d) => d.allowed).length;
    expect(allowed).toBeGreaterThanOrEqual(10);
    expect(allowed).toBeLessThanOrEqual(10 + Math.ceil(elapsedMin * 10));
    const refused = decisions.find((d) => !d.allowed);
    expect(refused).toMatchObject({ allowed: false });
    if (refused && !refused.allowed) {
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(6_000);
      expect(refused.reason).toContain('10 rpm');
    }
  });

  it('holds tokens per minute and charges usage beyond the estimate', async () => {
    const prefix = uniquePrefix('llm-tpm');
    prefixes.push(prefix);
    const limiter = await replica(prefix);
    const p = provider({ tpm: 1000 });
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await limiter.acquire(p, 300)).allowed);
    expect(results).toEqual([true, true, true, false]);

    const prefix2 = uniquePrefix('llm-tpm2');
    prefixes.push(prefix2);
    const other = await replica(prefix2);
    const first = await other.acquire(p, 100);
    expect(first).toMatchObject({ allowed: true, reserved: 100 });
    await other.reconcile(p, 100, 1000); // the call really used 1000 tokens
    const after = await other.acquire(p, 100);
    expect(after.allowed).toBe(false);
  });

  it('gives back what a call reserved and did not use, atomically, never more than it took', async () => {
    const prefix = uniquePrefix('llm-refund');
    prefixes.push(prefix);
    const [a, b] = [await replica(prefix), await replica(prefix)];
    const p = provider({ tpm: 1000 });
    // A huge reservation takes at most the whole bucket (a minute's worth), not more.
    const big = await a.acquire(p, 1_000_000_000);
    expect(big).toMatchObject({ allowed: true, reserved: 1000 });
    expect((await b.acquire(p, 10)).allowed).toBe(false);
    // The call used 50 tokens: 950 come back, on the other replica too.
    await a.reconcile(p, 1000, 50);
    const next = await b.acquire(p, 900);
    expect(next).toMatchObject({ allowed: true, reserved: 900 });
    expect((await b.acquire(p, 100)).allowed).toBe(false);
    // A failed call gives all of its reservation back; refunds never go below an empty bucket.
    await b.reconcile(p, 900, 0);
    await b.reconcile(p, 900, 0);
    expect((await a.acquire(p, 950)).allowed).toBe(true);
    expect((await a.acquire(p, 100)).allowed).toBe(false);
  });

  it("holds an API key's own tpm, separately from the provider's", async () => {
    const prefix = uniquePrefix('llm-keytpm');
    prefixes.push(prefix);
    const [a, b] = [await replica(prefix), await replica(prefix)];
    expect(await a.acquireTenant('key-1', 500, 400)).toEqual({ allowed: true, reserved: 400 });
    const refused = await b.acquireTenant('key-1', 500, 400);
    expect(refused.allowed).toBe(false);
    if (!refused.allowed) expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect((await b.acquireTenant('key-2', 500, 400)).allowed).toBe(true);
    await a.reconcileTenant('key-1', 500, 400, 20);
    expect((await b.acquireTenant('key-1', 500, 400)).allowed).toBe(true);
  });

  it("serves an API key's large tpm from leased tokens: after warm-up no call moves the Redis bucket", async () => {
    const prefix = uniquePrefix('llm-keylease');
    prefixes.push(prefix);
    const { limiter, redis } = await replicaWithRedis(prefix);
    // 600 000 tpm leases chunks of 12 000 tokens, enough for 8 calls of 1 000.
    const tpm = 600_000;
    // Warm-up: the pool is empty, so the call is taken in Redis while the first lease starts.
    expect(await limiter.acquireTenant('key-big', tpm, 1_000)).toEqual({ allowed: true, reserved: 1_000 });
    await limiter.reconcileTenant('key-big', tpm, 1_000, 600);
    await answered(redis);
    const warmed = await tenantTat(redis, prefix, 'key-big');
    expect(warmed).toBeDefined();
    for (let i = 0; i < 6; i++) {
      expect(await limiter.acquireTenant('key-big', tpm, 1_000)).toEqual({ allowed: true, reserved: 1_000 });
      // Unused tokens go back to the pool, usage beyond the reservation is taken from it.
      await limiter.reconcileTenant('key-big', tpm, 1_000, i % 2 ? 400 : 1_300);
      await answered(redis);
      expect(await tenantTat(redis, prefix, 'key-big')).toBe(warmed);
    }
    // The same limit sent to Redis per call moves the bucket on every call (the next test); a
    // small limit is never leased: this 5 000 tpm key is checked in Redis per call.
    const before = await tenantTat(redis, prefix, 'key-small');
    expect(await limiter.acquireTenant('key-small', 5_000, 1_000)).toEqual({ allowed: true, reserved: 1_000 });
    expect(await tenantTat(redis, prefix, 'key-small')).not.toBe(before);
  });

  it('with lease: false checks every tenant call in Redis, exactly', async () => {
    const prefix = uniquePrefix('llm-keyexact');
    prefixes.push(prefix);
    const { limiter, redis } = await replicaWithRedis(prefix, { lease: false });
    const tpm = 600_000; // 0.1 ms of the bucket per token: 1 000 tokens move it 100 ms
    expect(await limiter.acquireTenant('key-big', tpm, 1_000)).toEqual({ allowed: true, reserved: 1_000 });
    let tat = (await tenantTat(redis, prefix, 'key-big'))!;
    for (let i = 0; i < 5; i++) {
      expect(await limiter.acquireTenant('key-big', tpm, 1_000)).toEqual({ allowed: true, reserved: 1_000 });
      const taken = (await tenantTat(redis, prefix, 'key-big'))!;
      expect(taken - tat).toBeCloseTo(100, 6);
      // 400 of the 1 000 used: 600 go back to Redis (60 ms).
      await limiter.reconcileTenant('key-big', tpm, 1_000, 400);
      tat = (await tenantTat(redis, prefix, 'key-big'))!;
      expect(taken - tat).toBeCloseTo(60, 6);
    }
  });

  it('never admits more tokens than a tenant tpm in total across two leasing replicas', async () => {
    const prefix = uniquePrefix('llm-keylease2');
    prefixes.push(prefix);
    const replicas = [await replicaWithRedis(prefix), await replicaWithRedis(prefix)];
    // Chunks of 2 400 tokens: calls reserving 300 are leased.
    const tpm = 120_000;
    const usedBy = [0, 0];
    const started = Date.now();
    await Promise.all(
      replicas.map(async ({ limiter }, r) => {
        let refusedInARow = 0;
        for (let i = 0; i < 5_000 && refusedInARow < 10; i++) {
          const d = await limiter.acquireTenant('key-shared', tpm, 300);
          if (!d.allowed) {
            refusedInARow++;
            continue;
          }
          refusedInARow = 0;
          // Calls use 100 to 300 of the 300 they reserved; the rest goes back.
          const used = 100 * (1 + (i % 3));
          usedBy[r] += used;
          await limiter.reconcileTenant('key-shared', tpm, d.reserved, used);
        }
      }),
    );
    const elapsed = Date.now() - started;
    const used = usedBy[0] + usedBy[1];
    // From an empty bucket: a minute's worth at once, plus what refilled meanwhile.
    expect(used).toBeLessThanOrEqual(tpm + Math.ceil((elapsed * tpm) / 60_000));
    // Nearly all of it was admitted: at most what the two pools still hold is left over.
    expect(used).toBeGreaterThanOrEqual(tpm - 4 * 2_400);
    expect(usedBy[0]).toBeGreaterThan(0);
    expect(usedBy[1]).toBeGreaterThan(0);
  });

  it('charges usage beyond reservations while a leased tenant tpm is exhausted (no debt hidden in the pool)', async () => {
    const prefix = uniquePrefix('llm-keydebt');
    prefixes.push(prefix);
    const { limiter } = await replicaWithRedis(prefix);
    // 2 tokens a millisecond, chunks of 2 400: calls reserving 300 are leased.
    const tpm = 120_000;
    let used = 0;
    const started = Date.now();
    // Use the whole minute's worth, every call using what it reserved.
    for (let refusedInARow = 0; refusedInARow < 10; ) {
      const d = await limiter.acquireTenant('key-over', tpm, 300);
      if (!d.allowed) {
        refusedInARow++;
        continue;
      }
      refusedInARow = 0;
      used += 300;
      await limiter.reconcileTenant('key-over', tpm, d.reserved, 300);
    }
    // Then, with the bucket empty, keep calling: each call admitted uses 1 000 of its 300. The
    // excess must be charged, as a call checked in Redis would be (the next calls wait for it);
    // with lease: false this holds too.
    while (Date.now() - started < 800) {
      const d = await limiter.acquireTenant('key-over', tpm, 300);
      if (d.allowed) {
        used += 1_000;
        await limiter.reconcileTenant('key-over', tpm, d.reserved, 1_000);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const elapsed = Date.now() - started;
    // A minute's worth, what refilled meanwhile, and the excess of the last call (charged after it).
    expect(used).toBeLessThanOrEqual(tpm + Math.ceil((elapsed * tpm) / 60_000) + 700);
  });

  it('caps concurrency locally and frees slots on release', async () => {
    const limiter = new ProviderLimiter(undefined, 'unused:', logCapture().logger);
    const p = provider({ concurrency: 2 });
    const one = await limiter.acquire(p, 1);
    const two = await limiter.acquire(p, 1);
    const three = await limiter.acquire(p, 1);
    expect([one.allowed, two.allowed, three.allowed]).toEqual([true, true, false]);
    expect(limiter.concurrency('p1')).toBe(2);
    if (one.allowed) {
      one.release();
      one.release(); // idempotent
    }
    expect(limiter.concurrency('p1')).toBe(1);
    expect((await limiter.acquire(p, 1)).allowed).toBe(true);
  });

  it('fails open (and logs once) while Redis is unreachable', async () => {
    const port = await freePort();
    const redis = createRedis({ redisUrl: `redis://127.0.0.1:${port}`, redisClusterNodes: undefined }, 'test') as Redis;
    redis.on('error', () => undefined);
    clients.push(redis);
    const { logger, lines } = logCapture();
    const limiter = new ProviderLimiter(redis, 'pmtest:down:', logger);
    const p = provider({ rpm: 1 });
    const decisions = await Promise.all([1, 2, 3].map(() => limiter.acquire(p, 1)));
    expect(decisions.every((d) => d.allowed)).toBe(true);
    expect(lines.filter((l) => l.includes('limits fail open'))).toHaveLength(1);
  });

  it("serves a provider's large rpm and tpm from leased chunks: after warm-up no call moves either bucket, and both replicas together stay within the rpm", async () => {
    const prefix = uniquePrefix('llm-provlease');
    prefixes.push(prefix);
    const { limiter: a, redis } = await replicaWithRedis(prefix);
    const { limiter: b } = await replicaWithRedis(prefix);
    // 1 000 rpm leases chunks of 20 requests; 6 000 000 tpm chunks of 120 000 tokens.
    const p = provider({ rpm: 1_000, tpm: 6_000_000 });
    const tat = async (bucket: 'rpm' | 'tpm') => redis.get(`${prefix}llm:limit:{p1}:${bucket}`);
    // The bucket refills from its first take on: the bound below counts from here.
    const started = Date.now();
    const warm = await a.acquire(p, 1_000);
    expect(warm).toMatchObject({ allowed: true, reserved: 1_000 });
    if (warm.allowed) await a.reconcile(p, warm.reserved, 500);
    await answered(redis);
    const [rpmTat, tpmTat] = [await tat('rpm'), await tat('tpm')];
    for (let i = 0; i < 8; i++) {
      const d = await a.acquire(p, 1_000);
      expect(d).toMatchObject({ allowed: true, reserved: 1_000 });
      if (d.allowed) {
        await a.reconcile(p, d.reserved, 700);
        d.release();
      }
      await answered(redis);
      expect([await tat('rpm'), await tat('tpm')]).toEqual([rpmTat, tpmTat]);
    }
    // Two replicas hammering one bucket: never more requests than the rpm grants (a burst of
    // 1 000 from empty, plus what refills meanwhile).
    let allowed = 9;
    const worker = async (l: ProviderLimiter) => {
      for (let i = 0; i < 700; i++) {
        const d = await l.acquire(p, 10);
        if (!d.allowed) return;
        allowed++;
        d.release();
      }
    };
    await Promise.all([worker(a), worker(b), worker(a), worker(b)]);
    const elapsedMin = (Date.now() - started) / 60_000;
    expect(allowed).toBeLessThanOrEqual(1_000 + Math.ceil(elapsedMin * 1_000));
    // Refused only once the bucket ran out: what the pools held was spent first.
    expect(allowed).toBeGreaterThanOrEqual(1_000 - 2 * 40);
  });

  it('with lease: false checks every provider call in Redis', async () => {
    const prefix = uniquePrefix('llm-provexact');
    prefixes.push(prefix);
    const { limiter, redis } = await replicaWithRedis(prefix, { lease: false });
    const p = provider({ rpm: 1_000 });
    let last = await redis.get(`${prefix}llm:limit:{p1}:rpm`);
    for (let i = 0; i < 5; i++) {
      expect(await limiter.acquire(p, 1)).toMatchObject({ allowed: true });
      const now = await redis.get(`${prefix}llm:limit:{p1}:rpm`);
      expect(now).not.toBe(last);
      last = now;
    }
  });
});

describe('estimateTokens', () => {
  it('counts about four characters a token plus the completion budget', () => {
    expect(estimateTokens({ messages: [{ content: 'x'.repeat(400) }], max_tokens: 50 })).toBe(100 + 4 + 50);
    expect(estimateTokens({ messages: [{ content: [{ type: 'text', text: 'abcd' }] }] })).toBe(1 + 4);
  });

  it('reserves at most the output cap it is given, and a bounded amount when the cap is unknown', () => {
    expect(estimateTokens({ messages: [{ content: 'abcd' }], max_tokens: 1e9 }, 16_384)).toBe(1 + 4 + 16_384);
    expect(estimateTokens({ messages: [{ content: 'abcd' }], max_completion_tokens: 1e9 })).toBe(1 + 4 + 16_384);
  });
});
