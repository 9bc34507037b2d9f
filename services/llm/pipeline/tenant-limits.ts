import { rateLimited } from '../../kit/errors';
import { estimateInputTokens, estimateTokens } from '../limits';
import { UNKNOWN_MODEL_OUTPUT_RESERVATION, maxOutputTokensOf } from '../model-limits';
import type { Answer } from './answer';
import { ClientGone } from './outcomes';
import type { PipelineParts } from './parts';
import type { Stage } from './stage';

/**
 * The tenant's own tokens-per-minute budget (`options.tenantTpm`, the `tpm` of its API key) and
 * its team's (`options.teamTpm`, over all the team's keys; bucket `team:<id>`, which no key id
 * can spell), held in Redis across replicas: the request's estimate (its prompt and the largest
 * output its targets may produce) is reserved in each before the call (both in one round trip),
 * a tenant or team over its budget gets a 429 naming it, and each reservation is settled once
 * against what the call used. Runs after the cache: hits are free. The caller's admission
 * (`options.admitted`, the router's rpm, budgets and concurrency) is awaited here together with
 * the reservations; a refused call gives back what it reserved and answers with the refusal.
 */
export function tenantLimitsStage(parts: Pick<PipelineParts, 'limiter'>): Stage {
  const { limiter } = parts;
  return {
    name: 'tenant-limits',
    async run(call, next) {
      const { request, options } = call;
      const { tenant, tenantTpm, team, teamTpm } = options;
      const buckets: Array<{ id: string; tpm: number; what: string }> = [];
      if (tenant !== undefined && tenantTpm !== undefined) buckets.push({ id: tenant, tpm: tenantTpm, what: `API key '${tenant}'` });
      if (team !== undefined && teamTpm !== undefined) buckets.push({ id: `team:${team}`, tpm: teamTpm, what: `team '${team}'` });
      if (buckets.length === 0) {
        await options.admitted;
        return next(call);
      }
      const outputCap = Math.max(...call.targets.map((t) => maxOutputTokensOf(t.config, t.model) ?? UNKNOWN_MODEL_OUTPUT_RESERVATION));
      const estimate = estimateTokens(request, outputCap);
      // The reservations and the caller's admission (its Redis round trip still in flight) at once.
      const reserving = Promise.all(buckets.map((b) => limiter.acquireTenant(b.id, b.tpm, estimate)));
      const admitting = Promise.resolve(options.admitted).then(
        () => undefined,
        (err: unknown) => ({ refusal: err }),
      );
      const [decisions, notAdmitted] = await Promise.all([reserving, admitting]);
      const taken: Array<{ id: string; tpm: number; reserved: number }> = [];
      decisions.forEach((d, i) => {
        if (d.allowed) taken.push({ id: buckets[i]!.id, tpm: buckets[i]!.tpm, reserved: d.reserved });
      });
      if (notAdmitted) {
        // Refused by the caller's own limits: what was reserved goes back, and that is the answer.
        for (const t of taken) void limiter.reconcileTenant(t.id, t.tpm, t.reserved, 0);
        throw notAdmitted.refusal;
      }
      const refused = decisions.findIndex((d) => !d.allowed);
      if (refused >= 0) {
        // The other bucket gives back what it took.
        for (const t of taken) void limiter.reconcileTenant(t.id, t.tpm, t.reserved, 0);
        const b = buckets[refused]!;
        throw rateLimited(`${b.what} is over its limit of ${b.tpm} tokens per minute`, (decisions[refused] as { retryAfterMs: number }).retryAfterMs);
      }
      let settled = false;
      const settle = (used: number) => {
        if (settled) return;
        settled = true;
        for (const t of taken) void limiter.reconcileTenant(t.id, t.tpm, t.reserved, used);
      };
      let answer: Answer;
      try {
        answer = await next(call);
      } catch (err) {
        // The provider did not answer (or the client left while it did): only the prompt may count.
        settle(err instanceof ClientGone ? estimateInputTokens(request) : 0);
        throw err;
      }
      answer.onEnd((ending) => {
        if (ending.kind === 'success') settle(ending.usage?.total_tokens ?? ending.used ?? estimate);
        else settle(ending.used);
      });
      return answer;
    },
  };
}
