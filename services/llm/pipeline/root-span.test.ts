import { SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { answering, callFor, completionOf, endPlain, nowhere, pipelineHarness, runStages, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { badRequest } from '../../kit/errors';
import { startSpan } from '../../kit/tracing';
import { rootSpanStage } from './root-span';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({ providers: [nowhere('a')], models: { chat: [{ provider: 'a', model: 'm' }] } });
});
afterAll(() => h.close());
beforeEach(() => h.spans.reset());

describe('root span stage', () => {
  it('is a child of the caller, the parent of what comes after, and ends with the answer', async () => {
    const { span: caller, context } = startSpan(h.parts.tracer, 'caller', undefined);
    const terminal = answering(h, completionOf('hi', { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 }));
    const answer = await runStages([rootSpanStage(h.parts)], terminal, callFor('chat', { options: { traceContext: context } }));
    expect(h.spans.getFinishedSpans()).toHaveLength(0);
    await endPlain(answer);
    caller.end();
    const root = h.spans.getFinishedSpans().find((s) => s.name === 'chat chat')!;
    expect(root.parentSpanContext?.spanId).toBe(caller.spanContext().spanId);
    expect(trace.getSpan(terminal.calls[0]!.trace!)!.spanContext().spanId).toBe(root.spanContext().spanId);
    expect(root.attributes).toMatchObject({ 'gen_ai.request.model': 'chat', 'promptmesh.cache': 'skip', 'gen_ai.usage.input_tokens': 4, 'gen_ai.usage.output_tokens': 2, 'gen_ai.response.model': 'gpt-4o-mini-2024' });
  });

  it('ends with the error code when the rest of the pipeline throws', async () => {
    const terminal = answering(h, undefined, () => badRequest('no', 'x', 'nope'));
    await expect(runStages([rootSpanStage(h.parts)], terminal, callFor('chat'))).rejects.toMatchObject({ code: 'nope' });
    const [root] = h.spans.getFinishedSpans();
    expect(root!.status.code).toBe(SpanStatusCode.ERROR);
    expect(root!.attributes['error.type']).toBe('nope');
  });

  it('marks a client that stopped reading as client_gone', async () => {
    const answer = await runStages([rootSpanStage(h.parts)], answering(h), callFor('chat'));
    await answer.end({ kind: 'gone', used: 0, thrown: undefined });
    expect(h.spans.getFinishedSpans()[0]!.attributes['error.type']).toBe('client_gone');
  });
});
