import { setTimeout as delay } from 'node:timers/promises';
import { ProviderError } from '../types';
import { ClientGone, recordOutcome } from './outcomes';
import type { PipelineParts } from './parts';
import { candidateOf, type Stage } from './stage';

/**
 * Retries one candidate after a retryable failure, up to `routing.retries.attempts` times, with
 * exponential backoff and full jitter, or after the provider's Retry-After when it sent one (a
 * Retry-After longer than `maxRetryAfterMs` moves on to the next candidate instead). A timeout
 * is not retried when another candidate can answer. Every failed attempt is recorded for
 * routing's summary.
 */
export function retryStage(parts: Pick<PipelineParts, 'config' | 'random' | 'logger'>): Stage {
  const { retries } = parts.config.routing;
  return {
    name: 'retry',
    async run(call, next) {
      const c = candidateOf(call, 'retry');
      const signal = call.options.signal;
      for (let n = 0; ; n++) {
        if (signal?.aborted) throw new ClientGone();
        try {
          return await next(call);
        } catch (err) {
          if (!(err instanceof ProviderError) || err.kind === 'bad_request') throw err;
          recordOutcome(call, err, c.provider);
          parts.logger.debug({ provider: c.provider, kind: err.kind, attempt: n }, 'provider call failed');
          if (!err.retryable || n >= retries.attempts) throw err;
          // Waiting again for a provider that just timed out helps nobody when another can answer.
          if (err.kind === 'timeout' && call.hasFallback) throw err;
          let waitMs: number;
          if (err.retryAfterMs !== undefined) {
            if (err.retryAfterMs > retries.maxRetryAfterMs) throw err;
            waitMs = err.retryAfterMs;
          } else {
            waitMs = parts.random() * Math.min(retries.maxBackoffMs, retries.backoffMs * 2 ** n);
          }
          try {
            if (waitMs > 0) await delay(waitMs, undefined, { signal });
          } catch {
            throw new ClientGone();
          }
        }
      }
    },
  };
}
