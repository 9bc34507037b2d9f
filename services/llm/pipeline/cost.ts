import { costOf, microUsdOf } from '../config';
import type { PipelineParts } from './parts';
import { candidateOf, type Stage } from './stage';

/**
 * Prices the answer from its usage and the provider's price table (input, cached input and
 * output per million tokens): sets `answer.costUsd` and the exact `answer.costMicroUsd` (docs/keys.md, "Cost") when it ends, before the stages outside it
 * (metrics, spans, the client's usage chunk) read it. No usage, or no price: 0.
 */
export function costStage(_parts: Pick<PipelineParts, never> = {}): Stage {
  return {
    name: 'cost',
    async run(call, next) {
      const c = candidateOf(call, 'cost');
      const answer = await next(call);
      answer.onEnd((ending) => {
        if (ending.kind === 'success' && ending.usage) {
          answer.costUsd = costOf(c.config, c.model, ending.usage);
          answer.costMicroUsd = microUsdOf(c.config, c.model, ending.usage);
        }
      });
      return answer;
    },
  };
}
