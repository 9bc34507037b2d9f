import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { ProviderError } from '../types';
import { CandidateUnavailable, ClientGone } from './outcomes';
import { retryStage } from './retry';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness(
    { providers: [nowhere('a')], models: { chat: [{ provider: 'a', model: 'm' }] }, routing: { retries: { attempts: 2, backoffMs: 1, maxRetryAfterMs: 50 } } },
    { random: () => 1 },
  );
});
afterAll(() => h.close());

const call = (extra: { hasFallback?: boolean; signal?: AbortSignal } = {}) =>
  callFor('chat', { candidate: candidatesOf(h, 'chat')[0], hasFallback: extra.hasFallback ?? false, options: { signal: extra.signal } });

describe('retry stage', () => {
  it('retries a retryable failure until it succeeds, recording each failed attempt', async () => {
    const terminal = answering(h, undefined, (n) => (n <= 2 ? new ProviderError('server', `fail ${n}`, 500) : undefined));
    const c = call();
    await runStages([retryStage(h.parts)], terminal, c);
    expect(terminal.calls).toHaveLength(3);
    expect(c.outcomes.map((o) => o.kind === 'failed' && o.error.message)).toEqual(['fail 1', 'fail 2']);
  });

  it('gives up after `attempts` retries and throws the last failure', async () => {
    const terminal = answering(h, undefined, (n) => new ProviderError('server', `fail ${n}`, 500));
    await expect(runStages([retryStage(h.parts)], terminal, call())).rejects.toThrow('fail 3');
    expect(terminal.calls).toHaveLength(3);
  });

  it('does not retry what cannot help: auth, bad requests, an unavailable candidate, a too long Retry-After', async () => {
    for (const error of [
      new ProviderError('auth', 'bad key', 401),
      new ProviderError('bad_request', 'bad field', 400),
      new CandidateUnavailable({ kind: 'open', provider: 'a', retryInMs: 1 }),
      new ProviderError('rate_limited', 'later', 429, 60_000),
    ]) {
      const terminal = answering(h, undefined, () => error);
      await expect(runStages([retryStage(h.parts)], terminal, call())).rejects.toBe(error);
      expect(terminal.calls).toHaveLength(1);
    }
  });

  it('does not wait on a timed-out provider when another candidate can answer', async () => {
    const timeouts = answering(h, undefined, () => new ProviderError('timeout', 'slow'));
    await expect(runStages([retryStage(h.parts)], timeouts, call({ hasFallback: true }))).rejects.toThrow('slow');
    expect(timeouts.calls).toHaveLength(1);
    const alone = answering(h, undefined, () => new ProviderError('timeout', 'slow'));
    await expect(runStages([retryStage(h.parts)], alone, call())).rejects.toThrow('slow');
    expect(alone.calls).toHaveLength(3);
  });

  it('stops waiting when the client leaves', async () => {
    const controller = new AbortController();
    const terminal = answering(h, undefined, () => {
      controller.abort();
      return new ProviderError('rate_limited', 'later', 429, 40);
    });
    await expect(runStages([retryStage(h.parts)], terminal, call({ signal: controller.signal }))).rejects.toBeInstanceOf(ClientGone);
    expect(terminal.calls).toHaveLength(1);
  });
});
