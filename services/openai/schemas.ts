/**
 * The OpenAI Chat Completions wire format as promptmesh speaks it, router and llm alike: one
 * TypeBox schema per shape, which is at once the TypeScript type (`Static<>`), the route's
 * validation (ajv, through the kit) and, for answers, the response serializer
 * (fast-json-stringify).
 *
 * Limits follow OpenAI's own API where it has them (`n` <= 128, `stop` <= 4 sequences,
 * `messages` <= 2048, `top_logprobs` <= 20), so a request promptmesh accepts is one OpenAI
 * accepts too.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { TEMPLATE_LABEL_PATTERN, TEMPLATE_NAME_PATTERN } from '../kit/template-syntax';
import { ErrorBodySchema } from '../kit/errors';

/**
 * `T | null`, written as a type list (`type: ['number', 'null']`) rather than `anyOf`, so the
 * validation error names the field and both types in one message.
 */
function nullable<T extends TSchema>(schema: T) {
  const type = (schema as { type?: unknown }).type;
  return Type.Unsafe<Static<T> | null>({ ...schema, type: [type, 'null'] });
}

/** The most messages one request may hold (OpenAI's limit). */
export const MAX_MESSAGES = 2048;
/** The most choices one request may ask for (`n`, OpenAI's limit). */
export const MAX_CHOICES = 128;
/** The most stop sequences (OpenAI's limit). */
export const MAX_STOP_SEQUENCES = 4;
/** The most tools, and tool calls in one message. */
export const MAX_TOOLS = 128;
/** The most parts of one message's content array. */
export const MAX_CONTENT_PARTS = 256;
/** Longest client session id (`session_id`, and `{id}` of the sessions API through the router). */
export const MAX_SESSION_ID_CHARS = 128;

/**
 * Session ids a client may choose: letters, digits and `. _ : -`, not `.` or `..` (no request
 * target in normal form can spell them as a path segment), no braces (they are Redis hash tags).
 */
export const SESSION_ID_PATTERN = `^(?!\\.{1,2}$)[A-Za-z0-9._:-]{1,${MAX_SESSION_ID_CHARS}}$`;

/** The message roles the API knows. */
export const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'] as const;
/** One of {@link ROLES}. */
export type Role = (typeof ROLES)[number];

/** A part of a multi-part message; only text is carried through every adapter. */
export const ContentPartSchema = Type.Object(
  { type: Type.String({ minLength: 1, maxLength: 64 }), text: Type.Optional(Type.String()) },
  { additionalProperties: true },
);
/** A part of a multi-part message (image, audio and file parts keep their own fields). */
export type ContentPart = Static<typeof ContentPartSchema> & { [key: string]: unknown };

/**
 * One tool call of an assistant message, as OpenAI requires it. The adapters read
 * `function.name` and `function.arguments`: a call without them is the client's error (a 400
 * naming the field), never a provider failure.
 */
export const ToolCallSchema = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 256 }),
    type: Type.Literal('function'),
    function: Type.Object({ name: Type.String({ minLength: 1, maxLength: 256 }), arguments: Type.String() }),
  },
);
/** One tool call of an assistant message. */
export type ToolCall = Static<typeof ToolCallSchema>;

/**
 * A thinking block of an assistant turn, carried so it can go back unchanged (extension field,
 * the shape LiteLLM gives OpenAI-shaped clients): Claude's `thinking` with the `signature` that
 * proves it (Anthropic, and Bedrock's `reasoningContent.reasoningText`), or `redacted_thinking`
 * with its encrypted `data` (Bedrock's `redactedContent`, base64). A tool-use continuation with
 * thinking on must send the turn's blocks back as they came, or Claude refuses it.
 */
export const ThinkingBlockSchema = Type.Union([
  Type.Object({ type: Type.Literal('thinking'), thinking: Type.String(), signature: Type.String() }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('redacted_thinking'), data: Type.String() }, { additionalProperties: false }),
]);
/** One thinking block of an assistant turn (see {@link ThinkingBlockSchema}). */
export type ThinkingBlock = Static<typeof ThinkingBlockSchema>;
/** The most thinking blocks one assistant message carries. */
export const MAX_THINKING_BLOCKS = 64;

const MessageContent = Type.Unsafe<string | ContentPart[] | null>({
  type: ['string', 'array', 'null'],
  items: ContentPartSchema,
  maxItems: MAX_CONTENT_PARTS,
});

