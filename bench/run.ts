/**
 * `npm run bench`: promptmesh side by side with the fake provider called directly (the limit)
 * and the Portkey gateway, on loopback, in one run. Writes bench/results/<date>.md, .json and
 * a latency chart (.svg), then runs the reliability benchmark.
 *
 * Options: --duration <ms> (measured time per run, default 8000), --warmup <ms> (default 2000),
 * --concurrency 16,64, --rate <req/s for the paced latency runs> (default 500),
 * --only <scenario,...>, --cpu-prof (write V8 CPU profiles of the promptmesh processes into
 * bench/results/profiles/), --no-reliability, --no-build (reuse build/service.js),
 * --node-options <flags> (instead of the image's, for experiments), --out <dir>.
 *
 * promptmesh runs from the production bundle (build/service.js, built first) with the image's
 * NODE_OPTIONS, so the figures are those of the containers.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createTestDatabase } from '../test/support/pg';
import { deletePrefix, TEST_REDIS_URL } from '../test/support/redis';
import { runLoad, type LoadResult, type LoadTarget } from './lib/load';
import { freePort, startProcess, type BenchProcess } from './lib/procs';
import { latencyChartSvg, markdownReport, type BenchRow } from './lib/report';

const ROOT = resolve(__dirname, '..');

/**
 * The image's memory settings (Dockerfile `NODE_OPTIONS` and `MALLOC_*`; keep them identical),
 * plus the old space the published figures were measured with. The image itself sizes the old
 * space from the container limit (build/entrypoint.sh: 144 MiB at 256Mi), docs/bench.md.
 */
const IMAGE_NODE_OPTIONS = '--max-semi-space-size=16 --max-old-space-size=112';
const IMAGE_MALLOC_ENV = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '131072' };

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '8000' },
    warmup: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '16,64' },
    rate: { type: 'string', default: '500' },
    only: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'no-reliability': { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    'node-options': { type: 'string' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
  },
});

const durationMs = Number(opts.duration);
const warmupMs = Number(opts.warmup);
const concurrencies = opts.concurrency!.split(',').map(Number);
const pacedRate = Number(opts.rate);
const only = opts.only ? new Set(opts.only.split(',')) : undefined;

interface Scenario {
  id: string;
  label: string;
  target: () => LoadTarget;
}

const PROVIDER_MODEL = 'gpt-4o-mini';
const FAKE_KEY = `sk-fake-${randomBytes(8).toString('hex')}`;
const API_KEY = `pm-bench-${randomBytes(12).toString('hex')}`;

function userMessage(i: number) {
  return [{ role: 'user', content: `Say something about number ${i}.` }];
}

