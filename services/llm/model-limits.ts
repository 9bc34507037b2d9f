import type { ProviderConfig } from './types';

/**
 * What the llm service knows about provider models without being told: the largest answer a
 * model may produce (its max output tokens) and what share of the input price its cached input
 * tokens cost. The providers file overrides both per provider model (`maxOutputTokens`,
 * `prices.<model>.cached_input` / `cache_write`).
 *
 * Figures are the providers' published ones (late 2025). A model is matched by its longest
 * known prefix, so dated snapshots (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) and
 * `-latest` aliases match their family.
 */
export interface KnownModel {
  /** The largest `max_tokens` the model accepts. */
  maxOutputTokens: number;
  /** Price of a cached input token as a share of the input price. */
  cachedInputRatio: number;
  /**
   * Price of a token written to the prompt cache as a share of the input price (Anthropic bills
   * 1.25x for the 5-minute cache). @default 1 (no surcharge)
   */
  cacheWriteRatio?: number;
}

const CLAUDE_CACHE = { cachedInputRatio: 0.1, cacheWriteRatio: 1.25 } as const;

/** Known models by name prefix (longest prefix wins). */
export const KNOWN_MODELS: Readonly<Record<string, KnownModel>> = {
  // OpenAI
  'gpt-5': { maxOutputTokens: 128_000, cachedInputRatio: 0.1 },
  'gpt-4.1': { maxOutputTokens: 32_768, cachedInputRatio: 0.25 },
  'gpt-4o': { maxOutputTokens: 16_384, cachedInputRatio: 0.5 },
  'gpt-4o-mini': { maxOutputTokens: 16_384, cachedInputRatio: 0.5 },
  'chatgpt-4o': { maxOutputTokens: 16_384, cachedInputRatio: 0.5 },
  'gpt-4-turbo': { maxOutputTokens: 4_096, cachedInputRatio: 1 },
  'gpt-3.5-turbo': { maxOutputTokens: 4_096, cachedInputRatio: 1 },
  o1: { maxOutputTokens: 100_000, cachedInputRatio: 0.5 },
  'o1-mini': { maxOutputTokens: 65_536, cachedInputRatio: 0.5 },
  o3: { maxOutputTokens: 100_000, cachedInputRatio: 0.25 },
  'o3-mini': { maxOutputTokens: 100_000, cachedInputRatio: 0.5 },
  'o4-mini': { maxOutputTokens: 100_000, cachedInputRatio: 0.25 },
  // Anthropic
  'claude-opus-4-5': { maxOutputTokens: 64_000, ...CLAUDE_CACHE },
  'claude-opus-4-1': { maxOutputTokens: 32_000, ...CLAUDE_CACHE },
  'claude-opus-4': { maxOutputTokens: 32_000, ...CLAUDE_CACHE },
  'claude-sonnet-4-5': { maxOutputTokens: 64_000, ...CLAUDE_CACHE },
  'claude-sonnet-4': { maxOutputTokens: 64_000, ...CLAUDE_CACHE },
  'claude-haiku-4-5': { maxOutputTokens: 64_000, ...CLAUDE_CACHE },
  'claude-3-7-sonnet': { maxOutputTokens: 64_000, ...CLAUDE_CACHE },
  'claude-3-5-sonnet': { maxOutputTokens: 8_192, ...CLAUDE_CACHE },
  'claude-3-5-haiku': { maxOutputTokens: 8_192, ...CLAUDE_CACHE },
  'claude-3-opus': { maxOutputTokens: 4_096, ...CLAUDE_CACHE },
  'claude-3-haiku': { maxOutputTokens: 4_096, ...CLAUDE_CACHE },
};

const PREFIXES = Object.keys(KNOWN_MODELS).sort((a, b) => b.length - a.length);

/**
 * The known model a provider model name belongs to: an exact name, or the longest prefix
 * followed by `-` (so `o3` does not claim `o3x`, and `gpt-4o` does not claim `gpt-4o-mini`).
 */
export function knownModel(model: string): KnownModel | undefined {
  const name = model.toLowerCase();
  for (const prefix of PREFIXES) {
    if (name === prefix || name.startsWith(`${prefix}-`)) return KNOWN_MODELS[prefix];
  }
  return undefined;
}

/**
 * The output cap of an unknown Anthropic model when the client sets none (the smallest any Claude
 * model allows; set `maxOutputTokens` in the providers file for the real figure).
 */
export const ANTHROPIC_FALLBACK_MAX_TOKENS = 4_096;

/**
 * Output tokens reserved against `tpm` limits for a model whose max output is unknown, when the
 * client asks for more (the real usage is charged after the call either way).
 */
export const UNKNOWN_MODEL_OUTPUT_RESERVATION = 16_384;

/**
 * The largest answer `model` may produce at `provider`: the providers file's `maxOutputTokens`,
 * else the known figure, else undefined (nobody knows: the provider decides).
 */
export function maxOutputTokensOf(provider: Pick<ProviderConfig, 'maxOutputTokens'> | undefined, model: string): number | undefined {
  return provider?.maxOutputTokens?.[model] ?? knownModel(model)?.maxOutputTokens;
}

/** The output cap a request asks for (`max_completion_tokens` wins, as at OpenAI). */
export function requestedMaxTokens(request: { max_tokens?: number | null; max_completion_tokens?: number | null }): { value: number; field: 'max_tokens' | 'max_completion_tokens' } | undefined {
  if (typeof request.max_completion_tokens === 'number') return { value: request.max_completion_tokens, field: 'max_completion_tokens' };
  if (typeof request.max_tokens === 'number') return { value: request.max_tokens, field: 'max_tokens' };
  return undefined;
}
