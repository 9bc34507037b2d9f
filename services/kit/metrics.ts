import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { METRICS } from '../../contracts';

/** Buckets for HTTP and provider latency, in seconds: sub-millisecond to a minute. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The labels of the HTTP duration histogram. No label Prometheus attaches to every target
 * (`job`, `instance`, `namespace`, `service`, `pod`, `container`, `endpoint`): with
 * `honorLabels` off Prometheus would store it as `exported_*`, and queries on it would match
 * nothing (DESIGN.md "Metric labels"). Which service answered is the target's `job`.
 */
export const HTTP_DURATION_LABELS = ['method', 'route', 'status_code'] as const;

/** The metrics every service has; services register their own on the same `registry`. */
export interface KitMetrics {
  registry: Registry;
  httpDuration: Histogram<(typeof HTTP_DURATION_LABELS)[number]>;
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
    labelNames: HTTP_DURATION_LABELS,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  return { registry, httpDuration };
}
