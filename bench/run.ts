/**
 * `npm run bench`: promptmesh side by side with the fake provider called directly (the limit)
 * and the Portkey gateway, on loopback, in one run. Writes bench/results/<date>.md, .json and
 * a latency chart (.svg), with `--cpu-prof` a CPU profile summary per promptmesh scenario
 * (<date>-profile.md), then runs the reliability benchmark.
 *
 * Process layout: the orchestrator (this file) only starts processes and writes the report.
 * Every scenario gets a fresh fake provider and a fresh system under test (Portkey, promptmesh
 * all-in-one or the four promptmesh processes), stopped when its runs are over, and every run
 * (one concurrency or the paced run) is sent by a fresh load generator process
 * (bench/lib/load-worker.ts). Nothing a scenario leaves behind (heap, JIT state, connections,
 * sockets in TIME_WAIT aside) can slow the next one.
 *
 * Options: --duration <ms> (measured time per run, default 8000), --warmup <ms> (default 2000),
 * --concurrency 16,64, --rate <req/s for the paced latency runs> (default 500),
 * --only <scenario or group,...> (a group: `chat` or `embeddings`; the report is then written as
 * <date>-<names>.md, so a partial run never overwrites the day's full report; pm-keys alone:
 * `npm run bench -- --only pm-keys --no-reliability`), --keys-rate <req/s of the pm-keys
 * scenario, over its three targets> (default bench/keys-overhead.ts's), --cpu-prof
 * (write V8 CPU profiles of the promptmesh processes into bench/results/profiles/ and their
 * summary into <date>-profile.md), --no-reliability,
 * --no-build (reuse build/service.js), --node-options <flags> (instead of the image's, for
 * experiments), --source-maps (promptmesh with --enable-source-maps, for experiments),
 * --bundle <file> (another build's service.js, for before/after comparisons; no
 * build), --out <dir>.
 *
 * promptmesh runs from the production bundle (build/service.js, built first) with the image's
 * NODE_OPTIONS, so the figures are those of the containers.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createTestDatabase } from '../test/support/pg';
import { deletePrefix, TEST_REDIS_URL } from '../test/support/redis';
import type { BodySpec } from './lib/bodies';
import { EMBEDDINGS_BATCH, SESSION_TURNS } from './lib/bodies';
import { runLoadInChild, type LoadTargetSpec } from './lib/load-process';
import { freePort, startProcess, type BenchProcess } from './lib/procs';
import { latencyChartSvg, markdownReport, type BenchRow, type RatioRow, type RssRow, type TargetRow } from './lib/report';
import { evaluateTargets } from './lib/targets';
import { keysOverheadMarkdown, measureKeysOverhead, type KeysOverheadResult } from './keys-overhead';
import { summarise } from './profile-summary';

const ROOT = resolve(__dirname, '..');

/**
 * The image's memory settings (Dockerfile `NODE_OPTIONS` and `MALLOC_*`; keep them identical),
 * plus the old space the published figures were measured with. The image itself sizes the old
 * space from the container limit (build/entrypoint.sh: 144 MiB at 256Mi), docs/bench.md.
 */
const IMAGE_NODE_OPTIONS = '--max-semi-space-size=8 --max-old-space-size=112';
const IMAGE_MALLOC_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '131072' };

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '8000' },
    warmup: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16,64' },
    rate: { type: 'string', default: '500' },
    'keys-rate': { type: 'string' },
    only: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'no-reliability': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'node-options': { type: 'string' },
    bundle: { type: 'string' },
    'source-maps': { type: 'boolean', default: false },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
  },
});

const durationMs = Number(opts.duration);
const warmupMs = Number(opts.warmup);
const concurrencies = opts.concurrency!.split(',').map(Number);
const pacedRate = Number(opts.rate);
const only = opts.only ? new Set(opts.only.split(',')) : undefined;

const PROVIDER_MODEL = 'gpt-4o-mini';
const EMBEDDINGS_MODEL = 'text-embedding-3-small';
const FAKE_KEY = `sk-fake-${randomBytes(8).toString('hex')}`;
const API_KEY = `pm-bench-${randomBytes(12).toString('hex')}`;
const PROMPT_NAME = 'bench-prompt';

/** Which system a scenario measures. */
type System = 'direct' | 'portkey' | 'pm-all' | 'pm-mesh' | 'pm-keys';

