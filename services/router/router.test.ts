/**
 * The router on its own (SERVICE=router) with its peers unreachable: it still starts, and every
 * dependency failure is a clear answer, never a 500 or a crash. The full system is covered by
 * test/e2e (both layouts).
 */
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADERS } from '../../contracts';
import { extractTraceContext, readConfig } from '../kit';
import { buildProcess } from '../process';
import { freePort, waitFor } from '../../test/support/net';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../test/support/redis';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg';
import { hashApiKey } from './auth';
import { PeerHttp } from './http-client';

describe('router with its peers down', () => {
  let app: FastifyInstance;
  let url: string;
  const prefix = uniquePrefix('router-alone');
  beforeAll(async () => {
    const dead = await freePort();
    const config = readConfig({
      SERVICE: 'router',
      TEMPLATES_URL: `http://127.0.0.1:${dead}`,
      CONTEXT_URL: `http://127.0.0.1:${dead}`,
      LLM_URL: `http://127.0.0.1:${dead}`,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      LOG_LEVEL: 'silent',
    });
    app = (await buildProcess(config)).app;
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await deletePrefix(prefix);
  });

  const post = async (body: unknown) => {
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  };

  it('answers 503 naming llm when llm is down', async () => {
    const r = await post({ model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status).toBe(503);
    expect(r.body.error.message).toMatch(/llm service is unreachable/);
    expect(r.body.error.type).toBe('service_unavailable_error');
  });

  it('goes on without history (saying so) when context is down, then reports llm', async () => {
    const r = await post({ model: 'chat', session_id: 's1', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status).toBe(503);
    expect(r.headers.get(HEADERS.degraded)).toBe('history');
    expect(r.body.error.message).toMatch(/llm service is unreachable/);
  });

  it('answers 503 naming templates for a prompt it never cached', async () => {
    const r = await post({ model: 'chat', prompt: { name: 'welcome' } });
    expect(r.status).toBe(503);
    expect(r.body.error.message).toMatch(/templates service is unreachable/);
  });

  it('still validates input first', async () => {
    const r = await post({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], session_id: 'bad id with spaces' });
    expect(r.status).toBe(400);
    expect(r.body.error.param).toBe('session_id');
    const unknown = await post({ model: 'chat', messages: [{ role: 'user', content: 'hi' }], sesion_id: 'typo' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.param).toBe('sesion_id');
    const noContent = await post({ model: 'chat', messages: [{ role: 'system', content: 'x' }, { role: 'user' }] });
    expect(noContent.status).toBe(400);
    expect(noContent.body.error.param).toBe('messages[1].content');
    const toolWithoutId = await post({ model: 'chat', messages: [{ role: 'tool', content: 'result' }] });
    expect(toolWithoutId.status).toBe(400);
    expect(toolWithoutId.body.error.param).toBe('messages[0].tool_call_id');
    const userThinking = await post({ model: 'chat', messages: [{ role: 'user', content: 'x', thinking_blocks: [{ type: 'thinking', thinking: 't', signature: 's' }] }] });
    expect(userThinking.status).toBe(400);
    expect(userThinking.body.error.param).toBe('messages[0].thinking_blocks');
    const unsigned = await post({ model: 'chat', messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', thinking_blocks: [{ type: 'thinking', thinking: 't' }] }, { role: 'user', content: 'z' }] });
    expect(unsigned.status).toBe(400);
    expect(unsigned.body.error.param).toMatch(/^messages\[1\]\.thinking_blocks\[0\]/);
    const noMessages = await post({ model: 'chat' });
    expect(noMessages.status).toBe(400);
    expect(noMessages.body.error.param).toBe('messages');
    const badVariable = await post({ model: 'chat', prompt: { name: 'welcome', variables: { user: { nested: true } } } });
    expect(badVariable.status).toBe(400);
    expect(badVariable.body.error.param).toBe('prompt.variables.user');
  });

  it('is not ready while llm is down (but alive)', async () => {
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks['router:llm']).toMatch(/llm service is unreachable/);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('reports an infinite template cache age before any sync', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/promptmesh_template_cache_age_seconds \+Inf/);
  });
});

describe('router keys file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pm-router-keys-'));
  const file = join(dir, 'keys.yaml');
  const prefix = uniquePrefix('router-keys');
  let app: FastifyInstance | undefined;
  // With auth on the router keeps its virtual keys in PostgreSQL beside the file's (docs/keys.md).
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('router_keys');
  });
  afterAll(async () => {
    await app?.close();
    await deletePrefix(prefix);
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function build(): Promise<FastifyInstance> {
    const dead = await freePort();
    const config = readConfig({
      SERVICE: 'router',
      TEMPLATES_URL: `http://127.0.0.1:${dead}`,
      CONTEXT_URL: `http://127.0.0.1:${dead}`,
      LLM_URL: `http://127.0.0.1:${dead}`,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      API_KEYS_FILE: file,
      DATABASE_URL: db.url,
      LOG_LEVEL: 'silent',
    });
    return (await buildProcess(config)).app;
  }

  it('refuses to start with a broken keys file, naming the file and the field', async () => {
    writeFileSync(file, `keys:\n  - { id: a, sha256: ${hashApiKey('k')}, scopes: [invoke, root] }\n`);
    await expect(build()).rejects.toThrow(/keys\.yaml: 'keys\[0\]\.scopes\[1\]' must be one of invoke, admin/);
  });

  it('accepts a key added to the file while running, without a restart', async () => {
    writeFileSync(file, `keys:\n  - { id: old, sha256: ${hashApiKey('old-key')}, scopes: [invoke] }\n`);
    app = await build();
    const models = (key: string) => app!.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Bearer ${key}` } });
    expect((await models('new-key')).statusCode).toBe(401);
    // Past auth, the router asks llm for its models; llm is down here, so an accepted key gets a 503.
    expect((await models('old-key')).statusCode).toBe(503);
    writeFileSync(file, `keys:\n  - { id: new, sha256: ${hashApiKey('new-key')}, scopes: [invoke] }\n`);
    await waitFor(async () => (await models('new-key')).statusCode === 503, 10_000, 'the new key to be accepted');
    expect((await models('old-key')).statusCode).toBe(401);
  });

  it('refuses every key while the keys file is deleted (fail closed), and accepts them again once it is back', async () => {
    const text = `keys:\n  - { id: kept, sha256: ${hashApiKey('kept-key')}, scopes: [invoke, admin] }\n`;
    writeFileSync(file, text);
    await app?.close();
    app = await build();
    const models = (key: string) => app!.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Bearer ${key}` } });
    expect((await models('kept-key')).statusCode).toBe(503);
    unlinkSync(file);
    await waitFor(async () => (await models('kept-key')).statusCode === 401, 10_000, 'the key to be refused');
    const refused = await models('kept-key');
    expect(refused.json()).toMatchObject({ error: { type: 'authentication_error', message: 'invalid API key' } });
    writeFileSync(file, text);
    await waitFor(async () => (await models('kept-key')).statusCode === 503, 10_000, 'the key to be accepted again');
  });
});

