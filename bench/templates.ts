/**
 * Templates service latency: `npx tsx bench/templates.ts` (not part of `npm test`).
 *
 * Starts `SERVICE=templates` as its own process on a free port against a scratch database,
 * seeds templates, then measures under closed-loop concurrent load (undici keep-alive pool):
 * - lookup: `GET /v1/templates/{name}` (label production)
 * - render: `POST /v1/templates/{name}/render` with variables (chat template, 2 messages)
 * - render split: the same on a label split 90/10, sticky by `session_id`
 * and, in this process, the shared syntax module the router renders from its cache with.
 * Prints a table (p50/p99 in ms, requests per second, errors). Environment:
 * BENCH_DURATION_MS (default 4000), BENCH_CONCURRENCY (default "1,16,64"), BENCH_BUNDLE=1 to run
 * the production bundle (`npm run build` first: build/service.js) instead of the sources via tsx.
 */
import { request } from 'undici';
import { compileTemplate, renderCompiled } from '../services/kit/template-syntax';
import { createTestDatabase } from '../test/support/pg';
import { deletePrefix, uniquePrefix } from '../test/support/redis';
import { runLoad, type LoadResult } from './lib/load';
import { freePort, startProcess } from './lib/procs';

const durationMs = Number(process.env.BENCH_DURATION_MS ?? 4_000);
const concurrencies = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);

const CHAT = [
  { role: 'system', content: 'You are a support agent for {{company}}. Answer in {{language}}, in at most {{max_words}} words.' },
  { role: 'user', content: 'Customer {{customer.name}} asks: {{question}}' },
];
const VARIABLES = { company: 'Acme', language: 'English', max_words: 120, 'customer.name': 'Ada', question: 'Where is my order #12345?' };

async function post(url: string, body: unknown, method: 'POST' | 'PUT' = 'POST'): Promise<void> {
  const res = await request(url, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${text}`);
}

function row(name: string, r: Pick<LoadResult, 'concurrency' | 'p50' | 'p99' | 'rps' | 'errors' | 'requests'>): string {
  return `| ${name.padEnd(22)} | ${String(r.concurrency).padStart(4)} | ${r.p50.toFixed(3).padStart(8)} | ${r.p99.toFixed(3).padStart(8)} | ${Math.round(r.rps).toString().padStart(9)} | ${String(r.requests).padStart(8)} | ${String(r.errors).padStart(6)} |`;
}

function syntaxBench(): { perRenderUs: number; rps: number } {
  const compiled = compileTemplate('chat', CHAT);
  const n = 200_000;
  for (let i = 0; i < 10_000; i++) renderCompiled(compiled, VARIABLES);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) renderCompiled(compiled, VARIABLES);
  const ns = Number(process.hrtime.bigint() - t0);
  return { perRenderUs: ns / n / 1000, rps: n / (ns / 1e9) };
}

async function main(): Promise<void> {
  const db = await createTestDatabase('bench_templates');
  const prefix = uniquePrefix('bench-templates');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const svc = await startProcess(
    'templates',
    process.execPath,
    process.env.BENCH_BUNDLE === '1' ? ['build/service.js'] : ['--import', 'tsx', 'services/main.ts'],
    { SERVICE: 'templates', PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: db.url, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'warn', DRAIN_DELAY_MS: '0' },
    `${base}/readyz`,
  );
  try {
    // 200 templates with 3 versions each, so lookups hit a realistic table, not a single row.
    for (let i = 0; i < 200; i++) {
      const name = `bench-${String(i).padStart(3, '0')}`;
      await post(`${base}/v1/templates`, { name, type: 'chat', template: CHAT });
      await post(`${base}/v1/templates/${name}/versions`, { type: 'chat', template: CHAT, labels: ['staging'] });
      await post(`${base}/v1/templates/${name}/versions`, { type: 'chat', template: CHAT });
    }
    await post(`${base}/v1/templates/bench-000/labels/production`, { versions: [{ version: 1, weight: 90 }, { version: 3, weight: 10 }] }, 'PUT');

    const lines: string[] = [];
    lines.push(`templates service (${process.env.BENCH_BUNDLE === '1' ? 'bundle' : 'tsx'}), ${durationMs} ms per run after 1 s warm-up, 200 templates x 3 versions, ${new Date().toISOString()}`);
    lines.push('| scenario               | conc |  p50 ms  |  p99 ms  |   req/s   | requests | errors |');
    lines.push('|------------------------|------|----------|----------|-----------|----------|--------|');
    for (const concurrency of concurrencies) {
      const options = { concurrency, durationMs, warmupMs: 1_000 };
      const lookup = await runLoad({ url: base, path: '/v1/templates/bench-042', method: 'GET' }, options);
      lines.push(row('lookup (label)', lookup));
      const render = await runLoad({ url: base, path: '/v1/templates/bench-042/render', body: () => JSON.stringify({ variables: VARIABLES }) }, options);
      lines.push(row('render', render));
      const split = await runLoad(
        { url: base, path: '/v1/templates/bench-000/render', body: (i) => JSON.stringify({ variables: VARIABLES, session_id: `s-${i % 1000}` }) },
        options,
      );
      lines.push(row('render (split, sticky)', split));
      for (const r of [lookup, render, split]) if (r.errorSamples.length > 0) lines.push(`  errors: ${r.errorSamples.join(' | ')}`);
    }
    const syntax = syntaxBench();
    lines.push('');
    lines.push(`in-process renderCompiled (what the router's cache does): ${syntax.perRenderUs.toFixed(2)} us per render, ${Math.round(syntax.rps)} renders/s on one core`);
    lines.push(`templates process peak RSS: ${svc.peakRssMb().toFixed(1)} MB`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await svc.stop();
    await deletePrefix(prefix);
    await db.drop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/templates: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