/**
 * One message of a request. Unknown fields are refused by name; that content is present is
 * checked per role by `checkMessages` (messages.ts), as a schema cannot say it.
 */
export const ChatMessageSchema = Type.Object(
  {
    role: Type.Unsafe<Role>({ type: 'string', enum: [...ROLES] }),
    content: Type.Optional(MessageContent),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    tool_calls: Type.Optional(Type.Array(ToolCallSchema, { maxItems: MAX_TOOLS })),
    tool_call_id: Type.Optional(Type.String({ maxLength: 256 })),
    refusal: Type.Optional(nullable(Type.String())),
    audio: Type.Optional(nullable(Type.Object({}, { additionalProperties: true }))),
    function_call: Type.Optional(nullable(Type.Object({}, { additionalProperties: true }))),
    /** Prompt caching (Anthropic): marks the message's last block; content parts may carry it too. */
    cache_control: Type.Optional(Type.Object({}, { additionalProperties: true })),
    /** Assistant messages: the reasoning text as answers give it (extension field; informational, never sent upstream). */
    reasoning_content: Type.Optional(nullable(Type.String())),
    /** Assistant messages: the turn's thinking blocks with their signatures, sent back to Claude unchanged. */
    thinking_blocks: Type.Optional(Type.Array(ThinkingBlockSchema, { maxItems: MAX_THINKING_BLOCKS })),
  },
  { additionalProperties: false },
);

/** One message of a request or a session's history. */
// `content` is typed as present: checkMessages has made sure of it for every role but
// assistant, and the adapters read a missing one as null.
export type ChatMessage = Omit<Static<typeof ChatMessageSchema>, 'content'> & { content: string | ContentPart[] | null };

const anyObject = () => Type.Object({}, { additionalProperties: true });

/**
 * OpenAI's optional parameters, declared once: llm's canonical request and the router's public
 * one both spread them.
 */
const PARAMETERS = {
  /** The llm response cache: true caches this request anyway, false bypasses the cache. */
  cache: Type.Optional(Type.Boolean()),
  stream: Type.Optional(nullable(Type.Boolean())),
  stream_options: Type.Optional(
    nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()), include_obfuscation: Type.Optional(Type.Boolean()) }, { additionalProperties: false })),
  ),
  temperature: Type.Optional(nullable(Type.Number({ minimum: 0, maximum: 2 }))),
  top_p: Type.Optional(nullable(Type.Number({ minimum: 0, maximum: 1 }))),
  max_tokens: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
  max_completion_tokens: Type.Optional(nullable(Type.Integer({ minimum: 1 }))),
  n: Type.Optional(nullable(Type.Integer({ minimum: 1, maximum: MAX_CHOICES }))),
  stop: Type.Optional(Type.Unsafe<string | string[] | null>({ type: ['string', 'array', 'null'], maxItems: MAX_STOP_SEQUENCES, items: { type: 'string' } })),
  presence_penalty: Type.Optional(nullable(Type.Number({ minimum: -2, maximum: 2 }))),
  frequency_penalty: Type.Optional(nullable(Type.Number({ minimum: -2, maximum: 2 }))),
  seed: Type.Optional(nullable(Type.Integer())),
  user: Type.Optional(Type.String({ maxLength: 256 })),
  tools: Type.Optional(Type.Array(anyObject(), { maxItems: MAX_TOOLS })),
  tool_choice: Type.Optional(Type.Unsafe<string | Record<string, unknown>>({ type: ['string', 'object'] })),
  parallel_tool_calls: Type.Optional(Type.Boolean()),
  response_format: Type.Optional(anyObject()),
  logit_bias: Type.Optional(nullable(anyObject())),
  logprobs: Type.Optional(nullable(Type.Boolean())),
  top_logprobs: Type.Optional(nullable(Type.Integer({ minimum: 0, maximum: 20 }))),
  metadata: Type.Optional(nullable(anyObject())),
  store: Type.Optional(nullable(Type.Boolean())),
  service_tier: Type.Optional(nullable(Type.String())),
  reasoning_effort: Type.Optional(nullable(Type.String())),
  modalities: Type.Optional(nullable(Type.Array(Type.Unknown()))),
  prediction: Type.Optional(nullable(anyObject())),
  safety_identifier: Type.Optional(Type.String({ maxLength: 256 })),
  prompt_cache_key: Type.Optional(Type.String({ maxLength: 256 })),
  verbosity: Type.Optional(nullable(Type.String())),
};

