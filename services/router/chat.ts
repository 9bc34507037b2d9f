import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { HEADERS, METRICS } from '../../contracts';
import { ApiError, LATENCY_BUCKETS, badRequest, type Logger } from '../kit';
import { SSE_HEADERS, checkMessages, misspeltChatField, unknownChatFields, writeSse, type ChatCompletionChunk, type ChatMessage, type ChatRequest, type RouterChatRequest, type ThinkingBlock } from '../openai';
import type { CallMeta, ContextClient, LlmClient, LlmOrigin } from './clients';
import type { TemplateCache } from './template-cache';
import type { RollingStats } from '../kit/rolling-stats';
import type { CallUsage, Ledger } from './keys/ledger';
import { isAdmissionRefusal, markDegraded } from './auth-hook';
import { watchClient } from './client-gone';
import { callOptions, callUsage, checkModelAllowed, settleSpend, takeLease, usageCostUsd } from './billing';
import { assemblePromptTurn, isSystemMessage, recordPromptCall, storeTurn, type PromptTarget, type PromptTurnDeps, type Turn } from './prompt-turn';

/** Options of the chat completions handler. */
export interface ChatHandlerOptions {
  llm: LlmClient;
  context: ContextClient;
  templates: TemplateCache;
  logger: Logger;
  registry: Registry;
  /** The token budget of the history sent upstream. @default the context service's default */
  historyMaxTokens?: number;
  /**
   * Per prompt version aggregates (requests, errors, latency, cost) for `GET /v1/stats/prompts/{name}`.
   * @default not recorded
   */
  stats?: RollingStats;
  /**
   * The spend ledger: every answered call of an authenticated key is counted (and its budget
   * lease settled). @default not counted
   */
  ledger?: Ledger;
  /** The per-prompt-version metrics. @default registered on `registry` */
  promptMetrics?: PromptMetrics;
}

/** The per-prompt-version metrics, shared by every route that renders templates (chat, messages). */
export interface PromptMetrics {
  promptRequests: Counter<'prompt' | 'version'>;
  promptDuration: Histogram<'prompt' | 'version' | 'status_code'>;
  promptCost: Counter<'prompt' | 'version'>;
}

