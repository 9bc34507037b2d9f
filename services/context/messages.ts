import { o200k } from '../kit/o200k';
import { badRequest, compileBodyCheck } from '../kit';
import type { ContextSettings } from './config';
import { MAX_CONTENT_PARTS, MAX_THINKING_BLOCKS, MAX_TOOLS, ROLES, contentText, type ContentPart, type Role, type ThinkingBlock } from '../openai';


/** One text part of a message whose content is an array (OpenAI's content parts). */
export interface TextPart {
  type: 'text';
  text: string;
}

/**
 * One tool call of an assistant message (OpenAI's `tool_calls[]`), stored as given:
 * `{ id, type: "function", function: { name, arguments } }` (other fields are kept too).
 */
export interface StoredToolCall {
  id: string;
  type: string;
  function?: { name: string; arguments: string };
}

/** A message as a caller appends it. */
export interface ContextMessageInput {
  /**
   * The caller's id for the message: an append that carries an id the session already holds
   * skips that message, so a retried append does not duplicate. 1-128 characters of letters,
   * digits and `. _ : -`.
   * @default a random UUID, assigned at append (no deduplication for that message)
   */
  id?: string;
  role: Role;
  /**
   * The text, or an array of content parts (text parts, and other kinds stored as given). Null
   * only for an assistant message that carries `tool_calls`.
   */
  content: string | ContentPart[] | null;
  /** An optional participant name (OpenAI's `name`). */
  name?: string;
  /** Assistant messages: the tools the model called (their results follow as `tool` messages). */
  tool_calls?: StoredToolCall[];
  /** Tool messages: the id of the call in the preceding assistant message this result answers. */
  tool_call_id?: string;
  /**
   * Assistant messages: Claude's thinking blocks with their signatures, stored as given and
   * replayed unchanged (a tool-use continuation needs them). Not counted in `tokens`: Claude
   * leaves earlier turns' thinking out of the context.
   */
  thinking_blocks?: ThinkingBlock[];
}

/** A message as stored and returned: the input plus its id, token count and time of append. */
export interface StoredMessage {
  id: string;
  role: Role;
  content: string | ContentPart[] | null;
  name?: string;
  tool_calls?: StoredToolCall[];
  tool_call_id?: string;
  thinking_blocks?: ThinkingBlock[];
  /** Tokens this message costs in a prompt (see {@link countMessageTokens}), counted at append. */
  tokens: number;
  /** When it was appended, ISO 8601. */
  created_at: string;
}

/**
 * Session ids: 1-200 characters of letters, digits and `. _ : -`, but not `.` or `..` (dot
 * segments: no request target in normal form can name them). No braces (they would break
 * the hash tag). The router stores a client's session under `<api key id>:<session id>`
 * (client ids up to 128, key ids up to 64), so one key never sees another's history.
 */
export const STORED_SESSION_ID_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._:-]{1,200}$/;
/** Message ids: 1-128 characters of letters, digits and `. _ : -`. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** Longest `name` accepted. */
export const MAX_NAME_CHARS = 256;

/**
 * Tokens added per message for the chat format around it (role and separators), following
 * OpenAI's published counting for its chat models (3 per message plus about 1 for the role).
 */
export const MESSAGE_OVERHEAD_TOKENS = 4;
/** Tokens added when a message has a `name`, besides the name's own tokens. */
export const NAME_OVERHEAD_TOKENS = 1;
/**
 * Tokens counted for a content part that is not text (an image, audio, a file). Providers price
 * these by their own rules (OpenAI: 85 tokens for a low-detail image, more for high detail); a
 * flat estimate keeps a large inline image from being tokenised as text.
 */
export const NON_TEXT_PART_TOKENS = 256;
/** Longest `tool_call_id`. */
export const MAX_TOOL_CALL_ID_CHARS = 256;

/**
 * The roles a window may start with: a turn begins with them. A window that started at an
 * assistant or tool message could hold a tool result without the call it answers, which the
 * providers refuse.
 */
export const TURN_START_ROLES: ReadonlySet<Role> = new Set(['system', 'developer', 'user']);

// Text that happens to contain a special token such as <|endoftext|> is counted as plain text
// rather than rejected: history is data, never control.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/** Tokens of a text with the process's o200k_base encoder (services/kit/o200k.ts; the context service loads it at start). */
function countTokens(text: string, options: typeof PLAIN_TEXT): number {
  return o200k().countTokens(text, options);
}

/**
 * Tokens a message costs in a prompt, counted with the o200k_base encoding (GPT-4o and later)
 * plus {@link MESSAGE_OVERHEAD_TOKENS}. Models of other vendors are counted with the same
 * encoding as an approximation (docs/context.md).
 */
export function countMessageTokens(message: Pick<ContextMessageInput, 'content' | 'name' | 'tool_calls' | 'tool_call_id'>): number {
  let tokens = MESSAGE_OVERHEAD_TOKENS + countTokens(contentText(message.content), PLAIN_TEXT);
  if (Array.isArray(message.content)) for (const p of message.content) if (typeof p.text !== 'string') tokens += NON_TEXT_PART_TOKENS;
  if (message.name) tokens += NAME_OVERHEAD_TOKENS + countTokens(message.name, PLAIN_TEXT);
  // A tool call costs its function name and arguments (and the framing, counted as its JSON).
  if (message.tool_calls && message.tool_calls.length > 0) tokens += countTokens(JSON.stringify(message.tool_calls), PLAIN_TEXT);
  if (message.tool_call_id) tokens += countTokens(message.tool_call_id, PLAIN_TEXT);
  return tokens;
}

