/**
 * GcraLeases (kit/gcra-leases.ts) against a real Redis: which limits are leased, that a leased
 * pool admits locally (the bucket's theoretical arrival time in Redis does not move between
 * takes) and refills in the background below half a chunk, that two replicas leasing one bucket
 * and falling back to exact per-request takes (KeyRateLimiter, the router's GCRA script) never
 * admit more than GCRA allows, settlements (give-back, and usage beyond what the pool holds
 * forced into Redis), the idle give-back, a changed limit, close(), and an unreachable Redis.
 *
 * Synchronisation without timing: `answered(client)` waits for a PING on the leasing client, so
 * every command that client sent before (a lease, a give-back) has been answered and its handler
 * has run; `drain()` counts what a pool holds by taking from it synchronously, so no refill can
 * land in between.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../test/support/net';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../test/support/redis';
import { KeyRateLimiter } from '../router/key-rate-limit';
import { GcraLeases } from './gcra-leases';
import { closeRedis, createRedis, waitForRedis } from './redis';

const prefixes: string[] = [];
const clients: Redis[] = [];
const leaseSets: GcraLeases[] = [];
afterAll(async () => {
  for (const l of leaseSets) await l.close();
  for (const c of clients) await closeRedis(c);
  for (const p of prefixes) await deletePrefix(p);
});

/** A minute: the period most tests use. */
const P = 60_000;
/** A large limit: 10 ms of the bucket per unit, chunks of 120 units (2%). */
const L = 6_000;
const CHUNK = 120;
const INTERVAL = P / L;

async function client(): Promise<Redis> {
  const redis = createRedis({ redisUrl: TEST_REDIS_URL, redisClusterNodes: undefined }, 'test') as Redis;
  clients.push(redis);
  await waitForRedis(redis);
  return redis;
}

function leases(redis: Redis, idleMs = 60_000): GcraLeases {
  const l = new GcraLeases(redis, { idleMs });
  leaseSets.push(l);
  return l;
}

function newPrefix(label: string): string {
  const p = uniquePrefix(label);
  prefixes.push(p);
  return p;
}

/** Every command `redis` sent so far has been answered and its handlers (and what they sent) have run. */
async function answered(redis: Redis): Promise<void> {
  await redis.ping();
  await redis.ping();
}

/** The bucket's theoretical arrival time (ms, Redis clock), or undefined when the key is absent. */
async function tat(reader: Redis, key: string): Promise<number | undefined> {
  const v = await reader.get(key);
  return v === null ? undefined : Number(v);
}

