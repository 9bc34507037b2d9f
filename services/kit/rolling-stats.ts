/**
 * Rolling one-hour aggregates (requests, errors, latency histogram, cost) kept in Redis, so
 * every replica answers the same figures without Prometheus (the console reads them through
 * `GET /v1/stats/...`).
 *
 * Layout: one Redis hash per group and minute, `<prefix>stats:<kind>:{<group>}:<minute>`, with
 * fields `<series>|req`, `|err`, `|ms` (latency sum), `|nusd` (cost in nano-USD, integer so
 * sums never drift), `|b<i>` (latency histogram bucket counts, not cumulative). The hash tag
 * keeps a group's 60 minutes in one cluster slot, so a read is one pipeline to one node. Keys
 * expire after two hours.
 *
 * Writes are batched in memory and flushed once per `flushIntervalMs` (one pipeline per group,
 * however many requests), so the request path never waits on Redis; the figures lag by that interval.
 * A flush that fails drops its batch (logged once per outage): the aggregates are an operator's
 * view, not accounting.
 */
import type { RedisClient } from './redis';
import type { Logger } from './logger';

/** Upper bounds (ms) of the latency histogram buckets; the last bucket is everything above. */
export const LATENCY_BUCKETS_MS = [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000] as const;

/** The kinds of aggregates: per prompt (group: template name, series: version) and per provider. */
export const STATS_KINDS = { prompts: 'prompts', providers: 'providers' } as const;

/** The one group provider aggregates are kept under (series: provider name). */
export const PROVIDER_STATS_GROUP = 'all';

/** The window the aggregates cover. */
export const STATS_WINDOW_MINUTES = 60;

const NANO = 1e9;
const TTL_SECONDS = 2 * 60 * 60;

/** One finished call. */
export interface StatsSample {
  /** How long the call took, in milliseconds. */
  latencyMs: number;
  /** Whether it failed. */
  error: boolean;
  /** What it cost in USD. @default 0 */
  costUsd?: number;
}

/** One minute of one series. */
export interface StatsPoint {
  /** The minute's start, epoch milliseconds. */
  t: number;
  requests: number;
  errors: number;
  cost_usd: number;
  /** Mean latency of the minute; null without requests. */
  latency_ms_mean: number | null;
}

/** One series (a prompt version, a provider) over the window. */
export interface StatsSeries {
  series: string;
  requests: number;
  errors: number;
  /** errors / requests; 0 without requests. */
  error_rate: number;
  cost_usd: number;
  /** Latency: mean and quantiles estimated from the histogram (bucket upper bounds). */
  latency_ms: { mean: number | null; p50: number | null; p95: number | null; p99: number | null };
  /** One point per minute of the window, oldest first (minutes without traffic are zeros). */
  points: StatsPoint[];
}

/** What {@link RollingStats.read} answers. */
export interface StatsWindow {
  /** Start and end of the window, epoch milliseconds. */
  from: number;
  to: number;
  series: StatsSeries[];
}

/** Options of {@link RollingStats}. */
export interface RollingStatsOptions {
  redis: RedisClient;
  /** `REDIS_KEY_PREFIX`. */
  keyPrefix: string;
  /** What is counted: `prompts` (router) or `providers` (llm). */
  kind: string;
  logger: Logger;
  /** How often the batch goes to Redis. @default 1000 */
  flushIntervalMs?: number;
  /** The clock, for tests. @default Date.now */
  now?: () => number;
}

interface Pending {
  req: number;
  err: number;
  ms: number;
  nusd: number;
  buckets: number[];
}

function bucketOf(latencyMs: number): number {
  const i = LATENCY_BUCKETS_MS.findIndex((b) => latencyMs <= b);
  return i === -1 ? LATENCY_BUCKETS_MS.length : i;
}

/** The quantile q from bucket counts: the upper bound of the bucket it falls in (the top bound for the overflow bucket). */
function quantile(buckets: number[], total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= rank && buckets[i]! > 0) return LATENCY_BUCKETS_MS[Math.min(i, LATENCY_BUCKETS_MS.length - 1)]!;
  }
  return null;
}

/** Writes and reads the aggregates of one kind (see the module comment). */
export class RollingStats {
  private readonly pending = new Map<string, Map<string, Pending>>();
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private failing = false;
  private flushing: Promise<void> | undefined;

