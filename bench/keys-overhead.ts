/**
 * What virtual keys, limits and budgets add to a plain completion (issue 14, item 7), measured
 * in one run: `npm run bench:keys` (options: --duration ms, --warmup ms, --rate req/s,
 * --concurrency n, --rounds n, --out dir), and as the `pm-keys` scenario of `npm run bench`
 * (`npm run bench -- --only pm-keys`), whose targets table reports it.
 *
 * Three promptmesh processes (`SERVICE=all`), one per target, and one fake provider process, all
 * on loopback, sharing PostgreSQL and Redis:
 * - `off`: authentication off: no key lookup, no limits, no budget, no ledger (the baseline);
 * - `on`: authentication on, requests with a virtual key that has rpm, tpm, max_concurrent, a
 *   budget and a team with its own budget and rpm, so every check runs on every request: the key
 *   lookup, the admission (key and team rpm, budgets, concurrency: one script), two tpm
 *   reservations in llm, the charge and the ledger row;
 * - `file`: authentication on, requests with a keys-file key without limits (the lookup and the
 *   ledger only).
 * Requests are paced (a fixed schedule below saturation, latency measured from each request's
 * scheduled start) and interleaved: request i goes to target i mod 3, from the same workers, so
 * the three are measured at the same moments under the same load from elsewhere (on a shared
 * machine that moves runs made one after the other by more than what is measured). Each round
 * is one such run; the report gives each target's p50 and p99 (median over rounds) and what
 * `on` and `file` add to `off` (median of the per-round differences).
 *
 * `measureKeysOverhead()` is what the main benchmark (bench/run.ts) can call; run alone, this
 * file writes bench/results/keys-overhead-<date>.json and .md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { hashApiKey } from '../services/router/auth';
import { createTestDatabase } from '../test/support/pg';
import { TEST_REDIS_URL, deletePrefix } from '../test/support/redis';
import { runLoadInterleaved, type LoadResult } from './lib/load';
import { freePort, startProcess, type BenchProcess } from './lib/procs';

const ROOT = resolve(__dirname, '..');

/** Options of {@link measureKeysOverhead}. */
export interface KeysOverheadOptions {
  /** Measured time per round (the three targets together). @default 4000 */
  durationMs?: number;
  /** Unmeasured time before each round. @default 1000 */
  warmupMs?: number;
  /** Requests per second, paced, over the three targets together. @default 150 */
  rate?: number;
  /** Connections (workers) of the load generator. @default 8 */
  concurrency?: number;
  /** Rounds; each is one interleaved run over the three targets. @default 5 */
  rounds?: number;
  /**
   * How promptmesh is started: the node arguments before none (the entry point and flags).
   * @default ['--import', 'tsx', 'services/main.ts'] (bench/run.ts passes its bundle and image flags)
   */
  promptmeshArgs?: string[];
  /** Extra environment of the promptmesh processes (the image's NODE_OPTIONS, ...). @default none */
  promptmeshEnv?: Record<string, string>;
  /** Progress lines. @default stdout */
  log?: (line: string) => void;
}

/** One target's figures: the median over rounds of each round's percentiles. */
export interface KeysOverheadRow {
  target: 'off' | 'file' | 'on';
  label: string;
  p50: number;
  p99: number;
  rps: number;
  requests: number;
  errors: number;
  errorSamples: string[];
  rounds: Array<Pick<LoadResult, 'p50' | 'p99' | 'rps' | 'requests' | 'errors'>>;
}

