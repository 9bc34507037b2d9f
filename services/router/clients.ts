/**
 * The router's view of its three peers. Each has two implementations: in-process (wrapping
 * the peer's core, in `SERVICE=all`) and HTTP (keep-alive pools, in the mesh). Both throw
 * `ApiError`s: 4xx as the peer reports them, 503 `dependency_unavailable` when the peer
 * cannot be reached.
 */
import type { AnthropicEvent, AnthropicResponse, MessagesRequest } from '../anthropic';
import type { ContextMessageInput, ContextWindow } from '../context';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest, EncodedEmbeddingsResponse, PassthroughRequest } from '../openai';
import type { PassthroughResponse } from '../llm/types';
import type { UsageWithCost } from '../llm/core';
import type { ChangeFeed, TemplateVersion, TemplatesExport, VersionList } from '../templates/types';
import type { CallMeta } from './http-client';

export type { CallMeta } from './http-client';

/** What the template cache needs from the templates service. */
export interface TemplatesClient {
  /** Every active template with its labels and the versions they point at. */
  exportAll(meta?: CallMeta): Promise<TemplatesExport>;
  /** Changes after `since`, oldest first. */
  changesSince(since: number, meta?: CallMeta): Promise<ChangeFeed>;
  /** A template's labels and its newest version; undefined when there is no such template. */
  head(name: string, meta?: CallMeta): Promise<VersionList | undefined>;
  /** One version; undefined when it does not exist. */
  version(name: string, version: number, meta?: CallMeta): Promise<TemplateVersion | undefined>;
}

/** What the router needs from the context service. */
export interface ContextClient {
  read(sessionId: string, options: { maxTokens?: number; maxMessages?: number }, meta?: CallMeta): Promise<ContextWindow>;
  append(sessionId: string, messages: ContextMessageInput[], meta?: CallMeta): Promise<void>;
  delete(sessionId: string, meta?: CallMeta): Promise<void>;
}

/** Where an llm answer came from (the `x-promptmesh-*` headers). */
export interface LlmOrigin {
  provider: string;
  model: string;
  cache: 'hit' | 'miss';
}

/** Options of an llm call. */
export interface LlmClientCallOptions extends CallMeta {
  /** Who is asking (the API key id); keys the response cache per tenant. */
  tenant?: string;
  /** The tenant's tokens-per-minute budget (its API key's `tpm`), enforced by llm. @default none */
  tenantTpm?: number;
  /** The team of the tenant's key (cost metrics' `team` label). @default none */
  team?: string;
  /** The team's tokens-per-minute budget, enforced by llm. @default none */
  teamTpm?: number;
  /**
   * The router's admission of the call (rpm, budgets, concurrency; auth-hook.ts): llm waits for
   * it before serving a cache hit or calling a provider, and a rejection is the call's answer.
   * @default admitted
   */
  admitted?: Promise<unknown>;
}

/** A model as `GET /v1/models` lists it. */
export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** What {@link LlmClient.messages} answers. */
export interface LlmMessagesAnswer extends LlmOrigin {
  /** Whether an Anthropic provider answered the body as it came (else it was translated). */
  passthrough: boolean;
  /** A plain call's answer. */
  message?: AnthropicResponse;
  /** A stream's events (`stream: true`). */
  events?: AsyncIterable<AnthropicEvent>;
  /**
   * The call's usage as llm counted it (OpenAI shape, with `cost_usd` and the exact
   * `cost_micro_usd`): at once for a plain call, for a stream once its events were read to the
   * end. Undefined before that, and when none was reported (a stream that broke off).
   */
  usage(): UsageWithCost | undefined;
}

/** What {@link LlmClient.responses} answers: the provider's answer as it came, and its usage once read. */
export interface LlmResponsesAnswer extends LlmOrigin, PassthroughResponse {
  /**
   * The usage the answer reported, with its cost as llm counted it: known once `body` was read
   * to its end; undefined before, and when the answer carried none (or broke off).
   */
  usage(): UsageWithCost | undefined;
}

/** What the router needs from the llm service. */
export interface LlmClient {
  complete(request: ChatRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { completion: ChatCompletion }>;
  /**
   * Starts a stream; settles once the provider answered (so failures before the first byte
   * reject and become an HTTP error, not a broken stream).
   */
  stream(request: ChatRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { chunks: AsyncIterable<ChatCompletionChunk> }>;
  /** Embeddings, vectors in the request's `encoding_format`; `usage.cost_usd` holds the cost. */
  embed(request: EmbeddingsRequest, options: LlmClientCallOptions): Promise<LlmOrigin & { response: EncodedEmbeddingsResponse }>;
  /**
   * The Responses API, passed through: the provider's status, content type and body as they
   * came (a stream stays a stream). Settles once the provider answered.
   */
  responses(request: PassthroughRequest, options: LlmClientCallOptions): Promise<LlmResponsesAnswer>;
  /**
   * An Anthropic Messages call (`POST /v1/messages`): `message` for a plain one, `events` for
   * `stream: true` (settled once the provider answered, as {@link stream}). `passthrough` says
   * whether an Anthropic provider answered the body as it came.
   */
  messages(request: MessagesRequest, options: LlmClientCallOptions & { anthropicBeta?: string }): Promise<LlmMessagesAnswer>;
  models(meta?: CallMeta): Promise<ModelEntry[]>;
  /** Each provider's circuit state, latency estimate and limits (admin data). */
  providers(meta?: CallMeta): Promise<unknown>;
}

/** The three clients together. */
export interface RouterClients {
  templates: TemplatesClient;
  context: ContextClient;
  llm: LlmClient;
  /** Releases pools. */
  close(): Promise<void>;
}
