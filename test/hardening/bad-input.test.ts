/**
 * The bad-input sweep: every route of every process layout (all-in-one with auth, each service
 * alone, the router alone in front of them) gets malformed, mistyped, oversized and hostile
 * requests generated from its schema (cases.ts). Every answer must be below 500, in the OpenAI
 * error shape, with the expected status, and a 400 must name the field. Afterwards the stored
 * data must hold exactly what was accepted: no half-written versions or messages.
 */
import { connect } from 'node:net';
import { Client } from 'undici';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY_ID, startTargets, type Target, type Targets } from './targets';
import { PATHS } from '../../contracts';
import { MAX_JSON_DEPTH } from '../../services/kit';
import { casesFor, deepJson, type BadCase } from './cases';

interface Answer {
  status: number;
  text: string;
}

async function send(client: Client, c: BadCase, headers: Record<string, string>): Promise<Answer> {
  // One connection per case: a refused request may close its connection (431, 413), and that
  // must not be blamed on the next case.
  const res = await client.request({ method: c.method as 'GET', path: c.path, headers: { ...headers, ...(c.headers ?? {}) }, body: c.body, reset: true });
  return { status: res.statusCode, text: await res.body.text() };
}

/** What is wrong with an answer to a case, or undefined when it is right. */
function judge(c: BadCase, a: Answer): string | undefined {
  if (a.status >= 500) return `answered ${a.status}: ${a.text.slice(0, 300)}`;
  if (c.expect && !c.expect.includes(a.status)) return `answered ${a.status}, expected ${c.expect.join('/')}: ${a.text.slice(0, 300)}`;
  if (a.status < 400) return undefined;
  let body: any;
  try {
    body = JSON.parse(a.text);
  } catch {
    return `answered ${a.status} with a body that is not JSON: ${a.text.slice(0, 200)}`;
  }
  const e = body?.error;
  // The Anthropic Messages route answers in Anthropic's error shape (DESIGN.md).
  // (Before routing, a 404 or 431 on that path comes in the OpenAI shape like everywhere else.)
  const anthropic = c.path.split('?')[0] === '/v1/messages' && body?.type === 'error';
  const shaped = anthropic
    ? e && typeof e.type === 'string' && typeof e.message === 'string' && e.message.length > 0 && Object.keys(body).length === 2
    : e &&
    typeof e.type === 'string' &&
    typeof e.message === 'string' &&
    e.message.length > 0 &&
    (e.param === null || typeof e.param === 'string') &&
    (e.code === null || typeof e.code === 'string') &&
    Object.keys(body).length === 1;
  if (!shaped) return `answered ${a.status} outside the error shape: ${a.text.slice(0, 300)}`;
  if (a.status === 400 && c.field) {
    const leaf = c.field.split(/[.[\]]/).filter(Boolean).pop()!;
    const named = e.param === c.field || String(e.param ?? '').includes(leaf) || e.message.includes(leaf);
    if (!named) return `400 does not name '${c.field}': ${a.text.slice(0, 300)}`;
  }
  return undefined;
}

let t: Targets;
let pool: pg.Pool;

/** What the stores hold: template versions (all rows) and the two sweep sessions' messages. */
async function snapshot(): Promise<{ versions: number; messages: Record<string, number> }> {
  const versions = Number((await pool.query('SELECT count(*)::int AS n FROM template_versions')).rows[0].n);
  const messages: Record<string, number> = {};
  const client = new Client(t.context.url);
  try {
    for (const id of ['sweep-session', `${ADMIN_KEY_ID}:sweep-session`]) {
      const res = await client.request({ method: 'GET', path: `/v1/sessions/${encodeURIComponent(id)}/messages?max_messages=200&max_tokens=10000000` });
      const body = (await res.body.json()) as { messages: unknown[] };
      messages[id] = body.messages.length;
    }
  } finally {
    await client.close();
  }
  return { versions, messages };
}

beforeAll(async () => {
  t = await startTargets();
  pool = new pg.Pool({ connectionString: t.db.url, max: 2 });
  // What the cases' path parameters point at: template 'sweep-a' (v1, labelled production)
  // and one message in the session of each namespace.
  const c = new Client(t.templates.url);
  const json = { 'content-type': 'application/json' };
  const created = await c.request({ method: 'POST', path: '/v1/templates', headers: json, body: JSON.stringify({ name: 'sweep-a', type: 'text', template: 'Hello {{x}}', labels: ['production'] }) });
  expect(created.statusCode).toBe(201);
  await created.body.dump();
  await c.close();
  const ctx = new Client(t.context.url);
  for (const id of ['sweep-session', `${ADMIN_KEY_ID}:sweep-session`]) {
    const r = await ctx.request({ method: 'POST', path: `/v1/sessions/${encodeURIComponent(id)}/messages`, headers: json, body: JSON.stringify({ messages: [{ role: 'user', content: 'seed' }] }) });
    expect(r.statusCode).toBe(201);
    await r.body.dump();
  }
  await ctx.close();
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await t?.close();
});