  constructor(private readonly options: RollingStatsOptions) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 1_000);
    this.timer.unref();
  }

  private key(group: string, minute: number): string {
    // Braces would end the hash tag early; a group name with one is mapped to a safe spelling.
    const safe = group.replace(/[{}]/g, '_');
    return `${this.options.keyPrefix}stats:${this.options.kind}:{${safe}}:${minute}`;
  }

  /** Counts one call of `series` in `group` in the current minute (in memory until the flush). */
  record(group: string, series: string, sample: StatsSample): void {
    const minute = Math.floor(this.now() / 60_000);
    const key = this.key(group, minute);
    let fields = this.pending.get(key);
    if (!fields) this.pending.set(key, (fields = new Map()));
    let p = fields.get(series);
    if (!p) fields.set(series, (p = { req: 0, err: 0, ms: 0, nusd: 0, buckets: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0) }));
    p.req += 1;
    if (sample.error) p.err += 1;
    p.ms += Math.max(0, Math.round(sample.latencyMs));
    p.nusd += Math.max(0, Math.round((sample.costUsd ?? 0) * NANO));
    p.buckets[bucketOf(sample.latencyMs)]! += 1;
  }

  /**
   * Sends what was recorded since the last flush to Redis: one pipeline per group (a Redis
   * Cluster pipeline must stay within one slot, and a group's keys share one by their hash tag).
   */
  async flush(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending.size === 0) return;
    const byTag = new Map<string, Array<[string, Map<string, Pending>]>>();
    for (const entry of this.pending) {
      const tag = /\{[^}]*\}/.exec(entry[0])![0];
      let list = byTag.get(tag);
      if (!list) byTag.set(tag, (list = []));
      list.push(entry);
    }
    this.pending.clear();
    const sends = [...byTag.values()].map((batch) => {
      const pipeline = this.options.redis.pipeline();
      for (const [key, fields] of batch) {
        for (const [series, p] of fields) {
          pipeline.hincrby(key, `${series}|req`, p.req);
          if (p.err) pipeline.hincrby(key, `${series}|err`, p.err);
          pipeline.hincrby(key, `${series}|ms`, p.ms);
          if (p.nusd) pipeline.hincrby(key, `${series}|nusd`, p.nusd);
          p.buckets.forEach((n, i) => {
            if (n) pipeline.hincrby(key, `${series}|b${i}`, n);
          });
        }
        pipeline.expire(key, TTL_SECONDS);
      }
      return pipeline.exec().then((results) => {
        const failed = results?.find(([err]) => err);
        if (failed) throw failed[0];
      });
    });
    this.flushing = Promise.all(sends)
      .then(() => {
        if (this.failing) this.options.logger.info({ kind: this.options.kind }, 'stats: Redis reachable again');
        this.failing = false;
      })
      .catch((err: unknown) => {
        if (!this.failing) this.options.logger.warn({ err: (err as Error).message, kind: this.options.kind }, 'stats: could not write the aggregates to Redis; dropping them');
        this.failing = true;
      })
      .finally(() => {
        this.flushing = undefined;
      });
    await this.flushing;
  }

  /** The last {@link STATS_WINDOW_MINUTES} minutes of every series of `group`, as every replica sees them. */
  async read(group: string): Promise<StatsWindow> {
    const last = Math.floor(this.now() / 60_000);
    const minutes = Array.from({ length: STATS_WINDOW_MINUTES }, (_, i) => last - STATS_WINDOW_MINUTES + 1 + i);
    const pipeline = this.options.redis.pipeline();
    for (const m of minutes) pipeline.hgetall(this.key(group, m));
    const results = (await pipeline.exec()) ?? [];
    const bySeries = new Map<string, { points: StatsPoint[]; buckets: number[]; ms: number }>();
    results.forEach(([err, raw], i) => {
      if (err) throw err;
      const hash = raw as Record<string, string>;
      const perSeries = new Map<string, Record<string, number>>();
      for (const [field, value] of Object.entries(hash)) {
        const bar = field.lastIndexOf('|');
        const name = field.slice(0, bar);
        let fields = perSeries.get(name);
        if (!fields) perSeries.set(name, (fields = {}));
        fields[field.slice(bar + 1)] = Number(value);
      }
      for (const [name, f] of perSeries) {
        let s = bySeries.get(name);
        if (!s) {
          s = {
            points: minutes.map((m) => ({ t: m * 60_000, requests: 0, errors: 0, cost_usd: 0, latency_ms_mean: null })),
            buckets: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0),
            ms: 0,
          };
          bySeries.set(name, s);
        }
        const requests = f.req ?? 0;
        s.points[i] = {
          t: minutes[i]! * 60_000,
          requests,
          errors: f.err ?? 0,
          cost_usd: (f.nusd ?? 0) / NANO,
          latency_ms_mean: requests > 0 ? (f.ms ?? 0) / requests : null,
        };
        s.ms += f.ms ?? 0;
        for (let b = 0; b < s.buckets.length; b++) s.buckets[b]! += f[`b${b}`] ?? 0;
      }
    });
    const series: StatsSeries[] = [...bySeries].map(([name, s]) => {
      const requests = s.points.reduce((n, p) => n + p.requests, 0);
      const errors = s.points.reduce((n, p) => n + p.errors, 0);
      const nusd = s.points.reduce((n, p) => n + Math.round(p.cost_usd * NANO), 0);
      return {
        series: name,
        requests,
        errors,
        error_rate: requests > 0 ? errors / requests : 0,
        cost_usd: nusd / NANO,
        latency_ms: {
          mean: requests > 0 ? s.ms / requests : null,
          p50: quantile(s.buckets, requests, 0.5),
          p95: quantile(s.buckets, requests, 0.95),
          p99: quantile(s.buckets, requests, 0.99),
        },
        points: s.points,
      };
    });
    series.sort((a, b) => a.series.localeCompare(b.series, 'en', { numeric: true }));
    return { from: minutes[0]! * 60_000, to: (last + 1) * 60_000, series };
  }

  /** Stops the timer and flushes what is left. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
