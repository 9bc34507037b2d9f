/**
 * The configuration sweep: a bad value of every environment variable (contracts ENV and the
 * context service's CONTEXT_*), and broken providers and keys files, stop
 * `node --import tsx services/main.ts` with exit code 1 and a message naming the variable (or
 * the file and the field), without a stack trace. The per-module tests check the parsers; this
 * checks the entry point really stops.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV } from '../../contracts';
import { CONTEXT_ENV } from '../../services/context/config';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { deletePrefix, uniquePrefix } from '../support/redis';

const ROOT = join(__dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'pm-hardening-config-'));
const prefix = uniquePrefix('hardening-config');
// A port held by someone else, and a real database for the case that gets as far as it.
let holder: Server;
let heldPort = 0;
let db: TestDatabase;
beforeAll(async () => {
  holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  heldPort = (holder.address() as { port: number }).port;
  db = await createTestDatabase('hardening_config');
});
afterAll(async () => {
  await new Promise((resolve) => holder?.close(resolve));
  await db?.drop();
  await deletePrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

interface ConfigCase {
  label: string;
  env: Record<string, string>;
  /** Every string must appear in stderr. */
  names: string[];
}

const KEY_HASH = 'a'.repeat(64);
// A router whose peers are never reached: a bad value must stop it before it needs them.
const ROUTER = { SERVICE: 'router', TEMPLATES_URL: 'http://127.0.0.1:9', CONTEXT_URL: 'http://127.0.0.1:9', LLM_URL: 'http://127.0.0.1:9' };

