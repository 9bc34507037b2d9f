/**
 * `npm run bench:embeddings`: embeddings throughput (req/s) of promptmesh beside the fake
 * provider called directly (the limit) and the Portkey gateway, at each concurrency, on
 * loopback. Self-contained (its own fake provider, Portkey and promptmesh processes) so the
 * main benchmark can call {@link runEmbeddingsBench} as one more section.
 *
 * The request: two texts, `encoding_format: float` (Portkey drops `base64` on the provider it
 * can use here, so every row returns JSON floats); the fake answers 1536 dimensions. Every request's input is
 * new, so promptmesh's cache misses (a hit is a different figure: the `pm-hit` row).
 *
 * Options: --duration <ms> (default 8000), --warmup <ms> (default 2000), --concurrency 16,64,
 * --no-build (reuse build/service.js), --out <dir> (default bench/results).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createTestDatabase } from '../test/support/pg';
import { deletePrefix, TEST_REDIS_URL } from '../test/support/redis';
import { runLoad, type LoadResult, type LoadTarget } from './lib/load';
import { freePort, startProcess, type BenchProcess } from './lib/procs';

const ROOT = resolve(__dirname, '..');
const PROVIDER_MODEL = 'text-embedding-3-small';
/** The image's memory settings, as bench/run.ts uses them (keep identical to the Dockerfile). */
const IMAGE_NODE_OPTIONS = '--max-semi-space-size=8 --max-old-space-size=112';
const IMAGE_MALLOC_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '131072' };

/** Options of {@link runEmbeddingsBench}. */
export interface EmbeddingsBenchOptions {
  /** Measured time per run. @default 8000 */
  durationMs?: number;
  /** Unmeasured time before each run. @default 2000 */
  warmupMs?: number;
  /** Concurrencies to measure at. @default [16, 64] */
  concurrencies?: number[];
  /** Build the production bundle first (else reuse build/service.js). @default true */
  build?: boolean;
}

/** One measured row: a scenario at one concurrency. */
export interface EmbeddingsBenchRow {
  scenario: 'direct' | 'portkey' | 'pm' | 'pm-hit';
  label: string;
  result: LoadResult;
}

/** The whole run: rows, and promptmesh's req/s over Portkey's at each concurrency. */
export interface EmbeddingsBenchResult {
  rows: EmbeddingsBenchRow[];
  /** `pm` req/s divided by `portkey` req/s, per concurrency (absent without Portkey). */
  vsPortkey: Record<number, number>;
  /** Markdown table of the rows. */
  markdown: string;
}

