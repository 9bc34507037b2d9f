/**
 * The two layouts the end-to-end suites run against, and what they share: a fake provider, a
 * private redis-server (so a test may stop and restart it without touching the shared one on
 * 6379), a database of their own, a keys file and a providers file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { readConfig, shutdownGracefully } from '../../services/kit';
import { buildProcess } from '../../services/process';
import { hashApiKey } from '../../services/router/auth';
import { startFakeProvider, type FakeProvider, type FakeProviderOptions } from '../fake-provider/server';
import { freePort, waitFor } from '../support/net';
import { TEST_PG_ADMIN_URL, createTestDatabase, type TestDatabase } from '../support/pg';
import { uniquePrefix } from '../support/redis';
import { embeddingsProviderLines } from './embeddings-responses.suite';

const ROOT = join(__dirname, '..', '..');

/** The environment variable holding the fake Anthropic provider's key (the fake accepts any). */
const ANTHROPIC_KEY_ENV = 'PM_E2E_ANTHROPIC_KEY';
// Read by the providers file in this process (all-in-one) and inherited by the mesh's children.
process.env[ANTHROPIC_KEY_ENV] = 'ak-e2e-fake';

/** The API keys every e2e layout accepts. */
export const KEYS = {
  /** invoke and admin */
  admin: 'pm-e2e-admin-key',
  /** invoke only */
  user: 'pm-e2e-user-key',
  /** invoke, 3 requests per minute */
  limited: 'pm-e2e-limited-key',
  /** invoke, 1000 tokens per minute */
  tokenLimited: 'pm-e2e-token-limited-key',
} as const;

/** A redis-server of a test's own, on a free port, that the test may stop and start. */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitFor(
      async () => {
        const c = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        c.on('error', () => undefined);
        try {
          await c.connect();
          return (await c.ping()) === 'PONG';
        } finally {
          c.disconnect();
        }
      },
      10_000,
      `redis-server on port ${this.port}`,
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }
}

/** What both layouts offer a suite. */
export interface Layout {
  readonly name: 'all-in-one' | 'mesh';
  /** The router's base URL (`http://127.0.0.1:port`). */
  readonly url: string;
  readonly fake: FakeProvider;
  readonly redis: PrivateRedis;
  readonly db: TestDatabase;
  /** Makes the templates service unreachable (mesh: stops its process; all-in-one: its database). */
  stopTemplates(): Promise<void>;
  startTemplates(): Promise<void>;
  /** SIGTERM for the router (mesh: the signal to its process; all-in-one: the same graceful shutdown). Resolves when it exited. */
  terminateRouter(): Promise<void>;
  close(): Promise<void>;
}

interface Shared {
  dir: string;
  fake: FakeProvider;
  redis: PrivateRedis;
  db: TestDatabase;
  env: Record<string, string>;
}

/** The providers file suite.ts runs against: its aliases (`chat`, `claude`, `embed`) and providers. */
function defaultProviders(fakeUrl: string): string[] {
  const extra = embeddingsProviderLines(fakeUrl);
  return [
    'providers:',
    `  - { name: fake-a, type: openai-compatible, baseUrl: ${fakeUrl}/v1, timeoutMs: 10000, models: [model-a] }`,
    `  - { name: fake-b, type: openai-compatible, baseUrl: ${fakeUrl}/v1, timeoutMs: 10000, models: [model-b] }`,
    ...extra.providers,
    `  - { name: fake-claude, type: anthropic, baseUrl: ${fakeUrl}, apiKeyEnv: ${ANTHROPIC_KEY_ENV}, timeoutMs: 10000, models: [claude-fake] }`,
    'models:',
    '  claude:',
    '    - { provider: fake-claude, model: claude-fake }',
    '  chat:',
    '    - { provider: fake-a, model: model-a }',
    '    - { provider: fake-b, model: model-b }',
    ...extra.models,
    'routing: { strategy: priority, fallback: true, retries: { attempts: 0, backoffMs: 10 } }',
    'cache: { enabled: true, ttlSeconds: 60 }',
    '',
  ];
}

/** What a suite may change in the layout it starts (the defaults are what suite.ts needs). */
export interface LayoutOptions {
  /** Options of the fake provider (keys it checks, ...); `models` and `recordRequests` have defaults. */
  fake?: FakeProviderOptions;
  /**
   * The providers file, as YAML lines, given the fake provider's URL.
   * @default the providers and aliases of suite.ts (`chat`, `claude`, `embed`, ...)
   */
  providers?: (fakeUrl: string) => string[];
}

