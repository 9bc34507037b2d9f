import Ajv, { type ValidateFunction } from 'ajv';
import type * as O200k from 'gpt-tokenizer/encoding/o200k_base';
import { badRequest, instancePathToParam, validationError } from '../kit';
import type { ContextSettings } from './config';

/** Roles a stored message may have (those of the OpenAI chat completions API). */
export const MESSAGE_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;
/** The role of a stored message. */
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/** One text part of a message whose content is an array (OpenAI's content parts). */
export interface TextPart {
  type: 'text';
  text: string;
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
  role: MessageRole;
  /** The text, or an array of text parts. */
  content: string | TextPart[];
  /** An optional participant name (OpenAI's `name`). */
  name?: string;
}

/** A message as stored and returned: the input plus its id, token count and time of append. */
export interface StoredMessage {
  id: string;
  role: MessageRole;
  content: string | TextPart[];
  name?: string;
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
export const SESSION_ID_PATTERN = /^(?!\.{1,2}$)[A-Za-z0-9._:-]{1,200}$/;
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

// Text that happens to contain a special token such as <|endoftext|> is counted as plain text
// rather than rejected: history is data, never control.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/** The text of a message's content: the string, or its text parts joined. */
export function contentText(content: string | TextPart[]): string {
  return typeof content === 'string' ? content : content.map((p) => p.text).join('');
}

let o200k: typeof O200k | undefined;

/** The o200k_base encoder, loaded on the first count and kept (its tables cost ~70 MB). */
function countTokens(text: string, options: Parameters<typeof O200k.countTokens>[1]): number {
  o200k ??= require('gpt-tokenizer/encoding/o200k_base') as typeof O200k;
  return o200k.countTokens(text, options);
}

/**
 * Tokens a message costs in a prompt, counted with the o200k_base encoding (GPT-4o and later)
 * plus {@link MESSAGE_OVERHEAD_TOKENS}. Models of other vendors are counted with the same
 * encoding as an approximation (docs/context.md).
 */
export function countMessageTokens(message: Pick<ContextMessageInput, 'content' | 'name'>): number {
  let tokens = MESSAGE_OVERHEAD_TOKENS + countTokens(contentText(message.content), PLAIN_TEXT);
  if (message.name) tokens += NAME_OVERHEAD_TOKENS + countTokens(message.name, PLAIN_TEXT);
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
          required: ['role', 'content'],
          properties: {
            id: { type: 'string', pattern: MESSAGE_ID_PATTERN.source },
            role: { type: 'string', enum: [...MESSAGE_ROLES] },
            content: {
              anyOf: [
                { type: 'string', maxLength: settings.maxContentChars },
                {
                  type: 'array',
                  minItems: 1,
                  items: {
                    type: 'object',
                    additionalProperties: false,
                    required: ['type', 'text'],
                    properties: {
                      type: { type: 'string', enum: ['text'] },
                      text: { type: 'string', maxLength: settings.maxContentChars },
                    },
                  },
                },
              ],
            },
            name: { type: 'string', minLength: 1, maxLength: MAX_NAME_CHARS },
          },
        },
      },
    },
  };
}

const ajv = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false });

/** Checks an append body, throwing a 400 {@link ApiError} that names the field at fault. */
export type AppendValidator = (body: unknown) => { messages: ContextMessageInput[] };

/**
 * Builds the validator the core runs on every append (in-process callers get the same 400s
 * as HTTP callers): the schema, then what a schema cannot say (total size of text parts, an
 * id given twice in one append).
 */
export function createAppendValidator(settings: Pick<ContextSettings, 'maxAppend' | 'maxContentChars'>): AppendValidator {
  const validate: ValidateFunction = ajv.compile(appendBodySchema(settings));
  return (body) => {
    if (!validate(body)) {
      const errors = (validate.errors ?? []).filter((e) => e.keyword !== 'anyOf');
      // A failed anyOf (content: string or parts) reports each branch; the deepest error says
      // most precisely what is wrong, and a type error on `content` itself means neither fits.
      if (errors.length > 0) {
        const deepest = errors.reduce((a, b) => (b.instancePath.length > a.instancePath.length ? b : a));
        if (/^\/messages\/\d+\/content$/.test(deepest.instancePath) && deepest.keyword === 'type') {
          const param = instancePathToParam(deepest.instancePath);
          throw badRequest(`'${param}' must be a string or an array of text parts`, param);
        }
        throw validationError([deepest], 'body');
      }
      throw validationError(validate.errors ?? [], 'body');
    }
    const { messages } = body as { messages: ContextMessageInput[] };
    const seen = new Map<string, number>();
    messages.forEach((m, i) => {
      if (typeof m.content !== 'string') {
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
  if (typeof id !== 'string' || !SESSION_ID_PATTERN.test(id)) {
    throw badRequest(
      `'session_id' must be 1 to 200 characters of letters, digits, '.', '_', ':' or '-' (and not '.' or '..')`,
      'session_id',
      'invalid_session_id',
    );
  }
}
