/**
 * A promptmesh of the console tests' own: all four services in this process (`SERVICE=all`) on
 * a free port, against a scratch database, a Redis key prefix and the fake provider, with a
 * keys file the test may rewrite (the router reloads it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { readConfig } from '../../services/kit';
import { buildProcess } from '../../services/process';
import { hashApiKey } from '../../services/router/auth';
import { startFakeProvider, type FakeProvider } from '../fake-provider/server';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { deletePrefix, uniquePrefix } from '../support/redis';

/** The keys the console tests sign in with. */
export const CONSOLE_KEYS = {
  admin: 'pm-console-admin-key',
  /** a second admin key, removed from the file by the "revoked key" test */
  doomed: 'pm-console-doomed-key',
  user: 'pm-console-user-key',
} as const;

export interface ConsoleSystem {
  url: string;
  /** The scratch database the router keeps its keys and spend ledger in. */
  databaseUrl: string;
  fake: FakeProvider;
  /** Rewrites the keys file without the doomed key. */
  revokeDoomedKey(): void;
  /** A JSON call to the API with a key (admin by default). */
  call<T = unknown>(method: string, path: string, body?: unknown, key?: string): Promise<{ status: number; body: T; headers: Headers }>;
  close(): Promise<void>;
}

function keysYaml(withDoomed: boolean): string {
  return [
    'keys:',
    `  - { id: console-admin, sha256: ${hashApiKey(CONSOLE_KEYS.admin)}, scopes: [invoke, admin] }`,
    ...(withDoomed ? [`  - { id: console-doomed, sha256: ${hashApiKey(CONSOLE_KEYS.doomed)}, scopes: [invoke, admin] }`] : []),
    `  - { id: console-user, sha256: ${hashApiKey(CONSOLE_KEYS.user)}, scopes: [invoke] }`,
    '',
  ].join('\n');
}

export async function startConsoleSystem(label: string): Promise<ConsoleSystem> {
  const dir = mkdtempSync(join(tmpdir(), `pm-console-${label}-`));
  const fake = await startFakeProvider({ models: ['model-a', 'model-b'], recordRequests: 50 });
  let db: TestDatabase | undefined;
  let app: FastifyInstance | undefined;
  const prefix = uniquePrefix(`console-${label}`);
  const cleanup = async () => {
    await app?.close().catch(() => undefined);
    await fake.close().catch(() => undefined);
    await db?.drop().catch(() => undefined);
    await deletePrefix(prefix).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    db = await createTestDatabase(`console_${label}`);
    const providersFile = join(dir, 'providers.yaml');
    writeFileSync(
      providersFile,
      [
        'providers:',
        `  - { name: fake-a, type: openai-compatible, baseUrl: ${fake.url}/v1, timeoutMs: 10000, models: [model-a], prices: { model-a: { input: 1.0, output: 2.0 } } }`,
        `  - { name: fake-b, type: openai-compatible, baseUrl: ${fake.url}/v1, timeoutMs: 10000, models: [model-b] }`,
        'models:',
        '  chat:',
        '    - { provider: fake-a, model: model-a, weight: 3 }',
        '    - { provider: fake-b, model: model-b, weight: 1 }',
        'routing: { strategy: weighted, fallback: false, retries: { attempts: 0, backoffMs: 10 } }',
        'cache: { enabled: false, ttlSeconds: 60 }',
        '',
      ].join('\n'),
    );
    const keysFile = join(dir, 'keys.yaml');
    writeFileSync(keysFile, keysYaml(true));
    const config = readConfig({
      SERVICE: 'all',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: db.url,
      REDIS_KEY_PREFIX: prefix,
      PROVIDERS_FILE: providersFile,
      API_KEYS_FILE: keysFile,
      LOG_LEVEL: process.env.CONSOLE_LOG_LEVEL ?? 'fatal',
      DRAIN_DELAY_MS: '0',
    });
    app = (await buildProcess(config)).app;
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    return {
      url,
      databaseUrl: db.url,
      fake,
      revokeDoomedKey: () => writeFileSync(keysFile, keysYaml(false)),
      async call<T>(method: string, path: string, body?: unknown, key: string = CONSOLE_KEYS.admin) {
        const res = await fetch(`${url}${path}`, {
          method,
          headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
      },
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
