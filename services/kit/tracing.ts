import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, SpanKind, isSpanContextValid, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type * as OtlpHttp from '@opentelemetry/exporter-trace-otlp-http';
import type * as Resources from '@opentelemetry/resources';
import type * as SdkTraceNode from '@opentelemetry/sdk-trace-node';

export { SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';

/**
 * Tracing for one app. Without an OTLP endpoint the tracer is OpenTelemetry's no-op one, which
 * still carries an incoming `traceparent` through to outgoing calls, so traces stay joined
 * across services that do export.
 */
export interface Tracing {
  tracer: Tracer;
  /** True when spans are recorded and exported. */
  exporting: boolean;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

const propagator = new W3CTraceContextPropagator();

const headerGetter = {
  get: (carrier: Record<string, unknown>, key: string) => {
    const v = carrier[key];
    return Array.isArray(v) ? (v[0] as string) : (v as string | undefined);
  },
  keys: (carrier: Record<string, unknown>) => Object.keys(carrier),
};
const headerSetter = {
  set: (carrier: Record<string, string>, key: string, value: string) => {
    carrier[key] = value;
  },
};

/** Reads a W3C `traceparent`/`tracestate` from request headers. */
export function extractTraceContext(headers: Record<string, unknown>): Context {
  if (headers.traceparent === undefined) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, headers, headerGetter);
}

/** Writes the W3C `traceparent`/`tracestate` of `ctx` into outgoing headers. */
export function injectTraceHeaders(ctx: Context | undefined, headers: Record<string, string>): Record<string, string> {
  if (ctx && ctx !== ROOT_CONTEXT) propagator.inject(ctx, headers, headerSetter);
  return headers;
}

/**
 * The tracers {@link createTracing} made without an exporter. Their spans record nothing, so a
 * span under a parent that carries no trace is the same shared no-op span in the same context:
 * {@link startSpan} then allocates nothing (a span and a context copy per span otherwise, several
 * per request on the hot path).
 */
const nonRecordingTracers = new WeakSet<Tracer>();
const UNTRACED_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Starts a span as a child of `parent` and returns it with the context that carries it. */
export function startSpan(
  tracer: Tracer,
  name: string,
  parent: Context | undefined,
  options: { kind?: SpanKind; attributes?: Record<string, string | number | boolean> } = {},
): { span: Span; context: Context } {
  const base = parent ?? ROOT_CONTEXT;
  if (nonRecordingTracers.has(tracer)) {
    // An incoming trace is still carried on (a non-recording child keeps its ids).
    const carried = base === ROOT_CONTEXT ? undefined : trace.getSpanContext(base);
    if (carried === undefined || !isSpanContextValid(carried)) return { span: UNTRACED_SPAN, context: base };
  }
  const span = tracer.startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, base);
  return { span, context: trace.setSpan(base, span) };
}

/**
 * Creates the app's tracer: exporting over OTLP/HTTP when `otlpEndpoint` is set. The SDK and
 * the exporter are loaded only then (they cost ~15 MB of memory a non-exporting process does
 * not need).
 */
export function createTracing(service: string, otlpEndpoint: string | undefined): Tracing {
  if (!otlpEndpoint) {
    const tracer = trace.getTracer('promptmesh');
    nonRecordingTracers.add(tracer);
    return { tracer, exporting: false, shutdown: async () => {} };
  }
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpHttp;
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof Resources;
  const { BatchSpanProcessor, NodeTracerProvider } = require('@opentelemetry/sdk-trace-node') as typeof SdkTraceNode;
  const base = otlpEndpoint.replace(/\/+$/, '');
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `promptmesh-${service}`, 'service.namespace': 'promptmesh' }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: base.endsWith('/v1/traces') ? base : `${base}/v1/traces` }))],
  });
  return {
    tracer: provider.getTracer('promptmesh'),
    exporting: true,
    shutdown: () => provider.shutdown(),
  };
}