const Model = Type.String({ minLength: 1, maxLength: 256 });
const Messages = Type.Array(ChatMessageSchema, { maxItems: MAX_MESSAGES });

/**
 * The canonical request inside promptmesh (what llm serves and the adapters translate).
 * Fields beyond OpenAI's known ones are let through at the top level: llm is internal, and its
 * only public caller (the router) refuses unknown fields by name already.
 */
export const ChatRequestSchema = Type.Object({ model: Model, messages: Messages, ...PARAMETERS }, { additionalProperties: true });
/** The top-level fields of the canonical request, the extension fields included. */
const KNOWN_CHAT_FIELDS: ReadonlySet<string> = new Set(['model', 'messages', ...Object.keys(PARAMETERS), 'prompt', 'session_id']);

/**
 * The fields of a request that neither OpenAI's schema nor promptmesh knows (vLLM's `top_k`,
 * `chat_template_kwargs`, ...): they reach only `passthrough: true` providers.
 */
export function unknownChatFields(request: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of Object.keys(request)) if (!KNOWN_CHAT_FIELDS.has(key) && request[key] !== undefined) out.push(key);
  return out;
}

/**
 * The known field an unknown one is a slip of the keyboard away from (one letter added, dropped,
 * changed or two swapped; names of six letters or more, so short provider fields such as vLLM's
 * `top_k` next to `top_p` stay what they are). The router refuses those by name at once.
 */
export function misspeltChatField(field: string): string | undefined {
  if (field.length < 6) return undefined;
  for (const known of KNOWN_CHAT_FIELDS) if (known.length >= 6 && oneEditApart(field, known)) return known;
  return undefined;
}

function oneEditApart(a: string, b: string): boolean {
  if (a === b || Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  if (a.length === b.length) {
    if (a.slice(i + 1) === b.slice(i + 1)) return true;
    return a[i] === b[i + 1] && a[i + 1] === b[i] && a.slice(i + 2) === b.slice(i + 2);
  }
  return a.length > b.length ? a.slice(i + 1) === b.slice(i) : a.slice(i) === b.slice(i + 1);
}

/** An OpenAI Chat Completions request, in the canonical shape. */
export type ChatRequest = Omit<Static<typeof ChatRequestSchema>, 'messages'> & { messages: ChatMessage[]; [extra: string]: unknown };

/** The promptmesh extension: render a stored template into the messages. */
export const PromptRefSchema = Type.Object(
  {
    /** The template's name. */
    name: Type.String({ pattern: TEMPLATE_NAME_PATTERN }),
    /** The label to resolve; `production` when neither label nor version is given. */
    label: Type.Optional(Type.String({ pattern: TEMPLATE_LABEL_PATTERN })),
    /** An exact version; wins over `label`. */
    version: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Values for the template's `{{placeholders}}`: strings, numbers or booleans. */
    variables: Type.Optional(
      Type.Unsafe<Record<string, string | number | boolean>>({ type: 'object', maxProperties: 256, additionalProperties: { type: ['string', 'number', 'boolean'] } }),
    ),
  },
  { additionalProperties: false },
);
/** `prompt`: which template to render. */
export type PromptRef = Static<typeof PromptRefSchema>;

/**
 * The promptmesh extension fields of the public request, declared once. They never reach a
 * provider (llm drops `cache`, the router resolves `prompt` and `session_id`).
 */
export const EXTENSIONS = {
  prompt: Type.Optional(PromptRefSchema),
  session_id: Type.Optional(Type.String({ pattern: SESSION_ID_PATTERN })),
};
/** The names of {@link EXTENSIONS} plus `cache`: what is stripped before a provider call. */
export const EXTENSION_FIELDS = ['cache', ...Object.keys(EXTENSIONS)] as ReadonlyArray<string>;

/**
 * The router's public request: the canonical one plus {@link EXTENSIONS}, with `model` and
 * `messages` optional (a template may supply them). Fields it does not list go on to llm, which
 * sends them only to `passthrough: true` providers and otherwise refuses them by name (the
 * router cannot tell: the model decides the provider).
 */
export const RouterChatRequestSchema = Type.Object(
  { model: Type.Optional(Model), messages: Type.Optional(Messages), ...EXTENSIONS, ...PARAMETERS },
  { additionalProperties: true },
);
/** A chat completions request as the router accepts it. */
export type RouterChatRequest = Omit<Static<typeof RouterChatRequestSchema>, 'messages'> & { messages?: ChatMessage[] };

// Answers. Every object keeps fields it does not list (additionalProperties: true): a provider's
// newer fields (annotations, audio, usage details) reach the client unchanged.
const open = <P extends Record<string, TSchema>>(properties: P) => Type.Object(properties, { additionalProperties: true });

/** Token counts of an answer. */
export const UsageSchema = open({
  /** Every input token, cached or not (OpenAI's meaning; Anthropic's three input counts summed). */
  prompt_tokens: Type.Number(),
  completion_tokens: Type.Number(),
  total_tokens: Type.Number(),
  /** `cached_tokens`: input tokens read from the provider's prompt cache (part of `prompt_tokens`). */
  prompt_tokens_details: Type.Optional(open({ cached_tokens: Type.Optional(Type.Number()) })),
  /**
   * Input tokens written to the provider's prompt cache (Anthropic's
   * `cache_creation_input_tokens`; part of `prompt_tokens`, billed at `cache_write`).
   */
  cache_creation_input_tokens: Type.Optional(Type.Number()),
});
/** Token counts of an answer (plus whatever the provider adds, e.g. `cost_usd` from llm). */
export type Usage = Static<typeof UsageSchema> & { prompt_tokens_details?: { [detail: string]: unknown }; [extra: string]: unknown };

/** Why a choice ended; null while a stream runs. */
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | null;
const FinishReasonSchema = Type.Unsafe<FinishReason>({ type: ['string', 'null'] });

/** An OpenAI `chat.completion` object. */
export const ChatCompletionSchema = open({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Number(),
  model: Type.String(),
  choices: Type.Array(
    open({
      index: Type.Number(),
      message: open({
        role: Type.Literal('assistant'),
        content: nullable(Type.String()),
        tool_calls: Type.Optional(Type.Array(open({ id: Type.String(), type: Type.Literal('function'), function: open({ name: Type.String(), arguments: Type.String() }) }))),
      }),
      finish_reason: FinishReasonSchema,
      logprobs: Type.Optional(Type.Unsafe<null | Record<string, unknown>>({})),
    }),
  ),
  usage: UsageSchema,
  system_fingerprint: Type.Optional(nullable(Type.String())),
});
/** An OpenAI `chat.completion` object. */
export type ChatCompletion = Omit<Static<typeof ChatCompletionSchema>, 'usage' | 'choices'> & {
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[]; [extra: string]: unknown };
    finish_reason: FinishReason;
    logprobs?: null;
    [extra: string]: unknown;
  }>;
  usage: Usage;
  [extra: string]: unknown;
};

