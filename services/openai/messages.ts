import { badRequest } from '../kit/errors';
import type { ChatMessage, ContentPart } from './schemas';

/**
 * The message rules a schema cannot say: content must be present for every role but assistant
 * (which may carry tool calls instead), a tool message must name the call it answers, and
 * only an assistant message carries thinking blocks.
 * Throws a 400 naming the field (`messages[2].content`). Router and llm both run it, so a
 * request either layout accepts, the other accepts too.
 */
export function checkMessages(messages: ReadonlyArray<ChatMessage>): void {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.role !== 'assistant' && (m.content === undefined || m.content === null)) {
      throw badRequest(`'messages[${i}].content' is required for role '${m.role}'`, `messages[${i}].content`);
    }
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') {
      throw badRequest(`'messages[${i}].tool_call_id' is required for role 'tool'`, `messages[${i}].tool_call_id`);
    }
    if (m.thinking_blocks !== undefined && m.role !== 'assistant') {
      // Thinking belongs to the assistant turn that thought it; nowhere else would Claude take it.
      throw badRequest(`'messages[${i}].thinking_blocks' is only allowed on role 'assistant'`, `messages[${i}].thinking_blocks`);
    }
  }
}

/** The text of a message's content: the string, or its text parts joined (other parts add nothing). */
export function contentText(content: string | ContentPart[] | null | undefined): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) if (typeof part?.text === 'string') out += part.text;
  return out;
}
