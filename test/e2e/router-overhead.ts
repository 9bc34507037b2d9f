/**
 * What the router adds on the hot path, measured (not a test): `npx tsx test/e2e/router-overhead.ts`.
 *
 * Two servers in one process over real sockets, both on the kit's app (hooks, metrics, spans):
 * one whose route calls the llm core directly, and the all-in-one router (auth on, one key, no
 * rpm) in front of the same core. The built-in `echo` provider answers, so no network and no
 * provider cost blur the difference. Prints requests per second and p50/p99 at concurrency 16.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLoad } from '../../bench/lib/load';
import { createApp, readConfig } from '../../services/kit';
import type { LlmCore } from '../../services/llm/core';
import type { ChatRequest } from '../../services/openai';
import { buildProcess } from '../../services/process';
import { createTestDatabase } from '../support/pg';
import { deletePrefix, uniquePrefix } from '../support/redis';

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pm-overhead-'));
  const db = await createTestDatabase('overhead');
  const prefix = uniquePrefix('overhead');
  const keysFile = join(dir, 'keys.yaml');
  writeFileSync(keysFile, `keys:\n  - { id: k, sha256: ${createHash('sha256').update('key').digest('hex')}, scopes: [invoke] }\n`);
  const config = readConfig({ SERVICE: 'all', DATABASE_URL: db.url, API_KEYS_FILE: keysFile, LOG_LEVEL: 'warn', REDIS_KEY_PREFIX: prefix });
  const proc = await buildProcess(config);
  await proc.app.listen({ port: 0, host: '127.0.0.1' });
  const llm = proc.services.get('llm')!.core as LlmCore;
  const bare = createApp({ service: 'bare', config, logger: proc.context.logger, metrics: proc.context.metrics, tracing: proc.context.tracing });
  bare.post('/v1/chat/completions', async (request, reply) => reply.send((await llm.complete(request.body as ChatRequest)).completion));
  await bare.listen({ port: 0, host: '127.0.0.1' });
  const port = (app: typeof bare) => (app.server.address() as { port: number }).port;
  const body = (i: number) => JSON.stringify({ model: 'echo', messages: [{ role: 'user', content: `Say something about ${i}` }] });
  try {
    for (let round = 1; round <= 3; round++) {
      const direct = await runLoad(
        { url: `http://127.0.0.1:${port(bare)}`, path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body },
        { concurrency: 16, durationMs: 3_000, warmupMs: 1_000 },
      );
      const routed = await runLoad(
        { url: `http://127.0.0.1:${port(proc.app)}`, path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: 'Bearer key' }, body },
        { concurrency: 16, durationMs: 3_000, warmupMs: 1_000 },
      );
      const row = (r: typeof direct) => `${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  errors ${r.errors}`;
      process.stdout.write(`round ${round}\n  kit + llm core directly: ${row(direct)}\n  through the router:      ${row(routed)}\n`);
    }
  } finally {
    await bare.close();
    await proc.app.close();
    await db.drop();
    await deletePrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
