import { Counter, type Registry } from 'prom-client';

/** Names of the context service's own metrics (beside the kit's HTTP histogram). */
export const CONTEXT_METRICS = {
  operations: 'promptmesh_context_operations_total',
  messages: 'promptmesh_context_messages_total',
} as const;

/** The context service's counters. */
export interface ContextMetrics {
  /** Core operations by `operation` (read, append, delete) and `outcome` (ok, invalid, unavailable, error). */
  operations: Counter<'operation' | 'outcome'>;
  /** Messages by what an append did with them: `stored`, `duplicate` (skipped), `trimmed` (dropped as oldest). */
  messages: Counter<'result'>;
}

/** Registers the context metrics on `registry` (the app's, never prom-client's global one). */
export function createContextMetrics(registry: Registry): ContextMetrics {
  return {
    operations: new Counter({
      name: CONTEXT_METRICS.operations,
      help: 'Context store operations by operation and outcome.',
      labelNames: ['operation', 'outcome'] as const,
      registers: [registry],
    }),
    messages: new Counter({
      name: CONTEXT_METRICS.messages,
      help: 'Messages handled by context appends, by result (stored, duplicate, trimmed).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
  };
}
