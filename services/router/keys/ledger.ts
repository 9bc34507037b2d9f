/**
 * Budgets, concurrent-request leases and the spend ledger (docs/keys.md, "Spend" and
 * "Budgets").
 *
 * - Redis holds the running totals of the current day and month per key and per team, in
 *   integer microdollars, changed only by atomic scripts: `admit` before a call (budget and
 *   concurrency check, a lease with the call's estimate), `charge` after it (the real cost
 *   added, the lease dropped). Leases expire unless renewed, so a crashed replica cannot hold
 *   slots or reservations for long.
 * - PostgreSQL holds one row per billed call (`promptmesh_spend`), written in batches from a
 *   per-replica buffer with `ON CONFLICT (call_id) DO NOTHING`, so a retried flush never counts a
 *   call twice.
 * - Redis totals are only counted while an `epoch` marker exists. A Redis that lost its data has
 *   none: scripts then count nothing, and one replica reloads the period totals from PostgreSQL
 *   and sets a new epoch (under an exclusive advisory lock that flushes take shared). A call
 *   counted in Redis under another epoch (or in none) is added to the new totals when its row
 *   reaches PostgreSQL, so the totals after a restart are what PostgreSQL holds, exactly.
 *
 * - Large limits are admitted without a round trip (docs/keys.md, "Performance"): rpm from
 *   chunks leased from the GCRA buckets (kit/gcra-leases.ts), budgets and concurrency from a
 *   per-key block this replica reserved in the in-flight sets (a member `<id>|<slots>s|<amount>`
 *   every admission counts), whose calls are charged in batches that shrink it. The overshoot
 *   bound is the exact path's: a block is granted only whole, calls at risk never use one.
 *
 * Every key is under one hash tag (`{budget}`), so a key's and its team's totals change in one
 * script on one Redis Cluster slot.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Logger, RedisClient } from '../../kit';
import type { KeyBudget } from '../auth';
import { GcraLeases } from '../../kit/gcra-leases';
import { GCRA_LUA, REDIS_NOW_LUA } from '../key-rate-limit';

/** The advisory lock between a reload of the totals (exclusive) and flushes (shared). */
const SPEND_LOCK_KEY = 0x706d2d7370656e64n.toString(); // "pm-spend"

/** How long a lease lives without renewal; in-flight calls renew theirs every third of it. */
export const LEASE_MS = 30_000;
/** Leases older than this are no longer renewed (and expire). */
const MAX_CALL_MS = 15 * 60_000;
const DAY_TTL_MS = 3 * 86_400_000;
const MONTH_TTL_MS = 35 * 86_400_000;

/** The day and month a time falls in (UTC), as the totals name them. */
export function periodIds(at: Date): { day: string; month: string } {
  const iso = at.toISOString();
  return { day: iso.slice(0, 10), month: iso.slice(0, 7) };
}

/** When the period that `at` falls in ends (UTC midnight, or the first of the next month). */
export function periodEnd(period: 'day' | 'month', at: Date): Date {
  return period === 'day'
    ? new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1))
    : new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
}

// An in-flight set's members are a call's lease, `<id>|<estimate>` (one slot), or a replica's
// block, `<id>|<slots>s|<amount>` (docs/keys.md, "Performance"): the slots and the microdollars
// it holds for the calls it admits locally.
// held(inflight) returns the slots and the microdollars its members hold.
const INFLIGHT_LUA = `
local function held(inflight)
  local slots, amount = 0, 0
  for _, m in ipairs(redis.call('ZRANGE', inflight, 0, -1)) do
    slots = slots + tonumber(string.match(m, '|(%d+)s|') or '1')
    amount = amount + tonumber(string.match(m, '|(%d+)$') or '0')
  end
  return slots, amount
end
`;

// A block: what a replica reserves in Redis for the calls of one key it then admits locally,
// with no round trip (docs/keys.md, "Performance"): microdollars (up to `blockCalls` estimates,
// a `budgetDiv`th of each budget and a quarter of what is left of it) and concurrency slots (a
// `slotDiv`th of each limit and a quarter of the free ones). Granted only when it fits whole.
// KEYS: epoch, estimate, then per scope: spent (of the budget's period), inflight.
// ARGV: leaseMs, id, n, blockCalls, budgetDiv, slotDiv, then per scope: budget (-1 none),
// maxConcurrent (-1 none).
// Returns {-1} unseeded, {2} no block fits, {0, member, amount, slots, estimate}.
const BLOCK = `${REDIS_NOW_LUA}${INFLIGHT_LUA}
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local est = tonumber(redis.call('GET', KEYS[2]) or '-1')
local n = tonumber(ARGV[3])
local amount, slots = nil, nil
for i = 1, n do
  local inflight = KEYS[2 + 2 * i]
  local budget = tonumber(ARGV[5 + 2 * i])
  local maxc = tonumber(ARGV[6 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local usedSlots, reserved = held(inflight)
  if maxc >= 0 then
    local s = math.min(math.floor(maxc / tonumber(ARGV[6])), math.floor((maxc - usedSlots) / 4))
    if slots == nil or s < slots then slots = s end
  end
  if budget >= 0 then
    local left = budget - tonumber(redis.call('GET', KEYS[1 + 2 * i]) or '0') - reserved
    local a = math.min(math.floor(budget / tonumber(ARGV[5])), math.floor(left / 4))
    if amount == nil or a < amount then amount = a end
  end
end
if amount ~= nil then
  if est <= 0 then return {2} end
  amount = math.min(amount, est * tonumber(ARGV[4]))
  if amount < 4 * est then return {2} end
else
  amount = 0
end
if slots ~= nil then
  if slots < 2 then return {2} end
else
  slots = 0
end
local member = ARGV[2] .. '|' .. slots .. 's|' .. amount
for i = 1, n do
  redis.call('ZADD', KEYS[2 + 2 * i], now + tonumber(ARGV[1]), member)
  redis.call('PEXPIRE', KEYS[2 + 2 * i], tonumber(ARGV[1]) * 2)
end
return {0, member, amount, slots, math.max(est, 0)}
`;

