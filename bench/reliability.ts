/**
 * The reliability benchmark of the llm service (`npm run bench:reliability`; `npm run bench`
 * runs it after the load benchmark).
 *
 * Everything runs as real processes on this machine: two fake providers (test/fake-provider,
 * steered through `/_fake/behavior`) and the llm service (`SERVICE=llm`, services/main.ts) with
 * a providers file that routes the alias `chat` 50/50 over provider A and provider B.
 *
 * 1. Flaky A: A fails 30% of its calls (equal shares of HTTP 500, 429 with Retry-After, connection
 *    resets and stalls before the first byte that hit the llm timeout), B is healthy; once with
 *    the breaker's defaults and once with a breaker that never opens. N client requests (default
 *    10,000; 10% of them streaming) go through the llm service over HTTP. Reported: success rate
 *    (target >= 99.9%) and latency percentiles.
 * 2. A down: a B-only llm (baseline) and the A+B llm with A's process stopped take the same
 *    paced load; reported: the p99 latency A+B adds over the baseline (target < 50 ms, which the
 *    circuit breaker makes possible by skipping A at once). A second variant black-holes A
 *    (it accepts connections and never answers) and is reported beside it.
 *
 * Options: --requests N (phase 1), --concurrency N, --paced-requests N, --rate N (phase 2),
 * --out DIR. Writes bench/results/reliability-<date>.md and .json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { freePort, startProcess, type BenchProcess } from './lib/procs';

const ROOT = resolve(__dirname, '..');

/** Options of {@link runReliability}. */
export interface ReliabilityOptions {
  /** Client requests in the flaky-A phase. @default 10000 */
  requests?: number;
  /** Concurrent clients in the flaky-A phase. @default 32 */
  concurrency?: number;
  /** Requests per configuration in the A-down phase. @default 5000 */
  pacedRequests?: number;
  /** Requests per second in the A-down phase, both configurations together (below saturation). @default 200 */
  rate?: number;
  /** Where the report goes. @default bench/results */
  out?: string;
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** What {@link runReliability} measured. */
export interface ReliabilityResult {
  date: string;
  machine: string;
  flaky: Array<{
    variant: string;
    requests: number;
    ok: number;
    successRate: number;
    latencyMs: Percentiles;
    errorSamples: string[];
    servedBy: Record<string, number>;
    providerA: unknown;
    circuitOpens: number;
  }>;
  down: Array<{
    variant: string;
    baseline: Percentiles;
    withADown: Percentiles;
    addedP99Ms: number;
    /** The same without the first tenth of the run (A going down and its circuit opening). */
    steadyAddedP99Ms: number;
    okBaseline: number;
    okADown: number;
    requests: number;
    /** Requests of the A-down run that took over 900 ms (the ones that met A before its circuit opened). */
    slowOver900Ms: number;
    /** A's circuit at the end of the run. */
    circuitA: unknown;
  }>;
  targets: Array<{ target: string; value: string; met: boolean }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]! : NaN);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    p999: round(at(0.999)),
    max: round(s.at(-1) ?? NaN),
    mean: round(s.reduce((a, b) => a + b, 0) / (s.length || 1)),
  };
}

async function fakeAdmin(url: string, method: 'POST' | 'DELETE' | 'GET', path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${url}${path}`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function startFake(name: string): Promise<{ proc: BenchProcess; url: string }> {
  const port = await freePort();
  const proc = await startProcess(name, process.execPath, ['--import', 'tsx', join(ROOT, 'test/fake-provider/main.ts'), '--port', String(port), '--record', '0'], {}, `http://127.0.0.1:${port}/_fake/stats`);
  return { proc, url: `http://127.0.0.1:${port}` };
}

async function startLlm(name: string, providersFile: string, prefix: string): Promise<{ proc: BenchProcess; url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = await startProcess(
    name,
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'services/main.ts')],
    { SERVICE: 'llm', PORT: String(port), HOST: '127.0.0.1', PROVIDERS_FILE: providersFile, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'warn', DRAIN_DELAY_MS: '0' },
    `${url}/readyz`,
  );
  return { proc, url };
}

interface Outcome {
  ok: boolean;
  ms: number;
  provider?: string;
  why?: string;
}

