/**
 * Test helpers for the templates service: a real service on a real socket, against a database
 * and a Redis prefix of the test's own, removed by `close()`.
 */
import { request } from 'undici';
import { readConfig } from '../../services/kit/config';
import { buildProcess, type PromptmeshProcess } from '../../services/process';
import { createTestDatabase, type TestDatabase } from './pg';
import { deletePrefix, uniquePrefix } from './redis';
import type { TemplatesCore } from '../../services/templates/types';

/** A running templates service. */
export interface RunningTemplates {
  /** `http://127.0.0.1:<port>` */
  url: string;
  core: TemplatesCore;
  process: PromptmeshProcess;
  db: TestDatabase;
  prefix: string;
  /** Stops the service; with `keepDatabase` the database survives for a restart. */
  close(options?: { keepDatabase?: boolean }): Promise<void>;
}

/** Starts `SERVICE=templates` through the real entry-point wiring, listening on a free port. */
export async function startTemplates(
  options: { db?: TestDatabase; label?: string; env?: Record<string, string> } = {},
): Promise<RunningTemplates> {
  const db = options.db ?? (await createTestDatabase(options.label ?? 'templates'));
  const prefix = uniquePrefix(options.label ?? 'templates');
  const config = readConfig({
    SERVICE: 'templates',
    DATABASE_URL: db.url,
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
    DRAIN_DELAY_MS: '0',
    ...options.env,
  });
  const proc = await buildProcess(config);
  const address = await proc.app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url: address,
    core: proc.services.get('templates')!.core as TemplatesCore,
    process: proc,
    db,
    prefix,
    async close(closeOptions = {}) {
      await proc.app.close();
      await deletePrefix(prefix);
      if (!closeOptions.keepDatabase) await db.drop();
    },
  };
}

/** Calls a templates API over HTTP and returns the JSON answer; throws on a non-2xx status. */
export async function callTemplates(baseUrl: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await request(`${baseUrl}${path}`, {
    method: method as 'GET',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.body.json();
  if (res.statusCode >= 300) throw new Error(`${method} ${path} answered ${res.statusCode}: ${JSON.stringify(json)}`);
  return json;
}
