import { ANTHROPIC_BETA_HEADER, type AnthropicEvent, type AnthropicResponse, type MessagesRequest } from '../anthropic';
import { HEADERS, LLM_USAGE_EVENT, PATHS } from '../../contracts';
import { ApiError } from '../kit';
import type { ContextMessageInput, ContextWindow } from '../context';
import { parseSse, type ChatCompletion, type ChatCompletionChunk, type ChatRequest, type EmbeddingsRequest, type EncodedEmbeddingsResponse, type PassthroughRequest } from '../openai';
import type { UsageWithCost } from '../llm/core';
import type { ChangeFeed, TemplateVersion, TemplatesExport, VersionList } from '../templates/types';
import type { CallMeta, ContextClient, LlmClientCallOptions, LlmClient, LlmMessagesAnswer, LlmOrigin, LlmResponsesAnswer, ModelEntry, RouterClients, TemplatesClient } from './clients';
import { PeerHttp, type PeerHttpOptions, type PeerResponse } from './http-client';


const enc = encodeURIComponent;

/** The templates service over HTTP. */
export class HttpTemplatesClient implements TemplatesClient {
  constructor(readonly http: PeerHttp) {}

  exportAll(meta: CallMeta = {}): Promise<TemplatesExport> {
    return this.http.json<TemplatesExport>('GET', `${PATHS.templates}/export`, meta);
  }

  changesSince(since: number, meta: CallMeta = {}): Promise<ChangeFeed> {
    return this.http.json<ChangeFeed>('GET', `${PATHS.templateChanges}?since=${Math.max(0, since)}`, meta);
  }

  head(name: string, meta: CallMeta = {}): Promise<VersionList | undefined> {
    return this.http.json<VersionList | undefined>('GET', `${PATHS.templates}/${enc(name)}/versions?limit=1&order=desc`, meta, { allowNotFound: true });
  }

  version(name: string, version: number, meta: CallMeta = {}): Promise<TemplateVersion | undefined> {
    return this.http.json<TemplateVersion | undefined>('GET', `${PATHS.templates}/${enc(name)}?version=${version}`, meta, { allowNotFound: true });
  }
}

/** The context service over HTTP. */
export class HttpContextClient implements ContextClient {
  constructor(readonly http: PeerHttp) {}

  read(sessionId: string, options: { maxTokens?: number; maxMessages?: number }, meta: CallMeta = {}): Promise<ContextWindow> {
    const q: string[] = [];
    if (options.maxTokens !== undefined) q.push(`max_tokens=${options.maxTokens}`);
    if (options.maxMessages !== undefined) q.push(`max_messages=${options.maxMessages}`);
    return this.http.json<ContextWindow>('GET', `${PATHS.sessions}/${enc(sessionId)}/messages${q.length ? `?${q.join('&')}` : ''}`, meta);
  }

  async append(sessionId: string, messages: ContextMessageInput[], meta: CallMeta = {}): Promise<void> {
    await this.http.json('POST', `${PATHS.sessions}/${enc(sessionId)}/messages`, meta, { body: { messages } });
  }

  async delete(sessionId: string, meta: CallMeta = {}): Promise<void> {
    await this.http.json('DELETE', `${PATHS.sessions}/${enc(sessionId)}`, meta);
  }
}

function origin(res: PeerResponse, fallbackModel: string): LlmOrigin {
  const h = res.headers;
  return {
    provider: typeof h[HEADERS.provider] === 'string' ? (h[HEADERS.provider] as string) : 'unknown',
    model: typeof h[HEADERS.model] === 'string' ? (h[HEADERS.model] as string) : fallbackModel,
    cache: h[HEADERS.cache] === 'hit' ? 'hit' : 'miss',
  };
}

/** llm's report of a call's usage and cost (a header value or an event's data); undefined when unreadable. */
function usageFrom(json: unknown): UsageWithCost | undefined {
  if (typeof json !== 'string') return undefined;
  try {
    const usage = JSON.parse(json) as unknown;
    return usage !== null && typeof usage === 'object' && !Array.isArray(usage) ? (usage as UsageWithCost) : undefined;
  } catch {
    return undefined;
  }
}

const USAGE_MARK = Buffer.from(`event: ${LLM_USAGE_EVENT}\n`);

/**
 * A passed-through event stream without the usage event llm appends at its end (handed to
 * `found` instead). The last bytes that could be the start of that event are held back until
 * the next piece shows they are not.
 */
