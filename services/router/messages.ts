/**
 * The router's `POST /v1/messages`: Anthropic's Messages API, so the Anthropic SDKs (and Claude
 * Code) work by base URL. Routed by llm like chat: to an Anthropic provider the body passes
 * through as it came, to the others it is translated (services/anthropic). `prompt` and
 * `session_id` work as on chat (docs/router.md, "POST /v1/messages"); errors come in
 * Anthropic's shape.
 */
import { Readable } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS } from '../../contracts';
import { ApiError, badRequest, type Logger } from '../kit';
import { renderCompiled, type TemplateMessage, type Variables } from '../kit/template-syntax';
import type { ContextMessageInput, ContextWindow } from '../context';
import { SSE_HEADERS, type ChatMessage } from '../openai';
import {
  ANTHROPIC_BETA_HEADER,
  ANTHROPIC_BETA_PATTERN,
  AnthropicStreamAssembler,
  anthropicErrorBody,
  toAnthropicMessage,
  toChatReply,
  toChatRequest,
  writeAnthropicSse,
  type AnthropicBlock,
  type AnthropicMessage,
  type MessagesRequest,
  type RouterMessagesRequest,
} from '../anthropic';
import { scopedSessionId } from './admin';
import { callOptions, checkModelAllowed, refuseUnmeteredBudget } from './billing';
import { countsAsError, fromStored, idBase, renderError, toStored, type PromptMetrics } from './chat';
import type { RollingStats } from '../kit/rolling-stats';
import type { CallMeta, ContextClient, LlmClient } from './clients';
import type { TemplateCache } from './template-cache';

/** Options of the messages handler. */
export interface MessagesHandlerOptions {
  llm: LlmClient;
  context: ContextClient;
  templates: TemplateCache;
  logger: Logger;
  /** The token budget of the history sent upstream. @default the context service's default */
  historyMaxTokens?: number;
  /** The per-prompt-version metrics, shared with chat (one registration per registry). */
  promptMetrics: PromptMetrics;
  /** Per prompt version aggregates for `GET /v1/stats/prompts/{name}`, as chat records them. @default not recorded */
  stats?: RollingStats;
}

/** The route's error handler: every failure (auth, validation, upstream) in Anthropic's error shape. */
export function anthropicErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, error } = anthropicErrorBody(err);
  if (status >= 500) request.log.error({ err }, 'request failed');
  if (reply.sent || reply.raw.headersSent) return;
  void reply.code(status).headers(error.headers).send(body);
}

interface Turn {
  sessionId: string;
  base: string;
  messages: ContextMessageInput[];
}

const BETA = new RegExp(ANTHROPIC_BETA_PATTERN);

/** The client's `anthropic-beta` header (several headers joined), checked: a 400 names it when malformed. */
function betasOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = Array.isArray(header) ? header.join(',') : header;
  if (!BETA.test(value)) throw badRequest('must be comma-separated beta names (letters, digits, . _ -), at most 1024 characters', ANTHROPIC_BETA_HEADER);
  return value;
}

/** Joins neighbouring turns of one role (Anthropic wants user and assistant to alternate). */
function alternate(messages: AnthropicMessage[]): AnthropicMessage[] {
  const out: AnthropicMessage[] = [];
  const blocks = (c: AnthropicMessage['content']): AnthropicBlock[] => (typeof c === 'string' ? (c ? [{ type: 'text', text: c }] : []) : (c as AnthropicBlock[]));
  for (const m of messages) {
    const last = out[out.length - 1];
    if (last && last.role === m.role) last.content = [...blocks(last.content), ...blocks(m.content)] as never;
    else out.push({ role: m.role, content: m.content });
  }
  return out;
}

/** A template's or a history's system text, then the request's own `system`. */
function systemWith(prefix: string[], system: MessagesRequest['system']): MessagesRequest['system'] {
  if (prefix.length === 0) return system;
  const text = prefix.join('\n\n');
  if (system === undefined || system === '') return text;
  if (typeof system === 'string') return `${text}\n\n${system}`;
  return [{ type: 'text', text } as { type: string }, ...system];
}

