import type { RedisClient } from '../kit';

/** The outcome of one rate-limit check. */
export interface RateDecision {
  allowed: boolean;
  /** When refused: how long until one more request would be allowed. */
  retryAfterMs: number;
}

// GCRA (generic cell rate algorithm) in one atomic script, so replicas sharing one Redis hold
// one limit together: a key may send `rpm` requests in a burst, then one every 60000/rpm ms.
// Redis's own clock is used so replicas with skewed clocks agree.
const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local newTat = tat + interval
local allowAt = newTat - period
if allowAt > now then
  return {0, math.ceil(allowAt - now)}
end
redis.call('SET', KEYS[1], tostring(newTat), 'PX', math.ceil(newTat - now) + 1000)
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
