/**
 * The llm core's pipeline: the one list of stages, outermost first, ending in the provider call.
 * Adding a stage (budgets, guardrails, ...) is its own file and one line here; docs/llm.md
 * ("The pipeline") says where in the list it belongs.
 */
import { attemptSpanStage } from './attempt-span';
import { breakerStage } from './breaker';
import { cacheStage } from './cache';
import { costStage } from './cost';
import { metricsStage } from './metrics';
import type { PipelineParts } from './parts';
import { providerCall } from './provider';
import { providerLimitsStage } from './provider-limits';
import { retryStage } from './retry';
import { rootSpanStage } from './root-span';
import { routingStage } from './routing';
import { compose, type Next, type Stage } from './stage';
import { targetsStage } from './targets';
import { tenantLimitsStage } from './tenant-limits';

export type { Answer, Ending, EndListener } from './answer';
export type { PipelineParts, LlmCoreDeps } from './parts';
export type { LlmCall, Next, Stage } from './stage';

/**
 * The stages, in order. Before `routing` a stage sees the whole request once; from `routing` on
 * (it sets `call.candidate`) it sees each attempt on one provider, as often as routing and retry
 * make one.
 */
export function llmStages(parts: PipelineParts): Stage[] {
  return [
    rootSpanStage(parts),
    targetsStage(parts),
    cacheStage(parts),
    tenantLimitsStage(parts),
    routingStage(parts),
    retryStage(parts),
    breakerStage(parts),
    providerLimitsStage(parts),
    attemptSpanStage(parts),
    metricsStage(parts),
    costStage(parts),
  ];
}

/** The whole pipeline as one function: the stages chained onto the provider call. */
export function buildPipeline(parts: PipelineParts, stages: readonly Stage[] = llmStages(parts)): Next {
  return compose(stages, providerCall(parts));
}