async function main(): Promise<void> {
  const date = new Date().toISOString().slice(0, 10);
  const startLoad = loadavg()[0]!;
  const work = mkdtempSync(join(tmpdir(), 'pm-bench-'));
  const profiles = join(opts.out!, 'profiles');
  if (opts['cpu-prof']) mkdirSync(profiles, { recursive: true });
  const processes: BenchProcess[] = [];
  const prefix = `pmbench:${randomBytes(4).toString('hex')}:`;
  const db = await createTestDatabase('bench');
  const started = async (p: Promise<BenchProcess>) => {
    const proc = await p;
    processes.push(proc);
    return proc;
  };
  const cleanup = async () => {
    for (const p of processes.reverse()) await p.stop().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await deletePrefix(prefix).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130));
  });

  try {
    // --- the provider, the peer and promptmesh -------------------------------------------
    const fakePort = await freePort();
    const fakeUrl = `http://127.0.0.1:${fakePort}`;
    await started(
      startProcess(
        'fake-provider',
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'test/fake-provider/main.ts'), '--port', String(fakePort), '--api-key', FAKE_KEY, '--record', '0'],
        {},
        `${fakeUrl}/v1/models`,
      ),
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
        '  - name: fake-openai',
        '    type: openai',
        `    baseUrl: ${fakeUrl}/v1`,
        '    apiKeyEnv: BENCH_FAKE_KEY',
        '    timeoutMs: 30000',
        `    prices: { ${PROVIDER_MODEL}: { input: 0.15, output: 0.60 } }`,
        'models:',
        '  chat:',
        `    - { provider: fake-openai, model: ${PROVIDER_MODEL}, weight: 100 }`,
        'routing: { strategy: weighted, fallback: true, retries: { attempts: 2, backoffMs: 100 } }',
        'cache: { enabled: true, ttlSeconds: 3600 }',
        '',
      ].join('\n'),
    );
    const keysFile = join(work, 'keys.yaml');
    writeFileSync(keysFile, `keys:\n  - { id: bench, sha256: ${createHash('sha256').update(API_KEY).digest('hex')}, scopes: [invoke, admin] }\n`);

    // promptmesh runs as the images run it: the production bundle, with the image's V8 flags.
    if (!opts['no-build']) {
      process.stdout.write('building the bundle (npm run build -- --bundle-only)...\n');
      execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/build.ts'), '--bundle-only'], { cwd: ROOT, stdio: 'inherit' });
    }
    const entry = join(ROOT, 'build/service.js');
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build -- --bundle-only`);
    const nodeArgs = (name: string) => [
      ...(opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${profiles}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : []),
      // As the image's ENTRYPOINT runs it.
      '--enable-source-maps',
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

    const allPort = await freePort();
    const allUrl = `http://127.0.0.1:${allPort}`;
    await started(startProcess('promptmesh all-in-one', process.execPath, nodeArgs('all'), { ...baseEnv, SERVICE: 'all', PORT: String(allPort) }, `${allUrl}/readyz`));

    const meshPorts = { templates: await freePort(), context: await freePort(), llm: await freePort(), router: await freePort() };
    const meshUrl = (s: keyof typeof meshPorts) => `http://127.0.0.1:${meshPorts[s]}`;
    for (const s of ['templates', 'context', 'llm'] as const) {
      await started(startProcess(`promptmesh ${s}`, process.execPath, nodeArgs(s), { ...baseEnv, SERVICE: s, PORT: String(meshPorts[s]) }, `${meshUrl(s)}/readyz`));
    }
    await started(
      startProcess(
        'promptmesh router',
        process.execPath,
        nodeArgs('router'),
        { ...baseEnv, SERVICE: 'router', PORT: String(meshPorts.router), TEMPLATES_URL: meshUrl('templates'), CONTEXT_URL: meshUrl('context'), LLM_URL: meshUrl('llm') },
        `${meshUrl('router')}/readyz`,
      ),
    );

    // The prompt the full-path scenarios render (through the router's admin API).
    const auth = { authorization: `Bearer ${API_KEY}` };
    const created = await fetch(`${allUrl}/v1/templates`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({
        name: 'bench-prompt',
        type: 'chat',
        template: [
          { role: 'system', content: 'You are a concise assistant who knows about {{topic}}.' },
          { role: 'user', content: 'Give me one fact about {{topic}}.' },
        ],
      }),
    });
    if (created.status !== 201) throw new Error(`creating the bench template failed: ${created.status} ${await created.text()}`);
    // Give the routers' template caches a moment to see it.
    await new Promise((r) => setTimeout(r, 1500));

    const plainBody = (i: number) => JSON.stringify({ model: PROVIDER_MODEL, messages: userMessage(i) });
    const pmPlainBody = (i: number) => JSON.stringify({ model: 'chat', messages: userMessage(i) });
    // A steady workload: 512 sessions in turn, each used for SESSION_TURNS turns and then
    // replaced by a new one, so the history read is 0..SESSION_TURNS-1 turns throughout the run
    // (sessions that grew without bound would make each run slower than the one before). A new
    // run id per run keeps runs from continuing each other's sessions.
    const SESSION_TURNS = 8;
    const fullBody = (run: string) => (i: number) =>
      JSON.stringify({
        model: 'chat',
        temperature: 0.7,
        prompt: { name: 'bench-prompt', variables: { topic: `topic ${i % 97}` } },
        session_id: `bench-${run}-${i % 512}-${Math.floor(i / (512 * SESSION_TURNS))}`,
        messages: userMessage(i),
      });
    const runId = () => randomBytes(4).toString('hex');
    const hitBody = JSON.stringify({ model: 'chat', temperature: 0, messages: [{ role: 'user', content: 'The same question every time.' }] });

    const scenarios: Scenario[] = [
      { id: 'direct', label: '1 fake provider, direct', target: () => ({ url: fakeUrl, path: '/v1/chat/completions', headers: { authorization: `Bearer ${FAKE_KEY}` }, body: plainBody }) },
      ...(portkey
        ? [
            {
              id: 'portkey',
              label: '2 Portkey gateway',
              target: () => ({
                url: `http://127.0.0.1:${portkeyPort}`,
                path: '/v1/chat/completions',
                headers: { authorization: `Bearer ${FAKE_KEY}`, 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${fakeUrl}/v1` },
                body: plainBody,
              }),
            },
          ]
        : []),
      { id: 'pm-plain', label: '3 promptmesh all-in-one, plain', target: () => ({ url: allUrl, path: '/v1/chat/completions', headers: auth, body: pmPlainBody }) },
      { id: 'pm-full', label: '4 promptmesh all-in-one, full prompt path', target: () => ({ url: allUrl, path: '/v1/chat/completions', headers: auth, body: fullBody(runId()) }) },
      { id: 'pm-mesh', label: '5 promptmesh four processes, full prompt path', target: () => ({ url: meshUrl('router'), path: '/v1/chat/completions', headers: auth, body: fullBody(runId()) }) },
      { id: 'pm-hit', label: '6 promptmesh cache hit', target: () => ({ url: allUrl, path: '/v1/chat/completions', headers: auth, body: () => hitBody }) },
    ].filter((s) => !only || only.has(s.id));

    // --- measure ----------------------------------------------------------------------------
    const rows: BenchRow[] = [];
    const log = (row: BenchRow) => {
      const r = row.result;
      process.stdout.write(
        `${row.mode.padEnd(9)} c=${String(r.concurrency).padStart(3)} ${row.label.padEnd(48)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  errors ${r.errors}${r.errorSamples.length ? `  (${r.errorSamples[0]})` : ''}\n`,
      );
    };
    for (const concurrency of concurrencies) {
      for (const s of scenarios) {
        const result = await runLoad(s.target(), { concurrency, durationMs, warmupMs });
        const row: BenchRow = { scenario: s.id, label: s.label, mode: 'saturated', result };
        rows.push(row);
        log(row);
      }
    }
    // Latency added at a fixed load well below saturation, at the lowest concurrency.
    for (const s of scenarios) {
      const result = await runLoad(s.target(), { concurrency: concurrencies[0]!, durationMs, warmupMs: Math.min(warmupMs, 1000), rate: pacedRate });
      const row: BenchRow = { scenario: s.id, label: s.label, mode: 'paced', result };
      rows.push(row);
      log(row);
    }
    for (const row of rows) {
      const base = rows.find((r) => r.scenario === 'direct' && r.mode === row.mode && r.result.concurrency === row.result.concurrency);
      if (base && row.scenario !== 'direct') {
        row.addedP99 = row.result.p99 - base.result.p99;
        row.addedP50 = row.result.p50 - base.result.p50;
      }
    }
    const rss = processes.map((p) => ({ process: p.name, peakRssMb: p.peakRssMb() }));

    // --- targets ----------------------------------------------------------------------------
    const find = (id: string, mode: BenchRow['mode'], c: number): LoadResult | undefined =>
      rows.find((r) => r.scenario === id && r.mode === mode && r.result.concurrency === c)?.result;
    const c0 = concurrencies[0]!;
    const targets: Array<{ target: string; value: string; met: boolean }> = [];
    const pacedPlain = rows.find((r) => r.scenario === 'pm-plain' && r.mode === 'paced');
    if (pacedPlain?.addedP99 !== undefined) {
      targets.push({ target: `(3) added p99 at concurrency ${c0} under 1 ms (paced, ${pacedRate} req/s)`, value: `${pacedPlain.addedP99.toFixed(3)} ms`, met: pacedPlain.addedP99 < 1 });
    }
    const satPlain = rows.find((r) => r.scenario === 'pm-plain' && r.mode === 'saturated' && r.result.concurrency === c0);
    if (satPlain?.addedP99 !== undefined) {
      targets.push({ target: `(3) added p99 at concurrency ${c0} under 1 ms (saturated)`, value: `${satPlain.addedP99.toFixed(3)} ms`, met: satPlain.addedP99 < 1 });
    }
    for (const c of concurrencies) {
      const pk = find('portkey', 'saturated', c);
      const plain = find('pm-plain', 'saturated', c);
      const full = find('pm-full', 'saturated', c);
      if (pk && plain) targets.push({ target: `(3) >= 10x Portkey req/s at concurrency ${c}`, value: `${(plain.rps / pk.rps).toFixed(2)}x`, met: plain.rps >= 10 * pk.rps });
      if (pk && full) targets.push({ target: `(4) >= 3x Portkey req/s at concurrency ${c}`, value: `${(full.rps / pk.rps).toFixed(2)}x`, met: full.rps >= 3 * pk.rps });
    }
    const totalErrors = rows.filter((r) => r.scenario.startsWith('pm-')).reduce((a, r) => a + r.result.errors, 0);
    targets.push({ target: 'no errors (promptmesh scenarios)', value: String(totalErrors), met: totalErrors === 0 });
    const pmRss = rss.filter((p) => p.process.startsWith('promptmesh'));
    const maxRss = Math.max(...pmRss.map((p) => p.peakRssMb));
    targets.push({ target: 'every promptmesh process under 150 MB RSS', value: `max ${maxRss.toFixed(1)} MB`, met: maxRss < 150 });

    const machine = `Machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Load generator, provider, gateway and promptmesh share the machine over loopback. Measured ${durationMs} ms per run after ${warmupMs} ms warm-up. Load average (1 min) at the start: ${startLoad.toFixed(1)}, at the end: ${loadavg()[0]!.toFixed(1)}.`;
    const notes = [
      'Saturated runs are closed loops on a 2-core machine shared by the load generator, the fake provider and the system under test, so their latency is mostly queueing: it shows capacity, not per-request cost.',
      `Paced runs send ${pacedRate} req/s on a fixed schedule (latency counted from each request's scheduled start), which measures the latency a hop adds below saturation.`,
      `promptmesh runs from the production bundle (build/service.js) with the image's memory settings: NODE_OPTIONS="${IMAGE_NODE_OPTIONS}", ${Object.entries(IMAGE_MALLOC_ENV).map(([k, v]) => `${k}=${v}`).join(', ')} (docs/bench.md).`,
      `Full prompt path = template render from the router cache + session history read from and turn appended to Redis + a provider call that misses the response cache (temperature 0.7). Sessions rotate: each is used for ${SESSION_TURNS} turns, so the history read stays 0-${SESSION_TURNS - 1} turns for the whole run.`,
    ];
    mkdirSync(opts.out!, { recursive: true });
    const base = join(opts.out!, date);
    writeFileSync(`${base}.json`, JSON.stringify({ date, machine, durationMs, warmupMs, pacedRate, rows, rss, targets }, null, 2));
    writeFileSync(`${base}.md`, markdownReport({ date, machine, rows, rss, targets, notes }) + `\nChart: [${date}.svg](${date}.svg)\n`);
    writeFileSync(`${base}.svg`, latencyChartSvg(rows.filter((r) => r.mode === 'saturated'), `Latency against concurrency (${date})`));
    process.stdout.write(`\nwrote ${base}.md, .json and .svg\n`);
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

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
