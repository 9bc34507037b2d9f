/**
 * The Anthropic adapter (Messages API). Requests go from the OpenAI shape to Messages:
 * system/developer messages become `system`, consecutive messages of one role are merged,
 * `max_tokens` is always sent (when the client sets none: the model's max output, see
 * `model-limits.ts`, so answers are never cut short by a default of ours), `stop` becomes
 * `stop_sequences`, tools and tool results are translated. `cache_control` (prompt caching)
 * reaches Anthropic wherever the client put it: on a content part, on a message (its last
 * block), on a system message (then `system` is sent as blocks) or on a tool. Answers come back as
 * `chat.completion`, and the event stream (message_start, content_block_*, message_delta,
 * message_stop) becomes OpenAI chunks: a first chunk with the role, text deltas as content,
 * tool_use blocks as tool_calls, and a final chunk with the mapped finish_reason and usage.
 *
 * Faithful both ways (docs/llm.md, "Anthropic"): `parallel_tool_calls: false` becomes
 * `disable_parallel_tool_use`; `response_format` (`json_schema`, `json_object`) is answered
 * through one forced tool whose input schema is the client's schema, and its input comes back
 * as the message's JSON text (finish `stop`); `reasoning_effort` becomes a thinking budget
 * ({@link THINKING_BUDGETS}) and thinking comes back as `reasoning_content`, with the blocks and
 * their signatures as `thinking_blocks` (in a stream: one delta per finished block), which an
 * assistant message sends back to Claude unchanged (services/anthropic/blocks.ts). What Anthropic has
 * no counterpart for (`n` > 1, `logprobs`, penalties, `seed`, `logit_bias`, ...) is a 400
 * naming the field, never dropped.
 *
 * `baseUrl` is `https://api.anthropic.com` (or with `/v1`); the key goes in `x-api-key`;
 * `anthropic-version` is {@link DEFAULT_ANTHROPIC_VERSION} unless `provider.headers` sets it.
 */
import { ANTHROPIC_FALLBACK_MAX_TOKENS, maxOutputTokensOf } from '../../model-limits';
import { ProviderError, type CallOptions, type ProviderAdapter, type ProviderConfig } from '../../types';
import {
  contentText,
  parseSse,
  type ChatCompletion,
  type ChatCompletionChunk,
  type ChatMessage,
  type ChatRequest,
  type ContentPart,
  type FinishReason,
  type ThinkingBlock,
  type ToolCall,
  type Usage,
} from '../../../openai';
import { alternatingTurns, anthropicAssistantBlocks, anthropicImageBlock, readAssistantBlocks, type AnthropicBlock } from '../../../anthropic';
import { passthroughOf, type PassthroughSink } from '../../passthrough';
import { ProviderTransport, errorFromResponse, requireEventStream, readJson, transportError, upstreamText, type ProviderResponse } from '../transport';

/**
 * `max_tokens` when the request sets neither `max_tokens` nor `max_completion_tokens` and the
 * model's max output is unknown (for known models, and those the providers file gives a
 * `maxOutputTokens`, that figure is sent instead).
 */
export const DEFAULT_MAX_TOKENS = ANTHROPIC_FALLBACK_MAX_TOKENS;
/** The API version sent unless the provider's headers set `anthropic-version`. */
export const DEFAULT_ANTHROPIC_VERSION = '2023-06-01';

/**
 * Thinking budgets (tokens) for OpenAI's `reasoning_effort`; `none` sends no thinking. The budget
 * is kept below `max_tokens` (which, as OpenAI's `max_completion_tokens`, includes reasoning).
 */
export const THINKING_BUDGETS = { minimal: 1024, low: 2048, medium: 8192, high: 24576 } as const;
/** Anthropic's smallest thinking budget. */
const MIN_THINKING_BUDGET = 1024;
/** The forced tool's name when `response_format` is `json_object` (a `json_schema` names its own). */
export const JSON_RESPONSE_TOOL = 'json_response';

