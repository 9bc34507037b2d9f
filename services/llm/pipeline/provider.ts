import { injectTraceHeaders } from '../../kit/tracing';
import { EXTENSION_FIELDS, type ChatCompletionChunk, type ChatRequest } from '../../openai';
import { ProviderError, type ProviderConfig } from '../types';
import { createAnswer } from './answer';
import { ClientGone } from './outcomes';
import type { PipelineParts } from './parts';
import { candidateOf, type Next } from './stage';

/** Fields of the request body that are promptmesh's, never sent to a provider. */

/**
 * The end of the pipeline: one call to the candidate's adapter, within the provider's total
 * timeout, aborted when the client leaves, with the trace context in its headers. Every error
 * comes out as a {@link ProviderError} (timeouts, adapter bugs; provider text scrubbed of our
 * credentials) or {@link ClientGone}. A stream is returned once its first chunk arrived, so a
 * failure before it can still fall back; the timeout keeps running until its last chunk.
 */
export function providerCall(parts: Pick<PipelineParts, 'adapters' | 'scrubber' | 'logger'>): Next {
  const { logger } = parts;
  return async (call) => {
    const c = candidateOf(call, 'provider');
    const adapter = parts.adapters.get(c.provider)!;
    const attempt = new ProviderAttempt(c.config, call.options.signal, parts);
    const callOptions = { signal: attempt.controller.signal, headers: injectTraceHeaders(call.trace, {}) };
    const request = providerRequest(call.request, c.model, call.stream);
    const startedAt = performance.now();

    if (!call.stream) {
      let completion;
      try {
        completion = await adapter.complete(c.config, request, callOptions);
      } catch (err) {
        throw attempt.fail(err);
      }
      const answer = createAnswer({ provider: c.provider, model: c.model, completion, latencyMs: performance.now() - startedAt, logger });
      answer.onEnd(() => attempt.dispose());
      return answer;
    }

    let iterator: AsyncIterator<ChatCompletionChunk>;
    let first: IteratorResult<ChatCompletionChunk>;
    try {
      iterator = (await adapter.stream(c.config, request, callOptions))[Symbol.asyncIterator]();
      try {
        first = await iterator.next();
      } catch (err) {
        stop(iterator);
        throw err;
      }
      if (first.done) throw new ProviderError('malformed', 'the stream ended before its first chunk');
    } catch (err) {
      throw attempt.fail(err);
    }
    const answer = createAnswer({ provider: c.provider, model: c.model, stream: { first: first.value, rest: new NormalisedIterator(iterator, attempt) }, latencyMs: performance.now() - startedAt, logger });
    answer.onEnd((ending) => {
      if (ending.kind === 'gone') {
        // The client left: stop the upstream call too.
        attempt.controller.abort(new ClientGone());
        stop(iterator);
      }
      attempt.dispose();
    });
    return answer;
  };
}

/**
 * One provider call's total timeout and its link to the client's signal. A class (and the
 * client's signal listener its `handleEvent`) so a call allocates no closures for them.
 */
class ProviderAttempt {
  readonly controller = new AbortController();
  timedOut = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly config: ProviderConfig,
    private readonly signal: AbortSignal | undefined,
    private readonly parts: Pick<PipelineParts, 'scrubber' | 'logger'>,
  ) {
    this.timer = setTimeout(onTimeout, config.timeoutMs, this);
    signal?.addEventListener('abort', this, { once: true });
  }

  /** The client's signal aborted. */
  handleEvent(): void {
    this.controller.abort(this.signal?.reason);
  }

  /** Clears the timeout and the client-abort listener (idempotent). */
  dispose(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this);
  }

  /** Ends the attempt with the error it failed with: the client leaving wins over whatever the adapter threw. */
  fail(err: unknown): Error {
    const error = this.errorOf(err);
    this.dispose();
    return error;
  }

  /** The error a failure is, normalised (for a stream's later chunks too, which do not end the attempt here). */
  errorOf(err: unknown): Error {
    if (this.signal?.aborted) {
      const gone = new ClientGone();
      this.controller.abort(gone);
      this.dispose();
      return gone;
    }
    const { scrubber, logger } = this.parts;
    if (this.timedOut) return new ProviderError('timeout', `no complete answer within ${this.config.timeoutMs} ms`);
    if (err instanceof ProviderError) return new ProviderError(err.kind, scrubber.scrub(err.message), err.status, err.retryAfterMs, err.param);
    const e = err as Error;
    if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return new ProviderError('timeout', scrubber.scrub(e.message || 'aborted'));
    const message = scrubber.scrub(e?.message ?? String(err));
    logger.error({ err: { type: e?.name, message, stack: scrubber.scrub(e?.stack ?? '') }, provider: this.config.name }, 'provider adapter threw a non-provider error');
    return new ProviderError('server', `adapter error: ${message}`);
  }
}

function onTimeout(attempt: ProviderAttempt): void {
  attempt.timedOut = true;
  attempt.controller.abort(new ProviderError('timeout', `no complete answer within ${attempt.config.timeoutMs} ms`));
}

/** A stream's chunks after the first, with every error normalised like the first chunk's. */
class NormalisedIterator implements AsyncIterator<ChatCompletionChunk> {
  constructor(
    private readonly upstream: AsyncIterator<ChatCompletionChunk>,
    private readonly attempt: ProviderAttempt,
  ) {}

  async next(): Promise<IteratorResult<ChatCompletionChunk>> {
    try {
      return await this.upstream.next();
    } catch (err) {
      throw this.attempt.errorOf(err);
    }
  }
}

/** The request as the provider gets it: its own model name, our extension fields removed. */
function providerRequest(request: ChatRequest, model: string, stream: boolean): ChatRequest {
  const out: ChatRequest = { ...request, model, stream };
  for (const f of EXTENSION_FIELDS) delete out[f];
  if (!stream) delete out.stream_options;
  return out;
}

/** Stops an upstream iterator; one that is already over or throws on return has nothing left to stop. */
function stop(iterator: AsyncIterator<unknown>): void {
  try {
    void iterator.return?.()?.catch(() => undefined);
  } catch {
    // already finished
  }
}
