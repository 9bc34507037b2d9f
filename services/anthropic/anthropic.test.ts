// The Anthropic wire format module: translation to the canonical request and back, the event
// stream writer and the error shape. End to end with the official SDK: test/e2e/messages.suite.ts.
import { describe, expect, it } from 'vitest';
import { ApiError, badRequest } from '../kit/errors';
import type { ChatCompletion, ChatCompletionChunk } from '../openai';
import { AnthropicStreamAssembler, anthropicErrorBody, toAnthropicEvents, toAnthropicResponse, toChatReply, toChatRequest, writeAnthropicSse, type AnthropicEvent, type MessagesRequest } from '.';

const base = (extra: Partial<MessagesRequest> = {}): MessagesRequest => ({ model: 'm', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }], ...extra });

function paramOf(fn: () => unknown): string | null {
  try {
    fn();
  } catch (err) {
    return (err as ApiError).param;
  }
  throw new Error('did not throw');
}

describe('toChatRequest', () => {
  it('translates system blocks, images, tool use and results, thinking and the parameters', () => {
    const out = toChatRequest(
      base({
        system: [{ type: 'text', text: 'rules', cache_control: { type: 'ephemeral' } } as never],
        messages: [
          { role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://x/y.png' } }, { type: 'text', text: 'look' }] as never },
          { role: 'assistant', content: [{ type: 'thinking', thinking: 'hm', signature: 's' }, { type: 'text', text: 'calling' }, { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } }] as never },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'ok' }] }, { type: 'tool_result', tool_use_id: 't2', content: 'bad', is_error: true }] as never },
        ],
        stop_sequences: ['END'],
        temperature: 0.2,
        metadata: { user_id: 'u' },
        tools: [{ name: 'f', input_schema: { type: 'object' } }],
        tool_choice: { type: 'any', disable_parallel_tool_use: true } as never,
        thinking: { type: 'enabled', budget_tokens: 20000 } as never,
        stream: true,
      }),
    );
    expect(out).toEqual({
      model: 'm',
      max_tokens: 100,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'rules', cache_control: { type: 'ephemeral' } }] },
        { role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }, { type: 'text', text: 'look' }] },
        { role: 'assistant', content: 'calling', tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }], thinking_blocks: [{ type: 'thinking', thinking: 'hm', signature: 's' }] },
        { role: 'tool', tool_call_id: 't1', content: 'ok' },
        { role: 'tool', tool_call_id: 't2', content: '[tool error] bad' },
      ],
      stop: ['END'],
      temperature: 0.2,
      user: 'u',
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
      reasoning_effort: 'high',
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('refuses what the canonical request cannot carry, naming the field; lenient mode skips it', () => {
    const doc = base({ messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'document', source: {} }] as never }] });
    expect(paramOf(() => toChatRequest(doc))).toBe('messages[0].content[1].type');
    expect(toChatRequest(doc, { strict: false }).messages).toEqual([{ role: 'user', content: 'a' }]);
    expect(paramOf(() => toChatRequest(base({ top_k: 3 })))).toBe('top_k');
    expect(paramOf(() => toChatRequest(base({ stop_sequences: ['a', 'b', 'c', 'd', 'e'] })))).toBe('stop_sequences');
    expect(paramOf(() => toChatRequest(base({ tools: [{ type: 'web_search_20250305', name: 'web_search' }] })))).toBe('tools[0].type');
    expect(paramOf(() => toChatRequest(base({ service_tier: 'auto' })))).toBe('service_tier');
    expect(paramOf(() => toChatRequest(base({ tool_choice: { type: 'sometimes' } })))).toBe('tool_choice.type');
    expect(paramOf(() => toChatRequest(base({ messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'f' } }] as never }] })))).toBe('messages[0].content[0].source.type');
    expect(paramOf(() => toChatRequest(base({ system: [{ type: 'image' }] as never })))).toBe('system[0].type');
  });

  // Found by the client matrix (test/e2e/client-matrix.test.ts): the Anthropic SDK's structured
  // outputs were a 400 "'output_config' is not a known field" on every provider type.
  it('translates output_config: format as response_format json_schema, effort as reasoning_effort', () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
    const out = toChatRequest(base({ thinking: { type: 'enabled', budget_tokens: 2000 } as never, output_config: { format: { type: 'json_schema', schema }, effort: 'high' } }));
    expect(out.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'output', schema, strict: true } });
    expect(out.reasoning_effort).toBe('high');
    // Nulls are "not set", as Anthropic reads them.
    expect(toChatRequest(base({ output_config: { format: null, effort: null } }))).toEqual(toChatRequest(base()));
    expect(paramOf(() => toChatRequest(base({ output_config: { format: { type: 'xml' } } })))).toBe('output_config.format.type');
    expect(paramOf(() => toChatRequest(base({ output_config: { format: { type: 'json_schema', schema: 'object' } } })))).toBe('output_config.format.schema');
    expect(paramOf(() => toChatRequest(base({ output_config: { effort: 'max' } })))).toBe('output_config.effort');
    expect(paramOf(() => toChatRequest(base({ output_config: { verbosity: 'low' } })))).toBe('output_config.verbosity');
    // Passing through to Anthropic, the translation only sizes the request: nothing is refused.
    expect(toChatRequest(base({ output_config: { effort: 'max', verbosity: 'low' } }), { strict: false }).reasoning_effort).toBeUndefined();
  });
});