type Block = AnthropicBlock;

/** A 400 for a field Anthropic cannot take, naming it. */
function untranslatable(param: string, why: string): ProviderError {
  return new ProviderError('bad_request', `'${param}' ${why}`, undefined, undefined, param);
}

/**
 * Refuses the OpenAI parameters Anthropic has no counterpart for, when they would change the
 * answer (a default value such as `n: 1`, `logprobs: false` or a zero penalty is fine).
 */
function refuseUntranslatable(request: ChatRequest): void {
  const set = (v: unknown) => v !== undefined && v !== null;
  if (set(request.n) && request.n !== 1) throw untranslatable('n', 'above 1 cannot be sent to Anthropic (one answer per request)');
  if (request.logprobs === true) throw untranslatable('logprobs', 'are not available from Anthropic');
  if (set(request.top_logprobs) && request.top_logprobs !== 0) throw untranslatable('top_logprobs', 'are not available from Anthropic');
  for (const f of ['presence_penalty', 'frequency_penalty'] as const) {
    if (set(request[f]) && request[f] !== 0) throw untranslatable(f, 'has no counterpart at Anthropic');
  }
  if (set(request.logit_bias) && Object.keys(request.logit_bias as object).length > 0) throw untranslatable('logit_bias', 'has no counterpart at Anthropic');
  if (set(request.seed)) throw untranslatable('seed', 'has no counterpart at Anthropic');
  if (set(request.modalities) && !(Array.isArray(request.modalities) && request.modalities.every((m) => m === 'text'))) throw untranslatable('modalities', 'other than text are not available from Anthropic');
  for (const f of ['audio', 'prediction', 'service_tier', 'verbosity', 'prompt_cache_key', 'web_search_options'] as const) {
    if (set(request[f])) throw untranslatable(f, 'has no counterpart at Anthropic');
  }
  if (request.store === true) throw untranslatable('store', 'is OpenAI stored completions; Anthropic has none');
  if (set(request.metadata) && Object.keys(request.metadata as object).length > 0) throw untranslatable('metadata', 'is OpenAI stored-completion metadata; Anthropic has none (use user)');
}

