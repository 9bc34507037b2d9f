// The Anthropic adapter: the request translation, and round trips against the fake provider
// over real sockets, with the official SDK as the reference for the wire format.
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../../test/fake-provider/provider-config';
import { startFakeProvider, type FakeProvider } from '../../../../test/fake-provider/server';
import { thinkingSignature } from '../../../../test/fake-provider/wire';
import { ProviderError, type ProviderAdapter, type ProviderConfig } from '../../types';
import type { ChatCompletionChunk, ChatRequest } from '../../../openai';
import { DEFAULT_MAX_TOKENS, createAnthropicAdapter, toAnthropicBody } from '.';

let fake: FakeProvider;
let adapter: ProviderAdapter;
let provider: ProviderConfig;

beforeAll(async () => {
  fake = await startFakeProvider({ anthropicApiKey: 'ak-live' });
  adapter = createAnthropicAdapter();
  provider = fakeProviderConfig(fake, 'anthropic', { apiKey: 'ak-live' });
});
afterAll(async () => {
  await adapter.close?.();
  await fake.close();
});
afterEach(() => fake.reset());

const request = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'claude-haiku-4-5', messages: [{ role: 'user', content }], ...extra });

async function collect(it: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('request translation', () => {
  it('pulls system messages out, merges same-role neighbours, and maps the parameters', () => {
    const body = toAnthropicBody(
      {
        model: 'claude-haiku-4-5',
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'one' },
          { role: 'user', content: [{ type: 'text', text: 'two' }] },
          { role: 'developer', content: 'Answer in English.' },
          { role: 'assistant', content: 'ok' },
          { role: 'user', content: 'three' },
        ],
        temperature: 1.7,
        top_p: 0.9,
        stop: 'END',
        user: 'u-1',
      },
      false,
    );
    expect(body).toEqual({
      model: 'claude-haiku-4-5',
      max_tokens: 64_000,
      system: 'You are terse.\n\nAnswer in English.',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] },
        { role: 'assistant', content: [{ type: 'text', text: 'ok' }] },
        { role: 'user', content: [{ type: 'text', text: 'three' }] },
      ],
      temperature: 1,
      top_p: 0.9,
      stop_sequences: ['END'],
      metadata: { user_id: 'u-1' },
    });
    expect(toAnthropicBody(request('x', { max_tokens: 10, max_completion_tokens: 20 }), true)).toMatchObject({ max_tokens: 20, stream: true });
  });

  it('translates tools, tool calls and tool results', () => {
    const body = toAnthropicBody(
      {
        model: 'c',
        messages: [
          { role: 'user', content: 'weather in Oslo?' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
          { role: 'tool', tool_call_id: 'toolu_1', content: 'rain' },
        ],
        tools: [{ type: 'function', function: { name: 'weather', description: 'forecast', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
        tool_choice: { type: 'function', function: { name: 'weather' } },
      },
      false,
    );
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'weather in Oslo?' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Oslo' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'rain' }] },
    ]);
    expect(body.tools).toEqual([{ name: 'weather', description: 'forecast', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }]);
    expect(body.tool_choice).toEqual({ type: 'tool', name: 'weather' });
  });

  it('refuses what Anthropic cannot take, as bad_request, before any network call', async () => {
    const onlySystem = await adapter.complete(provider, { model: 'c', messages: [{ role: 'system', content: 'x' }] }, {}).catch((e: unknown) => e);
    expect(onlySystem).toBeInstanceOf(ProviderError);
    expect(onlySystem).toMatchObject({ kind: 'bad_request', retryable: false });
    const badArgs = () =>
      toAnthropicBody({ model: 'c', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{' } }] }] }, false);
    expect(badArgs).toThrow(/messages\[0\]\.tool_calls\[0\]\.function\.arguments/);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('anthropic adapter', () => {
  it('round-trips a plain message as a chat.completion with usage', async () => {
    const res = await adapter.complete(provider, request('hello world', { messages: [{ role: 'system', content: 'be nice' }, { role: 'user', content: 'hello world' }] }), {});
    expect(res).toMatchObject({ object: 'chat.completion', model: 'claude-haiku-4-5', choices: [{ message: { role: 'assistant', content: 'echo: hello world' }, finish_reason: 'stop' }] });
    expect(res.id).toMatch(/^msg_/);
    expect(res.usage.completion_tokens).toBe(3);
    expect(res.usage.prompt_tokens).toBeGreaterThan(0);
    expect(res.usage.total_tokens).toBe(res.usage.prompt_tokens + 3);
    const sent = fake.requests[0];
    expect(sent.path).toBe('/v1/messages');
    expect(sent.headers['x-api-key']).toBe('ak-live');
    expect(sent.headers['anthropic-version']).toBe('2023-06-01');
    // No max_tokens from the client: the model's whole max output (claude-haiku-4-5: 64000), not a cut-off of ours.
    expect(sent.body).toMatchObject({ system: 'be nice', max_tokens: 64_000 });
  });

  it('turns the event stream into OpenAI chunks: role first, text deltas, finish and usage last', async () => {
    const chunks = await collect(await adapter.stream(provider, request('a b c'), {}));
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: a b c');
    const last = chunks[chunks.length - 1];
    expect(last.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(last.usage).toMatchObject({ completion_tokens: 4 });
    expect(last.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id && c.id.startsWith('msg_'))).toBe(true);
    expect(fake.requests[0].body).toMatchObject({ stream: true });
  });

  it('maps max_tokens to length and stop sequences to stop, plain and streaming', async () => {
    fake.setBehavior({ reply: { text: 'one two three four five' } });
    const cut = await adapter.complete(provider, request('x', { max_tokens: 2 }), {});
    expect(cut.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'one two' } });
    const streamed = await collect(await adapter.stream(provider, request('x', { max_completion_tokens: 3 }), {}));
    expect(streamed[streamed.length - 1].choices[0].finish_reason).toBe('length');
    expect(streamed[streamed.length - 1].usage?.completion_tokens).toBe(3);
    const stopped = await adapter.complete(provider, request('x', { stop: [' four'] }), {});
    expect(stopped.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'one two three' } });
    expect(fake.requests[2].body).toMatchObject({ stop_sequences: [' four'] });
  });

  it('maps tool_use to tool_calls, plain and streaming', async () => {
    fake.setBehavior({ reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo', days: 3 } } } });
    const tools = [{ type: 'function', function: { name: 'weather', parameters: { type: 'object' } } }];
    const res = await adapter.complete(provider, request('?', { tools }), {});
    expect(res.choices[0].finish_reason).toBe('tool_calls');
    expect(res.choices[0].message.content).toBeNull();
    expect(res.choices[0].message.tool_calls).toEqual([{ id: expect.stringMatching(/^toolu_/), type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo","days":3}' } }]);

    const chunks = await collect(await adapter.stream(provider, request('?', { tools }), {}));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, id: expect.stringMatching(/^toolu_/), type: 'function', function: { name: 'weather', arguments: '' } });
    expect(JSON.parse(calls.map((c) => c.function?.arguments ?? '').join(''))).toEqual({ city: 'Oslo', days: 3 });
    expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('tool_calls');
  });

  it('sends the body the official SDK sends for the same conversation, and agrees with its reading', async () => {
    const sdk = new Anthropic({ apiKey: 'ak-live', baseURL: fake.url, maxRetries: 0 });
    const viaSdk = await sdk.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 64,
      system: 'terse',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'compare me' }] }],
      stop_sequences: ['END'],
      metadata: { user_id: 'u-9' },
    });
    const viaAdapter = await adapter.complete(
      provider,
      { model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'system', content: 'terse' }, { role: 'user', content: 'compare me' }], stop: 'END', user: 'u-9' },
      {},
    );
    const [sdkReq, adapterReq] = fake.requests;
    expect(adapterReq.path).toBe(sdkReq.path);
    expect(adapterReq.body).toEqual(sdkReq.body);
    expect(adapterReq.headers['content-type']).toBe(sdkReq.headers['content-type']);
    expect(viaAdapter.choices[0].message.content).toBe((viaSdk.content[0] as Anthropic.TextBlock).text);
    expect(viaAdapter.usage).toEqual({
      prompt_tokens: viaSdk.usage.input_tokens,
      completion_tokens: viaSdk.usage.output_tokens,
      total_tokens: viaSdk.usage.input_tokens + viaSdk.usage.output_tokens,
      prompt_tokens_details: { cached_tokens: 0 },
      cache_creation_input_tokens: 0,
    });

    // the same stream read by the SDK and by the adapter gives the same text and usage
    const sdkStream = sdk.messages.stream({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'stream me please' }] });
    const sdkFinal = await sdkStream.finalMessage();
    const chunks = await collect(await adapter.stream(provider, { model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'stream me please' }] }, {}));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe((sdkFinal.content[0] as Anthropic.TextBlock).text);
    expect(chunks[chunks.length - 1].usage?.completion_tokens).toBe(sdkFinal.usage.output_tokens);
  });

  it('uses the anthropic-version the provider headers set, and a /v1 base URL', async () => {
    const p = { ...provider, baseUrl: `${fake.url}/v1`, headers: { 'Anthropic-Version': '2099-01-01' } };
    await adapter.complete(p, request('x'), {});
    expect(fake.requests[0].path).toBe('/v1/messages');
    expect(fake.requests[0].headers['anthropic-version']).toBe('2099-01-01');
  });
});

