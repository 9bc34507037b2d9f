/**
 * Test helpers for virtual keys: promptmesh (`SERVICE=all`) on a real socket against the fake
 * provider, a database and a Redis prefix of the test's own, with one admin key in the keys file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfig } from '../../kit/config';
import { buildProcess, type PromptmeshProcess } from '../../process';
import { startFakeProvider, type FakeProvider } from '../../../test/fake-provider/server';
import { createTestDatabase, type TestDatabase } from '../../../test/support/pg';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../../test/support/redis';
import { hashApiKey } from '../auth';

/** The keys-file admin key of {@link startKeysSystem}. */
export const ADMIN_KEY = 'pm-test-file-admin';
/** The keys-file invoke-only key of {@link startKeysSystem} (id `file-user`). */
export const USER_KEY = 'pm-test-file-user';

/**
 * The price table the fake models are billed at (USD per million tokens): `model-a` and
 * `model-b` on an OpenAI-compatible provider, `claude-a` on an Anthropic one (`/v1/messages`
 * passes through to it), `gpt-r` on an OpenAI one (`/v1/responses`).
 */
export const PRICES = {
  'model-a': { input: 3, output: 15, cached_input: 0.3 },
  'model-b': { input: 0.15, output: 0.6 },
  'claude-a': { input: 1, output: 5, cached_input: 0.1 },
  'gpt-r': { input: 2, output: 8 },
} as const;

/** The environment variable the fixture's Anthropic provider reads its (fake) API key from. */
const ANTHROPIC_KEY_ENV = 'PM_KEYS_FAKE_ANTHROPIC_KEY';
// llm reads provider keys from its process environment (SERVICE=all runs it in this one).
process.env[ANTHROPIC_KEY_ENV] ??= 'ak-keys-fake';

/** The files and servers a keys system runs against, shareable by several router processes. */
export interface KeysFixture {
  dir: string;
  fake: FakeProvider;
  db: TestDatabase;
  prefix: string;
  /** The environment of a promptmesh process using them. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** Writes the providers and keys files, starts the fake provider, makes the database. */
export async function keysFixture(label: string, redisUrl = TEST_REDIS_URL): Promise<KeysFixture> {
  const dir = mkdtempSync(join(tmpdir(), `pm-keys-${label}-`));
  const fake = await startFakeProvider({ models: ['model-a', 'model-b', 'claude-a', 'gpt-r'], recordRequests: 0 });
  const db = await createTestDatabase(`keys_${label}`);
  const prefix = uniquePrefix(`keys-${label}`);
  const providers = join(dir, 'providers.yaml');
  writeFileSync(
    providers,
    [
      'providers:',
      `  - name: fake`,
      `    type: openai-compatible`,
      `    baseUrl: ${fake.url}/v1`,
      `    timeoutMs: 10000`,
      `    models: [model-a, model-b]`,
      `    prices: ${JSON.stringify({ 'model-a': PRICES['model-a'], 'model-b': PRICES['model-b'] })}`,
      `  - name: fake-claude`,
      `    type: anthropic`,
      `    baseUrl: ${fake.url}`,
      `    apiKeyEnv: ${ANTHROPIC_KEY_ENV}`,
      `    timeoutMs: 10000`,
      `    models: [claude-a]`,
      `    prices: ${JSON.stringify({ 'claude-a': PRICES['claude-a'] })}`,
      `  - name: fake-openai`,
      `    type: openai`,
      `    baseUrl: ${fake.url}/v1`,
      `    timeoutMs: 10000`,
      `    models: [gpt-r]`,
      `    prices: ${JSON.stringify({ 'gpt-r': PRICES['gpt-r'] })}`,
      'models:',
      '  chat: [{ provider: fake, model: model-b }]',
      'cache: { enabled: true, ttlSeconds: 60 }',
      '',
    ].join('\n'),
  );
  const keys = join(dir, 'keys.yaml');
  writeFileSync(
    keys,
    `keys:\n  - { id: file-admin, sha256: ${hashApiKey(ADMIN_KEY)}, scopes: [invoke, admin] }\n  - { id: file-user, sha256: ${hashApiKey(USER_KEY)}, scopes: [invoke] }\n`,
  );
  const env = {
    [ANTHROPIC_KEY_ENV]: 'ak-keys-fake',
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    PROVIDERS_FILE: providers,
    API_KEYS_FILE: keys,
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    DRAIN_DELAY_MS: '0',
  };
  return {
    dir,
    fake,
    db,
    prefix,
    env,
    async close() {
      await fake.close().catch(() => undefined);
      await db.drop().catch(() => undefined);
      await deletePrefix(prefix, redisUrl).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One promptmesh process (`SERVICE=all`) in this process, on a free port. */
export interface RunningKeys {
  url: string;
  process: PromptmeshProcess;
  fixture: KeysFixture;
  /** A JSON request with a key; answers status, headers and the parsed body. */
  call(method: string, path: string, key: string | undefined, body?: unknown): Promise<{ status: number; headers: Headers; body: any }>;
  close(): Promise<void>;
}

/** Starts promptmesh on `fixture` (its own fixture when none is given; closed with it). */
export async function startKeysSystem(label: string, fixture?: KeysFixture): Promise<RunningKeys> {
  const own = fixture === undefined;
  const f = fixture ?? (await keysFixture(label));
  const config = readConfig({ ...f.env, SERVICE: 'all', PORT: '0' });
  const proc = await buildProcess(config);
  await proc.app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(proc.app.server.address() as { port: number }).port}`;
  return {
    url,
    process: proc,
    fixture: f,
    async call(method, path, key, body) {
      const headers: Record<string, string> = {};
      if (key) headers.authorization = `Bearer ${key}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON (SSE)
      }
      return { status: res.status, headers: res.headers, body: parsed as any };
    },
    async close() {
      await proc.app.close();
      if (own) await f.close();
    },
  };
}
