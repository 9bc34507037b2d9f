import { randomUUID } from 'node:crypto';
import { ReplyError } from 'ioredis';
import { ApiError, badRequest, type RedisClient } from '../kit';
import type { ContextSettings } from './config';
import {
  TURN_START_ROLES,
  checkSessionId,
  countMessageTokens,
  createAppendValidator,
  type AppendValidator,
  type ContextMessageInput,
  type StoredMessage,
} from './messages';
import type { ContextMetrics } from './metrics';
import { APPEND_LUA, READ_LUA } from './scripts';

/** Bounds of a read; each defaults from the service's settings. */
export interface ContextReadOptions {
  /**
   * The token budget of the window: the sum of the returned messages' `tokens` never exceeds it.
   * @default the service's `CONTEXT_MAX_TOKENS`
   */
  maxTokens?: number;
  /**
   * The most messages returned (asking for more than the per-session cap reads the cap).
   * @default the service's `CONTEXT_MAX_MESSAGES`
   */
  maxMessages?: number;
}

/** A read: the newest messages that fit both bounds, oldest first, starting at a turn. */
export interface ContextWindow {
  session_id: string;
  /**
   * The window, oldest first; empty for an unknown or expired session. It starts with a
   * `system`, `developer` or `user` message (see {@link TURN_START_ROLES}): where the bounds cut
   * inside a turn, the rest of that turn is left out too, so a tool result never appears
   * without the assistant message that called the tool.
   */
  messages: StoredMessage[];
  /** Messages stored for the session (all of them, not only the window). */
  total_messages: number;
  /** Tokens of all stored messages. */
  total_tokens: number;
  /** Tokens of the returned window. */
  window_tokens: number;
}

/** An append's outcome. */
export interface AppendResult {
  session_id: string;
  /** The messages stored by this call, in order, with ids, token counts and times. */
  stored: StoredMessage[];
  /** Ids the session already held: those messages were skipped (a retried append). */
  duplicates: string[];
  /** Oldest messages removed to stay within the per-session cap. */
  trimmed: number;
  /** Messages stored for the session after this append. */
  total_messages: number;
  /** Tokens of all stored messages after this append. */
  total_tokens: number;
}

/**
 * The context service's core: conversation history per session. The router calls it
 * in-process in `SERVICE=all`, and through {@link createContextHttpClient} in the mesh; both
 * throw {@link ApiError} 400s for bad input and {@link ContextUnavailableError} when the store
 * is down, so a caller can degrade to "no history".
 */
export interface ContextCore {
  /** The newest window of the session within both bounds; refreshes the session's TTL. */
  read(sessionId: string, options?: ContextReadOptions): Promise<ContextWindow>;
  /**
   * Appends messages atomically; messages whose id the session already holds are skipped.
   * Refreshes the TTL and trims the oldest beyond the cap.
   */
  append(sessionId: string, messages: ContextMessageInput[]): Promise<AppendResult>;
  /** Forgets the session (all its messages and remembered ids); nothing happens if it is unknown. */
  delete(sessionId: string): Promise<void>;
}

/**
 * The history store could not be reached (or answered that it cannot serve). HTTP callers get
 * a 503; in-process callers catch this type and go on without history.
 */
export class ContextUnavailableError extends ApiError {
  constructor(
    message: string,
    /** What the Redis client threw. */
    override readonly cause?: unknown,
  ) {
    super({ status: 503, type: 'service_unavailable_error', message, code: 'context_unavailable' });
    this.name = 'ContextUnavailableError';
  }
}

// Replies that mean "this node cannot serve right now", as opposed to a bug in a command.
const UNAVAILABLE_REPLIES = /^(CLUSTERDOWN|LOADING|MASTERDOWN|READONLY|TRYAGAIN|BUSY|NOREPLICAS|OOM)\b/;

function toStoreError(err: unknown): Error {
  if (err instanceof ApiError) return err;
  if (err instanceof ReplyError && !UNAVAILABLE_REPLIES.test((err as Error).message)) return err as Error;
  const reason = err instanceof Error ? err.message : String(err);
  return new ContextUnavailableError(`the context store (Redis) is unavailable: ${reason}`, err);
}

/** The scripted commands the store defines on its client. */
interface ContextCommands {
  pmContextAppend(msgs: string, ids: string, meta: string, ...argv: Array<string | number>): Promise<number[]>;
  pmContextRead(msgs: string, ids: string, meta: string, ttlMs: number, maxMessages: number, maxTokens: number): Promise<Array<number | string>>;
}

/** What {@link RedisContextStore} is built with. */
export interface RedisContextStoreOptions {
  /** A standalone or cluster client (`createRedis(config, 'context')`); the store does not close it. */
  redis: RedisClient;
  /** Prefix of every key (`REDIS_KEY_PREFIX`). */
  keyPrefix: string;
  settings: ContextSettings;
  /**
   * Counters to record operations and messages on.
   * @default none (nothing recorded)
   */
  metrics?: ContextMetrics;
}

/** {@link ContextCore} on Redis: one Lua script per append and per read. */
export class RedisContextStore implements ContextCore {
  private readonly redis: RedisClient & ContextCommands;
  private readonly keyPrefix: string;
  private readonly settings: ContextSettings;
  private readonly validateAppend: AppendValidator;
  private readonly metrics: ContextMetrics | undefined;

