import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../../test/fake-provider/server';
import { callFor, candidatesOf, pipelineHarness, type PipelineHarness } from '../../../test/support/llm-pipeline';
import { waitFor } from '../../../test/support/net';
import { startSpan } from '../../kit/tracing';
import type { ChatCompletionChunk } from '../../openai';
import { ProviderError } from '../types';
import { ClientGone } from './outcomes';
import { providerCall } from './provider';

let fake: FakeProvider;
let h: PipelineHarness;
beforeAll(async () => {
  fake = await startFakeProvider();
  h = await pipelineHarness({
    providers: [{ name: 'f', type: 'openai', baseUrl: `${fake.url}/v1`, timeoutMs: 1_000 }],
    models: { chat: [{ provider: 'f', model: 'gpt-4o-mini' }] },
  });
});
afterEach(() => fake.reset());
afterAll(async () => {
  await h.close();
  await fake.close();
});

const call = (extra: Parameters<typeof callFor>[1] = {}) => callFor('chat', { candidate: candidatesOf(h, 'chat')[0], ...extra });

describe('provider call (the terminal step)', () => {
  it('sends the provider its model name without our extension fields, with the trace context', async () => {
    const { span, context } = startSpan(h.parts.tracer, 'attempt', undefined);
    const answer = await providerCall(h.parts)(call({ trace: context, body: { session_id: 's1', cache: false, temperature: 0 } }));
    span.end();
    expect(answer.provider).toBe('f');
    expect(answer.completion!.choices[0]!.message.content).toBe('echo: hello there');
    const sent = fake.requests[0]!;
    expect(sent.body).toMatchObject({ model: 'gpt-4o-mini', temperature: 0, stream: false });
    expect(sent.body).not.toHaveProperty('session_id');
    expect(sent.body).not.toHaveProperty('cache');
    expect(sent.headers.traceparent).toContain(span.spanContext().traceId);
    await answer.end({ kind: 'success', usage: undefined, completion: answer.completion, responseModel: undefined, used: undefined });
  });

  it('returns a stream once its first chunk arrived; the rest follows', async () => {
    fake.setBehavior({ reply: { text: 'one two three' } });
    const answer = await providerCall(h.parts)(call({ stream: true }));
    const texts = [answer.stream!.first.choices[0]?.delta?.content ?? ''];
    for (let r = await answer.stream!.rest.next(); !r.done; r = await answer.stream!.rest.next()) texts.push((r.value as ChatCompletionChunk).choices[0]?.delta?.content ?? '');
    expect(texts.join('')).toBe('one two three');
    await answer.end({ kind: 'success', usage: undefined, completion: undefined, responseModel: undefined, used: 0 });
  });

  it('turns an error answer into a ProviderError with its kind and status', async () => {
    fake.setBehavior({ rules: [{ fault: { type: 'status', status: 503 } }] });
    await expect(providerCall(h.parts)(call())).rejects.toMatchObject({ name: 'ProviderError', kind: 'overloaded', status: 503 });
  });

  it('times out after the provider timeout, and stops the upstream call', async () => {
    fake.setBehavior({ rules: [{ fault: { type: 'stall' } }] });
    const err = await providerCall(h.parts)(call()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).kind).toBe('timeout');
    await waitFor(() => fake.stats.inFlight === 0);
  });

  it('is ClientGone when the caller aborts', async () => {
    fake.setBehavior({ rules: [{ latencyMs: 5_000 }] });
    const controller = new AbortController();
    const pending = providerCall(h.parts)(call({ options: { signal: controller.signal } }));
    await waitFor(() => fake.stats.requests === 1);
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(ClientGone);
  });

  it('stops a stream upstream when the answer ends with the client gone', async () => {
    fake.setBehavior({ reply: { tokens: 200, tokenDelayMs: 20 } });
    const answer = await providerCall(h.parts)(call({ stream: true }));
    await waitFor(() => fake.stats.inFlight === 1);
    await answer.end({ kind: 'gone', used: 0, thrown: undefined });
    await waitFor(() => fake.stats.inFlight === 0);
  });
});