/** The JSON Schema of an append body, with the limits of `settings`. */
export function appendBodySchema(settings: Pick<ContextSettings, 'maxAppend' | 'maxContentChars'>): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['messages'],
    properties: {
      messages: {
        type: 'array',
        minItems: 1,
        maxItems: settings.maxAppend,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['role'],
          properties: {
            id: { type: 'string', pattern: MESSAGE_ID_PATTERN.source },
            role: { type: 'string', enum: [...ROLES] },
            content: {
              anyOf: [
                { type: 'string', maxLength: settings.maxContentChars },
                {
                  type: 'array',
                  minItems: 1,
                  maxItems: MAX_CONTENT_PARTS,
                  items: {
                    // Parts other than text (images, audio, files) are stored as given.
                    type: 'object',
                    required: ['type'],
                    properties: {
                      type: { type: 'string', minLength: 1, maxLength: 64 },
                      text: { type: 'string', maxLength: settings.maxContentChars },
                    },
                  },
                },
                { type: 'null' },
              ],
            },
            name: { type: 'string', minLength: 1, maxLength: MAX_NAME_CHARS },
            tool_calls: {
              type: 'array',
              maxItems: MAX_TOOLS,
              items: {
                type: 'object',
                required: ['id', 'type'],
                properties: {
                  id: { type: 'string', minLength: 1, maxLength: MAX_TOOL_CALL_ID_CHARS },
                  type: { type: 'string', minLength: 1, maxLength: 64 },
                  function: {
                    type: 'object',
                    required: ['name', 'arguments'],
                    properties: { name: { type: 'string', minLength: 1, maxLength: 256 }, arguments: { type: 'string' } },
                  },
                },
              },
            },
            tool_call_id: { type: 'string', minLength: 1, maxLength: MAX_TOOL_CALL_ID_CHARS },
            thinking_blocks: {
              type: 'array',
              maxItems: MAX_THINKING_BLOCKS,
              items: {
                type: 'object',
                required: ['type'],
                properties: {
                  type: { type: 'string', enum: ['thinking', 'redacted_thinking'] },
                  thinking: { type: 'string', maxLength: settings.maxContentChars },
                  signature: { type: 'string' },
                  data: { type: 'string' },
                },
              },
            },
          },
        },
      },
    },
  };
}

/** Checks an append body, throwing a 400 {@link ApiError} that names the field at fault. */
export type AppendValidator = (body: unknown) => { messages: ContextMessageInput[] };

/**
 * Builds the validator the core runs on every append (in-process callers get the same 400s
 * as HTTP callers): the schema, then what a schema cannot say (total size of text parts, an
 * id given twice in one append).
 */
export function createAppendValidator(settings: Pick<ContextSettings, 'maxAppend' | 'maxContentChars'>): AppendValidator {
  const check = compileBodyCheck<{ messages: ContextMessageInput[] }>(appendBodySchema(settings));
  return (body) => {
    const { messages } = check(body);
    const seen = new Map<string, number>();
    messages.forEach((m, i) => {
      // What the chat APIs require of a message beyond its shape.
      const calls = m.tool_calls !== undefined && m.tool_calls.length > 0;
      if (m.tool_calls !== undefined && m.role !== 'assistant') {
        throw badRequest(`'messages[${i}].tool_calls' is only allowed on role 'assistant'`, `messages[${i}].tool_calls`);
      }
      if (m.thinking_blocks !== undefined && m.role !== 'assistant') {
        throw badRequest(`'messages[${i}].thinking_blocks' is only allowed on role 'assistant'`, `messages[${i}].thinking_blocks`);
      }
      (m.thinking_blocks ?? []).forEach((b, j) => {
        // A thinking block needs its signature, a redacted one its data: else Claude refuses the replay.
        const missing = b.type === 'thinking' ? (['thinking', 'signature'] as const).find((f) => typeof b[f] !== 'string') : typeof b.data !== 'string' ? 'data' : undefined;
        if (missing) throw badRequest(`'messages[${i}].thinking_blocks[${j}].${missing}' is required for a '${b.type}' block`, `messages[${i}].thinking_blocks[${j}].${missing}`);
      });
      if (m.tool_call_id !== undefined && m.role !== 'tool') {
        throw badRequest(`'messages[${i}].tool_call_id' is only allowed on role 'tool'`, `messages[${i}].tool_call_id`);
      }
      if (m.role === 'tool' && m.tool_call_id === undefined) {
        throw badRequest(`'messages[${i}].tool_call_id' is required for role 'tool'`, `messages[${i}].tool_call_id`);
      }
      if ((m.content === undefined || m.content === null) && !(m.role === 'assistant' && calls)) {
        throw badRequest(`'messages[${i}].content' is required (it may be null only for an assistant message with tool_calls)`, `messages[${i}].content`);
      }
      if (Array.isArray(m.content)) {
        const chars = contentText(m.content).length;
        if (chars > settings.maxContentChars) {
          throw badRequest(
            `'messages[${i}].content' is ${chars} characters long; the limit is ${settings.maxContentChars}`,
            `messages[${i}].content`,
          );
        }
      }
      if (m.id !== undefined) {
        const before = seen.get(m.id);
        if (before !== undefined) {
          throw badRequest(`'messages[${i}].id' repeats the id of messages[${before}]`, `messages[${i}].id`);
        }
        seen.set(m.id, i);
      }
    });
    return { messages };
  };
}

/** Throws a 400 naming `session_id` unless `id` is a valid session id. */
export function checkSessionId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !STORED_SESSION_ID_PATTERN.test(id)) {
    throw badRequest(
      `'session_id' must be 1 to 200 characters of letters, digits, '.', '_', ':' or '-' (and not '.' or '..')`,
      'session_id',
      'invalid_session_id',
    );
  }
}