describe('anthropic adapter: output cap and prompt caching (issue 9, items 8 and 9)', () => {
  it('sends the max output of the model when the client sets none: known table, providers file, fallback', () => {
    expect(toAnthropicBody(request('x', { model: 'claude-sonnet-4-5-20250929' }), false, provider).max_tokens).toBe(64_000);
    expect(toAnthropicBody(request('x', { model: 'claude-opus-4-1' }), false, provider).max_tokens).toBe(32_000);
    expect(toAnthropicBody(request('x', { model: 'claude-3-5-haiku-latest' }), false, provider).max_tokens).toBe(8_192);
    expect(toAnthropicBody(request('x', { model: 'claude-next' }), false, { ...provider, maxOutputTokens: { 'claude-next': 100_000 } }).max_tokens).toBe(100_000);
    expect(toAnthropicBody(request('x', { model: 'mystery' }), false, provider).max_tokens).toBe(DEFAULT_MAX_TOKENS);
    expect(toAnthropicBody(request('x', { max_tokens: 7 }), false, provider).max_tokens).toBe(7);
  });

  it('carries cache_control on content parts, messages, system messages, tool results and tools', () => {
    const ephemeral = { type: 'ephemeral' };
    const body = toAnthropicBody(
      {
        model: 'claude-haiku-4-5',
        messages: [
          { role: 'system', content: [{ type: 'text', text: 'long rules', cache_control: ephemeral }] },
          { role: 'system', content: 'more rules' },
          { role: 'user', content: [{ type: 'text', text: 'doc', cache_control: ephemeral }, { type: 'text', text: 'question' }] },
          { role: 'assistant', content: 'answer', cache_control: ephemeral } as never,
          { role: 'user', content: 'follow-up', cache_control: { type: 'ephemeral', ttl: '1h' } } as never,
        ],
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } }, cache_control: ephemeral }],
      },
      false,
      provider,
    );
    expect(body.system).toEqual([
      { type: 'text', text: 'long rules', cache_control: ephemeral },
      { type: 'text', text: 'more rules' },
    ]);
    expect(body.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'doc', cache_control: ephemeral }, { type: 'text', text: 'question' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'answer', cache_control: ephemeral }] },
      { role: 'user', content: [{ type: 'text', text: 'follow-up', cache_control: { type: 'ephemeral', ttl: '1h' } }] },
    ]);
    expect(body.tools).toEqual([{ name: 'f', input_schema: { type: 'object' }, cache_control: ephemeral }]);
    // Without any marker, system stays the plain string it always was.
    expect(toAnthropicBody({ model: 'c', messages: [{ role: 'system', content: 'a' }, { role: 'user', content: 'b' }] }, false).system).toBe('a');
  });

  it('reports cache reads as prompt_tokens_details.cached_tokens and writes as cache_creation_input_tokens, plain and streamed', async () => {
    fake.setBehavior({ reply: { cachedTokens: 3, cacheWriteTokens: 2 } });
    const messages = [{ role: 'user' as const, content: 'a fairly long prompt that is cached '.repeat(4) }];
    const plain = await adapter.complete(provider, { model: 'claude-haiku-4-5', messages }, {});
    const sent = fake.requests[0].body as { messages: unknown };
    expect(sent.messages).toBeDefined();
    expect(plain.usage.prompt_tokens_details).toEqual({ cached_tokens: 3 });
    expect(plain.usage.cache_creation_input_tokens).toBe(2);
    const chunks = await collect(await adapter.stream(provider, { model: 'claude-haiku-4-5', messages }, {}));
    const usage = chunks[chunks.length - 1].usage!;
    expect(usage).toMatchObject({ prompt_tokens: plain.usage.prompt_tokens, prompt_tokens_details: { cached_tokens: 3 }, cache_creation_input_tokens: 2 });
  });
});

