/**
 * Crash resistance of a real `node --import tsx services/main.ts` process (SERVICE=all, auth
 * on, a slow-streaming fake provider): clients that disconnect mid-request and mid-stream,
 * slowloris-style partial headers and bodies, and concurrent requests during SIGTERM never
 * crash it; it keeps answering /healthz, and on SIGTERM finishes what it accepted and exits 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../services/router/auth';
import { startFakeProvider, type FakeProvider } from '../fake-provider/server';
import { freePort, waitFor } from '../support/net';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { deletePrefix, uniquePrefix } from '../support/redis';
import { ADMIN_KEY, startTargets } from './targets';

const ROOT = join(__dirname, '..', '..');
const KEY = 'pm-hardening-crash-key';
const AUTH = { authorization: `Bearer ${KEY}` };

let fake: FakeProvider;
let db: TestDatabase;
let dir: string;
let child: ChildProcess;
let port: number;
let base: string;
let output = '';
const prefix = uniquePrefix('hardening-crash');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pm-hardening-crash-'));
  // Each streamed answer takes about a second: 40 tokens, 25 ms apart.
  fake = await startFakeProvider({ models: ['slow'], recordRequests: 0, plan: { reply: { tokens: 40, tokenDelayMs: 25 } } });
  db = await createTestDatabase('hardening_crash');
  const providers = join(dir, 'providers.yaml');
  writeFileSync(providers, `providers:\n  - { name: fake, type: openai-compatible, baseUrl: "${fake.url}/v1", timeoutMs: 20000, models: [slow] }\ncache: { enabled: false }\n`);
  const keys = join(dir, 'keys.yaml');
  writeFileSync(keys, `keys:\n  - { id: crash, sha256: ${hashApiKey(KEY)}, scopes: [invoke, admin] }\n`);
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, ['--import', 'tsx', 'services/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      SERVICE: 'all',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: db.url,
      REDIS_KEY_PREFIX: prefix,
      PROVIDERS_FILE: providers,
      API_KEYS_FILE: keys,
      LOG_LEVEL: 'warn',
      DRAIN_DELAY_MS: '1000',
      SHUTDOWN_TIMEOUT_MS: '20000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += String(d)));
  child.stderr!.on('data', (d) => (output += String(d)));
  await waitFor(async () => (await request(`${base}/readyz`)).statusCode === 200, 30_000, 'the process to be ready');
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await fake?.close();
  await db?.drop();
  await deletePrefix(prefix);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function healthy(): Promise<void> {
  expect(child.exitCode, output).toBeNull();
  const res = await request(`${base}/healthz`, { headersTimeout: 10_000 });
  expect(res.statusCode).toBe(200);
  await res.body.dump();
}

function chatBody(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'tell me a story' }], ...extra });
}

/** Opens a raw connection and writes `text`; resolves with the socket once written. */
function rawSocket(text: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text, () => resolve(s)));
    s.on('error', reject);
  });
}

