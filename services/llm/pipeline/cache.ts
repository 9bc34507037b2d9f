import { isCacheable, normaliseEmbeddingsForCache, type CacheMode } from '../cache';
import { costOf } from '../config';
import type { LlmCallOptions } from '../core';
import { decodeEmbeddings, encodeEmbeddings, type ChatRequest } from '../../openai';
import { createAnswer, embeddingsUsage, withCost } from './answer';
import type { PipelineParts } from './parts';
import type { Stage } from './stage';
import { OwnerLabels } from './owner-labels';

/**
 * The exact-match response cache in Redis: a hit answers without going further (at no cost; the
 * price it saved is counted), a miss stores the answer once it has finished properly (for a
 * stream: after its last chunk). Entries are kept apart per tenant. Redis down: `skip`.
 */
export function cacheStage(parts: Pick<PipelineParts, 'config' | 'cache' | 'metrics' | 'providers' | 'logger'>): Stage {
  const { config, cache, metrics } = parts;
  const owners = new OwnerLabels();
  return {
    name: 'cache',
    async run(call, next) {
      const { request, options } = call;
      const mode = cacheModeOf(request, options);
      // Embeddings are deterministic: cached unless the caller opts out.
      const cacheable = call.operation === 'embeddings' ? mode !== 'off' : isCacheable(request, mode);
      // Responses are passed through as they come: nothing to key or replay them by.
      if (!config.cache.enabled || !cacheable || call.operation === 'responses') {
        metrics.cacheRequests.inc({ result: 'skip' });
        return next(call);
      }
      const key = call.embeddings ? cache.keyOf(normaliseEmbeddingsForCache(call.embeddings), options.tenant) : cache.key(request, options.tenant);
      const found = await cache.get(key);
      if (found === undefined) {
        metrics.cacheRequests.inc({ result: 'error' });
        return next(call);
      }
      // A hit is served only to an admitted call (the router's rpm, budgets and concurrency).
      if (found !== null) await options.admitted;
      if (found !== null && call.embeddings) {
        if (!found.embeddings) return next(call);
        metrics.cacheRequests.inc({ result: 'hit' });
        const { provider, model } = found;
        const embeddings = decodeEmbeddings(found.embeddings);
        const providerConfig = parts.providers.get(provider);
        if (providerConfig) metrics.cacheSavedUsd.inc({ provider, model }, costOf(providerConfig, model, embeddingsUsage(embeddings)));
        return createAnswer({ provider, model, cache: 'hit', embeddings, latencyMs: 0, logger: parts.logger });
      }
      if (found !== null && found.completion) {
        metrics.cacheRequests.inc({ result: 'hit' });
        const { completion, provider, model } = found;
        const providerConfig = parts.providers.get(provider);
        if (providerConfig && completion.usage) metrics.cacheSavedUsd.inc({ provider, model, ...owners.of(options) }, costOf(providerConfig, model, completion.usage));
        return createAnswer({ provider, model, cache: 'hit', completion: { ...completion, usage: withCost(completion.usage, 0)! }, latencyMs: 0, logger: parts.logger });
      }
      metrics.cacheRequests.inc({ result: 'miss' });
      const answer = await next(call);
      answer.cache = 'miss';
      answer.onEnd(async (ending) => {
        if (ending.kind === 'success' && answer.embeddings) {
          // As base64: a quarter of the bytes of JSON floats, and far cheaper to write and read.
        await cache.set(key, { embeddings: encodeEmbeddings(answer.embeddings, 'base64'), provider: answer.provider, model: answer.model });
          return;
        }
        if (ending.kind !== 'success' || !ending.completion) return;
        if (!ending.completion.choices?.every((ch) => ch.finish_reason !== null)) return;
        await cache.set(key, { completion: ending.completion, provider: answer.provider, model: answer.model });
      });
      return answer;
    },
  };
}

/** The request's cache policy: the call option, else the body's `cache` field, else `default`. */
export function cacheModeOf(request: ChatRequest, options: LlmCallOptions): CacheMode {
  if (options.cache) return options.cache;
  if (request.cache === true) return 'force';
  if (request.cache === false) return 'off';
  return 'default';
}
