/**
 * The translation rules the non-OpenAI adapters (bedrock, vertex) share: reading the parts of a
 * canonical request they all need in one checked form (function tools, tool choice, structured
 * output, images, stop sequences, reasoning), and refusing what a provider type cannot take with
 * a `bad_request` that names the field, so nothing a client sent is silently dropped.
 */
import { ProviderError } from '../types';
import type { ChatMessage, ChatRequest, ContentPart } from '../../openai';

/** A `bad_request` raised before any call, naming the request field (the client gets a 400 with `param`). */
export function refuse(field: string, why: string): ProviderError {
  return new ProviderError('bad_request', `${field}: ${why}`, undefined, undefined, field);
}

/** Fields no adapter sends upstream (promptmesh's own; llm strips them, adapters skip them too). */
const PROMPTMESH_FIELDS = new Set(['prompt', 'session_id', 'cache']);

/**
 * Refuses every request field outside `handled` that carries a value other than the neutral
 * ones (`null`, `false` for `store`/`logprobs`, and those `neutral` lists).
 */
export function refuseUnhandled(request: ChatRequest, handled: ReadonlySet<string>, typeName: string, neutral: Record<string, readonly unknown[]> = {}): void {
  for (const [key, value] of Object.entries(request)) {
    if (value === undefined || value === null || handled.has(key) || PROMPTMESH_FIELDS.has(key)) continue;
    if ((key === 'store' || key === 'logprobs') && value === false) continue;
    if (key === 'top_logprobs' && value === 0) continue;
    if (key === 'logit_bias' && typeof value === 'object' && Object.keys(value).length === 0) continue;
    if (key === 'modalities' && Array.isArray(value) && value.every((m) => m === 'text')) continue;
    if (neutral[key]?.includes(value)) continue;
    throw refuse(key, `is not supported by ${typeName} providers`);
  }
}

/** A function tool, checked. */
export interface FunctionTool {
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters: Record<string, unknown>;
}

/** The request's function tools; other tool types are refused by name. */
export function functionTools(request: ChatRequest, typeName: string): FunctionTool[] {
  if (!Array.isArray(request.tools)) return [];
  return request.tools.map((t, i) => {
    const tool = t as { type?: unknown; function?: { name?: unknown; description?: unknown; parameters?: unknown } };
    if (tool.type !== 'function') throw refuse(`tools[${i}].type`, `'${String(tool.type)}' tools are not supported by ${typeName} providers (only 'function')`);
    const fn = tool.function;
    if (!fn || typeof fn.name !== 'string' || fn.name.length === 0) throw refuse(`tools[${i}].function.name`, 'is required');
    if (fn.parameters !== undefined && (typeof fn.parameters !== 'object' || fn.parameters === null || Array.isArray(fn.parameters))) throw refuse(`tools[${i}].function.parameters`, 'must be a JSON Schema object');
    return {
      name: fn.name,
      ...(typeof fn.description === 'string' && fn.description ? { description: fn.description } : {}),
      parameters: (fn.parameters as Record<string, unknown> | undefined) ?? { type: 'object', properties: {} },
    };
  });
}

/** `tool_choice`, read: auto, required (any tool), none, or one named function. */
export type ToolChoice = { mode: 'auto' | 'required' | 'none' } | { mode: 'function'; name: string } | undefined;

/** The request's `tool_choice`, checked (a named function must be one of the tools). */
export function toolChoiceOf(request: ChatRequest, tools: FunctionTool[]): ToolChoice {
  const choice = request.tool_choice as unknown;
  if (choice === undefined || choice === null) return undefined;
  if (choice === 'auto' || choice === 'required' || choice === 'none') return { mode: choice };
  const named = choice as { type?: unknown; function?: { name?: unknown } };
  if (typeof choice === 'object' && named.type === 'function' && typeof named.function?.name === 'string') {
    if (!tools.some((t) => t.name === named.function!.name)) throw refuse('tool_choice.function.name', `names no tool in 'tools' (${JSON.stringify(named.function.name)})`);
    return { mode: 'function', name: named.function.name };
  }
  throw refuse('tool_choice', "must be 'auto', 'required', 'none' or { type: 'function', function: { name } }");
}

/** `response_format`, read. */
export type ResponseFormat = { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; name: string; description?: string; schema: Record<string, unknown>; strict: boolean } | undefined;

