import type { MessagesRequest } from '../anthropic';
import { ApiError } from '../kit';
import type { ContextCore } from '../context';
import type { LlmCore } from '../llm/core';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest, EncodedEmbeddingsResponse, PassthroughRequest } from '../openai';
import type { TemplatesCore } from '../templates/types';
import type { ContextClient, LlmClientCallOptions, LlmClient, LlmMessagesAnswer, LlmOrigin, LlmResponsesAnswer, ModelEntry, TemplatesClient } from './clients';

function orUndefinedOn404<T>(promise: Promise<T>): Promise<T | undefined> {
  return promise.catch((err: unknown) => {
    if (err instanceof ApiError && err.statusCode === 404) return undefined;
    throw err;
  });
}

/** The templates service's core, called in-process (`SERVICE=all`). */
export class LocalTemplatesClient implements TemplatesClient {
  constructor(readonly core: TemplatesCore) {}

  exportAll() {
    return this.core.exportAll();
  }

  changesSince(since: number) {
    return this.core.changesSince(Math.max(0, since));
  }

  head(name: string) {
    return orUndefinedOn404(this.core.versions(name, { limit: 1, order: 'desc' }));
  }

  version(name: string, version: number) {
    return orUndefinedOn404(this.core.get(name, { version }));
  }
}

/** The context service's core, called in-process (`SERVICE=all`). */
export class LocalContextClient implements ContextClient {
  constructor(readonly core: ContextCore) {}

  read(sessionId: string, options: { maxTokens?: number; maxMessages?: number }) {
    return this.core.read(sessionId, options);
  }

  async append(sessionId: string, messages: Parameters<ContextCore['append']>[1]) {
    await this.core.append(sessionId, messages);
  }

  delete(sessionId: string) {
    return this.core.delete(sessionId);
  }
}

/** The llm service's core, called in-process (`SERVICE=all`). */
export class LocalLlmClient implements LlmClient {
  constructor(readonly core: LlmCore) {}

  async complete(request: ChatRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { completion: ChatCompletion }> {
    const r = await this.core.complete(request, { tenant: options.tenant, tenantTpm: options.tenantTpm, team: options.team, teamTpm: options.teamTpm, admitted: options.admitted, traceContext: options.traceContext, signal: options.signal });
    return { provider: r.provider, model: r.model, cache: r.cache === 'hit' ? 'hit' : 'miss', completion: r.completion };
  }

  async stream(request: ChatRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { chunks: AsyncIterable<ChatCompletionChunk> }> {
    const r = await this.core.stream(request, { tenant: options.tenant, tenantTpm: options.tenantTpm, team: options.team, teamTpm: options.teamTpm, admitted: options.admitted, traceContext: options.traceContext, signal: options.signal });
    return { provider: r.provider, model: r.model, cache: r.cache === 'hit' ? 'hit' : 'miss', chunks: r.chunks };
  }

  async embed(request: EmbeddingsRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { response: EncodedEmbeddingsResponse }> {
    const r = await this.core.embed(request, { tenant: options.tenant, tenantTpm: options.tenantTpm, team: options.team, teamTpm: options.teamTpm, admitted: options.admitted, traceContext: options.traceContext, signal: options.signal });
    return { provider: r.provider, model: r.model, cache: r.cache === 'hit' ? 'hit' : 'miss', response: r.response };
  }

  async responses(request: PassthroughRequest, options: LlmClientCallOptions): Promise<LlmResponsesAnswer> {
    const r = await this.core.responses(request, { tenant: options.tenant, tenantTpm: options.tenantTpm, team: options.team, teamTpm: options.teamTpm, admitted: options.admitted, traceContext: options.traceContext, signal: options.signal });
    return { provider: r.provider, model: r.model, cache: 'miss', status: r.status, headers: r.headers, body: r.body, usage: r.usage };
  }

  async messages(request: MessagesRequest, options: LlmClientCallOptions & { anthropicBeta?: string }): Promise<LlmMessagesAnswer> {
    const r = await this.core.messages(request, { tenant: options.tenant, tenantTpm: options.tenantTpm, team: options.team, teamTpm: options.teamTpm, admitted: options.admitted, traceContext: options.traceContext, signal: options.signal, anthropicBeta: options.anthropicBeta });
    return { provider: r.provider, model: r.model, cache: r.cache === 'hit' ? 'hit' : 'miss', passthrough: r.passthrough, message: r.message, events: r.events, usage: r.usage };
  }

  async models(): Promise<ModelEntry[]> {
    return this.core.models().map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: m.owned_by }));
  }

  async providers(): Promise<unknown> {
    return { object: 'list', data: this.core.providers(), aliases: this.core.aliases() };
  }
}
