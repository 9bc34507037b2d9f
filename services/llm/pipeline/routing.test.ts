import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { ProviderError } from '../types';
import { CandidateUnavailable } from './outcomes';
import { routingStage } from './routing';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({
    providers: [nowhere('a'), nowhere('b')],
    models: { chat: [{ provider: 'a', model: 'm' }, { provider: 'b', model: 'm' }] },
    routing: { strategy: 'priority' },
  });
});
afterAll(() => h.close());

const call = () => callFor('chat', { targets: candidatesOf(h, 'chat') });
const tried = (t: ReturnType<typeof answering>) => t.calls.map((c) => `${c.candidate!.provider}${c.hasFallback ? '+' : ''}`);

describe('routing stage', () => {
  it('falls back to the next candidate when one fails, telling each whether another follows', async () => {
    const terminal = answering(h, undefined, (n) => (n === 1 ? new ProviderError('server', 'down', 500) : undefined));
    const answer = await runStages([routingStage(h.parts)], terminal, call());
    expect(answer.provider).toBe('b');
    expect(tried(terminal)).toEqual(['a+', 'b']);
  });

  it('ends the call with a 400 when a provider rejects the request as invalid', async () => {
    const terminal = answering(h, undefined, () => new ProviderError('bad_request', 'no such field', 400));
    await expect(runStages([routingStage(h.parts)], terminal, call())).rejects.toMatchObject({ statusCode: 400, code: 'upstream_bad_request' });
    expect(tried(terminal)).toEqual(['a+']);
  });

  it('names the field an adapter could not translate as the 400\'s param', async () => {
    const terminal = answering(h, undefined, () => new ProviderError('bad_request', 'seed: is not supported by bedrock providers', undefined, undefined, 'seed'));
    const err = await runStages([routingStage(h.parts)], terminal, call()).catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 400, code: 'unsupported_parameter', param: 'seed' });
    expect((err as Error).message).toContain('seed: is not supported by bedrock providers');
    expect(tried(terminal)).toEqual(['a+']);
  });

  it('sums up why nobody answered: 502 when they failed, naming the last error', async () => {
    const terminal = answering(h, undefined, (n) => new ProviderError('server', `failure ${n}`, 500));
    const err = await runStages([routingStage(h.parts)], terminal, call()).catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 502, code: 'providers_failed' });
    expect((err as Error).message).toContain('a: server (500): failure 1; b: server (500): failure 2 (last error from b: failure 2)');
  });

  it('503 with Retry-After when no candidate could be tried, 429 when all are rate limited', async () => {
    const open = answering(h, undefined, (_n, c) => new CandidateUnavailable({ kind: 'open', provider: c.candidate!.provider, retryInMs: 2_500 }));
    await expect(runStages([routingStage(h.parts)], open, call())).rejects.toMatchObject({ statusCode: 503, code: 'providers_unavailable', headers: { 'retry-after': '3' } });
    const limited = answering(h, undefined, (_n, c) =>
      c.candidate!.provider === 'a' ? new CandidateUnavailable({ kind: 'limited', provider: 'a', retryAfterMs: 4_000, reason: 'rpm' }) : new ProviderError('rate_limited', 'slow down', 429, 1_000),
    );
    await expect(runStages([routingStage(h.parts)], limited, call())).rejects.toMatchObject({ statusCode: 429, headers: { 'retry-after': '1' } });
  });

  it('tries only the first candidate without fallback, and feeds latency estimates from answers that ended well', async () => {
    const solo = await pipelineHarness({
      providers: [nowhere('a'), nowhere('b')],
      models: { chat: [{ provider: 'a', model: 'm' }, { provider: 'b', model: 'm' }] },
      routing: { strategy: 'priority', fallback: false },
    });
    try {
      const failing = answering(solo, undefined, () => new ProviderError('server', 'down', 500));
      await expect(runStages([routingStage(solo.parts)], failing, callFor('chat', { targets: candidatesOf(solo, 'chat') }))).rejects.toMatchObject({ statusCode: 502 });
      expect(failing.calls).toHaveLength(1);
      const answer = await runStages([routingStage(solo.parts)], answering(solo), callFor('chat', { targets: candidatesOf(solo, 'chat') }));
      expect(solo.parts.latency.estimate('a', 'm')).toBeUndefined();
      await endPlain(answer);
      expect(solo.parts.latency.estimate('a', 'm')).toBe(7);
    } finally {
      await solo.close();
    }
  });
});
