import type { RedisClient } from '../kit';

/** The outcome of one rate-limit check. */
export interface RateDecision {
  allowed: boolean;
  /** When refused: how long until one more request would be allowed. */
  retryAfterMs: number;
}

/**
 * GCRA (generic cell rate algorithm) as two Lua functions, shared by every script that holds a
 * per-minute request limit (this limiter's, and the one-round-trip admission in
 * keys/ledger.ts), so both count a request the same way: a key may send `limit` requests in a
 * burst, then one every period/limit ms. `gcraPlan(key, now, period, limit)` returns the new
 * theoretical arrival time, or nil and the wait in ms; `gcraTake(key, now, newTat)` commits it.
 * Callers pass Redis's own clock (`TIME`), so replicas with skewed clocks agree.
 */
export const GCRA_LUA = `
local function gcraPlan(key, now, period, limit)
  local interval = period / limit
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local newTat = tat + interval
  local allowAt = newTat - period
  if allowAt > now then return nil, math.ceil(allowAt - now) end
  return newTat, 0
end
local function gcraTake(key, now, newTat)
  redis.call('SET', key, tostring(newTat), 'PX', math.ceil(newTat - now) + 1000)
end
`;

/** Redis's clock in milliseconds, as the scripts read it (the first lines of each). */
export const REDIS_NOW_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

// One atomic script, so replicas sharing one Redis hold one limit together.
const GCRA_SCRIPT = `${REDIS_NOW_LUA}${GCRA_LUA}
local newTat, wait = gcraPlan(KEYS[1], now, tonumber(ARGV[1]), tonumber(ARGV[2]))
if not newTat then return {0, wait} end
gcraTake(KEYS[1], now, newTat)
return {1, 0}
`;

/**
 * Requests per minute per API key, held across replicas in Redis with one atomic script per
 * check. Keys live under the process's key prefix, one key per API key id.
 */
export class KeyRateLimiter {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyPrefix: string,
    /** The window the limit counts over. @default 60000 */
    private readonly periodMs = 60_000,
  ) {
    redis.defineCommand('pmKeyRate', { numberOfKeys: 1, lua: GCRA_SCRIPT });
  }

  /** Takes one request from `id`'s budget of `rpm` per minute. Throws when Redis is unreachable. */
  async take(id: string, rpm: number): Promise<RateDecision> {
    const key = `${this.keyPrefix}router:rpm:{${id}}`;
    const [allowed, retryAfterMs] = (await (this.redis as any).pmKeyRate(key, this.periodMs, rpm)) as [number, number];
    return { allowed: allowed === 1, retryAfterMs };
  }
}