// The one script a request's admission costs (one round trip): the key's and team's per-minute
// request limits (GCRA, shared with key-rate-limit.ts), then, on billed routes, the budgets and
// concurrency limits of the key and its team and a lease holding the call's estimate. Nothing is
// taken unless everything passes.
// KEYS: epoch, estimate, then per rate: its GCRA key, then per scope: spent (of the budget's
// period), inflight.
// ARGV: leaseMs, leaseId, riskFree, n (scopes), r (rates), ratePeriodMs, then per rate: rpm, then
// per scope: budget (-1 none), maxConcurrent (-1 none).
// Returns {5, j, waitMs} rate j refused, {-1} unseeded (the rates were taken, nothing else),
// {1, i, spent} over budget, {4, i, spent} the rest of the budget is committed to calls in
// flight, {2, i} at max concurrency, {3} would not fit and this replica already has a call at
// risk, {0, risky, member} admitted (risky: its estimate did not fit; member '' without scopes).
const ADMIT = `${REDIS_NOW_LUA}${GCRA_LUA}${INFLIGHT_LUA}
local n = tonumber(ARGV[4])
local r = tonumber(ARGV[5])
local period = tonumber(ARGV[6])
local tats = {}
for j = 1, r do
  local newTat, wait = gcraPlan(KEYS[2 + j], now, period, tonumber(ARGV[6 + j]))
  if not newTat then return {5, j, wait} end
  tats[j] = newTat
end
local function takeRates()
  for j = 1, r do gcraTake(KEYS[2 + j], now, tats[j]) end
end
if n == 0 then
  takeRates()
  return {0, 0, ''}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  takeRates()
  return {-1}
end
local est = tonumber(redis.call('GET', KEYS[2]) or '-1')
local kb = 2 + r
local ab = 6 + r
local risky = 0
for i = 1, n do
  local spentKey = KEYS[kb + 2 * i - 1]
  local inflight = KEYS[kb + 2 * i]
  local budget = tonumber(ARGV[ab + 2 * i - 1])
  local maxc = tonumber(ARGV[ab + 2 * i])
  redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
  local usedSlots, reserved = held(inflight)
  if maxc >= 0 and usedSlots >= maxc then return {2, i} end
  if budget >= 0 then
    local spent = tonumber(redis.call('GET', spentKey) or '0')
    if spent >= budget then return {1, i, spent} end
    if est < 0 or spent + reserved + est > budget then
      if spent + reserved >= budget then return {4, i, spent} end
      risky = 1
    end
  end
end
if risky == 1 and ARGV[3] ~= '1' then return {3} end
takeRates()
local member = ARGV[2] .. '|' .. tostring(math.max(est, 0))
for i = 1, n do
  redis.call('ZADD', KEYS[kb + 2 * i], now + tonumber(ARGV[1]), member)
  redis.call('PEXPIRE', KEYS[kb + 2 * i], tonumber(ARGV[1]) * 2)
end
return {0, risky, member}
`;

// KEYS: epoch, estimate, then per scope: spentDay, spentMonth, inflight.
// ARGV: member ('' none), cost, n, dayTtl, monthTtl, the member that replaces it ('' none: a
// block's smaller reservation), leaseMs, the largest single cost (for the estimate).
// Returns {the epoch counted in, or '', lost}: lost 1 when a block's member (one with a
// replacement) was in none of the in-flight sets, so the block holds nothing in Redis any more.
const CHARGE = `${REDIS_NOW_LUA}
local n = tonumber(ARGV[3])
local found = 0
if ARGV[1] ~= '' then
  for i = 1, n do
    local inflight = KEYS[2 + 3 * i]
    -- A block that was still held (not expired, not lost with Redis's data) shrinks.
    if redis.call('ZREM', inflight, ARGV[1]) == 1 then
      found = 1
      if ARGV[6] ~= '' then
        redis.call('ZADD', inflight, now + tonumber(ARGV[7]), ARGV[6])
        redis.call('PEXPIRE', inflight, tonumber(ARGV[7]) * 2)
      end
    end
  end
end
local lost = 0
if ARGV[6] ~= '' and found == 0 then lost = 1 end
local epoch = redis.call('GET', KEYS[1])
if not epoch then return {'', lost} end
local cost = tonumber(ARGV[2])
if cost > 0 then
  for i = 1, n do
    for j = 0, 1 do
      local k = KEYS[3 * i + j]
      redis.call('INCRBY', k, cost)
      if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, tonumber(ARGV[4 + j])) end
    end
  end
  local est = tonumber(redis.call('GET', KEYS[2]) or '-1')
  local largest = tonumber(ARGV[8])
  if largest > est then redis.call('SET', KEYS[2], largest, 'PX', tonumber(ARGV[5])) end
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], 0, 'PX', tonumber(ARGV[5]))
end
return {epoch, lost}
`;

// KEYS: epoch, then per scope: spentDay, spentMonth. ARGV: counted epoch, cost, n, dayTtl, monthTtl.
// Adds a flushed call's cost unless the current epoch already counted it (or there is none).
const READD = `
local epoch = redis.call('GET', KEYS[1])
if not epoch or epoch == ARGV[1] then return 0 end
local n = tonumber(ARGV[3])
for i = 1, n do
  for j = 0, 1 do
    local k = KEYS[2 * i + j]
    redis.call('INCRBY', k, tonumber(ARGV[2]))
    if redis.call('PTTL', k) < 0 then redis.call('PEXPIRE', k, tonumber(ARGV[4 + j])) end
  end
end
return 1
`;

// KEYS: epoch, then totals. ARGV: new epoch, then per total: value, ttl.
const SEED = `
local current = redis.call('GET', KEYS[1])
if current then return current end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 * i - 2], 'PX', tonumber(ARGV[2 * i - 1]))
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`;

// KEYS: inflight sets. ARGV: member, leaseMs. Extends a lease that still exists.
const RENEW = `${REDIS_NOW_LUA}for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]) * 2)
end
return 1
`;

/** One budget or concurrency scope a call counts against: its key, and its team if any. */
export interface BudgetScope {
  kind: 'key' | 'team';
  id: string;
  budget?: KeyBudget;
  maxConcurrent?: number;
}

/** Why a call was refused before it started. */
export class BudgetRefusal extends Error {
  constructor(
    /**
     * `budget`: spent; `committed`: what is left is reserved by calls in flight (they will most
     * likely spend it); `concurrency`: at the concurrent-request limit.
     */
    readonly reason: 'budget' | 'committed' | 'concurrency',
    readonly scope: BudgetScope,
    /** For `budget`: when the period resets. */
    readonly resetsAt?: Date,
  ) {
    super(reason === 'concurrency' ? `${scope.kind} '${scope.id}' is at its limit of ${scope.maxConcurrent} concurrent requests` : `${scope.kind} '${scope.id}' is over its budget`);
  }
}

