/**
 * The processes the hardening suites run against, built with the same `buildProcess` the entry
 * point uses and listening on real sockets: all four services in one process with auth on
 * (`SERVICE=all`), templates, context and llm each alone, and a router alone (`SERVICE=router`,
 * auth on) that reaches those three over HTTP. They share one test database and one Redis key
 * prefix; no providers file, so llm serves its built-in `echo` provider.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyPluginAsync, type RouteOptions } from 'fastify';
import type { ServiceName } from '../../contracts';
import { readConfig } from '../../services/kit';
import { buildProcess, type PromptmeshProcess } from '../../services/process';
import { hashApiKey } from '../../services/router/auth';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { deletePrefix, uniquePrefix } from '../support/redis';

/** The admin key of the keys file the routers read (scopes invoke and admin). */
export const ADMIN_KEY = 'pm-hardening-admin-key';
/** Its id in the keys file (the router stores its sessions under `<id>:<session>`). */
export const ADMIN_KEY_ID = 'hardening-admin';
/** A key with the `invoke` scope only. */
export const INVOKE_ONLY_KEY = 'pm-hardening-invoke-only-key';
/** A key with the `admin` scope only. */
export const ADMIN_ONLY_KEY = 'pm-hardening-admin-only-key';

/** One running process under test. */
export interface Target {
  /** `all`, `templates`, `context`, `llm` or `router` (alone, mesh layout). */
  name: 'all' | ServiceName;
  url: string;
  /** Headers every request carries (the admin key where auth is on). */
  headers: Record<string, string>;
  proc: PromptmeshProcess;
  /** Routes this process serves, with their schemas (see {@link collectRoutes}). */
  routes: RouteInfo[];
}

/** One route as registered: method, URL pattern and schema. */
export interface RouteInfo {
  method: string;
  url: string;
  schema: RouteOptions['schema'];
  /** The route needs no key (`config: { public: true }`, e.g. the console's static assets). */
  public?: boolean;
}

/** Everything the suite started; `close()` stops it all and removes the database and keys. */
export interface Targets {
  all: Target;
  templates: Target;
  context: Target;
  llm: Target;
  router: Target;
  db: TestDatabase;
  prefix: string;
  close(): Promise<void>;
}

/**
 * The routes a service plugin registers, read by registering the same plugin into a scratch
 * Fastify instance with an `onRoute` hook. New routes (and their schemas) are picked up without
 * touching the suite.
 */
export async function collectRoutes(plugin: FastifyPluginAsync): Promise<RouteInfo[]> {
  const scratch = Fastify({ logger: false });
  // Only the schemas are wanted; compiling them here would only repeat ajv's warnings.
  scratch.setValidatorCompiler(() => () => true);
  const out: RouteInfo[] = [];
  scratch.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      const isPublic = (route.config as { public?: boolean } | undefined)?.public === true;
      out.push({ method, url: route.url, schema: route.schema, ...(isPublic ? { public: true } : {}) });
    }
  });
  await scratch.register(plugin);
  await scratch.ready();
  await scratch.close();
  const seen = new Set<string>();
  return out.filter((r) => {
    const key = `${r.method} ${r.url}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function start(env: Record<string, string>, name: Target['name'], headers: Record<string, string>): Promise<Target> {
  const proc = await buildProcess(readConfig(env));
  await proc.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (proc.app.server.address() as { port: number }).port;
  // The public routes of a process: in `all` mode the router's (which include the templates
  // and sessions APIs), otherwise the one service's.
  const owner = proc.services.get(name === 'all' ? 'router' : name)!;
  return { name, url: `http://127.0.0.1:${port}`, headers, proc, routes: await collectRoutes(owner.routes) };
}

/** Where the processes reach PostgreSQL and Redis, when not directly (e.g. through a relay a test can cut). */
export interface TargetOptions {
  /** The port DATABASE_URL points at instead of the test server's. @default the test server's */
  databasePort?: number;
  /** REDIS_URL. @default the test Redis */
  redisUrl?: string;
}

/** Starts the five processes (see the module comment). */
export async function startTargets(options: TargetOptions = {}): Promise<Targets> {
  const dir = mkdtempSync(join(tmpdir(), 'pm-hardening-'));
  const keysFile = join(dir, 'keys.yaml');
  writeFileSync(
    keysFile,
    `keys:\n  - { id: ${ADMIN_KEY_ID}, sha256: ${hashApiKey(ADMIN_KEY)}, scopes: [invoke, admin] }\n` +
      `  - { id: hardening-invoke, sha256: ${hashApiKey(INVOKE_ONLY_KEY)}, scopes: [invoke] }\n` +
      `  - { id: hardening-admin-only, sha256: ${hashApiKey(ADMIN_ONLY_KEY)}, scopes: [admin] }\n`,
  );
  const db = await createTestDatabase('hardening');
  const prefix = uniquePrefix('hardening');
  const dbUrl = new URL(db.url);
  if (options.databasePort) dbUrl.port = String(options.databasePort);
  const base: Record<string, string> = { DATABASE_URL: dbUrl.toString(), REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'silent', HOST: '127.0.0.1', PORT: '0', DRAIN_DELAY_MS: '0' };
  if (options.redisUrl) base.REDIS_URL = options.redisUrl;
  const auth = { authorization: `Bearer ${ADMIN_KEY}` };
  const started: Target[] = [];
  const close = async () => {
    for (const t of started.reverse()) await t.proc.app.close().catch(() => undefined);
    await deletePrefix(prefix).catch(() => undefined);
    await db.drop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const templates = await start({ ...base, SERVICE: 'templates' }, 'templates', {});
    started.push(templates);
    const context = await start({ ...base, SERVICE: 'context' }, 'context', {});
    started.push(context);
    const llm = await start({ ...base, SERVICE: 'llm' }, 'llm', {});
    started.push(llm);
    const all = await start({ ...base, SERVICE: 'all', API_KEYS_FILE: keysFile }, 'all', auth);
    started.push(all);
    const routerEnv = { ...base, SERVICE: 'router', API_KEYS_FILE: keysFile, TEMPLATES_URL: templates.url, CONTEXT_URL: context.url, LLM_URL: llm.url };
    const router = await start(routerEnv, 'router', auth);
    started.push(router);
    // The mesh router proxies /v1/templates/** and /v1/sessions/** with wildcards; sweep it with
    // the concrete routes (and schemas) of the same APIs as the all-in-one router serves them.
    router.routes = all.routes;
    return { all, templates, context, llm, router, db, prefix, close };
  } catch (err) {
    await close();
    throw err;
  }
}