async function shared(label: string, options: LayoutOptions = {}): Promise<Shared> {
  const dir = mkdtempSync(join(tmpdir(), `pm-e2e-${label}-`));
  const fake = await startFakeProvider({ models: ['model-a', 'model-b'], recordRequests: 200, ...options.fake });
  const [redis, db] = await Promise.all([PrivateRedis.start(), createTestDatabase(`e2e_${label}`)]);
  const providersFile = join(dir, 'providers.yaml');
  writeFileSync(providersFile, (options.providers ?? defaultProviders)(fake.url).join('\n'));
  const keysFile = join(dir, 'keys.yaml');
  writeFileSync(
    keysFile,
    [
      'keys:',
      `  - { id: e2e-admin, sha256: ${hashApiKey(KEYS.admin)}, scopes: [invoke, admin] }`,
      `  - { id: e2e-user, sha256: ${hashApiKey(KEYS.user)}, scopes: [invoke] }`,
      `  - { id: e2e-limited, sha256: ${hashApiKey(KEYS.limited)}, scopes: [invoke], rpm: 3 }`,
      `  - { id: e2e-token-limited, sha256: ${hashApiKey(KEYS.tokenLimited)}, scopes: [invoke], tpm: 1000 }`,
      '',
    ].join('\n'),
  );
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    REDIS_KEY_PREFIX: uniquePrefix(`e2e-${label}`),
    PROVIDERS_FILE: providersFile,
    API_KEYS_FILE: keysFile,
    LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'fatal',
    HOST: '127.0.0.1',
    DRAIN_DELAY_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '20000',
  };
  return { dir, fake, redis, db, env };
}

async function cleanup(s: Shared): Promise<void> {
  await s.fake.close().catch(() => undefined);
  await s.redis.stop().catch(() => undefined);
  await s.db.drop().catch(() => undefined);
  rmSync(s.dir, { recursive: true, force: true });
}

async function setDatabaseConnections(db: TestDatabase, allow: boolean): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`ALTER DATABASE ${db.name} WITH ALLOW_CONNECTIONS ${allow ? 'true' : 'false'}`);
    if (!allow) await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [db.name]);
  } finally {
    await admin.end();
  }
}

/** All four services in this process (`SERVICE=all`, buildProcess), listening on a free port. */
export async function startAllInOne(options: LayoutOptions = {}): Promise<Layout> {
  const s = await shared('all', options);
  let app: FastifyInstance | undefined;
  try {
    const config = readConfig({ ...s.env, SERVICE: 'all', PORT: '0' });
    app = (await buildProcess(config)).app;
    await app.listen({ port: 0, host: '127.0.0.1' });
  } catch (err) {
    await app?.close().catch(() => undefined);
    await cleanup(s);
    throw err;
  }
  const port = (app.server.address() as { port: number }).port;
  let closed = false;
  return {
    name: 'all-in-one',
    url: `http://127.0.0.1:${port}`,
    fake: s.fake,
    redis: s.redis,
    db: s.db,
    stopTemplates: () => setDatabaseConnections(s.db, false),
    startTemplates: () => setDatabaseConnections(s.db, true),
    async terminateRouter() {
      closed = true;
      await shutdownGracefully(app!, { drainDelayMs: 0, shutdownTimeoutMs: 20_000 });
    },
    async close() {
      if (!closed) await app!.close();
      await setDatabaseConnections(s.db, true).catch(() => undefined);
      await cleanup(s);
    },
  };
}

/** One service as a child process of `node --import tsx services/main.ts`. */
export class ServiceProcess {
  child: ChildProcess | undefined;
  output = '';
  constructor(
    readonly name: string,
    readonly port: number,
    readonly env: Record<string, string>,
    /** How long a start may take to answer `/readyz` (four tsx processes at once on a busy machine are slow). */
    readonly readyTimeoutMs = 60_000,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'services/main.ts')], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, SERVICE: this.name, PORT: String(this.port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const keep = (b: Buffer) => {
      this.output = (this.output + b.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`${this.name} exited with ${child.exitCode}: ${this.output}`);
        return (await fetch(`${this.url}/readyz`)).ok;
      },
      this.readyTimeoutMs,
      `${this.name} to be ready`,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${this.output}`);
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill(signal);
    const code = await exited;
    this.child = undefined;
    return code;
  }
}

/** The four services as separate processes on free ports, wired by URL. */
export async function startMesh(): Promise<Layout> {
  const s = await shared('mesh');
  const ports = { templates: await freePort(), context: await freePort(), llm: await freePort(), router: await freePort() };
  const url = (p: number) => `http://127.0.0.1:${p}`;
  const procs = {
    templates: new ServiceProcess('templates', ports.templates, s.env),
    context: new ServiceProcess('context', ports.context, s.env),
    llm: new ServiceProcess('llm', ports.llm, s.env),
    router: new ServiceProcess('router', ports.router, {
      ...s.env,
      TEMPLATES_URL: url(ports.templates),
      CONTEXT_URL: url(ports.context),
      LLM_URL: url(ports.llm),
    }),
  };
  try {
    await Promise.all([procs.templates.start(), procs.context.start(), procs.llm.start()]);
    await procs.router.start();
  } catch (err) {
    await Promise.all(Object.values(procs).map((p) => p.stop('SIGKILL')));
    await cleanup(s);
    throw err;
  }
  return {
    name: 'mesh',
    url: procs.router.url,
    fake: s.fake,
    redis: s.redis,
    db: s.db,
    stopTemplates: async () => {
      await procs.templates.stop('SIGKILL');
    },
    startTemplates: () => procs.templates.start(),
    async terminateRouter() {
      const code = await procs.router.stop('SIGTERM');
      if (code !== 0) throw new Error(`router exited with ${code} after SIGTERM:\n${procs.router.output}`);
    },
    async close() {
      await Promise.all(Object.values(procs).map((p) => p.stop('SIGTERM')));
      await cleanup(s);
    },
  };
}
