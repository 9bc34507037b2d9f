import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';
import { HEADERS, METRICS } from '../../contracts';
import { ApiError, LATENCY_BUCKETS, badRequest, type Logger } from '../kit';
import { MissingVariablesError, TemplateError, renderCompiled, type TemplateMessage, type Variables } from '../kit/template-syntax';
import type { ContextMessageInput, ContextWindow } from '../context';
import type { ChatCompletionChunk, ChatMessage, ChatRequest } from '../llm/types';
import { scopedSessionId } from './admin';
import type { CallMeta, ContextClient, LlmClient, LlmOrigin } from './clients';
import { SSE_DONE, sseData } from './sse';
import type { RouterChatRequest } from './schemas';
import type { TemplateCache } from './template-cache';

/** Options of the chat completions handler. */
export interface ChatHandlerOptions {
  llm: LlmClient;
  context: ContextClient;
  templates: TemplateCache;
  logger: Logger;
  registry: Registry;
  /** The token budget of the history sent upstream. @default the context service's default */
  historyMaxTokens?: number;
}

const MESSAGE_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/** Message ids derived from the request id, so a retried request's append is deduplicated. */
function idBase(requestId: string): string {
  return MESSAGE_ID.test(requestId) ? requestId : createHash('sha256').update(requestId).digest('hex').slice(0, 32);
}

function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  let out = '';
  for (const part of content) if (typeof part.text === 'string') out += part.text;
  return out;
}

function setOrigin(reply: FastifyReply, origin: LlmOrigin): void {
  reply.header(HEADERS.provider, origin.provider);
  reply.header(HEADERS.model, origin.model);
  reply.header(HEADERS.cache, origin.cache);
}

