import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, completionOf, endPlain, nowhere, pipelineHarness, runStages, seriesValue, streaming, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { METRICS } from '../../../contracts';
import { streamChunks } from './answer';
import { cacheStage } from './cache';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({ providers: [nowhere('a', { prices: { m: { input: 1, output: 2 } } })], models: { chat: [{ provider: 'a', model: 'm' }] } });
});
afterAll(() => h.close());

const deterministic = { temperature: 0 };

describe('cache stage', () => {
  it('stores a finished answer once it ended, then answers the same request from Redis at no cost', async () => {
    const body = { ...deterministic, messages: [{ role: 'user' as const, content: `first ${Date.now()}` }] };
    const terminal = answering(h, completionOf('cached words', { prompt_tokens: 1_000_000, completion_tokens: 0, total_tokens: 1_000_000 }));
    const miss = await runStages([cacheStage(h.parts)], terminal, callFor('chat', { body, candidate: candidatesOf(h, 'chat')[0] }));
    expect(miss.cache).toBe('miss');
    await endPlain(miss);
    const hit = await runStages([cacheStage(h.parts)], terminal, callFor('chat', { body }));
    expect(terminal.calls).toHaveLength(1);
    expect(hit.cache).toBe('hit');
    expect(hit.completion!.choices[0]!.message.content).toBe('cached words');
    expect(hit.completion!.usage).toMatchObject({ cost_usd: 0 });
    expect(hit.provider).toBe('a');
    // What the hit saved: a million input tokens at 1 USD per million.
    expect(await seriesValue(h.registry, METRICS.cacheSavedUsd, { provider: 'a', model: 'm' })).toBeCloseTo(1);
  });

  it('does not store an answer that did not finish, nor one whose call failed', async () => {
    const body = { ...deterministic, messages: [{ role: 'user' as const, content: `unfinished ${Date.now()}` }] };
    const unfinished = answering(h, completionOf('half', undefined, null));
    await endPlain(await runStages([cacheStage(h.parts)], unfinished, callFor('chat', { body })));
    const again = await runStages([cacheStage(h.parts)], unfinished, callFor('chat', { body }));
    expect(again.cache).toBe('miss');
    await again.end({ kind: 'gone', used: 0, thrown: undefined });
    expect((await runStages([cacheStage(h.parts)], unfinished, callFor('chat', { body }))).cache).toBe('miss');
  });

  it('stores a stream after its last chunk', async () => {
    const body = { ...deterministic, messages: [{ role: 'user' as const, content: `stream ${Date.now()}` }] };
    const chunk = (content: string, finish: 'stop' | null) => ({ id: 'c', object: 'chat.completion.chunk' as const, created: 1, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: finish }] });
    const answer = await runStages([cacheStage(h.parts)], streaming(h, [chunk('a', null), chunk('b', 'stop')]), callFor('chat', { body, stream: true }));
    for await (const _ of streamChunks(answer, callFor('chat', { body }).request, false)) {
      // read to the end
    }
    const hit = await runStages([cacheStage(h.parts)], answering(h), callFor('chat', { body, stream: true }));
    expect(hit.cache).toBe('hit');
    expect(hit.completion!.choices[0]!.message.content).toBe('ab');
  });

  it('skips what is not cacheable, and keeps tenants apart', async () => {
    const before = (await seriesValue(h.registry, METRICS.cacheRequests, { result: 'skip' })) ?? 0;
    const terminal = answering(h);
    const random = await runStages([cacheStage(h.parts)], terminal, callFor('chat', { body: { temperature: 1 } }));
    expect(random.cache).toBe('skip');
    expect(await seriesValue(h.registry, METRICS.cacheRequests, { result: 'skip' })).toBe(before + 1);

    const body = { ...deterministic, messages: [{ role: 'user' as const, content: `tenant ${Date.now()}` }] };
    await endPlain(await runStages([cacheStage(h.parts)], terminal, callFor('chat', { body, options: { tenant: 'k1' } })));
    expect((await runStages([cacheStage(h.parts)], terminal, callFor('chat', { body, options: { tenant: 'k2' } }))).cache).toBe('miss');
    expect((await runStages([cacheStage(h.parts)], terminal, callFor('chat', { body, options: { tenant: 'k1', cache: 'off' } }))).cache).toBe('skip');
  });
});
