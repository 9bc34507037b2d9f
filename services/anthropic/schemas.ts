/**
 * The Anthropic Messages API wire format as the router accepts it on `POST /v1/messages`: one
 * TypeBox schema (the TypeScript type, the route's validation). Content blocks, tools and
 * `thinking` are kept open (`additionalProperties: true`): to an Anthropic provider they pass
 * through unchanged, so a block type Anthropic adds later still works there; the translation to
 * other providers (translate.ts) refuses what it cannot carry, naming the field.
 */
import { Type, type Static } from 'typebox';
import { EXTENSIONS, MAX_MESSAGES, MAX_TOOLS } from '../openai';

const open = () => Type.Object({ type: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: true });

/** One message: a user or assistant turn, its content a string or a list of content blocks. */
export const AnthropicMessageSchema = Type.Object(
  {
    // An enum (not a union of literals), so the 400 lists the two roles.
    role: Type.Unsafe<'user' | 'assistant'>({ type: 'string', enum: ['user', 'assistant'] }),
    content: Type.Union([Type.String(), Type.Array(open(), { maxItems: 1024 })]),
  },
  { additionalProperties: false },
);
/** A message of the Messages API. */
export type AnthropicMessage = Static<typeof AnthropicMessageSchema>;
/** A content block (`text`, `image`, `tool_use`, `tool_result`, `thinking`, ...), fields as Anthropic defines them. */
export type AnthropicBlock = { type: string; [field: string]: unknown };

const PARAMETERS = {
  max_tokens: Type.Integer({ minimum: 1 }),
  system: Type.Optional(Type.Union([Type.String(), Type.Array(open(), { maxItems: 1024 })])),
  metadata: Type.Optional(Type.Object({ user_id: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])) }, { additionalProperties: false })),
  stop_sequences: Type.Optional(Type.Array(Type.String(), { maxItems: 1024 })),
  stream: Type.Optional(Type.Boolean()),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_k: Type.Optional(Type.Integer({ minimum: 0 })),
  tools: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }), { maxItems: MAX_TOOLS })),
  tool_choice: Type.Optional(open()),
  thinking: Type.Optional(open()),
  /**
   * Anthropic's structured outputs and effort: `format` (`{ type: 'json_schema', schema }`, the
   * answer is a JSON text block) and `effort`. Open like `thinking`: to an Anthropic provider it
   * passes through; translated, `format` is `response_format` and `effort` `reasoning_effort`.
   */
  output_config: Type.Optional(Type.Object({}, { additionalProperties: true })),
  service_tier: Type.Optional(Type.String()),
  container: Type.Optional(Type.Unknown()),
  mcp_servers: Type.Optional(Type.Array(Type.Unknown())),
  context_management: Type.Optional(Type.Unknown()),
  /** promptmesh's llm response cache, as on chat: true caches anyway, false bypasses. */
  cache: Type.Optional(Type.Boolean()),
};

/**
 * The Messages request the llm service serves (internal): Anthropic's fields, nothing of
 * promptmesh's but `cache`.
 */
export const MessagesRequestSchema = Type.Object(
  { model: Type.String({ minLength: 1, maxLength: 256 }), messages: Type.Array(AnthropicMessageSchema, { minItems: 1, maxItems: MAX_MESSAGES }), ...PARAMETERS },
  { additionalProperties: false },
);
/** A Messages API request (llm's internal shape). */
export type MessagesRequest = Static<typeof MessagesRequestSchema>;

/**
 * The router's public `POST /v1/messages` body: Anthropic's request plus promptmesh's `prompt`
 * and `session_id` (as on chat), `model` and `messages` optional when a template gives them.
 * Unknown fields are a 400 naming the field.
 */
export const RouterMessagesRequestSchema = Type.Object(
  { model: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })), messages: Type.Optional(Type.Array(AnthropicMessageSchema, { maxItems: MAX_MESSAGES })), ...EXTENSIONS, ...PARAMETERS },
  { additionalProperties: false },
);
/** A Messages request as the router accepts it. */
export type RouterMessagesRequest = Static<typeof RouterMessagesRequestSchema>;

/** The header Anthropic's clients turn beta features on with; passed on to Anthropic providers. */
export const ANTHROPIC_BETA_HEADER = 'anthropic-beta';
/** What an `anthropic-beta` value may be: comma-separated beta names (at most 1024 characters). */
export const ANTHROPIC_BETA_PATTERN = '^(?=.{1,1024}$)[A-Za-z0-9._-]+(?: *, *[A-Za-z0-9._-]+)*$';

/** The answer of the Messages API (`type: "message"`). */
export interface AnthropicResponse {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: AnthropicBlock[];
  stop_reason: string | null;
  stop_sequence: string | null;
  usage: AnthropicUsage;
  [field: string]: unknown;
}

/** Anthropic's token counts: `input_tokens` excludes the cached ones. */
export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  [field: string]: unknown;
}

/** One server-sent event of a Messages stream, its data the JSON text as it goes on the wire. */
export interface AnthropicEvent {
  event: string;
  data: string;
}
