import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, completionOf, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { ProviderError } from '../types';
import { tenantLimitsStage } from './tenant-limits';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({ providers: [nowhere('a', { maxOutputTokens: { m: 100 } })], models: { chat: [{ provider: 'a', model: 'm' }] } });
});
afterAll(() => h.close());

/** A call of `tenant` whose estimate is its prompt plus the 100 tokens the model may produce. */
const call = (tenant: string, tenantTpm: number) => callFor('chat', { targets: candidatesOf(h, 'chat'), body: { max_tokens: 100 }, options: { tenant, tenantTpm } });

describe('tenant limits stage', () => {
  it('reserves the estimate, refuses a tenant over its budget with a 429, and settles to the real usage', async () => {
    const terminal = answering(h, completionOf('x', { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 }));
    // The budget fits one estimate (about 105 tokens) but not two.
    const first = await runStages([tenantLimitsStage(h.parts)], terminal, call('t1', 150));
    await expect(runStages([tenantLimitsStage(h.parts)], terminal, call('t1', 150))).rejects.toMatchObject({ statusCode: 429, headers: { 'retry-after': expect.any(String) } });
    // Settled at 10 used: the rest of the reservation is back, so another call fits.
    await endPlain(first);
    await new Promise((r) => setImmediate(r));
    await expect(runStages([tenantLimitsStage(h.parts)], terminal, call('t1', 150))).resolves.toBeDefined();
    expect(terminal.calls).toHaveLength(2);
  });

  it('gives the whole reservation back when the provider did not answer', async () => {
    const failing = answering(h, undefined, (n) => (n === 1 ? new ProviderError('server', 'down') : undefined));
    await expect(runStages([tenantLimitsStage(h.parts)], failing, call('t2', 150))).rejects.toBeInstanceOf(ProviderError);
    await new Promise((r) => setImmediate(r));
    await expect(runStages([tenantLimitsStage(h.parts)], failing, call('t2', 150))).resolves.toBeDefined();
  });

  it('does nothing without a tenant budget', async () => {
    const terminal = answering(h);
    for (let i = 0; i < 3; i++) await runStages([tenantLimitsStage(h.parts)], terminal, callFor('chat', { targets: candidatesOf(h, 'chat'), options: { tenant: 't3' } }));
    expect(terminal.calls).toHaveLength(3);
  });
});
