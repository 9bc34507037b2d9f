/**
 * Translation between the Anthropic Messages wire format and promptmesh's canonical (OpenAI)
 * chat request, both ways, for `POST /v1/messages` to providers that are not Anthropic (and for
 * the llm pipeline's bookkeeping of calls that pass through to Anthropic).
 *
 * Strict translation (a non-Anthropic provider may answer) refuses what the canonical request
 * cannot carry with a 400 naming the field (`messages[2].content[0].type`, `top_k`,
 * `tools[1].type`, ...), never dropping it. `thinking` and `redacted_thinking` blocks of
 * assistant turns travel as the message's `thinking_blocks` (services/anthropic/blocks.ts), so
 * Claude on Bedrock gets them back with their signatures; the other providers ignore them.
 */
import { badRequest } from '../kit/errors';
import { MAX_STOP_SEQUENCES, type ChatCompletion, type ChatCompletionChunk, type ChatMessage, type ChatRequest, type ContentPart, type FinishReason, type ThinkingBlock, type Usage } from '../openai';
import { anthropicAssistantBlocks, anthropicImageBlock, anthropicThinkingBlocks, readAssistantBlocks, thinkingBlockOf } from './blocks';
import type { AnthropicBlock, AnthropicEvent, AnthropicResponse, AnthropicUsage, MessagesRequest } from './schemas';

/** Options of {@link toChatRequest}. */
export interface ToChatOptions {
  /**
   * Refuse what cannot be translated (a 400 naming the field). Off only when every provider the
   * model may reach is Anthropic: the body then goes upstream as it came, and the translation
   * merely sizes the request (limits, estimates), so blocks without a counterpart are skipped.
   * @default true
   */
  strict?: boolean;
}

/** `thinking.budget_tokens` as OpenAI's `reasoning_effort`. */
export function effortOfBudget(budget: number): 'low' | 'medium' | 'high' {
  if (budget <= 4096) return 'low';
  if (budget <= 16384) return 'medium';
  return 'high';
}

function cacheControl(block: AnthropicBlock): Record<string, unknown> {
  return block.cache_control && typeof block.cache_control === 'object' ? { cache_control: block.cache_control } : {};
}

/** An Anthropic image source as an OpenAI `image_url` part. */
function imagePart(block: AnthropicBlock, field: string, strict: boolean): ContentPart | undefined {
  const source = block.source as { type?: string; media_type?: string; data?: string; url?: string } | undefined;
  if (source?.type === 'base64' && typeof source.data === 'string' && typeof source.media_type === 'string') {
    return { type: 'image_url', image_url: { url: `data:${source.media_type};base64,${source.data}` }, ...cacheControl(block) };
  }
  if (source?.type === 'url' && typeof source.url === 'string') return { type: 'image_url', image_url: { url: source.url }, ...cacheControl(block) };
  if (strict) throw badRequest(`image source type '${String(source?.type)}' cannot be sent to this model's providers (base64 and url can)`, `${field}.source.type`);
  return undefined;
}

function textOfToolResult(content: unknown, field: string, strict: boolean): string | ContentPart[] {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw badRequest('must be a string or a list of blocks', field);
  const parts: ContentPart[] = [];
  content.forEach((b: AnthropicBlock, i) => {
    if (b?.type === 'text') parts.push({ type: 'text', text: String(b.text ?? '') });
    else if (strict) throw badRequest(`a tool result block of type '${String(b?.type)}' cannot be sent to this model's providers (text can)`, `${field}[${i}].type`);
  });
  return parts.every((p) => p.cache_control === undefined) ? parts.map((p) => p.text).join('') : parts;
}

/**
 * An Anthropic Messages request as the canonical chat request. The model name is kept (routing
 * resolves it as for chat).
 */
