// The Bedrock adapter against the fake provider's Converse side over real sockets, through the
// official SDK with the default credential chain (here: the environment). Checks the translation
// both ways, what is refused by name, and errors mapped with their retryability.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../../test/fake-provider/provider-config';
import { startFakeProvider, type FakeProvider } from '../../../../test/fake-provider/server';
import { thinkingSignature } from '../../../../test/fake-provider/wire';
import type { ChatCompletionChunk, ChatRequest } from '../../../openai';
import { ProviderError, type ProviderAdapter, type ProviderConfig } from '../../types';
import { createBedrockAdapter } from '.';

const CLAUDE = 'us.anthropic.claude-sonnet-4-20250514-v1:0';
const NOVA = 'amazon.nova-pro-v1:0';
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

let fake: FakeProvider;
let adapter: ProviderAdapter;
let provider: ProviderConfig;
const saved = { ...process.env };

beforeAll(async () => {
  fake = await startFakeProvider({ awsAccessKeyId: 'AKIDENV' });
  // The default chain's first source; on EKS it is the web identity token (IRSA) or Pod Identity.
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIDENV', AWS_SECRET_ACCESS_KEY: 'secret', AWS_SESSION_TOKEN: 'session' });
  adapter = createBedrockAdapter();
  provider = fakeProviderConfig(fake, 'bedrock', { bedrock: { region: 'eu-west-1' } });
});
afterAll(async () => {
  process.env = saved;
  await adapter.close?.();
  await fake.close();
});
afterEach(() => fake.reset());

const request = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: CLAUDE, messages: [{ role: 'user', content }], ...extra });

