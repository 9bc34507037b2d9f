/**
 * Anthropic content blocks and the canonical chat message, owned once: what the router's
 * `/v1/messages` translation (translate.ts), the Anthropic adapter and the Bedrock translation
 * (whose Converse messages follow the same turn model) share. Canonical messages become
 * alternating user/assistant turns ({@link alternatingTurns}); an assistant message becomes its
 * thinking blocks, its content and its `tool_use` blocks ({@link anthropicAssistantBlocks}); an
 * answer's blocks become text, tool calls, reasoning and thinking blocks
 * ({@link readAssistantBlocks}). Thinking blocks keep their `signature` (and redacted ones their
 * `data`) byte for byte: Claude refuses a tool-use continuation whose thinking was altered.
 */
import type { ChatMessage, ThinkingBlock, ToolCall } from '../openai';
import type { AnthropicBlock } from './schemas';

/** A base64 `data:` URL: its media type and data. */
const DATA_URL = /^data:([^;,]+);base64,(.*)$/s;

/** An image URL as an Anthropic image block: a `data:` URL as a base64 source, any other as a url source. */
export function anthropicImageBlock(url: string, extra: Record<string, unknown> = {}): AnthropicBlock {
  const data = DATA_URL.exec(url);
  return { type: 'image', source: data ? { type: 'base64', media_type: data[1], data: data[2] } : { type: 'url', url }, ...extra };
}

/** An Anthropic `thinking` or `redacted_thinking` block as the canonical thinking block, or undefined for any other (or a malformed one). */
export function thinkingBlockOf(block: AnthropicBlock | undefined): ThinkingBlock | undefined {
  if (block?.type === 'thinking' && typeof block.thinking === 'string' && typeof block.signature === 'string') return { type: 'thinking', thinking: block.thinking, signature: block.signature };
  if (block?.type === 'redacted_thinking' && typeof block.data === 'string') return { type: 'redacted_thinking', data: block.data };
  return undefined;
}

/** Canonical thinking blocks as Anthropic blocks (the same fields, copied as they are). */
export function anthropicThinkingBlocks(blocks: readonly ThinkingBlock[] | undefined): AnthropicBlock[] {
  return (blocks ?? []).map((b) => (b.type === 'thinking' ? { type: 'thinking', thinking: b.thinking, signature: b.signature } : { type: 'redacted_thinking', data: b.data }));
}

/**
 * A canonical assistant message as Anthropic blocks: its thinking blocks first (where Claude
 * wants them), then `content` (the caller's blocks for the message's text and parts), then one
 * `tool_use` per tool call, its arguments parsed by `parseArguments` (which decides what broken
 * JSON becomes).
 */
export function anthropicAssistantBlocks(
  message: Pick<ChatMessage, 'tool_calls' | 'thinking_blocks'>,
  content: AnthropicBlock[],
  parseArguments: (args: string, field: string) => unknown,
  field: string,
): AnthropicBlock[] {
  const blocks = [...anthropicThinkingBlocks(message.thinking_blocks), ...content];
  for (const [j, tc] of (message.tool_calls ?? []).entries()) {
    blocks.push({ type: 'tool_use', id: tc.id, name: tc.function.name, input: parseArguments(tc.function.arguments, `${field}.tool_calls[${j}].function.arguments`) });
  }
  return blocks;
}

/** An assistant answer's blocks, read. */
export interface AssistantBlocks {
  /** The text blocks, joined. */
  text: string;
  /** Whether there was a text block at all (an empty one counts). */
  hasText: boolean;
  /** `tool_use` blocks as tool calls (their input as JSON text). */
  toolCalls: ToolCall[];
  /** The thinking text, joined (what answers give as `reasoning_content`). */
  reasoning: string;
  /** The thinking blocks with their signatures, in order. */
  thinkingBlocks: ThinkingBlock[];
  /** The input of the `tool_use` named `answerTool`, when there was one. */
  answerInput?: unknown;
  /** Indexes of blocks of other types (server tool use, citations' blocks, ...). */
  unread: number[];
}

/**
 * Reads an assistant turn's or answer's blocks: text, `tool_use`, `thinking` and
 * `redacted_thinking`. A `tool_use` named `answerTool` (the forced tool that answers a
 * `response_format`) is the answer's input instead of a tool call.
 */
export function readAssistantBlocks(blocks: readonly AnthropicBlock[], answerTool?: string): AssistantBlocks {
  const out: AssistantBlocks = { text: '', hasText: false, toolCalls: [], reasoning: '', thinkingBlocks: [], unread: [] };
  blocks.forEach((b, i) => {
    if (b?.type === 'text') {
      out.hasText = true;
      out.text += String(b.text ?? '');
    } else if (b?.type === 'tool_use' && answerTool !== undefined && b.name === answerTool) {
      out.answerInput = b.input ?? {};
    } else if (b?.type === 'tool_use') {
      out.toolCalls.push({ id: String(b.id ?? ''), type: 'function', function: { name: String(b.name ?? ''), arguments: JSON.stringify(b.input ?? {}) } });
    } else if (b?.type === 'thinking' || b?.type === 'redacted_thinking') {
      if (b.type === 'thinking' && typeof b.thinking === 'string') out.reasoning += b.thinking;
      const block = thinkingBlockOf(b);
      if (block) out.thinkingBlocks.push(block);
    } else {
      out.unread.push(i);
    }
  });
  return out;
}

/** One turn of an alternating conversation (Anthropic's messages, Bedrock Converse's). */
export interface AlternatingTurn<B> {
  role: 'user' | 'assistant';
  content: B[];
}

/** What each canonical role becomes, for {@link alternatingTurns}. */
export interface TurnBuilders<B> {
  /** A system or developer message: collected by the caller (it goes beside the turns). */
  system(message: ChatMessage, field: string): void;
  /** A user message's blocks. */
  user(message: ChatMessage, field: string): B[];
  /** An assistant message's blocks. */
  assistant(message: ChatMessage, field: string): B[];
  /** A tool result's blocks (sent in a user turn). */
  tool(message: ChatMessage, field: string): B[];
  /** The error for a role none of these take. */
  unknownRole(message: ChatMessage, field: string): Error;
}

/**
 * Canonical messages as alternating user/assistant turns: neighbours of one role are merged
 * (both APIs refuse two user turns in a row), tool results go into the user turn, and a message
 * with no blocks adds nothing.
 */
export function alternatingTurns<B>(messages: readonly ChatMessage[], build: TurnBuilders<B>): AlternatingTurn<B>[] {
  const turns: AlternatingTurn<B>[] = [];
  const push = (role: 'user' | 'assistant', blocks: B[]) => {
    if (blocks.length === 0) return;
    const last = turns[turns.length - 1];
    if (last && last.role === role) last.content.push(...blocks);
    else turns.push({ role, content: blocks });
  };
  messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    switch (m.role) {
      case 'system':
      case 'developer':
        build.system(m, field);
        break;
      case 'user':
        push('user', build.user(m, field));
        break;
      case 'assistant':
        push('assistant', build.assistant(m, field));
        break;
      case 'tool':
        push('user', build.tool(m, field));
        break;
      default:
        throw build.unknownRole(m, field);
    }
  });
  return turns;
}