/** A template problem at render time, as the 400 the client gets (fields under `prompt.`). */
function renderError(err: unknown): unknown {
  if (err instanceof MissingVariablesError) {
    return badRequest(`prompt template is missing variables: ${err.missing.join(', ')}`, 'prompt.variables', 'missing_variables');
  }
  if (err instanceof TemplateError) {
    const param = err.param.startsWith('variables') ? `prompt.${err.param}` : 'prompt';
    return badRequest(err.message.replace(/'variables/g, `'prompt.variables`), param);
  }
  return err;
}

/** What a schema cannot say about messages (the llm service's rules, so both layouts agree). */
function checkMessages(messages: ChatMessage[]): void {
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.role !== 'assistant' && (m.content === undefined || m.content === null)) {
      throw badRequest(`'messages[${i}].content' is required for role '${m.role}'`, `messages[${i}].content`);
    }
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') {
      throw badRequest(`'messages[${i}].tool_call_id' is required for role 'tool'`, `messages[${i}].tool_call_id`);
    }
  }
}

/**
 * The `POST /v1/chat/completions` handler: renders the prompt from the cache and reads the
 * session's history in parallel, asks llm, answers (plain JSON or SSE), then stores the turn.
 */
export function createChatHandler(options: ChatHandlerOptions) {
  const { llm, context, templates, logger } = options;
  const promptRequests = new Counter({
    name: METRICS.promptRequests,
    help: 'Chat completions that used a prompt template, by template and version.',
    labelNames: ['prompt', 'version'] as const,
    registers: [options.registry],
  });
  // Per prompt version: what a rollout or a split compares (traffic, latency, errors, spend).
  const promptDuration = new Histogram({
    name: METRICS.promptDuration,
    help: 'Duration of chat completions that used a prompt template, by template, version and status code.',
    labelNames: ['prompt', 'version', 'status_code'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [options.registry],
  });
  const promptCost = new Counter({
    name: METRICS.promptCostUsd,
    help: 'USD spent on chat completions that used a prompt template (cache hits cost nothing), by template and version.',
    labelNames: ['prompt', 'version'] as const,
    registers: [options.registry],
  });
  const historyMaxTokens = options.historyMaxTokens;

  return async function chatCompletions(request: FastifyRequest<{ Body: RouterChatRequest }>, reply: FastifyReply) {
    const body = request.body;
    const meta: CallMeta = { requestId: request.id, traceContext: request.traceContext };
    const tenant = request.apiKey?.id;

    if (body.messages) checkMessages(body.messages);

    // The fast path: no prompt, no session; the body goes upstream as it came.
    if (body.prompt === undefined && body.session_id === undefined) {
      if (!body.messages || body.messages.length === 0) throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
      if (!body.model) throw badRequest(`'model' is required`, 'model');
      if (request.degraded) reply.header(HEADERS.degraded, request.degraded.join(','));
      return body.stream ? stream(request, reply, body as ChatRequest, meta, tenant, undefined) : plain(reply, body as ChatRequest, meta, tenant, undefined);
    }

    const { prompt, session_id: sessionId } = body;
    // With auth on, each API key has its own session namespace: a key can never read or
    // extend another key's conversation by guessing its id.
    const storedSessionId = sessionId === undefined ? undefined : scopedSessionId(tenant, sessionId);
    if (!prompt && (!body.messages || body.messages.length === 0)) {
      throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
    }
    if (prompt?.variables !== undefined) {
      for (const [name, value] of Object.entries(prompt.variables)) {
        const t = typeof value;
        if (t !== 'string' && t !== 'boolean' && !(t === 'number' && Number.isFinite(value))) {
          throw badRequest(`'prompt.variables.${name}' must be a string, number or boolean`, `prompt.variables.${name}`);
        }
      }
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
    if (history) {
      for (const m of history.messages) {
        const content = m.content as ChatMessage['content'];
        messages.push(m.name ? { role: m.role, content, name: m.name } : { role: m.role, content });
      }
    }
    if (rendered) for (const m of rendered) if (m.role !== 'system' && m.role !== 'developer') messages.push(m);
    if (body.messages) for (const m of body.messages) messages.push(m);

    const model = body.model ?? version?.model ?? undefined;
    if (!model) throw badRequest(`'model' is required (the prompt template names no model)`, 'model');

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
    // non-system ones) and the reply; ids from the request id make a retried append a no-op.
    let turn: Turn | undefined;
    if (storedSessionId && !degraded.includes('history')) {
      const source: Array<{ role: ChatMessage['role']; content: ChatMessage['content']; name?: string }> =
        body.messages && body.messages.length > 0 ? body.messages : (rendered ?? []).filter((m) => m.role !== 'system' && m.role !== 'developer');
      const base = idBase(request.id);
      turn = {
        sessionId: storedSessionId,
        base,
        // Tool traffic is not kept: replayed without its tool call it would be invalid upstream.
        messages: source.flatMap((m, i) =>
          m.role === 'tool' || (m as ChatMessage).tool_calls
            ? []
            : [{ id: `${base}.${i}`, role: m.role, content: textOf(m.content), ...(m.name ? { name: m.name } : {}) }],
        ),
      };
    }
    return body.stream ? stream(request, reply, upstream, meta, tenant, turn) : plain(reply, upstream, meta, tenant, turn, promptLabels);
  };

  async function store(turn: Turn, reply: string, meta: CallMeta): Promise<void> {
    const messages: ContextMessageInput[] = [...turn.messages, { id: `${turn.base}.reply`, role: 'assistant', content: reply }];
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
    promptLabels?: PromptLabels,
  ) {
    const result = await llm.complete(upstream, { ...meta, tenant });
    const cost = (result.completion.usage as { cost_usd?: unknown } | undefined)?.cost_usd;
    if (promptLabels && typeof cost === 'number' && cost > 0) promptCost.inc(promptLabels, cost);
    setOrigin(reply, result);
    if (turn) await store(turn, textOf(result.completion.choices[0]?.message?.content ?? ''), meta);
    return reply.send(result.completion);
  }

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    upstream: ChatRequest,
    meta: CallMeta,
    tenant: string | undefined,
    turn: Turn | undefined,
  ) {
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    reply.raw.once('close', onClose);
    const result = await llm.stream(upstream, { ...meta, tenant, signal: abort.signal });
    setOrigin(reply, result);
    reply.header('content-type', 'text/event-stream; charset=utf-8');
    reply.header('cache-control', 'no-cache');
    reply.header('x-accel-buffering', 'no');
    async function* events(): AsyncGenerator<string> {
      let text = '';
      let completed = false;
      try {
        for await (const chunk of result.chunks as AsyncIterable<ChatCompletionChunk>) {
          if (turn) {
            const delta = chunk.choices?.[0]?.delta?.content;
            if (typeof delta === 'string') text += delta;
          }
          yield sseData(JSON.stringify(chunk));
        }
        completed = true;
      } catch (err) {
        if (abort.signal.aborted) return;
        const apiError = err instanceof ApiError ? err : new ApiError(502, 'upstream_error', `the stream broke off: ${(err as Error).message}`, null, 'stream_interrupted');
        logger.warn({ err: apiError.message, requestId: request.id }, 'stream failed mid-way');
        yield sseData(JSON.stringify(apiError.toBody()));
        return;
      } finally {
        reply.raw.off('close', onClose);
      }
      if (completed && turn && !abort.signal.aborted) await store(turn, text, meta);
      yield SSE_DONE;
    }
    return reply.send(Readable.from(events(), { objectMode: false }));
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