/** The forced tool that carries a `response_format`, or undefined for plain text. */
function jsonToolOf(request: ChatRequest): { name: string; schema: unknown; description?: string } | undefined {
  const format = request.response_format as { type?: string; json_schema?: { name?: string; schema?: unknown; description?: string } } | undefined;
  if (!format || format.type === undefined || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { name: JSON_RESPONSE_TOOL, schema: { type: 'object', additionalProperties: true }, description: 'Answer with a JSON object.' };
  if (format.type === 'json_schema') {
    const js = format.json_schema;
    if (!js || typeof js.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(js.name)) {
      throw untranslatable('response_format.json_schema.name', 'must be 1-64 letters, digits, _ or - (it names the tool Anthropic answers through)');
    }
    const schema = js.schema ?? { type: 'object', additionalProperties: true };
    if ((schema as { type?: unknown }).type !== 'object') throw untranslatable('response_format.json_schema.schema', "must describe an object (type: 'object') for Anthropic");
    return { name: js.name, schema, description: js.description ?? 'Answer with JSON that matches this schema.' };
  }
  throw untranslatable('response_format.type', `'${format.type}' is not one of text, json_object, json_schema`);
}

/** The thinking budget `reasoning_effort` asks for within `maxTokens`, or undefined for none. */
function thinkingBudget(effort: unknown, maxTokens: number): number | undefined {
  if (effort === undefined || effort === null || effort === 'none') return undefined;
  const budget = THINKING_BUDGETS[effort as keyof typeof THINKING_BUDGETS];
  if (budget === undefined) throw untranslatable('reasoning_effort', `'${String(effort)}' is not one of none, ${Object.keys(THINKING_BUDGETS).join(', ')}`);
  if (maxTokens <= MIN_THINKING_BUDGET) throw untranslatable('max_tokens', `must be above ${MIN_THINKING_BUDGET} with reasoning_effort on Anthropic (it includes the thinking)`);
  return Math.min(budget, maxTokens - 1);
}
/** Anthropic stop reasons as OpenAI finish reasons. */
export function finishReasonOf(stopReason: unknown): FinishReason {
  switch (stopReason) {
    case 'end_turn':
    case 'stop_sequence':
    case 'pause_turn':
      return 'stop';
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    case null:
    case undefined:
      return null;
    default:
      return 'stop';
  }
}

/** The prompt-caching marker of a part, message or tool, carried to Anthropic as it came. */
function cacheControlOf(holder: unknown): Record<string, unknown> {
  const cc = (holder as { cache_control?: unknown } | null | undefined)?.cache_control;
  return cc && typeof cc === 'object' && !Array.isArray(cc) ? { cache_control: cc } : {};
}

function partToBlock(part: ContentPart, field: string): Block {
  if (part.type === 'text') return { type: 'text', text: part.text ?? '', ...cacheControlOf(part) };
  if (part.type === 'image_url') {
    const url = typeof part.image_url === 'string' ? part.image_url : (part.image_url as { url?: string } | undefined)?.url;
    if (typeof url === 'string') return anthropicImageBlock(url, cacheControlOf(part));
  }
  throw new ProviderError('bad_request', `${field}: content part type '${part.type}' is not supported by Anthropic`, undefined, undefined, `${field}.type`);
}

function contentBlocks(content: ChatMessage['content'], field: string): Block[] {
  if (content === null || content === undefined) return [];
  if (typeof content === 'string') return content.length > 0 ? [{ type: 'text', text: content }] : [];
  return content.map((p, i) => partToBlock(p, `${field}[${i}]`));
}

/** A message-level `cache_control` marks the message's last block (where Anthropic wants it). */
function markLast(blocks: Block[], message: ChatMessage): Block[] {
  const marker = cacheControlOf(message);
  if (blocks.length > 0 && marker.cache_control && blocks[blocks.length - 1]!.cache_control === undefined) {
    blocks[blocks.length - 1] = { ...blocks[blocks.length - 1]!, ...marker };
  }
  return blocks;
}

function parseArguments(args: string, field: string): unknown {
  if (!args) return {};
  try {
    return JSON.parse(args);
  } catch {
    throw new ProviderError('bad_request', `${field}: tool call arguments are not valid JSON`);
  }
}

/** The Messages API body for a canonical request. */
export function toAnthropicBody(request: ChatRequest, stream: boolean, provider?: ProviderConfig): Record<string, unknown> {
  refuseUntranslatable(request);
  const system: string[] = [];
  /** The same system text as blocks, sent instead when one of them carries cache_control. */
  const systemBlocks: Block[] = [];
  const messages = alternatingTurns<Block>(request.messages, {
    system(m) {
      system.push(contentText(m.content));
      // Only text goes into system; the parts keep their cache_control.
      if (typeof m.content === 'string') systemBlocks.push(...markLast(m.content ? [{ type: 'text', text: m.content }] : [], m));
      else if (Array.isArray(m.content)) {
        systemBlocks.push(...markLast(m.content.filter((p) => typeof p?.text === 'string' && p.text !== '').map((p) => ({ type: 'text', text: p.text!, ...cacheControlOf(p) })), m));
      }
    },
    user: (m, field) => markLast(contentBlocks(m.content, `${field}.content`), m),
    assistant: (m, field) => markLast(anthropicAssistantBlocks(m, contentBlocks(m.content, `${field}.content`), parseArguments, field), m),
    tool: (m) => [{ type: 'tool_result', tool_use_id: m.tool_call_id ?? '', content: contentText(m.content), ...cacheControlOf(m) }],
    unknownRole: (m, field) => new ProviderError('bad_request', `${field}.role: '${String(m.role)}' is not supported`),
  });
  if (messages.length === 0) throw new ProviderError('bad_request', 'messages: Anthropic needs at least one user or assistant message');

  const body: Record<string, unknown> = {
    model: request.model,
    max_tokens: request.max_completion_tokens ?? request.max_tokens ?? maxOutputTokensOf(provider, request.model) ?? DEFAULT_MAX_TOKENS,
    messages,
  };
  // A plain string unless prompt caching asks for blocks (then each keeps its marker).
  const systemText = system.filter((s) => s.length > 0).join('\n\n');
  if (systemBlocks.some((b) => b.cache_control !== undefined)) body.system = systemBlocks;
  else if (systemText) body.system = systemText;
  // OpenAI's temperature runs 0..2, Anthropic's 0..1.
  if (typeof request.temperature === 'number') body.temperature = Math.min(1, Math.max(0, request.temperature));
  if (typeof request.top_p === 'number') body.top_p = request.top_p;
  if (typeof request.top_k === 'number') body.top_k = request.top_k;
  if (request.stop !== undefined && request.stop !== null) body.stop_sequences = (typeof request.stop === 'string' ? [request.stop] : request.stop).filter((s) => s.length > 0);
  // OpenAI's end-user id (`safety_identifier` is its newer name) is Anthropic's metadata.user_id.
  const user = typeof request.user === 'string' ? request.user : request.safety_identifier;
  if (typeof user === 'string') body.metadata = { user_id: user };
  if (Array.isArray(request.tools) && request.tools.length > 0) {
    body.tools = request.tools.map((t, i) => {
      if ((t as { type?: unknown }).type !== undefined && (t as { type?: unknown }).type !== 'function') {
        throw untranslatable(`tools[${i}].type`, `'${String((t as { type?: unknown }).type)}' tools cannot be sent to Anthropic (function tools can)`);
      }
      const fn = (t as { function?: { name?: string; description?: string; parameters?: unknown } }).function;
      if (!fn?.name) throw new ProviderError('bad_request', `tools[${i}].function.name: required`, undefined, undefined, `tools[${i}].function.name`);
      return { name: fn.name, ...(fn.description ? { description: fn.description } : {}), input_schema: fn.parameters ?? { type: 'object', properties: {} }, ...cacheControlOf(t) };
    });
  }
  const choice = request.tool_choice as string | { type?: string; function?: { name?: string } } | undefined;
  let toolChoice: Record<string, unknown> | undefined;
  if (choice === 'auto') toolChoice = { type: 'auto' };
  else if (choice === 'required') toolChoice = { type: 'any' };
  else if (choice === 'none') toolChoice = { type: 'none' };
  else if (choice && typeof choice === 'object' && choice.type === 'function' && choice.function?.name) toolChoice = { type: 'tool', name: choice.function.name };
  else if (choice !== undefined && choice !== null) throw untranslatable('tool_choice', 'must be auto, required, none or a function for Anthropic');
  if (request.parallel_tool_calls === false && Array.isArray(body.tools)) {
    // Anthropic says it on the tool choice (auto unless the client chose).
    toolChoice = { ...(toolChoice ?? { type: 'auto' }), disable_parallel_tool_use: true };
  }

  const json = jsonToolOf(request);
  if (json) {
    if (Array.isArray(body.tools)) throw untranslatable('response_format', 'cannot be combined with tools on Anthropic (it is answered through a forced tool)');
    body.tools = [{ name: json.name, description: json.description, input_schema: json.schema }];
    toolChoice = { type: 'tool', name: json.name };
  }
  const budget = thinkingBudget(request.reasoning_effort, body.max_tokens as number);
  if (budget !== undefined) {
    // Anthropic thinks only with tool_choice auto or none.
    if (json) throw untranslatable('response_format', 'cannot be combined with reasoning_effort on Anthropic (a forced tool cannot think)');
    if (toolChoice && toolChoice.type !== 'auto' && toolChoice.type !== 'none') throw untranslatable('tool_choice', 'must be auto or none with reasoning_effort on Anthropic');
    body.thinking = { type: 'enabled', budget_tokens: budget };
  }
  if (toolChoice) body.tool_choice = toolChoice;
  if (stream) body.stream = true;
  return body;
}

/**
 * Anthropic usage in the OpenAI shape: `prompt_tokens` sums the three input counts (Anthropic's
 * `input_tokens` leaves the cached ones out), cache reads become
 * `prompt_tokens_details.cached_tokens` as at OpenAI, cache writes stay
 * `cache_creation_input_tokens`; each is costed at its own rate.
 */
export function usageOf(u: any): Usage {
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
  const read = n(u?.cache_read_input_tokens);
  const write = n(u?.cache_creation_input_tokens);
  const prompt = n(u?.input_tokens) + write + read;
  const completion = n(u?.output_tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: read }, cache_creation_input_tokens: write };
}