/** Registers the per-prompt-version metrics (once per registry). */
export function createPromptMetrics(registry: Registry): PromptMetrics {
  return {
    promptRequests: new Counter({
      name: METRICS.promptRequests,
      help: 'Completions (chat and messages) that used a prompt template, by template and version.',
      labelNames: ['prompt', 'version'] as const,
      registers: [registry],
    }),
    // Per prompt version: what a rollout or a split compares (traffic, latency, errors, spend).
    promptDuration: new Histogram({
      name: METRICS.promptDuration,
      help: 'Duration of completions (chat and messages) that used a prompt template, by template, version and status code.',
      labelNames: ['prompt', 'version', 'status_code'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    promptCost: new Counter({
      name: METRICS.promptCostUsd,
      help: 'USD spent on completions (chat and messages) that used a prompt template (cache hits cost nothing), by template and version.',
      labelNames: ['prompt', 'version'] as const,
      registers: [registry],
    }),
  };
}

/**
 * Failures that say something about the prompt version's health: not the client's own mistakes,
 * nor its key being over its own limits (an admission refusal).
 */
export function countsAsError(err: unknown): boolean {
  if (isAdmissionRefusal(err)) return false;
  if (!(err instanceof ApiError)) return true;
  return err.statusCode >= 500 || err.statusCode === 429;
}

/** The assistant message a stream spelled out in deltas: its text, its tool calls and its thinking blocks, joined. */
class StreamedReply {
  private text = '';
  private readonly thinking: ThinkingBlock[] = [];
  private readonly calls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> = [];

  add(chunk: ChatCompletionChunk): void {
    // With `n` > 1 the session keeps the first choice, as a plain answer's `choices[0]`.
    const delta = chunk.choices?.find((c) => (c.index ?? 0) === 0)?.delta;
    if (!delta) return;
    if (typeof delta.content === 'string') this.text += delta.content;
    // Each delta's thinking_blocks are whole blocks (the adapters send a block when it ends).
    if (Array.isArray(delta.thinking_blocks)) this.thinking.push(...(delta.thinking_blocks as ThinkingBlock[]));
    for (const tc of delta.tool_calls ?? []) {
      const at = typeof tc.index === 'number' ? tc.index : this.calls.length;
      const call = (this.calls[at] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
      if (tc.id) call.id = tc.id;
      if (tc.function?.name) call.function.name += tc.function.name;
      if (tc.function?.arguments) call.function.arguments += tc.function.arguments;
    }
  }

  message(): Pick<ChatMessage, 'role' | 'content' | 'tool_calls' | 'thinking_blocks'> {
    const calls = this.calls.filter(Boolean);
    const thinking = this.thinking.length > 0 ? { thinking_blocks: this.thinking } : {};
    // Like the plain API: content is null when the model only called tools.
    return calls.length > 0 ? { role: 'assistant', content: this.text || null, tool_calls: calls, ...thinking } : { role: 'assistant', content: this.text, ...thinking };
  }
}

function setOrigin(reply: FastifyReply, origin: LlmOrigin): void {
  reply.header(HEADERS.provider, origin.provider);
  reply.header(HEADERS.model, origin.model);
  reply.header(HEADERS.cache, origin.cache);
}

/**
 * The `POST /v1/chat/completions` handler: renders the prompt from the cache and reads the
 * session's history in parallel, asks llm, answers (plain JSON or SSE), then stores the turn.
 */
export function createChatHandler(options: ChatHandlerOptions) {
  const { llm, context, templates, logger } = options;
  const ledger = options.ledger;
  const turnDeps: PromptTurnDeps = {
    templates,
    context,
    logger,
    promptMetrics: options.promptMetrics ?? createPromptMetrics(options.registry),
    historyMaxTokens: options.historyMaxTokens,
    stats: options.stats,
  };
  const record = (target: PromptTarget | undefined, error: boolean, costUsd = 0) => recordPromptCall(turnDeps, target, error, costUsd);

  return async function chatCompletions(request: FastifyRequest<{ Body: RouterChatRequest }>, reply: FastifyReply) {
    const body = request.body;
    const meta: CallMeta = { requestId: request.id, traceContext: request.traceContext };
    const tenant = request.apiKey?.id;

    if (body.messages) checkMessages(body.messages);
    // Fields nobody knows go on to llm (passthrough providers take them); a slip of the keyboard
    // on one of ours is refused here, at once, whatever the peers' state.
    for (const field of unknownChatFields(body)) {
      const meant = misspeltChatField(field);
      if (meant) throw badRequest(`'${field}' is not a parameter: did you mean '${meant}'?`, field, 'unknown_parameter');
    }

    // The fast path: no prompt, no session; the body goes upstream as it came.
    if (body.prompt === undefined && body.session_id === undefined) {
      if (!body.messages || body.messages.length === 0) throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
      if (!body.model) throw badRequest(`'model' is required`, 'model');
      checkModelAllowed(request, body.model);
      markDegraded(reply, request.degraded ?? []);
      return body.stream
        ? stream(request, reply, body as ChatRequest, meta, tenant, undefined, undefined)
        : plain(reply, body as ChatRequest, meta, tenant, undefined, undefined);
    }

    const assembled = await assemblePromptTurn(turnDeps, request, reply, {
      prompt: body.prompt,
      sessionId: body.session_id,
      model: body.model,
      hasMessages: body.messages !== undefined && body.messages.length > 0,
      ownMessages: () => body.messages ?? [],
    });
    const { rendered, turn, target, degraded } = assembled;
    // Upstream order: template system messages, history, template other messages, request messages.
    const messages: ChatMessage[] = [...rendered.filter(isSystemMessage), ...assembled.history, ...rendered.filter((m) => !isSystemMessage(m)), ...(body.messages ?? [])];
    const upstream: ChatRequest = { ...(body as ChatRequest), model: assembled.model, messages };
    delete upstream.prompt;
    delete upstream.session_id;
    markDegraded(reply, degraded);
    return body.stream ? stream(request, reply, upstream, meta, tenant, turn, target) : plain(reply, upstream, meta, tenant, turn, target);
  };

  async function plain(
    reply: FastifyReply,
    upstream: ChatRequest,
    meta: CallMeta,
    tenant: string | undefined,
    turn: Turn | undefined,
    target: PromptTarget | undefined,
  ) {
    const request = reply.request;
    const lease = takeLease(request);
    let result;
    try {
      result = await llm.complete(upstream, callOptions(request, meta, tenant, lease));
    } catch (err) {
      settleSpend(ledger, logger, request, lease, undefined);
      if (countsAsError(err)) record(target, true);
      throw err;
    }
    settleSpend(ledger, logger, request, lease, callUsage(result.completion.usage, result, target?.prompt));
    record(target, false, usageCostUsd(result.completion.usage));
    setOrigin(reply, result);
    if (turn) await storeTurn(turnDeps, turn, result.completion.choices[0]?.message ?? { role: 'assistant', content: '' }, meta);
    return reply.send(result.completion);
  }

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    upstream: ChatRequest,
    meta: CallMeta,
    tenant: string | undefined,
    turn: Turn | undefined,
    target: PromptTarget | undefined,
  ) {
    const client = watchClient(reply);
    const lease = takeLease(request);
    // The ledger needs the usage of every billed stream: ask for it, and keep the usage chunk
    // from a client that did not.
    const clientUsage = upstream.stream_options?.include_usage === true;
    const billed = ledger !== undefined && request.apiKey !== undefined;
    if (billed && !clientUsage) upstream = { ...upstream, stream_options: { ...upstream.stream_options, include_usage: true } };
    let result: Awaited<ReturnType<LlmClient['stream']>>;
    try {
      result = await llm.stream(upstream, { ...callOptions(request, meta, tenant, lease), signal: client.signal });
    } catch (err) {
      settleSpend(ledger, logger, request, lease, undefined);
      if (!client.signal.aborted && countsAsError(err)) record(target, true);
      throw err;
    }
    let settled = false;
    const finish = (usage: CallUsage | undefined) => {
      if (settled) return;
      settled = true;
      settleSpend(ledger, logger, request, lease, usage);
    };
    // A client gone before the first chunk was read never runs the generator: release here.
    reply.raw.once('close', () => finish(undefined));
    setOrigin(reply, result);
    reply.headers(SSE_HEADERS);
    const streamed = new StreamedReply();
    let cost = 0;
    async function* observed(): AsyncGenerator<ChatCompletionChunk> {
      let usage: unknown;
      try {
        for await (const chunk of result.chunks as AsyncIterable<ChatCompletionChunk>) {
          if (chunk.usage) {
            cost = usageCostUsd(chunk.usage);
            usage = chunk.usage;
            if (!clientUsage && (!chunk.choices || chunk.choices.length === 0)) continue;
          }
          if (turn) streamed.add(chunk);
          yield chunk;
        }
      } finally {
        client.release();
        // A stream that broke off reported no usage: nothing is known to bill (docs/keys.md).
        finish(usage !== undefined ? callUsage(usage, result, target?.prompt) : undefined);
      }
    }
    const events = writeSse(observed(), {
      onError: (err) => {
        if (client.signal.aborted) return undefined;
        record(target, true);
        const apiError = err instanceof ApiError ? err : new ApiError({ status: 502, type: 'upstream_error', message: `the stream broke off: ${(err as Error).message}`, code: 'stream_interrupted' });
        logger.warn({ err: apiError.message, requestId: request.id }, 'stream failed mid-way');
        return apiError.toBody();
      },
      // The turn is stored before [DONE], so a client that reads [DONE] finds it in the session.
      beforeDone: async () => {
        if (client.signal.aborted) return;
        record(target, false, cost);
        if (turn) await storeTurn(turnDeps, turn, streamed.message(), meta);
      },
    });
    return reply.send(Readable.from(events, { objectMode: false }));
  }
}
