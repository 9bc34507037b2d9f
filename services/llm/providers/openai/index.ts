/**
 * The OpenAI adapter (Chat Completions API), and the base of `openai-compatible` (vLLM, Ollama,
 * TGI), which differs in three ways handled here: auth is optional, usage may be missing (we
 * count the tokens ourselves), and the output cap is `max_tokens` rather than OpenAI's
 * `max_completion_tokens`.
 */
import { ProviderError, type CallOptions, type ProviderAdapter, type ProviderConfig } from '../../types';
import { contentText, parseSse, type ChatCompletion, type ChatCompletionChunk, type ChatRequest, type Usage } from '../../../openai';
import { countPromptTokens, countTextTokens } from '../tokens';
import { ProviderTransport, errorFromResponse, errorFromText, requireEventStream, parseJsonText, transportError, upstreamText, type ProviderResponse } from '../transport';
import { embedVia } from './embeddings';
import { responsesVia } from './responses';

/** Options of {@link createOpenAIAdapter}. */
export interface OpenAIAdapterOptions {
  /** Which flavour of the API. @default 'openai' */
  type?: 'openai' | 'openai-compatible';
  /** The transport (pools) to use. @default a transport of its own */
  transport?: ProviderTransport;
}

/** Request fields that are promptmesh's own and never go upstream. */
const PROMPTMESH_FIELDS = new Set(['prompt', 'session_id']);

/**
 * The body sent upstream. Streams always ask for usage (`stream_options.include_usage`), so the
 * last chunk can carry it whatever the client asked.
 */
export function toOpenAIBody(request: ChatRequest, type: 'openai' | 'openai-compatible', stream: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const key of Object.keys(request)) {
    if (!PROMPTMESH_FIELDS.has(key) && request[key] !== undefined) body[key] = request[key];
  }
  // Claude's thinking blocks (and the reasoning text beside them) mean nothing to these APIs.
  if (request.messages.some((m) => m.thinking_blocks !== undefined || m.reasoning_content !== undefined)) {
    body.messages = request.messages.map(({ thinking_blocks: _t, reasoning_content: _r, ...m }) => m);
  }
  body.stream = stream;
  if (stream) body.stream_options = { ...request.stream_options, include_usage: true };
  else delete body.stream_options;
  if (type === 'openai') {
    withoutCacheControl(body);
    // OpenAI deprecated max_tokens (its reasoning models reject it): send max_completion_tokens.
    if (body.max_tokens !== undefined) {
      if (body.max_completion_tokens === undefined) body.max_completion_tokens = body.max_tokens;
      delete body.max_tokens;
    }
  } else if (body.max_completion_tokens !== undefined) {
    // vLLM, Ollama and TGI know max_tokens.
    if (body.max_tokens === undefined) body.max_tokens = body.max_completion_tokens;
    delete body.max_completion_tokens;
  }
  return body;
}

/**
 * Drops Anthropic-style `cache_control` markers (messages, content parts, tools): OpenAI caches
 * prompts by itself and refuses fields it does not know. OpenAI-compatible servers get them as
 * they came (gateways such as OpenRouter forward them to Claude).
 */
function withoutCacheControl(body: Record<string, unknown>): void {
  const strip = (o: unknown): unknown => {
    if (!o || typeof o !== 'object' || !('cache_control' in o)) return o;
    const { cache_control: _cc, ...rest } = o as Record<string, unknown>;
    return rest;
  };
  if (Array.isArray(body.messages)) {
    body.messages = body.messages.map((m: unknown) => {
      const out = strip(m) as Record<string, unknown>;
      return Array.isArray(out?.content) ? { ...out, content: out.content.map(strip) } : out;
    });
  }
  if (Array.isArray(body.tools)) body.tools = body.tools.map(strip);
}

function authHeaders(provider: ProviderConfig): Record<string, string> {
  return provider.apiKey ? { authorization: `Bearer ${provider.apiKey}` } : {};
}

