import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../test/support/net';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg';
import { deletePrefix, uniquePrefix } from '../../test/support/redis';

const ROOT = resolve(__dirname, '../..');
let db: TestDatabase;
const prefix = uniquePrefix('tshutdown');

beforeAll(async () => {
  db = await createTestDatabase('tshutdown');
});

afterAll(async () => {
  await deletePrefix(prefix);
  await db?.drop();
});

describe('SIGTERM', () => {
  it('fails readiness, finishes every in-flight request, then exits 0', async () => {
    const port = await freePort();
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'services/main.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        SERVICE: 'templates',
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: db.url,
        REDIS_KEY_PREFIX: prefix,
        LOG_LEVEL: 'warn',
        DRAIN_DELAY_MS: '2000',
        SHUTDOWN_TIMEOUT_MS: '10000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    const base = `http://127.0.0.1:${port}`;
    const agent = new Agent({ connections: 64 });
    try {
      await waitFor(
        async () => {
          const res = await request(`${base}/readyz`, { dispatcher: agent });
          await res.body.dump();
          return res.statusCode === 200;
        },
        30_000,
        `the templates process to be ready (${output})`,
      );
      const created = await request(`${base}/v1/templates`, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'drain', type: 'text', template: 'n={{n}}' }),
      });
      expect(created.statusCode).toBe(201);
      await created.body.dump();

      // Open 64 keep-alive connections first, so the renders below go out at once.
      await Promise.all(
        Array.from({ length: 64 }, async () => {
          const res = await request(`${base}/healthz`, { dispatcher: agent });
          await res.body.dump();
        }),
      );
      // 64 renders in flight, then SIGTERM before they have all been answered.
      const inFlight = Array.from({ length: 64 }, async (_, n) => {
        try {
          const res = await request(`${base}/v1/templates/drain/render`, {
            method: 'POST',
            dispatcher: agent,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ variables: { n } }),
          });
          return { status: res.statusCode, body: (await res.body.json()) as any, n };
        } catch (err) {
          return { status: 0, body: { error: (err as Error).message }, n };
        }
      });
      await new Promise((r) => setTimeout(r, 20));
      child.kill('SIGTERM');

      // Readiness is polled on a connection of its own, not queued behind the renders.
      const probe = new Agent({ connections: 1 });
      try {
        await waitFor(
          async () => {
            const res = await request(`${base}/readyz`, { dispatcher: probe, reset: true });
            await res.body.dump();
            return res.statusCode === 503;
          },
          5_000,
          'readiness to fail while draining',
        );
      } finally {
        await probe.close();
      }
      const answers = await Promise.all(inFlight);
      for (const a of answers) {
        expect(a.status, JSON.stringify(a.body)).toBe(200);
        expect(a.body.messages[0].content).toBe(`n=${a.n}`);
      }
      expect(await exited).toBe(0);
      await expect(request(`${base}/healthz`, { dispatcher: agent })).rejects.toThrow();
    } finally {
      await agent.close();
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
