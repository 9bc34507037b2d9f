/**
 * Cases of the end-to-end suite (suite.ts) for `POST /v1/messages`, with the official
 * `@anthropic-ai/sdk` as the client: model `claude` reaches an Anthropic provider (the body
 * passes through: the upstream must receive exactly what the client sent, model aside), model
 * `chat` an OpenAI-compatible one (translated both ways). Plain, stream, tools, images,
 * thinking, cache_control, errors, session_id and prompt.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { expect, it } from 'vitest';
import { HEADERS } from '../../contracts';
import { call } from './suite';
import { KEYS, type Layout } from './support';

type Body = Record<string, unknown>;
/** A body with fields this SDK version's types leave out (`temperature`, `top_k`) or promptmesh's extensions. */
const extended = (body: Body) => body as unknown as Anthropic.MessageCreateParamsNonStreaming;
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

/** Registers the cases; `layout` is read when they run. */
export function defineMessagesCases(layout: () => Layout): void {
  // The SDK sends the key as x-api-key; promptmesh accepts it there on this route.
  const sdk = (key: string = KEYS.admin) => new Anthropic({ apiKey: key, baseURL: layout().url, maxRetries: 0, timeout: 30_000 });
  const upstream = (suffix: string) => layout().fake.requests.filter((r) => r.path.endsWith(suffix)).at(-1)!;
  const tools: Anthropic.Tool[] = [{ name: 'weather', description: 'the weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];

  it('messages: passes a body through to an Anthropic provider exactly, thinking and cache usage included', async () => {
    layout().fake.setBehavior({ reply: { cachedTokens: 2, cacheWriteTokens: 1 } });
    const body = {
      model: 'claude',
      max_tokens: 2000,
      system: [{ type: 'text' as const, text: 'You are terse.', cache_control: { type: 'ephemeral' as const } }],
      thinking: { type: 'enabled' as const, budget_tokens: 1024 },
      metadata: { user_id: 'u-1' },
      messages: [
        {
          role: 'user' as const,
          content: [
            { type: 'image' as const, source: { type: 'base64' as const, media_type: 'image/png' as const, data: PNG } },
            { type: 'text' as const, text: 'one two three four five six', cache_control: { type: 'ephemeral' as const } },
          ],
        },
      ],
    };
    // Beta features the client turns on reach Anthropic too.
    const { data: msg, response } = await sdk().messages.create(body, { headers: { 'anthropic-beta': 'interleaved-thinking-2025-05-14' } }).withResponse();
    expect(upstream('/v1/messages').headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14');
    expect(upstream('/v1/messages').headers['anthropic-version']).toBe('2023-06-01');
    expect(response.headers.get(HEADERS.provider)).toBe('fake-claude');
    expect(response.headers.get(HEADERS.passthrough)).toBe('true');
    expect(upstream('/v1/messages').body).toEqual({ ...body, model: 'claude-fake' });
    expect(msg.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    expect((msg.content[0] as Anthropic.ThinkingBlock).signature).toMatch(/^sig_/);
    expect(msg.usage).toMatchObject({ cache_read_input_tokens: 2, cache_creation_input_tokens: 1 });
    expect(msg.model).toBe('claude-fake');

    // Streamed: every event as the provider sent it; the SDK assembles the same message.
    const events: string[] = [];
    const stream = sdk().messages.stream(body);
    stream.on('streamEvent', (ev) => events.push(ev.type));
    const final = await stream.finalMessage();
    expect(upstream('/v1/messages').body).toEqual({ ...body, model: 'claude-fake', stream: true });
    expect(final.content).toEqual(msg.content);
    expect(final.usage).toMatchObject({ cache_read_input_tokens: 2, cache_creation_input_tokens: 1 });
    expect(events.slice(0, 5)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop']);
    expect(events.slice(-2)).toEqual(['message_delta', 'message_stop']);
    layout().fake.reset();
  });

  it('messages: passes tools and tool results through, and a tool_use streams back', async () => {
    layout().fake.setBehavior({ rules: [{ times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo' } } } }] });
    const first = await sdk().messages.stream({ model: 'claude', max_tokens: 200, tools, tool_choice: { type: 'auto', disable_parallel_tool_use: true }, messages: [{ role: 'user', content: 'Weather in Oslo?' }] }).finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    const use = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!;
    expect(use).toMatchObject({ name: 'weather', input: { city: 'Oslo' } });
    const second = {
      model: 'claude',
      max_tokens: 200,
      tools,
      messages: [
        { role: 'user' as const, content: 'Weather in Oslo?' },
        { role: 'assistant' as const, content: first.content as Anthropic.ContentBlockParam[] },
        { role: 'user' as const, content: [{ type: 'tool_result' as const, tool_use_id: use.id, content: '3 degrees' }] },
      ],
    };
    const answer = await sdk().messages.create(second);
    expect(answer.stop_reason).toBe('end_turn');
    expect(upstream('/v1/messages').body).toEqual({ ...second, model: 'claude-fake' });
    layout().fake.reset();
  });

  it('messages: translates to an OpenAI provider and back: plain, stream, tools, images, thinking, cache usage', async () => {
    layout().fake.setBehavior({ reply: { cachedTokens: 2 } });
    const { data: msg, response } = await sdk()
      .messages.create(extended({
        model: 'chat',
        max_tokens: 100,
        system: 'Be brief.',
        stop_sequences: ['zzz'],
        temperature: 0.5,
        thinking: { type: 'enabled', budget_tokens: 2048 },
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image', source: { type: 'url', url: 'https://example.com/cat.png' } },
              { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
              { type: 'text', text: 'hello translated world', cache_control: { type: 'ephemeral' } },
            ],
          },
        ],
      }))
      .withResponse();
    expect(response.headers.get(HEADERS.provider)).toBe('fake-a');
    expect(response.headers.get(HEADERS.passthrough)).toBe('false');
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', model: 'model-a', stop_reason: 'end_turn', content: [{ type: 'text', text: 'echo: hello translated world' }] });
    expect(msg.usage).toMatchObject({ cache_read_input_tokens: 2, cache_creation_input_tokens: 0 });
    const sent = upstream('/chat/completions').body as Body;
    expect(sent).toMatchObject({
      model: 'model-a',
      max_tokens: 100,
      stop: ['zzz'],
      temperature: 0.5,
      reasoning_effort: 'low',
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
            { type: 'text', text: 'hello translated world' },
          ],
        },
      ],
    });

    const events: string[] = [];
    const stream = sdk().messages.stream({ model: 'chat', max_tokens: 100, messages: [{ role: 'user', content: 'stream me' }] });
    stream.on('streamEvent', (ev) => events.push(ev.type));
    const final = await stream.finalMessage();
    expect(final.content).toEqual([{ type: 'text', text: 'echo: stream me' }]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBeGreaterThan(0);
    expect(events[0]).toBe('message_start');
    expect(events.slice(-2)).toEqual(['message_delta', 'message_stop']);
    layout().fake.reset();

    // Tools: Anthropic's definitions and choice become OpenAI's, the tool call comes back as tool_use.
    layout().fake.setBehavior({ reply: { toolCall: { name: 'weather', arguments: { city: 'Bergen' } } } });
    const toolMsg = await sdk().messages.stream({ model: 'chat', max_tokens: 100, tools, tool_choice: { type: 'tool', name: 'weather', disable_parallel_tool_use: true }, messages: [{ role: 'user', content: 'Bergen?' }] }).finalMessage();
    expect(toolMsg.stop_reason).toBe('tool_use');
    expect(toolMsg.content[0]).toMatchObject({ type: 'tool_use', name: 'weather', input: { city: 'Bergen' } });
    expect(upstream('/chat/completions').body).toMatchObject({
      tools: [{ type: 'function', function: { name: 'weather', description: 'the weather', parameters: tools[0]!.input_schema } }],
      tool_choice: { type: 'function', function: { name: 'weather' } },
      parallel_tool_calls: false,
    });
    const use = toolMsg.content[0] as Anthropic.ToolUseBlock;
    layout().fake.reset();
    const answer = await sdk().messages.create({
      model: 'chat',
      max_tokens: 100,
      tools,
      messages: [
        { role: 'user', content: 'Bergen?' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm', signature: 'sig' }, use] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '5 degrees' }] },
      ],
    });
    expect(answer.content).toEqual([{ type: 'text', text: 'echo: Bergen?' }]);
    expect((upstream('/chat/completions').body as Body).messages).toEqual([
      { role: 'user', content: 'Bergen?' },
      { role: 'assistant', content: null, tool_calls: [{ id: use.id, type: 'function', function: { name: 'weather', arguments: '{"city":"Bergen"}' } }] },
      { role: 'tool', tool_call_id: use.id, content: '5 degrees' },
    ]);
  });

  it('messages: a stream that fails mid-way ends with an error event, which the SDK raises', async () => {
    for (const model of ['claude', 'chat']) {
      layout().fake.setBehavior({ rules: [{ times: 1, fault: { type: 'error_event', afterChunks: 1 } }] });
      const seen: string[] = [];
      const stream = sdk().messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'one two three four' }] });
      stream.on('streamEvent', (ev) => seen.push(ev.type));
      const err = await stream.finalMessage().catch((e: unknown) => e);
      expect(err, model).toBeInstanceOf(Anthropic.APIError);
      expect(seen[0]).toBe('message_start');
      expect(seen).not.toContain('message_stop');
    }
    layout().fake.reset();
  });

  it('messages: refuses what an OpenAI provider cannot take with a 400 naming the field, in Anthropic error shape', async () => {
    const before = layout().fake.requests.length;
    const err = await sdk()
      .messages.create(extended({ model: 'chat', max_tokens: 10, top_k: 5, messages: [{ role: 'user', content: 'x' }] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('top_k') } });
    const doc = await sdk()
      .messages.create({ model: 'chat', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }] }] })
      .catch((e: unknown) => e);
    expect((doc as Error).message).toContain('messages[0].content[0].type');
    // To an Anthropic provider the same fields pass through.
    const ok = await sdk().messages.create(extended({ model: 'claude', max_tokens: 10, top_k: 5, messages: [{ role: 'user', content: 'x' }] }));
    expect(ok.type).toBe('message');
    expect(layout().fake.requests.length).toBe(before + 1);

    const unknown = await call(layout(), 'POST', '/v1/messages', { body: { model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'x' }], bogus: 1 } });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('bogus') } });
    const badBeta = await sdk().messages.create({ model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'anthropic-beta': 'a b' } }).catch((e: unknown) => e);
    expect((badBeta as Error).message).toContain('anthropic-beta');
    const noKey = await sdk('wrong-key').messages.create({ model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(noKey).toBeInstanceOf(Anthropic.AuthenticationError);
    // x-api-key is the Messages route's (Anthropic's SDKs); the OpenAI routes keep Bearer only.
    const viaHeader = await fetch(`${layout().url}/v1/chat/completions`, { method: 'POST', headers: { 'x-api-key': KEYS.admin, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'x' }] }) });
    expect(viaHeader.status).toBe(401);
    expect(((await viaHeader.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
    const bearer = await call(layout(), 'POST', '/v1/messages', { body: { model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] } });
    expect(bearer.status).toBe(200);
    const missing = await sdk().messages.create({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(Anthropic.NotFoundError);
  });

  it('messages: a session keeps a tool-use turn\'s thinking with its signature and replays it, which Claude needs to go on', async () => {
    const session = `e2e-thinking-${layout().name}-${Date.now()}`;
    const base = { model: 'claude', max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 }, tools, session_id: session };
    layout().fake.setBehavior({ rules: [{ times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo' } } } }] });
    const first = await sdk().messages.create(extended({ ...base, messages: [{ role: 'user', content: 'Weather in Oslo?' }] }));
    const [thinking, use] = first.content as [Anthropic.ThinkingBlock, Anthropic.ToolUseBlock];
    expect([thinking.type, use.type]).toEqual(['thinking', 'tool_use']);
    const stored = await call(layout(), 'GET', `/v1/sessions/${session}/messages`);
    expect(stored.body.messages[1]).toMatchObject({ role: 'assistant', thinking_blocks: [{ type: 'thinking', thinking: thinking.thinking, signature: thinking.signature }] });

    // The client sends only the tool result: the session supplies the turn, thinking first, signed.
    const next = await sdk().messages.stream(extended({ ...base, messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] }] }) as never).finalMessage();
    expect(next.stop_reason).toBe('end_turn');
    expect((upstream('/v1/messages').body as Body).messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Oslo?' }] },
      { role: 'assistant', content: [{ type: 'thinking', thinking: thinking.thinking, signature: thinking.signature }, { type: 'tool_use', id: use.id, name: 'weather', input: { city: 'Oslo' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
    ]);
    // The streamed answer's thinking is stored too.
    const after = await call(layout(), 'GET', `/v1/sessions/${session}/messages`);
    expect(after.body.messages.at(-1).thinking_blocks).toEqual([{ type: 'thinking', thinking: (next.content[0] as Anthropic.ThinkingBlock).thinking, signature: (next.content[0] as Anthropic.ThinkingBlock).signature }]);
  });

  it('messages: a session keeps the conversation (stored like chat), and a prompt template renders into system', async () => {
    const session = `e2e-messages-${layout().name}-${Date.now()}`;
    await sdk().messages.create(extended({ model: 'claude', max_tokens: 50, session_id: session, messages: [{ role: 'user', content: 'My name is Ada.' }] }));
    await sdk().messages.stream(extended({ model: 'chat', max_tokens: 50, session_id: session, messages: [{ role: 'user', content: 'What is my name?' }] }) as never).finalMessage();
    expect((upstream('/chat/completions').body as Body).messages).toEqual([
      { role: 'user', content: 'My name is Ada.' },
      { role: 'assistant', content: 'echo: My name is Ada.' },
      { role: 'user', content: 'What is my name?' },
    ]);
    const stored = await call(layout(), 'GET', `/v1/sessions/${session}/messages`);
    expect(stored.body.messages.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual([
      ['user', 'My name is Ada.'],
      ['assistant', 'echo: My name is Ada.'],
      ['user', 'What is my name?'],
      ['assistant', 'echo: What is my name?'],
    ]);

    const created = await call(layout(), 'POST', '/v1/templates', {
      body: { name: `e2e-messages-${layout().name}`, type: 'chat', template: [{ role: 'system', content: 'Speak as {{who}}.' }, { role: 'user', content: 'Start.' }], labels: ['production'] },
    });
    expect(created.status).toBe(201);
    const { response } = await sdk()
      .messages.create(extended({ model: 'claude', max_tokens: 50, system: 'Be brief.', prompt: { name: `e2e-messages-${layout().name}`, variables: { who: 'a pirate' } }, messages: [{ role: 'user', content: 'Hi' }] }))
      .withResponse();
    expect(response.headers.get(HEADERS.promptVersion)).toBe('1');
    // Counted per prompt version as chat's requests are.
    const metrics = await fetch(`${layout().url}/metrics`).then((r) => r.text());
    expect(metrics).toContain(`promptmesh_prompt_requests_total{prompt="e2e-messages-${layout().name}",version="1"} 1`);
    expect(upstream('/v1/messages').body).toMatchObject({
      model: 'claude-fake',
      system: 'Speak as a pirate.\n\nBe brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Start.' }, { type: 'text', text: 'Hi' }] }],
    });
  });

  it('chat completions to an Anthropic provider: structured output, reasoning and parallel tool calls translated; what has no counterpart a 400 naming it', async () => {
    const openai = new OpenAI({ baseURL: `${layout().url}/v1`, apiKey: KEYS.admin, maxRetries: 0, timeout: 30_000 });
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
    layout().fake.setBehavior({ reply: { toolCall: { name: 'place', arguments: { city: 'Oslo' } } } });
    const structured = await openai.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'Where?' }],
      response_format: { type: 'json_schema', json_schema: { name: 'place', schema, strict: true } },
    });
    expect(JSON.parse(structured.choices[0]!.message.content!)).toEqual({ city: 'Oslo' });
    expect(structured.choices[0]!.finish_reason).toBe('stop');
    expect(upstream('/v1/messages').body).toMatchObject({ tools: [{ name: 'place', input_schema: schema }], tool_choice: { type: 'tool', name: 'place' } });
    layout().fake.reset();

    const reasoned = await openai.chat.completions.create({ model: 'claude', max_completion_tokens: 4000, reasoning_effort: 'low', messages: [{ role: 'user', content: 'why' }] });
    expect(reasoned.choices[0]!.message).toMatchObject({ content: 'echo: why', reasoning_content: 'Thinking about: why' });
    expect(upstream('/v1/messages').body).toMatchObject({ max_tokens: 4000, thinking: { type: 'enabled', budget_tokens: 2048 } });

    await openai.chat.completions.create({ model: 'claude', parallel_tool_calls: false, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }], messages: [{ role: 'user', content: 'x' }] });
    expect(upstream('/v1/messages').body).toMatchObject({ tool_choice: { type: 'auto', disable_parallel_tool_use: true } });

    const before = layout().fake.requests.length;
    for (const [extra, param] of [
      [{ n: 2 }, 'n'],
      [{ logprobs: true }, 'logprobs'],
      [{ presence_penalty: 1 }, 'presence_penalty'],
    ] as const) {
      const err = await openai.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'x' }], ...extra }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(param);
    }
    expect(layout().fake.requests.length).toBe(before);
  });
}