/** What a scenario's requests are: chat completions, or embeddings (`--only` takes a group too). */
type Group = 'chat' | 'embeddings';

interface Scenario {
  id: string;
  label: string;
  system: System;
  group: Group;
  /** A fresh body family per run (a new run id keeps sessions apart). */
  body: () => BodySpec;
  /** The request path. @default '/v1/chat/completions' */
  path?: string;
  /** Also a paced run (the latency a hop adds below saturation). @default true */
  paced?: boolean;
  /**
   * Portkey's `x-portkey-provider` (with `x-portkey-custom-host` at the fake provider).
   * @default 'openai'
   */
  portkeyProvider?: string;
}

/** A running system under test: where the load goes, and its processes. */
interface RunningSystem {
  url: string;
  headers: Record<string, string>;
  processes: BenchProcess[];
}

const runId = () => randomBytes(4).toString('hex');
const embeddings = (model: string): BodySpec => ({ kind: 'embeddings', model, run: runId(), texts: EMBEDDINGS_BATCH });
const SCENARIOS: Scenario[] = [
  { id: 'direct', label: '1 fake provider, direct', system: 'direct', group: 'chat', body: () => ({ kind: 'plain', model: PROVIDER_MODEL }) },
  { id: 'portkey', label: '2 Portkey gateway', system: 'portkey', group: 'chat', body: () => ({ kind: 'plain', model: PROVIDER_MODEL }) },
  { id: 'pm-plain', label: '3 promptmesh all-in-one, plain', system: 'pm-all', group: 'chat', body: () => ({ kind: 'plain', model: 'chat' }) },
  { id: 'pm-full', label: '4 promptmesh all-in-one, full prompt path', system: 'pm-all', group: 'chat', body: () => ({ kind: 'full', model: 'chat', prompt: PROMPT_NAME, run: runId() }) },
  { id: 'pm-mesh', label: '5 promptmesh four processes, full prompt path', system: 'pm-mesh', group: 'chat', body: () => ({ kind: 'full', model: 'chat', prompt: PROMPT_NAME, run: runId() }) },
  {
    id: 'pm-hit',
    label: '6 promptmesh cache hit',
    system: 'pm-all',
    group: 'chat',
    body: () => ({ kind: 'fixed', body: JSON.stringify({ model: 'chat', temperature: 0, messages: [{ role: 'user', content: 'The same question every time.' }] }) }),
  },
  // Issue 14, item 7: a plain completion with and without the key, limit and budget checks,
  // interleaved in one run (bench/keys-overhead.ts, also `npm run bench:keys`).
  { id: 'pm-keys', label: '7 promptmesh keys, limits and budget vs auth off', system: 'pm-keys', group: 'chat', body: () => ({ kind: 'plain', model: 'chat' }) },
  // Embeddings: throughput only (no paced run), every request a new batch (a cache miss).
  { id: 'emb-direct', label: '8 embeddings: fake provider, direct', system: 'direct', group: 'embeddings', path: '/v1/embeddings', paced: false, body: () => embeddings(EMBEDDINGS_MODEL) },
  {
    id: 'emb-portkey',
    label: '9 embeddings: Portkey gateway',
    system: 'portkey',
    group: 'embeddings',
    path: '/v1/embeddings',
    paced: false,
    // Portkey 1.15.2's `openai` provider answers every /v1/embeddings call through a custom host
    // with a 500 ("TypeError: immutable": it appends a header to the upstream fetch Response);
    // its `fireworks-ai` provider sends the same OpenAI request to the custom host and works
    // (docs/bench.md, "Scenarios").
    portkeyProvider: 'fireworks-ai',
    body: () => embeddings(EMBEDDINGS_MODEL),
  },
  { id: 'emb-pm', label: '10 embeddings: promptmesh all-in-one', system: 'pm-all', group: 'embeddings', path: '/v1/embeddings', paced: false, body: () => embeddings('embed') },
];

/** The scenario a row's added latency and ratios are measured against: its group's direct one. */
const baselineOf = (id: string) => {
  const group = SCENARIOS.find((s) => s.id === id)?.group;
  return SCENARIOS.find((s) => s.group === group && s.system === 'direct')!.id;
};

