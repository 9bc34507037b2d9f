/**
 * A real Prometheus server and a real Alertmanager for tests (Debian packages `prometheus` and
 * `prometheus-alertmanager`, installed by scripts/test-prereqs.sh), each on a free port with
 * its own storage in a scratch directory, stopped by the test that started them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, waitFor } from './net';

/** A server binary as a child process; a missing binary fails loudly with the way to get it. */
class Server {
  private readonly child: ChildProcess;
  output = '';

  constructor(
    readonly binary: string,
    readonly packageName: string,
    args: string[],
  ) {
    this.child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (b: Buffer) => {
      this.output = (this.output + b.toString()).slice(-30_000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.child.on('error', (err: NodeJS.ErrnoException) => {
      this.output += err.code === 'ENOENT' ? `\n${binary} is not installed: apt-get install ${packageName} (npm test installs it: scripts/test-prereqs.sh)` : `\n${err.message}`;
    });
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null || this.child.pid === undefined;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(timer);
  }

  async waitReady(url: string, what: string): Promise<void> {
    await waitFor(
      async () => {
        if (this.exited) throw new Error(`${what} exited:\n${this.output}`);
        return (await fetch(url)).ok;
      },
      30_000,
      what,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${this.output}`);
    });
  }
}

/** A running Alertmanager that routes every alert to one webhook. */
export interface TestAlertmanager {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts `prometheus-alertmanager` with clustering off and one route: every alert, grouped by
 * alert name and its labels, to `webhookUrl`, with waits of a second so tests see alerts fast.
 */
export async function startAlertmanager(dir: string, webhookUrl: string): Promise<TestAlertmanager> {
  const port = await freePort();
  const config = {
    route: { receiver: 'webhook', group_by: ['...'], group_wait: '1s', group_interval: '1s', repeat_interval: '1h' },
    receivers: [{ name: 'webhook', webhook_configs: [{ url: webhookUrl, send_resolved: true }] }],
  };
  const file = join(dir, 'alertmanager.yml');
  writeFileSync(file, stringify(config));
  const server = new Server('prometheus-alertmanager', 'prometheus-alertmanager', [
    `--config.file=${file}`,
    `--storage.path=${join(dir, 'alertmanager-data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=',
  ]);
  const url = `http://127.0.0.1:${port}`;
  try {
    await server.waitReady(`${url}/-/ready`, 'alertmanager to be ready');
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { url, port, stop: () => server.stop() };
}

/** A vector sample of the HTTP API. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An alert as `GET /api/v1/alerts` lists it. */
export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
}

/** A running Prometheus server and its HTTP API. */
export interface TestPrometheus {
  readonly url: string;
  /** An instant query; throws with Prometheus' error for a bad query. */
  query(expr: string): Promise<PromSample[]>;
  /** The label sets of the series `match` selects. */
  series(match: string): Promise<Array<Record<string, string>>>;
  /** Pending and firing alerts. */
  alerts(): Promise<PromAlert[]>;
  /** Scrape targets and their health. */
  targets(): Promise<Array<{ labels: Record<string, string>; health: string; lastError: string; scrapePool: string }>>;
  readonly output: () => string;
  stop(): Promise<void>;
}

/** What {@link startPrometheus} runs. */
export interface PrometheusOptions {
  /** Scratch directory for the configuration, rule files and the TSDB. */
  dir: string;
  /** `scrape_configs` of the configuration. */
  scrapeConfigs: Array<Record<string, unknown>>;
  /** Rule groups (Prometheus rule-file shape). */
  ruleGroups: unknown[];
  /** Alertmanager to send alerts to. */
  alertmanager?: TestAlertmanager;
  /** Scrape and evaluation interval. @default '1s' */
  interval?: string;
}

/** Starts `prometheus` with the given scrape configs and rules. */
export async function startPrometheus(o: PrometheusOptions): Promise<TestPrometheus> {
  const port = await freePort();
  const interval = o.interval ?? '1s';
  const rulesFile = join(o.dir, 'rules.yml');
  writeFileSync(rulesFile, stringify({ groups: o.ruleGroups }, { lineWidth: 0 }));
  const config: Record<string, unknown> = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: [rulesFile],
    scrape_configs: o.scrapeConfigs,
  };
  if (o.alertmanager) config.alerting = { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${o.alertmanager.port}`] }] }] };
  const file = join(o.dir, 'prometheus.yml');
  writeFileSync(file, stringify(config, { lineWidth: 0 }));
  const server = new Server('prometheus', 'prometheus', [
    `--config.file=${file}`,
    `--storage.tsdb.path=${join(o.dir, 'prometheus-data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // Alerts go out at once and are re-sent every second while they fire.
    '--rules.alert.resend-delay=1s',
    '--log.level=warn',
  ]);
  const url = `http://127.0.0.1:${port}`;
  try {
    await server.waitReady(`${url}/-/ready`, 'prometheus to be ready');
  } catch (err) {
    await server.stop();
    throw err;
  }
  async function api<T>(path: string): Promise<T> {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  }
  return {
    url,
    async query(expr) {
      const data = await api<{ resultType: string; result: PromSample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      return data.resultType === 'vector' ? data.result : [];
    },
    series: (match) => api(`/api/v1/series?match[]=${encodeURIComponent(match)}`),
    alerts: async () => (await api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts,
    targets: async () =>
      (await api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string; scrapePool: string }> }>('/api/v1/targets')).activeTargets,
    output: () => server.output,
    stop: () => server.stop(),
  };
}

/**
 * Rules with time compressed for a test: every range selector (`[5m]`) and every `for:` is
 * divided by `factor`, so a 5-minute window becomes 5 seconds at a factor of 60. Thresholds,
 * label matchers and expressions are untouched; what an alert means is the same, on a faster
 * clock.
 */
export function compressRuleTime<T>(groups: T[], factor: number): T[] {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  const seconds = (d: string) => {
    let total = 0;
    for (const [, n, u] of d.matchAll(/(\d+)(ms|[smhdwy])/g)) total += Number(n) * units[u!]!;
    return total;
  };
  const scale = (d: string) => `${Math.max(1, Math.round(seconds(d) / factor))}s`;
  return groups.map((g) => {
    const group = g as { rules: Array<Record<string, unknown>> };
    return {
      ...group,
      rules: group.rules.map((r) => ({
        ...r,
        expr: String(r.expr).replace(/\[((?:\d+(?:ms|[smhdwy]))+)\]/g, (_m, d: string) => `[${scale(d)}]`),
        ...(r.for ? { for: scale(String(r.for)) } : {}),
      })),
    } as T;
  });
}
