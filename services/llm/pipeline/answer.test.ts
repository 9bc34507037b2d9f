import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nowhere, pipelineHarness, streaming, type PipelineHarness } from '../../../test/support/llm-pipeline';
import type { ChatCompletionChunk } from '../../openai';
import { ProviderError } from '../types';
import { createAnswer, passthroughBody, streamChunks, type Ending } from './answer';
import { ClientGone } from './outcomes';
import { newCall } from './stage';

let h: PipelineHarness;
beforeAll(async () => {
  h = await pipelineHarness({ providers: [nowhere('a')], models: { chat: [{ provider: 'a', model: 'm' }] } });
});
afterAll(() => h.close());

const request = { model: 'chat', messages: [{ role: 'user' as const, content: 'hello' }] };

function chunk(content: string | undefined, finish: 'stop' | null = null, usage?: ChatCompletionChunk['usage']): ChatCompletionChunk {
  return { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm-1', choices: usage && content === undefined ? [] : [{ index: 0, delta: content === undefined ? {} : { content }, finish_reason: finish }], ...(usage ? { usage } : {}) };
}

/** A streaming answer over `rest`, recording its endings. */
async function answerOver(rest: AsyncIterator<ChatCompletionChunk>, first = chunk('Hel')) {
  const endings: Ending[] = [];
  const answer = createAnswer({ provider: 'a', model: 'm', stream: { first, rest }, latencyMs: 1, logger: h.parts.logger });
  answer.onEnd((e) => {
    endings.push(e);
    answer.costUsd = 0.5;
    answer.costMicroUsd = 500_000;
  });
  return { answer, endings };
}

async function* items(...list: Array<ChatCompletionChunk | Error>) {
  for (const x of list) {
    if (x instanceof Error) throw x;
    yield x;
  }
}

describe('an answer', () => {
  it('runs its end listeners once, in order, even when one throws', async () => {
    const seen: string[] = [];
    const answer = createAnswer({ provider: 'a', model: 'm', latencyMs: 1, logger: h.parts.logger });
    answer.onEnd(() => void seen.push('first'));
    answer.onEnd(() => {
      throw new Error('broken listener');
    });
    answer.onEnd(async () => void seen.push('third'));
    await answer.end({ kind: 'gone', used: 0, thrown: undefined });
    await answer.end({ kind: 'gone', used: 0, thrown: undefined });
    expect(seen).toEqual(['first', 'third']);
    expect(() => answer.onEnd(() => undefined)).toThrow('after the answer ended');
  });
});

describe('streamChunks ends the answer exactly once', () => {
  it('after the last chunk, then sends the usage chunk with the cost', async () => {
    const usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
    const { answer, endings } = await answerOver(items(chunk('lo', 'stop'), chunk(undefined, null, usage)));
    const out: ChatCompletionChunk[] = [];
    for await (const c of streamChunks(answer, { ...request, stream_options: { include_usage: true } }, true)) out.push(c);
    expect(endings).toHaveLength(1);
    expect(endings[0]).toMatchObject({ kind: 'success', usage, responseModel: 'm-1' });
    expect((endings[0] as Extract<Ending, { kind: 'success' }>).completion?.choices[0]?.message.content).toBe('Hello');
    expect(out.map((c) => c.choices[0]?.delta?.content ?? null)).toEqual(['Hel', 'lo', null]);
    expect(out.at(-1)!.usage).toEqual({ ...usage, cost_usd: 0.5, cost_micro_usd: 500_000 });
  });

  it('when the stream breaks: a 502 stream_interrupted, with what was streamed as used', async () => {
    const { answer, endings } = await answerOver(items(chunk('lo'), new ProviderError('server', 'boom')));
    const it = streamChunks(answer, request, false)[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    const err = await it.next().catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 502, code: 'stream_interrupted' });
    expect(endings).toHaveLength(1);
    expect(endings[0]).toMatchObject({ kind: 'failure', error: { kind: 'server' } });
    expect((endings[0] as { used: number }).used).toBeGreaterThan(0);
  });

  it('when the client leaves mid-stream (the error is ClientGone)', async () => {
    const { answer, endings } = await answerOver(items(new ClientGone()));
    const it = streamChunks(answer, request, false)[Symbol.asyncIterator]();
    await it.next();
    await expect(it.next()).rejects.toBeInstanceOf(ClientGone);
    expect(endings.map((e) => e.kind)).toEqual(['gone']);
  });

  it('when the consumer stops reading, during or before its first read', async () => {
    for (const reads of [1, 0]) {
      const { answer, endings } = await answerOver(items(chunk('lo'), chunk('!', 'stop')));
      const it = streamChunks(answer, request, false)[Symbol.asyncIterator]();
      for (let i = 0; i < reads; i++) await it.next();
      await it.return!();
      expect(endings).toEqual([{ kind: 'gone', used: expect.any(Number), thrown: undefined }]);
    }
  });

  it('through a real terminal step: the stream answer the terminal made ends once', async () => {
    const terminal = streaming(h, [chunk('a'), chunk('b', 'stop')]);
    const answer = await terminal(newCall(request, {}, true));
    let ends = 0;
    answer.onEnd(() => void ends++);
    const texts: string[] = [];
    for await (const c of streamChunks(answer, request, false)) texts.push(c.choices[0]!.delta!.content!);
    await answer.end({ kind: 'gone', used: 0, thrown: undefined });
    expect(texts).toEqual(['a', 'b']);
    expect(ends).toBe(1);
  });
});