async function redisNow(reader: Redis): Promise<number> {
  const [s, us] = await reader.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Sets the bucket of `key` `aheadMs` ahead of Redis's clock, as if other replicas had used that much of it. */
async function prefill(reader: Redis, key: string, aheadMs: number): Promise<void> {
  await reader.set(key, String((await redisNow(reader)) + aheadMs), 'PX', aheadMs + 1_000);
}

/** Takes single units from the pool until it is empty, synchronously (no lease lands meanwhile); returns how many. */
function drain(l: GcraLeases, key: string, limit = L, period = P): number {
  let n = 0;
  while (l.tryTake(key, period, limit, 1)) n++;
  return n;
}

/** A pool of `key` that holds a full chunk: the first take starts the lease, which is then answered. */
async function warm(l: GcraLeases, redis: Redis, key: string): Promise<void> {
  expect(l.tryTake(key, P, L, 1)).toBe(false);
  await answered(redis);
}

describe('GcraLeases (real Redis)', () => {
  it('does not lease small limits: no pool, no lease, the caller checks in Redis', async () => {
    const redis = await client();
    const l = leases(redis);
    const key = `${newPrefix('lease-small')}bucket`;
    // 2% of 100 is 2 requests, under the 8 a chunk must hold; 2% of 10 000 is 200 tokens, under 8 calls of 100.
    expect(l.chunkOf(100, 1)).toBe(0);
    expect(l.chunkOf(10_000, 100)).toBe(0);
    expect(l.chunkOf(L, 1)).toBe(CHUNK);
    expect(l.chunkOf(40_000, 100)).toBe(800);
    for (let i = 0; i < 5; i++) expect(l.tryTake(key, P, 100, 1)).toBe(false);
    expect(l.holds(key)).toBe(false);
    expect(l.settle(key, 1)).toBe(false);
    await answered(redis);
    expect(await redis.exists(key)).toBe(0);
  });

  it('admits a large limit locally once the first lease lands, and refills below half a chunk in the background', async () => {
    const redis = await client();
    const reader = await client();
    const l = leases(redis);
    const key = `${newPrefix('lease-large')}bucket`;
    // The first take finds an empty pool: the caller goes to Redis, a lease starts.
    expect(l.tryTake(key, P, L, 1)).toBe(false);
    expect(l.holds(key)).toBe(true);
    await answered(redis);
    const first = (await tat(reader, key))!;
    const now = await redisNow(reader);
    // One chunk was taken from the bucket: its TAT is a chunk ahead of Redis's clock.
    expect(first - now).toBeGreaterThan(CHUNK * INTERVAL - 1_000);
    expect(first - now).toBeLessThanOrEqual(CHUNK * INTERVAL);

    // Takes down to half a chunk are local: the bucket does not move.
    for (let i = 0; i < CHUNK / 2; i++) {
      expect(l.tryTake(key, P, L, 1)).toBe(true);
      await answered(redis);
      expect(await tat(reader, key)).toBe(first);
    }
    // The next one leaves less than half a chunk: it is still admitted, and the next lease starts.
    expect(l.tryTake(key, P, L, 1)).toBe(true);
    await answered(redis);
    expect(await tat(reader, key)).toBe(first + CHUNK * INTERVAL);
    // The pool now holds what was left plus the new chunk, all of it local.
    expect(drain(l, key)).toBe(CHUNK / 2 - 1 + CHUNK);
    await answered(redis);
    // Draining it started one more lease (and only one).
    expect(await tat(reader, key)).toBe(first + 2 * CHUNK * INTERVAL);
  });

  it('never admits more than GCRA allows when two replicas lease one bucket and fall back to exact takes', async () => {
    const prefix = newPrefix('lease-two');
    // A long period keeps what the bucket refills during the test small.
    const period = 600_000;
    const limit = 2_000; // chunks of 40 requests
    const replicas = await Promise.all(
      [0, 1].map(async () => {
        const redis = await client();
        return { leases: leases(redis), exact: new KeyRateLimiter(redis, prefix, period), local: 0, exactAdmitted: 0 };
      }),
    );
    // KeyRateLimiter's key for id "shared": the leases take from that very bucket.
    const key = `${prefix}router:rpm:{shared}`;
    const started = Date.now();
    await Promise.all(
      replicas.map(async (r) => {
        let refusedInARow = 0;
        for (let i = 0; i < 10_000 && refusedInARow < 20; i++) {
          if (r.leases.tryTake(key, period, limit, 1)) {
            r.local++;
            refusedInARow = 0;
          } else if ((await r.exact.take('shared', limit)).allowed) {
            r.exactAdmitted++;
            refusedInARow = 0;
          } else refusedInARow++;
          // Let the other replica and the leases in flight run.
          if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      }),
    );
    const elapsed = Date.now() - started;
    const admitted = replicas.reduce((s, r) => s + r.local + r.exactAdmitted, 0);
    // From an empty bucket GCRA allows `limit` at once, plus what refills meanwhile.
    expect(admitted).toBeLessThanOrEqual(limit + Math.ceil((elapsed * limit) / period));
    // And it admits nearly all of it: at most what the two pools still hold (1.5 chunks each) is
    // left unadmitted.
    expect(admitted).toBeGreaterThanOrEqual(limit - 2 * 1.5 * 40);
    // Both paths served both replicas.
    for (const r of replicas) {
      expect(r.local).toBeGreaterThan(0);
      expect(r.exactAdmitted).toBeGreaterThan(0);
    }
  });

  it('settles into the pool: a give-back is admitted again, usage beyond what it holds is forced into Redis at once', async () => {
    const redis = await client();
    const reader = await client();
    const l = leases(redis);
    const key = `${newPrefix('lease-settle')}bucket`;
    await warm(l, redis, key);
    const before = (await tat(reader, key))!;
    // A reservation of 5 the call did not use goes back to the pool, not to Redis.
    expect(l.settle(key, 5)).toBe(true);
    expect(drain(l, key)).toBe(CHUNK + 5);
    // Draining started the next lease: the pool holds a chunk again.
    await answered(redis);
    expect(await tat(reader, key)).toBe(before + CHUNK * INTERVAL);
    // Calls used 200 more than the chunk the pool holds: the chunk covers part of it, the other
    // 200 are taken from the bucket whatever it holds (so per-call takes in Redis see them).
    expect(l.settle(key, -(CHUNK + 200))).toBe(true);
    await answered(redis);
    expect(await tat(reader, key)).toBe(before + CHUNK * INTERVAL + 200 * INTERVAL);
    // The pool is empty: nothing is admitted locally until the next lease lands.
    expect(l.tryTake(key, P, L, 1)).toBe(false);
    await answered(redis);
    expect(await tat(reader, key)).toBe(before + 2 * CHUNK * INTERVAL + 200 * INTERVAL);
    expect(drain(l, key)).toBe(CHUNK);
  });

  it('gives an idle pool back to Redis and drops it', async () => {
    const redis = await client();
    const reader = await client();
    const l = leases(redis, 500);
    const prefix = newPrefix('lease-idle');
    const [held, used] = [`${prefix}held`, `${prefix}used`];
    // Half the bucket is used, so give-backs never reach an empty bucket (where they stop).
    await prefill(reader, held, P / 2);
    await warm(l, redis, held);
    await warm(l, redis, used);
    // `held` admits 20 and keeps 100; `used` admits its chunk and keeps nothing.
    for (let i = 0; i < 20; i++) expect(l.tryTake(held, P, L, 1)).toBe(true);
    for (let i = 0; i < CHUNK; i++) expect(l.settle(used, -1)).toBe(true);
    const heldBefore = (await tat(reader, held))!;
    const usedBefore = (await tat(reader, used))!;

    await waitFor(() => !l.holds(held) && !l.holds(used), 5_000, 'the idle pools to be dropped');
    await answered(redis);
    // The 100 units `held` kept go back: its TAT moves back by them; `used` had none to give.
    expect(await tat(reader, held)).toBe(heldBefore - 100 * INTERVAL);
    expect(await tat(reader, used)).toBe(usedBefore);
    // Settlements after the drop are the caller's to send to Redis.
    expect(l.settle(held, 1)).toBe(false);
  });

  it('drops the pool of a limit that changed, giving its units back under the old limit', async () => {
    const redis = await client();
    const reader = await client();
    const l = leases(redis);
    const key = `${newPrefix('lease-change')}bucket`;
    await prefill(reader, key, P / 2);
    await warm(l, redis, key);
    for (let i = 0; i < CHUNK / 2; i++) expect(l.tryTake(key, P, L, 1)).toBe(true);
    await answered(redis);
    const before = (await tat(reader, key))!;
    // The limit is raised tenfold (1 ms a unit, chunks of 1200): the take finds a new, empty pool.
    expect(l.tryTake(key, P, 10 * L, 1)).toBe(false);
    await answered(redis);
    // The old pool's 60 units went back at 10 ms each, then the new pool leased 1200 at 1 ms each.
    expect(await tat(reader, key)).toBe(before - (CHUNK / 2) * INTERVAL + 10 * CHUNK * (INTERVAL / 10));
    expect(drain(l, key, 10 * L)).toBe(10 * CHUNK);
  });

  it('close() gives every pool back before it resolves, and leases nothing after', async () => {
    const redis = await client();
    const reader = await client();
    const l = new GcraLeases(redis, { idleMs: 60_000 });
    const prefix = newPrefix('lease-close');
    const [held, other] = [`${prefix}held`, `${prefix}other`];
    await prefill(reader, held, P / 2);
    await prefill(reader, other, P / 2);
    await warm(l, redis, held);
    await warm(l, redis, other);
    for (let i = 0; i < 30; i++) expect(l.tryTake(held, P, L, 1)).toBe(true);
    for (let i = 0; i < 50; i++) expect(l.tryTake(other, P, L, 1)).toBe(true);
    const heldBefore = (await tat(reader, held))!;
    const otherBefore = (await tat(reader, other))!;
    await l.close();
    // The service closes its Redis client right after: whatever close() sent must be done by now.
    await closeRedis(redis);
    expect(await tat(reader, held)).toBe(heldBefore - (CHUNK - 30) * INTERVAL);
    expect(await tat(reader, other)).toBe(otherBefore - (CHUNK - 50) * INTERVAL);
    // A closed GcraLeases leases nothing more (a pool nobody would give back).
    expect(l.tryTake(`${prefix}late`, P, L, 1)).toBe(false);
    expect(l.holds(`${prefix}late`)).toBe(false);
  });

  it('close() waits for a lease still in flight and gives it back before it resolves', async () => {
    const redis = await client();
    const reader = await client();
    const l = new GcraLeases(redis, { idleMs: 60_000 });
    const key = `${newPrefix('lease-inflight')}bucket`;
    // The only pool: its first lease has not been answered when close() is called.
    expect(l.tryTake(key, P, L, 1)).toBe(false);
    await l.close();
    await closeRedis(redis);
    // The lease was taken and given back: the bucket is empty again (TAT no later than now).
    const after = await tat(reader, key);
    expect(after).toBeDefined();
    expect(after!).toBeLessThanOrEqual(await redisNow(reader));
  });

  it('never throws while Redis is unreachable: takes return false, settlements and close() pass', async () => {
    const port = await freePort();
    const down = createRedis({ redisUrl: `redis://127.0.0.1:${port}`, redisClusterNodes: undefined }, 'test') as Redis;
    down.on('error', () => undefined);
    clients.push(down);
    const l = leases(down);
    const key = `${newPrefix('lease-down')}bucket`;
    for (let i = 0; i < 5; i++) {
      expect(l.tryTake(key, P, L, 1)).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(l.settle(key, 10)).toBe(true);
    expect(l.settle(key, -50)).toBe(true); // 40 beyond the pool: forced into Redis, which fails
    expect(l.tryTake(key, P, L, 1)).toBe(false);
    await l.close();

    // A client that was connected and is then cut off: a fresh bucket cannot be leased either.
    const redis = await client();
    const cut = leases(redis);
    const other = `${newPrefix('lease-cut')}bucket`;
    redis.disconnect();
    for (let i = 0; i < 5; i++) {
      expect(cut.tryTake(other, P, L, 1)).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(cut.settle(other, -5)).toBe(true);
    await cut.close();
  });
});