describe('a real process under hostile clients', () => {
  it('survives clients that disconnect mid-request (half a body sent)', async () => {
    const targets = [
      ['POST', '/v1/chat/completions'],
      ['POST', '/v1/templates'],
      ['POST', '/v1/sessions/crash-a/messages'],
      ['PUT', '/v1/templates/x/labels/production'],
    ];
    for (let round = 0; round < 10; round++) {
      const sockets = await Promise.all(
        targets.map(([method, path]) =>
          rawSocket(
            `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"model":"slow","messages":[{"role":`,
          ),
        ),
      );
      await new Promise((r) => setTimeout(r, 10));
      for (const s of sockets) s.destroy();
    }
    await healthy();
  });

  it('survives clients that disconnect mid-stream, and stores no half turn', async () => {
    const runs = Array.from({ length: 8 }, async (_, i) => {
      const controller = new AbortController();
      const res = await request(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: chatBody({ stream: true, session_id: `crash-stream-${i}` }),
        signal: controller.signal,
      });
      expect(res.statusCode).toBe(200);
      // Read the first chunk, then hang up.
      for await (const chunk of res.body) {
        expect(String(chunk)).toContain('data:');
        break;
      }
      controller.abort();
    });
    await Promise.all(runs);
    // A non-streaming request that is dropped while the provider is still answering.
    for (let i = 0; i < 4; i++) {
      const controller = new AbortController();
      const pending = request(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: chatBody({ session_id: `crash-plain-${i}` }),
        signal: controller.signal,
      }).catch(() => undefined);
      setTimeout(() => controller.abort(), 100);
      await pending;
    }
    await healthy();
    // The abandoned turns were not stored in halves: a session holds nothing or a whole turn.
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of [...Array.from({ length: 8 }, (_, i) => `crash-stream-${i}`), ...Array.from({ length: 4 }, (_, i) => `crash-plain-${i}`)]) {
      const res = await request(`${base}/v1/sessions/${id}/messages`, { headers: AUTH });
      expect(res.statusCode).toBe(200);
      const body = (await res.body.json()) as { messages: Array<{ role: string }> };
      expect([0, 2], `messages of ${id}`).toContain(body.messages.length);
      if (body.messages.length === 2) expect(body.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    }
  }, 60_000);

  it('keeps answering while slowloris clients trickle headers and bodies', async () => {
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 30; i++) sockets.push(await rawSocket(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow-${i}: `));
      for (let i = 0; i < 30; i++) {
        sockets.push(
          await rawSocket(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"model":`),
        );
      }
      const trickle = setInterval(() => {
        for (const s of sockets) if (!s.destroyed) s.write('a');
      }, 100);
      try {
        for (let i = 0; i < 10; i++) {
          await healthy();
          const res = await request(`${base}/v1/chat/completions`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: chatBody() });
          expect(res.statusCode).toBe(200);
          await res.body.dump();
        }
      } finally {
        clearInterval(trickle);
      }
    } finally {
      for (const s of sockets) s.destroy();
    }
    await healthy();
  }, 60_000);

  it('on SIGTERM finishes the requests it accepted, answers /healthz while draining, and exits 0', async () => {
    const json = { ...AUTH, 'content-type': 'application/json' };
    const before = fake.stats.requests;
    const inflight = Array.from({ length: 12 }, async (_, i) => {
      const res = await request(`${base}/v1/chat/completions`, { method: 'POST', headers: json, body: chatBody({ stream: i % 2 === 0 }) });
      const text = await res.body.text();
      return { status: res.statusCode, text };
    });
    // Let them reach the provider, then ask the process to stop.
    await waitFor(() => fake.stats.requests >= before + 12, 15_000, 'the in-flight requests to reach the provider');
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    // Draining: alive, not ready.
    const health = await request(`${base}/healthz`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    const ready = await request(`${base}/readyz`);
    expect(ready.statusCode).toBe(503);
    await ready.body.dump();
    const results = await Promise.all(inflight);
    for (const [i, r] of results.entries()) {
      expect(r.status, r.text.slice(0, 200)).toBe(200);
      if (i % 2 === 0) expect(r.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      else expect(JSON.parse(r.text).choices[0].message.content.length).toBeGreaterThan(0);
    }
    expect(await exited).toBe(0);
    expect(output).not.toMatch(/uncaught|unhandled|FATAL|failed to start/i);
  }, 60_000);
});

describe('the router alone (mesh layout, in-process) under hostile clients', () => {
  it('survives half-sent bodies and aborted requests on every proxied and peer-backed route', async () => {
    const t = await startTargets();
    try {
      const url = new URL(t.router.url);
      const routerPort = Number(url.port);
      const paths = [
        ['POST', '/v1/chat/completions'],
        ['POST', '/v1/templates'],
        ['POST', '/v1/templates/x/versions'],
        ['POST', '/v1/sessions/mesh-a/messages'],
        ['PUT', '/v1/templates/x/labels/production'],
      ];
      for (let round = 0; round < 5; round++) {
        const sockets = await Promise.all(
          paths.map(
            ([method, path]) =>
              new Promise<Socket>((resolve, reject) => {
                const s = connect(routerPort, '127.0.0.1', () =>
                  s.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{"a":`, () => resolve(s)),
                );
                s.on('error', reject);
              }),
          ),
        );
        await new Promise((r) => setTimeout(r, 10));
        for (const s of sockets) s.destroy();
        // Whole requests whose clients hang up before the answer.
        await Promise.all(
          paths.map(async ([method, path]) => {
            const controller = new AbortController();
            const pending = request(`${t.router.url}${path}`, {
              method: method as 'POST',
              headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
              body: JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] }),
              signal: controller.signal,
            }).then((res) => res.body.dump(), () => undefined);
            setImmediate(() => controller.abort());
            await pending;
          }),
        );
      }
      for (const target of [t.router, t.templates, t.context, t.llm]) {
        const res = await request(`${target.url}/healthz`);
        expect(res.statusCode, target.name).toBe(200);
        await res.body.dump();
      }
      // And the router still serves a whole request end to end.
      const ok = await request(`${t.router.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(ok.statusCode).toBe(200);
      await ok.body.dump();
    } finally {
      await t.close();
    }
  }, 60_000);
});

