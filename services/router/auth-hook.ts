import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import { HEADERS, PATHS } from '../../contracts';
import { ApiError, forbidden, rateLimited, unauthorized, type Logger } from '../kit';
import { ApiKeyStore, bearerToken, type ApiKey, type Scope } from './auth';
import type { KeyRateLimiter } from './key-rate-limit';
import { BudgetRefusal, Ledger, RateRefusal, type BudgetScope, type Lease, type RateScope } from './keys/ledger';
import type { KeyRegistry, Team } from './keys/store';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key the request authenticated with; undefined when auth is off. */
    apiKey: ApiKey | undefined;
    /** Parts the router had to go without (`history`, `rate-limit`, `budget`), for `x-promptmesh-degraded`. */
    degraded: string[] | undefined;
    /** The key's team, when it has one. */
    team: Team | undefined;
    /**
     * A billed call's admission (key and team rpm, budgets, concurrency), started by the auth
     * hook and not awaited there: it resolves to the budget and concurrency lease it took, or
     * rejects with the 429. The route hands it to llm, which waits for it before it serves a
     * cache hit or calls a provider, overlapping the round trip with its own work (docs/keys.md,
     * "Performance"). Whoever takes it ({@link takeLease}) settles the lease; the router releases
     * one nobody took when the response is over.
     */
    admission: Promise<Lease | undefined> | undefined;
  }
}


/** What {@link authenticate} checks against. */
export interface AuthOptions {
  /** The keys file; undefined (with no registry either) means auth is off (every request passes, no Redis round trip). */
  keys: ApiKeyStore | undefined;
  /** The virtual keys and teams (PostgreSQL, kept in memory). @default none */
  registry?: KeyRegistry;
  /** Budgets and concurrency limits, checked on billed routes. @default none */
  ledger?: Ledger;
  /** Whether a request's route is billed (takes a budget lease). @default none is */
  billed?: (request: FastifyRequest) => boolean;
  /** Per-key requests per minute; undefined means the `rpm` of keys is not enforced. */
  limiter: KeyRateLimiter | undefined;
  logger: Logger;
}

/** The scopes a call counts against: the key, then its team. */
export function budgetScopes(key: ApiKey, team: Team | undefined): BudgetScope[] {
  const scopes: BudgetScope[] = [{ kind: 'key', id: key.id, budget: key.budget, maxConcurrent: key.maxConcurrent }];
  if (team) scopes.push({ kind: 'team', id: team.id, budget: team.budget, maxConcurrent: team.maxConcurrent });
  return scopes;
}

/** The 429 for a refused admission (docs/keys.md, "Budgets"). */
export function budgetError(refusal: BudgetRefusal): ApiError {
  const { scope } = refusal;
  const who = scope.kind === 'key' ? `API key '${scope.id}'` : `team '${scope.id}'`;
  if (refusal.reason !== 'concurrency') {
    const b = scope.budget!;
    const resets = refusal.resetsAt!;
    const amount = `$${(b.microUsd / 1e6).toFixed(6).replace(/0+$/, '').replace(/\.$/, '')} per ${b.period}`;
    // Committed: calls in flight hold the rest; retrying once they finished may pass (if they failed).
    const seconds = refusal.reason === 'committed' ? 1 : Math.max(1, Math.ceil((resets.getTime() - Date.now()) / 1000));
    const what =
      refusal.reason === 'committed'
        ? `${who} has its ${scope.kind} budget of ${amount} spent or committed to requests in flight`
        : `${who} has spent its ${scope.kind} budget of ${amount}`;
    return new ApiError({ status: 429, type: 'insufficient_quota', message: `${what}; it resets at ${resets.toISOString()}`, code: 'budget_exceeded', headers: { 'retry-after': String(seconds) } });
  }
  return new ApiError({ status: 429, type: 'rate_limit_error', message: `${who} is at its limit of ${scope.maxConcurrent} concurrent requests`, code: 'concurrency_limit_exceeded', headers: { 'retry-after': '1' } });
}

/**
 * Adds `parts` to the response's `x-promptmesh-degraded` header (keeping what is there): the
 * handler's parts (history) and the admission's (rate-limit, budget) arrive in either order.
 */
export function markDegraded(reply: FastifyReply, parts: readonly string[]): void {
  if (parts.length === 0 || reply.sent) return;
  const current = reply.getHeader(HEADERS.degraded);
  const all = new Set([...(typeof current === 'string' && current !== '' ? current.split(',') : []), ...parts]);
  reply.header(HEADERS.degraded, [...all].join(','));
}

const ADMISSION_REFUSALS = new WeakSet<object>();

/** Marks `err` as a billed call's admission refusal (see {@link isAdmissionRefusal}). */
function admissionError(err: unknown): unknown {
  if (err !== null && typeof err === 'object') ADMISSION_REFUSALS.add(err);
  return err;
}

/**
 * Whether `err` is a billed call's admission refusal (its key or team over its rpm, budget or
 * concurrency limit), which reaches the route through the llm call: the caller's limit, not a
 * failure of the call or of its prompt.
 */
