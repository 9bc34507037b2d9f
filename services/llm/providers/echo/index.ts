/**
 * The `echo` provider: built in, used when no PROVIDERS_FILE is set. No network: it answers
 * with the text of the last user message, word by word when streaming, with usage counted by
 * the tokenizer. `max_tokens` / `max_completion_tokens` cut the reply (finish_reason `length`),
 * and `stop` sequences end it early, so clients see the same semantics as a real provider.
 * Its embeddings are deterministic unit vectors derived from each input (see {@link echoVector}).
 */
import { createHash, randomBytes } from 'node:crypto';
import { ProviderError, type CallOptions, type ProviderAdapter, type ProviderConfig } from '../../types';
import { embeddingInputs, type ChatCompletion, type ChatCompletionChunk, type ChatRequest, type EmbeddingsRequest, type EmbeddingsResponse, type FinishReason, type Usage } from '../../../openai';
import { countPromptTokens, countTextTokens, tokenizer } from '../tokens';
import { contentText } from '../../../openai';

interface EchoReply {
  text: string;
  finish: FinishReason;
  usage: Usage;
}

function lastUserText(request: ChatRequest): string {
  for (let i = request.messages.length - 1; i >= 0; i--) {
    if (request.messages[i].role === 'user') return contentText(request.messages[i].content);
  }
  return '';
}

function reply(request: ChatRequest): EchoReply {
  let text = lastUserText(request);
  let finish: FinishReason = 'stop';
  const stops = typeof request.stop === 'string' ? [request.stop] : Array.isArray(request.stop) ? request.stop : [];
  for (const s of stops) {
    const at = s ? text.indexOf(s) : -1;
    if (at >= 0) text = text.slice(0, at);
  }
  const { encode, decode } = tokenizer();
  let tokens = encode(text);
  const max = request.max_completion_tokens ?? request.max_tokens;
  if (typeof max === 'number' && max >= 0 && tokens.length > max) {
    tokens = tokens.slice(0, max);
    text = decode(tokens);
    finish = 'length';
  }
  const prompt = countPromptTokens(request.messages);
  return { text, finish, usage: { prompt_tokens: prompt, completion_tokens: tokens.length, total_tokens: prompt + tokens.length } };
}

function checkSignal(provider: ProviderConfig, signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    throw reason instanceof ProviderError ? reason : new ProviderError('timeout', `${provider.name}: call aborted`);
  }
}

function newId(): string {
  return `chatcmpl-echo${randomBytes(9).toString('base64url')}`;
}

/** Splits a text into word-sized deltas that concatenate back to it. */
function pieces(text: string): string[] {
  return text.match(/\s*\S+\s*$|\s*\S+|\s+/g) ?? [];
}

async function* echoChunks(provider: ProviderConfig, request: ChatRequest, r: EchoReply, signal?: AbortSignal): AsyncGenerator<ChatCompletionChunk> {
  const id = newId();
  const created = Math.floor(Date.now() / 1000);
  const base = { id, object: 'chat.completion.chunk' as const, created, model: request.model };
  yield { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] };
  for (const p of pieces(r.text)) {
    checkSignal(provider, signal);
    yield { ...base, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] };
  }
  checkSignal(provider, signal);
  yield { ...base, choices: [{ index: 0, delta: {}, finish_reason: r.finish }] };
  yield { ...base, choices: [], usage: r.usage };
}

/** Dimensions of an echo vector when the request names none. */
export const ECHO_EMBEDDING_DIMENSIONS = 16;

/**
 * A unit vector determined by the input alone (SHA-256 in counter mode, mapped to [-1, 1]):
 * equal inputs give equal vectors, different ones different vectors, so tests and demos can
 * tell them apart without a model.
 */
export function echoVector(input: string | number[], dimensions: number): number[] {
  const seed = typeof input === 'string' ? input : input.join(',');
  const out = new Array<number>(dimensions);
  let block = Buffer.alloc(0);
  for (let i = 0; i < dimensions; i++) {
    if (i % 8 === 0) block = createHash('sha256').update(`${i / 8}:${seed}`).digest();
    out[i] = block.readUInt32LE((i % 8) * 4) / 0x7fffffff - 1;
  }
  const norm = Math.hypot(...out) || 1;
  return out.map((x) => x / norm);
}

function echoEmbeddings(request: EmbeddingsRequest): EmbeddingsResponse {
  const inputs = embeddingInputs(request.input);
  const dimensions = request.dimensions ?? ECHO_EMBEDDING_DIMENSIONS;
  const data = inputs.map((input, index) => ({ object: 'embedding' as const, index, embedding: echoVector(input, dimensions) }));
  const prompt = inputs.reduce((n, i) => n + (typeof i === 'string' ? countTextTokens(i) : i.length), 0);
  return { object: 'list', data, model: request.model, usage: { prompt_tokens: prompt, total_tokens: prompt } };
}

/** The shared echo adapter. */
export const echoAdapter: ProviderAdapter = {
  type: 'echo',
  async complete(provider: ProviderConfig, request: ChatRequest, options: CallOptions): Promise<ChatCompletion> {
    checkSignal(provider, options.signal);
    const r = reply(request);
    return {
      id: newId(),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finish, logprobs: null }],
      usage: r.usage,
    };
  },
  async stream(provider: ProviderConfig, request: ChatRequest, options: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
    checkSignal(provider, options.signal);
    return echoChunks(provider, request, reply(request), options.signal);
  },
  async embed(provider: ProviderConfig, request: EmbeddingsRequest, options: CallOptions): Promise<EmbeddingsResponse> {
    checkSignal(provider, options.signal);
    return echoEmbeddings(request);
  },
};