/** Builds the `POST /v1/messages` handler. */
export function createMessagesHandler(options: MessagesHandlerOptions) {
  const { llm, context, templates, logger, historyMaxTokens, stats } = options;
  const { promptRequests, promptDuration, promptCost } = options.promptMetrics;

  /** Counts a call against its prompt version, as chat does (stats: requests, errors, latency, cost). */
  function record(target: { prompt: string; version: number; startedAt: number } | undefined, error: boolean, costUsd = 0): void {
    if (!target) return;
    if (!error && costUsd > 0) promptCost.inc({ prompt: target.prompt, version: String(target.version) }, costUsd);
    stats?.record(target.prompt, String(target.version), { latencyMs: performance.now() - target.startedAt, error, costUsd });
  }

  async function store(turn: Turn, reply: ChatMessage, meta: CallMeta): Promise<void> {
    try {
      await context.append(turn.sessionId, [...turn.messages, toStored(reply, `${turn.base}.reply`)], meta);
    } catch (err) {
      logger.warn({ err: (err as Error).message, session: turn.sessionId }, 'could not store the turn in the session history');
    }
  }

  return async function messages(request: FastifyRequest<{ Body: RouterMessagesRequest }>, reply: FastifyReply) {
    const body = request.body;
    const meta: CallMeta = { requestId: request.id, traceContext: request.traceContext };
    const tenant = request.apiKey?.id;
    const degraded = request.degraded ?? [];
    const { prompt, session_id: sessionId, ...rest } = body;
    const betas = betasOf(request.headers[ANTHROPIC_BETA_HEADER]);
    let upstream: MessagesRequest;
    let turn: Turn | undefined;
    let target: { prompt: string; version: number; startedAt: number } | undefined;

    if (prompt === undefined && sessionId === undefined) {
      if (!body.messages || body.messages.length === 0) throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
      if (!body.model) throw badRequest(`'model' is required`, 'model');
      upstream = rest as MessagesRequest;
    } else {
      if (!prompt && (!body.messages || body.messages.length === 0)) throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
      const storedSessionId = sessionId === undefined ? undefined : scopedSessionId(tenant, sessionId);
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
        reply.header(HEADERS.promptVersion, String(version.version));
        const labels = { prompt: version.name, version: String(version.version) };
        promptRequests.inc(labels);
        reply.raw.once('close', () => promptDuration.observe({ ...labels, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000));
        target = { prompt: version.name, version: version.version, startedAt: performance.now() };
      }
      const model = body.model ?? version?.model ?? undefined;
      if (!model) throw badRequest(`'model' is required (the prompt template names no model)`, 'model');
      const isSystem = (m: ChatMessage) => m.role === 'system' || m.role === 'developer';
      // The same order as chat: template system text first (into `system`), then the history,
      // the template's other messages, the request's messages.
      const systemText: string[] = [];
      const turns: AnthropicMessage[] = [];
      for (const m of rendered ?? []) if (isSystem(m)) systemText.push(typeof m.content === 'string' ? m.content : '');
      for (const m of history?.messages ?? []) {
        const c = fromStored(m);
        if (isSystem(c)) systemText.push(typeof c.content === 'string' ? c.content : (c.content ?? []).map((p) => p.text ?? '').join(''));
        else turns.push(toAnthropicMessage(c) as AnthropicMessage);
      }
      for (const m of rendered ?? []) if (!isSystem(m)) turns.push(toAnthropicMessage(m) as AnthropicMessage);
      const own = body.messages ?? [];
      turns.push(...own);
      upstream = { ...(rest as MessagesRequest), model, messages: alternate(turns) };
      const system = systemWith(systemText.filter(Boolean), body.system);
      if (system !== undefined) upstream.system = system;

      if (storedSessionId && !degraded.includes('history')) {
        // The session keeps the canonical form (as chat does), so chat and messages share it.
        const source = own.length > 0 ? toChatRequest({ model, max_tokens: 1, messages: own }, { strict: false }).messages : (rendered ?? []).filter((m) => !isSystem(m));
        const base = idBase(request.id);
        turn = { sessionId: storedSessionId, base, messages: source.map((m, i) => toStored(m, `${base}.${i}`)) };
      }
    }
    if (degraded.length > 0) reply.header(HEADERS.degraded, degraded.join(','));
    checkModelAllowed(request, upstream.model);
    // The Anthropic answer's cost is not counted in the spend ledger yet (docs/keys.md): a key
    // with a budget is refused here rather than let spend past it uncounted.
    refuseUnmeteredBudget(request, 'Messages API');

    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    reply.raw.once('close', onClose);
    let result: Awaited<ReturnType<LlmClient['messages']>>;
    try {
      result = await llm.messages(upstream, { ...callOptions(request, meta, tenant), signal: abort.signal, ...(betas ? { anthropicBeta: betas } : {}) });
    } catch (err) {
      if (!abort.signal.aborted && countsAsError(err)) record(target, true);
      throw err;
    }
    reply.header(HEADERS.provider, result.provider).header(HEADERS.model, result.model).header(HEADERS.cache, result.cache).header(HEADERS.passthrough, String(result.passthrough));
    if (result.message) {
      reply.raw.off('close', onClose);
      record(target, false, result.costUsd ?? 0);
      if (turn) await store(turn, toChatReply(result.message), meta);
      return reply.send(result.message);
    }
    const assembler = new AnthropicStreamAssembler();
    async function* observed() {
      try {
        for await (const ev of result.events!) {
          if (turn) assembler.add(ev);
          yield ev;
        }
      } finally {
        reply.raw.off('close', onClose);
      }
    }
    const out = writeAnthropicSse(observed(), {
      onError: (err) => {
        if (abort.signal.aborted) return undefined;
        record(target, true);
        logger.warn({ err: (err as Error).message, requestId: request.id }, 'messages stream failed mid-way');
        return anthropicErrorBody(err).body;
      },
      afterLast: async () => {
        // A stream's cost is the llm's to count (promptmesh_llm_cost_usd_total); here it is unknown.
        if (!abort.signal.aborted) record(target, false);
        if (!abort.signal.aborted && turn) await store(turn, toChatReply({ content: assembler.content() }), meta);
      },
    });
    reply.headers(SSE_HEADERS);
    return reply.send(Readable.from(out, { objectMode: false }));
  };
}
