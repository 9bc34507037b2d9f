/**
 * Token counting for when a provider does not report usage (some OpenAI-compatible servers in
 * streams, and the echo provider). Counts with gpt-tokenizer's `o200k_base` encoding (the
 * GPT-4o family); for other model families it is an estimate of the same order, which is what
 * accounting needs when the provider itself is silent.
 */
import type { GptEncoding } from 'gpt-tokenizer/GptEncoding';
import { o200k } from '../../kit/o200k';
import { contentText, type ChatMessage } from '../../openai';

/**
 * gpt-tokenizer's o200k_base encoding, loaded on first use and kept (services/kit/o200k.ts): its
 * tables cost tens of MB of memory, which a process whose providers report usage (the common
 * case) never needs to pay.
 */
export function tokenizer(): GptEncoding {
  return o200k();
}

/** Tokens in a piece of text. */
export function countTextTokens(text: string): number {
  if (text.length === 0) return 0;
  // BPE on one long run without spaces costs ~30 us a character (a 1 MB body: half a minute):
  // past this length the count is the usual estimate of four characters a token instead.
  if (text.length > EXACT_COUNT_MAX_CHARS) return Math.ceil(text.length / 4);
  return tokenizer().countTokens(text);
}

/** Texts longer than this are counted by estimate (see {@link countTextTokens}). */
export const EXACT_COUNT_MAX_CHARS = 16_384;

/**
 * Prompt tokens of a message list, the way OpenAI bills chat input: 3 tokens of framing per
 * message, 1 more for a name, and 3 that prime the reply.
 */
export function countPromptTokens(messages: ChatMessage[]): number {
  let n = 3;
  for (const m of messages) {
    n += 3 + countTextTokens(contentText(m.content));
    if (m.name) n += 1 + countTextTokens(m.name);
    if (m.tool_calls) for (const tc of m.tool_calls) n += countTextTokens(tc.function.name) + countTextTokens(tc.function.arguments) + 3;
  }
  return n;
}