export function toChatRequest(body: MessagesRequest, options: ToChatOptions = {}): ChatRequest {
  const strict = options.strict ?? true;
  const messages: ChatMessage[] = [];
  if (typeof body.system === 'string') {
    if (body.system) messages.push({ role: 'system', content: body.system });
  } else if (Array.isArray(body.system) && body.system.length > 0) {
    const parts: ContentPart[] = [];
    body.system.forEach((b: AnthropicBlock, i) => {
      if (b.type === 'text') parts.push({ type: 'text', text: String(b.text ?? ''), ...cacheControl(b) });
      else if (strict) throw badRequest(`system blocks must be text, not '${b.type}'`, `system[${i}].type`);
    });
    if (parts.length > 0) messages.push({ role: 'system', content: parts.some((p) => p.cache_control) ? parts : parts.map((p) => p.text).join('\n\n') });
  }

  body.messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    if (typeof m.content === 'string') {
      messages.push({ role: m.role, content: m.content });
      return;
    }
    if (m.role === 'assistant') {
      const read = readAssistantBlocks(m.content);
      const unread = read.unread[0];
      if (strict && unread !== undefined) throw badRequest(`assistant content blocks of type '${m.content[unread]!.type}' cannot be sent to this model's providers`, `${field}.content[${unread}].type`);
      const calls = read.toolCalls;
      const message: ChatMessage = { role: 'assistant', content: calls.length > 0 && read.text === '' ? null : read.text };
      if (calls.length > 0) message.tool_calls = calls;
      if (read.thinkingBlocks.length > 0) message.thinking_blocks = read.thinkingBlocks;
      messages.push(message);
      return;
    }
    // A user turn: tool results become `tool` messages (before the rest, as the API orders them).
    const parts: ContentPart[] = [];
    m.content.forEach((b: AnthropicBlock, j) => {
      const at = `${field}.content[${j}]`;
      switch (b.type) {
        case 'text':
          parts.push({ type: 'text', text: String(b.text ?? ''), ...cacheControl(b) });
          break;
        case 'image': {
          const part = imagePart(b, at, strict);
          if (part) parts.push(part);
          break;
        }
        case 'tool_result': {
          if (strict && b.is_error === true) {
            // OpenAI has no error flag on a tool result: say so in the content instead of losing it.
            messages.push({ role: 'tool', tool_call_id: String(b.tool_use_id ?? ''), content: `[tool error] ${contentString(textOfToolResult(b.content, `${at}.content`, strict))}` });
          } else {
            messages.push({ role: 'tool', tool_call_id: String(b.tool_use_id ?? ''), content: textOfToolResult(b.content, `${at}.content`, strict) });
          }
          break;
        }
        default:
          if (strict) throw badRequest(`content blocks of type '${b.type}' cannot be sent to this model's providers (text, image and tool_result can)`, `${at}.type`);
      }
    });
    if (parts.length > 0) messages.push({ role: 'user', content: parts.every((p) => p.type === 'text' && !p.cache_control) ? parts.map((p) => p.text).join('') : parts });
  });

  const out: ChatRequest = { model: body.model, messages, max_tokens: body.max_tokens };
  if (body.temperature !== undefined) out.temperature = body.temperature;
  if (body.top_p !== undefined) out.top_p = body.top_p;
  if (body.top_k !== undefined) {
    if (strict) throw badRequest(`'top_k' cannot be sent to this model's providers`, 'top_k');
  }
  if (body.stop_sequences !== undefined && body.stop_sequences.length > 0) {
    if (strict && body.stop_sequences.length > MAX_STOP_SEQUENCES) throw badRequest(`at most ${MAX_STOP_SEQUENCES} stop sequences can be sent to this model's providers`, 'stop_sequences');
    out.stop = body.stop_sequences.slice(0, MAX_STOP_SEQUENCES);
  }
  if (typeof body.metadata?.user_id === 'string') out.user = body.metadata.user_id;
  if (body.tools !== undefined && body.tools.length > 0) {
    out.tools = [];
    body.tools.forEach((t, i) => {
      const tool = t as { type?: string; name?: string; description?: string; input_schema?: unknown; cache_control?: unknown };
      if (tool.type !== undefined && tool.type !== 'custom') {
        if (strict) throw badRequest(`server tool '${tool.type}' cannot be sent to this model's providers (client tools can)`, `tools[${i}].type`);
        return;
      }
      if (typeof tool.name !== 'string' || tool.name === '') throw badRequest('a tool needs a name', `tools[${i}].name`);
      out.tools!.push({
        type: 'function',
        function: { name: tool.name, ...(tool.description ? { description: tool.description } : {}), parameters: tool.input_schema ?? { type: 'object', properties: {} } },
        ...(tool.cache_control ? { cache_control: tool.cache_control } : {}),
      });
    });
  }
  if (body.tool_choice) {
    const choice = body.tool_choice as { type: string; name?: string; disable_parallel_tool_use?: boolean };
    if (choice.type === 'auto') out.tool_choice = 'auto';
    else if (choice.type === 'any') out.tool_choice = 'required';
    else if (choice.type === 'none') out.tool_choice = 'none';
    else if (choice.type === 'tool' && typeof choice.name === 'string') out.tool_choice = { type: 'function', function: { name: choice.name } };
    else throw badRequest(`unknown tool_choice type '${choice.type}' (auto, any, tool with a name, none)`, 'tool_choice.type');
    if (choice.disable_parallel_tool_use === true && out.tools && out.tools.length > 0) out.parallel_tool_calls = false;
  }
  if (body.thinking) {
    const thinking = body.thinking as { type: string; budget_tokens?: number };
    if (thinking.type === 'enabled') {
      if (typeof thinking.budget_tokens !== 'number') throw badRequest('thinking needs budget_tokens', 'thinking.budget_tokens');
      out.reasoning_effort = effortOfBudget(thinking.budget_tokens);
    } else if (thinking.type !== 'disabled' && strict) throw badRequest(`thinking type '${thinking.type}' cannot be sent to this model's providers (enabled, disabled can)`, 'thinking.type');
  }
  if (body.output_config !== undefined) outputConfig(body.output_config as Record<string, unknown>, out, strict);
  if (strict) {
    for (const field of ['service_tier', 'container', 'mcp_servers', 'context_management'] as const) {
      if (body[field] !== undefined) throw badRequest(`'${field}' is Anthropic's and cannot be sent to this model's providers`, field);
    }
  }
  if (body.cache !== undefined) out.cache = body.cache;
  if (body.stream === true) {
    out.stream = true;
    out.stream_options = { include_usage: true };
  }
  return out;
}

