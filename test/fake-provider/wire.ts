/**
 * What every wire format of the fake provider shares: the reply it is about to put on the wire
 * (built once from the canonical request, then rendered by each API's format), error type, and
 * the pieces of a stream, which are text (SSE) or bytes (AWS event stream).
 */

import { createHash } from 'node:crypto';
import { seededRandom } from './behavior';

/** A JSON object as the fake reads it. */
export type Json = Record<string, any>;

/** One tool call the fake answers with. */
export interface ReplyToolCall {
  id: string;
  name: string;
  /** JSON text. */
  arguments: string;
}

/** What the reply to one request is, before it is put on the wire. */
export interface Reply {
  id: string;
  model: string;
  /** Content tokens, each one streamed delta. Empty for a tool call. */
  pieces: string[];
  /** The tool calls answered with (several: parallel tool calls); empty for text. */
  toolCalls: ReplyToolCall[];
  /** Reasoning text sent before the answer (Bedrock reasoningContent, Gemini thought parts). */
  reasoning?: string;
  finish: 'stop' | 'length' | 'tool' | 'stop_sequence';
  stopSequence: string | null;
  promptTokens: number;
  completionTokens: number;
  tokenDelayMs: number;
  omitUsage: boolean;
  /** Of promptTokens: read from / written to the prompt cache. */
  cachedTokens?: number;
  cacheWriteTokens?: number;
  /**
   * Anthropic, when the request enables `thinking`: the reasoning block that precedes the answer
   * (its signature is what the real API signs it with; the fake's is derived from the text).
   */
  thinking?: { text: string; signature: string };
}

/** A piece of a stream: SSE text or binary event-stream frames. */
export type WireChunk = string | Uint8Array;

/** The events of one stream: those before the content, the content deltas, those after. */
export interface StreamEvents {
  head: WireChunk[];
  tokens: WireChunk[];
  tail: WireChunk[];
}

/** Joins stream pieces: one string when all are text, else one Buffer. */
export function joinChunks(...parts: WireChunk[][]): string | Buffer {
  const flat = parts.flat();
  if (flat.every((p) => typeof p === 'string')) return (flat as string[]).join('');
  return Buffer.concat(flat.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}

/** An API error the fake answers with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

/** Cheap token estimate (about four characters a token), enough for realistic usage fields. */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

/**
 * The fake vector of an input (a text, or tokens): determined by the input and the dimensions
 * alone, float32 values so base64 round-trips exactly. Every wire format's embeddings use it.
 */
export function fakeVector(input: string | number[], dimensions: number): number[] {
  const text = typeof input === 'string' ? input : input.join(',');
  // FNV-1a seed: equal inputs give equal vectors.
  let seed = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) seed = Math.imul(seed ^ text.charCodeAt(i), 0x01000193);
  const random = seededRandom(seed >>> 0);
  const out = new Array<number>(dimensions);
  for (let i = 0; i < dimensions; i++) out[i] = Math.fround(random() * 2 - 1);
  return out;
}

/**
 * The signature the fake gives a thinking text (Anthropic's `thinking.signature`, Bedrock's
 * `reasoningText.signature`): derived from the whole text, so a block sent back with its text
 * altered, or without its signature, is refused as the real APIs refuse it.
 */
export function thinkingSignature(text: string): string {
  return `sig_${createHash('sha256').update('promptmesh-fake-thinking\0').update(text).digest('base64url')}`;
}

/** Anthropic's refusal of a tool-use continuation whose last assistant turn does not start with its thinking. */
export const THINKING_FIRST_MESSAGE =
  'When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking';