async function main(): Promise<void> {
  const date = new Date().toISOString().slice(0, 10);
  const startLoad = loadavg()[0]!;
  const work = mkdtempSync(join(tmpdir(), 'pm-bench-'));
  const profiles = join(opts.out!, 'profiles');
  if (opts['cpu-prof']) mkdirSync(profiles, { recursive: true });
  const live = new Set<BenchProcess>();
  const prefix = `pmbench:${randomBytes(4).toString('hex')}:`;
  const db = await createTestDatabase('bench');
  const scenarios = SCENARIOS.filter((s) => !only || only.has(s.id) || only.has(s.group));
  if (scenarios.length === 0) throw new Error(`--only names no scenario; the scenarios are ${SCENARIOS.map((s) => s.id).join(', ')} (groups: chat, embeddings)`);
  const rssRows: RssRow[] = [];

  const start = async (p: Promise<BenchProcess>) => {
    const proc = await p;
    live.add(proc);
    return proc;
  };
  const stop = async (proc: BenchProcess, scenario: string) => {
    await proc.stop().catch(() => undefined);
    live.delete(proc);
    rssRows.push({ process: proc.name, scenario, peakRssMb: proc.peakRssMb(), readyRssMb: proc.readyRssMb });
    process.stdout.write(`  ${proc.name} (${scenario}): peak RSS ${proc.peakRssMb().toFixed(1)} MB, ${proc.readyRssMb.toFixed(1)} MB when ready\n`);
  };
  const cleanup = async () => {
    for (const p of [...live].reverse()) await p.stop().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await deletePrefix(prefix).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130));
  });

  try {
    // promptmesh runs as the images run it: the production bundle, with the image's V8 flags.
    if (!opts['no-build'] && !opts.bundle) {
      process.stdout.write('building the bundle (npm run build -- --bundle-only)...\n');
      execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/build.ts'), '--bundle-only'], { cwd: ROOT, stdio: 'inherit' });
    }
    const entry = opts.bundle ? resolve(opts.bundle) : join(ROOT, 'build/service.js');
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build -- --bundle-only`);
    const portkeyEntry = join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js');
    const keysFile = join(work, 'keys.yaml');
    writeFileSync(keysFile, `keys:\n  - { id: bench, sha256: ${createHash('sha256').update(API_KEY).digest('hex')}, scopes: [invoke, admin] }\n`);
    const auth = { authorization: `Bearer ${API_KEY}` };
    // Only the full prompt path renders the bench template.
    let templateCreated = !scenarios.some((s) => s.body().kind === 'full');

    const startFake = async () => {
      const port = await freePort();
      const proc = await start(
        startProcess(
          'fake provider',
          process.execPath,
          ['--import', 'tsx', join(ROOT, 'test/fake-provider/main.ts'), '--port', String(port), '--api-key', FAKE_KEY, '--record', '0'],
          {},
          `http://127.0.0.1:${port}/v1/models`,
        ),
      );
      return { proc, url: `http://127.0.0.1:${port}` };
    };

    const startPromptmesh = async (scenario: string, system: 'pm-all' | 'pm-mesh', fakeUrl: string): Promise<RunningSystem> => {
      const providersFile = join(work, `providers-${scenario}.yaml`);
      writeFileSync(
        providersFile,
        [
          'providers:',
          '  - name: fake-openai',
          '    type: openai',
          `    baseUrl: ${fakeUrl}/v1`,
          '    apiKeyEnv: BENCH_FAKE_KEY',
          '    timeoutMs: 30000',
          `    prices: { ${PROVIDER_MODEL}: { input: 0.15, output: 0.60 }, ${EMBEDDINGS_MODEL}: { input: 0.02, output: 0 } }`,
          'models:',
          '  chat:',
          `    - { provider: fake-openai, model: ${PROVIDER_MODEL}, weight: 100 }`,
          '  embed:',
          `    - { provider: fake-openai, model: ${EMBEDDINGS_MODEL}, weight: 100 }`,
          'routing: { strategy: weighted, fallback: true, retries: { attempts: 2, backoffMs: 100 } }',
          'cache: { enabled: true, ttlSeconds: 3600 }',
          '',
        ].join('\n'),
      );
      const nodeArgs = (name: string) => [
        ...(opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profiles}`, `--cpu-prof-name=${date}-${scenario}-${name}.cpuprofile`] : []),
        // As the image's ENTRYPOINT runs it: without --enable-source-maps (scripts/image-entrypoint.sh
        // says why); --source-maps adds it, for experiments.
        ...(opts['source-maps'] ? ['--enable-source-maps'] : []),
        entry,
      ];
      const baseEnv = {
        NODE_ENV: 'production',
        NODE_OPTIONS: opts['node-options'] ?? IMAGE_NODE_OPTIONS,
        ...IMAGE_MALLOC_ENV,
        DATABASE_URL: db.url,
        REDIS_URL: TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        PROVIDERS_FILE: providersFile,
        API_KEYS_FILE: keysFile,
        BENCH_FAKE_KEY: FAKE_KEY,
        LOG_LEVEL: 'warn',
        HOST: '127.0.0.1',
        DRAIN_DELAY_MS: '0',
      };
      const processes: BenchProcess[] = [];
      let url: string;
      if (system === 'pm-all') {
        const port = await freePort();
        url = `http://127.0.0.1:${port}`;
        processes.push(await start(startProcess('promptmesh all-in-one', process.execPath, nodeArgs('all'), { ...baseEnv, SERVICE: 'all', PORT: String(port) }, `${url}/readyz`)));
      } else {
        const ports = { templates: await freePort(), context: await freePort(), llm: await freePort(), router: await freePort() };
        const at = (s: keyof typeof ports) => `http://127.0.0.1:${ports[s]}`;
        for (const s of ['templates', 'context', 'llm'] as const) {
          processes.push(await start(startProcess(`promptmesh ${s}`, process.execPath, nodeArgs(s), { ...baseEnv, SERVICE: s, PORT: String(ports[s]) }, `${at(s)}/readyz`)));
        }
        const routerEnv = { ...baseEnv, SERVICE: 'router', PORT: String(ports.router), TEMPLATES_URL: at('templates'), CONTEXT_URL: at('context'), LLM_URL: at('llm') };
        processes.push(await start(startProcess('promptmesh router', process.execPath, nodeArgs('router'), routerEnv, `${at('router')}/readyz`)));
        url = at('router');
      }
      // The prompt the full-path scenarios render, created once through the router's admin API
      // (it lives in the database, so every later start loads it).
      if (!templateCreated) {
        const created = await fetch(`${url}/v1/templates`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...auth },
          body: JSON.stringify({
            name: PROMPT_NAME,
            type: 'chat',
            template: [
              { role: 'system', content: 'You are a concise assistant who knows about {{topic}}.' },
              { role: 'user', content: 'Give me one fact about {{topic}}.' },
            ],
          }),
        });
        if (created.status !== 201) throw new Error(`creating the bench template failed: ${created.status} ${await created.text()}`);
        templateCreated = true;
        // The router's template cache hears of it by push; give that a moment.
        await new Promise((r) => setTimeout(r, 1500));
      }
      return { url, headers: auth, processes };
    };

    const rows: BenchRow[] = [];
    const log = (row: BenchRow) => {
      const r = row.result;
      process.stdout.write(
        `${row.mode.padEnd(9)} c=${String(r.concurrency).padStart(3)} ${row.label.padEnd(48)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  cpu ${row.cpuUsPerRequest?.toFixed(0)} us/req  errors ${r.errors}${r.errorSamples.length ? `  (${r.errorSamples[0]})` : ''}  load ${loadavg()[0]!.toFixed(1)}\n`,
      );
    };

    let keysOverhead: KeysOverheadResult | undefined;
    for (const s of scenarios) {
      if (s.system === 'pm-keys') {
        process.stdout.write(`== ${s.label}\n`);
        keysOverhead = await measureKeysOverhead({
          durationMs,
          warmupMs: Math.min(warmupMs, 1000),
          ...(opts['keys-rate'] ? { rate: Number(opts['keys-rate']) } : {}),
          promptmeshArgs: [...(opts['source-maps'] ? ['--enable-source-maps'] : []), entry],
          promptmeshEnv: { NODE_ENV: 'production', NODE_OPTIONS: opts['node-options'] ?? IMAGE_NODE_OPTIONS, ...IMAGE_MALLOC_ENV },
          log: (line) => process.stdout.write(`  ${line}\n`),
        });
        continue;
      }
      if (s.system === 'portkey' && !existsSync(portkeyEntry)) {
        process.stdout.write(`skipping ${s.id}: ${portkeyEntry} is missing\n`);
        continue;
      }
      // --- a fresh provider and a fresh system for this scenario ---------------------------
      const fake = await startFake();
      let system: RunningSystem;
      if (s.system === 'direct') system = { url: fake.url, headers: { authorization: `Bearer ${FAKE_KEY}` }, processes: [] };
      else if (s.system === 'portkey') {
        const port = await freePort();
        const proc = await start(startProcess('Portkey gateway', process.execPath, [portkeyEntry, '--headless', `--port=${port}`], {}, `http://127.0.0.1:${port}/`));
        system = {
          url: `http://127.0.0.1:${port}`,
          headers: { authorization: `Bearer ${FAKE_KEY}`, 'x-portkey-provider': s.portkeyProvider ?? 'openai', 'x-portkey-custom-host': `${fake.url}/v1` },
          processes: [proc],
        };
      } else system = await startPromptmesh(s.id, s.system, fake.url);

      const target = (): LoadTargetSpec => ({ url: system.url, path: s.path ?? '/v1/chat/completions', headers: system.headers, body: s.body() });
      // CPU per request: what the system under test spent (the provider itself for `direct`),
      // a figure that other work on the machine hardly moves, unlike req/s.
      const measured = system.processes.length > 0 ? system.processes : [fake.proc];
      const cpu = () => measured.reduce((a, p) => a + p.cpuMs(), 0);
      const measure = async (mode: BenchRow['mode'], concurrency: number, rate?: number) => {
        const cpuBefore = cpu();
        const { result, peakRssMb } = await runLoadInChild(target(), {
          concurrency,
          durationMs,
          warmupMs: rate ? Math.min(warmupMs, 1000) : warmupMs,
          rate,
        });
        rssRows.push({ process: 'load generator', scenario: s.id, peakRssMb });
        const row: BenchRow = { scenario: s.id, label: s.label, mode, result, cpuUsPerRequest: ((cpu() - cpuBefore) * 1000) / result.sent };
        rows.push(row);
        log(row);
      };
      try {
        for (const c of concurrencies) await measure('saturated', c);
        // Latency added at a fixed load well below saturation, at the lowest concurrency.
        if (s.paced !== false) await measure('paced', concurrencies[0]!, pacedRate);
      } finally {
        for (const p of [...system.processes].reverse()) await stop(p, s.id);
        await stop(fake.proc, s.id);
      }
    }

    for (const row of rows) {
      const baseline = baselineOf(row.scenario);
      const base = rows.find((r) => r.scenario === baseline && r.mode === row.mode && r.result.concurrency === row.result.concurrency);
      if (base && row.scenario !== baseline) {
        row.addedP99 = row.result.p99 - base.result.p99;
        row.addedP50 = row.result.p50 - base.result.p50;
      }
    }

    const targets: TargetRow[] = evaluateTargets(rows, rssRows, { concurrencies, pacedRate, keysOverhead });
    const endLoad = loadavg()[0]!;
    const machine = `Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Load generator, provider, gateway and promptmesh share the machine over loopback, each in its own process. Measured ${durationMs} ms per run after ${warmupMs} ms warm-up. Load average (1 min) at the start: ${startLoad.toFixed(1)}, at the end: ${endLoad.toFixed(1)}.`;
    const embeddingsNote = `Embeddings (scenarios 8-10, no paced run): every request embeds a new batch of ${EMBEDDINGS_BATCH} passages of ~80 tokens (a response-cache miss for promptmesh), ${EMBEDDINGS_MODEL}, floats (1536 dimensions: ~${Math.round((EMBEDDINGS_BATCH * 1536 * 20) / 1024)} KB of JSON per answer). promptmesh asks the provider for base64 and answers the client floats, as in production (docs/llm.md); Portkey goes through its fireworks-ai provider (its openai provider fails every embeddings call here, docs/bench.md), which parses and re-serialises the answer. Added latency is against scenario 8.`;
    const notes = [
      'Process layout: every scenario starts a fresh fake provider and a fresh system under test and stops both after its runs; every run (each concurrency, and the paced run) is sent by a fresh load generator process. The orchestrator only starts processes and writes this report.',
      'Saturated runs are closed loops on a machine whose cores the load generator, the fake provider and the system under test share, so their latency is mostly queueing: it shows capacity, not per-request cost.',
      `Paced runs send ${pacedRate} req/s on a fixed schedule (latency counted from each request's scheduled start), which measures the latency a hop adds below saturation.`,
      `promptmesh runs from the production bundle (build/service.js) with the image's memory settings: NODE_OPTIONS="${opts['node-options'] ?? IMAGE_NODE_OPTIONS}", ${Object.entries(IMAGE_MALLOC_ENV).map(([k, v]) => `${k}=${v}`).join(', ')} (docs/bench.md).`,
      `Full prompt path = template render from the router cache + session history read from and turn appended to Redis + a provider call that misses the response cache (temperature 0.7). Sessions rotate: each is used for ${SESSION_TURNS} turns, so the history read stays 0-${SESSION_TURNS - 1} turns for the whole run.`,
      'CPU us/req is the CPU time (user + system, from /proc) the system under test used during the run (warm-up included) divided by the requests it answered in that time: for promptmesh the promptmesh processes, for Portkey the gateway, for direct the fake provider. Other work on the machine moves it much less than req/s.',
      'Peak RSS is VmHWM, read from /proc when each process stops (the load generator reads its own before it exits); per process, the largest over the whole bench.',
      ...(scenarios.some((sc) => sc.group === 'embeddings') ? [embeddingsNote] : []),
    ];
    const ratios: RatioRow[] = [
      { label: 'embeddings: promptmesh / Portkey', a: 'emb-pm', b: 'emb-portkey', unit: 'x' },
      { label: 'embeddings: promptmesh / direct', a: 'emb-pm', b: 'emb-direct', unit: '%' },
      { label: 'embeddings: Portkey / direct', a: 'emb-portkey', b: 'emb-direct', unit: '%' },
    ];
    mkdirSync(opts.out!, { recursive: true });
    // A partial run (--only) gets a name of its own, so it never overwrites the day's full report.
    const name = only ? `${date}-${[...only].join('-')}` : date;
    const base = join(opts.out!, name);
    writeFileSync(`${base}.json`, JSON.stringify({ date, machine, loadAverage: { start: startLoad, end: endLoad }, durationMs, warmupMs, pacedRate, rows, rss: rssRows, targets, keysOverhead }, null, 2));
    // The keys scenario has its own table (three targets in one interleaved run), after the main one.
    const keysSection = keysOverhead ? `\n${keysOverheadMarkdown(keysOverhead).replace(/^# /, '## ')}` : '';
    writeFileSync(`${base}.md`, markdownReport({ date, machine, rows, rss: rssRows, targets, notes, ratios }) + keysSection + `\nChart: [${name}.svg](${name}.svg)\n`);
    writeFileSync(`${base}.svg`, latencyChartSvg(rows.filter((r) => r.mode === 'saturated'), `Latency against concurrency (${date})`));
    process.stdout.write(`\nwrote ${base}.md, .json and .svg\n`);
    if (opts['cpu-prof']) {
      const summary = profileReport(date, profiles, entry);
      writeFileSync(`${base}-profile.md`, summary);
      process.stdout.write(`wrote ${base}-profile.md\n`);
    }
    for (const t of targets) process.stdout.write(`${t.met ? 'MET ' : 'MISS'} ${t.target}: ${t.value}\n`);
  } finally {
    await cleanup();
  }

  if (!opts['no-reliability'] && existsSync(join(ROOT, 'bench/reliability.ts'))) {
    process.stdout.write('\n== reliability\n');
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/reliability.ts')], { stdio: 'inherit' });
    // Exit status 2 = ran, some reliability targets missed: reported in its results, like ours.
    if (r.status === 2) process.stdout.write('reliability: some targets missed (see bench/results/reliability-<date>.md)\n');
    else if (r.status !== 0) process.exitCode = r.status ?? 1;
  }
}

/** One section per promptmesh process profiled in this run (one file per scenario and process). */
function profileReport(date: string, dir: string, bundle: string): string {
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(`${date}-`) && f.endsWith('.cpuprofile'))
    .sort();
  const out = [
    `# CPU profiles of promptmesh, ${date}`,
    '',
    'One `node --cpu-prof` profile per promptmesh process and scenario (all of its runs: each concurrency and the paced run), made by `npm run bench -- --cpu-prof` and summarised with `bench/profile-summary.ts` (self time, mapped back to sources through the bundle\'s source map). Percentages are of all samples, idle included. The profiles themselves stay in bench/results/profiles/ (not committed).',
    '',
  ];
  for (const f of files) {
    const name = f.slice(date.length + 1, -'.cpuprofile'.length);
    out.push(`## ${name}`, '', summarise(JSON.parse(readFileSync(join(dir, f), 'utf8')), bundle, 20), '');
  }
  return out.join('\n');
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
