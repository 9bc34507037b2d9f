import { randomUUID } from 'node:crypto';
import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { Gauge } from 'prom-client';
import Fastify, { LogController, type FastifyInstance, type FastifyPluginAsync, type FastifyReply } from 'fastify';
import { HEADERS, METRICS, PATHS } from '../../contracts';
import type { KitConfig } from './config';
import { badRequest, installErrorHandlers, toApiError, writeClientError, type ApiError } from './errors';
import { checkJsonValue, invalidTextReason, jsonTextNeedsCheck } from './json-input';
import { lazyChildLoggerFactory, type Logger } from './logger';
import { requestTargetProblem } from './request-target';
import { bodyAjv, urlAjv } from './validation';
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

/** How a failing {@link ReadinessCheck} counts. */
export interface ReadinessCheckOptions {
  /**
   * The part of the system the process can serve without (`postgres`, `redis`, `templates`,
   * ...). A failing check then marks that part degraded, named in `/readyz` and in
   * `promptmesh_degraded{component}`, and the process stays ready: readiness means "can
   * serve", and a load balancer must not drop a pod that still answers.
   * @default undefined: a failing check makes the process not ready
   */
  degrades?: string;
}

/** What one run of the readiness checks found. */
export interface ReadinessResult {
  /** Whether the process can serve: no required check failed and it is not draining. */
  ready: boolean;
  /** Each check by name: `ok` or why it failed. */
  checks: Record<string, string>;
  /** The components whose checks failed but that the process serves without, sorted. */
  degraded: string[];
}

/** The readiness state of an app: named checks plus the shutdown flag. */
export class Readiness {
  private readonly checks = new Map<string, { check: ReadinessCheck; degrades?: string }>();
  private draining = false;
  private onResult: ((result: ReadinessResult, components: readonly string[]) => void) | undefined;

  constructor(private readonly timeoutMs = 2_000) {}

  add(name: string, check: ReadinessCheck, options: ReadinessCheckOptions = {}): void {
    this.checks.set(name, { check, degrades: options.degrades });
  }

  /** The components of the checks added with `degrades`, sorted. */
  get components(): string[] {
    return [...new Set([...this.checks.values()].flatMap((c) => (c.degrades ? [c.degrades] : [])))].sort();
  }

  /** Called after every run that ran the checks (the degraded gauge follows it). */
  observe(listener: (result: ReadinessResult, components: readonly string[]) => void): void {
    this.onResult = listener;
  }

  /** After this, `/readyz` answers 503 so load balancers stop sending new requests. */
  startDraining(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Runs every check in parallel, each bounded by the timeout. */
  async run(): Promise<ReadinessResult> {
    const checks: Record<string, string> = {};
    if (this.draining) return { ready: false, checks: { shutdown: 'draining' }, degraded: [] };
    let ready = true;
    const degraded = new Set<string>();
    await Promise.all(
      [...this.checks].map(async ([name, { check, degrades }]) => {
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
          if (degrades) degraded.add(degrades);
          else ready = false;
          checks[name] = (err as Error).message || 'failed';
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const result = { ready, checks, degraded: [...degraded].sort() };
    this.onResult?.(result, this.components);
    return result;
  }
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
    // The request's child logger (its id bound) is made when the request first logs.
    childLoggerFactory: lazyChildLoggerFactory as never,
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
  // Fastify's JSON parser, then the kit's checks of the parsed value (json-input.ts): the
  // nesting cap (a body nested thousands deep parses, but overflows the stack wherever it is
  // serialized again: proxying, peer calls, cache keys), reserved keys (`__proto__`) and text
  // that is not valid Unicode (NUL, lone surrogates), each a 400 naming the field. Bodies that
  // cannot hold any of these skip the walk.
  const parseJson = app.getDefaultJsonParser('ignore', 'ignore');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, raw, done) => {
    const body = raw as string;
    // Many clients send `content-type: application/json` on every request, DELETE and GET
    // included: an empty body is no body. Only a route that declares a body schema says it
    // is missing (400 naming `body`); a route without one reads no body as it would anyway.
    if (body.length === 0 && request.routeOptions.schema?.body === undefined) return done(null, undefined);
    if (!jsonTextNeedsCheck(body)) return parseJson(request, body, done);
    parseJson(request, body, (err, value) => {
      const problem = err ? undefined : checkJsonValue(value);
      if (problem) done(problem, undefined);
      else done(err, value);
    });
  });
  const readiness = new Readiness();
  app.decorate('readiness', readiness);
  // 1 for each part the process serves without right now, 0 for the others it could lose.
  // Updated by every /readyz and, so a scrape never reads a stale value, at every scrape.
  const degradedGauge = new Gauge({
    name: METRICS.degraded,
    help: 'Whether a part the process can serve without (label component) is down: 1 degraded, 0 fine.',
    labelNames: ['component'] as const,
    registers: [options.metrics.registry],
    async collect() {
      if (!readiness.isDraining && readiness.components.length > 0) await readiness.run();
    },
  });
  readiness.observe((result, components) => {
    for (const component of components) degradedGauge.set({ component }, result.degraded.includes(component) ? 1 : 0);
  });
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

  // Before any route's hooks (auth) run: one spelling per target, so what routes a request and
  // what reasons about its raw URL (scopes, proxies, logs) cannot disagree.
  app.addHook('onRequest', (request, _reply, done) => {
    const problem = requestTargetProblem(request.url);
    if (problem === undefined) return done();
    const shown = request.url.length > 200 ? `${request.url.slice(0, 200)}...` : request.url;
    done(badRequest(`request path ${JSON.stringify(shown)} is not in normal form: ${problem}`, 'path', 'invalid_path'));
  });

  // Path parameters and query values get the same text check as bodies (NUL arrives as %00;
  // a lone surrogate cannot, as invalid UTF-8 in a URL is refused or kept percent-encoded).
  app.addHook('preValidation', (request, _reply, done) => {
    done(checkUrlText(request.params, 'path parameter') ?? checkUrlText(request.query, 'query parameter'));
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
    return reply.code(result.ready ? 200 : 503).send({ status: result.ready ? 'ready' : 'not ready', checks: result.checks, degraded: result.degraded });
  });
  app.get(PATHS.metrics, async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.header('content-type', options.metrics.registry.contentType).send(body);
  });
  return app;
}

/** The first path or query value that is not valid text, as a 400 naming it. */
function checkUrlText(values: unknown, what: string): ApiError | undefined {
  if (values === null || typeof values !== 'object') return undefined;
  for (const [name, value] of Object.entries(values)) {
    // A wildcard is a proxied path (the mesh router): the service behind it names its own parameters.
    if (name === '*') continue;
    for (const item of Array.isArray(value) ? value : [value]) {
      const reason = typeof item === 'string' ? invalidTextReason(item) : undefined;
      if (reason) return badRequest(`${what} '${name}' ${reason}`, name, 'invalid_text');
    }
  }
  return undefined;
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