/** A per-minute request limit an admission takes one request from: a key's or its team's `rpm`. */
export interface RateScope {
  kind: 'key' | 'team';
  id: string;
  /** Requests per minute, held across replicas. */
  rpm: number;
}

/** Why a request was refused by a per-minute request limit (nothing else was taken). */
export class RateRefusal extends Error {
  constructor(
    readonly scope: RateScope,
    /** How long until one more request would be allowed. */
    readonly retryAfterMs: number,
  ) {
    super(`${scope.kind} '${scope.id}' is over its limit of ${scope.rpm} requests per minute`);
  }
}

/** What {@link Ledger.admitRequest} decided for a request it let through. */
export interface Admission {
  /** The lease of a call whose budgets or concurrency limits were checked; settle it once. */
  lease: Lease | undefined;
  /** The checks that went unchecked because Redis could not be reached (fail open), as `x-promptmesh-degraded` names them. */
  degraded: Array<'rate-limit' | 'budget'>;
}

/** A call admitted by {@link Ledger.admit}: settle it once with what it cost. */
export interface Lease {
  readonly callId: string;
  /** Whether the call was admitted as this replica's one call at risk of passing a budget. */
  readonly risky: boolean;
}

/** What one billed call used, as the spend ledger records it. */
export interface CallUsage {
  provider: string;
  model: string;
  prompt?: string;
  /** The exact cost in microdollars (llm's `cost_micro_usd`). */
  microUsd: number;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  cacheHit: boolean;
}

interface SpendRow extends CallUsage {
  callId: string;
  at: Date;
  keyId: string;
  team: string | undefined;
  /** The Redis epoch the cost was counted in ('' when it was not counted). */
  epoch: string;
}

interface HeldLease extends Lease {
  member: string;
  startedAt: number;
  /** The in-flight sets the lease is in, by scope kind. */
  inflight: { key?: string; team?: string };
  riskIds: string[];
}

/**
 * What this replica reserved in Redis for one key's calls, which it admits locally while the
 * block holds their estimates and slots (docs/keys.md, "Performance"). Its member in the
 * scopes' in-flight sets shrinks as its calls' costs are charged.
 */
interface Block {
  keyId: string;
  team: string | undefined;
  /** The key's and team's limits it was taken under; another signature retires it. */
  signature: string;
  inflightKeys: { key?: string; team?: string };
  /** Its member in the in-flight sets, as last sent. */
  member: string;
  /** A new member name per change, so a rename never meets its old self. */
  id: string;
  seq: number;
  /** Microdollars its member holds in Redis, as last sent (0 when no scope has a budget). */
  reserved: number;
  /** The size it was granted at; below half, the next block is taken. */
  granted: number;
  /** Concurrency slots it holds (0: no scope limits concurrency). */
  slots: number;
  /** One call's estimate: the key's largest cost so far. */
  est: number;
  inflight: number;
  inflightEst: number;
  /** Costs settled locally, not yet sent to Redis, and the rows waiting for that. */
  pendingCost: number;
  pendingLargest: number;
  pending: Array<(epoch: string) => void>;
  timer: NodeJS.Timeout | undefined;
  retired: boolean;
  /** Its member is gone from Redis (retired, drained and sent). */
  released: boolean;
  lastUsed: number;
}

/** What one CHARGE script counts (see {@link Ledger} `charge`). */
interface Charge {
  keyId: string;
  team: string | undefined;
  /** The in-flight sets `member` is in, by scope kind (none: the call held no lease). */
  inflight?: { key?: string; team?: string };
  member: string;
  replacement: string;
  cost: number;
  largest: number;
}

/** A call admitted locally from a {@link Block}. */
interface BlockLease extends Lease {
  block: Block;
  est: number;
}

/** How a block is sized (see the BLOCK script). */
const BLOCK_CALLS = 64;
const BLOCK_BUDGET_DIV = 64;
const BLOCK_SLOT_DIV = 16;
/** Charges of a block's calls are sent together, this long after the first. */
const BLOCK_CHARGE_MS = 50;
/** A block with no call this long is given back. */
const BLOCK_IDLE_MS = 1_000;

/** Options of {@link Ledger}. */
export interface LedgerOptions {
  redis: RedisClient;
  pool: pg.Pool;
  keyPrefix: string;
  logger: Logger;
  /** How often buffered rows are written to PostgreSQL. @default 1000 */
  flushIntervalMs?: number;
  /** Rows per INSERT. @default 500 */
  batchSize?: number;
  /** The window the `rpm` limits of {@link Ledger.admitRequest} count over. @default 60000 */
  ratePeriodMs?: number;
  /**
   * Whether large limits are admitted locally, from blocks and leased rpm (docs/keys.md,
   * "Performance"); false checks every call in Redis. @default true
   */
  local?: boolean;
}

