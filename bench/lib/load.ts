import { Pool } from 'undici';

/** One request the load generator sends; `body` may vary per request. */
export interface LoadTarget {
  url: string;
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** The body of the i-th request (JSON text). */
  body?: (i: number) => string;
  /** Read the whole response (SSE streams included) before counting the request done. */
  expectStatus?: number;
}

export interface LoadOptions {
  concurrency: number;
  /** Measured period. */
  durationMs: number;
  /** Unmeasured period before it (connections, JIT, caches). */
  warmupMs: number;
  /** Stop after this many measured requests (bounded runs), if set. */
  maxRequests?: number;
  /**
   * Paced mode: requests start on a fixed schedule of `rate` per second (shared by all
   * workers) instead of back to back. Latency is then measured from each request's scheduled
   * start, so queueing behind a slow request counts (no coordinated omission). Use it to
   * measure the latency a component adds at a given load, below saturation.
   */
  rate?: number;
}

export interface LoadResult {
  concurrency: number;
  /** Requests answered in the measured period (errors excluded). */
  requests: number;
  /** Requests completed over the whole run, warm-up and errors included (what the server did). */
  sent: number;
  errors: number;
  /** First few error descriptions, for the report. */
  errorSamples: string[];
  seconds: number;
  rps: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/**
 * A closed-loop load generator: `concurrency` workers, each sending its next request as soon as
 * the previous one finished, over a keep-alive pool of as many connections. Latency is measured
 * per request with a monotonic clock, from send to the last byte of the body.
 */
export async function runLoad(target: LoadTarget, options: LoadOptions): Promise<LoadResult> {
  return (await runLoadInterleaved([target], options))[0]!;
}

/**
 * {@link runLoad} over several targets at once, interleaved request by request (the i-th request
 * goes to `targets[i % n]`, from the same workers and schedule; `rate` is the total), so every
 * target is measured under the same conditions at the same moments: what one adds to another is
 * then the difference of their figures, which load elsewhere on the machine moves far less than
 * runs one after the other. One result per target, in order; `concurrency` in each is the
 * workers' number (shared).
 */
export async function runLoadInterleaved(targets: LoadTarget[], options: LoadOptions): Promise<LoadResult[]> {
  const per = targets.map((target) => ({
    target,
    pool: new Pool(target.url, { connections: options.concurrency, pipelining: 1, keepAliveTimeout: 30_000 }),
    expect: target.expectStatus ?? 200,
    method: target.method ?? 'POST',
    headers: { 'content-type': 'application/json', ...(target.headers ?? {}) },
    latencies: [] as number[],
    errorSamples: [] as string[],
    errors: 0,
    sent: 0,
  }));
  let counter = 0;
  let measuring = false;
  let stop = false;

  const origin = process.hrtime.bigint();
  const intervalNs = options.rate ? BigInt(Math.round(1e9 / options.rate)) : 0n;

  async function worker(): Promise<void> {
    while (!stop) {
      const i = counter++;
      const t = per[i % per.length]!;
      let started = process.hrtime.bigint();
      if (intervalNs > 0n) {
        const due = origin + BigInt(i) * intervalNs;
        if (due > started) {
          // On time: the timer's own lateness is the generator's, not the server's.
          await new Promise((r) => setTimeout(r, Number(due - started) / 1e6));
          if (stop) break;
          started = process.hrtime.bigint();
        } else {
          // Behind schedule: the wait for a free worker counts as latency.
          started = due;
        }
      }
      let ok = false;
      let why = '';
      try {
        const res = await t.pool.request({ path: t.target.path, method: t.method, headers: t.headers, body: t.target.body ? t.target.body(i) : undefined });
        ok = res.statusCode === t.expect;
        if (ok) {
          // Read to the last byte without building a string: an embeddings answer is ~250 KB, and
          // 64 of them at once as strings made the generator's own peak RSS the bench's largest.
          for await (const _chunk of res.body) {
            // drained
          }
        } else why = `${res.statusCode} ${(await res.body.text()).slice(0, 160)}`;
      } catch (err) {
        why = (err as Error).message;
      }
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      t.sent++;
      if (!measuring) continue;
      if (ok) t.latencies.push(ms);
      else {
        t.errors++;
        if (t.errorSamples.length < 5) t.errorSamples.push(why);
      }
      if (options.maxRequests && per.reduce((n, p) => n + p.latencies.length + p.errors, 0) >= options.maxRequests) stop = true;
    }
  }

  const workers = Array.from({ length: options.concurrency }, () => worker());
  await new Promise((r) => setTimeout(r, options.warmupMs));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.durationMs);
    const poll = setInterval(() => {
      if (stop) {
        clearTimeout(timer);
        clearInterval(poll);
        resolve();
      }
    }, 20);
    timer.unref?.();
    setTimeout(() => clearInterval(poll), options.durationMs + 10);
  });
  stop = true;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  measuring = false;
  await Promise.all(workers);
  await Promise.all(per.map((p) => p.pool.close()));
  return per.map(({ latencies, errors, errorSamples, sent }) => {
    const sorted = Float64Array.from(latencies).sort();
    const sum = latencies.reduce((a, b) => a + b, 0);
    return {
      concurrency: options.concurrency,
      requests: latencies.length,
      sent,
      errors,
      errorSamples,
      seconds,
      rps: latencies.length / seconds,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
      mean: latencies.length ? sum / latencies.length : NaN,
    };
  });
}
