import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, completionOf, endPlain, nowhere, pipelineHarness, runStages, seriesValue, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { METRICS } from '../../../contracts';
import { ProviderError } from '../types';
import { costStage } from './cost';
import { metricsStage } from './metrics';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({ providers: [nowhere('a', { prices: { m: { input: 2, output: 0 } } })], models: { chat: [{ provider: 'a', model: 'm' }] } });
});
afterAll(() => h.close());

const call = () => callFor('chat', { candidate: candidatesOf(h, 'chat')[0] });
const labels = { provider: 'a', model: 'm' };

describe('metrics stage', () => {
  it('records a successful call: duration, tokens by type and cost', async () => {
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 3, total_tokens: 1_000_003, prompt_tokens_details: { cached_tokens: 10 } };
    await endPlain(await runStages([metricsStage(h.parts), costStage()], answering(h, completionOf('x', usage)), call()));
    expect(await seriesValue(h.registry, METRICS.genAiDuration, { ...labels, outcome: 'success' }, `${METRICS.genAiDuration}_count`)).toBe(1);
    expect(await seriesValue(h.registry, METRICS.genAiTokens, { ...labels, token_type: 'output' }, `${METRICS.genAiTokens}_sum`)).toBe(3);
    expect(await seriesValue(h.registry, METRICS.genAiTokens, { ...labels, token_type: 'cached_input' }, `${METRICS.genAiTokens}_sum`)).toBe(10);
    expect(await seriesValue(h.registry, METRICS.costUsd, labels)).toBeGreaterThan(1.9);
  });

  it('records a failure by kind, and nothing for a client that left', async () => {
    await expect(runStages([metricsStage(h.parts)], answering(h, undefined, () => new ProviderError('timeout', 'slow')), call())).rejects.toBeInstanceOf(ProviderError);
    expect(await seriesValue(h.registry, METRICS.genAiDuration, { ...labels, outcome: 'timeout' }, `${METRICS.genAiDuration}_count`)).toBe(1);
    const gone = await runStages([metricsStage(h.parts)], answering(h), call());
    await gone.end({ kind: 'gone', used: 0, thrown: undefined });
    expect(await seriesValue(h.registry, METRICS.genAiDuration, { ...labels, outcome: 'success' }, `${METRICS.genAiDuration}_count`)).toBe(1);
  });
});