describe('bad input never gets a 500, always the error shape, and 400s name the field', () => {
  const names = ['all', 'templates', 'context', 'llm', 'router'] as const;
  for (const name of names) {
    it(`${name}: every route, every case`, async () => {
      const target: Target = t[name];
      const limit = target.proc.context.config.bodyLimitBytes;
      // The kit's own routes (health, readiness, metrics) are swept too.
      const kitRoutes = [PATHS.healthz, PATHS.readyz, PATHS.metrics].map((url) => ({ method: 'GET', url, schema: undefined }));
      const cases = [...target.routes, ...kitRoutes].flatMap((r) => casesFor(r, limit));
      // Sanity: the documented routes were found and the sweep is not trivially small.
      const found = new Set(target.routes.map((r) => `${r.method} ${r.url}`));
      const documented = {
        all: ['POST /v1/chat/completions', 'GET /v1/models', 'GET /v1/providers', 'POST /v1/templates', 'PUT /v1/templates/:name/labels/:label', 'POST /v1/sessions/:id/messages'],
        router: ['POST /v1/chat/completions', 'GET /v1/models', 'GET /v1/providers', 'POST /v1/templates/:name/render', 'DELETE /v1/sessions/:id'],
        templates: ['POST /v1/templates', 'GET /v1/templates', 'GET /v1/templates/:name', 'POST /v1/templates/:name/versions', 'DELETE /v1/templates/:name'],
        context: ['GET /v1/sessions/:id/messages', 'POST /v1/sessions/:id/messages', 'DELETE /v1/sessions/:id'],
        llm: ['POST /v1/chat/completions', 'GET /v1/providers'],
      }[name];
      expect(documented.filter((r) => !found.has(r))).toEqual([]);
      expect(cases.length).toBeGreaterThan(target.routes.length * 5);

      const before = await snapshot();
      const failures: string[] = [];
      let acceptedVersions = 0;
      const acceptedMessages: Record<string, number> = {};
      const client = new Client(target.url, { pipelining: 1, bodyTimeout: 30_000, headersTimeout: 30_000 });
      try {
        for (const c of cases) {
          let answer: Answer;
          try {
            answer = await send(client, c, target.headers);
          } catch (err) {
            failures.push(`${c.method} ${c.path.slice(0, 120)} [${c.label}]: request failed: ${(err as Error).message}`);
            continue;
          }
          const problem = judge(c, answer);
          if (problem) failures.push(`${c.method} ${c.path.slice(0, 120)} [${c.label}]: ${problem}`);
          // Some robustness cases may be valid input; count what was stored.
          if (answer.status === 201 && /\/v1\/templates(\/[^/]+\/versions)?$/.test(c.path.split('?')[0]!)) acceptedVersions++;
          if (answer.status === 201 && c.path.includes('/v1/sessions/')) {
            const id = decodeURIComponent(c.path.split('/')[3]!);
            const sid = name === 'all' || name === 'router' ? `${ADMIN_KEY_ID}:${id}` : id;
            acceptedMessages[sid] = (acceptedMessages[sid] ?? 0) + (JSON.parse(answer.text) as { stored: unknown[] }).stored.length;
          }
        }
        // Requests without a key are refused in the error shape where auth is on (public routes,
        // the console's static assets, answer without one: a file, a redirect or a 404).
        if (name === 'all' || name === 'router') {
          for (const r of target.routes) {
            const c: BadCase = { label: 'no key', method: r.method, path: r.url.replace(/:([a-z_]+)/gi, 'x'), expect: r.public ? [200, 308, 404] : [401] };
            try {
              const problem = judge(c, await send(client, c, {}));
              if (problem) failures.push(`${r.method} ${r.url} [no key]: ${problem}`);
            } catch (err) {
              failures.push(`${r.method} ${r.url} [no key]: request failed: ${(err as Error).message}`);
            }
          }
        }
      } finally {
        await client.close();
      }
      expect(failures, `${failures.length} of ${cases.length} cases failed`).toEqual([]);

      // Nothing half-written: the stores changed by exactly what was accepted.
      const after = await snapshot();
      expect(after.versions).toBe(before.versions + acceptedVersions);
      for (const id of Object.keys(before.messages)) {
        expect(after.messages[id], `messages of ${id}`).toBe(before.messages[id]! + (acceptedMessages[id] ?? 0));
      }
      // And every process still answers.
      const health = new Client(target.url);
      const res = await health.request({ method: 'GET', path: '/healthz' });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      await health.close();
    }, 120_000);
  }
});

