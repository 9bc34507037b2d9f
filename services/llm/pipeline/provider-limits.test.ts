import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { ProviderError } from '../types';
import { CandidateUnavailable } from './outcomes';
import { providerLimitsStage } from './provider-limits';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({
    providers: [nowhere('one', { limits: { concurrency: 1 } }), nowhere('rpm', { limits: { rpm: 2 } })],
    models: { chat: [{ provider: 'one', model: 'm' }], paced: [{ provider: 'rpm', model: 'm' }] },
  });
});
afterAll(() => h.close());

const call = (model: string) => callFor(model, { candidate: candidatesOf(h, model)[0] });

describe('provider limits stage', () => {
  it('holds the concurrency slot until the answer ends, refusing others meanwhile', async () => {
    const terminal = answering(h);
    const first = await runStages([providerLimitsStage(h.parts)], terminal, call('chat'));
    expect(h.parts.limiter.concurrency('one')).toBe(1);
    const refused = await runStages([providerLimitsStage(h.parts)], terminal, call('chat')).catch((e: unknown) => e);
    expect((refused as CandidateUnavailable).outcome).toMatchObject({ kind: 'limited', provider: 'one', reason: 'concurrency limit 1 reached' });
    await endPlain(first);
    expect(h.parts.limiter.concurrency('one')).toBe(0);
    await endPlain(await runStages([providerLimitsStage(h.parts)], terminal, call('chat')));
    expect(terminal.calls).toHaveLength(2);
  });

  it('releases the slot when the call fails', async () => {
    const failing = answering(h, undefined, () => new ProviderError('server', 'down'));
    await expect(runStages([providerLimitsStage(h.parts)], failing, call('chat'))).rejects.toBeInstanceOf(ProviderError);
    expect(h.parts.limiter.concurrency('one')).toBe(0);
  });

  it('refuses beyond the requests per minute, cluster-wide in Redis', async () => {
    const terminal = answering(h);
    for (let i = 0; i < 2; i++) await endPlain(await runStages([providerLimitsStage(h.parts)], terminal, call('paced')));
    const refused = await runStages([providerLimitsStage(h.parts)], terminal, call('paced')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CandidateUnavailable);
    expect((refused as CandidateUnavailable).outcome).toMatchObject({ kind: 'limited', retryAfterMs: expect.any(Number) });
    expect(terminal.calls).toHaveLength(2);
  });
});