/** The result: the rows and what each adds to `off`. */
export interface KeysOverheadResult {
  date: string;
  rate: number;
  concurrency: number;
  durationMs: number;
  rounds: number;
  rows: KeysOverheadRow[];
  /** The 1-minute load average of the machine when the measurement started and ended. */
  loadAverage: { start: number; end: number };
  /** Milliseconds added at p50 and p99 (median of the per-round differences). */
  added: { file: { p50: number; p99: number }; on: { p50: number; p99: number } };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Runs the measurement (see the module comment). */
export async function measureKeysOverhead(options: KeysOverheadOptions = {}): Promise<KeysOverheadResult> {
  const durationMs = options.durationMs ?? 4_000;
  const warmupMs = options.warmupMs ?? 1_000;
  const rate = options.rate ?? 150;
  const concurrency = options.concurrency ?? 8;
  const rounds = options.rounds ?? 5;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const promptmeshArgs = options.promptmeshArgs ?? ['--import', 'tsx', join(ROOT, 'services/main.ts')];

  const work = mkdtempSync(join(tmpdir(), 'pm-bench-keys-'));
  const db = await createTestDatabase('bench_keys');
  const prefix = `pmbench:keys:${randomBytes(4).toString('hex')}:`;
  const procs: BenchProcess[] = [];
  try {
    const fakePort = await freePort();
    const fakeUrl = `http://127.0.0.1:${fakePort}`;
    procs.push(
      await startProcess('fake-provider', process.execPath, ['--import', 'tsx', join(ROOT, 'test/fake-provider/main.ts'), '--port', String(fakePort), '--record', '0'], {}, `${fakeUrl}/v1/models`),
    );
    const providersFile = join(work, 'providers.yaml');
    writeFileSync(
      providersFile,
      [
        'providers:',
        '  - name: fake',
        '    type: openai-compatible',
        `    baseUrl: ${fakeUrl}/v1`,
        '    timeoutMs: 30000',
        '    models: [gpt-4o-mini]',
        '    prices: { gpt-4o-mini: { input: 0.15, output: 0.60 } }',
        'models:',
        '  chat: [{ provider: fake, model: gpt-4o-mini }]',
        'cache: { enabled: false }',
        '',
      ].join('\n'),
    );
    const adminKey = `pm-bench-admin-${randomBytes(8).toString('hex')}`;
    const fileKey = `pm-bench-file-${randomBytes(8).toString('hex')}`;
    const keysFile = join(work, 'keys.yaml');
    writeFileSync(keysFile, `keys:\n  - { id: bench-admin, sha256: ${hashApiKey(adminKey)}, scopes: [invoke, admin] }\n  - { id: bench-file, sha256: ${hashApiKey(fileKey)}, scopes: [invoke] }\n`);
    const env = {
      ...(options.promptmeshEnv ?? {}),
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      PROVIDERS_FILE: providersFile,
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      DRAIN_DELAY_MS: '0',
      SERVICE: 'all',
    };
    const offPort = await freePort();
    const filePort = await freePort();
    const onPort = await freePort();
    // One process per target: interleaved, each serves a third of the requests, so none queues
    // behind another target's work.
    procs.push(await startProcess('promptmesh (auth off)', process.execPath, promptmeshArgs, { ...env, PORT: String(offPort) }, `http://127.0.0.1:${offPort}/readyz`));
    procs.push(
      await startProcess('promptmesh (keys on, file key)', process.execPath, promptmeshArgs, { ...env, PORT: String(filePort), API_KEYS_FILE: keysFile }, `http://127.0.0.1:${filePort}/readyz`),
    );
    procs.push(
      await startProcess('promptmesh (keys on)', process.execPath, promptmeshArgs, { ...env, PORT: String(onPort), API_KEYS_FILE: keysFile }, `http://127.0.0.1:${onPort}/readyz`),
    );
    const onUrl = `http://127.0.0.1:${onPort}`;
    const admin = async (method: string, path: string, body: unknown) => {
      const res = await fetch(`${onUrl}${path}`, { method, headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = (await res.json()) as Record<string, unknown>;
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    // Limits far above the load, so every check runs and none refuses.
    await admin('PUT', '/v1/teams/bench', { name: 'Bench', budget: { usd: 1_000_000, period: 'month' }, rpm: 1_000_000, tpm: 10_000_000_000 });
    const virtual = await admin('POST', '/v1/keys', {
      name: 'bench',
      scopes: ['invoke'],
      rpm: 1_000_000,
      tpm: 10_000_000_000,
      max_concurrent: 10_000,
      budget: { usd: 1_000_000, period: 'day' },
      team: 'bench',
    });

    const body = (i: number) => JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: `Say something about ${i % 100}` }] });
    const targets: Array<{ target: 'off' | 'file' | 'on'; label: string; url: string; headers: Record<string, string> }> = [
      { target: 'off' as const, label: 'auth off (no key, no limits, no budget, no ledger)', url: `http://127.0.0.1:${offPort}`, headers: {} },
      { target: 'file' as const, label: 'keys-file key, no limits (lookup + ledger)', url: `http://127.0.0.1:${filePort}`, headers: { authorization: `Bearer ${fileKey}` } },
      { target: 'on' as const, label: 'virtual key: rpm, tpm, max_concurrent, budget, team budget and rpm', url: onUrl, headers: { authorization: `Bearer ${virtual.key as string}` } },
    ];
    const per = new Map<string, LoadResult[]>(targets.map((t) => [t.target, []]));
    const startLoad = loadavg()[0]!;
    for (let round = 0; round < rounds; round++) {
      // Each round starts the order at another target, so none is always the one sent first.
      const order = [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)];
      const results = await runLoadInterleaved(
        order.map((t) => ({ url: t.url, path: '/v1/chat/completions', headers: t.headers, body })),
        { concurrency, durationMs, warmupMs, rate },
      );
      order.forEach((t, i) => per.get(t.target)!.push(results[i]!));
      for (const t of targets) {
        const r = per.get(t.target)!.at(-1)!;
        log(`round ${round + 1} ${t.target.padEnd(4)} p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  ${r.rps.toFixed(0)} req/s  errors ${r.errors}  load ${loadavg()[0]!.toFixed(2)}`);
      }
    }
    const endLoad = loadavg()[0]!;
    const rows: KeysOverheadRow[] = targets.map((t) => {
      const rs = per.get(t.target)!;
      return {
        target: t.target,
        label: t.label,
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        rps: median(rs.map((r) => r.rps)),
        requests: rs.reduce((s, r) => s + r.requests, 0),
        errors: rs.reduce((s, r) => s + r.errors, 0),
        errorSamples: rs.flatMap((r) => r.errorSamples).slice(0, 5),
        rounds: rs.map(({ p50, p99, rps, requests, errors }) => ({ p50, p99, rps, requests, errors })),
      };
    });
    const diff = (t: 'file' | 'on', p: 'p50' | 'p99') => median(per.get(t)!.map((r, i) => r[p] - per.get('off')![i]![p]));
    return {
      date: new Date().toISOString(),
      rate,
      concurrency,
      durationMs,
      rounds,
      rows,
      loadAverage: { start: startLoad, end: endLoad },
      added: { file: { p50: diff('file', 'p50'), p99: diff('file', 'p99') }, on: { p50: diff('on', 'p50'), p99: diff('on', 'p99') } },
    };
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    await deletePrefix(prefix).catch(() => undefined);
    await db.drop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

/** The result as a Markdown page. */
export function keysOverheadMarkdown(r: KeysOverheadResult): string {
  const ms = (n: number) => `${n.toFixed(3)} ms`;
  return [
    `# Keys, limits and budget overhead (${r.date.slice(0, 10)})`,
    '',
    `Paced at ${r.rate} req/s over the three targets, interleaved request by request, ${r.concurrency} connections, ${r.durationMs} ms per round, ${r.rounds} rounds; median over rounds. ` +
      `Machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, load average (1 min) ${r.loadAverage.start.toFixed(2)} at the start, ${r.loadAverage.end.toFixed(2)} at the end. ` +
      `Command: \`npm run bench:keys -- --rate ${r.rate} --concurrency ${r.concurrency} --duration ${r.durationMs} --rounds ${r.rounds}\`.`,
    '',
    '| target | p50 | p99 | req/s | requests | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...r.rows.map((row) => `| ${row.label} | ${ms(row.p50)} | ${ms(row.p99)} | ${row.rps.toFixed(0)} | ${row.requests} | ${row.errors} |`),
    '',
    `Added to auth off (median of the per-round differences): keys-file key p50 ${ms(r.added.file.p50)}, p99 ${ms(r.added.file.p99)}; ` +
      `virtual key with every limit and budget p50 ${ms(r.added.on.p50)}, p99 ${ms(r.added.on.p99)} (target: at most 0.2 ms at p50).`,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '4000' },
      warmup: { type: 'string', default: '1000' },
      rate: { type: 'string', default: '150' },
      concurrency: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '5' },
      out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    },
  });
  const result = await measureKeysOverhead({
    durationMs: Number(values.duration),
    warmupMs: Number(values.warmup),
    rate: Number(values.rate),
    concurrency: Number(values.concurrency),
    rounds: Number(values.rounds),
  });
  mkdirSync(values.out!, { recursive: true });
  const base = join(values.out!, `keys-overhead-${result.date.slice(0, 10)}`);
  writeFileSync(`${base}.json`, JSON.stringify(result, null, 2));
  writeFileSync(`${base}.md`, keysOverheadMarkdown(result));
  process.stdout.write(`\n${keysOverheadMarkdown(result)}\nwritten: ${base}.md, ${base}.json\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:keys failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
