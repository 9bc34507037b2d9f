/**
 * What a stage returns (an {@link Answer}: plain or streaming) and how it ends: exactly once,
 * with its end listeners run in order, whichever way it ends.
 */
import { upstreamError, type ApiError } from '../../kit/errors';
import type { Logger } from '../../kit/logger';
import type { CacheResult } from '../core';
import { ChunkAssembler } from '../cache';
import { estimateInputTokens } from '../limits';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsResponse, Usage } from '../../openai';
import { ProviderError, type PassthroughResponse } from '../types';
import { ClientGone } from './outcomes';

/**
 * How an answer ended. `used` is what the call consumed as far as we know, for the token
 * limits: for a failure or a client that left, the prompt plus what was streamed.
 */
export type Ending =
  | {
      kind: 'success';
      usage: Usage | undefined;
      /** The whole completion (for a stream: assembled from its chunks; undefined when it did not finish properly). */
      completion: ChatCompletion | undefined;
      /** The model the provider says answered. */
      responseModel: string | undefined;
      /** For a stream: the estimate of what it used (for when the provider sends no usage). Plain: undefined. */
      used: number | undefined;
    }
  | {
      kind: 'failure';
      /** What went wrong (a stream broke off after its first chunk). */
      error: ProviderError;
      used: number;
      /** What the client gets for it. */
      thrown: ApiError;
    }
  | {
      kind: 'gone';
      used: number;
      /** The error the call ended with, when the client's leaving was noticed as one (else the consumer just stopped reading). */
      thrown: ApiError | undefined;
    };

/** Work for when an answer ends; listeners run in the order they were added (innermost stage first). */
export type EndListener = (ending: Ending) => void | Promise<void>;

/** What a stage returns: a plain completion or a stream, with what happens when it ends. */
export interface Answer {
  /** The provider that answered (for a cache hit: the one that answered originally). */
  readonly provider: string;
  /** The provider's model name. */
  readonly model: string;
  /** Set by the cache stage; `skip` without one. */
  cache: CacheResult;
  /** The plain answer (also a cache hit in a streaming call: the core turns it into chunks). */
  readonly completion?: ChatCompletion;
  /** The answer of an embeddings call (vectors as float arrays). */
  readonly embeddings?: EmbeddingsResponse;
  /** The answer of a `responses` call, as the provider sent it (its body errors normalised like a stream's). */
  readonly passthrough?: PassthroughResponse;
  /** The streaming answer: its first chunk (already received) and the rest, with errors normalised to ProviderError or ClientGone. */
  readonly stream?: { first: ChatCompletionChunk; rest: AsyncIterator<ChatCompletionChunk> };
  /** Milliseconds from the provider call to the answer (plain) or its first chunk (stream). */
  readonly latencyMs: number;
  /** What the call cost in USD; known once it ended (the cost stage sets it), 0 until then. */
  costUsd: number;
  /** The same cost in exact integer microdollars, what the spend ledger counts (docs/keys.md). */
  costMicroUsd: number;
  /** Adds work for when the answer ends (success, failure or the client leaving). */
  onEnd(listener: EndListener): void;
  /**
   * Ends the answer: runs the listeners, once. Later calls do nothing. Never rejects: a listener
   * that throws is logged and the others still run.
   */
  end(ending: Ending): Promise<void>;
  /** Whether {@link end} was called. */
  readonly ended: boolean;
}

/** What {@link createAnswer} needs. */
export interface AnswerInit {
  provider: string;
  model: string;
  completion?: ChatCompletion;
  embeddings?: EmbeddingsResponse;
  passthrough?: PassthroughResponse;
  stream?: { first: ChatCompletionChunk; rest: AsyncIterator<ChatCompletionChunk> };
  latencyMs: number;
  /** @default 'skip' */
  cache?: CacheResult;
  /** Where a failing listener is reported. */
  logger: Logger;
}

/** An answer that runs its end listeners exactly once. */
export function createAnswer(init: AnswerInit): Answer {
  return new PipelineAnswer(init);
}

/** A class, not an object of closures: one is made per provider call, on the hot path. */
class PipelineAnswer implements Answer {
  readonly provider: string;
  readonly model: string;
  cache: CacheResult;
  readonly completion?: ChatCompletion;
  readonly embeddings?: EmbeddingsResponse;
  readonly passthrough?: PassthroughResponse;
  readonly stream?: { first: ChatCompletionChunk; rest: AsyncIterator<ChatCompletionChunk> };
  readonly latencyMs: number;
  costUsd = 0;
  costMicroUsd = 0;
  ended = false;
  private readonly listeners: EndListener[] = [];
  private readonly logger: Logger;

  constructor(init: AnswerInit) {
    this.provider = init.provider;
    this.model = init.model;
    this.cache = init.cache ?? 'skip';
    this.completion = init.completion;
    this.embeddings = init.embeddings;
    this.passthrough = init.passthrough;
    this.stream = init.stream;
    this.latencyMs = init.latencyMs;
    this.logger = init.logger;
  }