/** The budgets, leases and spend ledger of one router replica (see the module comment). */
export class Ledger {
  private readonly redis: RedisClient;
  private readonly base: string;
  private buffer: SpendRow[] = [];
  /** Charges settled in this turn of the event loop, sent together (see {@link settle}). */
  private charges: Array<{ charge: Charge; done: (epoch: string) => void }> = [];
  /** Settlements whose charge has not come back yet (their rows are not buffered yet). */
  private readonly settling = new Set<Promise<void>>();
  /** Written rows whose cost could not be added to the Redis totals yet (Redis was down). */
  private readds: SpendRow[] = [];
  private flushing: Promise<void> | undefined;
  private seeding: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly renewer: NodeJS.Timeout;
  /** Leases this replica holds, renewed while their calls run. */
  private readonly held = new Set<HeldLease>();
  /** Scopes with a call at risk on this replica, and who waits for it. */
  private readonly atRisk = new Map<string, Array<() => void>>();
  private redisDown = false;
  private readonly ratePeriodMs: number;
  /** Leased `rpm` of large limits. */
  private readonly rateLeases: GcraLeases | undefined;
  /** Each key's current block, and blocks retired but not yet given back. */
  private readonly blocks = new Map<string, Block>();
  private readonly retired = new Set<Block>();
  /** Keys whose block is being taken, and keys no block fits until then. */
  private readonly acquiring = new Set<string>();
  private readonly noBlockUntil = new Map<string, number>();
  private readonly idler: NodeJS.Timeout;
  private readonly blocksOn: boolean;
  /** Costs of calls no limit checked, per key and team, waiting for {@link sendUnchecked}. */
  private readonly unchecked = new Map<string, { keyId: string; team: string | undefined; cost: number; largest: number; waiting: Array<(epoch: string) => void> }>();
  private uncheckedTimer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(private readonly options: LedgerOptions) {
    this.redis = options.redis;
    this.ratePeriodMs = options.ratePeriodMs ?? 60_000;
    this.base = `${options.keyPrefix}budget:{budget}:`;
    const r = this.redis as any;
    r.defineCommand('pmBudgetAdmit', { lua: ADMIT });
    r.defineCommand('pmBudgetCharge', { lua: CHARGE });
    r.defineCommand('pmBudgetReadd', { lua: READD });
    r.defineCommand('pmBudgetSeed', { lua: SEED });
    r.defineCommand('pmBudgetRenew', { lua: RENEW });
    // A Redis that comes back may have lost its data: reload the totals before calls need them.
    this.redis.on('ready', () => {
      // Blocks may be gone with the data: none is admitted from until Redis grants it again.
      for (const block of [...this.blocks.values()]) this.retire(block);
      void this.ensureSeeded().catch(() => undefined);
    });
    this.timer = setInterval(() => void this.flush().catch(() => undefined), options.flushIntervalMs ?? 1_000);
    this.timer.unref();
    this.renewer = setInterval(() => this.renew(), LEASE_MS / 3);
    this.renewer.unref();
    const local = options.local ?? true;
    this.rateLeases = local ? new GcraLeases(this.redis) : undefined;
    if (local) r.defineCommand('pmBudgetBlock', { lua: BLOCK });
    this.blocksOn = local;
    this.idler = setInterval(() => this.retireIdle(), BLOCK_IDLE_MS / 2);
    this.idler.unref();
  }

  private spentKey(scope: { kind: 'key' | 'team'; id: string }, periodId: string): string {
    return `${this.base}spent:${scope.kind === 'key' ? 'k' : 't'}:${scope.id}:${periodId}`;
  }

  private inflightKey(scope: BudgetScope): string {
    return `${this.base}inflight:${scope.kind === 'key' ? 'k' : 't'}:${scope.id}`;
  }

  private get epochKey(): string {
    return `${this.base}epoch`;
  }

  private estimateKey(keyId: string): string {
    return `${this.base}est:${keyId}`;
  }

  /** Whether any of `scopes` needs a check before the call (a budget or a concurrency limit). */
  static needsAdmission(scopes: readonly BudgetScope[]): boolean {
    return scopes.some((s) => s.budget !== undefined || s.maxConcurrent !== undefined);
  }

  private rateKey(scope: RateScope): string {
    return `${this.base}rpm:${scope.kind === 'key' ? 'k' : 't'}:${scope.id}`;
  }

  /**
   * Checks the budgets and concurrency limits of `scopes` (the key first, then its team) and
   * takes a lease. Throws {@link BudgetRefusal}. A call whose estimate does not fit the rest of a
   * budget waits until this replica has no other such call in flight (the overshoot bound).
   * Resolves undefined when Redis cannot be reached (fail open; the ledger still counts).
   */
  async admit(keyId: string, scopes: readonly BudgetScope[]): Promise<Lease | undefined> {
    return (await this.admitRequest(keyId, scopes, [])).lease;
  }

  /**
   * A request's whole admission, in at most one Redis round trip (one script): one request from
   * each of `rates` (the key's and its team's `rpm`), then {@link admit}'s budget and concurrency
   * checks of `scopes` and their lease; nothing is taken unless everything passes. Large limits
   * are taken locally, with no round trip: rpm from leased chunks, budgets and concurrency from
   * the key's block (`team`: the key's team, charged with it). Throws
   * {@link RateRefusal} (checked first) or {@link BudgetRefusal}. When Redis cannot be reached the
   * request passes unchecked (fail open), and `degraded` says what was not checked.
   */
  async admitRequest(keyId: string, scopes: readonly BudgetScope[], rates: readonly RateScope[], team?: string): Promise<Admission> {
    const checked = scopes.filter((s) => s.budget !== undefined || s.maxConcurrent !== undefined);
    if (checked.length === 0 && rates.length === 0) return { lease: undefined, degraded: [] };
    // Large limits first, locally: leased rpm and this key's block (no round trip).
    const leased: RateScope[] = [];
    let remote: readonly RateScope[] = rates;
    if (this.rateLeases && rates.length > 0) {
      const unleased: RateScope[] = [];
      for (const r of rates) (this.rateLeases.tryTake(this.rateKey(r), this.ratePeriodMs, r.rpm, 1) ? leased : unleased).push(r);
      remote = unleased;
    }
    const giveBack = () => {
      for (const r of leased) this.rateLeases!.settle(this.rateKey(r), 1);
    };
    const local = checked.length > 0 ? this.admitFromBlock(keyId, team ?? scopes.find((s) => s.kind === 'team')?.id, checked) : undefined;
    if (local || checked.length === 0) {
      if (remote.length === 0) return { lease: local, degraded: [] };
      try {
        const admitted = await this.admitExact(keyId, [], remote);
        return { lease: local, degraded: admitted.degraded };
      } catch (err) {
        giveBack();
        if (local) this.settle(local, keyId, undefined, undefined);
        throw err;
      }
    }
    try {
      return await this.admitExact(keyId, checked, remote);
    } catch (err) {
      giveBack();
      throw err;
    }
  }

  /**
   * The per-scope part of the admission and block scripts: KEYS the spent total (of the
   * budget's period) and the in-flight set, ARGV the budget and the concurrency limit (-1 none).
   */
  private scopeParts(checked: readonly BudgetScope[], at: Date): { keys: string[]; args: number[] } {
    const ids = periodIds(at);
    const keys: string[] = [];
    const args: number[] = [];
    for (const s of checked) {
      keys.push(this.spentKey(s, s.budget ? ids[s.budget.period] : ids.day), this.inflightKey(s));
      args.push(s.budget ? s.budget.microUsd : -1, s.maxConcurrent ?? -1);
    }
    return { keys, args };
  }