describe('answers', () => {
  it('turns a completion into a message, cached tokens apart from input_tokens', () => {
    const msg = toAnthropicResponse({
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 0,
      model: 'gpt',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"x":2}' } }] }, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13, prompt_tokens_details: { cached_tokens: 4 } },
    });
    expect(msg).toEqual({
      id: 'msg_chatcmpl-1',
      type: 'message',
      role: 'assistant',
      model: 'gpt',
      content: [{ type: 'text', text: 'hi' }, { type: 'tool_use', id: 'c1', name: 'f', input: { x: 2 } }],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 6, output_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 4 },
    });
  });

  it('turns a chunk stream into Anthropic events, one block per text run or tool call', async () => {
    const chunk = (delta: Record<string, unknown>, finish: string | null = null, usage?: unknown): ChatCompletionChunk =>
      ({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'gpt', choices: [{ index: 0, delta, finish_reason: finish }], ...(usage ? { usage } : {}) }) as ChatCompletionChunk;
    async function* chunks() {
      yield chunk({ role: 'assistant', content: '' });
      yield chunk({ content: 'Hel' });
      yield chunk({ content: 'lo' });
      yield chunk({ tool_calls: [{ index: 0, id: 'a', type: 'function', function: { name: 'f', arguments: '{"q"' } }] });
      yield chunk({ tool_calls: [{ index: 0, function: { arguments: ':1}' } }] });
      yield chunk({ tool_calls: [{ index: 1, id: 'b', type: 'function', function: { name: 'g', arguments: '{}' } }] });
      yield chunk({}, 'tool_calls');
      yield { ...chunk({}), choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } } as ChatCompletionChunk;
    }
    const events: AnthropicEvent[] = [];
    for await (const ev of toAnthropicEvents(chunks(), 'gpt')) events.push(ev);
    const data = events.map((e) => JSON.parse(e.data));
    expect(events.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(data.map((d) => d.type)).toEqual(events.map((e) => e.event));
    expect(data[5]).toEqual({ type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'a', name: 'f', input: {} } });
    expect(data[9].index).toBe(2);
    expect(data[12]).toEqual({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { input_tokens: 5, output_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } });
    // The router's assembler reads the same events back into the answer.
    const assembler = new AnthropicStreamAssembler();
    for (const ev of events) assembler.add(ev);
    expect(assembler.content()).toEqual([
      { type: 'text', text: 'Hello' },
      { type: 'tool_use', id: 'a', name: 'f', input: { q: 1 } },
      { type: 'tool_use', id: 'b', name: 'g', input: {} },
    ]);
  });

  it('answers thinking as thinking blocks, signatures included, plain and streamed, and the assembler keeps them', async () => {
    const completion = (message: Record<string, unknown>) =>
      toAnthropicResponse({ id: 'c', object: 'chat.completion', created: 0, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'ok', ...message }, finish_reason: 'stop', logprobs: null }] } as ChatCompletion);
    const signed = { type: 'thinking', thinking: 'hm', signature: 'sig' };
    const redacted = { type: 'redacted_thinking', data: 'ZGF0YQ==' };
    expect(completion({ reasoning_content: 'hm', thinking_blocks: [signed, redacted] }).content).toEqual([signed, redacted, { type: 'text', text: 'ok' }]);
    // Reasoning a provider signs nothing for: one block, its signature empty.
    expect(completion({ reasoning_content: 'why' }).content).toEqual([{ type: 'thinking', thinking: 'why', signature: '' }, { type: 'text', text: 'ok' }]);

    const chunk = (delta: Record<string, unknown>, finish: string | null = null): ChatCompletionChunk =>
      ({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] }) as ChatCompletionChunk;
    async function* chunks() {
      yield chunk({ role: 'assistant', content: '' });
      yield chunk({ reasoning_content: 'h' });
      yield chunk({ reasoning_content: 'm' });
      yield chunk({ thinking_blocks: [signed] });
      yield chunk({ thinking_blocks: [redacted] });
      yield chunk({ content: 'ok' });
      yield chunk({}, 'stop');
    }
    const events: AnthropicEvent[] = [];
    for await (const ev of toAnthropicEvents(chunks(), 'm')) events.push(ev);
    const data = events.map((e) => JSON.parse(e.data));
    expect(data.filter((d) => d.type === 'content_block_delta').map((d) => [d.index, d.delta])).toEqual([
      [0, { type: 'thinking_delta', thinking: 'h' }],
      [0, { type: 'thinking_delta', thinking: 'm' }],
      [0, { type: 'signature_delta', signature: 'sig' }],
      [2, { type: 'text_delta', text: 'ok' }],
    ]);
    expect(data.filter((d) => d.type === 'content_block_start').map((d) => d.content_block.type)).toEqual(['thinking', 'redacted_thinking', 'text']);
    const assembler = new AnthropicStreamAssembler();
    for (const ev of events) assembler.add(ev);
    expect(assembler.content()).toEqual([signed, redacted, { type: 'text', text: 'ok' }]);
    expect(toChatReply({ content: assembler.content() })).toEqual({ role: 'assistant', content: 'ok', thinking_blocks: [signed, redacted] });
  });
});