describe('the body nesting cap over a real socket', () => {
  it('accepts a body nested just under the cap and refuses one over it with a 400 naming the body', async () => {
    const client = new Client(t.all.url);
    const post = async (depth: number) => {
      const body = `{"model":"echo","messages":[{"role":"user","content":"hi"}],"metadata":${deepJson(depth)}}`;
      const res = await client.request({ method: 'POST', path: '/v1/chat/completions', headers: { ...t.all.headers, 'content-type': 'application/json' }, body });
      return { status: res.statusCode, body: (await res.body.json()) as any };
    };
    try {
      expect((await post(MAX_JSON_DEPTH - 2)).status).toBe(200);
      const refused = await post(MAX_JSON_DEPTH + 5);
      expect(refused.status).toBe(400);
      expect(refused.body.error).toMatchObject({ param: 'body', code: 'too_deep' });
    } finally {
      await client.close();
    }
  });
});

describe('slow clients', () => {
  it('every process bounds the time a client may take to send its request (headers and body)', () => {
    for (const name of ['all', 'templates', 'context', 'llm', 'router'] as const) {
      const server = t[name].proc.app.server;
      expect(server.requestTimeout, name).toBeGreaterThan(0);
      expect(server.requestTimeout, name).toBeLessThanOrEqual(120_000);
      expect(server.headersTimeout, name).toBeGreaterThan(0);
    }
  });
});

describe('bad headers', () => {
  const body = JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] });
  const json = { 'content-type': 'application/json' };

  async function check(target: Target, headers: Record<string, string>, c: Omit<BadCase, 'method' | 'path'>): Promise<string | undefined> {
    const client = new Client(target.url);
    try {
      const full: BadCase = { ...c, method: 'POST', path: '/v1/chat/completions', headers: { ...json, ...headers }, body };
      return judge(full, await send(client, full, {}));
    } finally {
      await client.close();
    }
  }

  it('llm: tenant and cache headers are checked, naming the header', async () => {
    const problems = [
      await check(t.llm, { 'x-promptmesh-tenant': 't'.repeat(300) }, { label: 'long tenant', expect: [400], field: 'x-promptmesh-tenant' }),
      await check(t.llm, { 'x-promptmesh-cache': 'sometimes' }, { label: 'bad cache mode', expect: [400], field: 'x-promptmesh-cache' }),
      await check(t.llm, { traceparent: 'garbage-00-zz' }, { label: 'bad traceparent' }),
      await check(t.llm, { 'x-request-id': 'r'.repeat(4000) }, { label: 'long request id' }),
    ];
    expect(problems.filter(Boolean)).toEqual([]);
  });

  it('routers: malformed credentials are a 401 in the error shape', async () => {
    const problems: Array<string | undefined> = [];
    for (const target of [t.all, t.router]) {
      for (const authorization of ['Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Bearer ${'k'.repeat(8000)}`, 'bearer pm-hardening-wrong', `Bearer ${ADMIN_KEY_ID}`]) {
        problems.push(await check(target, { authorization }, { label: `authorization ${authorization.slice(0, 20)}`, expect: [401] }));
      }
      problems.push(await check(target, { ...target.headers, traceparent: '00-zz-zz-01' }, { label: 'bad traceparent', expect: [200] }));
    }
    expect(problems.filter(Boolean)).toEqual([]);
  });
});

/** Writes raw bytes on a fresh connection and reads until the server closes it. */
function raw(url: string, text: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (out += d));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

describe('malformed HTTP', () => {
  const body = '{"model":"echo","messages":[{"role":"user","content":"hi"}]}';
  const cases: Array<[string, string, number]> = [
    ['garbage request line', 'HELLO THERE\r\n\r\n', 400],
    ['bad chunk size', 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n', 400],
    ['content-length and chunked together (smuggling)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    ['two content-lengths', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nContent-Length: 2\r\n\r\n${body}`, 400],
    ['header without a colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n', 400],
    ['headers over 16 KiB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, 431],
  ];
  for (const name of ['all', 'router'] as const) {
    it(`${name}: refused by the HTTP parser, answered in the error shape`, async () => {
      const problems: string[] = [];
      for (const [label, text, status] of cases) {
        const answer = await raw(t[name].url, text);
        const head = answer.split('\r\n')[0] ?? '';
        const json = answer.slice(answer.indexOf('\r\n\r\n') + 4);
        const problem = head.startsWith(`HTTP/1.1 ${status} `) ? judge({ label, method: 'RAW', path: '', expect: [status] }, { status, text: json }) : `answered ${head || '(nothing)'}`;
        if (problem) problems.push(`${label}: ${problem}`);
      }
      expect(problems).toEqual([]);
      // And the process still answers.
      expect((await raw(t[name].url, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).startsWith('HTTP/1.1 200')).toBe(true);
    });
  }
});