/** A Messages API response as a `chat.completion`. */
export function toCompletion(provider: ProviderConfig, request: ChatRequest, msg: any): ChatCompletion {
  if (!msg || typeof msg !== 'object' || !Array.isArray(msg.content)) {
    throw new ProviderError('malformed', `${provider.name}: response has no content`);
  }
  const jsonTool = request.response_format ? jsonToolOf(request)?.name : undefined;
  const read = readAssistantBlocks(msg.content, jsonTool);
  const { text, reasoning, toolCalls } = read;
  const json = read.answerInput !== undefined ? JSON.stringify(read.answerInput) : undefined;
  // Thinking, as OpenAI-compatible servers carry reasoning (vLLM, DeepSeek), and its blocks with
  // their signatures, to be sent back unchanged in a tool-use continuation.
  const thinking = { ...(reasoning ? { reasoning_content: reasoning } : {}), ...(read.thinkingBlocks.length > 0 ? { thinking_blocks: read.thinkingBlocks } : {}) };
  // A structured answer is the forced tool's input, as the message's text.
  if (json !== undefined) {
    return {
      id: typeof msg.id === 'string' ? msg.id : `msg_${Date.now().toString(36)}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: typeof msg.model === 'string' ? msg.model : request.model,
      choices: [{ index: 0, message: { role: 'assistant', content: json, ...thinking }, finish_reason: msg.stop_reason === 'max_tokens' ? 'length' : 'stop', logprobs: null }],
      usage: usageOf(msg.usage),
    };
  }
  const hasText = read.hasText;
  return {
    id: typeof msg.id === 'string' ? msg.id : `msg_${Date.now().toString(36)}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: typeof msg.model === 'string' ? msg.model : request.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: hasText || toolCalls.length === 0 ? text : null,
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
          ...thinking,
        },
        finish_reason: finishReasonOf(msg.stop_reason) ?? 'stop',
        logprobs: null,
      },
    ],
    usage: usageOf(msg.usage),
  };
}

