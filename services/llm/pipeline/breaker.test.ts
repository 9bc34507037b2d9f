import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { upstreamError } from '../../kit/errors';
import { ProviderError } from '../types';
import { breakerStage } from './breaker';
import { CandidateUnavailable } from './outcomes';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({
    providers: [nowhere('a'), nowhere('b'), nowhere('c')],
    models: { chat: [{ provider: 'a', model: 'm' }], other: [{ provider: 'b', model: 'm' }], third: [{ provider: 'c', model: 'm' }] },
    routing: { breaker: { failures: 2, cooldownMs: 60_000 } },
  });
});
afterAll(() => h.close());

const call = (model: string) => callFor(model, { candidate: candidatesOf(h, model)[0] });

describe('breaker stage', () => {
  it('opens after consecutive provider failures and then refuses without calling', async () => {
    const terminal = answering(h, undefined, () => new ProviderError('server', 'down', 500));
    for (let i = 0; i < 2; i++) await expect(runStages([breakerStage(h.parts)], terminal, call('chat'))).rejects.toBeInstanceOf(ProviderError);
    const refused = await runStages([breakerStage(h.parts)], terminal, call('chat')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CandidateUnavailable);
    expect((refused as CandidateUnavailable).outcome).toMatchObject({ kind: 'open', provider: 'a' });
    expect(terminal.calls).toHaveLength(2);
    expect(h.parts.breakers.get('a')!.state).toBe('open');
  });

  it('does not count requests the provider rejected as invalid, nor clients that left', async () => {
    const invalid = answering(h, undefined, () => new ProviderError('bad_request', 'no', 400));
    for (let i = 0; i < 3; i++) await expect(runStages([breakerStage(h.parts)], invalid, call('other'))).rejects.toBeInstanceOf(ProviderError);
    for (let i = 0; i < 3; i++) {
      const answer = await runStages([breakerStage(h.parts)], answering(h), call('other'));
      await answer.end({ kind: 'gone', used: 0, thrown: undefined });
    }
    expect(h.parts.breakers.get('b')!.state).toBe('closed');
  });

  it('counts a stream that broke off after its first chunk, and a success closes the count', async () => {
    const broken = async () => {
      const answer = await runStages([breakerStage(h.parts)], answering(h), call('third'));
      await answer.end({ kind: 'failure', error: new ProviderError('server', 'cut'), used: 0, thrown: upstreamError(502, 'cut', 'stream_interrupted') });
    };
    await broken();
    await endPlain(await runStages([breakerStage(h.parts)], answering(h), call('third')));
    await broken();
    expect(h.parts.breakers.get('c')!.state).toBe('closed');
    await broken();
    expect(h.parts.breakers.get('c')!.state).toBe('open');
  });
});
