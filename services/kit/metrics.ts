import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { METRICS } from '../../contracts';

/** Buckets for HTTP and provider latency, in seconds: sub-millisecond to a minute. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The metrics every service has; services register their own on the same `registry`. */
export interface KitMetrics {
  registry: Registry;
  httpDuration: Histogram<'service' | 'method' | 'route' | 'status_code'>;
}

/**
 * One registry per app (not prom-client's global one), so several apps can live in one
 * process, as they do in tests and in `SERVICE=all`.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): KitMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: METRICS.httpDuration,
    help: 'Duration of HTTP server requests.',
    labelNames: ['service', 'method', 'route', 'status_code'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  return { registry, httpDuration };
}
