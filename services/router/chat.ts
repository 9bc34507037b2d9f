import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { HEADERS, METRICS } from '../../contracts';
import { ApiError, LATENCY_BUCKETS, badRequest, type Logger } from '../kit';
import { MissingVariablesError, TemplateError, renderCompiled, type TemplateMessage, type Variables } from '../kit/template-syntax';
import type { ContextMessageInput, ContextWindow, StoredMessage } from '../context';
import { SSE_HEADERS, checkMessages, misspeltChatField, unknownChatFields, writeSse, type ChatCompletionChunk, type ChatMessage, type ChatRequest, type RouterChatRequest, type ThinkingBlock } from '../openai';
import { scopedSessionId } from './admin';
import type { CallMeta, ContextClient, LlmClient, LlmOrigin } from './clients';
import type { TemplateCache } from './template-cache';
import type { RollingStats } from '../kit/rolling-stats';
import type { CallUsage, Ledger } from './keys/ledger';
import { callOptions, callUsage, checkModelAllowed, settleSpend, takeLease } from './billing';

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

/** Which prompt version a call is counted against in the stats. */
interface StatsTarget {
  prompt: string;
  version: number;
  startedAt: number;
}

/** Failures that say something about the prompt version's health: not the client's own mistakes. */
export function countsAsError(err: unknown): boolean {
  if (!(err instanceof ApiError)) return true;
  return err.statusCode >= 500 || err.statusCode === 429;
}

function costOf(usage: unknown): number {
  const cost = (usage as { cost_usd?: unknown } | null | undefined)?.cost_usd;
  return typeof cost === 'number' && Number.isFinite(cost) ? cost : 0;
}


const MESSAGE_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/** Message ids derived from the request id, so a retried request's append is deduplicated. */
export function idBase(requestId: string): string {
  return MESSAGE_ID.test(requestId) ? requestId : createHash('sha256').update(requestId).digest('hex').slice(0, 32);
}

/**
 * A message as the session stores it: its content as given (parts included) and its tool
 * fields, so the history replays exactly what the provider saw.
 */
export function toStored(m: Pick<ChatMessage, 'role' | 'content' | 'name' | 'tool_calls' | 'tool_call_id' | 'thinking_blocks'>, id: string): ContextMessageInput {
  const calls = m.tool_calls && m.tool_calls.length > 0;
  // Content may be null only beside tool calls (an assistant reply that is all refusal has none).
  const out: ContextMessageInput = { id, role: m.role, content: m.content ?? (calls ? null : '') };
  if (m.name) out.name = m.name;
  if (calls) out.tool_calls = m.tool_calls;
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  if (m.thinking_blocks && m.thinking_blocks.length > 0) out.thinking_blocks = m.thinking_blocks;
  return out;
}