export function isAdmissionRefusal(err: unknown): boolean {
  return err !== null && typeof err === 'object' && ADMISSION_REFUSALS.has(err);
}

/** The 429 for a key or team over its requests per minute. */
function rateError(rate: RateScope, retryAfterMs: number): ApiError {
  return rateLimited(`${rate.kind === 'key' ? `API key '${rate.id}'` : `team '${rate.id}'`} is over its limit of ${rate.rpm} requests per minute`, retryAfterMs);
}

/**
 * Builds an onRequest hook that authenticates the bearer key (virtual keys first, then the keys
 * file), checks the scope the route needs (`scopeOf` reads it from the matched route; undefined
 * refuses every key), takes one request from the key's and its team's per-minute budgets and,
 * on billed routes, admits the call against the budgets and concurrency limits: with a ledger
 * large limits from the replica's leases and blocks (no round trip) and the rest in one script
 * (one Redis round trip), without one (no virtual keys) the rpm checks in parallel.
 * When the rate-limit or budget store is down the request passes (fail open) and is marked degraded.
 */
export function authenticate(options: AuthOptions, scopeOf: (request: FastifyRequest) => Scope | undefined): onRequestAsyncHookHandler {
  const { keys, registry, ledger, limiter, logger } = options;
  const billed = options.billed ?? (() => false);
  let limiterDown = false;

  async function takeRate(rate: RateScope, request: FastifyRequest): Promise<void> {
    let decision;
    try {
      decision = await limiter!.take(rate.kind === 'key' ? rate.id : `team:${rate.id}`, rate.rpm);
      if (limiterDown) logger.info('rate limits: Redis reachable again');
      limiterDown = false;
    } catch (err) {
      if (!limiterDown) logger.warn({ err: (err as Error).message }, 'rate limits: Redis unreachable; letting requests through (fail open)');
      limiterDown = true;
      if (!request.degraded?.includes('rate-limit')) (request.degraded ??= []).push('rate-limit');
      return;
    }
    if (!decision.allowed) throw rateError(rate, decision.retryAfterMs);
  }

  return async function authHook(request: FastifyRequest, reply: FastifyReply) {
    if (!keys && !registry) return;
    // Anthropic's SDKs send their key as `x-api-key`: accepted on the Messages route.
    const apiKeyHeader = request.routeOptions.url === PATHS.messages ? request.headers['x-api-key'] : undefined;
    const token = bearerToken(request.headers.authorization) ?? (typeof apiKeyHeader === 'string' && apiKeyHeader !== '' ? apiKeyHeader : undefined);
    if (!token) throw unauthorized('missing API key: send it as "Authorization: Bearer <key>"' + (request.routeOptions.url === PATHS.messages ? ' or "x-api-key: <key>"' : ''));
    const virtual = registry?.verify(token);
    if (virtual === 'expired') throw unauthorized('API key expired');
    if (virtual === 'rotated') throw unauthorized('API key was rotated and its grace period is over: use the new key');
    const key: ApiKey | undefined = virtual ?? keys?.verify(token);
    if (!key) throw unauthorized('invalid API key');
    const scope = scopeOf(request);
    // A route without a declared scope is nobody's (fail closed).
    if (scope === undefined) throw forbidden(`route ${request.method} ${request.routeOptions.url ?? request.url} declares no scope; no key may call it`);
    if (!ApiKeyStore.allows(key, scope)) throw forbidden(`API key '${key.id}' lacks the '${scope}' scope this route needs`);
    request.apiKey = key;
    const team = key.team !== undefined ? registry?.team(key.team) : undefined;
    request.team = team;

    const rates: RateScope[] = [];
    if (limiter && key.rpm !== undefined) rates.push({ kind: 'key', id: key.id, rpm: key.rpm });
    if (limiter && team?.rpm !== undefined) rates.push({ kind: 'team', id: team.id, rpm: team.rpm });
    if (ledger) {
      // Large limits locally, the rest in one script: at most one Redis round trip of waiting
      // (docs/keys.md, "Performance").
      const isBilled = billed(request);
      const scopes = isBilled ? budgetScopes(key, team) : [];
      if (rates.length === 0 && !Ledger.needsAdmission(scopes)) return;
      const admission = ledger.admitRequest(key.id, scopes, rates, team?.id).then(
        (admitted) => {
          if (admitted.degraded.length > 0) {
            (request.degraded ??= []).push(...admitted.degraded);
            markDegraded(reply, admitted.degraded);
          }
          return admitted.lease;
        },
        (err: unknown) => {
          throw admissionError(err instanceof RateRefusal ? rateError(err.scope, err.retryAfterMs) : err instanceof BudgetRefusal ? budgetError(err) : err);
        },
      );
      if (!isBilled) {
        // Not a billed call (nothing hands the admission on): its rpm is checked here.
        await admission;
        return;
      }
      // A billed call: its route hands the admission to llm, which waits for it before the
      // provider (or a cache hit); a refusal is then this request's answer. Never unhandled.
      admission.catch(() => undefined);
      request.admission = admission;
      return;
    }
    if (rates.length > 0) await Promise.all(rates.map((r) => takeRate(r, request)));
  };
}