describe('stream writer and errors', () => {
  it('holds message_stop until the turn is stored, and ends a failed stream with an error event', async () => {
    const order: string[] = [];
    async function* ok(): AsyncGenerator<AnthropicEvent> {
      yield { event: 'message_start', data: '{}' };
      yield { event: 'message_stop', data: '{"type":"message_stop"}' };
    }
    for await (const s of writeAnthropicSse(ok(), { onError: () => undefined, afterLast: () => void order.push('stored') })) order.push(s.split('\n')[0]!);
    expect(order).toEqual(['event: message_start', 'stored', 'event: message_stop']);

    async function* broken(): AsyncGenerator<AnthropicEvent> {
      yield { event: 'message_start', data: '{}' };
      throw new ApiError({ status: 529, type: 'x', message: 'busy' });
    }
    const out: string[] = [];
    for await (const s of writeAnthropicSse(broken(), { onError: (err) => anthropicErrorBody(err).body })) out.push(s);
    expect(out[1]).toBe('event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n');
  });

  it('maps statuses to Anthropic error types and leads a 400 message with its field', () => {
    expect(anthropicErrorBody(badRequest('must be a number', 'max_tokens')).body).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: must be a number' } });
    expect(anthropicErrorBody(badRequest("'top_k' is not allowed", 'top_k')).body.error.message).toBe("'top_k' is not allowed");
    const types = [401, 403, 404, 413, 429, 500, 502, 503, 504].map((status) => anthropicErrorBody(new ApiError({ status, type: 't', message: 'm' })).body.error.type);
    expect(types).toEqual(['authentication_error', 'permission_error', 'not_found_error', 'request_too_large', 'rate_limit_error', 'api_error', 'api_error', 'overloaded_error', 'timeout_error']);
    expect(anthropicErrorBody(new Error('boom')).status).toBe(500);
    // A stream error relayed from llm keeps Anthropic's own type.
    expect(anthropicErrorBody(new ApiError({ status: 502, type: 'overloaded_error', message: 'busy' })).body.error.type).toBe('overloaded_error');
  });
});