async function collect(it: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('bedrock adapter: translation', () => {
  it('sends system, merged turns, tool history, images, cache points, stop and inference config', async () => {
    const res = await adapter.complete(
      provider,
      {
        model: CLAUDE,
        messages: [
          { role: 'system', content: 'be brief', cache_control: { type: 'ephemeral' } },
          { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] },
          { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }, { id: 't2', type: 'function', function: { name: 'f', arguments: '{"a":2}' } }] },
          { role: 'tool', tool_call_id: 't1', content: 'r1' },
          { role: 'tool', tool_call_id: 't2', content: 'r2' },
          { role: 'user', content: 'and now' },
        ],
        tools: [{ type: 'function', function: { name: 'f', description: 'does f', parameters: { type: 'object', properties: { a: { type: 'number' } } } } }],
        tool_choice: 'auto',
        stop: ['END'],
        temperature: 0.5,
        top_p: 0.9,
        max_tokens: 200,
        user: 'user-42',
      },
      {},
    );
    expect(res.choices[0].message.content).toBe('echo: and now');
    const sent = fake.requests[0];
    expect(sent.path).toBe(`/model/${encodeURIComponent(CLAUDE)}/converse`);
    expect(String(sent.headers.authorization)).toMatch(/Credential=AKIDENV\/\d{8}\/eu-west-1\/bedrock\//);
    expect(sent.headers['x-amz-security-token']).toBe('session');
    const body = sent.body as any;
    expect(body.system).toEqual([{ text: 'be brief' }, { cachePoint: { type: 'default' } }]);
    expect(body.messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(body.messages[0].content[1]).toEqual({ image: { format: 'png', source: { bytes: PNG } } });
    expect(body.messages[1].content).toEqual([{ toolUse: { toolUseId: 't1', name: 'f', input: { a: 1 } } }, { toolUse: { toolUseId: 't2', name: 'f', input: { a: 2 } } }]);
    expect(body.messages[2].content).toEqual([
      { toolResult: { toolUseId: 't1', content: [{ text: 'r1' }] } },
      { toolResult: { toolUseId: 't2', content: [{ text: 'r2' }] } },
      { text: 'and now' },
    ]);
    expect(body.toolConfig).toEqual({ tools: [{ toolSpec: { name: 'f', description: 'does f', inputSchema: { json: { type: 'object', properties: { a: { type: 'number' } } } } } }], toolChoice: { auto: {} } });
    expect(body.inferenceConfig).toEqual({ maxTokens: 200, temperature: 0.5, topP: 0.9, stopSequences: ['END'] });
    expect(body.requestMetadata).toEqual({ user: 'user-42' });
  });

  it('answers with usage counting cache reads and writes, parallel tool calls, reasoning', async () => {
    fake.setBehavior({ reply: { cachedTokens: 5, cacheWriteTokens: 3 } });
    const plain = await adapter.complete(provider, request('hello there friend'), {});
    expect(plain.usage.prompt_tokens_details?.cached_tokens).toBe(5);
    expect(plain.usage.cache_creation_input_tokens).toBe(3);
    expect(plain.usage.total_tokens).toBe(plain.usage.prompt_tokens + plain.usage.completion_tokens);

    fake.setBehavior({ reply: { reasoning: 'let me think', toolCalls: [{ name: 'a', arguments: { x: 1 } }, { name: 'b', arguments: { y: 2 } }] } });
    const tools = [{ type: 'function', function: { name: 'a' } }, { type: 'function', function: { name: 'b' } }];
    const res = await adapter.complete(provider, request('go', { tools, reasoning_effort: 'low' }), {});
    expect(res.choices[0].finish_reason).toBe('tool_calls');
    expect(res.choices[0].message.reasoning_content).toBe('let me think');
    expect(res.choices[0].message.tool_calls?.map((t) => [t.function.name, t.function.arguments])).toEqual([
      ['a', '{"x":1}'],
      ['b', '{"y":2}'],
    ]);
    // Claude's thinking budget, with max tokens above it.
    expect((fake.requests[1].body as any).additionalModelRequestFields).toEqual({ thinking: { type: 'enabled', budget_tokens: 1024 } });
    expect((fake.requests[1].body as any).inferenceConfig.maxTokens).toBeGreaterThan(1024);

    const chunks = await collect(await adapter.stream(provider, request('go', { tools }), {}));
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join('')).toBe('let me think');
    const calls = new Map<number, { name?: string; args: string }>();
    for (const c of chunks) {
      for (const tc of c.choices[0]?.delta.tool_calls ?? []) {
        const entry = calls.get(tc.index) ?? { args: '' };
        if (tc.function?.name) entry.name = tc.function.name;
        entry.args += tc.function?.arguments ?? '';
        calls.set(tc.index, entry);
      }
    }
    expect([...calls.entries()]).toEqual([
      [0, { name: 'a', args: '{"x":1}' }],
      [1, { name: 'b', args: '{"y":2}' }],
    ]);
    expect(chunks.at(-1)?.choices[0].finish_reason).toBe('tool_calls');
    expect(chunks.at(-1)?.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('streams text with the finish reason and usage last, stop sequences cut as at Bedrock', async () => {
    const chunks = await collect(await adapter.stream(provider, request('one two three four', { stop: 'three' }), {}));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('echo: one two ');
    expect(chunks.at(-1)).toMatchObject({ choices: [{ finish_reason: 'stop' }], usage: { completion_tokens: 3 } });
  });

  it('carries Claude\'s reasoning signature both ways, streamed and plain, so a tool-use continuation passes, and fails without it', async () => {
    fake.setBehavior({ rules: [{ times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo' } } } }] });
    const tools = [{ type: 'function' as const, function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const ask = (messages: ChatRequest['messages']) => ({ ...request('', { tools, reasoning_effort: 'low' as const }), messages });
    const question = { role: 'user' as const, content: 'weather in Oslo?' };
    // The tool-use turn streamed: the finished reasoning block comes whole, signature included.
    const chunks = await collect(await adapter.stream(provider, ask([question]), {}));
    const blocks = chunks.flatMap((c) => (c.choices[0]?.delta.thinking_blocks as unknown[] | undefined) ?? []);
    const text = 'Thinking about: weather in Oslo?';
    expect(blocks).toEqual([{ type: 'thinking', thinking: text, signature: thinkingSignature(text) }]);
    const call = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).find((t) => t.id)!;
    const assistant = { role: 'assistant' as const, content: null, tool_calls: [{ id: call.id!, type: 'function' as const, function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] };
    const result = { role: 'tool' as const, tool_call_id: call.id!, content: 'sunny' };

    const next = await adapter.complete(provider, ask([question, { ...assistant, thinking_blocks: blocks as never }, result]), {});
    expect(next.choices[0].finish_reason).toBe('stop');
    const sent = (fake.requests.at(-1)!.body as any).messages[1].content;
    expect(sent[0]).toEqual({ reasoningContent: { reasoningText: { text, signature: thinkingSignature(text) } } });
    // The plain answer carries the blocks too.
    const thought = next.choices[0].message.reasoning_content as string;
    expect(thought).toMatch(/^Thinking about:/);
    expect(next.choices[0].message.thinking_blocks).toEqual([{ type: 'thinking', thinking: thought, signature: thinkingSignature(thought) }]);

    await expect(adapter.complete(provider, ask([question, assistant, result]), {})).rejects.toMatchObject({ kind: 'bad_request', message: expect.stringMatching(/must start with a thinking block/) });
    const forged = [{ type: 'thinking' as const, thinking: 'another thought', signature: thinkingSignature(text) }];
    await expect(adapter.complete(provider, ask([question, { ...assistant, thinking_blocks: forged }, result]), {})).rejects.toMatchObject({ kind: 'bad_request', message: expect.stringMatching(/Invalid `signature`/) });
    // Redacted thinking goes back as the bytes it came as.
    await adapter.complete(provider, ask([question, { ...assistant, thinking_blocks: [{ type: 'redacted_thinking', data: Buffer.from('secret').toString('base64') }] }, result]), {});
    expect((fake.requests.at(-1)!.body as any).messages[1].content[0].reasoningContent.redactedContent).toBe(Buffer.from('secret').toString('base64'));
  });

  it('sends structured output as outputConfig.textFormat and reasoning_effort as effort for non-Claude models', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    await adapter.complete(provider, { ...request('where'), model: NOVA, response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } }, reasoning_effort: 'medium' }, {});
    const body = fake.requests[0].body as any;
    expect(body.outputConfig).toEqual({ effort: 'medium', textFormat: { type: 'json_schema', structure: { jsonSchema: { schema: JSON.stringify(schema), name: 'place' } } } });
    expect(body.additionalModelRequestFields).toBeUndefined();
    expect(body.inferenceConfig).toBeUndefined();
  });

  it('sends Claude its family\'s max output when the client sets none, as the Anthropic adapter does', async () => {
    await adapter.complete(provider, request('x'), {});
    // us.anthropic.claude-sonnet-4-... is a claude-sonnet-4: 64000 tokens.
    expect((fake.requests[0].body as any).inferenceConfig).toEqual({ maxTokens: 64000 });
    await adapter.complete({ ...provider, maxOutputTokens: { [CLAUDE]: 1000 } }, request('x'), {});
    expect((fake.requests[1].body as any).inferenceConfig).toEqual({ maxTokens: 1000 });
  });

  it('refuses what Converse cannot take with a 400 naming the field, before any call', async () => {
    const cases: Array<[Partial<ChatRequest>, string]> = [
      [{ n: 2 }, 'n'],
      [{ seed: 1 }, 'seed'],
      [{ presence_penalty: 0.5 }, 'presence_penalty'],
      [{ logit_bias: { '1': 2 } }, 'logit_bias'],
      [{ logprobs: true }, 'logprobs'],
      [{ parallel_tool_calls: false, tools: [{ type: 'function', function: { name: 'f' } }] }, 'parallel_tool_calls'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] }, 'messages[0].content[0].image_url'],
      [{ tools: [{ type: 'web_search' }] }, 'tools[0].type'],
      [{ response_format: { type: 'json_schema', json_schema: {} } }, 'response_format.json_schema.name'],
      [{ max_tokens: 500, reasoning_effort: 'high' }, 'max_tokens'],
      [{ model: NOVA, thinking: { type: 'enabled', budget_tokens: 2000 } }, 'thinking'],
    ];
    for (const [extra, param] of cases) {
      const err = await adapter.complete(provider, request('x', extra), {}).catch((e: unknown) => e);
      expect(err, param).toBeInstanceOf(ProviderError);
      expect(err, param).toMatchObject({ kind: 'bad_request', param });
    }
    expect(fake.requests).toHaveLength(0);
  });
});

describe('bedrock adapter: errors and embeddings', () => {
  it('maps Bedrock exceptions to kinds with their retryability', async () => {
    fake.setBehavior({
      rules: [
        { times: 1, fault: { type: 'status', status: 429 } },
        { times: 1, fault: { type: 'status', status: 503 } },
        { times: 1, fault: { type: 'status', status: 400 } },
        { times: 1, fault: { type: 'status', status: 403 } },
      ],
    });
    const kinds = [];
    for (let i = 0; i < 4; i++) kinds.push(await adapter.complete(provider, request('x'), {}).catch((e: ProviderError) => [e.kind, e.status, e.retryable]));
    expect(kinds).toEqual([
      ['rate_limited', 429, true],
      ['overloaded', 503, true],
      ['bad_request', 400, false],
      ['auth', 403, false],
    ]);
  });

  // Found by the client matrix (test/e2e/client-matrix.test.ts): a Bedrock 429's Retry-After was
  // dropped, so the client was told to come back in 1 s whatever the provider said.
  it('keeps the Retry-After of a throttled or overloaded answer, plain and streaming', async () => {
    fake.setBehavior({ rules: [{ times: 2, fault: { type: 'status', status: 429, retryAfter: 7 } }, { times: 1, fault: { type: 'status', status: 503, retryAfterMs: 1500 } }, { times: 1, fault: { type: 'status', status: 429 } }] });
    await expect(adapter.complete(provider, request('x'), {})).rejects.toMatchObject({ kind: 'rate_limited', retryAfterMs: 7000 });
    await expect(adapter.stream(provider, request('x'), {})).rejects.toMatchObject({ kind: 'rate_limited', retryAfterMs: 7000 });
    await expect(adapter.complete(provider, request('x'), {})).rejects.toMatchObject({ kind: 'overloaded', retryAfterMs: 1500 });
    await expect(adapter.complete(provider, request('x'), {})).rejects.toMatchObject({ kind: 'rate_limited', retryAfterMs: undefined });
  });

  it('throws mid-stream failures from the iterator: exception frame, corrupted frame, stall', async () => {
    fake.setBehavior({ rules: [{ times: 1, fault: { type: 'error_event' } }, { times: 1, fault: { type: 'malformed' } }, { times: 1, fault: { type: 'stall', afterChunks: 1 } }] });
    await expect(collect(await adapter.stream(provider, request('a b c'), {}))).rejects.toMatchObject({ kind: 'overloaded' });
    await expect(collect(await adapter.stream(provider, request('a b c'), {}))).rejects.toMatchObject({ kind: 'malformed' });
    const quick = { ...provider, name: 'quick', idleTimeoutMs: 300 };
    await expect(collect(await adapter.stream(quick, request('a b c'), {}))).rejects.toMatchObject({ retryable: true });
  });

  it('times out waiting for the first byte, and stops when the caller aborts', async () => {
    fake.setBehavior({ rules: [{ fault: { type: 'stall', beforeHeaders: true } }] });
    const slow = { ...provider, name: 'slow', firstByteTimeoutMs: 300 };
    await expect(adapter.complete(slow, request('x'), {})).rejects.toMatchObject({ kind: 'timeout', message: expect.stringMatching(/firstByteTimeoutMs/) });
    await expect(adapter.stream(slow, request('x'), {})).rejects.toMatchObject({ kind: 'timeout' });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await expect(adapter.complete(provider, request('x'), { signal: controller.signal })).rejects.toMatchObject({ kind: 'timeout', message: expect.stringMatching(/aborted/) });
  });

  it('fails a refused connection as connection, retryable', async () => {
    const closed = await startFakeProvider();
    const url = closed.url;
    await closed.close();
    await expect(adapter.complete({ ...provider, name: 'gone', baseUrl: url }, request('x'), {})).rejects.toMatchObject({ kind: 'connection', retryable: true });
  });

  it('embeds with Titan (one call per input) and Cohere (one batch), refusing token arrays', async () => {
    const titan = await adapter.embed!(provider, { model: 'amazon.titan-embed-text-v2:0', input: ['a', 'b'], dimensions: 256 }, {});
    expect(titan.data.map((d) => d.embedding.length)).toEqual([256, 256]);
    expect(titan.usage.prompt_tokens).toBeGreaterThan(0);
    expect(fake.requests.map((r) => r.body)).toEqual([
      { inputText: 'a', dimensions: 256 },
      { inputText: 'b', dimensions: 256 },
    ]);
    const cohere = await adapter.embed!(provider, { model: 'cohere.embed-english-v3', input: 'hello' }, {});
    expect(cohere.data).toHaveLength(1);
    expect(cohere.usage.prompt_tokens).toBeGreaterThan(0);
    await expect(adapter.embed!(provider, { model: 'amazon.titan-embed-text-v2:0', input: [[1, 2]] }, {})).rejects.toMatchObject({ kind: 'bad_request', param: 'input' });
    await expect(adapter.embed!(provider, { model: CLAUDE, input: 'x' }, {})).rejects.toMatchObject({ kind: 'bad_request', param: 'model' });
  });
});
