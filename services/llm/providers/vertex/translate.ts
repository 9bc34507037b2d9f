/**
 * Canonical (OpenAI-shaped) requests to Gemini `generateContent` bodies, and answers and
 * `streamGenerateContent` chunks back. What Gemini cannot express is refused with a 400 naming
 * the field (docs/llm.md "Vertex"): `logit_bias`, `logprobs`, `parallel_tool_calls: false`,
 * `user`/`metadata` on the Gemini API (on Vertex they become labels), other tool types.
 */
import { randomBytes } from 'node:crypto';
import type { ChatCompletion, ChatCompletionChunk, ChatMessage, ChatRequest, ContentPart, FinishReason, ToolCall, Usage } from '../../../openai';
import { ProviderError, type ProviderConfig } from '../../types';
import { dataUrl, functionTools, imageUrlOf, refuse, refuseUnhandled, responseFormatOf, stopSequences, textOnlyOf, thinkingBudgetOf, toolArguments, toolChoiceOf } from '../translation';

type Part = Record<string, unknown>;
interface Content {
  role: 'user' | 'model';
  parts: Part[];
}

const HANDLED = new Set([
  'model',
  'messages',
  'stream',
  'stream_options',
  'temperature',
  'top_p',
  'top_k',
  'max_tokens',
  'max_completion_tokens',
  'stop',
  'n',
  'seed',
  'presence_penalty',
  'frequency_penalty',
  'tools',
  'tool_choice',
  'response_format',
  'reasoning_effort',
  'thinking',
  'user',
  'metadata',
]);

/** Vertex AI label keys and values: lowercase letters, digits, _ and -, at most 63. */
const LABEL = /^[a-z0-9_-]{0,63}$/;
const MIME_BY_EXTENSION: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', heic: 'image/heic', pdf: 'application/pdf' };

