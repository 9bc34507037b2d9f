import { rateLimited } from '../../kit/errors';
import { estimateInputTokens, estimateTokens } from '../limits';
import { UNKNOWN_MODEL_OUTPUT_RESERVATION, maxOutputTokensOf } from '../model-limits';
import type { Answer } from './answer';
import { ClientGone } from './outcomes';
import type { PipelineParts } from './parts';
import type { Stage } from './stage';

/**
 * The tenant's own tokens-per-minute budget (`options.tenantTpm`, the `tpm` of its API key),
 * held in Redis across replicas: the request's estimate (its prompt and the largest output its
 * targets may produce) is reserved before the call, a tenant over its budget gets a 429, and the
 * reservation is settled once against what the call used. Runs after the cache: hits are free.
 */
export function tenantLimitsStage(parts: Pick<PipelineParts, 'limiter'>): Stage {
  const { limiter } = parts;
  return {
    name: 'tenant-limits',
    async run(call, next) {
      const { request, options } = call;
      const { tenant, tenantTpm } = options;
      if (tenant === undefined || tenantTpm === undefined) return next(call);
      const outputCap = Math.max(...call.targets.map((t) => maxOutputTokensOf(t.config, t.model) ?? UNKNOWN_MODEL_OUTPUT_RESERVATION));
      const estimate = estimateTokens(request, outputCap);
      const decision = await limiter.acquireTenant(tenant, tenantTpm, estimate);
      if (!decision.allowed) throw rateLimited(`API key '${tenant}' is over its limit of ${tenantTpm} tokens per minute`, decision.retryAfterMs);
      const settle = (used: number) => void limiter.reconcileTenant(tenant, tenantTpm, decision.reserved, used);
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