/** An OpenAI `chat.completion.chunk` object (one SSE event of a stream). */
export const ChatCompletionChunkSchema = open({
  id: Type.String(),
  object: Type.Literal('chat.completion.chunk'),
  created: Type.Number(),
  model: Type.String(),
  choices: Type.Array(open({ index: Type.Number(), delta: open({}), finish_reason: FinishReasonSchema })),
  /** Present on the final chunk (OpenAI sends it when `stream_options.include_usage`). */
  usage: Type.Optional(nullable(UsageSchema)),
});
/** An OpenAI `chat.completion.chunk` object. */
export type ChatCompletionChunk = Omit<Static<typeof ChatCompletionChunkSchema>, 'usage' | 'choices'> & {
  choices: Array<{
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: Array<Partial<ToolCall> & { index: number }>; [extra: string]: unknown };
    finish_reason: FinishReason;
    logprobs?: null;
    [extra: string]: unknown;
  }>;
  usage?: Usage | null;
  [extra: string]: unknown;
};

/**
 * What fast-json-stringify writes a completion with: the top-level fields every adapter
 * normalises, typed; `choices` and any other field as the provider gave them (serialized like
 * JSON.stringify), so nothing a provider adds (annotations, audio, logprobs, usage details) is
 * dropped or coerced. No field is required: a serializer must never turn an odd answer into a 500.
 */
const CompletionSerialization = Type.Object(
  {
    id: Type.Optional(Type.String()),
    object: Type.Optional(Type.String()),
    created: Type.Optional(Type.Number()),
    model: Type.Optional(Type.String()),
    choices: Type.Optional(Type.Array(Type.Unknown())),
    usage: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: true },
);

/**
 * The response schemas of `POST /v1/chat/completions` (router and llm): a completion as above,
 * errors in the OpenAI error shape. Streams bypass them (written event by event, see sse.ts).
 */
export const chatResponseSchemas = {
  200: CompletionSerialization,
  '4xx': ErrorBodySchema,
  '5xx': ErrorBodySchema,
};
