// The built-in echo provider: no network, the last user message back, usage counted.
import { describe, expect, it } from 'vitest';
import type { ProviderConfig } from '../../types';
import type { ChatCompletionChunk, ChatRequest } from '../../../openai';
import { countPromptTokens, countTextTokens } from '../tokens';
import { echoAdapter } from '.';

const provider: ProviderConfig = { name: 'echo', type: 'echo', baseUrl: 'echo://', timeoutMs: 1000, connectTimeoutMs: 1000, firstByteTimeoutMs: 1000 };
const request = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'echo-1',
  messages: [
    { role: 'system', content: 'ignored' },
    { role: 'user', content: 'first' },
    { role: 'assistant', content: 'x' },
    { role: 'user', content: [{ type: 'text', text: 'Hello there, ' }, { type: 'text', text: 'how are you today?' }] },
  ],
  ...extra,
});

async function collect(it: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('echo adapter', () => {
  it('echoes the last user message with counted usage', async () => {
    const res = await echoAdapter.complete(provider, request(), {});
    expect(res).toMatchObject({ object: 'chat.completion', model: 'echo-1', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there, how are you today?' }, finish_reason: 'stop' }] });
    const completion = countTextTokens('Hello there, how are you today?');
    const prompt = countPromptTokens(request().messages);
    expect(res.usage).toEqual({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
    expect(completion).toBeGreaterThan(5);
  });

  it('streams the same text in pieces: role first, finish, usage last', async () => {
    const plain = await echoAdapter.complete(provider, request(), {});
    const chunks = await collect(await echoAdapter.stream(provider, request(), {}));
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThan(3);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(plain.choices[0].message.content);
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe('stop');
    expect(chunks[chunks.length - 1]).toMatchObject({ choices: [], usage: plain.usage });
  });

  it('honours max_tokens (length) and stop', async () => {
    const cut = await echoAdapter.complete(provider, request({ max_tokens: 2 }), {});
    expect(cut.choices[0].finish_reason).toBe('length');
    expect(cut.usage.completion_tokens).toBe(2);
    expect(cut.choices[0].message.content).toBe('Hello there');
    const stopped = await echoAdapter.complete(provider, request({ stop: [', how'] }), {});
    expect(stopped.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'Hello there' } });
  });

  it('stops when the signal aborts', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(echoAdapter.complete(provider, request(), { signal: ac.signal })).rejects.toMatchObject({ kind: 'timeout' });
    const live = new AbortController();
    const stream = await echoAdapter.stream(provider, request(), { signal: live.signal });
    const got: ChatCompletionChunk[] = [];
    await expect(
      (async () => {
        for await (const c of stream) {
          got.push(c);
          if (got.length === 2) live.abort();
        }
      })(),
    ).rejects.toMatchObject({ kind: 'timeout' });
    expect(got).toHaveLength(2);
  });
});

describe('echo embeddings', () => {
  it('gives each input a unit vector of its own, the same every time, in the dimensions asked', async () => {
    const a = await echoAdapter.embed!(provider, { model: 'echo', input: ['same', 'other', 'same'] }, {});
    expect(a.data.map((d) => d.index)).toEqual([0, 1, 2]);
    expect(a.data[0]!.embedding).toHaveLength(16);
    expect(a.data[0]!.embedding).toEqual(a.data[2]!.embedding);
    expect(a.data[0]!.embedding).not.toEqual(a.data[1]!.embedding);
    expect(Math.hypot(...a.data[1]!.embedding)).toBeCloseTo(1, 10);
    expect(a.usage.prompt_tokens).toBe(countTextTokens('same') * 2 + countTextTokens('other'));
    const tokens = await echoAdapter.embed!(provider, { model: 'echo', input: [5, 6, 7], dimensions: 40 }, {});
    expect(tokens.data[0]!.embedding).toHaveLength(40);
    expect(tokens.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
  });
});