  onEnd(listener: EndListener): void {
    if (this.ended) throw new Error('pipeline: onEnd after the answer ended');
    this.listeners.push(listener);
  }

  async end(ending: Ending): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    for (const listener of this.listeners) {
      try {
        // Synchronous listeners run synchronously: an answer ended without awaiting (the client
        // left) has released its slot and reservations by the time end() returns.
        const pending = listener(ending);
        if (pending) await pending;
      } catch (err) {
        // One broken listener must not keep a slot or a reservation of the others held.
        this.logger.error({ err }, 'llm pipeline: an end listener threw');
      }
    }
  }
}

/**
 * The chunks of a streaming answer as the client gets them, ending the answer exactly once
 * (through {@link endingBody}): after the last chunk (then, when asked for, a usage chunk with
 * the cost), when the stream breaks (a 502 `stream_interrupted` is thrown from the iterator), when
 * the client leaves, and when the consumer stops reading (`return()`), even before its first `next()`.
 */
export function streamChunks(answer: Answer, request: ChatRequest, includeUsage: boolean): AsyncIterable<ChatCompletionChunk> {
  const { first, rest } = answer.stream!;
  const inputEstimate = estimateInputTokens(request);
  // What a stream that broke off used, as far as we know: the prompt and what was streamed.
  let streamedChars = 0;
  const assembler = new ChunkAssembler();
  return endingBody(answer, chunksFrom(first, rest), {
    broke: 'mid-stream',
    piece(chunk) {
      assembler.add(chunk);
      for (const ch of chunk.choices ?? []) {
        if (typeof ch.delta?.content === 'string') streamedChars += ch.delta.content.length;
        for (const tc of ch.delta?.tool_calls ?? []) streamedChars += tc.function?.arguments?.length ?? 0;
      }
      return withoutUsage(chunk);
    },
    used: () => inputEstimate + Math.ceil(streamedChars / 4),
    success(used) {
      const completion = assembler.completion();
      return { kind: 'success', usage: assembler.usage, completion, responseModel: completion?.model ?? first.model, used };
    },
    // The usage chunk goes last, with the cost the end listeners set.
    last: includeUsage
      ? () => ({
          id: first.id,
          object: 'chat.completion.chunk',
          created: first.created,
          model: first.model,
          choices: [],
          usage: withCost(assembler.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, answer.costUsd, answer.costMicroUsd),
        })
      : undefined,
  });
}

/** The first chunk (already received), then the rest. */
async function* chunksFrom(first: ChatCompletionChunk, rest: AsyncIterator<ChatCompletionChunk>): AsyncGenerator<ChatCompletionChunk> {
  yield first;
  for (;;) {
    const r = await rest.next();
    if (r.done) return;
    yield r.value;
  }
}

/** What {@link endingBody} does with the pieces of one kind of answer body. */
interface BodyEnding<T> {
  /** Where the 502 says the answer broke: `failed <broke>: ...`. */
  broke: string;
  /** Sees each piece from upstream; returns what the consumer gets (undefined: nothing). */
  piece(item: T): T | undefined;
  /** What the call used so far, as far as we know (for the token limits). */
  used(): number;
  /** How the answer ended when the upstream finished, given {@link used}. */
  success(used: number): Extract<Ending, { kind: 'success' }>;
  /** A last piece for the consumer after the answer ended (its listeners have run), if any. */
  last?(): T;
  /** Runs once the answer ended at the upstream's end (its listeners have run), before {@link last}. */
  ended?(): void;
}

/**
 * An answer's body (a stream's chunks, a passed-through body) as its consumer reads it: the one
 * place a body ends its answer, exactly once, whichever way it ends: at the upstream's end
 * (`success`), when the upstream breaks (a 502 `stream_interrupted` is thrown to the consumer),
 * when the client leaves ({@link ClientGone}), and when the consumer stops reading (`return()`),
 * even before its first `next()`.
 */
function endingBody<T>(answer: Answer, upstream: AsyncIterable<T>, ending: BodyEnding<T>): AsyncIterable<T> {
  async function* pieces(): AsyncGenerator<T> {
    let over = false;
    try {
      for await (const item of upstream) {
        const out = ending.piece(item);
        if (out !== undefined) yield out;
      }
      over = true;
      await answer.end(ending.success(ending.used()));
      ending.ended?.();
      if (ending.last) yield ending.last();
    } catch (err) {
      if (over) throw err;
      over = true;
      if (err instanceof ClientGone) {
        await answer.end({ kind: 'gone', used: ending.used(), thrown: err });
        throw err;
      }
      const error = err instanceof ProviderError ? err : new ProviderError('server', (err as Error)?.message ?? String(err));
      const thrown = upstreamError(502, `provider ${answer.provider} failed ${ending.broke}: ${error.kind}: ${error.message}`, 'stream_interrupted');
      await answer.end({ kind: 'failure', error, used: ending.used(), thrown });
      throw thrown;
    } finally {
      // The consumer stopped early (the client went away): the listeners stop the upstream call too.
      if (!over) void answer.end({ kind: 'gone', used: ending.used(), thrown: undefined });
    }
  }

  // A consumer that gives up before its first next() still ends the answer (a generator that
  // never started ignores return() without running its finally).
  const generator = pieces();
  let started = false;
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        started = true;
        return generator.next();
      },
      return: async (v?: unknown) => {
        if (!started) {
          started = true;
          void answer.end({ kind: 'gone', used: ending.used(), thrown: undefined });
        }
        return generator.return(v as undefined);
      },
    }),
  };
}

