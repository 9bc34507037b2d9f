/**
 * The shape of the llm core: a request goes through a list of named stages, each of which may
 * act before the call (refuse it, answer it, change what the stages after it see), call the
 * rest of the list (once, several times, or not at all), and act on the answer. The list is in
 * `./index.ts`; docs/llm.md ("The pipeline") says how to add a stage.
 */
import type { Context } from '../../kit/tracing';
import type { LlmCallOptions } from '../core';
import type { Candidate } from '../routing';
import { embeddingInputs, type ChatRequest, type EmbeddingsRequest, type PassthroughRequest } from '../../openai';
import type { Answer } from './answer';
import type { AttemptOutcome } from './outcomes';

/**
 * One call as it goes through the pipeline. Stages never change a call in place: a stage that
 * has something to tell the stages after it passes them a copy (`next({ ...call, candidate })`),
 * so a stage that calls `next` several times (routing, retry) hands each attempt its own view.
 */
/** What a call asks of a provider: a chat completion, embeddings, or a Responses API call passed through. */
export type Operation = 'chat' | 'embeddings' | 'responses';

export interface LlmCall {
  /**
   * What the call asks for. For `embeddings` and `responses`, `request` is a view of the
   * request for the stages that read the model and estimate tokens, and the request itself is
   * in `embeddings` or `passthrough`.
   */
  readonly operation: Operation;
  /** The request as the client sent it (extension fields included). */
  readonly request: ChatRequest;
  /** The embeddings request of an `embeddings` call (`request` then holds its view for the token estimates: no messages). */
  readonly embeddings?: EmbeddingsRequest;
  /** The Responses API body of a `responses` call, as the client sent it. */
  readonly passthrough?: PassthroughRequest;
  readonly options: LlmCallOptions;
  /** Whether the client asked for a stream; the terminal step then returns a streaming answer. */
  readonly stream: boolean;
  /** The parent of the spans started further in (the root span sets it to itself, the attempt span to itself). */
  readonly trace: Context | undefined;
  /** The targets that can serve the request, set by the `targets` stage. Empty before it. */
  readonly targets: readonly Candidate[];
  /** The target of this attempt, set by the `routing` stage; the stages after it need it. */
  readonly candidate?: Candidate;
  /** Whether routing has another candidate after this one (retry does not wait on a timeout then). */
  readonly hasFallback: boolean;
  /**
   * What happened to each attempt so far, oldest first: routing explains a failure from it.
   * Shared by every copy of the call (the one mutable part, appended to by `recordOutcome`).
   */
  readonly outcomes: AttemptOutcome[];
}

/** The rest of the pipeline, as a stage sees it. */
export type Next = (call: LlmCall) => Promise<Answer>;

/**
 * One named step of the llm core. `run` gets the call and the rest of the pipeline; it returns
 * the answer (from `next`, or its own, as the cache does on a hit) or throws:
 * - an `ApiError` ends the call with that status (the stages before it see it in their `catch`);
 * - a `ProviderError` (normalised by the terminal step) or `CandidateUnavailable` is one failed
 *   attempt, which retry and routing handle;
 * - `ClientGone` when the caller went away.
 *
 * Work that must happen when the answer is over (release a slot, settle tokens, end a span,
 * store in the cache) goes in `answer.onEnd(...)`, never right after `next` returns: for a stream
 * the answer is over only after its last chunk (or its failure, or the client leaving), and
 * `onEnd` listeners run exactly once on every one of those paths. A stage that throws after
 * `next` returned must first end the answer (`await answer.end({ kind: 'gone', ... })`) so the
 * stages after it let go of what they hold.
 */
export interface Stage {
  /** Short and unique: names the stage in logs, errors and docs. */
  readonly name: string;
  run(call: LlmCall, next: Next): Promise<Answer>;
}

/**
 * Chains the stages, first outermost, onto the terminal step (the provider call). Built once per
 * core, so a request pays one function call per stage.
 */
export function compose(stages: readonly Stage[], terminal: Next): Next {
  const names = new Set<string>();
  for (const s of stages) {
    if (names.has(s.name)) throw new Error(`pipeline: two stages are named '${s.name}'`);
    names.add(s.name);
  }
  return stages.reduceRight<Next>((next, stage) => (call) => stage.run(call, next), terminal);
}

/** A fresh call for `request`, as the core hands it to the first stage. */
export function newCall(request: ChatRequest, options: LlmCallOptions, stream: boolean): LlmCall {
  return { operation: 'chat', request, options, stream, trace: options.traceContext, targets: [], hasFallback: false, outcomes: [] };
}

/**
 * A fresh embeddings call. The stages that estimate tokens and read the model see `request`:
 * the model and the inputs as one user message each (token ids count one token each), no
 * output; the provider call and the cache use `embeddings`, the request itself.
 */
export function newEmbeddingsCall(embeddings: EmbeddingsRequest, options: LlmCallOptions): LlmCall {
  return { operation: 'embeddings', request: embeddingsView(embeddings), embeddings, options, stream: false, trace: options.traceContext, targets: [], hasFallback: false, outcomes: [] };
}

/**
 * A fresh Responses API call. Its view for the stages: the model, the input as one message
 * (its text, or its JSON for structured input) and `max_output_tokens` as `max_tokens`, so the
 * output caps and token limits hold as for chat.
 */
export function newResponsesCall(body: PassthroughRequest, options: LlmCallOptions): LlmCall {
  const input = body.input;
  const text = typeof input === 'string' ? input : input === undefined ? '' : JSON.stringify(input);
  const view: ChatRequest = { model: body.model, messages: [{ role: 'user', content: typeof body.instructions === 'string' ? `${body.instructions}\n${text}` : text }] };
  if (typeof body.max_output_tokens === 'number') view.max_tokens = body.max_output_tokens;
  return { operation: 'responses', request: view, passthrough: body, options, stream: body.stream === true, trace: options.traceContext, targets: [], hasFallback: false, outcomes: [] };
}

function embeddingsView(e: EmbeddingsRequest): ChatRequest {
  // Token ids: four characters stand for one token in the estimate.
  return { model: e.model, messages: embeddingInputs(e.input).map((i) => ({ role: 'user' as const, content: typeof i === 'string' ? i : ' '.repeat(4 * i.length) })) };
}

/**
 * The candidate of an attempt. Stages that work on one provider call (breaker, limits, spans,
 * metrics, cost, the provider call) sit after routing; placed before it they fail loudly at the
 * first request instead of misbehaving.
 */
export function candidateOf(call: LlmCall, stage: string): Candidate {
  if (!call.candidate) throw new Error(`pipeline: stage '${stage}' needs a candidate: it must come after the routing stage`);
  return call.candidate;
}
