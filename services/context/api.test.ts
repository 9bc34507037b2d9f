import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { ApiError, createApp, createLogger, createMetrics, createTracing, mountService, readConfig, type ServiceContext, type ServiceInstance } from '../kit';
import { buildProcess } from '../process';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../test/support/redis';
import { freePort, waitFor } from '../../test/support/net';
import { startRedisServer, type TestRedisServer } from '../../test/support/redis-cluster';
import {
  ContextUnavailableError,
  createContextHttpClient,
  createContextService,
  type ContextCore,
  type ContextSettings,
} from '.';

const SETTINGS: ContextSettings = {
  ttlSeconds: 600,
  maxMessages: 500,
  defaultMaxTokens: 100_000,
  maxAppend: 20,
  maxContentChars: 1_000,
  dedupeWindow: 1_000,
};

interface Running {
  app: FastifyInstance;
  service: ServiceInstance<ContextCore>;
  base: string;
}

async function startService(redisUrl: string, prefix: string, bodyLimitBytes = 16_384): Promise<Running> {
  const config = readConfig({ SERVICE: 'context', REDIS_URL: redisUrl, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', BODY_LIMIT_BYTES: String(bodyLimitBytes) });
  const ctx: ServiceContext = {
    config,
    logger: createLogger('context', 'silent'),
    metrics: createMetrics({ defaultMetrics: false }),
    tracing: createTracing('context', undefined),
  };
  const service = await createContextService(ctx, new Map(), { settings: SETTINGS });
  const app = createApp({ service: 'context', ...ctx });
  await mountService(app, service);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return { app, service, base: `http://127.0.0.1:${port}` };
}

async function http(base: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, raw?: string) {
  const res = await request(`${base}${path}`, {
    method,
    headers: body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {},
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

type BadInput = ['GET' | 'POST' | 'DELETE', string, unknown, string];

/** Requests that must be refused with a 400 naming the field. */
const BAD_INPUT: BadInput[] = [
  ['POST', '/v1/sessions/bad%20id/messages', { messages: [{ role: 'user', content: 'x' }] }, 'session_id'],
  ['GET', '/v1/sessions/bad%7Bid%7D/messages', undefined, 'session_id'],
  ['GET', '/v1/sessions/ok/messages?max_tokens=lots', undefined, 'max_tokens'],
  ['GET', '/v1/sessions/ok/messages?max_messages=-1', undefined, 'max_messages'],
  ['GET', '/v1/sessions/ok/messages?limit=3', undefined, 'limit'],
  ['POST', '/v1/sessions/ok/messages', {}, 'messages'],
  ['POST', '/v1/sessions/ok/messages', { messages: [] }, 'messages'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: 'x' }], extra: 1 }, 'extra'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user' }] }, 'messages[0].content'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: 'x' }, { role: 'robot', content: 'x' }] }, 'messages[1].role'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: 'x' }, { role: 'user', content: 'x' }, { role: 'user', content: 42 }] }, 'messages[2].content'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: 'x'.repeat(1_001) }] }, 'messages[0].content'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: [{ text: 'x' }] }] }, 'messages[0].content[0].type'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'assistant', content: null }] }, 'messages[0].content'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: 'x', tool_calls: [] }] }, 'messages[0].tool_calls'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: 'x', thinking_blocks: [{ type: 'thinking', thinking: 't', signature: 's' }] }] }, 'messages[0].thinking_blocks'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'assistant', content: 'x', thinking_blocks: [{ type: 'thinking', thinking: 't' }] }] }, 'messages[0].thinking_blocks[0].signature'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'assistant', content: 'x', thinking_blocks: [{ type: 'redacted_thinking' }] }] }, 'messages[0].thinking_blocks[0].data'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ role: 'assistant', content: 'x', thinking_blocks: [{ type: 'reasoning', thinking: 't' }] }] }, 'messages[0].thinking_blocks[0].type'],
  ['POST', '/v1/sessions/ok/messages', { messages: [{ id: 'has space', role: 'user', content: 'x' }] }, 'messages[0].id'],
  ['POST', '/v1/sessions/ok/messages', { messages: Array.from({ length: 21 }, () => ({ role: 'user', content: 'x' })) }, 'messages'],
];

describe('context HTTP API (standalone Redis, real sockets)', () => {
  const prefix = uniquePrefix('ctxapi');
  let svc: Running;

  beforeAll(async () => {
    svc = await startService(TEST_REDIS_URL, prefix);
    await waitFor(async () => (await http(svc.base, 'GET', '/readyz')).status === 200, 10_000, 'readyz');
  });
  afterAll(async () => {
    await svc?.app.close();
    await deletePrefix(prefix);
  });

  it('appends (201), dedupes a retry (200), reads windows and deletes (204)', async () => {
    const path = '/v1/sessions/api-1/messages';
    const messages = [
      { id: 'req1:user', role: 'user', content: 'What is the capital of France?' },
      { id: 'req1:assistant', role: 'assistant', content: 'Paris.' },
    ];
    const created = await http(svc.base, 'POST', path, { messages });
    expect(created.status).toBe(201);
    expect(created.body.stored.map((m: { id: string }) => m.id)).toEqual(['req1:user', 'req1:assistant']);
    expect(created.body.stored[0].tokens).toBeGreaterThan(4);
    expect(created.body.duplicates).toEqual([]);

    const retried = await http(svc.base, 'POST', path, { messages });
    expect(retried.status).toBe(200);
    expect(retried.body.stored).toEqual([]);
    expect(retried.body.duplicates).toEqual(['req1:user', 'req1:assistant']);

    const all = await http(svc.base, 'GET', path);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ session_id: 'api-1', total_messages: 2 });
    expect(all.body.messages.map((m: { content: string }) => m.content)).toEqual(['What is the capital of France?', 'Paris.']);

    // A window starts at a turn: the reply alone is no window.
    const one = await http(svc.base, 'GET', `${path}?max_messages=1`);
    expect(one.body.messages).toEqual([]);
    const two = await http(svc.base, 'GET', `${path}?max_messages=2`);
    expect(two.body.messages.map((m: { id: string }) => m.id)).toEqual(['req1:user', 'req1:assistant']);
    const budget = created.body.stored[0].tokens + created.body.stored[1].tokens;
    const byTokens = await http(svc.base, 'GET', `${path}?max_tokens=${budget}`);
    expect(byTokens.body.messages.map((m: { id: string }) => m.id)).toEqual(['req1:user', 'req1:assistant']);
    expect(byTokens.body.window_tokens).toBe(budget);
    const short = await http(svc.base, 'GET', `${path}?max_tokens=${budget - 1}`);
    expect(short.body).toMatchObject({ messages: [], window_tokens: 0 });

    const metrics = await (await request(`${svc.base}/metrics`)).body.text();
    expect(metrics).toContain('promptmesh_context_messages_total{result="stored"} 2');
    expect(metrics).toContain('promptmesh_context_messages_total{result="duplicate"} 2');
    expect(metrics).toMatch(/promptmesh_context_operations_total\{operation="append",outcome="ok"\} 2\n/);

    const deleted = await http(svc.base, 'DELETE', '/v1/sessions/api-1');
    expect(deleted.status).toBe(204);
    expect((await http(svc.base, 'GET', path)).body).toMatchObject({ messages: [], total_messages: 0 });
  });

  it('loses nothing with 64 concurrent writers over HTTP', async () => {
    const path = '/v1/sessions/api-concurrent/messages';
    const writers = 64;
    const results = await Promise.all(
      Array.from({ length: writers }, (_, w) =>
        http(svc.base, 'POST', path, {
          messages: [
            { id: `w${w}:u`, role: 'user', content: `question ${w}` },
            { id: `w${w}:a`, role: 'assistant', content: `answer ${w}` },
          ],
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(writers).fill(201));
    const window = await http(svc.base, 'GET', `${path}?max_messages=500`);
    expect(window.body.total_messages).toBe(writers * 2);
    const ids: string[] = window.body.messages.map((m: { id: string }) => m.id);
    expect(new Set(ids).size).toBe(writers * 2);
    for (let w = 0; w < writers; w++) expect(ids.indexOf(`w${w}:a`)).toBe(ids.indexOf(`w${w}:u`) + 1);
  });

  it.each(BAD_INPUT.map(([method, path, body, param]) => ({ method, path, body, param })))('$method $path -> 400 naming $param', async ({ method, path, body, param }) => {
    const res = await http(svc.base, method, path, body);
    expect(res.status).toBe(400);
    expect(res.body.error.type).toBe('invalid_request_error');
    expect(res.body.error.param).toBe(param);
    expect(res.body.error.message).toContain(param);
  });

  it('answers a 400 naming session_id for an over-long session id, and routes the longest valid one', async () => {
    const res = await http(svc.base, 'DELETE', `/v1/sessions/${'a'.repeat(201)}`);
    expect(res.status).toBe(400);
    expect(res.body.error.param).toBe('session_id');
    expect((await http(svc.base, 'DELETE', `/v1/sessions/${'a'.repeat(200)}`)).status).toBe(204);
  });

  it('answers 400 for a body that is not JSON and 413 for a body over the limit', async () => {
    const notJson = await http(svc.base, 'POST', '/v1/sessions/ok/messages', undefined, '{"messages": [');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.param).toBe('body');
    const big = await http(svc.base, 'POST', '/v1/sessions/ok/messages', { messages: [{ role: 'user', content: 'x'.repeat(20_000) }] });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('payload_too_large');
  });

  it('the HTTP client behaves like the in-process core', async () => {
    const client = createContextHttpClient({ baseUrl: svc.base });
    const appended = await client.append('client-1', [{ id: 'c1', role: 'user', content: 'hi' }]);
    expect(appended.stored.map((m) => m.id)).toEqual(['c1']);
    expect((await client.append('client-1', [{ id: 'c1', role: 'user', content: 'hi' }])).duplicates).toEqual(['c1']);
    const direct = await svc.service.core.read('client-1', { maxMessages: 5 });
    expect(await client.read('client-1', { maxMessages: 5 })).toEqual(direct);
    const err = await client.append('client-1', [{ role: 'nobody' as never, content: 'x' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ statusCode: 400, param: 'messages[0].role' });
    await client.delete('client-1');
    expect((await client.read('client-1')).total_messages).toBe(0);

    const nowhere = createContextHttpClient({ baseUrl: `http://127.0.0.1:${await freePort()}` });
    await expect(nowhere.read('client-1')).rejects.toBeInstanceOf(ContextUnavailableError);
  });

  it('is wired into the registry: SERVICE=context builds it', async () => {
    const proc = await buildProcess(readConfig({ SERVICE: 'context', REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent' }));
    try {
      const core = proc.services.get('context')!.core as ContextCore;
      await core.append('registry-1', [{ role: 'user', content: 'x' }]);
      await waitFor(async () => (await proc.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 10_000, 'readyz');
      const res = await proc.app.inject({ method: 'GET', url: '/v1/sessions/registry-1/messages' });
      expect(res.statusCode).toBe(200);
      expect(res.json().total_messages).toBe(1);
    } finally {
      await proc.app.close();
    }
  });
});

describe('context while Redis is down', () => {
  const prefix = uniquePrefix('ctxdown');
  let redis: TestRedisServer;
  let svc: Running;

  beforeAll(async () => {
    redis = await startRedisServer();
    svc = await startService(redis.url, prefix);
    await waitFor(async () => (await http(svc.base, 'GET', '/readyz')).status === 200, 10_000, 'readyz');
  });
  afterAll(async () => {
    await svc?.app.close();
    await redis?.stop();
  });

  it('answers 503 (not 500, not a hang), fails readiness, throws the typed error, and recovers', async () => {
    const path = '/v1/sessions/outage-1/messages';
    expect((await http(svc.base, 'POST', path, { messages: [{ id: 'before', role: 'user', content: 'x' }] })).status).toBe(201);

    await redis.kill();
    for (const [method, p, body] of [
      ['POST', path, { messages: [{ id: 'during', role: 'user', content: 'x' }] }],
      ['GET', path, undefined],
      ['DELETE', '/v1/sessions/outage-1', undefined],
    ] as const) {
      const res = await http(svc.base, method, p, body);
      expect(res.status, method).toBe(503);
      expect(res.body.error).toMatchObject({ type: 'service_unavailable_error', code: 'context_unavailable' });
      expect(res.body.error.message).toMatch(/context store \(Redis\) is unavailable/);
    }
    // Bad input is still a 400 while Redis is down: validation comes first.
    expect((await http(svc.base, 'GET', '/v1/sessions/bad%20id/messages')).status).toBe(400);
    const ready = await http(svc.base, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.checks['context:redis']).not.toBe('ok');
    await expect(svc.service.core.read('outage-1')).rejects.toBeInstanceOf(ContextUnavailableError);
    const viaClient = createContextHttpClient({ baseUrl: svc.base });
    await expect(viaClient.append('outage-1', [{ role: 'user', content: 'x' }])).rejects.toBeInstanceOf(ContextUnavailableError);

    const metrics = await (await request(`${svc.base}/metrics`)).body.text();
    expect(metrics).toMatch(/promptmesh_context_operations_total\{operation="read",outcome="unavailable"\} [1-9]/);

    await redis.restart();
    await waitFor(async () => (await http(svc.base, 'GET', '/readyz')).status === 200, 30_000, 'readyz after restart');
    // The restarted Redis is empty (nothing persisted); the service works again.
    const after = await http(svc.base, 'POST', path, { messages: [{ id: 'after', role: 'user', content: 'x' }] });
    expect(after.status).toBe(201);
    expect((await http(svc.base, 'GET', path)).body.messages.map((m: { id: string }) => m.id)).toEqual(['after']);
  });
});