/** An `error` event or body's kind. */
function errorKindOf(type: unknown): ProviderError['kind'] {
  switch (type) {
    case 'overloaded_error':
      return 'overloaded';
    case 'rate_limit_error':
      return 'rate_limited';
    case 'invalid_request_error':
    case 'not_found_error':
    case 'request_too_large':
      return 'bad_request';
    case 'authentication_error':
    case 'permission_error':
      return 'auth';
    default:
      return 'server';
  }
}

/** The Anthropic event stream as canonical chunks. */
async function* anthropicChunks(provider: ProviderConfig, request: ChatRequest, res: ProviderResponse, signal?: AbortSignal, sink?: PassthroughSink): AsyncGenerator<ChatCompletionChunk> {
  let id = '';
  let model = request.model;
  const created = Math.floor(Date.now() / 1000);
  let started = false;
  let stopped = false;
  let stopReason: unknown = null;
  const usage = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  /** Anthropic content block index -> OpenAI tool_calls index. */
  const toolIndex = new Map<number, number>();
  /** The forced tool answering a response_format, and the block it streams in (its input is the answer's text). */
  const jsonTool = !sink && request.response_format ? jsonToolOf(request)?.name : undefined;
  let jsonBlock: number | undefined;
  /** Thinking blocks being streamed, by content block index: their text and signature so far. */
  const thinking = new Map<number, { thinking: string; signature: string }>();
  const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason = null): ChatCompletionChunk => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model,
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
  });
  try {
    for await (const ev of parseSse(res.body)) {
      if (stopped) continue; // read to the end so the connection stays reusable
      let data: any;
      try {
        data = JSON.parse(ev.data);
      } catch {
        throw new ProviderError('malformed', `${provider.name}: stream event is not valid JSON`);
      }
      const type = data?.type ?? ev.event;
      // Pass-through: every event but an error goes to the client as Anthropic sent it.
      if (sink && type !== 'error') sink.events.push({ event: ev.event ?? type, data: ev.data });
      switch (type) {
        case 'message_start': {
          const m = data.message ?? {};
          if (typeof m.id === 'string') id = m.id;
          if (typeof m.model === 'string') model = m.model;
          Object.assign(usage, pickUsage(m.usage));
          started = true;
          yield chunk({ role: 'assistant', content: '' });
          break;
        }
        case 'content_block_start': {
          const block = data.content_block;
          if (block?.type === 'tool_use' && jsonTool !== undefined && block.name === jsonTool) jsonBlock = data.index;
          else if (block?.type === 'tool_use') {
            const index = toolIndex.size;
            toolIndex.set(data.index, index);
            yield chunk({ tool_calls: [{ index, id: block.id, type: 'function', function: { name: block.name, arguments: '' } }] });
          } else if (block?.type === 'text' && typeof block.text === 'string' && block.text.length > 0) {
            yield chunk({ content: block.text });
          } else if (block?.type === 'thinking') {
            thinking.set(data.index, { thinking: '', signature: '' });
          } else if (block?.type === 'redacted_thinking' && typeof block.data === 'string') {
            yield chunk({ thinking_blocks: [{ type: 'redacted_thinking', data: block.data } satisfies ThinkingBlock] });
          }
          break;
        }
        case 'content_block_delta': {
          const delta = data.delta;
          if (delta?.type === 'text_delta') yield chunk({ content: String(delta.text ?? '') });
          else if (delta?.type === 'thinking_delta') {
            const block = thinking.get(data.index);
            if (block) block.thinking += String(delta.thinking ?? '');
            yield chunk({ reasoning_content: String(delta.thinking ?? '') });
          } else if (delta?.type === 'signature_delta') {
            const block = thinking.get(data.index);
            if (block) block.signature += String(delta.signature ?? '');
          }
          else if (delta?.type === 'input_json_delta' && data.index === jsonBlock) yield chunk({ content: String(delta.partial_json ?? '') });
          else if (delta?.type === 'input_json_delta') {
            const index = toolIndex.get(data.index);
            if (index !== undefined) yield chunk({ tool_calls: [{ index, function: { arguments: String(delta.partial_json ?? '') } as ToolCall['function'] }] });
          }
          break;
        }
        case 'content_block_stop': {
          // A finished thinking block goes out whole, signature included (a delta of its own).
          const block = thinking.get(data.index);
          if (block) {
            thinking.delete(data.index);
            yield chunk({ thinking_blocks: [{ type: 'thinking', ...block } satisfies ThinkingBlock] });
          }
          break;
        }
        case 'message_delta':
          if (data.delta?.stop_reason !== undefined) stopReason = data.delta.stop_reason;
          Object.assign(usage, pickUsage(data.usage));
          break;
        case 'message_stop':
          if (!started) throw new ProviderError('malformed', `${provider.name}: message_stop before message_start`);
          stopped = true;
          yield { ...chunk({}, jsonBlock !== undefined && stopReason === 'tool_use' ? 'stop' : (finishReasonOf(stopReason) ?? 'stop')), usage: usageOf(usage) };
          break;
        case 'error': {
          const e = data.error ?? {};
          throw new ProviderError(errorKindOf(e.type), `${provider.name}: error in stream: ${upstreamText(provider, String(e.message ?? e.type ?? 'unknown')).slice(0, 500)}`);
        }
        default:
          // ping and event types added later
          break;
      }
    }
  } catch (err) {
    if (!stopped) throw transportError(provider, err, signal);
  } finally {
    if (!stopped) res.body.destroy();
  }
  if (!stopped) throw new ProviderError('connection', `${provider.name}: stream ended before message_stop`);
}