/** A passed-through answer (the Responses API) over `pieces`, recording its endings. */
function passthroughOver(...pieces: Array<string | Error>) {
  const endings: Ending[] = [];
  async function* body() {
    for (const p of pieces) {
      if (p instanceof Error) throw p;
      yield new TextEncoder().encode(p);
    }
  }
  const answer = createAnswer({ provider: 'a', model: 'm', passthrough: { status: 200, headers: {}, body: body() }, latencyMs: 1, logger: h.parts.logger });
  answer.onEnd((e) => void endings.push(e));
  return { answer, endings };
}

describe('passthroughBody ends the answer exactly once, like a stream', () => {
  const json = JSON.stringify({ id: 'r1', model: 'm-2', usage: { input_tokens: 7, output_tokens: 3, total_tokens: 10 } });

  it('at its end, with the usage read from the body, which passes unchanged', async () => {
    const { answer, endings } = passthroughOver(json.slice(0, 10), json.slice(10));
    const out: string[] = [];
    for await (const piece of passthroughBody(answer, 5)) out.push(new TextDecoder().decode(piece));
    expect(out.join('')).toBe(json);
    expect(endings).toHaveLength(1);
    expect(endings[0]).toMatchObject({ kind: 'success', usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 }, responseModel: 'm-2' });
  });

  it('when it breaks: a 502 stream_interrupted naming the answer, ended once as a failure', async () => {
    const { answer, endings } = passthroughOver('{"id":', new ProviderError('server', 'boom'));
    const it = passthroughBody(answer, 5)[Symbol.asyncIterator]();
    await it.next();
    const err = await it.next().catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 502, code: 'stream_interrupted', message: expect.stringContaining('failed mid-answer: server: boom') });
    expect(endings.map((e) => e.kind)).toEqual(['failure']);
  });

  it('when the consumer stops reading, during or before its first read', async () => {
    for (const reads of [1, 0]) {
      const { answer, endings } = passthroughOver('{"a":', '1}');
      const it = passthroughBody(answer, 5)[Symbol.asyncIterator]();
      for (let i = 0; i < reads; i++) await it.next();
      await it.return!();
      expect(endings).toEqual([{ kind: 'gone', used: expect.any(Number), thrown: undefined }]);
      expect(answer.ended).toBe(true);
    }
  });
});
