// The OpenAI and OpenAI-compatible adapters against the fake provider over real sockets, with
// the official SDK as the reference for what goes on the wire.
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../../test/fake-provider/provider-config';
import { startFakeProvider, type FakeProvider } from '../../../../test/fake-provider/server';
import type { ProviderAdapter, ProviderConfig } from '../../types';
import type { ChatCompletionChunk, ChatRequest } from '../../../openai';
import { countTextTokens } from '../tokens';
import { createOpenAIAdapter } from '.';

let fake: FakeProvider;
let adapter: ProviderAdapter;
let compat: ProviderAdapter;
let provider: ProviderConfig;

beforeAll(async () => {
  fake = await startFakeProvider({ apiKey: 'sk-live' });
  adapter = createOpenAIAdapter({ type: 'openai' });
  compat = createOpenAIAdapter({ type: 'openai-compatible' });
  provider = fakeProviderConfig(fake, 'openai', { apiKey: 'sk-live' });
});
afterAll(async () => {
  await adapter.close?.();
  await compat.close?.();
  await fake.close();
});
afterEach(() => fake.reset());

const request = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });

async function collect(it: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('openai adapter', () => {
  it('round-trips a plain completion with the provider usage', async () => {
    const res = await adapter.complete(provider, request('hello world', { temperature: 0, max_tokens: 50, prompt: { name: 'x' }, session_id: 's1' }), {
      headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    });
    expect(res).toMatchObject({ object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message: { role: 'assistant', content: 'echo: hello world' }, finish_reason: 'stop' }] });
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.usage.completion_tokens).toBe(3);
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens + 3);

    const sent = fake.requests[0];
    expect(sent.headers.authorization).toBe('Bearer sk-live');
    expect(sent.headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    // promptmesh's own fields stay home; max_tokens becomes max_completion_tokens for OpenAI
    expect(sent.body).toEqual({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello world' }], temperature: 0, max_completion_tokens: 50, stream: false });
  });

  it('streams chunks whose last one carries usage, asking upstream for it', async () => {
    const chunks = await collect(await adapter.stream(provider, request('a b c'), {}));
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: a b c');
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason).toBe('stop');
    const last = chunks[chunks.length - 1];
    expect(last.usage).toMatchObject({ completion_tokens: 4 });
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
    expect(fake.requests[0].body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it('streams token by token when the provider is slow, and finishes on length', async () => {
    fake.setBehavior({ reply: { tokens: 6, tokenDelayMs: 5 } });
    const chunks = await collect(await adapter.stream(provider, request('x', { max_completion_tokens: 4 }), {}));
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBe(4);
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason).toBe('length');
  });

  it('passes tool calls through, plain and streaming', async () => {
    fake.setBehavior({ reply: { toolCall: { name: 'get_time', arguments: { tz: 'UTC' } } } });
    const tools = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } }];
    const res = await adapter.complete(provider, request('time?', { tools }), {});
    expect(res.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { tool_calls: [{ type: 'function', function: { name: 'get_time', arguments: '{"tz":"UTC"}' } }] } });
    const chunks = await collect(await adapter.stream(provider, request('time?', { tools }), {}));
    const args = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).map((t) => t.function?.arguments ?? '').join('');
    expect(args).toBe('{"tz":"UTC"}');
    expect(fake.requests[0].body).toMatchObject({ tools });
  });

  it('sends what the official SDK sends, and returns what it returns', async () => {
    const sdk = new OpenAI({ apiKey: 'sk-live', baseURL: `${fake.url}/v1`, maxRetries: 0 });
    const body = {
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system' as const, content: 'terse' },
        { role: 'user' as const, content: 'compare me' },
      ],
      temperature: 0.2,
      max_completion_tokens: 20,
      stop: ['\n\n'],
    };
    const viaSdk = await sdk.chat.completions.create(body);
    const viaAdapter = await adapter.complete(provider, body, {});
    const [sdkReq, adapterReq] = fake.requests;
    expect(adapterReq.path).toBe(sdkReq.path);
    expect(adapterReq.body).toEqual({ ...(sdkReq.body as object), stream: false });
    expect(adapterReq.headers['content-type']).toBe(sdkReq.headers['content-type']);
    expect(adapterReq.headers.authorization).toBe(sdkReq.headers.authorization);
    const strip = ({ id: _id, created: _c, ...rest }: Record<string, unknown>) => rest;
    expect(strip(viaAdapter as unknown as Record<string, unknown>)).toEqual(strip(viaSdk as unknown as Record<string, unknown>));

    const sdkChunks: unknown[] = [];
    for await (const c of await sdk.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })) sdkChunks.push(c);
    const adapterChunks = await collect(await adapter.stream(provider, body, {}));
    expect(adapterChunks.map((c) => strip(c as unknown as Record<string, unknown>))).toEqual(sdkChunks.map((c) => strip(c as Record<string, unknown>)));
  });

  it('reuses keep-alive connections across calls', async () => {
    for (let i = 0; i < 10; i++) await adapter.complete(provider, request(`n${i}`), {});
    for (let i = 0; i < 5; i++) await collect(await adapter.stream(provider, request(`s${i}`), {}));
    // 15 sequential calls: undici may open a second connection while the first finishes its
    // bookkeeping, but every call after that reuses one of them.
    expect(fake.requests).toHaveLength(15);
    expect(new Set(fake.requests.map((r) => r.remotePort)).size).toBeLessThanOrEqual(2);
  });

  it('handles many concurrent streams', async () => {
    fake.setBehavior({ reply: { tokens: 20, tokenDelayMs: 1 } });
    const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => collect(await adapter.stream(provider, request(`c${i}`), {}))));
    for (const chunks of results) expect(chunks[chunks.length - 1].usage?.completion_tokens).toBe(20);
  });
});

describe('openai-compatible adapter', () => {
  it('sends no auth without a key and maps max_completion_tokens to max_tokens', async () => {
    const open = await startFakeProvider();
    try {
      const p = fakeProviderConfig(open, 'openai-compatible');
      const res = await compat.complete(p, request('hi', { max_completion_tokens: 7 }), {});
      expect(res.choices[0].message.content).toBe('echo: hi');
      expect(open.requests[0].headers.authorization).toBeUndefined();
      expect(open.requests[0].body).toMatchObject({ max_tokens: 7 });
      expect(open.requests[0].body).not.toHaveProperty('max_completion_tokens');
    } finally {
      await open.close();
    }
  });

  it('counts usage itself when the server sends none, plain and streaming', async () => {
    fake.setBehavior({ reply: { text: 'hello there general kenobi', omitUsage: true } });
    const p = fakeProviderConfig(fake, 'openai-compatible', { apiKey: 'sk-live' });
    const res = await compat.complete(p, request('x'), {});
    expect(res.usage.completion_tokens).toBe(countTextTokens('hello there general kenobi'));
    expect(res.usage.prompt_tokens).toBeGreaterThan(3);
    const chunks = await collect(await compat.stream(p, request('x'), {}));
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(res.usage);
  });
});
