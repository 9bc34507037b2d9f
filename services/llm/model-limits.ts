import type { ProviderConfig } from './types';

/**
 * What the llm service knows about provider models without being told: the largest answer a
 * model may produce (its max output tokens) and what share of the input price its cached input
 * tokens cost. The providers file overrides both per provider model (`maxOutputTokens`,
 * `prices.<model>.cached_input` / `cache_write`).
 *
 * Figures are the providers' published ones (late 2025). A model is matched by its longest
 * known prefix, so dated snapshots (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) and
 * `-latest` aliases match their family. Bedrock model IDs are matched the same way after their
 * inference-profile prefix (`us.`, `eu.`, `apac.`, `global.`, ...) and ARN are taken off, and
 * Claude's `anthropic.` too (so `us.anthropic.claude-sonnet-4-20250514-v1:0` is a
 * `claude-sonnet-4`); Vertex AI's `publishers/google/models/` path likewise.
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
  // Gemini (Vertex AI and the Gemini API); cached input: 2.5 and 3 bill a tenth, 2.0 and 1.5 a quarter
  'gemini-3-pro': { maxOutputTokens: 65_536, cachedInputRatio: 0.1 },
  'gemini-2.5-pro': { maxOutputTokens: 65_536, cachedInputRatio: 0.1 },
  'gemini-2.5-flash': { maxOutputTokens: 65_536, cachedInputRatio: 0.1 },
  'gemini-2.5-flash-lite': { maxOutputTokens: 65_536, cachedInputRatio: 0.1 },
  'gemini-2.5-flash-image': { maxOutputTokens: 32_768, cachedInputRatio: 1 },
  'gemini-2.0-flash': { maxOutputTokens: 8_192, cachedInputRatio: 0.25 },
  'gemini-2.0-flash-lite': { maxOutputTokens: 8_192, cachedInputRatio: 0.25 },
  'gemini-1.5-pro': { maxOutputTokens: 8_192, cachedInputRatio: 0.25 },
  'gemini-1.5-flash': { maxOutputTokens: 8_192, cachedInputRatio: 0.25 },
  // Bedrock's own model IDs (Claude on Bedrock matches the Anthropic entries above). Nova v1's
  // card says 5K output, AWS's later Nova 1 -> 2 guide 10K: the larger is kept, so no request
  // Bedrock takes is refused here. Not listed (unknown; set maxOutputTokens): Llama 4,
  // Nova 2 Pro, Pixtral, Mistral Large 3.
  'amazon.nova-micro': { maxOutputTokens: 10_000, cachedInputRatio: 0.25 },
  'amazon.nova-lite': { maxOutputTokens: 10_000, cachedInputRatio: 0.25 },
  'amazon.nova-pro': { maxOutputTokens: 10_000, cachedInputRatio: 0.25 },
  'amazon.nova-premier': { maxOutputTokens: 32_000, cachedInputRatio: 0.25 },
  'amazon.nova-2-lite': { maxOutputTokens: 65_536, cachedInputRatio: 0.25 },
  // Llama 3.x on Bedrock: max_gen_len at most 2048.
  'meta.llama3': { maxOutputTokens: 2_048, cachedInputRatio: 1 },
  // Mistral on Bedrock: max_tokens at most 8192 (Mixtral 8x7B 4096).
  'mistral.mistral-7b': { maxOutputTokens: 8_192, cachedInputRatio: 1 },
  'mistral.mixtral-8x7b': { maxOutputTokens: 4_096, cachedInputRatio: 1 },
  'mistral.mistral-small': { maxOutputTokens: 8_192, cachedInputRatio: 1 },
  'mistral.mistral-large-2402': { maxOutputTokens: 8_192, cachedInputRatio: 1 },
  'mistral.mistral-large-2407': { maxOutputTokens: 8_192, cachedInputRatio: 1 },
};

const PREFIXES = Object.keys(KNOWN_MODELS).sort((a, b) => b.length - a.length);

/** Bedrock's cross-region inference profile prefixes (`us.anthropic...`, `global.amazon...`). */
const INFERENCE_PROFILE_PREFIX = /^(?:us|us-gov|eu|apac|jp|au|ca|global)\./;

/**
 * The name a model is looked up by: lower case, without the path of an ARN or a Vertex AI
 * resource name, a Bedrock inference-profile prefix, or Claude's `anthropic.` on Bedrock.
 */
function familyName(model: string): string {
  return model
    .toLowerCase()
    .replace(/^.*\//, '')
    .replace(INFERENCE_PROFILE_PREFIX, '')
    .replace(/^anthropic\.(?=claude-)/, '');
}

/**
 * The known model a provider model name belongs to: an exact name, or the longest prefix
 * followed by `-` (so `o3` does not claim `o3x`, and `gpt-4o` does not claim `gpt-4o-mini`).
 * Bedrock IDs and ARNs and Vertex AI resource names are looked up by their model's name.
 */
export function knownModel(model: string): KnownModel | undefined {
  if (KNOWN_BY_NAME.has(model)) return KNOWN_BY_NAME.get(model);
  const name = familyName(model);
  let found: KnownModel | undefined;
  for (const prefix of PREFIXES) {
    if (name === prefix || name.startsWith(`${prefix}-`)) {
      found = KNOWN_MODELS[prefix];
      break;
    }
  }
  // Looked up on every call that reserves tokens: remembered (the names are the providers
  // file's targets, a few; bounded all the same).
  if (KNOWN_BY_NAME.size >= 1_000) KNOWN_BY_NAME.clear();
  KNOWN_BY_NAME.set(model, found);
  return found;
}

const KNOWN_BY_NAME = new Map<string, KnownModel | undefined>();

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
