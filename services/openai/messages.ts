import { badRequest } from '../kit/errors';
import type { ChatMessage } from './schemas';

/**
 * The message rules a schema cannot say: content must be present for every role but assistant
 * (which may carry tool calls instead), and a tool message must name the call it answers.
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
  }
}
