/**
 * The o200k_base tokenizer (gpt-tokenizer; the GPT-4o family's encoding), one instance per
 * process for everything that counts tokens (the context store's budgets, the llm service's
 * counts when a provider reports no usage), loaded on first use and kept.
 *
 * Its 200k merge ranks are read from JSON when the build put them beside the bundle
 * (build/o200k_base.json, scripts/build.ts): V8 parses JSON text straight into the array, while
 * gpt-tokenizer's own ranks module is a 2 MB array literal whose parse (a syntax tree of 200k
 * nodes) raises the process's peak RSS by ~20 MB more than the tables themselves. Without the
 * JSON (tests, `npm start` through tsx) the package's module is loaded as before; both give the
 * same ranks (o200k.test.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { GptEncoding } from 'gpt-tokenizer/GptEncoding';

/** The file the build writes beside the bundle. */
export const O200K_RANKS_FILE = 'o200k_base.json';

/** The merge ranks: the token's text, or its bytes when they are not valid UTF-8. */
export type BpeRanks = Array<string | number[]>;

let encoding: GptEncoding | undefined;

/** The ranks from gpt-tokenizer's own module (not bundled: a require esbuild does not follow). */
export function packageRanks(): BpeRanks {
  const load = createRequire(__filename);
  return (load('gpt-tokenizer/bpeRanks/o200k_base') as { default: BpeRanks }).default;
}

/**
 * The ranks as they can go into JSON. gpt-tokenizer skips holes (unused ranks) in the array,
 * which JSON would turn into `null`s it does not skip: refused rather than written wrong.
 */
export function ranksForJson(ranks: BpeRanks): BpeRanks {
  for (let i = 0; i < ranks.length; i++) {
    if (!(i in ranks)) throw new Error(`the o200k_base ranks have a hole at ${i}; they cannot be written as JSON as they are`);
  }
  return ranks;
}

/** The ranks: from `dir`'s JSON when the build wrote one there, else from the package. */
export function loadRanks(dir = __dirname): BpeRanks {
  const file = join(dir, O200K_RANKS_FILE);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as BpeRanks) : packageRanks();
}

/** The process's o200k_base encoding, made on first use. */
export function o200k(): GptEncoding {
  encoding ??= GptEncoding.getEncodingApi('o200k_base', () => loadRanks());
  return encoding;
}