/** Starts the processes, measures every scenario at every concurrency, and stops them. */
export async function runEmbeddingsBench(options: EmbeddingsBenchOptions = {}): Promise<EmbeddingsBenchResult> {
  const durationMs = options.durationMs ?? 8000;
  const warmupMs = options.warmupMs ?? 2000;
  const concurrencies = options.concurrencies ?? [16, 64];
  const fakeKey = `sk-fake-${randomBytes(8).toString('hex')}`;
  const apiKey = `pm-bench-${randomBytes(12).toString('hex')}`;
  const work = mkdtempSync(join(tmpdir(), 'pm-bench-emb-'));
  const prefix = `pmbench-emb:${randomBytes(4).toString('hex')}:`;
  const db = await createTestDatabase('bench_emb');
  const processes: BenchProcess[] = [];
  const started = async (p: Promise<BenchProcess>) => {
    const proc = await p;
    processes.push(proc);
    return proc;
  };
  try {
    const fakePort = await freePort();
    const fakeUrl = `http://127.0.0.1:${fakePort}`;
    await started(
      startProcess('fake-provider', process.execPath, ['--import', 'tsx', join(ROOT, 'test/fake-provider/main.ts'), '--port', String(fakePort), '--api-key', fakeKey, '--record', '0'], {}, `${fakeUrl}/v1/models`),
    );
    const portkeyPort = await freePort();
    const portkeyEntry = join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js');
    const portkey = existsSync(portkeyEntry)
      ? await started(startProcess('portkey-gateway', process.execPath, [portkeyEntry, '--headless', `--port=${portkeyPort}`], {}, `http://127.0.0.1:${portkeyPort}/`))
      : undefined;

    const providersFile = join(work, 'providers.yaml');
    writeFileSync(
      providersFile,
      [
        'providers:',
        `  - { name: fake-openai, type: openai, baseUrl: ${fakeUrl}/v1, apiKeyEnv: BENCH_FAKE_KEY, timeoutMs: 30000, prices: { ${PROVIDER_MODEL}: { input: 0.02, output: 0 } } }`,
        'models:',
        '  embed:',
        `    - { provider: fake-openai, model: ${PROVIDER_MODEL} }`,
        'routing: { strategy: weighted, fallback: true, retries: { attempts: 2, backoffMs: 100 } }',
        'cache: { enabled: true, ttlSeconds: 3600 }',
        '',
      ].join('\n'),
    );
    const keysFile = join(work, 'keys.yaml');
    writeFileSync(keysFile, `keys:\n  - { id: bench, sha256: ${createHash('sha256').update(apiKey).digest('hex')}, scopes: [invoke] }\n`);
    if (options.build !== false) execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/build.ts'), '--bundle-only'], { cwd: ROOT, stdio: 'inherit' });
    const entry = join(ROOT, 'build/service.js');
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build -- --bundle-only`);
    const pmPort = await freePort();
    const pmUrl = `http://127.0.0.1:${pmPort}`;
    await started(
      startProcess(
        'promptmesh all-in-one',
        process.execPath,
        ['--enable-source-maps', entry],
        {
          NODE_ENV: 'production',
          NODE_OPTIONS: IMAGE_NODE_OPTIONS,
          ...IMAGE_MALLOC_ENV,
          SERVICE: 'all',
          PORT: String(pmPort),
          DATABASE_URL: db.url,
          REDIS_URL: TEST_REDIS_URL,
          REDIS_KEY_PREFIX: prefix,
          PROVIDERS_FILE: providersFile,
          API_KEYS_FILE: keysFile,
          BENCH_FAKE_KEY: fakeKey,
          LOG_LEVEL: 'warn',
          HOST: '127.0.0.1',
          DRAIN_DELAY_MS: '0',
        },
        `${pmUrl}/readyz`,
      ),
    );

    // New texts for every request of every run: the cache misses, as for a corpus being indexed.
    const body = (model: string) => {
      const run = randomBytes(4).toString('hex');
      return (i: number) => JSON.stringify({ model, input: [`Chunk ${run}-${i} of a document being indexed.`, `Another passage, ${i}, ${run}.`], encoding_format: 'float' });
    };
    const hit = JSON.stringify({ model: 'embed', input: ['The same passage every time.'], encoding_format: 'float' });
    const scenarios: Array<{ id: EmbeddingsBenchRow['scenario']; label: string; target: () => LoadTarget }> = [
      { id: 'direct', label: 'fake provider, direct', target: () => ({ url: fakeUrl, path: '/v1/embeddings', headers: { authorization: `Bearer ${fakeKey}` }, body: body(PROVIDER_MODEL) }) },
      ...(portkey
        ? [
            {
              id: 'portkey' as const,
              label: 'Portkey gateway',
              target: () => ({
                url: `http://127.0.0.1:${portkeyPort}`,
                path: '/v1/embeddings',
                // Portkey's `openai` provider fails every embeddings call here ("TypeError: immutable":
                // it appends headers to the upstream fetch Response); its `fireworks-ai` provider
                // speaks the same OpenAI wire format and works.
                headers: { authorization: `Bearer ${fakeKey}`, 'x-portkey-provider': 'fireworks-ai', 'x-portkey-custom-host': `${fakeUrl}/v1` },
                body: body(PROVIDER_MODEL),
              }),
            },
          ]
        : []),
      { id: 'pm', label: 'promptmesh all-in-one (cache miss)', target: () => ({ url: pmUrl, path: '/v1/embeddings', headers: { authorization: `Bearer ${apiKey}` }, body: body('embed') }) },
      { id: 'pm-hit', label: 'promptmesh all-in-one (cache hit)', target: () => ({ url: pmUrl, path: '/v1/embeddings', headers: { authorization: `Bearer ${apiKey}` }, body: () => hit }) },
    ];

    const rows: EmbeddingsBenchRow[] = [];
    for (const concurrency of concurrencies) {
      for (const s of scenarios) {
        const result = await runLoad(s.target(), { concurrency, durationMs, warmupMs });
        rows.push({ scenario: s.id, label: s.label, result });
        process.stdout.write(`embeddings c=${String(concurrency).padStart(3)} ${s.label.padEnd(36)} ${result.rps.toFixed(0).padStart(7)} req/s  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  errors ${result.errors}${result.errorSamples.length ? `  (${result.errorSamples[0]})` : ''}\n`);
      }
    }
    const vsPortkey: Record<number, number> = {};
    for (const c of concurrencies) {
      const pk = rows.find((r) => r.scenario === 'portkey' && r.result.concurrency === c)?.result;
      const pm = rows.find((r) => r.scenario === 'pm' && r.result.concurrency === c)?.result;
      if (pk && pm && pk.rps > 0) vsPortkey[c] = pm.rps / pk.rps;
    }
    const markdown = [
      `Embeddings (2 texts per request, 1536 dimensions, floats), ${durationMs} ms per run after ${warmupMs} ms warm-up, ${cpus().length} cores shared by everything:`,
      '',
      '| scenario | concurrency | req/s | p50 ms | p99 ms | errors |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows.map((r) => `| ${r.label} | ${r.result.concurrency} | ${r.result.rps.toFixed(0)} | ${r.result.p50.toFixed(2)} | ${r.result.p99.toFixed(2)} | ${r.result.errors} |`),
      '',
      ...Object.entries(vsPortkey).map(([c, x]) => `promptmesh / Portkey at concurrency ${c}: ${x.toFixed(2)}x`),
      '',
    ].join('\n');
    return { rows, vsPortkey, markdown };
  } finally {
    for (const p of processes.reverse()) await p.stop().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await deletePrefix(prefix).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '8000' },
      warmup: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '16,64' },
      'no-build': { type: 'boolean', default: false },
      out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    },
  });
  const result = await runEmbeddingsBench({
    durationMs: Number(values.duration),
    warmupMs: Number(values.warmup),
    concurrencies: values.concurrency!.split(',').map(Number),
    build: !values['no-build'],
  });
  mkdirSync(values.out!, { recursive: true });
  const file = join(values.out!, `embeddings-${new Date().toISOString().slice(0, 10)}.md`);
  writeFileSync(file, `# promptmesh embeddings benchmark\n\n${result.markdown}`);
  process.stdout.write(`\n${result.markdown}\nwrote ${file}\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`embeddings bench failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
