import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../../test/fake-provider/server';
import { callFor, endPlain, pipelineHarness, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { rateLimited } from '../../kit/errors';
import { streamChunks } from './answer';
import { buildPipeline, llmStages } from './index';
import type { Stage } from './stage';

let fake: FakeProvider;
let h: PipelineHarness;
beforeAll(async () => {
  fake = await startFakeProvider();
  h = await pipelineHarness({
    providers: [{ name: 'f', type: 'openai', baseUrl: `${fake.url}/v1`, timeoutMs: 2_000, prices: { 'gpt-4o-mini': { input: 1, output: 1 } } }],
    models: { chat: [{ provider: 'f', model: 'gpt-4o-mini' }] },
  });
});
afterAll(async () => {
  await h.close();
  await fake.close();
});

describe('the llm pipeline', () => {
  it('is the stages in their documented order, ending in the provider call', () => {
    expect(llmStages(h.parts).map((s) => s.name)).toEqual([
      'root-span',
      'targets',
      'cache',
      'tenant-limits',
      'routing',
      'retry',
      'breaker',
      'provider-limits',
      'attempt-span',
      'metrics',
      'cost',
    ]);
  });

  it('answers through every stage, plain and streaming, and ends each answer with its cost', async () => {
    const pipeline = buildPipeline(h.parts);
    const plain = await pipeline(callFor('chat'));
    await endPlain(plain);
    expect(plain.provider).toBe('f');
    expect(plain.costUsd).toBeGreaterThan(0);

    const call = callFor('chat', { stream: true, body: { stream: true, stream_options: { include_usage: true } } });
    const streamed = await pipeline(call);
    const chunks = [];
    for await (const c of streamChunks(streamed, call.request, true)) chunks.push(c);
    expect(chunks.at(-1)!.usage!.cost_usd).toBeGreaterThan(0);
    expect(h.parts.limiter.concurrency('f')).toBe(0);
    expect(h.spans.getFinishedSpans().map((s) => s.name).sort()).toEqual(['chat chat', 'chat chat', 'chat gpt-4o-mini', 'chat gpt-4o-mini']);
  });

  it('takes a new stage where the list puts it: here a budget check before routing that refuses', async () => {
    const seen: string[] = [];
    const budget: Stage = {
      name: 'budget',
      async run(call, next) {
        seen.push(`${call.targets.length} targets, candidate ${call.candidate?.provider ?? 'none yet'}`);
        if (call.options.tenant === 'broke') throw rateLimited('over budget', 1_000);
        return next(call);
      },
    };
    const stages = llmStages(h.parts);
    stages.splice(stages.findIndex((s) => s.name === 'routing'), 0, budget);
    const pipeline = buildPipeline(h.parts, stages);
    const before = fake.stats.requests;
    await expect(pipeline(callFor('chat', { options: { tenant: 'broke' } }))).rejects.toMatchObject({ statusCode: 429 });
    expect(fake.stats.requests).toBe(before);
    await endPlain(await pipeline(callFor('chat', { options: { tenant: 'rich' } })));
    expect(fake.stats.requests).toBe(before + 1);
    expect(seen).toEqual(['1 targets, candidate none yet', '1 targets, candidate none yet']);
  });
});
