import { toolCallSchema, type ChatMessage, type ChatRequest } from '../llm/types';

/** Template names the router accepts in `prompt.name` (the templates service's rule). */
export const PROMPT_NAME_PATTERN = '^[a-z0-9][a-z0-9._-]{0,127}$';
/** Label names the router accepts in `prompt.label`. */
export const LABEL_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';
/**
 * Session ids: the context service's rule (no braces: they are Redis hash tags; not `.` or `..`:
 * a path segment cannot spell them in normal form).
 */
export const SESSION_ID_PATTERN = '^(?!\\.{1,2}$)[A-Za-z0-9._:-]{1,128}$';

/** The promptmesh extension: render a stored template into the messages. */
export interface PromptRef {
  /** The template's name. */
  name: string;
  /** The label to resolve. @default 'production' (when `version` is not given either) */
  label?: string;
  /** An exact version; wins over `label`. */
  version?: number;
  /** Values for the template's `{{placeholders}}`. @default {} */
  variables?: Record<string, unknown>;
}

/** A chat completions request as the router accepts it: OpenAI's plus the extensions. */
export interface RouterChatRequest extends Omit<ChatRequest, 'model' | 'messages'> {
  /** The model alias or provider model; may be left out when the template names one. */
  model?: string;
  /** May be left out when `prompt` is given. */
  messages?: ChatMessage[];
  prompt?: PromptRef;
  session_id?: string;
}

const contentPart = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string', minLength: 1, maxLength: 64 }, text: { type: 'string' } },
};


const message = {
  type: 'object',
  additionalProperties: false,
  required: ['role'],
  properties: {
    role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
    content: { type: ['string', 'array', 'null'], items: contentPart, maxItems: 256 },
    name: { type: 'string', minLength: 1, maxLength: 256 },
    tool_calls: { type: 'array', maxItems: 128, items: toolCallSchema },
    tool_call_id: { type: 'string', maxLength: 256 },
    refusal: { type: ['string', 'null'] },
    audio: { type: ['object', 'null'] },
    function_call: { type: ['object', 'null'] },
    /** Prompt caching (Anthropic): marks the message's last block; content parts may carry it too. */
    cache_control: { type: 'object' },
  },
};

const num = (min: number, max: number) => ({ type: 'number', minimum: min, maximum: max });

/**
 * The JSON Schema of `POST /v1/chat/completions`: OpenAI's parameters (so every SDK's request
 * passes) plus `prompt` and `session_id`. Unknown fields are rejected by name.
 */
export const chatRequestSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 256 },
    messages: { type: 'array', maxItems: 2048, items: message },
    prompt: {
      type: 'object',
      additionalProperties: false,
      required: ['name'],
      properties: {
        name: { type: 'string', pattern: PROMPT_NAME_PATTERN },
        label: { type: 'string', pattern: LABEL_PATTERN },
        version: { type: 'integer', minimum: 1 },
        variables: { type: 'object', maxProperties: 256 },
      },
    },
    session_id: { type: 'string', pattern: SESSION_ID_PATTERN },
    /** The llm response cache: true caches this request anyway, false bypasses the cache. */
    cache: { type: 'boolean' },
    stream: { type: ['boolean', 'null'] },
    stream_options: {
      type: ['object', 'null'],
      additionalProperties: false,
      properties: { include_usage: { type: 'boolean' }, include_obfuscation: { type: 'boolean' } },
    },
    temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
    top_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
    max_tokens: { type: ['integer', 'null'], minimum: 1 },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
    n: { type: ['integer', 'null'], minimum: 1, maximum: 1 },
    stop: { type: ['string', 'array', 'null'], maxItems: 4, items: { type: 'string' } },
    presence_penalty: { ...num(-2, 2), type: ['number', 'null'] },
    frequency_penalty: { ...num(-2, 2), type: ['number', 'null'] },
    seed: { type: ['integer', 'null'] },
    user: { type: 'string', maxLength: 256 },
    tools: { type: 'array', maxItems: 128, items: { type: 'object' } },
    tool_choice: { type: ['string', 'object'] },
    parallel_tool_calls: { type: 'boolean' },
    response_format: { type: 'object' },
    logit_bias: { type: ['object', 'null'] },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    metadata: { type: ['object', 'null'] },
    store: { type: ['boolean', 'null'] },
    service_tier: { type: ['string', 'null'] },
    reasoning_effort: { type: ['string', 'null'] },
    modalities: { type: ['array', 'null'] },
    prediction: { type: ['object', 'null'] },
    safety_identifier: { type: 'string', maxLength: 256 },
    prompt_cache_key: { type: 'string', maxLength: 256 },
    verbosity: { type: ['string', 'null'] },
  },
} as const;

/** The fields of a request that are promptmesh's own and never go to the provider. */
export const EXTENSION_FIELDS = ['prompt', 'session_id'] as const;