describe('anthropic adapter: faithful translation (issue 13, item 5)', () => {
  const refused = (extra: Partial<ChatRequest>) => {
    try {
      toAnthropicBody(request('x', extra), false, provider);
    } catch (err) {
      return err as ProviderError;
    }
    throw new Error('not refused');
  };

  it('refuses what Anthropic has no counterpart for with a 400 naming the field, and takes the defaults', () => {
    const cases: Array<[Partial<ChatRequest>, string]> = [
      [{ n: 2 }, 'n'],
      [{ logprobs: true }, 'logprobs'],
      [{ top_logprobs: 3 }, 'top_logprobs'],
      [{ presence_penalty: 0.5 }, 'presence_penalty'],
      [{ frequency_penalty: -1 }, 'frequency_penalty'],
      [{ logit_bias: { '50256': -100 } }, 'logit_bias'],
      [{ seed: 7 }, 'seed'],
      [{ modalities: ['text', 'audio'] }, 'modalities'],
      [{ service_tier: 'flex' }, 'service_tier'],
      [{ store: true }, 'store'],
      [{ tools: [{ type: 'custom', custom: { name: 'x' } }] }, 'tools[0].type'],
      [{ tool_choice: { type: 'allowed_tools' } }, 'tool_choice'],
      [{ reasoning_effort: 'extreme' }, 'reasoning_effort'],
      [{ reasoning_effort: 'low', max_tokens: 1000 }, 'max_tokens'],
      [{ response_format: { type: 'json_schema', json_schema: { name: 'has spaces', schema: { type: 'object' } } } }, 'response_format.json_schema.name'],
      [{ response_format: { type: 'json_object' }, tools: [{ type: 'function', function: { name: 'f' } }] }, 'response_format'],
      [{ response_format: { type: 'json_object' }, reasoning_effort: 'low' }, 'response_format'],
      [{ tool_choice: 'required', tools: [{ type: 'function', function: { name: 'f' } }], reasoning_effort: 'low' }, 'tool_choice'],
    ];
    for (const [extra, param] of cases) {
      const err = refused(extra);
      expect(err, param).toBeInstanceOf(ProviderError);
      expect(err.kind).toBe('bad_request');
      expect(err.retryable).toBe(false);
      expect(err.param).toBe(param);
    }
    expect(refused({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] }).param).toBe('messages[0].content[0].type');
    // Values that change nothing pass.
    expect(() => toAnthropicBody(request('x', { n: 1, logprobs: false, presence_penalty: 0, frequency_penalty: 0, modalities: ['text'], store: false, reasoning_effort: 'none' }), false, provider)).not.toThrow();
  });

  it('maps parallel_tool_calls, reasoning_effort and safety_identifier', () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
    expect(toAnthropicBody(request('x', { tools, parallel_tool_calls: false }), false, provider).tool_choice).toEqual({ type: 'auto', disable_parallel_tool_use: true });
    expect(toAnthropicBody(request('x', { tools, tool_choice: 'required', parallel_tool_calls: false }), false, provider).tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    expect(toAnthropicBody(request('x', { tools, parallel_tool_calls: true }), false, provider).tool_choice).toBeUndefined();
    expect(toAnthropicBody(request('x', { reasoning_effort: 'medium' }), false, provider).thinking).toEqual({ type: 'enabled', budget_tokens: 8192 });
    // The budget stays below max_tokens, which includes the thinking (as max_completion_tokens does at OpenAI).
    expect(toAnthropicBody(request('x', { reasoning_effort: 'high', max_completion_tokens: 5000 }), false, provider).thinking).toEqual({ type: 'enabled', budget_tokens: 4999 });
    expect(toAnthropicBody(request('x', { safety_identifier: 'sid-1' }), false, provider).metadata).toEqual({ user_id: 'sid-1' });
  });

  it('answers response_format json_schema through a forced tool, as JSON text, plain and streamed', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    const ask = request('Where?', { response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } } });
    expect(toAnthropicBody(ask, false, provider)).toMatchObject({
      tools: [{ name: 'place', input_schema: schema }],
      tool_choice: { type: 'tool', name: 'place' },
    });
    fake.setBehavior({ reply: { toolCall: { name: 'place', arguments: { city: 'Oslo' } } } });
    const plain = await adapter.complete(provider, ask, {});
    expect(plain.choices[0].message).toEqual({ role: 'assistant', content: '{"city":"Oslo"}' });
    expect(plain.choices[0].finish_reason).toBe('stop');
    const chunks = await collect(await adapter.stream(provider, ask, {}));
    expect(chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])).toEqual([]);
    expect(JSON.parse(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''))).toEqual({ city: 'Oslo' });
    expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('stop');
    // json_object: any object.
    expect(toAnthropicBody(request('x', { response_format: { type: 'json_object' } }), false, provider)).toMatchObject({ tool_choice: { type: 'tool', name: 'json_response' } });
  });

  it('sends reasoning_effort as thinking and returns the thinking as reasoning_content, plain and streamed', async () => {
    const ask = request('why', { reasoning_effort: 'low', max_tokens: 4000 });
    const plain = await adapter.complete(provider, ask, {});
    expect((fake.requests[0].body as { thinking: unknown }).thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
    const block = { type: 'thinking', thinking: 'Thinking about: why', signature: thinkingSignature('Thinking about: why') };
    expect(plain.choices[0].message).toEqual({ role: 'assistant', content: 'echo: why', reasoning_content: 'Thinking about: why', thinking_blocks: [block] });
    const chunks = await collect(await adapter.stream(provider, ask, {}));
    expect(chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join('')).toBe('Thinking about: why');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: why');
    expect(chunks.flatMap((c) => (c.choices[0]?.delta.thinking_blocks as unknown[] | undefined) ?? [])).toEqual([block]);
  });

  it('sends the thinking blocks of a tool-use turn back with their signatures, which Claude refuses without', async () => {
    fake.setBehavior({ rules: [{ times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo' } } } }] });
    const tools = [{ type: 'function' as const, function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const first = await adapter.complete(provider, request('weather in Oslo?', { reasoning_effort: 'low', max_tokens: 4000, tools }), {});
    const turn = first.choices[0].message;
    expect(turn.thinking_blocks).toEqual([{ type: 'thinking', thinking: 'Thinking about: weather in Oslo?', signature: thinkingSignature('Thinking about: weather in Oslo?') }]);
    const call = turn.tool_calls![0]!;
    const continuation = (assistant: ChatRequest['messages'][number]) =>
      request('', { reasoning_effort: 'low', max_tokens: 4000, tools, messages: [{ role: 'user', content: 'weather in Oslo?' }, assistant, { role: 'tool', tool_call_id: call.id, content: 'sunny' }] });
    const { reasoning_content: _r, ...echoed } = turn;
    const second = await adapter.complete(provider, continuation(echoed as ChatRequest['messages'][number]), {});
    expect(second.choices[0].finish_reason).toBe('stop');
    const sent = (fake.requests.at(-1)!.body as { messages: Array<{ content: Array<{ type: string }> }> }).messages[1]!.content;
    expect(sent.map((b) => b.type)).toEqual(['thinking', 'tool_use']);

    // Without the blocks, or with a block whose text changed under its signature: Claude's 400.
    const { thinking_blocks: _t, ...bare } = echoed as Record<string, unknown>;
    await expect(adapter.complete(provider, continuation(bare as never), {})).rejects.toMatchObject({ kind: 'bad_request', message: expect.stringMatching(/must start with a thinking block/) });
    const altered = { ...echoed, thinking_blocks: [{ type: 'thinking', thinking: 'something else', signature: thinkingSignature('Thinking about: weather in Oslo?') }] };
    await expect(adapter.complete(provider, continuation(altered as never), {})).rejects.toMatchObject({ kind: 'bad_request', message: expect.stringMatching(/Invalid `signature`/) });
  });

  it('maps Anthropic errors to their retryability: overloaded and rate limits retry, bad requests and auth do not', async () => {
    const cases: Array<[number, ProviderError['kind'], boolean]> = [
      [529, 'overloaded', true],
      [429, 'rate_limited', true],
      [500, 'server', true],
      [400, 'bad_request', false],
      [401, 'auth', false],
    ];
    for (const [status, kind, retryable] of cases) {
      fake.setBehavior({ rules: [{ times: 1, fault: { type: 'status', status } }] });
      const err = (await adapter.complete(provider, request('x'), {}).catch((e: unknown) => e)) as ProviderError;
      expect(err, String(status)).toBeInstanceOf(ProviderError);
      expect(err.kind).toBe(kind);
      expect(err.retryable).toBe(retryable);
    }
  });
});
