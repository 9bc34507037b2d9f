import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { METRICS } from '../../contracts';
import { LATENCY_BUCKETS } from '../kit/metrics';
import { CIRCUIT_STATE_VALUE, type CircuitState } from './breaker';

/** The llm service's metrics (names from contracts METRICS, DESIGN.md "Metrics"). */
export interface LlmMetrics {
  /** One observation per provider call; `outcome` is `success` or the failure kind. */
  operationDuration: Histogram<'provider' | 'model' | 'outcome'>;
  /** Tokens per successful call; `token_type` is `input` or `output`. */
  tokenUsage: Histogram<'provider' | 'model' | 'token_type'>;
  /** `key` and `team` are the API key's and its team's ids, bounded (services/kit/label-cap.ts). */
  costUsd: Counter<'provider' | 'model' | 'key' | 'team'>;
  /** `hit`, `miss`, `skip` (not cacheable) or `error` (Redis unreachable). */
  cacheRequests: Counter<'result'>;
  /** USD a cache hit saved: the price of the cached answer's tokens at its provider and model. */
  cacheSavedUsd: Counter<'provider' | 'model' | 'key' | 'team'>;
}

/** Token buckets of the OpenTelemetry GenAI semantic conventions. */
const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304];

function existing<T>(registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}

/**
 * Registers the llm metrics on the app's registry. The circuit gauge reads each provider's
 * state when scraped, so a circuit that turned half-open by its cool-down shows up as such.
 */
export function createLlmMetrics(registry: Registry, circuitStates: () => Array<{ provider: string; state: CircuitState }>): LlmMetrics {
  const operationDuration =
    existing<LlmMetrics['operationDuration']>(registry, METRICS.genAiDuration) ??
    new Histogram({
      name: METRICS.genAiDuration,
      help: 'Duration of GenAI operations (provider calls), by outcome.',
      labelNames: ['provider', 'model', 'outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
  const tokenUsage =
    existing<LlmMetrics['tokenUsage']>(registry, METRICS.genAiTokens) ??
    new Histogram({
      name: METRICS.genAiTokens,
      help: 'Tokens used per GenAI operation, by token type (input, output).',
      labelNames: ['provider', 'model', 'token_type'] as const,
      buckets: TOKEN_BUCKETS,
      registers: [registry],
    });
  const costUsd =
    existing<LlmMetrics['costUsd']>(registry, METRICS.costUsd) ??
    new Counter({
      name: METRICS.costUsd,
      help: 'Cost of provider calls in USD, from the price table of the providers file, by provider, model, API key and team.',
      labelNames: ['provider', 'model', 'key', 'team'] as const,
      registers: [registry],
    });
  const cacheRequests =
    existing<LlmMetrics['cacheRequests']>(registry, METRICS.cacheRequests) ??
    new Counter({
      name: METRICS.cacheRequests,
      help: 'Response cache lookups by result (hit, miss, skip, error).',
      labelNames: ['result'] as const,
      registers: [registry],
    });
  const cacheSavedUsd =
    existing<LlmMetrics['cacheSavedUsd']>(registry, METRICS.cacheSavedUsd) ??
    new Counter({
      name: METRICS.cacheSavedUsd,
      help: 'USD the response cache saved: the cost of the cached answers served, at their provider and model prices, by API key and team.',
      labelNames: ['provider', 'model', 'key', 'team'] as const,
      registers: [registry],
    });
  if (!registry.getSingleMetric(METRICS.circuitState)) {
    new Gauge({
      name: METRICS.circuitState,
      help: 'Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.',
      labelNames: ['provider'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const { provider, state } of circuitStates()) this.set({ provider }, CIRCUIT_STATE_VALUE[state]);
      },
    });
  }
  return { operationDuration, tokenUsage, costUsd, cacheRequests, cacheSavedUsd };
}