function pickUsage(u: any): Partial<Record<'input_tokens' | 'output_tokens' | 'cache_creation_input_tokens' | 'cache_read_input_tokens', number>> {
  const out: Record<string, number> = {};
  if (!u || typeof u !== 'object') return out;
  for (const k of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens']) {
    if (typeof u[k] === 'number') out[k] = u[k];
  }
  return out;
}

function messagesPath(baseUrl: string): string {
  return /\/v1\/?$/.test(baseUrl) ? '/messages' : '/v1/messages';
}

function anthropicHeaders(provider: ProviderConfig, accept: string, betas?: string): Record<string, string> {
  const headers: Record<string, string> = { accept };
  if (betas) {
    // The client's betas beside any the provider's headers set.
    const own = Object.entries(provider.headers ?? {}).find(([k]) => k.toLowerCase() === 'anthropic-beta')?.[1];
    headers['anthropic-beta'] = own ? `${own},${betas}` : betas;
  }
  const versionSet = provider.headers !== undefined && Object.keys(provider.headers).some((k) => k.toLowerCase() === 'anthropic-version');
  if (!versionSet) headers['anthropic-version'] = DEFAULT_ANTHROPIC_VERSION;
  if (provider.apiKey) headers['x-api-key'] = provider.apiKey;
  return headers;
}