/** Drops usage from chunks (it is sent once, last, with the cost) and usage-only chunks. */
function withoutUsage(chunk: ChatCompletionChunk): ChatCompletionChunk | undefined {
  if (chunk.usage === undefined || chunk.usage === null) return chunk;
  if (!chunk.choices || chunk.choices.length === 0) return undefined;
  const { usage: _usage, ...rest } = chunk;
  return rest;
}

/**
 * The cost added to the OpenAI usage object (extension fields): `cost_usd` in USD, and
 * `cost_micro_usd`, the exact integer microdollars the spend ledger counts (docs/keys.md).
 */
export type UsageWithCost = Usage & { cost_usd?: number; cost_micro_usd?: number };

/** The usage with `cost_usd` (rounded to 1e-10 USD: floating noise off, sub-cent precision kept) and `cost_micro_usd` added. */
export function withCost(usage: Usage | null | undefined, cost: number, microUsd = 0): UsageWithCost | undefined {
  if (!usage) return undefined;
  return { ...usage, cost_usd: Math.round(cost * 1e10) / 1e10, cost_micro_usd: microUsd };
}

/** The usage of an embeddings answer in the chat shape the stages read (no output tokens). */
export function embeddingsUsage(response: EmbeddingsResponse): Usage {
  const prompt = response.usage.prompt_tokens;
  return { prompt_tokens: prompt, completion_tokens: 0, total_tokens: response.usage.total_tokens ?? prompt };
}

/** How much of a passed-through body is kept to read its usage from at the end. */
const PASSTHROUGH_USAGE_WINDOW = 8 * 1024 * 1024;

/**
 * The body of a passed-through answer (the Responses API) as the client gets it, unchanged,
 * ending the answer exactly once like {@link streamChunks} (through {@link endingBody}): at its
 * end with the usage read from it (the JSON answer's `usage`, or a stream's `response.completed`
 * event), when it breaks (a 502 `stream_interrupted` is thrown), or when the consumer stops reading.
 * `onUsage` gets the usage read from it with the cost, once the answer ended (not when it carried none).
 */
export function passthroughBody(answer: Answer, inputEstimate: number, onUsage?: (usage: UsageWithCost) => void): AsyncIterable<Uint8Array> {
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  let found: ReturnType<typeof responsesUsage>;
  return endingBody(answer, answer.passthrough!.body, {
    broke: 'mid-answer',
    piece(piece) {
      bytes += piece.byteLength;
      if (text.length < PASSTHROUGH_USAGE_WINDOW) text += decoder.decode(piece, { stream: true });
      return piece;
    },
    used: () => inputEstimate + Math.ceil(bytes / 16),
    success(used) {
      found = responsesUsage(text);
      return { kind: 'success', usage: found?.usage, completion: undefined, responseModel: found?.model, used };
    },
    ended() {
      if (found && onUsage) onUsage(withCost(found.usage, answer.costUsd, answer.costMicroUsd)!);
    },
  });
}

/**
 * The usage of a Responses API answer in the chat shape: from the JSON response, or from the
 * last `response.completed` (or `response.incomplete`) event of a stream. Undefined when there is none.
 */
export function responsesUsage(text: string): { usage: Usage; model: string | undefined } | undefined {
  let response: any;
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{')) {
    try {
      response = JSON.parse(trimmed);
    } catch {
      return undefined;
    }
  } else {
    for (const line of text.split('\n').reverse()) {
      if (!line.startsWith('data:') || !line.includes('"usage"')) continue;
      try {
        const event = JSON.parse(line.slice(5));
        if (event?.response?.usage) {
          response = event.response;
          break;
        }
      } catch {
        // not an event we can read
      }
    }
  }
  const u = response?.usage;
  if (!u || typeof u.input_tokens !== 'number') return undefined;
  const output = typeof u.output_tokens === 'number' ? u.output_tokens : 0;
  const usage: Usage = { prompt_tokens: u.input_tokens, completion_tokens: output, total_tokens: typeof u.total_tokens === 'number' ? u.total_tokens : u.input_tokens + output };
  const cached = u.input_tokens_details?.cached_tokens;
  if (typeof cached === 'number') usage.prompt_tokens_details = { cached_tokens: cached };
  return { usage, model: typeof response.model === 'string' ? response.model : undefined };
}
