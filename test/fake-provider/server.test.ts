// The fake provider, driven by the official SDKs: if `openai` and `@anthropic-ai/sdk` parse what
// it sends, it speaks the real wire formats; each misbehaviour is then observed through them.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from './server';

let fake: FakeProvider;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  fake = await startFakeProvider({ apiKey: 'sk-test', anthropicApiKey: 'ak-test' });
  openai = new OpenAI({ apiKey: 'sk-test', baseURL: `${fake.url}/v1`, maxRetries: 0, timeout: 10_000 });
  anthropic = new Anthropic({ apiKey: 'ak-test', baseURL: fake.url, maxRetries: 0, timeout: 10_000 });
});
afterAll(async () => {
  await fake.close();
});
afterEach(() => fake.reset());

const user = (content: string) => [{ role: 'user' as const, content }];

describe('OpenAI wire format', () => {
  it('answers a plain completion the SDK parses, echoing the last user message with usage', async () => {
    const res = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'system', content: 'be brief' }, ...user('first'), { role: 'assistant', content: 'ok' }, ...user('hello there')],
    });
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.object).toBe('chat.completion');
    expect(res.model).toBe('gpt-4o-mini');
    expect(res.choices[0].message).toMatchObject({ role: 'assistant', content: 'echo: hello there' });
    expect(res.choices[0].finish_reason).toBe('stop');
    expect(res.usage!.completion_tokens).toBe(3);
    expect(res.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(res.usage!.total_tokens).toBe(res.usage!.prompt_tokens + res.usage!.completion_tokens);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', body: { model: 'gpt-4o-mini' } });
    expect(fake.requests[0].headers.authorization).toBe('Bearer sk-test');
  });

  it('streams chunks the SDK parses, with a final usage chunk when asked', async () => {
    const stream = await openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: user('one two three'),
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: one two three');
    const finish = chunks.find((c) => c.choices[0]?.finish_reason);
    expect(finish!.choices[0].finish_reason).toBe('stop');
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 4 });
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it('omits the usage chunk when not asked, and honours max_tokens, stop and fixed replies', async () => {
    fake.setBehavior({ reply: { text: 'alpha beta gamma delta' } });
    const stream = await openai.chat.completions.create({ model: 'm', messages: user('x'), stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.every((c) => c.choices.length === 1 && !c.usage)).toBe(true);

    const cut = await openai.chat.completions.create({ model: 'm', messages: user('x'), max_completion_tokens: 2 });
    expect(cut.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'alpha beta' } });
    const stopped = await openai.chat.completions.create({ model: 'm', messages: user('x'), stop: [' gamma'] });
    expect(stopped.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'alpha beta' } });

    fake.setBehavior({ reply: { tokens: 7 } });
    const long = await openai.chat.completions.create({ model: 'm', messages: user('a b') });
    expect(long.usage!.completion_tokens).toBe(7);
    expect(long.choices[0].message.content!.split(' ')).toHaveLength(7);
  });

  it('answers with a tool call when the plan says so, plain and streaming', async () => {
    fake.setBehavior({ reply: { toolCall: { name: 'get_weather', arguments: { city: 'Oslo' } } } });
    const res = await openai.chat.completions.create({ model: 'm', messages: user('weather?') });
    expect(res.choices[0].finish_reason).toBe('tool_calls');
    const call = res.choices[0].message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{"city":"Oslo"}' });
    const stream = openai.chat.completions.stream({ model: 'm', messages: user('weather?') });
    const final = await stream.finalChatCompletion();
    const streamed = final.choices[0].message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
    expect(streamed.function).toMatchObject({ name: 'get_weather', arguments: '{"city":"Oslo"}' });
  });

  it('rejects a wrong or missing key with 401 and bad input with 400 naming the field', async () => {
    const wrong = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${fake.url}/v1`, maxRetries: 0 });
    await expect(wrong.chat.completions.create({ model: 'm', messages: user('x') })).rejects.toMatchObject({ status: 401 });
    const missing = await request(`${fake.url}/v1/chat/completions`, { method: 'POST', body: '{"model":"m","messages":[]}' });
    expect(missing.statusCode).toBe(401);
    expect(await missing.body.json()).toMatchObject({ error: { code: 'missing_api_key' } });
    await expect(openai.chat.completions.create({ model: 'm', messages: [] })).rejects.toMatchObject({ status: 400, param: 'messages' });
  });

  it('lists models', async () => {
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toEqual(['gpt-4o-mini', 'claude-haiku-4-5']);
  });
});

describe('Anthropic wire format', () => {
  it('answers a plain message the SDK parses, with usage', async () => {
    const msg = await anthropic.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 100,
      system: 'be brief',
      messages: user('hello there'),
    });
    expect(msg.id).toMatch(/^msg_/);
    expect(msg.type).toBe('message');
    expect(msg.content).toEqual([{ type: 'text', text: 'echo: hello there' }]);
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.usage.output_tokens).toBe(3);
    expect(msg.usage.input_tokens).toBeGreaterThan(0);
    const h = fake.requests[0].headers;
    expect(h['x-api-key'] ?? h.authorization).toMatch(/ak-test$/);
    expect(fake.requests[0].headers['anthropic-version']).toBeTruthy();
  });

  it('streams the real event sequence, which the SDK assembles', async () => {
    const stream = await anthropic.messages.create({ model: 'c', max_tokens: 100, messages: user('a b'), stream: true });
    const types: string[] = [];
    let text = '';
    let outputTokens = 0;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
      if (ev.type === 'message_delta') outputTokens = ev.usage.output_tokens;
    }
    expect(types).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(text).toBe('echo: a b');
    expect(outputTokens).toBe(3);

    const helper = anthropic.messages.stream({ model: 'c', max_tokens: 2, messages: user('a b c'), stop_sequences: ['zzz'] });
    const final = await helper.finalMessage();
    expect(final.stop_reason).toBe('max_tokens');
    expect(final.content).toEqual([{ type: 'text', text: 'echo: a' }]);
  });

  it('streams a tool_use block', async () => {
    fake.setBehavior({ reply: { toolCall: { name: 'lookup', arguments: { q: 'x', n: 2 } } } });
    const final = await anthropic.messages.stream({ model: 'c', max_tokens: 100, messages: user('?') }).finalMessage();
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content[0]).toMatchObject({ type: 'tool_use', name: 'lookup', input: { q: 'x', n: 2 } });
  });

  it('thinks first when the request enables thinking, plain and streamed, as the SDK assembles it', async () => {
    const thinking = { type: 'enabled' as const, budget_tokens: 1024 };
    const msg = await anthropic.messages.create({ model: 'c', max_tokens: 2000, thinking, messages: user('why') });
    expect(msg.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    expect(msg.content[0]).toMatchObject({ type: 'thinking', thinking: 'Thinking about: why' });
    expect((msg.content[0] as { signature: string }).signature).toMatch(/^sig_/);
    const final = await anthropic.messages.stream({ model: 'c', max_tokens: 2000, thinking, messages: user('why') }).finalMessage();
    expect(final.content).toEqual(msg.content);
  });

  it('refuses a tool-use continuation whose thinking lost its signature, was altered or is missing, as Claude does', async () => {
    const thinking = { type: 'enabled' as const, budget_tokens: 1024 };
    const tools = [{ name: 'weather', input_schema: { type: 'object' as const, properties: {} } }];
    fake.setBehavior({ rules: [{ times: 1, reply: { toolCall: { name: 'weather', arguments: {} } } }] });
    const first = await anthropic.messages.create({ model: 'c', max_tokens: 2000, thinking, tools, messages: user('weather?') });
    const [block, use] = first.content as [Anthropic.ThinkingBlock, Anthropic.ToolUseBlock];
    const go = (content: Anthropic.ContentBlockParam[]) =>
      anthropic.messages.create({ model: 'c', max_tokens: 2000, thinking, tools, messages: [...user('weather?'), { role: 'assistant', content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] }] });
    expect((await go(first.content as Anthropic.ContentBlockParam[])).stop_reason).toBe('end_turn');
    const { signature: _s, ...unsigned } = block;
    await expect(go([unsigned as never, use])).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/messages\.1\.content\.0\.thinking\.signature: Field required/) });
    await expect(go([{ ...block, thinking: 'edited' }, use])).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/Invalid `signature` in `thinking` block/) });
    await expect(go([use])).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/Expected `thinking` or `redacted_thinking`, but found `tool_use`/) });
    // Without thinking on, an earlier turn's thinking is not required.
    const plain = await anthropic.messages.create({ model: 'c', max_tokens: 100, tools, messages: [...user('weather?'), { role: 'assistant', content: [use] }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] }] });
    expect(plain.stop_reason).toBe('end_turn');
  });

  it('reports prompt-cache usage apart from input_tokens', async () => {
    fake.setBehavior({ reply: { cachedTokens: 3, cacheWriteTokens: 2 } });
    const msg = await anthropic.messages.create({ model: 'c', max_tokens: 100, messages: user('one two three four five six seven') });
    expect(msg.usage).toMatchObject({ cache_read_input_tokens: 3, cache_creation_input_tokens: 2 });
    const final = await anthropic.messages.stream({ model: 'c', max_tokens: 100, messages: user('one two three four five six seven') }).finalMessage();
    expect(final.usage).toMatchObject({ input_tokens: msg.usage.input_tokens, cache_read_input_tokens: 3, cache_creation_input_tokens: 2 });
  });

  it('checks x-api-key and anthropic-version like the real API', async () => {
    const noKey = await request(`${fake.url}/v1/messages`, { method: 'POST', headers: { 'anthropic-version': '2023-06-01' }, body: '{}' });
    expect(noKey.statusCode).toBe(401);
    expect(await noKey.body.json()).toEqual({ type: 'error', error: { type: 'authentication_error', message: 'x-api-key header is required' } });
    const noVersion = await request(`${fake.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'ak-test' }, body: '{}' });
    expect(noVersion.statusCode).toBe(400);
    await noVersion.body.dump();
    const wrong = new Anthropic({ apiKey: 'nope', baseURL: fake.url, maxRetries: 0 });
    await expect(wrong.messages.create({ model: 'c', max_tokens: 5, messages: user('x') })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    await expect(anthropic.messages.create({ model: 'c', max_tokens: 5, messages: [{ role: 'system' as 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 400,
    });
  });
});

