/**
 * Cases of the end-to-end suite (suite.ts) about what a session and a stream must carry intact:
 * a multi-step tool-calling conversation kept server-side (the fake provider checks the pairing
 * of tool calls and results as OpenAI does), and text whose every multi-byte character the
 * upstream splits across two network chunks. Client: the official openai SDK.
 */
import OpenAI from 'openai';
import { expect, it } from 'vitest';
import { KEYS, type Layout } from './support';

type WithSession<T> = T & { session_id?: string };

interface UpstreamMessage {
  role: string;
  content: unknown;
  tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
}

/** Registers the cases; `layout` is read when they run (the suite starts it in `beforeAll`). */
export function defineToolAndStreamCases(layout: () => Layout): void {
  const sdk = () => new OpenAI({ baseURL: `${layout().url}/v1`, apiKey: KEYS.admin, maxRetries: 0, timeout: 30_000 });
  const lastUpstream = () => {
    const req = layout().fake.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1);
    return (req?.body as { messages: UpstreamMessage[] }).messages;
  };
  const tools: OpenAI.Chat.ChatCompletionTool[] = [
    { type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
  ];

  it('keeps a multi-step tool-calling conversation in a session, paired as the provider requires', async () => {
    const session = `e2e-tools-${layout().name}-${Date.now()}`;
    const fake = layout().fake;
    // Two tool rounds (one plain, one streamed), then a text answer, then a new question.
    fake.setBehavior({
      rules: [
        { stream: false, times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo' } } } },
        { stream: true, times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Bergen' } } } },
      ],
    });
    const client = sdk();
    try {
      const first = await client.chat.completions.create({
        model: 'chat',
        tools,
        session_id: session,
        messages: [{ role: 'user', content: 'Weather in Oslo and Bergen?' }],
      } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>);
      const call1 = first.choices[0]!.message.tool_calls![0]!;
      expect(first.choices[0]!.finish_reason).toBe('tool_calls');

      // The second round streams: the tool call arrives in deltas and is stored whole.
      const stream = await client.chat.completions.create({
        model: 'chat',
        tools,
        stream: true,
        session_id: session,
        messages: [{ role: 'tool', tool_call_id: call1.id, content: '{"temp":3}' }],
      } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsStreaming>);
      let call2Id = '';
      let call2Args = '';
      for await (const chunk of stream) {
        const tc = chunk.choices[0]?.delta?.tool_calls?.[0];
        if (tc?.id) call2Id = tc.id;
        if (tc?.function?.arguments) call2Args += tc.function.arguments;
      }
      expect(JSON.parse(call2Args)).toEqual({ city: 'Bergen' });

      const third = await client.chat.completions.create({
        model: 'chat',
        tools,
        session_id: session,
        messages: [{ role: 'tool', tool_call_id: call2Id, content: '{"temp":7}' }],
      } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>);
      expect(third.choices[0]!.message.content).toContain('Weather in Oslo and Bergen?');

      await client.chat.completions.create({
        model: 'chat',
        tools,
        session_id: session,
        messages: [{ role: 'user', content: 'Thanks!' }],
      } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>);
      // What went upstream last: the whole conversation, every call answered right after it.
      const sent = lastUpstream();
      expect(sent.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'tool', 'assistant', 'user']);
      expect(sent[1]!.tool_calls!.map((c) => c.id)).toEqual([call1.id]);
      expect(sent[1]!.content ?? null).toBeNull();
      expect(sent[2]).toMatchObject({ tool_call_id: call1.id, content: '{"temp":3}' });
      expect(sent[3]!.tool_calls![0]).toMatchObject({ id: call2Id, function: { name: 'weather', arguments: call2Args } });
      expect(sent[4]).toMatchObject({ tool_call_id: call2Id, content: '{"temp":7}' });
      expect(sent[5]!.content).toBe(third.choices[0]!.message.content);

      // The session as stored, read through the router: every window starts at a turn.
      const read = async (query: string) => {
        const res = await fetch(`${layout().url}/v1/sessions/${session}/messages${query}`, { headers: { authorization: `Bearer ${KEYS.admin}` } });
        expect(res.status).toBe(200);
        return ((await res.json()) as { messages: UpstreamMessage[] }).messages;
      };
      expect((await read('')).map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
      for (let n = 1; n <= 7; n++) {
        const window = await read(`?max_messages=${n}`);
        expect(window.length === 0 || window[0]!.role === 'user', `max_messages=${n} starts with ${window[0]?.role}`).toBe(true);
        expect(window.length).toBe(n >= 2 ? 2 : 0);
      }
    } finally {
      fake.setBehavior({});
    }
  });

  it('keeps a streamed tool-use turn\'s thinking with its signature in a session and replays it to Claude', async () => {
    const session = `e2e-thinking-chat-${layout().name}-${Date.now()}`;
    const fake = layout().fake;
    fake.setBehavior({ rules: [{ stream: true, times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo' } } } }] });
    const base = { model: 'claude', max_tokens: 4000, reasoning_effort: 'low' as const, tools, session_id: session };
    const stream = await sdk().chat.completions.create({ ...base, stream: true, messages: [{ role: 'user', content: 'Weather in Oslo?' }] } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsStreaming>);
    const blocks: unknown[] = [];
    let callId = '';
    for await (const c of stream) {
      const delta = c.choices[0]?.delta as { thinking_blocks?: unknown[]; tool_calls?: Array<{ id?: string }> } | undefined;
      blocks.push(...(delta?.thinking_blocks ?? []));
      callId ||= delta?.tool_calls?.[0]?.id ?? '';
    }
    expect(blocks).toEqual([{ type: 'thinking', thinking: 'Thinking about: Weather in Oslo?', signature: expect.stringMatching(/^sig_/) }]);

    // Only the tool result goes in: the session supplies the assistant turn, thinking first.
    const next = await sdk().chat.completions.create({ ...base, messages: [{ role: 'tool', tool_call_id: callId, content: 'sunny' }] } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>);
    expect(next.choices[0].finish_reason).toBe('stop');
    const sent = layout().fake.requests.filter((r) => r.path === '/v1/messages').at(-1)!.body as { messages: Array<{ role: string; content: Array<{ type: string }> }> };
    expect(sent.messages[1]!.content.map((b) => b.type)).toEqual(['thinking', 'tool_use']);
    expect(sent.messages[1]!.content[0]).toEqual(blocks[0]);
  });

  it('refuses a tool result without its call with the provider 400, and stores nothing of that turn', async () => {
    const session = `e2e-tools-bad-${layout().name}-${Date.now()}`;
    const client = sdk();
    await client.chat.completions.create({ model: 'chat', session_id: session, messages: [{ role: 'user', content: 'hi' }] } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>);
    const err = await client.chat.completions
      .create({ model: 'chat', session_id: session, messages: [{ role: 'tool', tool_call_id: 'call_nowhere', content: 'x' }] } as WithSession<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>)
      .then(
        () => undefined,
        (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
      );
    expect(err?.status).toBe(400);
    const res = await fetch(`${layout().url}/v1/sessions/${session}/messages`, { headers: { authorization: `Bearer ${KEYS.admin}` } });
    expect(((await res.json()) as { messages: unknown[] }).messages).toHaveLength(2);
  });

  it('streams text intact when the upstream splits every multi-byte character across two chunks', async () => {
    const text = 'Grüße aus Köln — 東京 😀 ß ok';
    const fake = layout().fake;
    fake.setBehavior({ rules: [{ stream: true, reply: { text, splitMultibyte: true } }] });
    try {
      const stream = await sdk().chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'say it' }] });
      let got = '';
      for await (const chunk of stream) got += chunk.choices[0]?.delta?.content ?? '';
      expect(got).toBe(text);
    } finally {
      fake.setBehavior({});
    }
  });
}
