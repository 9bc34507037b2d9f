import type { Logger } from '../kit/logger';
import { GcraLeases } from '../kit/gcra-leases';
import type { RedisClient } from '../kit/redis';
import { UNKNOWN_MODEL_OUTPUT_RESERVATION } from './model-limits';
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
 * Large limits (2% of the limit at least 8 calls' worth) are served from chunks leased from the
 * same buckets ({@link GcraLeases}, kit/gcra-leases.ts): no round trip per call, and still never
 * more than the buckets grant; a call the pools cannot hold whole takes the script.
 *
 * When Redis is unreachable the limits fail open (logged once per outage): an outage of the
 * limiter must not become an outage of the service.
 */

// KEYS: requests bucket, tokens bucket. ARGV: rpm, tpm, tokens, mode (check | force | refund).
// check takes one request and the tokens only when both buckets allow; force takes the tokens
// whatever the bucket holds (usage beyond a reservation); refund gives tokens back (a reservation
// the call did not use), never below an empty bucket. Returns { allowed (1/0), wait ms until it
// would be allowed, tokens taken }: the bucket takes at most a minute's worth, so that is all a
// refund may give back.
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
local mode = ARGV[4]
if mode == 'refund' then
  if tpm <= 0 or tokens <= 0 then return {1, 0, 0} end
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat <= now then return {1, 0, 0} end
  local newTat = math.max(now, tat - math.min(tokens, tpm) * (window / tpm))
  redis.call('SET', KEYS[2], newTat, 'PX', math.ceil(newTat - now) + 1000)
  return {1, 0, 0}
end
local force = mode == 'force'
local reqTat, reqWait = plan(KEYS[1], rpm, force and 0 or 1)
local tokTat, tokWait = plan(KEYS[2], tpm, tokens)
local wait = math.max(reqWait, tokWait)
if wait > 0 and not force then return {0, math.ceil(wait), 0} end
if reqTat then redis.call('SET', KEYS[1], reqTat, 'PX', math.ceil(reqTat - now) + 1000) end
if tokTat then redis.call('SET', KEYS[2], tokTat, 'PX', math.ceil(tokTat - now) + 1000) end
return {1, 0, tokTat and math.min(tokens, tpm) or 0}
`;

/** The outcome of a limit check. */
export type LimitDecision =
  | {
      allowed: true;
      /** Gives the concurrency slot back. */
      release: () => void;
      /**
       * Tokens taken from the `tpm` bucket for this call (0 without a `tpm` limit or while Redis
       * is unreachable); what {@link ProviderLimiter.reconcile} settles against the real usage.
       */
      reserved: number;
    }
  | { allowed: false; retryAfterMs: number; reason: string };

/** The outcome of taking from an API key's own `tpm` budget. */
export type TenantDecision = { allowed: true; reserved: number } | { allowed: false; retryAfterMs: number };

/** Cluster-wide rpm/tpm limits in Redis plus a local concurrency cap, per provider. */
export class ProviderLimiter {
  private readonly inFlight = new Map<string, number>();
  private redisDown = false;
  /** Leased requests and tokens of large limits, of providers, keys and teams (see {@link GcraLeases}). */
  private readonly leases: GcraLeases | undefined;

  constructor(
    private readonly redis: RedisClient | undefined,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
    options: {
      /**
       * Whether large limits (a provider's rpm and tpm, a key's or team's tpm) are served from
       * leased chunks, with no round trip per call; false checks every call in Redis. @default true
       */
      lease?: boolean;
    } = {},
  ) {
    redis?.defineCommand('pmLlmGcra', { numberOfKeys: 2, lua: GCRA_SCRIPT });
    this.leases = redis && (options.lease ?? true) ? new GcraLeases(redis) : undefined;
  }

  /** Gives leased tokens back to Redis. */
  async close(): Promise<void> {
    await this.leases?.close();
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
    let reserved = 0;
    if (limits.rpm !== undefined || limits.tpm !== undefined) {
      const tag = providerTag(this.keyPrefix, provider.name);
      const leased = this.takeLeased(tag, limits, tokens);
      if (leased !== undefined) reserved = leased;
      else {
        const result = await this.run(tag, limits.rpm ?? 0, limits.tpm ?? 0, tokens, 'check');
        if (result && result[0] === 0) {
          return { allowed: false, retryAfterMs: Math.max(1, result[1]), reason: `rate limit (${describeLimits(limits)}) reached` };
        }
        reserved = result?.[2] ?? 0;
      }
    }
    // Re-read: another call may have taken a slot while the script ran.
    const now = this.inFlight.get(provider.name) ?? 0;
    if (cap !== undefined && now >= cap) {
      await this.reconcile(provider, reserved, 0);
      return { allowed: false, retryAfterMs: 1_000, reason: `concurrency limit ${cap} reached` };
    }
    this.inFlight.set(provider.name, now + 1);
    let released = false;
    return {
      allowed: true,
      reserved,
      release: () => {
        if (released) return;
        released = true;
        this.inFlight.set(provider.name, Math.max(0, (this.inFlight.get(provider.name) ?? 1) - 1));
      },
    };
  }

  /**
   * Settles a call's reservation against what it really used, once that is known (after the
   * answer, the last chunk, a failure or an abort): tokens used beyond the reservation are taken
   * even when the bucket is empty (so the next calls wait for them), a reservation the call did
   * not use is given back. Each is one atomic script call.
   */
  async reconcile(provider: ProviderConfig, reserved: number, used: number): Promise<void> {
    const tpm = provider.limits?.tpm;
    if (tpm === undefined) return;
    await this.settle(providerTag(this.keyPrefix, provider.name), tpm, reserved, used);
  }

  /**
   * One request and `tokens` from a provider's leased pools, when every limit it has is leased
   * and holds them: the tokens reserved. Undefined: the call goes to Redis (nothing is kept).
   */
  private takeLeased(tag: string, limits: NonNullable<ProviderConfig['limits']>, tokens: number): number | undefined {
    if (!this.leases) return undefined;
    const units = Math.max(0, Math.ceil(tokens));
    // Both asked (so both pools start leasing from the first call), both or neither kept.
    const request = limits.rpm === undefined || this.leases.tryTake(`${tag}:rpm`, 60_000, limits.rpm, 1);
    const tokensTaken = limits.tpm === undefined || this.leases.tryTake(`${tag}:tpm`, 60_000, limits.tpm, units);
    if (request && tokensTaken) return limits.tpm === undefined ? 0 : units;
    if (request && limits.rpm !== undefined) this.leases.settle(`${tag}:rpm`, 1);
    if (tokensTaken && limits.tpm !== undefined) this.leases.settle(`${tag}:tpm`, units);
    return undefined;
  }

  /**
   * Takes `tokens` from an API key's own tokens-per-minute budget (the `tpm` of its keys-file
   * entry), shared by every replica. Fails open while Redis is unreachable.
   */
  async acquireTenant(tenant: string, tpm: number, tokens: number): Promise<TenantDecision> {
    const units = Math.max(0, Math.ceil(tokens));
    if (this.leases?.tryTake(`${tenantTag(this.keyPrefix, tenant)}:tpm`, 60_000, tpm, units)) return { allowed: true, reserved: units };
    const result = await this.run(tenantTag(this.keyPrefix, tenant), 0, tpm, tokens, 'check');
    if (result && result[0] === 0) return { allowed: false, retryAfterMs: Math.max(1, result[1]) };
    return { allowed: true, reserved: result?.[2] ?? 0 };
  }

  /** {@link reconcile} for an API key's `tpm` budget. */
  async reconcileTenant(tenant: string, tpm: number, reserved: number, used: number): Promise<void> {
    await this.settle(tenantTag(this.keyPrefix, tenant), tpm, reserved, used);
  }

  private async settle(tag: string, tpm: number, reserved: number, used: number): Promise<void> {
    const delta = Math.ceil(Math.max(0, used)) - reserved;
    // A leased limit settles in its pool (the tokens were Redis's grant), whichever way they were taken.
    if (this.leases?.settle(`${tag}:tpm`, -delta)) return;
    if (delta > 0) await this.run(tag, 0, tpm, delta, 'force');
    else if (delta < 0) await this.run(tag, 0, tpm, -delta, 'refund');
  }

  private async run(tag: string, rpm: number, tpm: number, tokens: number, mode: 'check' | 'force' | 'refund'): Promise<[number, number, number] | undefined> {
    if (!this.redis) return undefined;
    try {
      const result = (await (this.redis as any).pmLlmGcra(`${tag}:rpm`, `${tag}:tpm`, rpm, tpm, Math.max(0, Math.ceil(tokens)), mode)) as [number, number, number];
      if (this.redisDown) {
        this.redisDown = false;
        this.logger.info('llm rate limits: Redis is back, limits apply again');
      }
      return [Number(result[0]), Number(result[1]), Number(result[2] ?? 0)];
    } catch (err) {
      if (!this.redisDown) {
        this.redisDown = true;
        this.logger.warn({ err: (err as Error).message }, 'llm rate limits: Redis unreachable, limits fail open until it is back');
      }
      return undefined;
    }
  }
}

/** A provider's two buckets share this hash tag (one cluster slot). */
function providerTag(prefix: string, provider: string): string {
  return `${prefix}llm:limit:{${provider}}`;
}

/** An API key's own token bucket (the requests bucket beside it is never used). */
function tenantTag(prefix: string, tenant: string): string {
  return `${prefix}llm:keylimit:{${tenant}}`;
}

function describeLimits(limits: NonNullable<ProviderConfig['limits']>): string {
  return [limits.rpm !== undefined ? `${limits.rpm} rpm` : '', limits.tpm !== undefined ? `${limits.tpm} tpm` : ''].filter(Boolean).join(', ');
}

/** A rough count of a request's input tokens (about four characters a token). */
export function estimateInputTokens(request: { messages: Array<{ content: unknown }> }): number {
  let chars = 0;
  for (const m of request.messages) {
    if (typeof m.content === 'string') chars += m.content.length;
    else if (Array.isArray(m.content)) for (const part of m.content) chars += typeof part?.text === 'string' ? part.text.length : 0;
  }
  return Math.ceil(chars / 4) + 4 * request.messages.length;
}

/**
 * What to reserve against `tpm` limits before the call: the input estimate plus the output the
 * request allows, at most `outputCap` (the model's max output, which the request has been checked
 * against; {@link UNKNOWN_MODEL_OUTPUT_RESERVATION} when nobody knows it).
 */
export function estimateTokens(
  request: { messages: Array<{ content: unknown }>; max_tokens?: number | null; max_completion_tokens?: number | null },
  outputCap: number = UNKNOWN_MODEL_OUTPUT_RESERVATION,
): number {
  const output = request.max_completion_tokens ?? request.max_tokens ?? 0;
  return estimateInputTokens(request) + Math.min(output, outputCap);
}
