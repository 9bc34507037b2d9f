import { ProviderError } from '../types';
import type { Answer } from './answer';
import { CandidateUnavailable } from './outcomes';
import type { PipelineParts } from './parts';
import { candidateOf, type Stage } from './stage';

/**
 * The provider's circuit breaker: an open circuit refuses the attempt (routing moves on), a
 * half-open one lets its probes through. The provider's failures count against it; a request
 * it rejected as invalid, a refusal by our own limits and a client that left do not.
 */
export function breakerStage(parts: Pick<PipelineParts, 'breakers'>): Stage {
  return {
    name: 'breaker',
    async run(call, next) {
      const c = candidateOf(call, 'breaker');
      const breaker = parts.breakers.get(c.provider)!;
      const permit = breaker.tryAcquire();
      if (!permit) throw new CandidateUnavailable({ kind: 'open', provider: c.provider, retryInMs: breaker.snapshot().retryInMs ?? 0 });
      let answer: Answer;
      try {
        answer = await next(call);
      } catch (err) {
        if (err instanceof ProviderError && err.kind !== 'bad_request') breaker.failure(permit);
        else breaker.release(permit);
        throw err;
      }
      answer.onEnd((ending) => {
        if (ending.kind === 'success') breaker.success(permit);
        else if (ending.kind === 'failure') breaker.failure(permit);
        else breaker.release(permit);
      });
      return answer;
    },
  };
}