/** Options of {@link createAnthropicAdapter}. */
export interface AnthropicAdapterOptions {
  /** The transport (pools) to use. @default a transport of its own */
  transport?: ProviderTransport;
}

/** Creates an Anthropic adapter. */
export function createAnthropicAdapter(options: AnthropicAdapterOptions = {}): ProviderAdapter {
  const transport = options.transport ?? new ProviderTransport();
  return {
    type: 'anthropic',
    async complete(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<ChatCompletion> {
      const sink = passthroughOf(request);
      sink?.begin();
      const body = sink ? sink.bodyFor(request.model, false) : toAnthropicBody(request, false, provider);
      const res = await transport.post(provider, messagesPath(provider.baseUrl), body, anthropicHeaders(provider, 'application/json', sink?.betas), call);
      if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
      const message = await readJson(provider, res, call.signal);
      const completion = toCompletion(provider, request, message);
      if (sink) sink.message = message as never;
      return completion;
    },
    async stream(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
      const sink = passthroughOf(request);
      sink?.begin();
      const body = sink ? sink.bodyFor(request.model, true) : toAnthropicBody(request, true, provider);
      const res = await transport.post(provider, messagesPath(provider.baseUrl), body, anthropicHeaders(provider, 'text/event-stream', sink?.betas), call);
      if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
      await requireEventStream(provider, res);
      return anthropicChunks(provider, request, res, call.signal, sink);
    },
    close: () => transport.close(),
  };
}

/** The shared Anthropic adapter. */
export const anthropicAdapter: ProviderAdapter = createAnthropicAdapter();