/** The `reasoning_effort` values Anthropic's `output_config.effort` has a counterpart for. */
const EFFORTS = ['low', 'medium', 'high', 'xhigh'];

/**
 * `output_config` onto the canonical request: `format` (a JSON schema the answer follows) as
 * `response_format` json_schema, `effort` as `reasoning_effort` (it wins over a `thinking`
 * budget's). Strict: a field or value without a counterpart is a 400 naming it.
 */
function outputConfig(config: Record<string, unknown>, out: ChatRequest, strict: boolean): void {
  for (const [key, value] of Object.entries(config)) {
    if (value === null || value === undefined) continue;
    const field = `output_config.${key}`;
    if (key === 'format') {
      const format = value as { type?: unknown; schema?: unknown };
      if (format.type !== 'json_schema') {
        if (strict) throw badRequest(`format type ${JSON.stringify(format.type)} cannot be sent to this model's providers (json_schema can)`, `${field}.type`);
        continue;
      }
      if (typeof format.schema !== 'object' || format.schema === null || Array.isArray(format.schema)) throw badRequest('must be a JSON Schema object', `${field}.schema`);
      out.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema as Record<string, unknown>, strict: true } };
    } else if (key === 'effort') {
      if (typeof value === 'string' && EFFORTS.includes(value)) out.reasoning_effort = value;
      else if (strict) throw badRequest(`effort ${JSON.stringify(value)} cannot be sent to this model's providers (${EFFORTS.join(', ')} can)`, field);
    } else if (strict) {
      throw badRequest(`'${key}' cannot be sent to this model's providers (format and effort can)`, field);
    }
  }
}

function contentString(content: string | ContentPart[]): string {
  return typeof content === 'string' ? content : content.map((p) => p.text ?? '').join('');
}

/** An OpenAI finish reason as Anthropic's stop reason. */
export function stopReasonOf(finish: FinishReason | string | null | undefined): string {
  switch (finish) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    default:
      return 'end_turn';
  }
}

/** OpenAI usage as Anthropic's: `input_tokens` without the cached tokens, which are counted apart. */
export function anthropicUsageOf(usage: Usage | null | undefined): AnthropicUsage {
  const read = Number(usage?.prompt_tokens_details?.cached_tokens ?? 0) || 0;
  const write = Number((usage as { cache_creation_input_tokens?: unknown } | undefined)?.cache_creation_input_tokens ?? 0) || 0;
  return {
    input_tokens: Math.max(0, (usage?.prompt_tokens ?? 0) - read - write),
    output_tokens: usage?.completion_tokens ?? 0,
    cache_creation_input_tokens: write,
    cache_read_input_tokens: read,
  };
}

function parseInput(args: string): unknown {
  try {
    return args ? JSON.parse(args) : {};
  } catch {
    // A model that wrote broken JSON: keep what it wrote rather than failing the answer.
    return { _raw_arguments: args };
  }
}

