import type { RedisClient } from './redis';

/**
 * Leased GCRA buckets: a per-minute limit held across replicas in Redis (a GCRA "theoretical
 * arrival time" per key, the representation the rpm and tpm scripts of the router and llm use),
 * served from a local pool so a request on a large limit costs no Redis round trip
 * (docs/keys.md, "Performance").
 *
 * A limit is leased when a chunk of it ({@link GcraLeaseOptions.fraction}, 2% by default) is at
 * least {@link GcraLeaseOptions.minChunkUnits} times what one request takes. The replica then
 * takes a whole chunk from the Redis bucket at once (all or nothing, as one request would) and
 * admits requests from it locally; below half a chunk it takes the next one in the background.
 * What a request does not use (a token reservation larger than the usage) goes back to the pool;
 * usage beyond a reservation is taken from it, and what the pool cannot cover is taken from Redis
 * at once (forced, as the per-request scripts do). A pool unused for
 * {@link GcraLeaseOptions.idleMs} gives what it holds back to Redis and is dropped.
 *
 * The bound: units are only ever admitted after Redis granted them, so replicas together never
 * admit more than the limit allows; a replica holds at most one chunk (plus the half chunk it
 * refills at) ahead of use, which other replicas cannot take meanwhile, and may admit it up to
 * `idleMs` after Redis granted it (a burst shifted by at most one chunk). Small limits, whose
 * chunk would be a few requests, are not leased: every request is checked in Redis, exactly.
 */

// KEYS: bucket. ARGV: period ms, limit, units, mode (take | refund | force). take: all or nothing,
// as the per-request scripts take one unit; refund: gives units back, never below an empty
// bucket; force: takes units whatever the bucket holds (usage beyond a reservation).
// Returns {allowed (1/0), wait ms}.
const LEASE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local interval = period / tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local newTat
if ARGV[4] == 'refund' then
  if tat <= now then return {1, 0} end
  newTat = math.max(now, tat - units * interval)
else
  newTat = tat + units * interval
  if ARGV[4] == 'take' and newTat - period > now then return {0, math.ceil(newTat - period - now)} end