/** One chat request; a stream counts as a success only when it ends with [DONE] and no error event. */
async function oneRequest(pool: Pool, i: number, stream: boolean, startedAt?: bigint): Promise<Outcome> {
  const started = startedAt ?? process.hrtime.bigint();
  const body = JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: `request ${i}: say something` }], temperature: 0.7, stream });
  try {
    const res = await pool.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.body.text();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const provider = res.headers['x-promptmesh-provider'] as string | undefined;
    if (res.statusCode !== 200) return { ok: false, ms, why: `${res.statusCode} ${text.slice(0, 200)}` };
    if (stream && (!text.includes('data: [DONE]') || text.includes('"error"'))) return { ok: false, ms, provider, why: `broken stream: ${text.slice(-200)}` };
    return { ok: true, ms, provider };
  } catch (err) {
    return { ok: false, ms: Number(process.hrtime.bigint() - started) / 1e6, why: (err as Error).message };
  }
}

/** `total` requests, `concurrency` at a time, back to back. */
async function closedLoop(url: string, total: number, concurrency: number, streamShare: number): Promise<Outcome[]> {
  const pool = new Pool(url, { connections: concurrency, keepAliveTimeout: 30_000 });
  const out: Outcome[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        out.push(await oneRequest(pool, i, i % Math.round(1 / streamShare) === 0));
      }
    }),
  );
  await pool.close();
  return out;
}

/**
 * `total` requests started on a fixed schedule of `rate` per second, taking turns over `urls`
 * (so configurations measured together meet the same background noise); latency counts from
 * each request's scheduled start. Returns the outcomes per url.
 */
async function paced(urls: string[], total: number, rate: number): Promise<Outcome[][]> {
  // Plenty of connections: requests stuck on a dead provider must not queue the client's others.
  const pools = urls.map((url) => new Pool(url, { connections: 1024, keepAliveTimeout: 30_000 }));
  const origin = process.hrtime.bigint();
  const intervalNs = BigInt(Math.round(1e9 / rate));
  const running: Array<Array<Promise<Outcome>>> = urls.map(() => []);
  for (let i = 0; i < total; i++) {
    const due = origin + BigInt(i) * intervalNs;
    const now = process.hrtime.bigint();
    if (due > now) await sleep(Number(due - now) / 1e6);
    running[i % urls.length]!.push(oneRequest(pools[i % urls.length]!, i, false, due));
  }
  const out = await Promise.all(running.map((r) => Promise.all(r)));
  await Promise.all(pools.map((p) => p.close()));
  return out;
}

function providersFile(dir: string, name: string, doc: unknown): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(doc, null, 2));
  return path;
}

const HEALTHY = { rules: [{ latencyMs: [15, 25] as [number, number] }] };
const FLAKY_A = {
  seed: 7,
  rules: [
    {
      probability: 0.3,
      mix: [
        { type: 'status' as const, status: 500 },
        { type: 'status' as const, status: 429, retryAfter: 1 },
        { type: 'reset' as const },
        // A timeout before the first byte (no headers). Breaks after the first chunk are a
        // different failure: a stream cannot fall back once the client has part of the answer
        // (see the test suite).
        { type: 'stall' as const, beforeHeaders: true },
      ],
    },
    { latencyMs: [15, 25] as [number, number] },
  ],
};
const BLACKHOLE = { rules: [{ fault: { type: 'stall' as const } }] };