/** A stored message as it goes upstream again. */
export function fromStored(m: StoredMessage): ChatMessage {
  const out: ChatMessage = { role: m.role, content: (m.content ?? null) as ChatMessage['content'] };
  if (m.name) out.name = m.name;
  if (m.tool_calls && m.tool_calls.length > 0) out.tool_calls = m.tool_calls as ChatMessage['tool_calls'];
  if (m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
  if (m.thinking_blocks && m.thinking_blocks.length > 0) out.thinking_blocks = m.thinking_blocks;
  return out;
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

/** A template problem at render time, as the 400 the client gets (fields under `prompt.`). */
export function renderError(err: unknown): unknown {
  if (err instanceof MissingVariablesError) {
    return badRequest(`prompt template is missing variables: ${err.missing.join(', ')}`, 'prompt.variables', 'missing_variables');
  }
  if (err instanceof TemplateError) {
    const param = err.param.startsWith('variables') ? `prompt.${err.param}` : 'prompt';
    return badRequest(err.message.replace(/'variables/g, `'prompt.variables`), param);
  }
  return err;
}

/**
 * The `POST /v1/chat/completions` handler: renders the prompt from the cache and reads the
 * session's history in parallel, asks llm, answers (plain JSON or SSE), then stores the turn.
 */
export function createChatHandler(options: ChatHandlerOptions) {
  const { llm, context, templates, logger } = options;
  const { promptRequests, promptDuration, promptCost } = options.promptMetrics ?? createPromptMetrics(options.registry);
  const historyMaxTokens = options.historyMaxTokens;
  const stats = options.stats;
  const ledger = options.ledger;

  function record(target: StatsTarget | undefined, error: boolean, costUsd = 0): void {
    if (!target || !stats) return;
    stats.record(target.prompt, String(target.version), { latencyMs: performance.now() - target.startedAt, error, costUsd });
  }

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
      if (request.degraded) reply.header(HEADERS.degraded, request.degraded.join(','));
      return body.stream
        ? stream(request, reply, body as ChatRequest, meta, tenant, undefined, undefined)
        : plain(reply, body as ChatRequest, meta, tenant, undefined, undefined);
    }

    const { prompt, session_id: sessionId } = body;
    // With auth on, each API key has its own session namespace: a key can never read or
    // extend another key's conversation by guessing its id.
    const storedSessionId = sessionId === undefined ? undefined : scopedSessionId(tenant, sessionId);
    if (!prompt && (!body.messages || body.messages.length === 0)) {
      throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
    }
    // Template and history in parallel; history failures degrade, template failures answer.
    const degraded = request.degraded ?? [];
    const [version, history] = await Promise.all([
      prompt ? templates.resolve(prompt.name, { label: prompt.label, version: prompt.version, stickyKey: sessionId, meta }) : undefined,
      storedSessionId
        ? context.read(storedSessionId, historyMaxTokens ? { maxTokens: historyMaxTokens } : {}, meta).catch((err: unknown): ContextWindow | undefined => {
            if (err instanceof ApiError && err.statusCode === 400) throw err;
            logger.warn({ err: (err as Error).message, session: sessionId }, 'session history unavailable; answering without it');
            degraded.push('history');
            return undefined;
          })
        : undefined,
    ]);

    let rendered: TemplateMessage[] | undefined;
    if (version) {
      try {
        rendered = renderCompiled(version.compiled, (prompt!.variables ?? {}) as Variables);
      } catch (err) {
        throw renderError(err);
      }
    }

    // Upstream order: template system messages, history, template other messages, request messages.
    const messages: ChatMessage[] = [];
    if (rendered) for (const m of rendered) if (m.role === 'system' || m.role === 'developer') messages.push(m);
    if (history) for (const m of history.messages) messages.push(fromStored(m));
    if (rendered) for (const m of rendered) if (m.role !== 'system' && m.role !== 'developer') messages.push(m);
    if (body.messages) for (const m of body.messages) messages.push(m);

    const model = body.model ?? version?.model ?? undefined;
    if (!model) throw badRequest(`'model' is required (the prompt template names no model)`, 'model');
    checkModelAllowed(request, model);

    const upstream: ChatRequest = { ...(body as ChatRequest), model, messages };
    delete upstream.prompt;
    delete upstream.session_id;

    let promptLabels: PromptLabels | undefined;
    if (version) {
      promptLabels = { prompt: version.name, version: String(version.version) };
      promptRequests.inc(promptLabels);
      reply.header(HEADERS.promptVersion, String(version.version));
      // Observed once the response is over, with the status it ended with (errors included).
      const labels = promptLabels;
      reply.raw.once('close', () => promptDuration.observe({ ...labels, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000));
    }
    if (degraded.length > 0) reply.header(HEADERS.degraded, degraded.join(','));

    // What the session stores: the request's messages (or, with none, the rendered prompt's
    // non-system ones) and the reply, faithfully: assistant tool calls, tool results and content
    // parts as given, so the next turn replays a history the provider accepts. Ids from the
    // request id make a retried append a no-op.
    let turn: Turn | undefined;
    if (storedSessionId && !degraded.includes('history')) {
      const source: ChatMessage[] = body.messages && body.messages.length > 0 ? body.messages : (rendered ?? []).filter((m) => m.role !== 'system' && m.role !== 'developer');
      const base = idBase(request.id);
      turn = { sessionId: storedSessionId, base, messages: source.map((m, i) => toStored(m, `${base}.${i}`)) };
    }
    const target = version ? { prompt: version.name, version: version.version, startedAt: performance.now() } : undefined;
    return body.stream ? stream(request, reply, upstream, meta, tenant, turn, target) : plain(reply, upstream, meta, tenant, turn, target, promptLabels);
  };




  async function store(turn: Turn, reply: Pick<ChatMessage, 'role' | 'content' | 'tool_calls' | 'thinking_blocks'>, meta: CallMeta): Promise<void> {
    const messages: ContextMessageInput[] = [...turn.messages, toStored(reply, `${turn.base}.reply`)];
    try {
      await context.append(turn.sessionId, messages, meta);
    } catch (err) {
      logger.warn({ err: (err as Error).message, session: turn.sessionId }, 'could not store the turn in the session history');
    }
  }

  async function plain(
    reply: FastifyReply,
    upstream: ChatRequest,
    meta: CallMeta,
    tenant: string | undefined,
    turn: Turn | undefined,
    target: StatsTarget | undefined,
    promptLabels?: PromptLabels,
  ) {
    const request = reply.request;
    const lease = takeLease(request);
    let result;
    try {
      result = await llm.complete(upstream, callOptions(request, meta, tenant));
    } catch (err) {
      settleSpend(ledger, logger, request, lease, undefined);
      if (countsAsError(err)) record(target, true);
      throw err;
    }
    settleSpend(ledger, logger, request, lease, callUsage(result.completion.usage, result, target?.prompt));
    const cost = costOf(result.completion.usage);
    record(target, false, cost);
    if (promptLabels && cost > 0) promptCost.inc(promptLabels, cost);
    setOrigin(reply, result);
    if (turn) await store(turn, result.completion.choices[0]?.message ?? { role: 'assistant', content: '' }, meta);
    return reply.send(result.completion);
  }

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    upstream: ChatRequest,
    meta: CallMeta,
    tenant: string | undefined,
    turn: Turn | undefined,
    target: StatsTarget | undefined,
  ) {
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    reply.raw.once('close', onClose);
    const lease = takeLease(request);
    // The ledger needs the usage of every billed stream: ask for it, and keep the usage chunk
    // from a client that did not.
    const clientUsage = upstream.stream_options?.include_usage === true;
    const billed = ledger !== undefined && request.apiKey !== undefined;
    if (billed && !clientUsage) upstream = { ...upstream, stream_options: { ...upstream.stream_options, include_usage: true } };
    let result: Awaited<ReturnType<LlmClient['stream']>>;
    try {
      result = await llm.stream(upstream, { ...callOptions(request, meta, tenant), signal: abort.signal });
    } catch (err) {
      settleSpend(ledger, logger, request, lease, undefined);
      if (!abort.signal.aborted && countsAsError(err)) record(target, true);
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
            cost = costOf(chunk.usage);
            usage = chunk.usage;
            if (!clientUsage && (!chunk.choices || chunk.choices.length === 0)) continue;
          }
          if (turn) streamed.add(chunk);
          yield chunk;
        }
      } finally {
        reply.raw.off('close', onClose);
        // A stream that broke off reported no usage: nothing is known to bill (docs/keys.md).
        finish(usage !== undefined ? callUsage(usage, result, target?.prompt) : undefined);
      }
    }
    const events = writeSse(observed(), {
      onError: (err) => {
        if (abort.signal.aborted) return undefined;
        record(target, true);
        const apiError = err instanceof ApiError ? err : new ApiError({ status: 502, type: 'upstream_error', message: `the stream broke off: ${(err as Error).message}`, code: 'stream_interrupted' });
        logger.warn({ err: apiError.message, requestId: request.id }, 'stream failed mid-way');
        return apiError.toBody();
      },
      // The turn is stored before [DONE], so a client that reads [DONE] finds it in the session.
      beforeDone: async () => {
        if (abort.signal.aborted) return;
        record(target, false, cost);
        if (turn) await store(turn, streamed.message(), meta);
      },
    });
    return reply.send(Readable.from(events, { objectMode: false }));
  }
}

/** The labels of the per-prompt-version metrics. */
interface PromptLabels {
  prompt: string;
  version: string;
}

interface Turn {
  sessionId: string;
  base: string;
  messages: ContextMessageInput[];
}
