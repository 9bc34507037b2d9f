/**
 * What every billed router route does for a virtual key, in one place: the key's `models`
 * allow-list, the llm call options that carry its key and team (and their token budgets), and
 * counting the answered call in the spend ledger, which settles the budget lease the auth hook
 * took (docs/keys.md).
 */
import type { FastifyRequest } from 'fastify';
import { ApiError, type Logger } from '../kit';
import type { CallMeta, LlmClientCallOptions, LlmOrigin } from './clients';
import type { CallUsage, Lease, Ledger } from './keys/ledger';

const wholeCount = (n: unknown): number => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.round(n) : 0);

/** What the ledger records of one answered call, from llm's usage (with its exact `cost_micro_usd`). */
export function callUsage(usage: unknown, origin: LlmOrigin, prompt: string | undefined): CallUsage {
  const u = (usage ?? {}) as { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: { cached_tokens?: unknown } | null; cost_micro_usd?: unknown };
  const out: CallUsage = {
    provider: origin.provider,
    model: origin.model,
    // A cache hit costs nothing (what it saved is promptmesh_cache_savings_usd_total).
    microUsd: origin.cache === 'hit' ? 0 : wholeCount(u.cost_micro_usd),
    inputTokens: wholeCount(u.prompt_tokens),
    cachedInputTokens: wholeCount(u.prompt_tokens_details?.cached_tokens),
    outputTokens: wholeCount(u.completion_tokens),
    cacheHit: origin.cache === 'hit',
  };
  if (prompt !== undefined) out.prompt = prompt;
  return out;
}

/** The USD cost of a call from llm's usage (`cost_usd`; 0 when it has none). */
export function usageCostUsd(usage: unknown): number {
  const cost = (usage as { cost_usd?: unknown } | null | undefined)?.cost_usd;
  return typeof cost === 'number' && Number.isFinite(cost) ? cost : 0;
}

/** 403 when the key has a `models` list without `model` (the name the client sent, or the template's). */
export function checkModelAllowed(request: FastifyRequest, model: string): void {
  const allowed = request.apiKey?.models;
  if (allowed && !allowed.has(model)) {
    throw new ApiError({ status: 403, type: 'permission_error', message: `API key '${request.apiKey!.id}' may not use model '${model}' (allowed: ${[...allowed].join(', ')})`, param: 'model', code: 'model_not_allowed' });
  }
}

/**
 * The llm call options of a request: its key's and team's ids and token budgets, and the
 * admission llm waits for before it serves a cache hit or calls a provider (from {@link takeLease}).
 */
export function callOptions(request: FastifyRequest, meta: CallMeta, tenant: string | undefined, admitted?: Promise<unknown>): LlmClientCallOptions {
  const options: LlmClientCallOptions = { ...meta, tenant, tenantTpm: request.apiKey?.tpm };
  if (admitted) options.admitted = admitted;
  const team = request.team;
  if (team) {
    options.team = team.id;
    if (team.tpm !== undefined) options.teamTpm = team.tpm;
  } else if (request.apiKey?.team !== undefined) {
    options.team = request.apiKey.team;
  }
  return options;
}

/**
 * Takes over the request's admission (so the router's end-of-response release skips it): the
 * promise of its budget lease, which rejects with the 429 when the call was refused. Pass it to
 * {@link callOptions} and, once the call is over, to {@link settleSpend}.
 */
export function takeLease(request: FastifyRequest): Promise<Lease | undefined> | undefined {
  const admission = request.admission;
  request.admission = undefined;
  return admission;
}

/** Counts the call in the ledger (settling its lease), once; not awaited, off the answer's path. */
export function settleSpend(ledger: Ledger | undefined, logger: Logger, request: FastifyRequest, lease: Promise<Lease | undefined> | undefined, usage: CallUsage | undefined): void {
  const key = request.apiKey;
  if (!ledger || !key) return;
  // A refused admission took nothing: there is no lease, and no call to count.
  void (lease ?? Promise.resolve(undefined))
    .then(
      (taken) => ledger.settle(taken, key.id, request.team?.id ?? key.team, usage),
      () => undefined,
    )
    .catch((err: unknown) => {
      logger.warn({ err: (err as Error).message, key: key.id }, 'could not count a call in the spend ledger');
    });
}
