import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createServer } from 'node:http';
import {
  ConfigError,
  badRequest,
  createApp,
  createLogger,
  createMetrics,
  createTracing,
  readConfig,
  shutdownGracefully,
  type Logger,
} from '.';
import type { FastifyInstance } from 'fastify';
import { extractTraceContext, injectTraceHeaders, startSpan } from './tracing';

function captureLogger(level: Parameters<typeof createLogger>[1] = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: createLogger('test', level, stream), lines };
}

function makeApp(logger?: Logger, bodyLimitBytes = 4096): FastifyInstance {
  return createApp({
    service: 'test',
    config: { bodyLimitBytes },
    logger: logger ?? createLogger('test', 'silent'),
    metrics: createMetrics({ defaultMetrics: false }),
    tracing: createTracing('test', undefined),
  });
}

describe('readConfig', () => {
  it('has the documented defaults', () => {
    const c = readConfig({});
    expect(c.service).toBe('all');
    expect(c.port).toBe(8080);
    expect(c.host).toBe('0.0.0.0');
    expect(c.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/promptmesh');
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.logLevel).toBe('info');
  });

  it.each([
    [{ SERVICE: 'gateway' }, 'SERVICE'],
    [{ PORT: 'eighty' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'not a url' }, 'REDIS_URL'],
    [{ REDIS_CLUSTER_NODES: 'a:1,b' }, 'REDIS_CLUSTER_NODES'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ SERVICE: 'router' }, 'TEMPLATES_URL'],
    [{ REDIS_KEY_PREFIX: 'pm:{}' }, 'REDIS_KEY_PREFIX'],
  ])('rejects %o naming %s', (env, variable) => {
    let caught: unknown;
    try {
      readConfig(env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).variable).toBe(variable);
    expect((caught as Error).message).toMatch(new RegExp(`^${variable}: `));
  });

  it('does not echo a database password in its error', () => {
    expect(() => readConfig({ DATABASE_URL: 'redis://u:secret@h/db' })).toThrow(/DATABASE_URL/);
    try {
      readConfig({ DATABASE_URL: 'redis://u:secret@h/db' });
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
    }
  });
});