function partOf(part: ContentPart, field: string): Part {
  if (part.type === 'text') return { text: part.text ?? '' };
  if (part.type === 'image_url') {
    const url = imageUrlOf(part);
    if (!url) throw refuse(`${field}.image_url.url`, 'is required');
    const data = dataUrl(url);
    if (data) return { inlineData: { mimeType: data.mediaType, data: data.base64 } };
    if (!/^(https?|gs):\/\//.test(url)) throw refuse(`${field}.image_url.url`, 'must be a data:, https: or gs: URL');
    const ext = /\.([a-z0-9]+)(?:[?#].*)?$/i.exec(url)?.[1]?.toLowerCase();
    return { fileData: { mimeType: (ext && MIME_BY_EXTENSION[ext]) ?? 'image/jpeg', fileUri: url } };
  }
  if (part.type === 'input_audio') {
    const audio = part.input_audio as { data?: unknown; format?: unknown } | undefined;
    if (typeof audio?.data !== 'string' || (audio.format !== 'wav' && audio.format !== 'mp3')) throw refuse(`${field}.input_audio`, "needs base64 data and format 'wav' or 'mp3'");
    return { inlineData: { mimeType: audio.format === 'wav' ? 'audio/wav' : 'audio/mp3', data: audio.data } };
  }
  throw refuse(`${field}.type`, `content part type '${part.type}' is not supported by vertex providers`);
}

function partsOf(content: ChatMessage['content'], field: string): Part[] {
  if (content === null || content === undefined) return [];
  if (typeof content === 'string') return content.length > 0 ? [{ text: content }] : [];
  return content.map((p, i) => partOf(p, `${field}[${i}]`));
}

/** Where a vertex provider sends a model's calls: Vertex AI or the Gemini API. */
export function isVertexAi(provider: ProviderConfig): boolean {
  return provider.vertex?.project !== undefined;
}

/** The generateContent body for a canonical request. */
export function toGenerateContentBody(request: ChatRequest, provider: ProviderConfig): Record<string, unknown> {
  refuseUnhandled(request, HANDLED, 'vertex', { parallel_tool_calls: [true] });
  const system: string[] = [];
  const contents: Content[] = [];
  /** tool_call_id -> function name: Gemini answers function calls by name. */
  const callNames = new Map<string, string>();
  // Gemini 3 checks thought signatures on function calls in the history; calls that did not
  // come from it (translated history) carry the documented skip value.
  const signature = /gemini-3/.test(request.model) ? { thoughtSignature: 'skip_thought_signature_validator' } : {};
  const push = (role: 'user' | 'model', parts: Part[]) => {
    if (parts.length === 0) return;
    const last = contents[contents.length - 1];
    if (last && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };
  request.messages.forEach((m, i) => {
    const field = `messages[${i}]`;
    switch (m.role) {
      case 'system':
      case 'developer': {
        const text = textOnlyOf(m.content, `${field}.content`);
        if (text) system.push(text);
        break;
      }
      case 'user':
        push('user', partsOf(m.content, `${field}.content`));
        break;
      case 'assistant': {
        const parts = partsOf(m.content, `${field}.content`);
        for (const [j, tc] of (m.tool_calls ?? []).entries()) {
          callNames.set(tc.id, tc.function.name);
          parts.push({ functionCall: { name: tc.function.name, args: toolArguments(tc.function.arguments, `${field}.tool_calls[${j}].function.arguments`) }, ...(j === 0 ? signature : {}) });
        }
        push('model', parts);
        break;
      }
      case 'tool': {
        const name = callNames.get(m.tool_call_id ?? '');
        if (!name) throw refuse(`${field}.tool_call_id`, 'answers no tool call of an earlier assistant message');
        push('user', [{ functionResponse: { name, response: { content: textOnlyOf(m.content, `${field}.content`) } } }]);
        break;
      }
      default:
        throw refuse(`${field}.role`, `'${String(m.role)}' is not supported`);
    }
  });
  if (contents.length === 0) throw refuse('messages', 'Gemini needs at least one user or assistant message');

  const body: Record<string, unknown> = { contents };
  if (system.length > 0) body.systemInstruction = { parts: [{ text: system.join('\n\n') }] };
  const gen: Record<string, unknown> = {};
  const maxTokens = request.max_completion_tokens ?? request.max_tokens;
  if (typeof maxTokens === 'number') gen.maxOutputTokens = maxTokens;
  if (typeof request.temperature === 'number') gen.temperature = request.temperature;
  if (typeof request.top_p === 'number') gen.topP = request.top_p;
  if (request.top_k !== undefined && request.top_k !== null) {
    if (!(Number.isInteger(request.top_k) && (request.top_k as number) >= 1)) throw refuse('top_k', 'must be an integer >= 1');
    gen.topK = request.top_k;
  }
  if (typeof request.n === 'number' && request.n > 1) gen.candidateCount = request.n;
  if (typeof request.seed === 'number') gen.seed = request.seed;
  if (typeof request.presence_penalty === 'number') gen.presencePenalty = request.presence_penalty;
  if (typeof request.frequency_penalty === 'number') gen.frequencyPenalty = request.frequency_penalty;
  const stops = stopSequences(request);
  if (stops) gen.stopSequences = stops;
  const format = responseFormatOf(request);
  if (format?.type === 'json_object') gen.responseMimeType = 'application/json';
  else if (format?.type === 'json_schema') {
    gen.responseMimeType = 'application/json';
    gen.responseJsonSchema = format.schema;
  }
  const budget = thinkingBudgetOf(request);
  if (budget !== undefined) gen.thinkingConfig = budget > 0 ? { thinkingBudget: budget, includeThoughts: true } : { thinkingBudget: 0 };
  if (Object.keys(gen).length > 0) body.generationConfig = gen;

  const tools = functionTools(request, 'vertex');
  if (tools.length > 0) {
    body.tools = [{ functionDeclarations: tools.map((t) => ({ name: t.name, ...(t.description ? { description: t.description } : {}), parametersJsonSchema: t.parameters })) }];
  }
  const choice = toolChoiceOf(request, tools);
  if (choice) {
    if (tools.length === 0 && choice.mode !== 'none') throw refuse('tool_choice', 'needs tools');
    const mode = choice.mode === 'auto' ? 'AUTO' : choice.mode === 'none' ? 'NONE' : 'ANY';
    body.toolConfig = { functionCallingConfig: { mode, ...(choice.mode === 'function' ? { allowedFunctionNames: [choice.name] } : {}) } };
  }

  const labels: Record<string, string> = {};
  const label = (key: string, value: unknown, field: string) => {
    if (!isVertexAi(provider)) throw refuse(field, 'is not supported by the Gemini API (on Vertex AI it becomes a label)');
    if (typeof value !== 'string' || !LABEL.test(key) || !LABEL.test(value)) throw refuse(field, 'Vertex AI labels take lowercase letters, digits, _ and - (at most 63)');
    labels[key] = value;
  };
  if (request.metadata && typeof request.metadata === 'object') for (const [k, v] of Object.entries(request.metadata)) label(k, v, `metadata.${k}`);
  if (typeof request.user === 'string') label('user', request.user, 'user');
  if (Object.keys(labels).length > 0) body.labels = labels;
  return body;
}

/** Gemini finish reasons as OpenAI's. */
export function geminiFinishReason(reason: unknown, calledTools: boolean): FinishReason {
  switch (reason) {
    case undefined:
    case null:
    case 'FINISH_REASON_UNSPECIFIED':
      return null;
    case 'MAX_TOKENS':
      return 'length';
    case 'SAFETY':
    case 'RECITATION':
    case 'BLOCKLIST':
    case 'PROHIBITED_CONTENT':
    case 'SPII':
    case 'IMAGE_SAFETY':
      return 'content_filter';
    default:
      return calledTools ? 'tool_calls' : 'stop';
  }
}

/**
 * Gemini usage in the OpenAI shape: `promptTokenCount` already includes the cached tokens
 * (`cachedContentTokenCount` becomes `cached_tokens`); thinking tokens are billed as output, so
 * they count in `completion_tokens` and show as `reasoning_tokens`.
 */
export function geminiUsage(u: any): Usage {
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
  const prompt = n(u?.promptTokenCount) + n(u?.toolUsePromptTokenCount);
  const thoughts = n(u?.thoughtsTokenCount);
  const completion = n(u?.candidatesTokenCount) + thoughts;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: n(u?.cachedContentTokenCount) },
    completion_tokens_details: { reasoning_tokens: thoughts },
  };
}

const callId = () => `call_${randomBytes(12).toString('base64url')}`;

/** A generateContent answer as a `chat.completion`. */
export function geminiToCompletion(provider: ProviderConfig, request: ChatRequest, body: any): ChatCompletion {
  if (!body || typeof body !== 'object') throw new ProviderError('malformed', `${provider.name}: answer is not an object`);
  const candidates: any[] = Array.isArray(body.candidates) ? body.candidates : [];
  if (candidates.length === 0 && !body.promptFeedback?.blockReason) throw new ProviderError('malformed', `${provider.name}: answer has no candidates`);
  const choices: ChatCompletion['choices'] =
    candidates.length === 0
      ? [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'content_filter', logprobs: null }]
      : candidates.map((c, i) => {
          let text = '';
          let reasoning = '';
          const toolCalls: ToolCall[] = [];
          for (const p of c?.content?.parts ?? []) {
            if (typeof p?.text === 'string') {
              if (p.thought === true) reasoning += p.text;
              else text += p.text;
            } else if (p?.functionCall) {
              toolCalls.push({ id: typeof p.functionCall.id === 'string' ? p.functionCall.id : callId(), type: 'function', function: { name: String(p.functionCall.name), arguments: JSON.stringify(p.functionCall.args ?? {}) } });
            }
          }
          return {
            index: typeof c?.index === 'number' ? c.index : i,
            message: {
              role: 'assistant' as const,
              content: text || toolCalls.length === 0 ? text : null,
              ...(reasoning ? { reasoning_content: reasoning } : {}),
              ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
            },
            finish_reason: geminiFinishReason(c?.finishReason, toolCalls.length > 0) ?? 'stop',
            logprobs: null,
          };
        });
  return {
    id: `chatcmpl-${typeof body.responseId === 'string' ? body.responseId : callId()}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    choices,
    usage: geminiUsage(body.usageMetadata),
  };
}

/** The kind of an error Gemini sent inside a stream. */
function streamErrorKind(code: unknown): ProviderError['kind'] {
  if (code === 429) return 'rate_limited';
  if (code === 503) return 'overloaded';
  if (code === 401 || code === 403) return 'auth';
  if (code === 400 || code === 404) return 'bad_request';
  return 'server';
}

/** streamGenerateContent chunks (parsed SSE data) as OpenAI chunks. */
export async function* geminiToChunks(provider: ProviderConfig, request: ChatRequest, events: AsyncIterable<unknown>, scrub: (text: string) => string): AsyncGenerator<ChatCompletionChunk> {
  const created = Math.floor(Date.now() / 1000);
  let id = '';
  const started = new Set<number>();
  const toolCounts = new Map<number, number>();
  const finishes = new Map<number, FinishReason>();
  let usage: Usage | undefined;
  const chunk = (index: number, delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason = null): ChatCompletionChunk => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: request.model,
    choices: [{ index, delta, finish_reason: finish, logprobs: null }],
  });
  for await (const ev of events) {
    const data = ev as any;
    if (data?.error) {
      throw new ProviderError(streamErrorKind(data.error.code), `${provider.name}: error in stream: ${scrub(String(data.error.message ?? data.error.status ?? 'unknown')).slice(0, 500)}`);
    }
    if (!id) id = `chatcmpl-${typeof data?.responseId === 'string' ? data.responseId : callId()}`;
    if (data?.usageMetadata) usage = geminiUsage(data.usageMetadata);
    for (const c of Array.isArray(data?.candidates) ? data.candidates : []) {
      const index = typeof c?.index === 'number' ? c.index : 0;
      if (!started.has(index)) {
        started.add(index);
        yield chunk(index, { role: 'assistant', content: '' });
      }
      for (const p of c?.content?.parts ?? []) {
        if (typeof p?.text === 'string' && p.text.length > 0) yield chunk(index, p.thought === true ? { reasoning_content: p.text } : { content: p.text });
        else if (p?.functionCall) {
          const n = toolCounts.get(index) ?? 0;
          toolCounts.set(index, n + 1);
          const fc = p.functionCall;
          yield chunk(index, { tool_calls: [{ index: n, id: typeof fc.id === 'string' ? fc.id : callId(), type: 'function', function: { name: String(fc.name), arguments: JSON.stringify(fc.args ?? {}) } }] });
        }
      }
      if (c?.finishReason) finishes.set(index, geminiFinishReason(c.finishReason, (toolCounts.get(index) ?? 0) > 0));
    }
    if (started.size === 0 && data?.promptFeedback?.blockReason) {
      started.add(0);
      finishes.set(0, 'content_filter');
      yield chunk(0, { role: 'assistant', content: '' });
    }
  }
  if (finishes.size === 0) throw new ProviderError('connection', `${provider.name}: stream ended before a finish reason`);
  const indexes = [...started].sort((a, b) => a - b);
  for (const [k, index] of indexes.entries()) {
    const last = chunk(index, {}, finishes.get(index) ?? 'stop');
    yield k === indexes.length - 1 ? { ...last, usage: usage ?? geminiUsage(undefined) } : last;
  }
}