/** The request's `response_format`, checked. */
export function responseFormatOf(request: ChatRequest): ResponseFormat {
  const rf = request.response_format as { type?: unknown; json_schema?: { name?: unknown; description?: unknown; schema?: unknown; strict?: unknown } } | undefined;
  if (rf === undefined || rf === null) return undefined;
  if (rf.type === 'text') return { type: 'text' };
  if (rf.type === 'json_object') return { type: 'json_object' };
  if (rf.type === 'json_schema') {
    const js = rf.json_schema;
    if (!js || typeof js.name !== 'string' || js.name.length === 0) throw refuse('response_format.json_schema.name', 'is required');
    if (js.schema !== undefined && (typeof js.schema !== 'object' || js.schema === null || Array.isArray(js.schema))) throw refuse('response_format.json_schema.schema', 'must be a JSON Schema object');
    return {
      type: 'json_schema',
      name: js.name,
      ...(typeof js.description === 'string' ? { description: js.description } : {}),
      schema: (js.schema as Record<string, unknown> | undefined) ?? { type: 'object' },
      strict: js.strict === true,
    };
  }
  throw refuse('response_format.type', `must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify(rf.type)}`);
}

/** The stop sequences (empty strings dropped: no provider takes them). */
export function stopSequences(request: ChatRequest): string[] | undefined {
  if (request.stop === undefined || request.stop === null) return undefined;
  const list = (typeof request.stop === 'string' ? [request.stop] : request.stop).filter((s) => s.length > 0);
  return list.length > 0 ? list : undefined;
}

/** An image given as a `data:` URL, split; undefined for any other URL. */
export function dataUrl(url: string): { mediaType: string; base64: string } | undefined {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  return m ? { mediaType: m[1]!.toLowerCase(), base64: m[2]! } : undefined;
}

/** The URL of an `image_url` part (string or `{ url }`), or undefined. */
export function imageUrlOf(part: ContentPart): string | undefined {
  const v = part.image_url as unknown;
  if (typeof v === 'string') return v;
  const url = (v as { url?: unknown } | undefined)?.url;
  return typeof url === 'string' ? url : undefined;
}

/**
 * A message's content as plain text, for the places that take text only (system prompts, tool
 * results): a string as it is, text parts joined; any other part is a 400 naming it.
 */
export function textOnlyOf(content: ChatMessage['content'], field: string): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content
    .map((p, i) => {
      if (p.type !== 'text') throw refuse(`${field}[${i}].type`, `only text parts are allowed here, got '${p.type}'`);
      return p.text ?? '';
    })
    .join('');
}

/** Tool call arguments as an object (what Bedrock and Gemini take), or a 400 naming the field. */
export function toolArguments(args: string, field: string): Record<string, unknown> {
  if (!args) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw refuse(field, 'tool call arguments are not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw refuse(field, 'tool call arguments must be a JSON object');
  return parsed as Record<string, unknown>;
}

/** OpenAI's `reasoning_effort` values and the thinking budget (tokens) each stands for. */
export const EFFORT_BUDGETS: Record<string, number> = { minimal: 1024, low: 1024, medium: 8192, high: 24576 };

/**
 * The thinking budget a request asks for: `thinking: { type: 'enabled', budget_tokens }`
 * (Anthropic's shape, which a translated `/v1/messages` request carries) wins over
 * `reasoning_effort`; 0 means thinking off (`reasoning_effort: 'none'`, `thinking.type: 'disabled'`).
 */
export function thinkingBudgetOf(request: ChatRequest): number | undefined {
  const thinking = request.thinking as { type?: unknown; budget_tokens?: unknown } | undefined | null;
  if (thinking !== undefined && thinking !== null) {
    if (thinking.type === 'disabled') return 0;
    if (thinking.type !== 'enabled') throw refuse('thinking.type', "must be 'enabled' or 'disabled'");
    if (!(Number.isInteger(thinking.budget_tokens) && (thinking.budget_tokens as number) >= 1)) throw refuse('thinking.budget_tokens', 'must be an integer >= 1');
    return thinking.budget_tokens as number;
  }
  const effort = request.reasoning_effort;
  if (effort === undefined || effort === null) return undefined;
  if (effort === 'none') return 0;
  const budget = EFFORT_BUDGETS[effort];
  if (budget === undefined) throw refuse('reasoning_effort', `must be one of none, ${Object.keys(EFFORT_BUDGETS).join(', ')}`);
  return budget;
}