/** Runs both phases and writes the report. */
export async function runReliability(options: ReliabilityOptions = {}): Promise<ReliabilityResult> {
  const requests = options.requests ?? 10_000;
  const concurrency = options.concurrency ?? 32;
  const pacedRequests = options.pacedRequests ?? 5_000;
  const rate = options.rate ?? 200;
  const out = options.out ?? join(ROOT, 'bench/results');
  const date = new Date().toISOString().slice(0, 10);
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'cpu'}), ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
  const dir = mkdtempSync(join(tmpdir(), 'pm-bench-rel-'));
  const prefix = `pmbench:rel:${process.pid}:`;
  const procs: BenchProcess[] = [];
  const log = (s: string) => process.stdout.write(`${s}\n`);

  try {
    const a = await startFake('fake-a');
    procs.push(a.proc);
    const b = await startFake('fake-b');
    procs.push(b.proc);
    const routing = { strategy: 'weighted', fallback: true, retries: { attempts: 2, backoffMs: 50, maxBackoffMs: 500, maxRetryAfterMs: 500 } };
    const both = providersFile(dir, 'both', {
      providers: [
        { name: 'a', type: 'openai', baseUrl: `${a.url}/v1`, timeoutMs: 1000, connectTimeoutMs: 500, prices: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } },
        { name: 'b', type: 'openai', baseUrl: `${b.url}/v1`, timeoutMs: 5000, prices: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } },
      ],
      models: { chat: [{ provider: 'a', model: 'gpt-4o-mini', weight: 50 }, { provider: 'b', model: 'gpt-4o-mini', weight: 50 }] },
      routing,
      cache: { enabled: false },
    });
    const bOnly = providersFile(dir, 'b-only', {
      providers: [{ name: 'b', type: 'openai', baseUrl: `${b.url}/v1`, timeoutMs: 5000 }],
      models: { chat: [{ provider: 'b', model: 'gpt-4o-mini' }] },
      routing,
      cache: { enabled: false },
    });

    // ---- phase 1: flaky A ----------------------------------------------------------------
    // Once with the breaker's defaults, once with a breaker that never opens (so every one of
    // A's failures has to be absorbed by retries and fallback).
    await fakeAdmin(b.url, 'POST', '/_fake/behavior', HEALTHY);
    const flaky: ReliabilityResult['flaky'] = [];
    const neverOpens = { failures: 10_000, failureRate: 1, windowSize: 10_000, minRequests: 10_000 };
    for (const variant of ['breaker defaults', 'breaker never opens']) {
      await fakeAdmin(a.url, 'POST', '/_fake/behavior', FLAKY_A); // the same seeded plan each time
      await fakeAdmin(a.url, 'DELETE', '/_fake/requests'); // and fresh stats
      const file =
        variant === 'breaker defaults'
          ? both
          : providersFile(dir, 'both-no-breaker', { ...JSON.parse(readFileSync(both, 'utf8')), routing: { ...routing, breaker: neverOpens } });
      const llm = await startLlm('llm-both', file, `${prefix}flaky:`);
      procs.push(llm.proc);
      log(`flaky A, ${variant}: ${requests} requests, concurrency ${concurrency}, 10% streaming`);
      const t0 = Date.now();
      const outcomes = await closedLoop(llm.url, requests, concurrency, 0.1);
      log(`  done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const ok = outcomes.filter((o) => o.ok);
      const servedBy: Record<string, number> = {};
      for (const o of ok) servedBy[o.provider ?? '?'] = (servedBy[o.provider ?? '?'] ?? 0) + 1;
      const providerA = await fakeAdmin(a.url, 'GET', '/_fake/stats');
      const providerState = (await (await fetch(`${llm.url}/v1/providers`)).json()) as { data: Array<{ name: string; circuit: { opens: number } }> };
      flaky.push({
        variant,
        requests: outcomes.length,
        ok: ok.length,
        successRate: ok.length / outcomes.length,
        latencyMs: percentiles(ok.map((o) => o.ms)),
        errorSamples: outcomes.filter((o) => !o.ok).slice(0, 3).map((o) => o.why ?? ''),
        servedBy,
        providerA,
        circuitOpens: providerState.data.find((p) => p.name === 'a')?.circuit.opens ?? 0,
      });
      await llm.proc.stop();
      procs.splice(procs.indexOf(llm.proc), 1);
    }

    // ---- phase 2: A down --------------------------------------------------------------------
    // Both llm processes are warmed while A is still healthy; then A goes down and the two take
    // the same paced load, request by request in turn (so background noise on a shared machine
    // hits both alike). The breaker's opening is inside the measured window.
    await a.proc.stop();
    procs.splice(procs.indexOf(a.proc), 1);
    const down: ReliabilityResult['down'] = [];
    for (const variant of ['A process stopped (connection refused)', 'A black-holed (accepts, never answers; 1 s timeout; breaker.slowCallMs 250)']) {
      const refused = variant.startsWith('A process');
      const aX = await startFake(refused ? 'fake-a-refused' : 'fake-a-blackhole');
      procs.push(aX.proc);
      await fakeAdmin(aX.url, 'POST', '/_fake/behavior', HEALTHY);
      const bothFile = providersFile(dir, `both-${refused ? 'refused' : 'blackhole'}`, {
        providers: [
          { name: 'a', type: 'openai', baseUrl: `${aX.url}/v1`, timeoutMs: 1000, connectTimeoutMs: 500 },
          { name: 'b', type: 'openai', baseUrl: `${b.url}/v1`, timeoutMs: 5000 },
        ],
        models: { chat: [{ provider: 'a', model: 'gpt-4o-mini', weight: 50 }, { provider: 'b', model: 'gpt-4o-mini', weight: 50 }] },
        // A hanging provider is what the opt-in slow-call rule is for; the other runs use defaults.
        routing: refused ? routing : { ...routing, breaker: { slowCallMs: 250 } },
        cache: { enabled: false },
      });
      const base = await startLlm('llm-b-only', bOnly, `${prefix}base:`);
      procs.push(base.proc);
      const withA = await startLlm('llm-a-down', bothFile, `${prefix}down:`);
      procs.push(withA.proc);
      await paced([base.url, withA.url], 600, rate);
      if (refused) {
        await aX.proc.stop();
        procs.splice(procs.indexOf(aX.proc), 1);
      } else {
        await fakeAdmin(aX.url, 'POST', '/_fake/behavior', BLACKHOLE);
      }
      log(`A down, ${variant}: ${pacedRequests} paced requests per configuration, ${rate}/s in all, taking turns`);
      const [measured, baseline] = (await paced([withA.url, base.url], pacedRequests * 2, rate)) as [Outcome[], Outcome[]];
      // The first tenth of the run: A going down and its circuit opening.
      const block = Math.ceil(pacedRequests / 10);
      const pb = percentiles(baseline.filter((o) => o.ok).map((o) => o.ms));
      const pa = percentiles(measured.filter((o) => o.ok).map((o) => o.ms));
      // Steady state: without the first block, in which A went down and its circuit opened.
      const pbSteady = percentiles(baseline.slice(block).filter((o) => o.ok).map((o) => o.ms));
      const paSteady = percentiles(measured.slice(block).filter((o) => o.ok).map((o) => o.ms));
      const opened = (await (await fetch(`${withA.url}/v1/providers`)).json()) as { data: Array<{ name: string; circuit: { state: string; opens: number } }> };
      down.push({
        variant,
        baseline: pb,
        withADown: pa,
        addedP99Ms: Math.round((pa.p99 - pb.p99) * 100) / 100,
        steadyAddedP99Ms: Math.round((paSteady.p99 - pbSteady.p99) * 100) / 100,
        okBaseline: baseline.filter((o) => o.ok).length,
        okADown: measured.filter((o) => o.ok).length,
        requests: pacedRequests,
        slowOver900Ms: measured.filter((o) => o.ms > 900).length,
        circuitA: opened.data.find((p) => p.name === 'a')?.circuit ?? null,
      });
      for (const p of [base.proc, withA.proc, ...(refused ? [] : [aX.proc])]) {
        await p.stop();
        procs.splice(procs.indexOf(p), 1);
      }
    }

    const result: ReliabilityResult = {
      date,
      machine,
      flaky,
      down,
      targets: [
        ...flaky.map((f) => ({ target: `flaky A (${f.variant}): success rate >= 99.9%`, value: `${(f.successRate * 100).toFixed(3)}%`, met: f.successRate >= 0.999 })),
        ...down.flatMap((d) => [
          {
            target: `A down (${d.variant}): added p99 < 50 ms, whole run`,
            value: `${d.addedP99Ms} ms`,
            met: d.addedP99Ms < 50 && d.okADown === d.requests,
          },
          {
            target: `A down (${d.variant}): added p99 < 50 ms, after the circuit opened`,
            value: `${d.steadyAddedP99Ms} ms`,
            met: d.steadyAddedP99Ms < 50 && d.okADown === d.requests,
          },
        ]),
      ],
    };
    mkdirSync(out, { recursive: true });
    const base = join(out, `reliability-${date}`);
    writeFileSync(`${base}.json`, JSON.stringify(result, null, 2));
    writeFileSync(`${base}.md`, markdown(result, { requests, concurrency, pacedRequests, rate }));
    log(`wrote ${base}.md and .json`);
    for (const t of result.targets) log(`${t.met ? 'MET ' : 'MISS'} ${t.target}: ${t.value}`);
    return result;
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    await deleteKeys(prefix);
  }
}

async function deleteKeys(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } catch {
    // Redis not there: nothing to clean.
  } finally {
    redis.disconnect();
  }
}

function markdown(r: ReliabilityResult, o: { requests: number; concurrency: number; pacedRequests: number; rate: number }): string {
  const row = (name: string, p: Percentiles) => `| ${name} | ${p.p50} | ${p.p90} | ${p.p99} | ${p.p999} | ${p.max} |`;
  const lines = [
    `# llm reliability benchmark, ${r.date}`,
    '',
    `Machine: ${r.machine}. Rerun: \`npm run bench:reliability\`.`,
    '',
    'Setup: two fake providers (processes, `test/fake-provider`), one llm service (`SERVICE=llm`) routing the',
    'alias `chat` 50/50 (weighted) over A and B with fallback, 2 retries (backoff 50 ms, full jitter), a',
    'Retry-After above 500 ms moves on to the other provider, A times out after 1 s, circuit breaker',
    'defaults (5 consecutive failures or 50% of 20, 5 s cool-down, one probe). Healthy replies take 15-25 ms.',
    '',
    '## Targets',
    '',
    '| target | measured | |',
    '| --- | --- | --- |',
    ...r.targets.map((t) => `| ${t.target} | ${t.value} | ${t.met ? 'met' : 'MISSED'} |`),
    '',
    `## 1. Provider A fails 30% (500, 429 + Retry-After: 1, connection reset, stall until the 1 s timeout), B healthy`,
    '',
    `${o.requests} client requests over HTTP (10% streaming), ${o.concurrency} concurrent.`,
    '',
    ...r.flaky.flatMap((f) => [
      `### ${f.variant}`,
      '',
      `- succeeded: ${f.ok} of ${f.requests} (**${(f.successRate * 100).toFixed(3)}%**)`,
      `- answered by: ${Object.entries(f.servedBy).map(([k, v]) => `${k} ${v}`).join(', ')}`,
      `- circuit of A opened ${f.circuitOpens} time(s) during the run`,
      `- provider A saw: ${JSON.stringify((f.providerA as any)?.outcomes ?? {})}`,
      ...(f.errorSamples.length ? ['- failures (first 3):', ...f.errorSamples.map((e) => `  - \`${e.replace(/\s+/g, ' ').replace(/`/g, "'")}\``)] : []),
      '',
    ]),
    '| latency of successful requests (ms) | p50 | p90 | p99 | p99.9 | max |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.flaky.map((f) => row(`flaky A + healthy B, ${f.variant}`, f.latencyMs)),
    '',
    'With the defaults, A\'s circuit opens within seconds at this rate (five failures in a row come often at',
    '30% and hundreds of calls a second) and most of its share goes to B; with a breaker that never opens,',
    'retries and fallback absorb every failure. Every fault here hits before the first byte of the answer',
    '(the stall sends no headers); a stream that breaks after its first chunk cannot fall back, since the',
    'client already has part of the answer, and is not in this mix.',
    'Requests that met a stalled A wait for its 1 s timeout before B answers; they make up the tail.',
    '',
    '## 2. Provider A down: latency added over a B-only baseline',
    '',
    `${o.pacedRequests} requests per configuration, paced at ${o.rate}/s in all, the two configurations taking turns request by`,
    "request (so both meet the same background load); latency counted from each request's scheduled start. The",
    '"after the circuit opened" figures leave out the first tenth of the run.',
    '',
    '| configuration (ms) | p50 | p90 | p99 | p99.9 | max |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.down.flatMap((d) => [row(`B only (baseline, ${d.variant})`, d.baseline), row(`A+B, ${d.variant}`, d.withADown)]),
    '',
    ...r.down.map(
      (d) =>
        `- ${d.variant}: added p99 **${d.addedP99Ms} ms** over the whole run, **${d.steadyAddedP99Ms} ms** after the circuit opened; successful ${d.okADown}/${d.requests} (baseline ${d.okBaseline}/${d.requests}); ` +
        `${d.slowOver900Ms} request(s) over 900 ms; A's circuit at the end: ${JSON.stringify(d.circuitA)}.`,
    ),
    '',
    'Both llm processes are warmed while A is healthy; then A goes down and the measurement starts, so',
    "the breaker's opening is inside the measured window. With A black-holed, the requests routed to A",
    'before its circuit opened (and each half-open probe) wait for the 1 s timeout before B answers; they',
    'are counted above and land in the tail. Waiting for timeouts alone, that would be about rate x share x',
    `timeout = ${o.rate / 2}/s x 50% x 1 s = ${o.rate / 4} requests; with the opt-in \`routing.breaker.slowCallMs: 250\` the circuit`,
    'opens once 5 calls have hung for 250 ms, well before the first timeout (see docs/llm.md).',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      'paced-requests': { type: 'string' },
      rate: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const num = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number, got ${v}`);
    return n;
  };
  const result = await runReliability({
    requests: num(values.requests, 'requests'),
    concurrency: num(values.concurrency, 'concurrency'),
    pacedRequests: num(values['paced-requests'], 'paced-requests'),
    rate: num(values.rate, 'rate'),
    out: values.out,
  });
  if (result.targets.some((t) => !t.met)) process.exitCode = 2;
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`bench:reliability failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