const CASES: ConfigCase[] = [
  { label: 'unknown service', env: { [ENV.service]: 'web' }, names: [ENV.service, 'web'] },
  { label: 'port not a number', env: { [ENV.port]: 'eighty' }, names: [ENV.port] },
  { label: 'port out of range', env: { [ENV.port]: '70000' }, names: [ENV.port] },
  { label: 'host that does not resolve', env: { SERVICE: 'llm', [ENV.host]: 'no such host!' }, names: [ENV.host] },
  { label: 'database URL of another scheme', env: { [ENV.databaseUrl]: 'mysql://u@h/db' }, names: [ENV.databaseUrl] },
  { label: 'database URL not a URL', env: { [ENV.databaseUrl]: 'postgres//nope' }, names: [ENV.databaseUrl] },
  { label: 'redis URL of another scheme', env: { [ENV.redisUrl]: 'http://127.0.0.1:6379' }, names: [ENV.redisUrl] },
  { label: 'redis cluster node without port', env: { [ENV.redisClusterNodes]: 'a:1,b' }, names: [ENV.redisClusterNodes] },
  { label: 'redis cluster node port out of range', env: { [ENV.redisClusterNodes]: 'a:99999' }, names: [ENV.redisClusterNodes] },
  { label: 'redis key prefix with spaces', env: { [ENV.redisKeyPrefix]: 'my prefix' }, names: [ENV.redisKeyPrefix] },
  { label: 'templates URL of another scheme', env: { ...ROUTER, [ENV.templatesUrl]: 'ftp://x' }, names: [ENV.templatesUrl] },
  { label: 'context URL not a URL', env: { ...ROUTER, [ENV.contextUrl]: 'context:8080' }, names: [ENV.contextUrl] },
  { label: 'llm URL missing for a router alone', env: { ...ROUTER, [ENV.llmUrl]: '' }, names: [ENV.llmUrl] },
  { label: 'OTLP endpoint not a URL', env: { [ENV.otlpEndpoint]: 'collector:4318' }, names: [ENV.otlpEndpoint] },
  { label: 'unknown log level', env: { [ENV.logLevel]: 'loud' }, names: [ENV.logLevel] },
  { label: 'negative shutdown timeout', env: { [ENV.shutdownTimeoutMs]: '-5' }, names: [ENV.shutdownTimeoutMs] },
  { label: 'drain delay not a number', env: { [ENV.drainDelayMs]: '5s' }, names: [ENV.drainDelayMs] },
  { label: 'body limit too small', env: { [ENV.bodyLimitBytes]: '10' }, names: [ENV.bodyLimitBytes] },
  { label: 'body limit with a unit', env: { [ENV.bodyLimitBytes]: '1mb' }, names: [ENV.bodyLimitBytes] },
  { label: 'context TTL zero', env: { SERVICE: 'context', [CONTEXT_ENV.ttlSeconds]: '0' }, names: [CONTEXT_ENV.ttlSeconds] },
  { label: 'context max messages not a number', env: { SERVICE: 'context', [CONTEXT_ENV.maxMessages]: 'many' }, names: [CONTEXT_ENV.maxMessages] },
  { label: 'context max tokens negative', env: { SERVICE: 'context', [CONTEXT_ENV.defaultMaxTokens]: '-1' }, names: [CONTEXT_ENV.defaultMaxTokens] },
  { label: 'context max append too large', env: { SERVICE: 'context', [CONTEXT_ENV.maxAppend]: '999999' }, names: [CONTEXT_ENV.maxAppend] },
  { label: 'context max content a float', env: { SERVICE: 'context', [CONTEXT_ENV.maxContentChars]: '1.5' }, names: [CONTEXT_ENV.maxContentChars] },
  {
    label: 'context dedupe window below max messages',
    env: { SERVICE: 'context', [CONTEXT_ENV.maxMessages]: '500', [CONTEXT_ENV.dedupeWindow]: '10' },
    names: [CONTEXT_ENV.dedupeWindow, CONTEXT_ENV.maxMessages],
  },
  { label: 'context settings checked in all mode too', env: { SERVICE: 'all', [CONTEXT_ENV.ttlSeconds]: 'x', DATABASE_URL: '<db>' }, names: [CONTEXT_ENV.ttlSeconds] },
  { label: 'database that does not answer', env: { SERVICE: 'templates', DATABASE_URL: 'postgres://postgres:s3cret-pw@127.0.0.1:9/x' }, names: [ENV.databaseUrl, 'ECONNREFUSED'] },
  { label: 'database that does not exist', env: { SERVICE: 'templates', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/pm_hardening_no_such_db' }, names: [ENV.databaseUrl, 'pm_hardening_no_such_db'] },
  { label: 'port already in use', env: { SERVICE: 'llm', PORT: '<held>' }, names: [ENV.port, 'EADDRINUSE'] },
  { label: 'providers file missing', env: { SERVICE: 'llm', [ENV.providersFile]: join(dir, 'missing.yaml') }, names: [ENV.providersFile, 'missing.yaml'] },
  { label: 'providers file not YAML', env: { SERVICE: 'llm', [ENV.providersFile]: file('p-broken.yaml', 'providers: [\n') }, names: ['p-broken.yaml'] },
  { label: 'providers file with a misspelt section', env: { SERVICE: 'llm', [ENV.providersFile]: file('p-field.yaml', 'providrs:\n  - { name: a }\n') }, names: ['p-field.yaml', 'providrs'] },
  {
    label: 'providers file with an unknown provider type',
    env: { SERVICE: 'llm', [ENV.providersFile]: file('p-type.yaml', 'providers:\n  - { name: a, type: gopher, baseUrl: "http://x" }\n') },
    names: ['p-type.yaml', 'type'],
  },
  {
    label: 'providers file with an alias to an unknown provider',
    env: {
      SERVICE: 'llm',
      [ENV.providersFile]: file('p-alias.yaml', 'providers:\n  - { name: a, type: openai-compatible, baseUrl: "http://x", models: [m] }\nmodels:\n  chat: [{ provider: nope, model: m }]\n'),
    },
    names: ['p-alias.yaml', 'provider', 'nope'],
  },
  {
    label: 'providers file with a negative timeout',
    env: { SERVICE: 'llm', [ENV.providersFile]: file('p-timeout.json', JSON.stringify({ providers: [{ name: 'a', type: 'openai-compatible', baseUrl: 'http://x', timeoutMs: -1 }] })) },
    names: ['p-timeout.json', 'timeoutMs'],
  },
  {
    label: 'providers file whose API key variable is unset',
    env: { SERVICE: 'llm', [ENV.providersFile]: file('p-key.yaml', 'providers:\n  - { name: a, type: openai, baseUrl: "https://api.openai.com/v1", apiKeyEnv: PM_HARDENING_UNSET_KEY }\n') },
    names: ['PM_HARDENING_UNSET_KEY'],
  },
  { label: 'keys file missing', env: { ...ROUTER, [ENV.apiKeysFile]: join(dir, 'no-keys.yaml') }, names: [ENV.apiKeysFile, 'no-keys.yaml'] },
  { label: 'keys file not YAML', env: { ...ROUTER, [ENV.apiKeysFile]: file('k-broken.yaml', 'keys: [\n') }, names: ['k-broken.yaml'] },
  { label: 'keys file with a bad hash', env: { ...ROUTER, [ENV.apiKeysFile]: file('k-hash.yaml', 'keys:\n  - { id: a, sha256: xyz, scopes: [invoke] }\n') }, names: ['k-hash.yaml', 'keys[0].sha256'] },
  {
    label: 'keys file with an unknown scope',
    env: { ...ROUTER, [ENV.apiKeysFile]: file('k-scope.yaml', `keys:\n  - { id: a, sha256: ${KEY_HASH}, scopes: [root] }\n`) },
    names: ['k-scope.yaml', 'keys[0].scopes'],
  },
  {
    label: 'keys file with an unknown field',
    env: { ...ROUTER, [ENV.apiKeysFile]: file('k-field.yaml', `keys:\n  - { id: a, sha256: ${KEY_HASH}, scopes: [invoke], key: plain }\n`) },
    names: ['k-field.yaml', 'keys[0].key'],
  },
];

interface Outcome {
  code: number | null;
  signal: string | null;
  stderr: string;
}

function run(env: Record<string, string>): Promise<Outcome> {
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? dir,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'error',
    DRAIN_DELAY_MS: '0',
    REDIS_KEY_PREFIX: prefix,
    // Nothing below may get as far as the database: a dead address makes a slip visible.
    DATABASE_URL: 'postgres://postgres@127.0.0.1:9/none',
  };
  return new Promise((resolve) => {
    const merged = { ...base, ...env };
    if (merged.DATABASE_URL === '<db>') merged.DATABASE_URL = db.url;
    if (merged.PORT === '<held>') merged.PORT = String(heldPort);
    execFile(process.execPath, ['--import', 'tsx', 'services/main.ts'], { cwd: ROOT, env: merged, timeout: 45_000 }, (err, _stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stderr: String(stderr) });
    });
  });
}

