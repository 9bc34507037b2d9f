import { randomUUID } from 'node:crypto';
import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyReply } from 'fastify';
import { HEADERS, PATHS } from '../../contracts';
import type { KitConfig } from './config';
import { badRequest, installErrorHandlers, toApiError, writeClientError } from './errors';
import type { Logger } from './logger';
import type { KitMetrics } from './metrics';
import { SpanKind, SpanStatusCode, extractTraceContext, startSpan, type Context, type Span, type Tracing } from './tracing';

declare module 'fastify' {
  interface FastifyInstance {
    /** Readiness checks run by `/readyz`; services add theirs when mounted. */
    readiness: Readiness;
  }
  interface FastifyRequest {
    /** The service whose plugin owns the route (named in the log line of a failed request). */
    serviceName: string;
    /** The OpenTelemetry context of this request's server span. */
    traceContext: Context;
    /** The request's server span (no-op when tracing export is off). */
    span: Span;
  }
}

/** A dependency check: resolves when the dependency answers, throws when it does not. */
export type ReadinessCheck = () => Promise<void>;

/** The readiness state of an app: named checks plus the shutdown flag. */
export class Readiness {
  private readonly checks = new Map<string, ReadinessCheck>();
  private draining = false;

  constructor(private readonly timeoutMs = 2_000) {}

  add(name: string, check: ReadinessCheck): void {
    this.checks.set(name, check);
  }

  /** After this, `/readyz` answers 503 so load balancers stop sending new requests. */
  startDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Runs every check in parallel, each bounded by the timeout. */
  async run(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    if (this.draining) return { ready: false, checks: { shutdown: 'draining' } };
    let ready = true;
    await Promise.all(
      [...this.checks].map(async ([name, check]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
            }),
          ]);
          checks[name] = 'ok';
        } catch (err) {
          ready = false;
          checks[name] = (err as Error).message || 'failed';
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return { ready, checks };
  }
}

/** How deeply a JSON request body may nest objects and arrays. */
export const MAX_JSON_DEPTH = 128;

/** How many `{` and `[` a JSON text holds (an upper bound of its nesting, counted natively). */
export function countJsonBrackets(text: string): number {
  let n = 0;
  for (const open of ['{', '[']) {
    for (let i = text.indexOf(open); i !== -1; i = text.indexOf(open, i + 1)) n++;
  }
  return n;
}

/**
 * Whether a parsed JSON value nests objects and arrays deeper than `max` (a top-level object
 * is depth 1). Walks with an explicit stack, so a deep value cannot overflow it.
 */
export function exceedsJsonDepth(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** What `createApp` needs: the process's shared parts. */
export interface AppOptions {
  /** The service name of routes that belong to no service (health, metrics), for logs. */
  service: string;
  config: Pick<KitConfig, 'bodyLimitBytes'>;
  logger: Logger;
  metrics: KitMetrics;
  tracing: Tracing;
}

// Bodies are validated strictly (wrong types are errors, unknown fields are kept so a schema
// with additionalProperties: false rejects them); query strings and params are coerced, since
// everything in a URL is a string.
const bodyAjv = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: true, strict: false });
const urlAjv = new Ajv({ allErrors: false, coerceTypes: 'array', removeAdditional: false, useDefaults: true, strict: false });
addFormats(bodyAjv);
addFormats(urlAjv);

/**
 * A Fastify app with the kit's parts installed: request ids, JSON logs with redaction, the
 * OpenAI error shape, the HTTP duration metric, a server span per request, `/healthz`,
 * `/readyz` and `/metrics`. Services mount onto it with {@link mountService}.
 */
