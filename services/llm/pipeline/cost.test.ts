import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, completionOf, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { costStage } from './cost';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({
    providers: [nowhere('priced', { prices: { m: { input: 0.15, output: 0.6, cached_input: 0.075 } } }), nowhere('free')],
    models: { chat: [{ provider: 'priced', model: 'm' }], unpriced: [{ provider: 'free', model: 'm' }] },
  });
});
afterAll(() => h.close());

describe('cost stage', () => {
  it('prices the usage when the answer ends (cached input at its own rate)', async () => {
    const usage = { prompt_tokens: 2_000_000, completion_tokens: 1_000_000, total_tokens: 3_000_000, prompt_tokens_details: { cached_tokens: 1_000_000 } };
    const answer = await runStages([costStage()], answering(h, completionOf('x', usage)), callFor('chat', { candidate: candidatesOf(h, 'chat')[0] }));
    expect(answer.costUsd).toBe(0);
    await endPlain(answer);
    expect(answer.costUsd).toBeCloseTo(0.15 + 0.075 + 0.6, 10);
  });

  it('is 0 without usage, or without a price', async () => {
    const noUsage = await runStages([costStage()], answering(h, completionOf('x', null)), callFor('chat', { candidate: candidatesOf(h, 'chat')[0] }));
    await endPlain(noUsage);
    expect(noUsage.costUsd).toBe(0);
    const unpriced = await runStages([costStage()], answering(h), callFor('unpriced', { candidate: candidatesOf(h, 'unpriced')[0] }));
    await endPlain(unpriced);
    expect(unpriced.costUsd).toBe(0);
  });
});