export async function* withoutUsageEvent(body: AsyncIterable<Uint8Array>, found: (usage: UsageWithCost | undefined) => void): AsyncGenerator<Uint8Array> {
  let held = Buffer.alloc(0);
  let usage: Buffer[] | undefined;
  for await (const piece of body) {
    if (usage) {
      usage.push(Buffer.from(piece));
      continue;
    }
    const text = held.length > 0 ? Buffer.concat([held, piece]) : Buffer.from(piece);
    const at = text.indexOf(USAGE_MARK);
    if (at >= 0) {
      if (at > 0) yield text.subarray(0, at);
      usage = [text.subarray(at)];
      continue;
    }
    const keep = Math.min(text.length, USAGE_MARK.length - 1);
    if (text.length > keep) yield text.subarray(0, text.length - keep);
    held = text.subarray(text.length - keep);
  }
  if (usage) {
    const data = /^data: (.*)$/m.exec(Buffer.concat(usage).toString('utf8'));
    found(usageFrom(data?.[1]));
  } else if (held.length > 0) {
    yield held;
  }
}

/** The llm service over HTTP (its internal chat completions route, same shape as OpenAI's). */
export class HttpLlmClient implements LlmClient {
  constructor(readonly http: PeerHttp) {}

  private headers(options: LlmClientCallOptions): Record<string, string> {
    if (!options.tenant) return {};
    const h: Record<string, string> = { [HEADERS.tenant]: options.tenant };
    if (options.tenantTpm !== undefined) h[HEADERS.tenantTpm] = String(options.tenantTpm);
    if (options.team !== undefined) {
      h[HEADERS.team] = options.team;
      if (options.teamTpm !== undefined) h[HEADERS.teamTpm] = String(options.teamTpm);
    }
    return h;
  }

  /**
   * A call to llm, once the router admitted it (`options.admitted`: the overlap the in-process
   * client gets inside llm is here the router's own work before the call).
   */
  private async post(path: string, options: LlmClientCallOptions, init: Parameters<PeerHttp['request']>[3]): Promise<PeerResponse> {
    await options.admitted;
    return this.http.request('POST', path, options, init);
  }