/** A canonical completion (its first choice) as a Messages API answer. */
export function toAnthropicResponse(completion: ChatCompletion): AnthropicResponse {
  const choice = completion.choices[0];
  const content: AnthropicBlock[] = thinkingContentOf(choice?.message);
  const text = typeof choice?.message?.content === 'string' ? choice.message.content : '';
  if (text) content.push({ type: 'text', text });
  for (const tc of choice?.message?.tool_calls ?? []) content.push({ type: 'tool_use', id: tc.id, name: tc.function.name, input: parseInput(tc.function.arguments) });
  const stop = stopReasonOf(choice?.finish_reason);
  return {
    id: completion.id.startsWith('msg_') ? completion.id : `msg_${completion.id}`,
    type: 'message',
    role: 'assistant',
    model: completion.model,
    content,
    stop_reason: stop,
    stop_sequence: null,
    usage: anthropicUsageOf(completion.usage),
  };
}

/** The well-formed thinking blocks of an answer's `thinking_blocks` (an extension field, so read with care). */
function thinkingBlocksOf(blocks: unknown): ThinkingBlock[] {
  return Array.isArray(blocks) ? blocks.map((b) => thinkingBlockOf(b as AnthropicBlock)).filter((b): b is ThinkingBlock => b !== undefined) : [];
}

/**
 * An answer's thinking as Anthropic blocks: its thinking blocks as they came (signatures
 * included), else reasoning text from a provider that signs none (vLLM, DeepSeek) as one
 * thinking block with an empty signature, as a stream of it reads.
 */
function thinkingContentOf(message: Record<string, unknown> | undefined): AnthropicBlock[] {
  const blocks = thinkingBlocksOf(message?.thinking_blocks);
  if (blocks.length > 0) return anthropicThinkingBlocks(blocks);
  const reasoning = message?.reasoning_content;
  return typeof reasoning === 'string' && reasoning !== '' ? [{ type: 'thinking', thinking: reasoning, signature: '' }] : [];
}

function event(type: string, data: Record<string, unknown>): AnthropicEvent {
  return { event: type, data: JSON.stringify({ type, ...data }) };
}

/**
 * A canonical chunk stream (with its usage chunk last) as Anthropic's event stream:
 * `message_start`, a `content_block_start`/`_delta`/`_stop` run per text or tool_use block,
 * `message_delta` with the stop reason and usage, `message_stop`.
 */