describe('createApp', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  function withEcho(a: FastifyInstance) {
    a.post(
      '/echo',
      {
        schema: {
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['name'],
            properties: { name: { type: 'string' }, count: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } },
          },
        },
      },
      async (req) => req.body,
    );
    a.get('/boom', async () => {
      throw new Error('kaboom');
    });
    a.get('/bad', async () => {
      throw badRequest("'x' must be positive", 'x');
    });
  }

  it('answers health, readiness and metrics', async () => {
    app = makeApp();
    withEcho(app);
    app.readiness.add('dep', async () => {});
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    await app.inject({ method: 'POST', url: '/echo', payload: { name: 'a' } });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/http_server_request_duration_seconds_count\{method="POST",route="\/echo",status_code="200"\} 1/);
  });

  it('fails readiness when a dependency fails, naming it', async () => {
    app = makeApp();
    app.readiness.add('postgres', async () => {
      throw new Error('connection refused');
    });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().checks.postgres).toBe('connection refused');
  });

  it('stays ready when only a part it serves without fails, naming it in the body and the gauge', async () => {
    app = makeApp();
    let redisUp = false;
    app.readiness.add('llm:providers', async () => {});
    app.readiness.add('context:redis', async () => {
      if (!redisUp) throw new Error('connection refused');
    }, { degrades: 'redis' });
    app.readiness.add('templates:postgres', async () => {}, { degrades: 'postgres' });
    const res = await app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'ready',
      checks: { 'llm:providers': 'ok', 'context:redis': 'connection refused', 'templates:postgres': 'ok' },
      degraded: ['redis'],
    });
    // A scrape runs the checks itself, so the gauge is never older than the scrape.
    let metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('promptmesh_degraded{component="redis"} 1');
    expect(metrics).toContain('promptmesh_degraded{component="postgres"} 0');
    redisUp = true;
    metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('promptmesh_degraded{component="redis"} 0');
  });

  it('turns bad input into 400s in the OpenAI error shape, naming the field', async () => {
    app = makeApp();
    withEcho(app);
    const missing = await app.inject({ method: 'POST', url: '/echo', payload: { count: 1 } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toEqual({ error: { type: 'invalid_request_error', message: "'name' is required", param: 'name', code: 'invalid_request' } });

    const wrongType = await app.inject({ method: 'POST', url: '/echo', payload: { name: 'a', count: '3' } });
    expect(wrongType.statusCode).toBe(400);
    expect(wrongType.json().error.param).toBe('count');

    const nested = await app.inject({ method: 'POST', url: '/echo', payload: { name: 'a', tags: ['x', 2] } });
    expect(nested.json().error.param).toBe('tags[1]');

    const unknown = await app.inject({ method: 'POST', url: '/echo', payload: { name: 'a', nmae: 'b' } });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.message).toBe("'nmae' is not a known field");

    const malformed = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{"name":' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.code).toBe('invalid_json');

    const explicit = await app.inject({ method: 'GET', url: '/bad' });
    expect(explicit.json().error).toMatchObject({ param: 'x', message: "'x' must be positive" });
  });

  it('reads an empty JSON body as no body on routes without a body schema (clients send the header on every request)', async () => {
    app = makeApp();
    withEcho(app);
    app.delete('/things/:id', async (_req, reply) => reply.code(204).send());
    app.post('/things/:id/touch', async (req) => ({ body: req.body === undefined ? 'none' : req.body }));
    for (const headers of [{ 'content-type': 'application/json' }, { 'content-type': 'application/json; charset=utf-8' }]) {
      const del = await app.inject({ method: 'DELETE', url: '/things/1', headers, payload: '' });
      expect(del.statusCode).toBe(204);
      const touch = await app.inject({ method: 'POST', url: '/things/1/touch', headers, payload: '' });
      expect(touch.json()).toEqual({ body: 'none' });
      // A route that declares a body still says it is missing.
      const echo = await app.inject({ method: 'POST', url: '/echo', headers, payload: '' });
      expect(echo.statusCode).toBe(400);
      expect(echo.json().error).toMatchObject({ param: 'body', message: 'request body is empty; send a JSON object' });
    }
  });

  it('answers 413 for bodies over the limit and 404 in the error shape', async () => {
    app = makeApp(undefined, 1024);
    withEcho(app);
    const big = await app.inject({ method: 'POST', url: '/echo', payload: { name: 'x'.repeat(5000) } });
    expect(big.statusCode).toBe(413);
    expect(big.json().error.code).toBe('payload_too_large');
    const none = await app.inject({ method: 'GET', url: '/nope' });
    expect(none.statusCode).toBe(404);
    expect(none.json().error.type).toBe('not_found_error');
  });

  it('answers malformed and over-long URLs in the error shape', async () => {
    app = makeApp();
    app.get('/s/:id', async (req) => ({ id: (req.params as { id: string }).id }));
    const bad = await app.inject({ method: 'GET', url: '/s/%E0%A4%A' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.type).toBe('invalid_request_error');
    const long = await app.inject({ method: 'GET', url: `/s/${'a'.repeat(600)}` });
    expect(long.statusCode).toBe(414);
    expect(long.json().error.message).toMatch(/param length/);
    const fits = await app.inject({ method: 'GET', url: `/s/${'a'.repeat(128)}` });
    expect(fits.statusCode).toBe(200);
  });

  it('hides internal errors behind a generic 500 and logs them', async () => {
    const { logger, lines } = captureLogger();
    app = makeApp(logger);
    withEcho(app);
    const res = await app.inject({ method: 'GET', url: '/boom' });
    expect(res.statusCode).toBe(500);
    expect(res.json().error.message).toBe('internal error');
    expect(lines.join('')).toContain('kaboom');
  });

  it('redacts Authorization headers from logs and echoes request ids', async () => {
    const { logger, lines } = captureLogger();
    app = makeApp(logger);
    app.get('/log', async (req) => {
      req.log.info({ headers: req.headers }, 'seen');
      return { ok: true };
    });
    const res = await app.inject({ method: 'GET', url: '/log', headers: { authorization: 'Bearer sk-very-secret', 'x-request-id': 'abc-123' } });
    expect(res.headers['x-request-id']).toBe('abc-123');
    const text = lines.join('');
    expect(text).toContain('[redacted]');
    expect(text).not.toContain('sk-very-secret');
    expect(text).toContain('abc-123');
  });
});

describe('shutdownGracefully', () => {
  it('fails readiness, then lets in-flight requests and streams finish before closing', async () => {
    const app = makeApp();
    let closedPools = false;
    app.addHook('onClose', async () => {
      closedPools = true;
    });
    app.get('/slow', async () => {
      await new Promise((r) => setTimeout(r, 400));
      return { done: true };
    });
    app.get('/stream', async (_req, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < 5; i++) {
        reply.raw.write(`data: ${i}\n\n`);
        await new Promise((r) => setTimeout(r, 80));
      }
      reply.raw.end('data: [DONE]\n\n');
      return reply;
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const base = `http://127.0.0.1:${port}`;
    const slow = request(`${base}/slow`).then(async (r) => ({ status: r.statusCode, body: await r.body.json() }));
    const stream = request(`${base}/stream`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    await new Promise((r) => setTimeout(r, 50));

    const stopping = shutdownGracefully(app, { drainDelayMs: 100, shutdownTimeoutMs: 5_000 });
    const ready = await request(`${base}/readyz`);
    expect(ready.statusCode).toBe(503);
    await ready.body.dump();

    expect(await slow).toEqual({ status: 200, body: { done: true } });
    const s = await stream;
    expect(s.status).toBe(200);
    expect(s.body).toContain('data: 4');
    expect(s.body).toContain('[DONE]');
    expect(await stopping).toBe(true);
    expect(closedPools).toBe(true);
  });

  it('cuts connections that outlive the timeout', async () => {
    const app = makeApp();
    app.get('/forever', async (_req, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' });
      reply.raw.write('data: start\n\n');
      return reply;
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const res = await request(`http://127.0.0.1:${port}/forever`);
    const text = res.body.text().catch((e: Error) => `error:${e.message}`);
    const inTime = await shutdownGracefully(app, { drainDelayMs: 0, shutdownTimeoutMs: 200 });
    expect(inTime).toBe(false);
    expect(await text).toMatch(/start|error/);
  });
});

describe('tracing', () => {
  it('joins the incoming traceparent and exports server spans over OTLP/HTTP when configured', async () => {
    const received: Array<{ url: string; body: string }> = [];
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ url: req.url ?? '', body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', () => r()));
    const { port } = collector.address() as { port: number };
    const tracing = createTracing('test', `http://127.0.0.1:${port}`);
    expect(tracing.exporting).toBe(true);
    const app = createApp({ service: 'test', config: { bodyLimitBytes: 4096 }, logger: createLogger('test', 'silent'), metrics: createMetrics({ defaultMetrics: false }), tracing });
    app.get('/traced', async () => ({ ok: true }));
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await app.inject({ method: 'GET', url: '/traced', headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(res.statusCode).toBe(200);
    await app.close();
    await tracing.shutdown();
    collector.close();
    expect(received.length).toBeGreaterThan(0);
    expect(received[0]!.url).toBe('/v1/traces');
    const all = received.map((r) => r.body).join('\n');
    // The exported span belongs to the caller's trace and is a child of its span.
    expect(all).toContain(traceId);
    expect(all).toContain('00f067aa0ba902b7');
    expect(all).toContain('GET /traced');
  });

  it('without an exporter carries an incoming trace on, and costs nothing without one', () => {
    const tracing = createTracing('test', undefined);
    expect(tracing.exporting).toBe(false);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const incoming = extractTraceContext({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    const { span, context } = startSpan(tracing.tracer, 'child', incoming);
    expect(span.isRecording()).toBe(false);
    expect(injectTraceHeaders(context, {}).traceparent).toBe(`00-${traceId}-00f067aa0ba902b7-01`);
    // No incoming trace: the same no-op span, no new context, no header.
    const a = startSpan(tracing.tracer, 'a', undefined);
    const b = startSpan(tracing.tracer, 'b', a.context);
    expect(b.span).toBe(a.span);
    expect(b.context).toBe(a.context);
    expect(injectTraceHeaders(b.context, {})).toEqual({});
  });
});

describe('request loggers', () => {
  it('bind the request id when a request logs, and are made only then', async () => {
    const { logger, lines } = captureLogger();
    const app = makeApp(logger);
    app.get('/quiet', async () => ({ ok: true }));
    app.get('/bad', async () => {
      throw badRequest('no good', 'q');
    });
    app.get('/child', async (request) => {
      request.log.child({ step: 'inner' }).info({ n: 1 }, 'from a child');
      return { ok: true };
    });
    await app.ready();
    const before = lines.length;
    const quiet = await app.inject({ method: 'GET', url: '/quiet' });
    expect(quiet.statusCode).toBe(200);
    expect(lines.length).toBe(before);
    const bad = await app.inject({ method: 'GET', url: '/bad', headers: { 'x-request-id': 'req-logged-1' } });
    expect(bad.statusCode).toBe(400);
    const rejected = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request rejected');
    expect(rejected).toMatchObject({ reqId: 'req-logged-1', level: 'debug', service: 'test' });
    await app.inject({ method: 'GET', url: '/child', headers: { 'x-request-id': 'req-logged-2' } });
    const inner = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'from a child');
    expect(inner).toMatchObject({ reqId: 'req-logged-2', step: 'inner', n: 1 });
    await app.close();
  });

  it('write nothing below the level, as pino does', async () => {
    const { logger, lines } = captureLogger('warn');
    const app = makeApp(logger);
    app.get('/bad', async () => {
      throw badRequest('no good', 'q');
    });
    app.get('/warns', async (request) => {
      expect((request.log as Logger).isLevelEnabled('debug')).toBe(false);
      expect(request.log.level).toBe('warn');
      request.log.warn('careful');
      return { ok: true };
    });
    await app.ready();
    await app.inject({ method: 'GET', url: '/bad' });
    expect(lines).toEqual([]);
    await app.inject({ method: 'GET', url: '/warns', headers: { 'x-request-id': 'req-warn' } });
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([{ msg: 'careful', reqId: 'req-warn', level: 'warn' }]);
    await app.close();
  });

  it("follow a route's own log level", async () => {
    const { logger, lines } = captureLogger('warn');
    const app = makeApp(logger);
    app.get('/chatty', { logLevel: 'debug' }, async (request) => {
      request.log.debug('details');
      return { ok: true };
    });
    await app.ready();
    await app.inject({ method: 'GET', url: '/chatty', headers: { 'x-request-id': 'req-chatty' } });
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([{ msg: 'details', reqId: 'req-chatty', level: 'debug' }]);
    await app.close();
  });
});