function fallbackId(): string {
  return `chatcmpl-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
}

function isUsage(u: unknown): u is Usage {
  return !!u && typeof (u as Usage).prompt_tokens === 'number' && typeof (u as Usage).completion_tokens === 'number';
}

function countedUsage(request: ChatRequest, completionText: string): Usage {
  const prompt = countPromptTokens(request.messages);
  const completion = countTextTokens(completionText);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Normalises a `chat.completion` body; anything without choices is `malformed`. */
function toCompletion(provider: ProviderConfig, request: ChatRequest, body: any): ChatCompletion {
  if (!body || typeof body !== 'object' || !Array.isArray(body.choices)) {
    throw new ProviderError('malformed', `${provider.name}: response has no choices`);
  }
  let usage: Usage;
  if (isUsage(body.usage)) {
    usage = { ...body.usage, total_tokens: body.usage.total_tokens ?? body.usage.prompt_tokens + body.usage.completion_tokens };
  } else {
    usage = countedUsage(request, body.choices.map((c: any) => contentText(c?.message?.content)).join(''));
  }
  return {
    ...body,
    id: typeof body.id === 'string' ? body.id : fallbackId(),
    object: 'chat.completion',
    created: typeof body.created === 'number' ? body.created : Math.floor(Date.now() / 1000),
    model: typeof body.model === 'string' ? body.model : request.model,
    usage,
  };
}

/** Turns an upstream event stream into canonical chunks; the last one carries usage. */
async function* openaiChunks(provider: ProviderConfig, request: ChatRequest, res: ProviderResponse, signal?: AbortSignal): AsyncGenerator<ChatCompletionChunk> {
  let done = false;
  let finished = false;
  let usage: Usage | undefined;
  let text = '';
  let id: string | undefined;
  let created = Math.floor(Date.now() / 1000);
  let model = request.model;
  try {
    for await (const ev of parseSse(res.body)) {
      // Read on to the end of the body after [DONE]: leaving early would destroy the body and,
      // with it, the keep-alive connection.
      if (done) continue;
      if (ev.data === '[DONE]') {
        done = true;
        continue;
      }
      let chunk: any;
      try {
        chunk = JSON.parse(ev.data);
      } catch {
        throw new ProviderError('malformed', `${provider.name}: stream event is not valid JSON`);
      }
      if (chunk?.error) {
        const message = typeof chunk.error === 'string' ? chunk.error : chunk.error.message;
        throw new ProviderError('server', `${provider.name}: error in stream: ${upstreamText(provider, String(message ?? 'unknown')).slice(0, 500)}`);
      }
      if (!chunk || typeof chunk !== 'object' || !Array.isArray(chunk.choices)) {
        throw new ProviderError('malformed', `${provider.name}: stream event has no choices`);
      }
      id ??= typeof chunk.id === 'string' ? chunk.id : fallbackId();
      if (typeof chunk.created === 'number') created = chunk.created;
      if (typeof chunk.model === 'string') model = chunk.model;
      for (const choice of chunk.choices) {
        const delta = choice?.delta;
        if (typeof delta?.content === 'string') text += delta.content;
        if (Array.isArray(delta?.tool_calls)) for (const tc of delta.tool_calls) text += tc?.function?.arguments ?? '';
        if (choice?.finish_reason) finished = true;
      }
      if (isUsage(chunk.usage)) usage = chunk.usage;
      chunk.id = id;
      chunk.object = 'chat.completion.chunk';
      chunk.created = created;
      chunk.model = model;
      yield chunk as ChatCompletionChunk;
    }
  } catch (err) {
    if (!done) throw transportError(provider, err, signal);
  } finally {
    if (!done) res.body.destroy();
  }
  if (!done && !finished) throw new ProviderError('connection', `${provider.name}: stream ended before it finished`);
  if (!usage) {
    // Some OpenAI-compatible servers send no usage in streams: count it and send it last.
    yield { id: id ?? fallbackId(), object: 'chat.completion.chunk', created, model, choices: [], usage: countedUsage(request, text) };
  }
}

/** Creates an adapter for the OpenAI API or an OpenAI-compatible server. */
export function createOpenAIAdapter(options: OpenAIAdapterOptions = {}): ProviderAdapter {
  const type = options.type ?? 'openai';
  const transport = options.transport ?? new ProviderTransport();
  return {
    type,
    async complete(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<ChatCompletion> {
      const res = await transport.postForText(provider, '/chat/completions', toOpenAIBody(request, type, false), { ...authHeaders(provider), accept: 'application/json' }, call);
      if (res.statusCode >= 400) throw errorFromText(provider, res);
      return toCompletion(provider, request, parseJsonText(provider, res));
    },
    async stream(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
      const res = await transport.post(provider, '/chat/completions', toOpenAIBody(request, type, true), { ...authHeaders(provider), accept: 'text/event-stream' }, call);
      if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
      await requireEventStream(provider, res);
      return openaiChunks(provider, request, res, call.signal);
    },
    embed: (provider, request, call) => embedVia(transport, type, provider, request, authHeaders(provider), call),
    // The Responses API is OpenAI's own: OpenAI-compatible servers do not promise it.
    ...(type === 'openai' ? { responses: (provider: ProviderConfig, body: Record<string, unknown>, call: CallOptions & { stream: boolean }) => responsesVia(transport, provider, body, authHeaders(provider), call) } : {}),
    close: () => transport.close(),
  };
}

/** The shared OpenAI adapter (its pools live until {@link ProviderAdapter.close}). */
export const openaiAdapter: ProviderAdapter = createOpenAIAdapter({ type: 'openai' });

// The Azure OpenAI adapter speaks this wire format on other paths: it reuses the answer and
// stream handling.
export { toCompletion as toOpenAICompletion, openaiChunks };
