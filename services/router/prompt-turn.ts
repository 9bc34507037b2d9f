/**
 * What chat and messages share around a `prompt` or a `session_id`: the template rendered from
 * the cache and the session's history read in parallel, the model it names, the per-prompt-
 * version metrics and stats, and the turn the session stores after the answer
 * (docs/router.md, "prompt" and "session_id").
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS } from '../../contracts';
import { ApiError, badRequest, type Logger } from '../kit';
import { MissingVariablesError, TemplateError, renderCompiled, type TemplateMessage, type Variables } from '../kit/template-syntax';
import type { RollingStats } from '../kit/rolling-stats';
import type { ContextMessageInput, ContextWindow, StoredMessage } from '../context';
import type { ChatMessage } from '../openai';
import { scopedSessionId } from './admin';
import { checkModelAllowed } from './billing';
import type { PromptMetrics } from './chat';
import type { CallMeta, ContextClient } from './clients';
import type { TemplateCache } from './template-cache';

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

/** Whether a message is a system (or developer) one: those go first, and are not stored from a template. */
export function isSystemMessage(m: Pick<ChatMessage, 'role'>): boolean {
  return m.role === 'system' || m.role === 'developer';
}

/** The turn a session stores after the answer: the request's messages (ids from the request id). */
export interface Turn {
  sessionId: string;
  base: string;
  messages: ContextMessageInput[];
}

/** Which prompt version a call is counted against in the metrics and stats. */
export interface PromptTarget {
  prompt: string;
  version: number;
  startedAt: number;
}

/** What the prompt-turn helpers need (the chat and messages handlers' own parts). */
export interface PromptTurnDeps {
  templates: TemplateCache;
  context: ContextClient;
  logger: Logger;
  /** The per-prompt-version metrics, one registration per registry. */
  promptMetrics: PromptMetrics;
  /** The token budget of the history sent upstream. @default the context service's default */
  historyMaxTokens?: number;
  /** Per prompt version aggregates for `GET /v1/stats/prompts/{name}`. @default not recorded */
  stats?: RollingStats;
}

/** A request's `prompt` and `session_id` and what the turn needs of its own messages. */
export interface PromptTurnInput {
  prompt: { name: string; label?: string; version?: number; variables?: Record<string, unknown> } | undefined;
  sessionId: string | undefined;
  /** The `model` the request gave (else the template's). */
  model: string | undefined;
  /** Whether the request has messages of its own (without them it needs `prompt`). */
  hasMessages: boolean;
  /** The request's messages in the canonical (chat) form, as the session stores them; read only when stored. */
  ownMessages: () => ChatMessage[];
}

/** The pieces of a prompt turn; each API puts them in its own wire form. */
export interface PromptTurn {
  /** The rendered template's messages (none without `prompt`). */
  rendered: TemplateMessage[];
  /** The session's history (none without `session_id`, or when it could not be read). */
  history: ChatMessage[];
  /** The model: the request's, else the template's. */
  model: string;
  /** What the session stores after the answer; undefined without a session (or with its history down). */
  turn: Turn | undefined;
  /** The prompt version the call counts against; undefined without `prompt`. */
  target: PromptTarget | undefined;
  /** What the request went without (`history`), with what it already had. */
  degraded: string[];
}

/**
 * Renders the prompt from the cache and reads the session's history in parallel (a history
 * failure degrades, a template failure answers), settles the model (a 400 without one, a 403 when
 * the key may not use it), counts the request against its prompt version (header, request and
 * duration metrics) and prepares the turn the session stores. Order upstream, for every API: the
 * template's system messages, the history, the template's other messages, the request's.
 */
