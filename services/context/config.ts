import { ENV } from '../../contracts';
import { ConfigError } from '../kit';

/**
 * The context service's own settings, read from its environment at start (docs/context.md).
 * The shared settings (Redis URL or cluster nodes, key prefix, body limit) come from the kit.
 */
export interface ContextSettings {
  /**
   * How long a session lives after its last use, in seconds. Every read and every append
   * resets it on all of the session's keys.
   * @default 86400 (one day; `CONTEXT_TTL_SECONDS`)
   */
  ttlSeconds: number;
  /**
   * The most messages stored per session; an append beyond it trims the oldest. Also the
   * largest `max_messages` a read may ask for, and the read window when none is given.
   * @default 200 (`CONTEXT_MAX_MESSAGES`)
   */
  maxMessages: number;
  /**
   * The token budget of a read that gives no `max_tokens`.
   * @default 8192 (`CONTEXT_MAX_TOKENS`)
   */
  defaultMaxTokens: number;
  /**
   * The most messages one append may carry.
   * @default 100 (`CONTEXT_MAX_APPEND`)
   */
  maxAppend: number;
  /**
   * The largest content of one message, in characters (for an array of text parts, the sum
   * of their texts).
   * @default 65536 (`CONTEXT_MAX_CONTENT_CHARS`)
   */
  maxContentChars: number;
  /**
   * How many of the newest message ids a session remembers for deduplication. A retried
   * append is recognised as long as its ids are among these. Never less than `maxMessages`.
   * @default max(2 × maxMessages, 1000) (`CONTEXT_DEDUPE_WINDOW`)
   */
  dedupeWindow: number;
}

/** The environment variables the context service reads, besides the kit's. */
export const CONTEXT_ENV = {
  ttlSeconds: ENV.contextTtlSeconds,
  maxMessages: ENV.contextMaxMessages,
  defaultMaxTokens: ENV.contextMaxTokens,
  maxAppend: ENV.contextMaxAppend,
  maxContentChars: ENV.contextMaxContentChars,
  dedupeWindow: ENV.contextDedupeWindow,
} as const;

/** Bounds of each setting: [min, max]. Out of range is a configuration error, not a clamp. */
const BOUNDS: Record<keyof ContextSettings, readonly [number, number]> = {
  ttlSeconds: [1, 365 * 24 * 3600],
  maxMessages: [1, 10_000],
  defaultMaxTokens: [1, 10_000_000],
  maxAppend: [1, 1_000],
  maxContentChars: [1, 16 * 1_048_576],
  dedupeWindow: [1, 1_000_000],
};

type Env = Record<string, string | undefined>;

function int(env: Env, key: keyof ContextSettings, fallback: number): number {
  const name = CONTEXT_ENV[key];
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw.trim());
  const [min, max] = BOUNDS[key];
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

/**
 * Reads and validates the context settings. Throws a {@link ConfigError} naming the variable
 * for the first problem found.
 */
export function readContextSettings(env: Env = process.env): ContextSettings {
  const maxMessages = int(env, 'maxMessages', 200);
  const settings: ContextSettings = {
    ttlSeconds: int(env, 'ttlSeconds', 86_400),
    maxMessages,
    defaultMaxTokens: int(env, 'defaultMaxTokens', 8_192),
    maxAppend: int(env, 'maxAppend', 100),
    maxContentChars: int(env, 'maxContentChars', 65_536),
    dedupeWindow: int(env, 'dedupeWindow', Math.max(2 * maxMessages, 1_000)),
  };
  return checkContextSettings(settings);
}

/**
 * Checks settings given in code (tests, embedding) the same way as those read from the
 * environment, naming the variable that would hold the value.
 */
export function checkContextSettings(settings: ContextSettings): ContextSettings {
  for (const key of Object.keys(BOUNDS) as Array<keyof ContextSettings>) {
    const value = settings[key];
    const [min, max] = BOUNDS[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(CONTEXT_ENV[key], `must be a whole number between ${min} and ${max}, got ${String(value)}`);
    }
  }
  if (settings.dedupeWindow < settings.maxMessages) {
    throw new ConfigError(
      CONTEXT_ENV.dedupeWindow,
      `must be at least ${CONTEXT_ENV.maxMessages} (${settings.maxMessages}), got ${settings.dedupeWindow}`,
    );
  }
  return settings;
}