  constructor(options: RedisContextStoreOptions) {
    this.keyPrefix = options.keyPrefix;
    this.settings = options.settings;
    this.metrics = options.metrics;
    this.validateAppend = createAppendValidator(options.settings);
    const redis = options.redis as RedisClient & Partial<ContextCommands>;
    if (typeof redis.pmContextAppend !== 'function') redis.defineCommand('pmContextAppend', { numberOfKeys: 3, lua: APPEND_LUA });
    if (typeof redis.pmContextRead !== 'function') redis.defineCommand('pmContextRead', { numberOfKeys: 3, lua: READ_LUA });
    this.redis = redis as RedisClient & ContextCommands;
  }

  /** The session's keys; the hash tag puts all of them in one cluster slot. */
  keys(sessionId: string): [msgs: string, ids: string, meta: string] {
    const base = `${this.keyPrefix}ctx:{${sessionId}}`;
    return [`${base}:msgs`, `${base}:ids`, `${base}:meta`];
  }

  read(sessionId: string, options: ContextReadOptions = {}): Promise<ContextWindow> {
    return this.observe('read', () => this.readWindow(sessionId, options));
  }

  append(sessionId: string, messages: ContextMessageInput[]): Promise<AppendResult> {
    return this.observe('append', async () => {
      const result = await this.appendMessages(sessionId, messages);
      this.metrics?.messages.inc({ result: 'stored' }, result.stored.length);
      this.metrics?.messages.inc({ result: 'duplicate' }, result.duplicates.length);
      this.metrics?.messages.inc({ result: 'trimmed' }, result.trimmed);
      return result;
    });
  }

  delete(sessionId: string): Promise<void> {
    return this.observe('delete', () => this.deleteSession(sessionId));
  }

  private async observe<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.metrics?.operations.inc({ operation, outcome: 'ok' });
      return result;
    } catch (err) {
      const outcome = err instanceof ContextUnavailableError ? 'unavailable' : err instanceof ApiError && err.statusCode < 500 ? 'invalid' : 'error';
      this.metrics?.operations.inc({ operation, outcome });
      throw err;
    }
  }

  private async readWindow(sessionId: string, options: ContextReadOptions): Promise<ContextWindow> {
    checkSessionId(sessionId);
    const maxMessages = Math.min(bound(options.maxMessages, 'max_messages', this.settings.maxMessages), this.settings.maxMessages);
    const maxTokens = bound(options.maxTokens, 'max_tokens', this.settings.defaultMaxTokens);
    let reply: Array<number | string>;
    try {
      reply = await this.redis.pmContextRead(...this.keys(sessionId), this.settings.ttlSeconds * 1000, maxMessages, maxTokens);
    } catch (err) {
      throw toStoreError(err);
    }
    const [total, totalTokens, windowTokens, ...newestFirst] = reply;
    const messages = (newestFirst as string[]).reverse().map((json) => JSON.parse(json) as StoredMessage);
    // The script cut where a bound broke; move the cut forward to the next turn start. The
    // result is still the largest window within both bounds that starts at a turn.
    let start = 0;
    let dropped = 0;
    while (start < messages.length && !TURN_START_ROLES.has(messages[start]!.role)) dropped += messages[start++]!.tokens;
    return {
      session_id: sessionId,
      messages: start === 0 ? messages : messages.slice(start),
      total_messages: Number(total),
      total_tokens: Number(totalTokens),
      window_tokens: Number(windowTokens) - dropped,
    };
  }

  private async appendMessages(sessionId: string, messages: ContextMessageInput[]): Promise<AppendResult> {
    checkSessionId(sessionId);
    this.validateAppend({ messages });
    const now = new Date().toISOString();
    const stored: StoredMessage[] = messages.map((m) => {
      const message: StoredMessage = { id: m.id ?? randomUUID(), role: m.role, content: m.content ?? null, tokens: countMessageTokens(m), created_at: now };
      if (m.name !== undefined) message.name = m.name;
      if (m.tool_calls !== undefined) message.tool_calls = m.tool_calls;
      if (m.tool_call_id !== undefined) message.tool_call_id = m.tool_call_id;
      if (m.thinking_blocks !== undefined && m.thinking_blocks.length > 0) message.thinking_blocks = m.thinking_blocks;
      return message;
    });
    const argv: Array<string | number> = [this.settings.ttlSeconds * 1000, this.settings.maxMessages, this.settings.dedupeWindow, stored.length];
    for (const m of stored) argv.push(m.id, `${m.tokens} ${JSON.stringify(m)}`);
    let reply: number[];
    try {
      reply = await this.redis.pmContextAppend(...this.keys(sessionId), ...argv);
    } catch (err) {
      throw toStoreError(err);
    }
    const [, trimmed, total, totalTokens, ...dupIndexes] = reply.map(Number) as number[];
    const duplicate = new Set(dupIndexes.map((i) => i - 1));
    return {
      session_id: sessionId,
      stored: stored.filter((_, i) => !duplicate.has(i)),
      duplicates: stored.filter((_, i) => duplicate.has(i)).map((m) => m.id),
      trimmed: trimmed!,
      total_messages: total!,
      total_tokens: totalTokens!,
    };
  }

  private async deleteSession(sessionId: string): Promise<void> {
    checkSessionId(sessionId);
    try {
      await this.redis.del(...this.keys(sessionId));
    } catch (err) {
      throw toStoreError(err);
    }
  }
}

/** A read bound: a whole number >= 0, or the default when absent. */
function bound(value: number | undefined, param: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) throw badRequest(`'${param}' must be a whole number >= 0`, param);
  return value;
}