export async function assemblePromptTurn(deps: PromptTurnDeps, request: FastifyRequest, reply: FastifyReply, input: PromptTurnInput): Promise<PromptTurn> {
  const { prompt, sessionId } = input;
  const meta: CallMeta = { requestId: request.id, traceContext: request.traceContext };
  // With auth on, each API key has its own session namespace: a key can never read or
  // extend another key's conversation by guessing its id.
  const storedSessionId = sessionId === undefined ? undefined : scopedSessionId(request.apiKey?.id, sessionId);
  if (!prompt && !input.hasMessages) throw badRequest(`'messages' must hold at least one message (or give 'prompt')`, 'messages');
  const degraded = [...(request.degraded ?? [])];
  const [version, history] = await Promise.all([
    prompt ? deps.templates.resolve(prompt.name, { label: prompt.label, version: prompt.version, stickyKey: sessionId, meta }) : undefined,
    storedSessionId
      ? deps.context.read(storedSessionId, deps.historyMaxTokens ? { maxTokens: deps.historyMaxTokens } : {}, meta).catch((err: unknown): ContextWindow | undefined => {
          if (err instanceof ApiError && err.statusCode === 400) throw err;
          deps.logger.warn({ err: (err as Error).message, session: sessionId }, 'session history unavailable; answering without it');
          degraded.push('history');
          return undefined;
        })
      : undefined,
  ]);

  let rendered: TemplateMessage[] = [];
  if (version) {
    try {
      rendered = renderCompiled(version.compiled, (prompt!.variables ?? {}) as Variables);
    } catch (err) {
      throw renderError(err);
    }
  }
  const model = input.model ?? version?.model ?? undefined;
  if (!model) throw badRequest(`'model' is required (the prompt template names no model)`, 'model');
  checkModelAllowed(request, model);

  let target: PromptTarget | undefined;
  if (version) {
    const labels = { prompt: version.name, version: String(version.version) };
    deps.promptMetrics.promptRequests.inc(labels);
    reply.header(HEADERS.promptVersion, String(version.version));
    // Observed once the response is over, with the status it ended with (errors included).
    reply.raw.once('close', () => deps.promptMetrics.promptDuration.observe({ ...labels, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000));
    target = { prompt: version.name, version: version.version, startedAt: performance.now() };
  }

  // What the session stores: the request's messages (or, with none, the rendered prompt's
  // non-system ones) and the reply, faithfully: assistant tool calls, tool results and content
  // parts as given, so the next turn replays a history the provider accepts. Ids from the
  // request id make a retried append a no-op.
  let turn: Turn | undefined;
  if (storedSessionId && !degraded.includes('history')) {
    const own = input.hasMessages ? input.ownMessages() : [];
    const source = own.length > 0 ? own : rendered.filter((m) => !isSystemMessage(m));
    const base = idBase(request.id);
    turn = { sessionId: storedSessionId, base, messages: source.map((m, i) => toStored(m, `${base}.${i}`)) };
  }
  return { rendered, history: (history?.messages ?? []).map(fromStored), model, turn, target, degraded };
}

/** Stores a turn and its reply in the session; a failure is logged, the answer stands. */
export async function storeTurn(deps: Pick<PromptTurnDeps, 'context' | 'logger'>, turn: Turn, reply: Pick<ChatMessage, 'role' | 'content' | 'tool_calls' | 'thinking_blocks'>, meta: CallMeta): Promise<void> {
  try {
    await deps.context.append(turn.sessionId, [...turn.messages, toStored(reply, `${turn.base}.reply`)], meta);
  } catch (err) {
    deps.logger.warn({ err: (err as Error).message, session: turn.sessionId }, 'could not store the turn in the session history');
  }
}

/**
 * Counts a finished call against its prompt version: the cost metric
 * (`promptmesh_prompt_cost_usd_total`, answered calls with a known cost) and the stats
 * (requests, errors, latency, cost). Nothing without a target.
 */
export function recordPromptCall(deps: Pick<PromptTurnDeps, 'promptMetrics' | 'stats'>, target: PromptTarget | undefined, error: boolean, costUsd = 0): void {
  if (!target) return;
  if (!error && costUsd > 0) deps.promptMetrics.promptCost.inc({ prompt: target.prompt, version: String(target.version) }, costUsd);
  deps.stats?.record(target.prompt, String(target.version), { latencyMs: performance.now() - target.startedAt, error, costUsd });
}