/** Runs `fn` over `items`, `limit` at a time. */
async function pooled<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

describe('bad configuration stops services/main.ts at start, naming the variable or the file and field', () => {
  it('covers every variable of contracts ENV and CONTEXT_ENV', () => {
    const covered = new Set(CASES.flatMap((c) => c.names));
    const must = [...Object.values(ENV), ...Object.values(CONTEXT_ENV)].filter((v) => v !== ENV.providersFile && v !== ENV.apiKeysFile);
    expect(must.filter((v) => !covered.has(v))).toEqual([]);
  });

  it('exits 1 with a one-line reason for each bad value', async () => {
    const outcomes = await pooled(CASES, 4, (c) => run(c.env));
    const failures: string[] = [];
    CASES.forEach((c, i) => {
      const o = outcomes[i]!;
      const err = o.stderr.trim();
      if (o.code !== 1) failures.push(`${c.label}: exit ${o.code} (signal ${o.signal}), stderr: ${err.slice(0, 300)}`);
      else if (c.names.some((n) => !err.includes(n))) failures.push(`${c.label}: stderr does not name ${c.names.join(', ')}: ${err.slice(0, 300)}`);
      else if (!err.includes('configuration error')) failures.push(`${c.label}: not reported as a configuration error: ${err.slice(0, 300)}`);
      else if (/\n\s+at /.test(err)) failures.push(`${c.label}: prints a stack trace: ${err.slice(0, 300)}`);
      else if (err.includes('s3cret-pw')) failures.push(`${c.label}: prints the database password: ${err.slice(0, 300)}`);
    });
    expect(failures).toEqual([]);
  }, 150_000);
});
