import { estimateInputTokens, estimateTokens, type LimitDecision, type ProviderLimiter } from '../limits';
import type { ProviderConfig } from '../types';
import { UNKNOWN_MODEL_OUTPUT_RESERVATION, maxOutputTokensOf } from '../model-limits';
import type { Answer } from './answer';
import { CandidateUnavailable, ClientGone } from './outcomes';
import type { PipelineParts } from './parts';
import { candidateOf, type Stage } from './stage';

/**
 * The provider's `limits`: requests and tokens per minute (cluster-wide, in Redis) and calls in
 * flight (per process). The attempt's token estimate is reserved before the call and settled
 * once against what it used; a provider at its limit is skipped (routing moves on). The
 * concurrency slot is held until the answer ends (for a stream: its last chunk).
 */
export function providerLimitsStage(parts: Pick<PipelineParts, 'limiter'>): Stage {
  const { limiter } = parts;
  return {
    name: 'provider-limits',
    async run(call, next) {
      const c = candidateOf(call, 'provider-limits');
      const estimate = estimateTokens(call.request, maxOutputTokensOf(c.config, c.model) ?? UNKNOWN_MODEL_OUTPUT_RESERVATION);
      const limit = await limiter.acquire(c.config, estimate);
      if (!limit.allowed) throw new CandidateUnavailable({ kind: 'limited', provider: c.provider, retryAfterMs: limit.retryAfterMs, reason: limit.reason });
      let answer: Answer;
      try {
        answer = await next(call);
      } catch (err) {
        // An error answer is not billed; a client that left may have cost its prompt.
        settle(limiter, c.config, limit, err instanceof ClientGone ? estimateInputTokens(call.request) : 0);
        throw err;
      }
      answer.onEnd((ending) => settle(limiter, c.config, limit, ending.kind === 'success' ? (ending.usage ? ending.usage.total_tokens : limit.reserved) : ending.used));
      return answer;
    },
  };
}

/** Frees the slot and settles the reservation against `used` (each attempt ends once: catch or onEnd). */
function settle(limiter: ProviderLimiter, config: ProviderConfig, limit: Extract<LimitDecision, { allowed: true }>, used: number): void {
  limit.release();
  void limiter.reconcile(config, limit.reserved, used);
}