describe('PeerHttp', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/limited') {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
        res.end(JSON.stringify({ error: { type: 'rate_limit_error', message: 'slow down', param: null, code: 'rate_limited' } }));
      } else if (req.url === '/echo-headers') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(req.headers));
      } else if (req.url === '/html') {
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end('<h1>bad gateway</h1>');
      } else {
        // Stall: never answer.
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('re-raises a peer error with its status, message and Retry-After', async () => {
    const peer = new PeerHttp('llm', base);
    const err = await peer.json('GET', '/limited', {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 429, message: 'slow down', code: 'rate_limited', headers: { 'retry-after': '7' } });
    const html = await peer.json('GET', '/html', {}).catch((e: unknown) => e);
    expect(html).toMatchObject({ statusCode: 502, message: 'llm service answered 502' });
    await peer.close();
  });

  it('sends the request id and the trace context along', async () => {
    const peer = new PeerHttp('context', `${base}/`);
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const traceContext = extractTraceContext({ traceparent });
    const headers = await peer.json<Record<string, string>>('GET', '/echo-headers', { requestId: 'req-1', traceContext });
    expect(headers['x-request-id']).toBe('req-1');
    expect(headers.traceparent).toBe(traceparent);
    await peer.close();
  });

  it('maps a peer that does not answer in time to a 503', async () => {
    const peer = new PeerHttp('templates', base, { headersTimeoutMs: 300 });
    const err = await peer.json('GET', '/stall', {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ statusCode: 503, code: 'dependency_unavailable' });
    expect((err as Error).message).toMatch(/templates service is unreachable/);
    await peer.close();
  });
});
