import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { answering, callFor, candidatesOf, completionOf, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { startSpan } from '../../kit/tracing';
import { ProviderError } from '../types';
import { attemptSpanStage } from './attempt-span';
import { costStage } from './cost';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({ providers: [nowhere('a', { prices: { m: { input: 1, output: 1 } } })], models: { chat: [{ provider: 'a', model: 'm' }] } });
});
afterAll(() => h.close());
beforeEach(() => h.spans.reset());

describe('attempt span stage', () => {
  it('a CLIENT span per provider call, child of the call, parent of the provider request, with usage and cost', async () => {
    const { span: root, context } = startSpan(h.parts.tracer, 'root', undefined);
    const terminal = answering(h, completionOf('x', { prompt_tokens: 500_000, completion_tokens: 500_000, total_tokens: 1_000_000 }));
    const answer = await runStages([attemptSpanStage(h.parts), costStage()], terminal, callFor('chat', { candidate: candidatesOf(h, 'chat')[0], trace: context }));
    await endPlain(answer);
    root.end();
    const span = h.spans.getFinishedSpans().find((s) => s.name === 'chat m')!;
    expect(span.kind).toBe(SpanKind.CLIENT);
    expect(span.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(trace.getSpan(terminal.calls[0]!.trace!)!.spanContext().spanId).toBe(span.spanContext().spanId);
    expect(span.attributes).toMatchObject({ 'promptmesh.provider': 'a', 'gen_ai.system': 'openai', 'gen_ai.usage.input_tokens': 500_000, 'promptmesh.cost_usd': 1, 'gen_ai.response.model': 'gpt-4o-mini-2024' });
  });

  it('ends with the failure kind, or client_gone', async () => {
    const failing = answering(h, undefined, () => new ProviderError('rate_limited', 'later', 429));
    await expect(runStages([attemptSpanStage(h.parts)], failing, callFor('chat', { candidate: candidatesOf(h, 'chat')[0] }))).rejects.toBeInstanceOf(ProviderError);
    const answer = await runStages([attemptSpanStage(h.parts)], answering(h), callFor('chat', { candidate: candidatesOf(h, 'chat')[0] }));
    await answer.end({ kind: 'gone', used: 0, thrown: undefined });
    const [failed, gone] = h.spans.getFinishedSpans();
    expect(failed!.status.code).toBe(SpanStatusCode.ERROR);
    expect(failed!.attributes['error.type']).toBe('rate_limited');
    expect(gone!.attributes['error.type']).toBe('client_gone');
  });
});