describe('misbehaviour', () => {
  it('answers 429 with Retry-After for the next N requests, then recovers', async () => {
    fake.setBehavior({ rules: [{ times: 2, fault: { type: 'status', status: 429, retryAfter: 3, retryAfterMs: 2500 } }] });
    for (let i = 0; i < 2; i++) {
      const err = await openai.chat.completions.create({ model: 'm', messages: user('x') }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('3');
      expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after-ms')).toBe('2500');
    }
    await expect(openai.chat.completions.create({ model: 'm', messages: user('x') })).resolves.toBeTruthy();
    expect(fake.stats.outcomes).toEqual({ status_429: 2, ok: 1 });
  });

  it('answers 500, 503 and 529 in each API error shape', async () => {
    fake.setBehavior({ rules: [{ api: 'openai', times: 1, fault: { type: 'status', status: 500 } }, { api: 'openai', fault: { type: 'status', status: 503 } }, { api: 'anthropic', fault: { type: 'status', status: 529 } }] });
    await expect(openai.chat.completions.create({ model: 'm', messages: user('x') })).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    await expect(openai.chat.completions.create({ model: 'm', messages: user('x') })).rejects.toMatchObject({ status: 503 });
    const err = await anthropic.messages.create({ model: 'c', max_tokens: 5, messages: user('x') }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 529, error: { type: 'error', error: { type: 'overloaded_error' } } });
  });

  it('resets the connection before or after the headers', async () => {
    fake.setBehavior({ rules: [{ times: 1, fault: { type: 'reset' } }, { fault: { type: 'reset', afterHeaders: true } }] });
    await expect(openai.chat.completions.create({ model: 'm', messages: user('x') })).rejects.toBeInstanceOf(OpenAI.APIConnectionError);
    const stream = await openai.chat.completions.create({ model: 'm', messages: user('a b c d'), stream: true });
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const c of stream) got.push(c.choices[0]?.delta.content ?? '');
      })(),
    ).rejects.toThrow();
    expect(got.join('')).toBe('echo:');
    expect(fake.stats.outcomes.reset).toBe(2);
  });

  it('stalls: a plain request never gets headers, a stream stops after N chunks without closing', async () => {
    fake.setBehavior({ rules: [{ stream: false, fault: { type: 'stall' } }, { stream: true, fault: { type: 'stall', afterChunks: 2 } }] });
    const quick = new OpenAI({ apiKey: 'sk-test', baseURL: `${fake.url}/v1`, maxRetries: 0, timeout: 300 });
    await expect(quick.chat.completions.create({ model: 'm', messages: user('x') })).rejects.toBeInstanceOf(OpenAI.APIConnectionTimeoutError);

    const ac = new AbortController();
    const stream = await openai.chat.completions.create({ model: 'm', messages: user('a b c d e'), stream: true }, { signal: ac.signal });
    const got: string[] = [];
    const reading = (async () => {
      for await (const c of stream) got.push(c.choices[0]?.delta.content ?? '');
    })();
    const outcome = await Promise.race([reading.then(() => 'ended', () => 'failed'), new Promise((r) => setTimeout(r, 500, 'still open'))]);
    expect(outcome).toBe('still open');
    expect(got.join('')).toBe('echo: a');
    ac.abort();
    await reading.catch(() => undefined);
    expect(fake.stats.outcomes.stall).toBe(2);
  });

  it('sends malformed bodies: invalid JSON, and a broken SSE event', async () => {
    fake.setBehavior({ rules: [{ fault: { type: 'malformed' } }] });
    await expect(openai.chat.completions.create({ model: 'm', messages: user('x') })).rejects.toThrow();
    const raw = await request(`${fake.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-test' }, body: '{"model":"m","messages":[{"role":"user","content":"x"}]}' });
    expect(raw.statusCode).toBe(200);
    const text = await raw.body.text();
    expect(() => JSON.parse(text)).toThrow();
    const stream = await anthropic.messages.create({ model: 'c', max_tokens: 9, messages: user('x y'), stream: true });
    await expect(
      (async () => {
        for await (const _ of stream) void _;
      })(),
    ).rejects.toThrow();
  });

  it('sends an error event mid-stream (Anthropic overloaded_error), which the SDK raises', async () => {
    fake.setBehavior({ rules: [{ fault: { type: 'error_event', afterChunks: 1 } }] });
    const stream = await anthropic.messages.create({ model: 'c', max_tokens: 9, messages: user('x y'), stream: true });
    const types: string[] = [];
    const err = await (async () => {
      for await (const ev of stream) types.push(ev.type);
    })().catch((e: unknown) => e);
    expect(err).toMatchObject({ error: { type: 'error', error: { type: 'overloaded_error' } } });
    expect(types).toContain('content_block_delta');
    await expect(openai.chat.completions.create({ model: 'm', messages: user('x') })).rejects.toMatchObject({ status: 500 });
    expect(fake.stats.outcomes).toEqual({ error_event: 1, status_500: 1 });
  });

  it('adds latency before the headers', async () => {
    fake.setBehavior({ rules: [{ latencyMs: [200, 250] }] });
    const started = Date.now();
    await openai.chat.completions.create({ model: 'm', messages: user('x') });
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
  });

  it('scopes rules by model, so one fake plays a failing and a healthy provider', async () => {
    fake.setBehavior({ rules: [{ model: 'provider-a', fault: { type: 'status', status: 500 } }] });
    await expect(openai.chat.completions.create({ model: 'provider-a', messages: user('x') })).rejects.toMatchObject({ status: 500 });
    await expect(openai.chat.completions.create({ model: 'provider-b', messages: user('x') })).resolves.toMatchObject({ model: 'provider-b' });
    expect(fake.stats.models).toEqual({ 'provider-a': 1, 'provider-b': 1 });
  });

  it('mixes faults with a seeded RNG: the same seed gives the same sequence', async () => {
    const plan = {
      seed: 42,
      rules: [{ probability: 0.3, mix: [{ type: 'status' as const, status: 500 }, { type: 'status' as const, status: 429, retryAfter: 1 }, { type: 'malformed' as const }] }],
    };
    const run = async () => {
      fake.setBehavior(plan);
      const out: number[] = [];
      for (let i = 0; i < 60; i++) {
        const res = await request(`${fake.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-test' }, body: '{"model":"m","messages":[{"role":"user","content":"x"}]}' });
        const text = await res.body.text();
        out.push(res.statusCode === 200 && !text.endsWith('}') ? -1 : res.statusCode);
      }
      return out;
    };
    const first = await run();
    const second = await run();
    expect(second).toEqual(first);
    const failures = first.filter((s) => s !== 200).length;
    expect(failures).toBeGreaterThan(6);
    expect(failures).toBeLessThan(36);
    expect(new Set(first.filter((s) => s !== 200)).size).toBeGreaterThan(1);
  });
});