  /** llm's JSON answer: its error in the OpenAI shape when it refused, a 502 when the body is not JSON. */
  private async jsonAnswer<T>(res: PeerResponse): Promise<T> {
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw this.http.mapError(err);
    }
    if (res.statusCode >= 400) throw this.http.errorFrom(res.statusCode, res.headers, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError({ status: 502, type: 'upstream_error', message: 'llm service answered with a body that is not JSON', code: 'upstream_malformed' });
    }
  }

  async complete(request: ChatRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { completion: ChatCompletion }> {
    const payload = request.stream ? { ...request, stream: false } : request;
    const res = await this.post(PATHS.chatCompletions, options, { body: JSON.stringify(payload), headers: this.headers(options) });
    return { ...origin(res, request.model), completion: await this.jsonAnswer<ChatCompletion>(res) };
  }

  async stream(request: ChatRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { chunks: AsyncIterable<ChatCompletionChunk> }> {
    const payload = request.stream ? request : { ...request, stream: true };
    const res = await this.post(PATHS.chatCompletions, options, { body: JSON.stringify(payload), headers: this.headers(options) });
    if (res.statusCode >= 400) {
      const text = await res.body.text().catch(() => '');
      throw this.http.errorFrom(res.statusCode, res.headers, text);
    }
    const http = this.http;
    async function* chunks(): AsyncGenerator<ChatCompletionChunk> {
      try {
        for await (const { data } of parseSse(res.body)) {
          if (data === '[DONE]') return;
          let parsed: ChatCompletionChunk & { error?: { type?: string; message?: string; code?: string | null } };
          try {
            parsed = JSON.parse(data);
          } catch {
            throw new ApiError({ status: 502, type: 'upstream_error', message: 'llm service sent a malformed stream event', code: 'upstream_malformed' });
          }
          if (parsed.error) {
            throw new ApiError({ status: 502, type: parsed.error.type ?? 'upstream_error', message: parsed.error.message ?? 'the stream failed', code: parsed.error.code ?? 'stream_interrupted' });
          }
          yield parsed;
        }
        throw new ApiError({ status: 502, type: 'upstream_error', message: 'llm service ended the stream without [DONE]', code: 'stream_interrupted' });
      } catch (err) {
        throw http.mapError(err);
      } finally {
        if (!res.body.destroyed) res.body.destroy();
      }
    }
    return { ...origin(res, request.model), chunks: chunks() };
  }

  async embed(request: EmbeddingsRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { response: EncodedEmbeddingsResponse }> {
    const res = await this.post(PATHS.embeddings, options, { body: JSON.stringify(request), headers: this.headers(options) });
    return { ...origin(res, request.model), response: await this.jsonAnswer<EncodedEmbeddingsResponse>(res) };
  }

  async responses(request: PassthroughRequest, options: LlmClientCallOptions): Promise<LlmResponsesAnswer> {
    const res = await this.post(PATHS.responses, options, { body: JSON.stringify(request), headers: { ...this.headers(options), [HEADERS.usage]: 'report' } });
    // Refusals (400 naming the providers that can, 404 model, 429 limits, provider failures)
    // come as errors in the OpenAI shape; an answer is passed on as it came.
    if (res.statusCode >= 400) {
      const text = await res.body.text().catch(() => '');
      throw this.http.errorFrom(res.statusCode, res.headers, text);
    }
    const contentType = res.headers['content-type'];
    const http = this.http;
    // A JSON answer's usage comes in a header; a stream's as a last event, taken off here.
    let usage = usageFrom(res.headers[HEADERS.usage]);
    const stream = typeof contentType === 'string' && /^text\/event-stream/i.test(contentType);
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        if (stream) yield* withoutUsageEvent(res.body, (u) => (usage = u));
        else for await (const piece of res.body) yield piece as Uint8Array;
      } catch (err) {
        throw http.mapError(err);
      } finally {
        if (!res.body.destroyed) res.body.destroy();
      }
    }
    return { ...origin(res, request.model), status: res.statusCode, headers: typeof contentType === 'string' ? { 'content-type': contentType } : {}, body: body(), usage: () => usage };
  }

  async messages(request: MessagesRequest, options: LlmClientCallOptions & { anthropicBeta?: string }): Promise<LlmMessagesAnswer> {
    const headers: Record<string, string> = { ...this.headers(options), [HEADERS.usage]: 'report' };
    if (options.anthropicBeta) headers[ANTHROPIC_BETA_HEADER] = options.anthropicBeta;
    const res = await this.post(PATHS.messages, options, { body: JSON.stringify(request), headers });
    const from = { ...origin(res, request.model), passthrough: res.headers[HEADERS.passthrough] === 'true' };
    if (res.statusCode >= 400 || request.stream !== true) {
      // Anthropic's error shape has `error.type` and `error.message` too: errorFrom reads it.
      const message = await this.jsonAnswer<AnthropicResponse>(res);
      const usage = usageFrom(res.headers[HEADERS.usage]);
      return { ...from, message, usage: () => usage };
    }
    const http = this.http;
    let usage: UsageWithCost | undefined;
    async function* events(): AsyncGenerator<AnthropicEvent> {
      try {
        for await (const ev of parseSse(res.body)) {
          if (ev.event === LLM_USAGE_EVENT) {
            usage = usageFrom(ev.data);
            continue;
          }
          if (ev.event === 'error') {
            let parsed: { error?: { type?: string; message?: string } } = {};
            try {
              parsed = JSON.parse(ev.data);
            } catch {
              // a malformed error event is still an error
            }
            throw new ApiError({ status: 502, type: parsed.error?.type ?? 'upstream_error', message: parsed.error?.message ?? 'the stream failed', code: 'stream_interrupted' });
          }
          yield { event: ev.event ?? 'message', data: ev.data };
          if (ev.event === 'message_stop') return;
        }
        throw new ApiError({ status: 502, type: 'upstream_error', message: 'llm service ended the stream without message_stop', code: 'stream_interrupted' });
      } catch (err) {
        throw http.mapError(err);
      } finally {
        if (!res.body.destroyed) res.body.destroy();
      }
    }
    return { ...from, events: events(), usage: () => usage };
  }

  async models(meta: CallMeta = {}): Promise<ModelEntry[]> {
    const list = await this.http.json<{ data: ModelEntry[] }>('GET', PATHS.models, meta);
    return list.data.map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: m.owned_by }));
  }

  providers(meta: CallMeta = {}): Promise<unknown> {
    return this.http.json<unknown>('GET', PATHS.providers, meta);
  }
}

/** URLs and pool settings of the three peers. */
export interface HttpClientsOptions {
  templatesUrl: string;
  contextUrl: string;
  llmUrl: string;
  pool?: PeerHttpOptions;
}

/** The three peers over HTTP, each through its own keep-alive pool. */
export function createHttpClients(options: HttpClientsOptions): RouterClients & { peers: Record<'templates' | 'context' | 'llm', PeerHttp> } {
  const peers = {
    templates: new PeerHttp('templates', options.templatesUrl, { ...options.pool, headersTimeoutMs: 10_000 }),
    context: new PeerHttp('context', options.contextUrl, { ...options.pool, headersTimeoutMs: 5_000 }),
    // llm calls wait on providers: its own timeouts decide; ours is a backstop.
    llm: new PeerHttp('llm', options.llmUrl, { ...options.pool, headersTimeoutMs: 300_000, bodyTimeoutMs: 300_000 }),
  };
  return {
    peers,
    templates: new HttpTemplatesClient(peers.templates),
    context: new HttpContextClient(peers.context),
    llm: new HttpLlmClient(peers.llm),
    async close() {
      await Promise.all(Object.values(peers).map((p) => p.close()));
    },
  };
}
