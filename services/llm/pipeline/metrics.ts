import { PROVIDER_STATS_GROUP } from '../../kit/rolling-stats';
import { billedTokens } from '../config';
import { ProviderError } from '../types';
import type { Candidate } from '../routing';
import type { Answer } from './answer';
import type { PipelineParts } from './parts';
import { candidateOf, type Stage } from './stage';
import { OwnerLabels } from './owner-labels';

/**
 * What every provider call leaves in Prometheus (`gen_ai_client_operation_duration_seconds` by
 * outcome, `gen_ai_client_token_usage` by token type, `promptmesh_llm_cost_usd_total`) and in the
 * console's rolling per-provider stats. A call the client abandoned says nothing about the
 * provider and is not recorded.
 */
export function metricsStage(parts: Pick<PipelineParts, 'metrics' | 'stats'>): Stage {
  const { metrics, stats } = parts;
  const owners = new OwnerLabels();
  return {
    name: 'metrics',
    async run(call, next) {
      const c = candidateOf(call, 'metrics');
      const startedAt = performance.now();
      let answer: Answer;
      try {
        answer = await next(call);
      } catch (err) {
        if (err instanceof ProviderError) recordFailure(parts, c, startedAt, err);
        throw err;
      }
      answer.onEnd((ending) => {
        if (ending.kind === 'failure') return recordFailure(parts, c, startedAt, ending.error);
        if (ending.kind === 'gone') return;
        const labels = { provider: c.provider, model: c.model };
        metrics.operationDuration.observe({ ...labels, outcome: 'success' }, (performance.now() - startedAt) / 1000);
        const { usage } = ending;
        if (usage) {
          const billed = billedTokens(usage);
          metrics.tokenUsage.observe({ ...labels, token_type: 'input' }, usage.prompt_tokens);
          metrics.tokenUsage.observe({ ...labels, token_type: 'output' }, usage.completion_tokens);
          // Parts of `input` billed at other rates, observed only when the provider reports them.
          if (billed.cachedInput > 0) metrics.tokenUsage.observe({ ...labels, token_type: 'cached_input' }, billed.cachedInput);
          if (billed.cacheWrite > 0) metrics.tokenUsage.observe({ ...labels, token_type: 'cache_write' }, billed.cacheWrite);
          metrics.costUsd.inc({ ...labels, ...owners.of(call.options) }, answer.costUsd);
        }
        stats?.record(PROVIDER_STATS_GROUP, c.provider, { latencyMs: answer.latencyMs, error: false, costUsd: answer.costUsd });
      });
      return answer;
    },
  };
}

function recordFailure(parts: Pick<PipelineParts, 'metrics' | 'stats'>, c: Candidate, startedAt: number, error: ProviderError): void {
  const ms = performance.now() - startedAt;
  parts.metrics.operationDuration.observe({ provider: c.provider, model: c.model, outcome: error.kind }, ms / 1000);
  parts.stats?.record(PROVIDER_STATS_GROUP, c.provider, { latencyMs: ms, error: true });
}