describe('admin API', () => {
  it('takes a plan, shows requests and stats, and resets', async () => {
    const bad = await request(`${fake.url}/_fake/behavior`, { method: 'POST', body: JSON.stringify({ rules: [{ times: -1 }] }) });
    expect(bad.statusCode).toBe(400);
    expect(await bad.body.json()).toMatchObject({ error: { param: 'rules[0].times' } });
    const notJson = await request(`${fake.url}/_fake/behavior`, { method: 'POST', body: '{' });
    expect(notJson.statusCode).toBe(400);
    await notJson.body.dump();

    const ok = await request(`${fake.url}/_fake/behavior`, { method: 'POST', body: JSON.stringify({ rules: [{ fault: { type: 'status', status: 503 } }] }) });
    expect(ok.statusCode).toBe(200);
    await ok.body.dump();
    await expect(openai.chat.completions.create({ model: 'm', messages: user('hi') })).rejects.toMatchObject({ status: 503 });

    const stats = await request(`${fake.url}/_fake/stats`);
    expect(await stats.body.json()).toMatchObject({ requests: 1, outcomes: { status_503: 1 }, models: { m: 1 } });
    const reqs = await request(`${fake.url}/_fake/requests`);
    const { data } = (await reqs.body.json()) as { data: Array<{ body: { messages: unknown } }> };
    expect(data[0].body.messages).toEqual(user('hi'));

    const del = await request(`${fake.url}/_fake/behavior`, { method: 'DELETE' });
    await del.body.dump();
    await expect(openai.chat.completions.create({ model: 'm', messages: user('hi') })).resolves.toBeTruthy();
    expect(() => fake.setBehavior({ rules: [{ fault: { type: 'nope' } }] } as never)).toThrow(/rules\[0\]\.fault\.type/);
  });
});
