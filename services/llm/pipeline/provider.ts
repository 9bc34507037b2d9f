import { injectTraceHeaders } from '../../kit/tracing';
import { ProviderError, type ChatCompletionChunk, type ChatRequest, type ProviderConfig } from '../types';
import { createAnswer } from './answer';
import { ClientGone } from './outcomes';
import type { PipelineParts } from './parts';
import { candidateOf, type Next } from './stage';

/** Fields of the request body that are promptmesh's, never sent to a provider. */
const EXTENSION_FIELDS = ['cache', 'prompt', 'session_id'];

/**
 * The end of the pipeline: one call to the candidate's adapter, within the provider's total
 * timeout, aborted when the client leaves, with the trace context in its headers. Every error
 * comes out as a {@link ProviderError} (timeouts, adapter bugs; provider text scrubbed of our
 * credentials) or {@link ClientGone}. A stream is returned once its first chunk arrived, so a
 * failure before it can still fall back; the timeout keeps running until its last chunk.
 */
export function providerCall(parts: Pick<PipelineParts, 'adapters' | 'scrubber' | 'logger'>): Next {
  const { scrubber, logger } = parts;

  function normalise(err: unknown, config: ProviderConfig, timedOut: boolean): ProviderError {
    if (timedOut) return new ProviderError('timeout', `no complete answer within ${config.timeoutMs} ms`);
    if (err instanceof ProviderError) return new ProviderError(err.kind, scrubber.scrub(err.message), err.status, err.retryAfterMs);
    const e = err as Error;
    if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return new ProviderError('timeout', scrubber.scrub(e.message || 'aborted'));
    const message = scrubber.scrub(e?.message ?? String(err));
    logger.error({ err: { type: e?.name, message, stack: scrubber.scrub(e?.stack ?? '') }, provider: config.name }, 'provider adapter threw a non-provider error');
    return new ProviderError('server', `adapter error: ${message}`);
  }

  return async (call) => {
    const c = candidateOf(call, 'provider');
    const adapter = parts.adapters.get(c.provider)!;
    const signal = call.options.signal;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new ProviderError('timeout', `no complete answer within ${c.config.timeoutMs} ms`));
    }, c.config.timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const dispose = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    /** The error an attempt ends with: the client leaving wins over whatever the adapter threw. */
    const settleError = (err: unknown): Error => {
      if (signal?.aborted) {
        const gone = new ClientGone();
        controller.abort(gone);
        dispose();
        return gone;
      }
      return normalise(err, c.config, timedOut);
    };
    const callOptions = { signal: controller.signal, headers: injectTraceHeaders(call.trace, {}) };
    const request = providerRequest(call.request, c.model, call.stream);
    const startedAt = performance.now();

    if (!call.stream) {
      let completion;
      try {
        completion = await adapter.complete(c.config, request, callOptions);
      } catch (err) {
        const error = settleError(err);
        dispose();
        throw error;
      }
      const answer = createAnswer({ provider: c.provider, model: c.model, completion, latencyMs: performance.now() - startedAt, logger });
      answer.onEnd(dispose);
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
      const error = settleError(err);
      dispose();
      throw error;
    }
    const upstream = iterator;
    const rest: AsyncIterator<ChatCompletionChunk> = {
      next: async () => {
        try {
          return await upstream.next();
        } catch (err) {
          throw settleError(err);
        }
      },
    };
    const answer = createAnswer({ provider: c.provider, model: c.model, stream: { first: first.value, rest }, latencyMs: performance.now() - startedAt, logger });
    answer.onEnd((ending) => {
      if (ending.kind === 'gone') {
        // The client left: stop the upstream call too.
        controller.abort(new ClientGone());
        stop(upstream);
      }
      dispose();
    });
    return answer;
  };
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