export function createApp(options: AppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.config.bodyLimitBytes,
    requestIdHeader: HEADERS.requestId,
    genReqId: () => randomUUID(),
    // Requests are measured by the duration metric and traced; per-request log lines would
    // cost more than they tell at this volume (errors are still logged).
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    keepAliveTimeout: 65_000,
    // A client gets this long to send its whole request (Fastify's default, 0, lets a client
    // that trickles a body hold its connection forever). Responses, streams too, are not bound.
    requestTimeout: 60_000,
    // Path parameters (template names, session ids) are validated by the routes themselves;
    // the router's own cap only guards against absurd URLs.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 512 },
    // Errors found before a route runs (bad URL encoding, over-long parameters) use the same
    // error shape as everything else.
    frameworkErrors: (error, _request, reply) => {
      const apiError = toApiError(error);
      void (reply as FastifyReply).code(apiError.statusCode).send(apiError.toBody());
    },
    // Requests Node's HTTP parser refuses (headers or URL over 16 KiB, malformed HTTP) too.
    clientErrorHandler: writeClientError,
  }) as unknown as FastifyInstance;

  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : urlAjv).compile(schema));
  installErrorHandlers(app);
  // Every body is JSON: a text/plain body is an unsupported type (415), not a string that
  // fails the schema.
  app.removeContentTypeParser('text/plain');
  // Fastify's JSON parser (prototype-poisoning checks included), behind a nesting cap: a body
  // nested thousands deep parses, but overflows the stack wherever it is serialized again
  // (proxying, peer calls, cache keys).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, raw, done) => {
    const body = raw as string;
    // V8 parses deep JSON without recursion; only bodies with enough brackets are walked.
    if (countJsonBrackets(body) <= MAX_JSON_DEPTH) return parseJson(request, body, done);
    parseJson(request, body, (err, value) => {
      if (!err && exceedsJsonDepth(value, MAX_JSON_DEPTH)) {
        done(badRequest(`request body is nested deeper than ${MAX_JSON_DEPTH} levels`, 'body', 'too_deep'), undefined);
      } else {
        done(err, value);
      }
    });
  });
  app.decorate('readiness', new Readiness());
  app.decorateRequest('serviceName', options.service);
  app.decorateRequest('traceContext', null as unknown as Context);
  app.decorateRequest('span', null as unknown as Span);

  const { tracer, exporting } = options.tracing;
  // Without export and without an incoming trace there is nothing to record or carry on: skip
  // the span and its context (one allocation set less per request on the hot path).
  const untraced = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(HEADERS.requestId, request.id);
    if (!exporting && request.headers.traceparent === undefined) {
      request.span = untraced;
      request.traceContext = ROOT_CONTEXT;
      done();
      return;
    }
    const parent = extractTraceContext(request.headers as Record<string, unknown>);
    const { span, context } = startSpan(tracer, `${request.method} ${request.routeOptions.url ?? 'unmatched'}`, parent, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': request.method, 'url.path': request.url.split('?')[0]! },
    });
    request.span = span;
    request.traceContext = context;
    // Every log line of a traced request names its trace, so logs and traces join up.
    const { traceId, spanId } = span.spanContext();
    request.log = request.log.child({ trace_id: traceId, span_id: spanId });
    done();
  });

  const { httpDuration } = options.metrics;
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    httpDuration.observe(
      { method: request.method, route, status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    request.span.setAttribute('http.response.status_code', reply.statusCode);
    // OpenTelemetry HTTP conventions: a 5xx is a server span error, a 4xx is the client's.
    if (reply.statusCode >= 500) request.span.setStatus({ code: SpanStatusCode.ERROR });
    request.span.end();
    if (reply.statusCode >= 500) request.log.warn({ service: request.serviceName, method: request.method, url: request.url, statusCode: reply.statusCode }, 'request failed');
    done();
  });

  // Once draining, tell keep-alive clients to reconnect elsewhere.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (app.readiness.isDraining) reply.header('connection', 'close');
    done(null, payload);
  });

  app.get(PATHS.healthz, async () => ({ status: 'ok' }));
  app.get(PATHS.readyz, async (_request, reply) => {
    const result = await app.readiness.run();
    return reply.code(result.ready ? 200 : 503).send({ status: result.ready ? 'ready' : 'not ready', checks: result.checks });
  });
  app.get(PATHS.metrics, async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.header('content-type', options.metrics.registry.contentType).send(body);
  });
  return app;
}

/** Registers a plugin in its own encapsulated context, labelling its routes with `service`. */
export async function mountRoutes(app: FastifyInstance, service: string, routes: FastifyPluginAsync): Promise<void> {
  await app.register(async (child) => {
    child.addHook('onRequest', (request, _reply, done) => {
      request.serviceName = service;
      done();
    });
    await child.register(routes);
  });
}
