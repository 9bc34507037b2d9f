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
import { badRequest, type Logger } from '../kit';
import { SSE_HEADERS } from '../openai';
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
import { markDegraded } from './auth-hook';
import { watchClient } from './client-gone';
import { callOptions, callUsage, checkModelAllowed, settleSpend, takeLease, usageCostUsd } from './billing';
import { countsAsError, type PromptMetrics } from './chat';
import { assemblePromptTurn, isSystemMessage, recordPromptCall, storeTurn, type PromptTarget, type PromptTurnDeps, type Turn } from './prompt-turn';
import type { RollingStats } from '../kit/rolling-stats';
import type { CallMeta, ContextClient, LlmClient } from './clients';
import type { Ledger } from './keys/ledger';
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
  /**
   * The spend ledger: every answered call of an authenticated key is counted (and its budget
   * lease settled), as on chat. @default not counted
   */
  ledger?: Ledger;
}

/** The route's error handler: every failure (auth, validation, upstream) in Anthropic's error shape. */
export function anthropicErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, error } = anthropicErrorBody(err);
  if (status >= 500) request.log.error({ err }, 'request failed');
  if (reply.sent || reply.raw.headersSent) return;
  void reply.code(status).headers(error.headers).send(body);
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
  const { llm, logger, ledger } = options;
  const turnDeps: PromptTurnDeps = options;
  const record = (target: PromptTarget | undefined, error: boolean, costUsd = 0) => recordPromptCall(turnDeps, target, error, costUsd);

  return async function messages(request: FastifyRequest<{ Body: RouterMessagesRequest }>, reply: FastifyReply) {
    const body = request.body;
    const meta: CallMeta = { requestId: request.id, traceContext: request.traceContext };
    const tenant = request.apiKey?.id;
    const { prompt, session_id: sessionId, ...rest } = body;
    const betas = betasOf(request.headers[ANTHROPIC_BETA_HEADER]);
    let upstream: MessagesRequest;
    let turn: Turn | undefined;
    let target: PromptTarget | undefined;
    let degraded = request.degraded ?? [];

    if (prompt === undefined && sessionId === undefined) {
      if (!body.messages || body.messages.length === 0) throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
      if (!body.model) throw badRequest(`'model' is required`, 'model');
      checkModelAllowed(request, body.model);
      upstream = rest as MessagesRequest;
    } else {
      const own = body.messages ?? [];
      const assembled = await assemblePromptTurn(turnDeps, request, reply, {
        prompt,
        sessionId,
        model: body.model,
        hasMessages: own.length > 0,
        // The session keeps the canonical form (as chat does), so chat and messages share it.
        ownMessages: () => toChatRequest({ model: body.model ?? 'session', max_tokens: 1, messages: own }, { strict: false }).messages,
      });
      ({ turn, target, degraded } = assembled);
      // The same order as chat: template and history system text first (into `system`), then
      // the history, the template's other messages, the request's messages as Anthropic turns.
      const systemText: string[] = [];
      const turns: AnthropicMessage[] = [];
      for (const m of assembled.rendered) if (isSystemMessage(m)) systemText.push(typeof m.content === 'string' ? m.content : '');
      for (const c of assembled.history) {
        if (isSystemMessage(c)) systemText.push(typeof c.content === 'string' ? c.content : (c.content ?? []).map((p) => p.text ?? '').join(''));
        else turns.push(toAnthropicMessage(c) as AnthropicMessage);
      }
      for (const m of assembled.rendered) if (!isSystemMessage(m)) turns.push(toAnthropicMessage(m) as AnthropicMessage);
      turns.push(...own);
      upstream = { ...(rest as MessagesRequest), model: assembled.model, messages: alternate(turns) };
      const system = systemWith(systemText.filter(Boolean), body.system);
      if (system !== undefined) upstream.system = system;
    }
    markDegraded(reply, degraded);

    const client = watchClient(reply);
    const lease = takeLease(request);
    let result: Awaited<ReturnType<LlmClient['messages']>>;
    try {
      result = await llm.messages(upstream, { ...callOptions(request, meta, tenant, lease), signal: client.signal, ...(betas ? { anthropicBeta: betas } : {}) });
    } catch (err) {
      settleSpend(ledger, logger, request, lease, undefined);
      if (!client.signal.aborted && countsAsError(err)) record(target, true);
      throw err;
    }
    const answered = result;
    reply.header(HEADERS.provider, result.provider).header(HEADERS.model, result.model).header(HEADERS.cache, result.cache).header(HEADERS.passthrough, String(result.passthrough));
    if (result.message) {
      client.release();
      const usage = result.usage();
      settleSpend(ledger, logger, request, lease, callUsage(usage, result, target?.prompt));
      record(target, false, usageCostUsd(usage));
      if (turn) await storeTurn(turnDeps, turn, toChatReply(result.message), meta);
      return reply.send(result.message);
    }
    // A stream's usage is known once its last event was read: settle then, once. A stream that
    // broke off (or a client gone) settles with what llm reported, or releases the lease.
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      const usage = answered.usage();
      settleSpend(ledger, logger, request, lease, usage !== undefined ? callUsage(usage, answered, target?.prompt) : undefined);
    };
    // A client gone before the first event was read never runs the generator: settle here.
    reply.raw.once('close', finish);
    const assembler = new AnthropicStreamAssembler();
    async function* observed() {
      try {
        for await (const ev of answered.events!) {
          if (turn) assembler.add(ev);
          yield ev;
        }
      } finally {
        client.release();
        finish();
      }
    }
    const out = writeAnthropicSse(observed(), {
      onError: (err) => {
        if (client.signal.aborted) return undefined;
        record(target, true);
        logger.warn({ err: (err as Error).message, requestId: request.id }, 'messages stream failed mid-way');
        return anthropicErrorBody(err).body;
      },
      afterLast: async () => {
        if (client.signal.aborted) return;
        record(target, false, usageCostUsd(answered.usage()));
        if (turn) await storeTurn(turnDeps, turn, toChatReply({ content: assembler.content() }), meta);
      },
    });
    reply.headers(SSE_HEADERS);
    return reply.send(Readable.from(out, { objectMode: false }));
  };
}