export async function* toAnthropicEvents(chunks: AsyncIterable<ChatCompletionChunk>, model: string): AsyncGenerator<AnthropicEvent> {
  let started = false;
  let open: { index: number; kind: 'text' | 'tool' | 'thinking'; toolIndex?: number } | undefined;
  let nextIndex = 0;
  let finish: FinishReason | string | null = null;
  let usage: Usage | undefined;
  for await (const chunk of chunks) {
    if (!started) {
      started = true;
      const id = chunk.id?.startsWith('msg_') ? chunk.id : `msg_${chunk.id ?? Date.now().toString(36)}`;
      yield event('message_start', {
        message: { id, type: 'message', role: 'assistant', model: chunk.model ?? model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
      });
    }
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices?.find((c) => (c.index ?? 0) === 0);
    if (!choice) continue;
    const delta = choice.delta ?? {};
    // Reasoning streams as a thinking block; the finished block (its signature) closes it.
    if (typeof delta.reasoning_content === 'string' && delta.reasoning_content !== '') {
      if (open?.kind !== 'thinking') {
        if (open) yield event('content_block_stop', { index: open.index });
        open = { index: nextIndex++, kind: 'thinking' };
        yield event('content_block_start', { index: open.index, content_block: { type: 'thinking', thinking: '', signature: '' } });
      }
      yield event('content_block_delta', { index: open.index, delta: { type: 'thinking_delta', thinking: delta.reasoning_content } });
    }
    for (const b of thinkingBlocksOf(delta.thinking_blocks)) {
      if (b.type === 'thinking' && open?.kind === 'thinking') {
        yield event('content_block_delta', { index: open.index, delta: { type: 'signature_delta', signature: b.signature } });
      } else {
        if (open) yield event('content_block_stop', { index: open.index });
        const index = nextIndex++;
        if (b.type === 'thinking') {
          yield event('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } });
          yield event('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: b.thinking } });
          yield event('content_block_delta', { index, delta: { type: 'signature_delta', signature: b.signature } });
        } else {
          yield event('content_block_start', { index, content_block: { type: 'redacted_thinking', data: b.data } });
        }
        open = { index, kind: 'thinking' };
      }
      yield event('content_block_stop', { index: open.index });
      open = undefined;
    }
    if (typeof delta.content === 'string' && delta.content !== '') {
      if (open?.kind !== 'text') {
        if (open) yield event('content_block_stop', { index: open.index });
        open = { index: nextIndex++, kind: 'text' };
        yield event('content_block_start', { index: open.index, content_block: { type: 'text', text: '' } });
      }
      yield event('content_block_delta', { index: open.index, delta: { type: 'text_delta', text: delta.content } });
    }
    for (const tc of delta.tool_calls ?? []) {
      if (open?.kind !== 'tool' || (tc.index !== undefined && tc.index !== open.toolIndex)) {
        if (open) yield event('content_block_stop', { index: open.index });
        open = { index: nextIndex++, kind: 'tool', toolIndex: tc.index };
        yield event('content_block_start', { index: open.index, content_block: { type: 'tool_use', id: tc.id ?? '', name: tc.function?.name ?? '', input: {} } });
      }
      if (tc.function?.arguments) yield event('content_block_delta', { index: open.index, delta: { type: 'input_json_delta', partial_json: tc.function.arguments } });
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  if (!started) return;
  if (open) yield event('content_block_stop', { index: open.index });
  const u = anthropicUsageOf(usage);
  yield event('message_delta', { delta: { stop_reason: stopReasonOf(finish), stop_sequence: null }, usage: u });
  yield event('message_stop', {});
}

/**
 * A canonical message (a template's, or a session's history) as Anthropic content, for the
 * router's `prompt` and `session_id` on `/v1/messages`: tool calls become `tool_use` blocks,
 * `tool` messages `tool_result` blocks of a user turn, image parts image blocks.
 */
export function toAnthropicMessage(m: ChatMessage): { role: 'user' | 'assistant'; content: AnthropicBlock[] } {
  const blocks: AnthropicBlock[] = [];
  if (m.role === 'tool') {
    return { role: 'user', content: [{ type: 'tool_result', tool_use_id: m.tool_call_id ?? '', content: contentString(m.content ?? '') }] };
  }
  if (typeof m.content === 'string') {
    if (m.content) blocks.push({ type: 'text', text: m.content });
  } else if (Array.isArray(m.content)) {
    for (const p of m.content) {
      if (p.type === 'text') blocks.push({ type: 'text', text: p.text ?? '' });
      else if (p.type === 'image_url') blocks.push(anthropicImageBlock((p.image_url as { url?: string } | undefined)?.url ?? ''));
    }
  }
  // A stored assistant turn replays its thinking (with the signatures) before its text and tool uses.
  return { role: m.role === 'assistant' ? 'assistant' : 'user', content: anthropicAssistantBlocks(m, blocks, parseInput, '') };
}

/** An Anthropic answer's content as the canonical assistant message a session stores (text, tool calls, thinking blocks). */
export function toChatReply(response: Pick<AnthropicResponse, 'content'>): ChatMessage {
  const { text, toolCalls, thinkingBlocks } = readAssistantBlocks(response.content ?? []);
  const reply: ChatMessage = toolCalls.length > 0 ? { role: 'assistant', content: text || null, tool_calls: toolCalls } : { role: 'assistant', content: text };
  if (thinkingBlocks.length > 0) reply.thinking_blocks = thinkingBlocks;
  return reply;
}

/**
 * Rebuilds the answer an event stream spelled out (text, tool_use and thinking blocks with
 * their signatures), so the router can store a streamed turn.
 */
export class AnthropicStreamAssembler {
  private readonly blocks = new Map<number, AnthropicBlock & { json?: string }>();

  add(ev: AnthropicEvent): void {
    if (ev.event !== 'content_block_start' && ev.event !== 'content_block_delta') return;
    let data: any;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (ev.event === 'content_block_start' && data.content_block) this.blocks.set(data.index, { ...data.content_block });
    else if (ev.event === 'content_block_delta') {
      const block = this.blocks.get(data.index);
      if (!block) return;
      if (data.delta?.type === 'text_delta') block.text = String(block.text ?? '') + String(data.delta.text ?? '');
      else if (data.delta?.type === 'input_json_delta') block.json = (block.json ?? '') + String(data.delta.partial_json ?? '');
      else if (data.delta?.type === 'thinking_delta') block.thinking = String(block.thinking ?? '') + String(data.delta.thinking ?? '');
      else if (data.delta?.type === 'signature_delta') block.signature = String(block.signature ?? '') + String(data.delta.signature ?? '');
    }
  }

  /** The answer's content so far. */
  content(): AnthropicBlock[] {
    return [...this.blocks.entries()].sort(([a], [b]) => a - b).map(([, b]) => {
      const { json, ...block } = b;
      return json !== undefined ? { ...block, input: parseInput(json) } : block;
    });
  }
}