end
redis.call('SET', KEYS[1], tostring(newTat), 'PX', math.ceil(newTat - now) + 1000)
return {1, 0}
`;

/** The name the lease script is defined under on a Redis client. */
const COMMAND = 'pmGcraLease';

/** Options of {@link GcraLeases}. */
export interface GcraLeaseOptions {
  /** The share of a limit one lease takes. @default 0.02 */
  fraction?: number;
  /** A limit is leased only when a chunk holds at least this many of one request's units. @default 8 */
  minChunkUnits?: number;
  /** A pool unused this long gives back what it holds and is dropped. @default 2000 */
  idleMs?: number;
}

interface Pool {
  key: string;
  periodMs: number;
  limit: number;
  chunk: number;
  /** Units held (never negative: usage beyond them is forced into Redis, see {@link GcraLeases.settle}). */
  units: number;
  lastUsed: number;
  refilling: boolean;
  /** Until when Redis refused a chunk (the bucket is nearly empty): requests go to Redis. */
  dryUntil: number;
}

/** Local pools of leased GCRA units, one per bucket key (see the module comment). */
export class GcraLeases {
  private readonly pools = new Map<string, Pool>();
  private readonly fraction: number;
  private readonly minChunkUnits: number;
  private readonly idleMs: number;
  private readonly sweeper: NodeJS.Timeout;
  /**
   * Leases and give-backs sent and not yet answered (with what their answers send in turn):
   * close() waits for them, so a lease in flight when it is called goes back too, before the
   * caller closes the Redis client.
   */
  private readonly pending = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly redis: RedisClient,
    options: GcraLeaseOptions = {},
  ) {
    this.fraction = options.fraction ?? 0.02;
    this.minChunkUnits = options.minChunkUnits ?? 8;
    this.idleMs = options.idleMs ?? 2_000;
    // One command per client: every GcraLeases on a client shares the script.
    if (!(COMMAND in (redis as object))) redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: LEASE_SCRIPT });
    this.sweeper = setInterval(() => this.sweep(false), Math.max(50, this.idleMs / 2));
    this.sweeper.unref();
  }

  /** The chunk a limit is leased in, or 0 when requests taking `units` each are checked in Redis one by one. */
  chunkOf(limit: number, units: number): number {
    const chunk = Math.floor(limit * this.fraction);
    return chunk >= this.minChunkUnits * Math.max(1, units) ? chunk : 0;
  }

  /**
   * Takes `units` from the local pool of `key` (a bucket of `limit` per `periodMs`) when it holds
   * them, starting the next lease in the background when the pool runs low. False: the caller
   * must take them from Redis itself (the limit is small, the pool is empty or refilling, or the
   * bucket is nearly empty).
   */
  tryTake(key: string, periodMs: number, limit: number, units: number): boolean {
    // Closed: no new pool (nobody would give it back), the caller goes to Redis.
    if (this.closed) return false;
    let pool = this.pools.get(key);
    if (pool && (pool.limit !== limit || pool.periodMs !== periodMs)) {
      // The limit changed: give back what was leased under the old one.
      this.drop(pool);
      pool = undefined;
    }
    const now = Date.now();
    if (!pool) {
      const chunk = this.chunkOf(limit, units);
      if (chunk === 0) return false;
      pool = { key, periodMs, limit, chunk, units: 0, lastUsed: now, refilling: false, dryUntil: 0 };
      this.pools.set(key, pool);
    }
    pool.lastUsed = now;
    const taken = pool.units >= units;
    if (taken) pool.units -= units;
    if (pool.units < pool.chunk / 2 && !pool.refilling && now >= pool.dryUntil) this.refill(pool);
    return taken;
  }

  /** Whether `key` has a local pool (what its settlements go to). */
  holds(key: string): boolean {
    return this.pools.has(key);
  }

  /**
   * Settles units taken from the pool of `key`: `delta` > 0 gives back a reservation the call
   * did not use, `delta` < 0 takes usage beyond it from the pool, and what the pool cannot cover
   * from Redis (in the background). False when `key` has no pool (the caller settles in Redis).
   */
  settle(key: string, delta: number): boolean {
    const pool = this.pools.get(key);
    if (!pool) return false;
    pool.units += delta;
    if (pool.units < 0) {
      // Forced into the bucket now, as an exact call's excess is. Kept as local debt it would be
      // invisible to Redis: while the bucket is exhausted no lease fits to pay it, and per-call
      // takes in Redis would keep admitting on top of it for as long as the traffic lasts.
      const owed = -pool.units;
      pool.units = 0;
      void this.send(pool, owed, 'force');
    }
    return true;
  }

  /**
   * Gives every pool back to Redis (leases still in flight too, once answered) and stops: later
   * takes return false. The limiter's Redis client stays open.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    await this.sweep(true);
    // A lease answered after its pool was dropped is given back by its handler: wait for that too.
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Tracks a command in {@link pending} until it (and its handlers) are done; never rejects. */
  private track(sent: Promise<unknown>): Promise<void> {
    const done = sent.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(done);
    void done.then(() => this.pending.delete(done));
    return done;
  }

  private refill(pool: Pool): void {
    pool.refilling = true;
    const leased = (this.redis as any)[COMMAND](pool.key, pool.periodMs, pool.limit, pool.chunk, 'take').then(
      (result: [number, number]) => {
        pool.refilling = false;
        if (Number(result[0]) === 1) {
          if (this.pools.get(pool.key) === pool) pool.units += pool.chunk;
          else void this.send(pool, pool.chunk, 'refund');
        } else pool.dryUntil = Date.now() + Math.min(Number(result[1]), 1_000);
      },
      () => {
        pool.refilling = false;
        // Redis unreachable: requests go to Redis themselves (and fail open there) for a second.
        pool.dryUntil = Date.now() + 1_000;
      },
    );
    void this.track(leased);
  }

  private sweep(all: boolean): Promise<void> {
    const now = Date.now();
    const sent: Array<Promise<void>> = [];
    for (const pool of this.pools.values()) if (all || now - pool.lastUsed >= this.idleMs) sent.push(this.drop(pool));
    return Promise.all(sent).then(() => undefined);
  }

  private drop(pool: Pool): Promise<void> {
    this.pools.delete(pool.key);
    const units = pool.units;
    pool.units = 0;
    return units > 0 ? this.send(pool, units, 'refund') : Promise.resolve();
  }

  private send(pool: Pool, units: number, mode: 'refund' | 'force'): Promise<void> {
    return this.track((this.redis as any)[COMMAND](pool.key, pool.periodMs, pool.limit, Math.ceil(units), mode));
  }
}
