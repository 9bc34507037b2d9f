import type { Logger } from '../kit/logger';
import type { RedisClient } from '../kit/redis';
import type { ProviderConfig } from './types';

/**
 * Rate limits per provider that hold across replicas.
 *
 * Requests per minute and tokens per minute are two GCRA buckets (a token bucket kept as one
 * "theoretical arrival time" per key) in Redis: the bucket holds up to a minute's worth of the
 * limit and refills continuously, as the providers' own limits do. One Lua script checks and
 * takes from both buckets atomically (nothing is taken unless both allow), using Redis's clock
 * so replicas with skewed clocks agree. Both keys share a hash tag, so the script works on Redis
 * Cluster.
 *
 * When Redis is unreachable the limits fail open (logged once per outage): an outage of the
 * limiter must not become an outage of the service.
 */

// KEYS: requests bucket, tokens bucket. ARGV: rpm, tpm, tokens, mode (check | force).
// Returns { allowed (1/0), wait ms until it would be allowed }.
const GCRA_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = 60000
local function plan(key, limit, cost)
  if limit <= 0 or cost <= 0 then return nil, 0 end
  local interval = window / limit
  if cost > limit then cost = limit end
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local newTat = tat + cost * interval
  local wait = newTat - window - now
  if wait < 0 then wait = 0 end
  return newTat, wait
end
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local force = ARGV[4] == 'force'
local reqTat, reqWait = plan(KEYS[1], rpm, force and 0 or 1)
local tokTat, tokWait = plan(KEYS[2], tpm, tokens)
local wait = math.max(reqWait, tokWait)
if wait > 0 and not force then return {0, math.ceil(wait)} end
if reqTat then redis.call('SET', KEYS[1], reqTat, 'PX', math.ceil(reqTat - now) + 1000) end
if tokTat then redis.call('SET', KEYS[2], tokTat, 'PX', math.ceil(tokTat - now) + 1000) end
return {1, 0}
`;

/** The outcome of a limit check. */
export type LimitDecision = { allowed: true; release: () => void } | { allowed: false; retryAfterMs: number; reason: string };

/** Cluster-wide rpm/tpm limits in Redis plus a local concurrency cap, per provider. */
export class ProviderLimiter {
  private readonly inFlight = new Map<string, number>();
  private redisDown = false;

  constructor(
    private readonly redis: RedisClient | undefined,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
  ) {
    redis?.defineCommand('pmLlmGcra', { numberOfKeys: 2, lua: GCRA_SCRIPT });
  }

  /** Calls in flight to a provider in this process. */
  concurrency(provider: string): number {
    return this.inFlight.get(provider) ?? 0;
  }

  /**
   * Takes one request and `tokens` estimated tokens from the provider's limits, plus a
   * concurrency slot; call `release()` when the call ends. Refuses with the wait until the
   * provider would be allowed again.
   */
  async acquire(provider: ProviderConfig, tokens: number): Promise<LimitDecision> {
    const limits = provider.limits ?? {};
    const cap = limits.concurrency;
    const current = this.inFlight.get(provider.name) ?? 0;
    if (cap !== undefined && current >= cap) {
      return { allowed: false, retryAfterMs: 1_000, reason: `concurrency limit ${cap} reached` };
    }
    if (limits.rpm !== undefined || limits.tpm !== undefined) {
      const result = await this.run(provider, limits.rpm ?? 0, limits.tpm ?? 0, tokens, 'check');
      if (result && result[0] === 0) {
        return { allowed: false, retryAfterMs: Math.max(1, result[1]), reason: `rate limit (${describeLimits(limits)}) reached` };
      }
    }
    // Re-read: another call may have taken a slot while the script ran.
    const now = this.inFlight.get(provider.name) ?? 0;
    if (cap !== undefined && now >= cap) return { allowed: false, retryAfterMs: 1_000, reason: `concurrency limit ${cap} reached` };
    this.inFlight.set(provider.name, now + 1);
    let released = false;
    return {
      allowed: true,
      release: () => {
        if (released) return;
        released = true;
        this.inFlight.set(provider.name, Math.max(0, (this.inFlight.get(provider.name) ?? 1) - 1));
      },
    };
  }

  /**
   * Charges tokens used beyond the estimate (the real usage is known only after the call). Takes
   * them even when the bucket is empty, so the next calls wait for them.
   */
  async charge(provider: ProviderConfig, extraTokens: number): Promise<void> {
    const tpm = provider.limits?.tpm;
    if (tpm === undefined || extraTokens <= 0) return;
    await this.run(provider, 0, tpm, Math.ceil(extraTokens), 'force');
  }

  private async run(provider: ProviderConfig, rpm: number, tpm: number, tokens: number, mode: 'check' | 'force'): Promise<[number, number] | undefined> {
    if (!this.redis) return undefined;
    const tag = `${this.keyPrefix}llm:limit:{${provider.name}}`;
    try {
      const result = (await (this.redis as any).pmLlmGcra(`${tag}:rpm`, `${tag}:tpm`, rpm, tpm, Math.max(0, Math.ceil(tokens)), mode)) as [number, number];
      if (this.redisDown) {
        this.redisDown = false;
        this.logger.info('llm rate limits: Redis is back, limits apply again');
      }
      return [Number(result[0]), Number(result[1])];
    } catch (err) {
      if (!this.redisDown) {
        this.redisDown = true;
        this.logger.warn({ err: (err as Error).message }, 'llm rate limits: Redis unreachable, limits fail open until it is back');
      }
      return undefined;
    }
  }
}

function describeLimits(limits: NonNullable<ProviderConfig['limits']>): string {
  return [limits.rpm !== undefined ? `${limits.rpm} rpm` : '', limits.tpm !== undefined ? `${limits.tpm} tpm` : ''].filter(Boolean).join(', ');
}

/** A rough token count for limit checks before the call (about four characters a token). */
export function estimateTokens(request: { messages: Array<{ content: unknown }>; max_tokens?: number; max_completion_tokens?: number }): number {
  let chars = 0;
  for (const m of request.messages) {
    if (typeof m.content === 'string') chars += m.content.length;
    else if (Array.isArray(m.content)) for (const part of m.content) chars += typeof part?.text === 'string' ? part.text.length : 0;
  }
  const input = Math.ceil(chars / 4) + 4 * request.messages.length;
  return input + (request.max_completion_tokens ?? request.max_tokens ?? 0);
}
