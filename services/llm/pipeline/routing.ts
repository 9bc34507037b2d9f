import { ApiError, badRequest, rateLimited, upstreamError } from '../../kit/errors';
import { orderCandidates } from '../routing';
import { ProviderError } from '../types';
import { ClientGone, recordOutcome, type AttemptOutcome } from './outcomes';
import type { PipelineParts } from './parts';
import type { Stage } from './stage';

/**
 * Routing and fallback: orders the targets by the configured strategy (weighted, priority,
 * least-latency, cheapest) and tries them in turn (only the first without `fallback`), each as
 * one attempt with `call.candidate` set. A provider that rejects the request as invalid ends the
 * call (400: another provider would too). When nobody answered, the outcomes are summed up in
 * one error: 429 when every provider is rate limited, 503 when none could be tried, else 502.
 * Successful answers feed the latency estimates of least-latency routing.
 */
export function routingStage(parts: Pick<PipelineParts, 'config' | 'latency' | 'random'>): Stage {
  const { config, latency } = parts;
  return {
    name: 'routing',
    async run(call, next) {
      const ordered = orderCandidates(call.targets, config.routing.strategy, latency, parts.random);
      const tryList = config.routing.fallback ? ordered : ordered.slice(0, 1);
      for (let i = 0; i < tryList.length; i++) {
        if (call.options.signal?.aborted) throw new ClientGone();
        const candidate = tryList[i]!;
        try {
          const answer = await next({ ...call, candidate, hasFallback: i < tryList.length - 1 });
          answer.onEnd((ending) => {
            if (ending.kind === 'success') latency.observe(candidate.provider, candidate.model, answer.latencyMs);
          });
          return answer;
        } catch (err) {
          if (err instanceof ProviderError && err.kind === 'bad_request' && err.param !== undefined) {
            // The adapter could not translate a field for this provider type: name it.
            throw badRequest(`provider ${candidate.provider} cannot take the request: ${err.message}`, err.param, 'unsupported_parameter');
          }
          if (err instanceof ProviderError && err.kind === 'bad_request') {
            throw badRequest(`provider ${candidate.provider} rejected the request: ${err.message}`, err.param ?? null, 'upstream_bad_request');
          }
          if (!recordOutcome(call, err, candidate.provider)) throw err;
        }
      }
      throw summarise(call.request.model, call.outcomes);
    },
  };
}

/** The error that explains why no provider answered, one line per provider (its last outcome). */
export function summarise(model: string, outcomes: readonly AttemptOutcome[]): ApiError {
  const describe = (o: AttemptOutcome) =>
    o.kind === 'open'
      ? `${o.provider}: circuit open`
      : o.kind === 'limited'
        ? `${o.provider}: ${o.reason}`
        : `${o.provider}: ${o.error.kind}${o.error.status ? ` (${o.error.status})` : ''}: ${o.error.message}`;
  const last = new Map<string, AttemptOutcome>();
  for (const o of outcomes) last.set(o.provider, o);
  const summary = [...last.values()].map(describe).join('; ');
  const finals = [...last.values()];
  const limitedWait = (o: AttemptOutcome) =>
    o.kind === 'limited' ? o.retryAfterMs : o.kind === 'failed' && o.error.kind === 'rate_limited' ? (o.error.retryAfterMs ?? 1_000) : undefined;
  const waits = finals.map(limitedWait);
  if (finals.length > 0 && waits.every((w) => w !== undefined)) {
    return rateLimited(`every provider for model '${model}' is rate limited: ${summary}`, Math.min(...(waits as number[])));
  }
  if (finals.every((o) => o.kind !== 'failed')) {
    const retryIn = Math.min(...finals.map((o) => (o.kind === 'open' ? o.retryInMs : o.kind === 'limited' ? o.retryAfterMs : 1_000)));
    return new ApiError({
      status: 503, type: 'service_unavailable_error', message: `no provider available for model '${model}': ${summary}`, code: 'providers_unavailable',
      headers: { 'retry-after': String(Math.max(1, Math.ceil(retryIn / 1000))) },
    });
  }
  const lastFailure = [...outcomes].reverse().find((o) => o.kind === 'failed') as Extract<AttemptOutcome, { kind: 'failed' }>;
  return upstreamError(502, `every provider failed for model '${model}': ${summary} (last error from ${lastFailure.provider}: ${lastFailure.error.message})`, 'providers_failed');
}