  /** {@link admitRequest} in Redis: one script. */
  private async admitExact(keyId: string, checked: readonly BudgetScope[], rates: readonly RateScope[]): Promise<Admission> {
    const now = new Date();
    const perScope = this.scopeParts(checked, now);
    let pendingRates = rates;
    const riskIds = checked.filter((s) => s.budget).map((s) => `${s.kind}:${s.id}`);
    for (let attempt = 0; ; attempt++) {
      const keys = [this.epochKey, this.estimateKey(keyId), ...pendingRates.map((r) => this.rateKey(r)), ...perScope.keys];
      const args: Array<string | number> = [LEASE_MS, randomUUID(), 0, checked.length, pendingRates.length, this.ratePeriodMs, ...pendingRates.map((r) => r.rpm), ...perScope.args];
      // Claim this replica's one slot for a call at risk before asking, so two admissions in
      // flight at once cannot both take it; given back unless the call is admitted at risk.
      const claim = riskIds.length > 0 && riskIds.every((id) => !this.atRisk.has(id));
      if (claim) for (const id of riskIds) this.atRisk.set(id, []);
      args[2] = claim ? 1 : 0;
      let result: [number, number?, (string | number)?];
      try {
        result = (await (this.redis as any).pmBudgetAdmit(keys.length, ...keys, ...args)) as [number, number?, (string | number)?];
        this.up();
      } catch (err) {
        if (claim) this.releaseRisk(riskIds);
        this.down(err);
        const degraded: Admission['degraded'] = [];
        if (pendingRates.length > 0) degraded.push('rate-limit');
        if (checked.length > 0) degraded.push('budget');
        return { lease: undefined, degraded };
      }
      const code = Number(result[0]);
      if (claim && !(code === 0 && Number(result[1]) === 1)) this.releaseRisk(riskIds);
      if (code === 5) throw new RateRefusal(pendingRates[Number(result[1]) - 1]!, Number(result[2]));
      if (code === -1) {
        // The script took the rates; what is left is the budget, once the totals are back.
        pendingRates = [];
        if (attempt > 2) return { lease: undefined, degraded: ['budget'] };
        await this.ensureSeeded();
        continue;
      }
      if (code === 1 || code === 2 || code === 4) {
        const scope = checked[Number(result[1]) - 1]!;
        const reason = code === 1 ? 'budget' : code === 4 ? 'committed' : 'concurrency';
        throw new BudgetRefusal(reason, scope, code === 2 ? undefined : periodEnd(scope.budget!.period, now));
      }
      if (code === 3) {
        // Wait for this replica's call at risk to settle, then look again.
        if (riskIds.every((id) => !this.atRisk.has(id))) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, LEASE_MS);
          const done = () => {
            clearTimeout(timer);
            resolve();
          };
          for (const id of riskIds) this.atRisk.get(id)?.push(done);
        });
        continue;
      }
      if (checked.length === 0) return { lease: undefined, degraded: [] };
      const risky = Number(result[1]) === 1;
      const lease: HeldLease = {
        callId: randomUUID(),
        startedAt: Date.now(),
        risky,
        member: String(result[2]),
        inflight: Object.fromEntries(checked.map((s) => [s.kind, this.inflightKey(s)])),
        riskIds: risky ? riskIds : [],
      };
      this.held.add(lease);
      return { lease, degraded: [] };
    }
  }

  /**
   * Admits a call from this key's block when it holds the call's estimate and a slot: no round
   * trip. Takes the next block in the background when this one runs low (or there is none);
   * undefined: the call goes to Redis.
   */
  private admitFromBlock(keyId: string, team: string | undefined, checked: readonly BudgetScope[]): BlockLease | undefined {
    if (!this.blocksOn) return undefined;
    let signature = team ?? '';
    for (const c of checked) signature += `|${c.kind}:${c.id}:${c.budget ? `${c.budget.microUsd}/${c.budget.period}` : ''}:${c.maxConcurrent ?? ''}`;
    let block = this.blocks.get(keyId);
    if (block && block.signature !== signature) {
      this.retire(block);
      block = undefined;
    }
    const now = Date.now();
    let lease: BlockLease | undefined;
    // A block of concurrency slots only (no scope has a budget: granted 0) holds no microdollars;
    // checking its amount against the estimate refused every call once the key's estimate was
    // known (> 0), so each call retired the block, took another and still went to Redis.
    const budgeted = (b: Block) => b.granted > 0;
    if (block && (!budgeted(block) || block.reserved - block.pendingCost - block.inflightEst >= block.est) && (block.slots === 0 || block.inflight < block.slots)) {
      block.inflight++;
      block.inflightEst += block.est;
      block.lastUsed = now;
      lease = { callId: randomUUID(), risky: false, block, est: block.est };
    } else if (block) {
      // Spent or full: what it holds goes back before this call asks Redis (sent first, so the
      // call's own script sees it), and the next block is taken below.
      this.retire(block);
    }
    const low = !block || block.retired || (budgeted(block) && block.reserved - block.pendingCost - block.inflightEst < block.granted / 2);
    if (low && !this.acquiring.has(keyId) && now >= (this.noBlockUntil.get(keyId) ?? 0)) void this.acquireBlock(keyId, team, signature, checked);
    return lease;
  }

  /** Takes a block for `keyId` (the BLOCK script); the key's current one, if any, retires. */
  private async acquireBlock(keyId: string, team: string | undefined, signature: string, checked: readonly BudgetScope[]): Promise<void> {
    this.acquiring.add(keyId);
    try {
      const id = `b${randomUUID()}`;
      const perScope = this.scopeParts(checked, new Date());
      const keys = [this.epochKey, this.estimateKey(keyId), ...perScope.keys];
      const args: Array<string | number> = [LEASE_MS, id, checked.length, BLOCK_CALLS, BLOCK_BUDGET_DIV, BLOCK_SLOT_DIV, ...perScope.args];
      let result: [number, string?, number?, number?, number?];
      try {
        result = (await (this.redis as any).pmBudgetBlock(keys.length, ...keys, ...args)) as typeof result;
      } catch {
        this.noBlockUntil.set(keyId, Date.now() + BLOCK_IDLE_MS);
        return;
      }
      if (Number(result[0]) !== 0) {
        // No block fits (small or nearly spent limits, no estimate yet): calls go to Redis a while.
        this.noBlockUntil.set(keyId, Date.now() + BLOCK_IDLE_MS);
        return;
      }
      const amount = Number(result[2]);
      const block: Block = {
        keyId,
        team,
        signature,
        inflightKeys: Object.fromEntries(checked.map((c) => [c.kind, this.inflightKey(c)])),
        member: String(result[1]),
        id,
        seq: 0,
        reserved: amount,
        granted: amount,
        slots: Number(result[3]),
        est: Number(result[4]),
        inflight: 0,
        inflightEst: 0,
        pendingCost: 0,
        pendingLargest: 0,
        pending: [],
        timer: undefined,
        retired: false,
        released: false,
        lastUsed: Date.now(),
      };
      const current = this.blocks.get(keyId);
      if (current) this.retire(current);
      this.blocks.set(keyId, block);
      // Granted after close() began: given back with the rest, not left to expire.
      if (this.closing) this.retire(block);
    } finally {
      this.acquiring.delete(keyId);
    }
  }

  /** Stops admitting from `block`; what it holds beyond its calls in flight goes back now. */
  private retire(block: Block): void {
    if (block.retired) return;
    block.retired = true;
    if (this.blocks.get(block.keyId) === block) this.blocks.delete(block.keyId);
    this.retired.add(block);
    this.sendBlock(block);
  }

  /** Gives back the blocks no call used for a while (their slots and microdollars). */
  private retireIdle(): void {
    const now = Date.now();
    for (const block of this.blocks.values()) if (block.inflight === 0 && now - block.lastUsed >= BLOCK_IDLE_MS) this.retire(block);
    for (const [keyId, until] of this.noBlockUntil) if (until <= now) this.noBlockUntil.delete(keyId);
  }

  /** A block call's end: its estimate is freed, its cost waits for the block's next charge. */
  private settleFromBlock(lease: BlockLease, usage: CallUsage | undefined): Promise<void> {
    const { block } = lease;
    block.inflight--;
    block.inflightEst -= lease.est;
    const cost = usage?.microUsd ?? 0;
    block.pendingCost += cost;
    block.pendingLargest = Math.max(block.pendingLargest, cost);
    // A call dearer than the estimate raises it (the script's rule for the key's estimate).
    if (cost > block.est) block.est = cost;
    const at = new Date();
    const settled = new Promise<void>((resolve) => {
      block.pending.push((epoch) => {
        if (usage) this.buffer.push({ ...usage, callId: lease.callId, at, keyId: block.keyId, team: block.team, epoch });
        resolve();
      });
    });
    this.settling.add(settled);
    void settled.then(() => this.settling.delete(settled));
    if (block.retired && block.inflight === 0) this.sendBlock(block);
    else block.timer ??= setTimeout(() => this.sendBlock(block), BLOCK_CHARGE_MS);
    return settled;
  }

  /**
   * Sends a block's charges (one script: the costs onto the totals, its member shrunk by them,
   * or given back when it is retired with nothing in flight), and resolves the calls waiting.
   */
  private sendBlock(block: Block): void {
    if (block.timer) clearTimeout(block.timer);
    block.timer = undefined;
    if (block.released) return;
    const cost = block.pendingCost;
    const largest = block.pendingLargest;
    const waiting = block.pending.splice(0);
    block.pendingCost = 0;
    block.pendingLargest = 0;
    let next = '';
    if (!block.retired) block.reserved = Math.max(0, block.reserved - cost);
    else if (block.inflight > 0) {
      block.reserved = Math.min(Math.max(0, block.reserved - cost), block.inflightEst);
      // Its slots shrink to its calls in flight too (they kept the whole grant, refusing other
      // calls for slots no call used until the block drained).
      if (block.slots > 0) block.slots = Math.min(block.slots, block.inflight);
    }
    else {
      block.reserved = 0;
      block.released = true;
      this.retired.delete(block);
    }
    if (!block.released) next = `${block.id}.${++block.seq}|${block.slots}s|${block.reserved}`;
    const previous = block.member;
    block.member = next;
    const charge = { keyId: block.keyId, team: block.team, inflight: block.inflightKeys, member: previous, replacement: next, cost, largest };
    this.charge(charge, (epoch, lost) => {
      // Redis lost its data, and the block with it: it admits no more. The epoch alone does not
      // tell when another replica already reloaded the totals (the charge is counted under the
      // new epoch), so the script also says when the block's member was gone: admitting on from
      // it would pass calls Redis holds nothing for (past the overshoot bound). A charge Redis
      // did not answer leaves the member's name unknown: the block retires too.
      if (epoch === '' || lost) this.retire(block);
      for (const done of waiting) done(epoch);
    });
  }

  /**
   * Counts a finished call: its cost goes onto the key's and team's totals and its lease is
   * dropped (one script), and its row is buffered for PostgreSQL. `usage` undefined: nothing
   * was billed (the lease is only released). Off the answer's path: a leased call's script is
   * sent after the current turn of the event loop (the answer is written first), with every
   * other call settled in that turn; a block's calls, and calls no limit checked, go out in
   * batches every 50 ms. The promise resolves once the call was counted.
   */
  settle(lease: Lease | undefined, keyId: string, team: string | undefined, usage: CallUsage | undefined): Promise<void> {
    if (lease && 'block' in lease) return this.settleFromBlock(lease as BlockLease, usage);
    const held = lease as HeldLease | undefined;
    // No longer renewed; its slot for a call at risk is freed once the charge was counted, so a
    // call waiting for it sees this one's cost.
    if (held) this.held.delete(held);
    if (!usage && !held) return Promise.resolve();
    if (!held && this.blocksOn) return this.settleUnchecked(keyId, team, usage!);
    const at = new Date();
    const cost = usage?.microUsd ?? 0;
    const settled = new Promise<void>((resolve) => {
      this.charges.push({
        charge: { keyId, team, inflight: held?.inflight, member: held?.member ?? '', replacement: '', cost, largest: cost },
        done: (epoch) => {
          if (held) this.releaseRisk(held.riskIds);
          if (usage) this.buffer.push({ ...usage, callId: held?.callId ?? randomUUID(), at, keyId, team, epoch });
          resolve();
        },
      });
      if (this.charges.length === 1) setImmediate(() => this.sendCharges());
    });
    this.settling.add(settled);
    void settled.then(() => this.settling.delete(settled));
    return settled;
  }

  /**
   * A call no budget or concurrency limit checked (its key and team have none): nothing is
   * admitted against its totals, so its cost goes out with the key's other such calls every 50
   * ms, one script per key and team, as a block's calls do.
   */
  private settleUnchecked(keyId: string, team: string | undefined, usage: CallUsage): Promise<void> {
    const id = `${keyId}\u0000${team ?? ''}`;
    let batch = this.unchecked.get(id);
    if (!batch) {
      batch = { keyId, team, cost: 0, largest: 0, waiting: [] };
      this.unchecked.set(id, batch);
    }
    batch.cost += usage.microUsd;
    batch.largest = Math.max(batch.largest, usage.microUsd);
    const at = new Date();
    const settled = new Promise<void>((resolve) => {
      batch.waiting.push((epoch) => {
        this.buffer.push({ ...usage, callId: randomUUID(), at, keyId, team, epoch });
        resolve();
      });
    });
    this.settling.add(settled);
    void settled.then(() => this.settling.delete(settled));
    this.uncheckedTimer ??= setTimeout(() => this.sendUnchecked(), BLOCK_CHARGE_MS);
    return settled;
  }

  /** Sends the batches of {@link settleUnchecked}: one charge script per key and team. */
  private sendUnchecked(): void {
    if (this.uncheckedTimer) clearTimeout(this.uncheckedTimer);
    this.uncheckedTimer = undefined;
    const batches = [...this.unchecked.values()];
    this.unchecked.clear();
    for (const b of batches) {
      this.charge({ keyId: b.keyId, team: b.team, member: '', replacement: '', cost: b.cost, largest: b.largest }, (epoch) => {
        for (const done of b.waiting) done(epoch);
      });
    }
  }

  /**
   * Sends the charges queued by {@link settle}, back to back (one round trip of waiting); each
   * is counted, or not, on its own, as if sent alone.
   */
  private sendCharges(): void {
    for (const c of this.charges.splice(0)) this.charge(c.charge, c.done);
  }

  /**
   * Sends one CHARGE script: `cost` onto the key's and its team's totals of this day and month,
   * `member` out of the in-flight sets and `replacement` (a block's smaller reservation) in its
   * place. `done` gets the epoch the cost was counted in ('' when none, or Redis is unreachable)
   * and whether the member was gone from Redis; a charge that found no epoch starts the reload
   * of the totals.
   */
  private charge(c: Charge, done: (epoch: string, lost: boolean) => void): void {
    const ids = periodIds(new Date());
    const scopes: Array<{ kind: 'key' | 'team'; id: string }> = [{ kind: 'key', id: c.keyId }];
    if (c.team) scopes.push({ kind: 'team', id: c.team });
    const keys = [this.epochKey, this.estimateKey(c.keyId)];
    for (const s of scopes) keys.push(this.spentKey(s, ids.day), this.spentKey(s, ids.month), c.inflight?.[s.kind] ?? `${this.base}inflight:none`);
    (this.redis as any).pmBudgetCharge(keys.length, ...keys, c.member, c.cost, scopes.length, DAY_TTL_MS, MONTH_TTL_MS, c.replacement, LEASE_MS, c.largest).then(
      ([epoch, lost]: [string, number]) => {
        this.up();
        if (String(epoch) === '') void this.ensureSeeded().catch(() => undefined);
        done(String(epoch), Number(lost) === 1);
      },
      (err: unknown) => {
        this.down(err);
        done('', false);
      },
    );
  }

  private release(lease: HeldLease): void {
    if (!this.held.delete(lease)) return;
    this.releaseRisk(lease.riskIds);
  }

  /** Frees this replica's slot for a call at risk on `ids`, waking who waits for it. */
  private releaseRisk(ids: readonly string[]): void {
    for (const id of ids) {
      const waiters = this.atRisk.get(id);
      this.atRisk.delete(id);
      for (const w of waiters ?? []) w();
    }
  }

  private renew(): void {
    for (const block of [...this.blocks.values(), ...this.retired]) {
      const keys = Object.values(block.inflightKeys);
      if (!block.released && keys.length > 0) void (this.redis as any).pmBudgetRenew(keys.length, ...keys, block.member, LEASE_MS).catch(() => undefined);
    }
    for (const lease of this.held) {
      // No call runs this long: a lease still held is a bug's leak, not a call.
      if (Date.now() - lease.startedAt > MAX_CALL_MS) {
        this.release(lease);
        continue;
      }
      const keys = Object.values(lease.inflight);
      if (keys.length > 0) void (this.redis as any).pmBudgetRenew(keys.length, ...keys, lease.member, LEASE_MS).catch(() => undefined);
    }
  }

  /** The current period's totals of a key or team, in microdollars (for the gauges and the API). */
  async spent(scopes: ReadonlyArray<{ kind: 'key' | 'team'; id: string; period: 'day' | 'month' }>): Promise<number[]> {
    if (scopes.length === 0) return [];
    const ids = periodIds(new Date());
    const values = await this.redis.mget(...scopes.map((s) => this.spentKey(s, ids[s.period])));
    return values.map((v) => Number(v ?? 0));
  }

  /**
   * Reloads the current day's and month's totals from PostgreSQL when Redis has none (its
   * data was lost), once per replica at a time; other replicas find the epoch set and stop.
   */
  ensureSeeded(): Promise<void> {
    this.seeding ??= this.seed().finally(() => {
      this.seeding = undefined;
    });
    return this.seeding;
  }

  private async seed(): Promise<void> {
    if ((await this.redis.exists(this.epochKey)) === 1) return;
    // Rows this replica counted before are in PostgreSQL first.
    await this.flush().catch(() => undefined);
    const client = await this.options.pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [SPEND_LOCK_KEY]);
      try {
        if ((await this.redis.exists(this.epochKey)) === 1) return;
        const now = new Date();
        const ids = periodIds(now);
        const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
        const dayStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
        const { rows } = await client.query<{ key_id: string; team: string | null; day: string; month: string }>(
          `SELECT key_id, team, COALESCE(sum(micro_usd) FILTER (WHERE at >= $2), 0)::text AS day, sum(micro_usd)::text AS month
             FROM promptmesh_spend WHERE at >= $1 GROUP BY key_id, team`,
          [monthStart, dayStart],
        );
        const totals = new Map<string, { value: bigint; ttl: number }>();
        const add = (k: string, v: string, ttl: number) => totals.set(k, { value: (totals.get(k)?.value ?? 0n) + BigInt(v), ttl });
        for (const r of rows) {
          add(this.spentKey({ kind: 'key', id: r.key_id }, ids.day), r.day, DAY_TTL_MS);
          add(this.spentKey({ kind: 'key', id: r.key_id }, ids.month), r.month, MONTH_TTL_MS);
          if (r.team) {
            add(this.spentKey({ kind: 'team', id: r.team }, ids.day), r.day, DAY_TTL_MS);
            add(this.spentKey({ kind: 'team', id: r.team }, ids.month), r.month, MONTH_TTL_MS);
          }
        }
        const keys = [this.epochKey, ...totals.keys()];
        const args: Array<string | number> = [randomUUID()];
        for (const { value, ttl } of totals.values()) args.push(value.toString(), ttl);
        await (this.redis as any).pmBudgetSeed(keys.length, ...keys, ...args);
        this.options.logger.info({ totals: totals.size }, 'spend totals reloaded into Redis from PostgreSQL');
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [SPEND_LOCK_KEY]).catch(() => undefined);
      }
    } finally {
      client.release();
    }
  }

  /**
   * Writes the buffered rows to PostgreSQL (idempotent by call id), then adds to the Redis
   * totals the calls that were counted under another epoch or none. Failed batches go back into
   * the buffer and are tried again on the next tick.
   */
  flush(): Promise<void> {
    this.flushing ??= this.chargePending()
      .then(() => this.flushAll())
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  /**
   * Sends the charges still batched (blocks' calls, calls no limit checked) and waits for every
   * charge in flight (at most 2 s), so a flush writes every call settled before it: the spend
   * API reads what was answered.
   */
  private async chargePending(): Promise<void> {
    this.sendUnchecked();
    for (const block of [...this.blocks.values(), ...this.retired]) if (block.pending.length > 0) this.sendBlock(block);
    if (this.settling.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.settling]), new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
  }

  /** Rows waiting for PostgreSQL on this replica. */
  get pending(): number {
    return this.buffer.length;
  }

  private async flushAll(): Promise<void> {
    const batchSize = this.options.batchSize ?? 500;
    if (this.readds.length > 0) {
      const waiting = this.readds.splice(0);
      for (const r of waiting) await this.readd(r);
    }
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, batchSize);
      try {
        await this.write(batch);
      } catch (err) {
        this.buffer.unshift(...batch);
        this.options.logger.warn({ err: (err as Error).message, pending: this.buffer.length }, 'could not write spend rows to PostgreSQL; will retry');
        throw err;
      }
    }
  }

  private async write(batch: SpendRow[]): Promise<void> {
    const client = await this.options.pool.connect();
    let broken = false;
    try {
      await client.query('SELECT pg_advisory_lock_shared($1)', [SPEND_LOCK_KEY]);
      try {
        const col = <T>(f: (r: SpendRow) => T) => batch.map(f);
        const { rows } = await client.query<{ call_id: string }>(
          `INSERT INTO promptmesh_spend (call_id, at, key_id, team, provider, model, prompt, micro_usd, input_tokens, cached_input_tokens, output_tokens, cache_hit)
           SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bool[])
           ON CONFLICT (call_id) DO NOTHING RETURNING call_id`,
          [
            col((r) => r.callId),
            col((r) => r.at),
            col((r) => r.keyId),
            col((r) => r.team ?? null),
            col((r) => r.provider),
            col((r) => r.model),
            col((r) => r.prompt ?? null),
            col((r) => r.microUsd),
            col((r) => r.inputTokens),
            col((r) => r.cachedInputTokens),
            col((r) => r.outputTokens),
            col((r) => r.cacheHit),
          ],
        );
        const inserted = new Set(rows.map((r) => r.call_id));
        // Only a call counted under another epoch (or none) needs adding to the totals: one read
        // of the epoch per batch instead of a script per row. The epoch cannot change while this
        // holds the lock shared (a reload takes it exclusive), so this skips exactly the rows the
        // script would skip.
        const current = await this.redis.get(this.epochKey).catch(() => undefined);
        const missing = batch.filter((r) => inserted.has(r.callId) && r.microUsd > 0 && (current === undefined || current === null || r.epoch !== current));
        await Promise.all(missing.map((r) => this.readd(r)));
      } finally {
        await client.query('SELECT pg_advisory_unlock_shared($1)', [SPEND_LOCK_KEY]).catch(() => {
          broken = true;
        });
      }
    } finally {
      client.release(broken ? true : undefined);
    }
  }

  /**
   * Adds a written row's cost to the Redis totals unless the current epoch counted it already.
   * While Redis is unreachable the row waits in `readds` for the next flush.
   */
  private async readd(r: SpendRow): Promise<void> {
    const ids = periodIds(r.at);
    const keys = [this.epochKey, this.spentKey({ kind: 'key', id: r.keyId }, ids.day), this.spentKey({ kind: 'key', id: r.keyId }, ids.month)];
    if (r.team) keys.push(this.spentKey({ kind: 'team', id: r.team }, ids.day), this.spentKey({ kind: 'team', id: r.team }, ids.month));
    try {
      await (this.redis as any).pmBudgetReadd(keys.length, ...keys, r.epoch, r.microUsd, r.team ? 2 : 1, DAY_TTL_MS, MONTH_TTL_MS);
    } catch {
      if (this.readds.length < 100_000) this.readds.push(r);
    }
  }

  private up(): void {
    if (!this.redisDown) return;
    this.redisDown = false;
    this.options.logger.info('budgets: Redis reachable again');
  }

  private down(err: unknown): void {
    if (this.redisDown) return;
    this.redisDown = true;
    this.options.logger.warn({ err: (err as Error).message }, 'budgets: Redis unreachable; calls pass without budget checks (fail open), the ledger still records them');
  }

  /** Stops the timers, waits for the charges in flight and writes what is buffered (one attempt). */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    clearInterval(this.renewer);
    clearInterval(this.idler);
    // Blocks go back (their calls' charges with them), those being granted too; leased rpm too.
    for (let waited = 0; this.acquiring.size > 0 && waited < 2_000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const block of [...this.blocks.values()]) this.retire(block);
    for (const block of this.retired) this.sendBlock(block);
    this.sendUnchecked();
    await this.rateLeases?.close();
    // Calls settled just before the close are buffered once their charge came back (the flush
    // waits for them; a Redis that does not answer holds the close up for at most 2 s).
    await this.flush().catch(() => undefined);
  }
}
