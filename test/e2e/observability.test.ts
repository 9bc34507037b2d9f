/**
 * Observability end to end, on a real Prometheus and a real Alertmanager: the four services as
 * separate processes plus the fake provider, scraped with the configuration prometheus-operator
 * generates from the synthesized ServiceMonitors, the synthesized PrometheusRule loaded (time
 * compressed 60x: a 5-minute window is 5 seconds), alerts routed by Alertmanager to a webhook
 * here. Traffic and faults drive each alert; dashboards, the HPA's adapter rule and traces are
 * checked against what Prometheus and an OTLP receiver got. See docs/observability.md.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { App } from 'cdk8s';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { METRICS, SERVICE_NAMES, type ServiceName } from '../../contracts';
import { PromptSystem } from '../../infra/k8s';
import { PostgresExporter } from '../../infra/k8s/rds-exporter';
import { REQUESTS_PER_SECOND_ADAPTER_RULE, REQUESTS_PER_SECOND_METRIC } from '../../infra/k8s/monitoring';
import type { Dashboard } from '../../infra/k8s/observability/dashboards';
import { environmentProps } from '../../stacks/k8s/environments';
import { hashApiKey } from '../../services/router/auth';
import { startFakeProvider, type FakeProvider } from '../fake-provider/server';
import { freePort, waitFor } from '../support/net';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { uniquePrefix } from '../support/redis';
import { scrapeConfigsFor, type DiscoveredEndpoint, type ServiceMonitorObject } from '../support/prometheus-operator';
import { compressRuleTime, startAlertmanager, startPrometheus, type TestAlertmanager, type TestPrometheus } from '../support/prometheus';
import { ROUTER_SCRAPE_LABELS_FILE, longWindowRuleTests, routerScrapeLabels, type LabelSet } from '../support/promtest';
import { PrivateRedis, ServiceProcess } from './support';

const run = promisify(execFile);
const KEY = 'pm-obs-admin-key';
/** A key limited to 3 requests a minute: its rejections feed the rate-limit panel. */
const LIMITED_KEY = 'pm-obs-limited-key';
const NAMESPACE = 'promptmesh';
/** Rule time runs this much faster in the test (for: 2m -> 2s, rate(...[1h]) -> [60s]). */
const TIME_FACTOR = 60;
/** The template-cache alert threshold the test synthesizes with (the shipped 300 s cannot be waited for). */
const TEMPLATE_CACHE_MAX_AGE = 10;
/**
 * How long an alert may take to reach the webhook once its fault runs. Each fires within 10-30 s
 * on an idle machine; the bound is generous because the machine may be shared and busy.
 */
const ALERT_WAIT_MS = 240_000;

/**
 * An exporter (Debian packages prometheus-redis-exporter, prometheus-postgres-exporter) on a free
 * port, once its /metrics answers.
 */
async function startExporter(bin: string, args: (address: string) => string[], env: Record<string, string> = {}): Promise<{ address: string; stop: () => void }> {
  const address = `127.0.0.1:${await freePort()}`;
  const child: ChildProcess = spawn(bin, args(address), { stdio: 'ignore', env: { ...process.env, ...env } });
  await waitFor(async () => (await fetch(`http://${address}/metrics`).catch(() => undefined))?.status === 200, 60_000, `${bin} on ${address}`);
  return { address, stop: () => child.kill('SIGTERM') };
}

interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** The OTLP/HTTP JSON span shape the exporter sends (only what is asserted). */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status?: { code?: number };
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  service: string;
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The longest request the test's clients saw, in ms (a busy machine can make healthy traffic slow). */
let slowestMs = 0;

/** Keeps sending requests in the background until stopped; returns how many got each status. */
function background(perSecond: number, send: (i: number) => Promise<number>): { stop: () => Promise<Record<number, number>> } {
  const statuses: Record<number, number> = {};
  const inflight = new Set<Promise<void>>();
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const started = Date.now();
      const p: Promise<void> = send(i)
        .then((s) => {
          slowestMs = Math.max(slowestMs, Date.now() - started);
          statuses[s] = (statuses[s] ?? 0) + 1;
        })
        .catch(() => {
          statuses[0] = (statuses[0] ?? 0) + 1;
        })
        .finally(() => inflight.delete(p));
      inflight.add(p);
      await new Promise((r) => setTimeout(r, 1000 / perSecond));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await Promise.all(inflight);
      return statuses;
    },
  };
}

describe('observability on a real Prometheus and Alertmanager', () => {
  let dir: string;
  let fake: FakeProvider;
  let redis: PrivateRedis;
  let db: TestDatabase;
  let prometheus: TestPrometheus;
  let alertmanager: TestAlertmanager;
  let webhook: Server;
  let otlp: Server;
  const received: WebhookAlert[] = [];
  const spans: OtlpSpan[] = [];
  const procs = new Map<ServiceName, ServiceProcess>();
  const agents: Server[] = [];
  /** The Redis the redis_exporter watches (stopped for PromptmeshRedisDown; the services keep theirs). */
  let exportedRedis: PrivateRedis;
  /** The relay between postgres_exporter and PostgreSQL (cut for PromptmeshPostgresDown; the server stays up). */
  let pgRelay: TcpProxy;
  const exporters: Array<{ stop: () => void }> = [];
  let objects: any[];
  let routerUrl: string;

  const chat = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const res = await fetch(`${routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model: 'chat', ...body }),
    });
    await res.arrayBuffer();
    return res;
  };
  /** A request the cache can answer after its first time (temperature 0, same body). */
  const cached = (i: number) => chat({ temperature: 0, messages: [{ role: 'user', content: `cached question ${i % 3}` }] }).then((r) => r.status);
  /** A request that always reaches a provider. */
  const fresh = (i: number) => chat({ temperature: 0, messages: [{ role: 'user', content: `fresh question ${i} ${Math.random()}` }] }).then((r) => r.status);
  /** A request the cache skips (temperature above 0): it reaches a provider and leaves the hit ratio alone. */
  const uncached = (i: number) => chat({ temperature: 0.7, messages: [{ role: 'user', content: `uncached question ${i}` }] }).then((r) => r.status);
  const prompted = (i: number) =>
    chat({ prompt: { name: 'obs-greeting', variables: { name: `n${i}` } }, session_id: `obs-session-${i % 4}` }).then((r) => r.status);

  const firing = (name: string) => received.filter((a) => a.status === 'firing' && a.labels.alertname === name);
  async function waitForAlert(name: string, timeoutMs = ALERT_WAIT_MS): Promise<WebhookAlert> {
    await waitFor(() => firing(name).length > 0, timeoutMs, `alert ${name} to reach the webhook (received: ${[...new Set(received.map((a) => `${a.labels.alertname}:${a.status}`))].join(', ') || 'none'})`);
    return firing(name)[0]!;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pm-obs-'));
    // The webhook Alertmanager posts to, and the OTLP/HTTP receiver the services export to.
    webhook = createServer((req, res) => {
      void readBody(req).then((text) => {
        for (const a of (JSON.parse(text) as { alerts: WebhookAlert[] }).alerts) received.push(a);
        res.end();
      });
    });
    otlp = createServer((req, res) => {
      void readBody(req).then((text) => {
        const body = JSON.parse(text) as {
          resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: Array<{ spans: Omit<OtlpSpan, 'service'>[] }> }>;
        };
        for (const rs of body.resourceSpans ?? []) {
          const service = String(Object.values(rs.resource.attributes.find((a) => a.key === 'service.name')?.value ?? {})[0]);
          for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, attributes: s.attributes ?? [], service });
        }
        res.setHeader('content-type', 'application/json');
        res.end('{}');
      });
    });
    await Promise.all([webhook, otlp].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    const webhookUrl = `http://127.0.0.1:${(webhook.address() as { port: number }).port}/alerts`;
    const otlpUrl = `http://127.0.0.1:${(otlp.address() as { port: number }).port}`;

    fake = await startFakeProvider({ models: ['model-a', 'model-b'], recordRequests: 0 });
    [redis, db, exportedRedis, pgRelay] = await Promise.all([PrivateRedis.start(), createTestDatabase('e2e_obs'), PrivateRedis.start(), startTcpProxy(5432)]);
    const providersFile = join(dir, 'providers.yaml');
    writeFileSync(
      providersFile,
      [
        'providers:',
        `  - { name: fake-a, type: openai-compatible, baseUrl: ${fake.url}/v1, timeoutMs: 20000, models: [model-a], prices: { model-a: { input: 1, output: 2 } } }`,
        `  - { name: fake-b, type: openai-compatible, baseUrl: ${fake.url}/v1, timeoutMs: 20000, models: [model-b], prices: { model-b: { input: 1, output: 2 } } }`,
        'models:',
        '  chat:',
        '    - { provider: fake-a, model: model-a }',
        '    - { provider: fake-b, model: model-b }',
        // A breaker that opens only on a provider that is down, and stays open for the test.
        'routing: { strategy: priority, fallback: true, retries: { attempts: 0, backoffMs: 10 }, breaker: { failures: 5, failureRate: 0.8, windowSize: 20, minRequests: 10, cooldownMs: 600000 } }',
        'cache: { enabled: true, ttlSeconds: 600 }',
        '',
      ].join('\n'),
    );
    const keysFile = join(dir, 'keys.yaml');
    writeFileSync(
      keysFile,
      `keys:\n  - { id: obs-admin, sha256: ${hashApiKey(KEY)}, scopes: [invoke, admin] }\n  - { id: obs-limited, sha256: ${hashApiKey(LIMITED_KEY)}, scopes: [invoke], rpm: 3 }\n`,
    );
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: uniquePrefix('e2e-obs'),
      PROVIDERS_FILE: providersFile,
      API_KEYS_FILE: keysFile,
      OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      DRAIN_DELAY_MS: '0',
    };
    const ports = Object.fromEntries(await Promise.all(SERVICE_NAMES.map(async (s) => [s, await freePort()] as const))) as Record<ServiceName, number>;
    const url = (s: ServiceName) => `http://127.0.0.1:${ports[s]}`;
    for (const s of SERVICE_NAMES) {
      procs.set(s, new ServiceProcess(s, ports[s], s === 'router' ? { ...env, TEMPLATES_URL: url('templates'), CONTEXT_URL: url('context'), LLM_URL: url('llm') } : env, 240_000));
    }
    await Promise.all(['templates', 'context', 'llm'].map((s) => procs.get(s as ServiceName)!.start()));
    // A template with two versions (production -> 2), made before the router starts: its warm-up
    // caches the labelled version only, so a request for version 1 goes to templates (traced).
    const templatesApi = (path: string, method: string, body: unknown) =>
      fetch(`${url('templates')}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await templatesApi('/v1/templates', 'POST', { name: 'obs-greeting', type: 'chat', template: [{ role: 'system', content: 'Greet {{name}}.' }] })).status).toBe(201);
    expect((await templatesApi('/v1/templates/obs-greeting/versions', 'POST', { type: 'chat', template: [{ role: 'system', content: 'Say hello to {{name}}.' }] })).status).toBe(201);
    expect((await templatesApi('/v1/templates/obs-greeting/labels/production', 'PUT', { version: 2 })).status).toBe(200);
    await procs.get('router')!.start();
    routerUrl = url('router');

    // The cluster objects, as synthesized (the one test setting: a template-cache threshold
    // the test can wait for).
    const chart = new PromptSystem(new App({ outdir: join(dir, 'dist') }), 'promptmesh', {
      ...environmentProps('prod', 'ghcr.io/promptmesh/promptmesh:0.1.0'),
      observability: { templateCacheMaxAgeSeconds: TEMPLATE_CACHE_MAX_AGE },
    });
    // The exporter for a PostgreSQL outside the cluster, as the prod stack adds it (stacks/pulumi/program.ts).
    new PostgresExporter(chart, 'RdsExporter', { namespace: NAMESPACE, dataSourceSecret: { name: 'promptmesh-app', key: 'exporter-dsn' }, databaseCidrs: ['10.0.0.0/16'] });
    objects = chart.toJson();
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor') as ServiceMonitorObject[];
    // One "pod" per service: the first Deployment's pod template, reached on the port of the
    // Istio agent the ServiceMonitor scrapes, served here by a stand-in for the agent's
    // metrics merging (it serves the app's /metrics unchanged on /stats/prometheus).
    const endpoints: DiscoveredEndpoint[] = [];
    for (const s of SERVICE_NAMES) {
      const service = objects.find((o) => o.kind === 'Service' && o.metadata.labels?.['app.kubernetes.io/component'] === s && o.metadata.labels?.['promptmesh.io/metrics'] === 'true');
      expect(service, `metrics Service of ${s}`).toBeDefined();
      const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/component'] === s);
      const agent = createServer((req, res) => {
        if (req.url !== '/stats/prometheus') {
          res.statusCode = 404;
          res.end();
          return;
        }
        fetch(`${url(s)}/metrics`)
          .then(async (r) => {
            res.setHeader('content-type', r.headers.get('content-type') ?? 'text/plain');
            res.end(await r.text());
          })
          .catch(() => {
            res.statusCode = 503;
            res.end();
          });
      });
      await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
      agents.push(agent);
      const template = deployment.spec.template;
      endpoints.push({
        service: { name: service.metadata.name, namespace: service.metadata.namespace, labels: service.metadata.labels, ports: service.spec.ports },
        pod: { name: `${deployment.metadata.name}-6d4cf56db6-x7k2p`, labels: template.metadata.labels, containers: template.spec.containers },
        portName: service.spec.ports[0].name,
        address: `127.0.0.1:${(agent.address() as { port: number }).port}`,
      });
    }
    // The data stores' exporters: redis_exporter as the sidecar of the first Redis shard's pod,
    // postgres_exporter as the RDS exporter's pod, each behind the Service its ServiceMonitor selects.
    const pgDsn = new URL(db.url);
    pgDsn.port = String(pgRelay.port);
    pgDsn.searchParams.set('sslmode', 'disable');
    const [redisExporter, pgExporter] = await Promise.all([
      startExporter('prometheus-redis-exporter', (a) => ['-redis.addr', exportedRedis.url, '-web.listen-address', a]),
      startExporter('prometheus-postgres-exporter', (a) => [`--web.listen-address=${a}`, '--disable-settings-metrics'], { DATA_SOURCE_NAME: pgDsn.toString() }),
    ]);
    exporters.push(redisExporter, pgExporter);
    for (const [serviceName, workload, pod, address] of [
      ['redis', 'redis-0', 'redis-0-0', redisExporter.address],
      ['postgres-exporter', 'postgres-exporter', 'postgres-exporter-7b9c8d5f4-q2w4e', pgExporter.address],
    ] as const) {
      const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === serviceName);
      const template = objects.find((o) => (o.kind === 'StatefulSet' || o.kind === 'Deployment') && o.metadata.name === workload).spec.template;
      endpoints.push({
        service: { name: service.metadata.name, namespace: service.metadata.namespace, labels: service.metadata.labels, ports: service.spec.ports },
        pod: { name: pod, labels: template.metadata.labels, containers: template.spec.containers },
        portName: 'metrics',
        address,
      });
    }
    const { scrapeConfigs, fileSd } = scrapeConfigsFor(monitors, endpoints, {
      fileSdPath: (job) => join(dir, `${job.replaceAll('/', '_')}.json`),
      interval: '1s',
    });
    // postgres_exporter (0.11) takes about a second to answer once its database is unreachable
    // (pg_up 0): its job gets a 3 s timeout, or the 1 s one would drop the scrape and the series.
    for (const c of scrapeConfigs) if (String(c.job_name).includes('/postgres-exporter/')) Object.assign(c, { scrape_interval: '3s', scrape_timeout: '3s' });
    for (const [file, groups] of fileSd) writeFileSync(file, JSON.stringify(groups));
    const rule = objects.find((o) => o.kind === 'PrometheusRule');
    alertmanager = await startAlertmanager(dir, webhookUrl);
    prometheus = await startPrometheus({ dir, scrapeConfigs, ruleGroups: compressRuleTime(rule.spec.groups, TIME_FACTOR), alertmanager });

    await waitFor(async () => (await chat({ prompt: { name: 'obs-greeting', variables: { name: 'x' } } })).headers.get('x-promptmesh-prompt-version') === '2', 120_000, 'the router to serve version 2');
  }, 600_000);

  afterAll(async () => {
    await prometheus?.stop();
    await alertmanager?.stop();
    await Promise.all([...procs.values()].map((p) => p.stop('SIGTERM')));
    for (const s of [webhook, otlp, ...agents]) s?.close();
    for (const e of exporters) e.stop();
    await exportedRedis?.stop().catch(() => undefined);
    await pgRelay?.close().catch(() => undefined);
    await fake?.close().catch(() => undefined);
    await redis?.stop().catch(() => undefined);
    await db?.drop().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 600_000);

  it('scrapes the four services and the two data-store exporters with the labels prometheus-operator gives them, and no app label collides', async () => {
    await waitFor(async () => (await prometheus.targets()).filter((t) => t.health === 'up').length === 6, 120_000, 'six healthy targets');
    const series = await prometheus.series(`${METRICS.httpDuration}_count`);
    const jobs = new Set(series.map((s) => s.job));
    expect([...jobs].sort()).toEqual([...SERVICE_NAMES].sort());
    const router = series.find((s) => s.job === 'router')!;
    expect(router).toMatchObject({ namespace: NAMESPACE, service: 'router-metrics', endpoint: 'http-metrics', track: 'stable', app_kubernetes_io_version: '0.1.0' });
    expect(router.pod).toMatch(/^router-stable-/);
    expect(router.instance).toMatch(/^127\.0\.0\.1:\d+$/);
    // The exporters' series, with the labels the data-store alerts name (pod) and route by (namespace).
    const [redisUp] = await prometheus.series('redis_up');
    expect(redisUp).toMatchObject({ job: 'redis', namespace: NAMESPACE, service: 'redis', pod: 'redis-0-0', container: 'exporter', endpoint: 'metrics' });
    const [pgUp] = await prometheus.series('pg_up');
    expect(pgUp).toMatchObject({ job: 'postgres-exporter', namespace: NAMESPACE, service: 'postgres-exporter', container: 'exporter', endpoint: 'metrics' });
    expect(pgUp!.pod).toMatch(/^postgres-exporter-/);
    expect((await prometheus.query('redis_up == 1 and on() pg_up == 1')).length).toBe(1);
    // No series anywhere kept an app label that clashed with a target label.
    expect(await prometheus.query('count({__name__=~".+", exported_job!=""} or {__name__=~".+", exported_service!=""} or {__name__=~".+", exported_instance!=""} or {__name__=~".+", exported_pod!=""} or {__name__=~".+", exported_namespace!=""})')).toEqual([]);
  }, 600_000);

  it('healthy traffic fires no alert', async () => {
    const traffic = [background(4, cached), background(3, prompted), background(1, fresh)];
    // A client over its key's limit: 429s are client errors, no alert is about them.
    const limited = await Promise.all(
      Array.from({ length: 6 }, (_, i) => chat({ messages: [{ role: 'user', content: `limited ${i}` }] }, { authorization: `Bearer ${LIMITED_KEY}` }).then((r) => r.status)),
    );
    expect(limited).toContain(429);
    // A virtual key with a budget, used once: the budget gauges (and their panel) have a series.
    const created = await fetch(`${routerUrl}/v1/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'obs-budgeted', scopes: ['invoke'], budget: { usd: 100, period: 'month' } }),
    });
    expect(created.status).toBe(201);
    const { key: budgeted } = (await created.json()) as { key: string };
    expect((await chat({ messages: [{ role: 'user', content: 'on a budget' }] }, { authorization: `Bearer ${budgeted}` })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 20_000));
    const statuses = await Promise.all(traffic.map((t) => t.stop()));
    for (const s of statuses) expect(Object.keys(s)).toEqual(['200']);
    // Long enough for every compressed window and `for` to have been evaluated on it. On a
    // machine so busy that the clients themselves waited past the 10 s latency objective the
    // latency alerts are right to fire; no other alert may, ever.
    const latencyAllowed = slowestMs > 10_000;
    const isLatency = (name: string | undefined) => latencyAllowed && /^PromptmeshLatencyBudgetBurn/.test(name ?? '');
    expect((await prometheus.alerts()).filter((a) => a.state === 'firing' && !isLatency(a.labels.alertname))).toEqual([]);
    expect(received.filter((a) => !isLatency(a.labels.alertname))).toEqual([]);
  }, 600_000);

  it('one request is one trace: router -> templates, context, llm -> upstream, with gen_ai attributes and the trace id in the logs', async () => {
    // Version 1 is not in the router's cache (only labelled versions are): the router asks templates.
    // The client starts the trace, so the test knows its id.
    const traceId = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const res = await chat(
      { prompt: { name: 'obs-greeting', version: 1, variables: { name: 'trace' } }, session_id: 'obs-trace', temperature: 0.7 },
      { traceparent: `00-${traceId}-${clientSpan}-01` },
    );
    expect(res.status).toBe(200);
    let trace: OtlpSpan[] = [];
    await waitFor(
      () => {
        trace = spans.filter((s) => s.traceId === traceId);
        return ['promptmesh-router', 'promptmesh-templates', 'promptmesh-context', 'promptmesh-llm'].every((svc) => trace.some((s) => s.service === svc)) && trace.some((s) => attr(s, 'gen_ai.usage.input_tokens') !== undefined);
      },
      120_000,
      'the spans of the request',
    ).catch((err: Error) => {
      throw new Error(`${err.message}; spans of the trace: ${JSON.stringify(trace.map((s) => [s.service, s.name, s.kind, s.parentSpanId]))}; ${spans.length} spans in all`);
    });
    const routerSpans = trace.filter((s) => s.service === 'promptmesh-router' && s.kind === 2);
    expect(routerSpans).toHaveLength(1);
    expect(routerSpans[0]!.parentSpanId).toBe(clientSpan);
    const root = routerSpans[0]!;
    for (const svc of ['promptmesh-templates', 'promptmesh-context', 'promptmesh-llm']) {
      const server = trace.filter((s) => s.service === svc && s.kind === 2);
      expect(server.length, svc).toBeGreaterThan(0);
      for (const s of server) expect(s.parentSpanId, `${svc} is a child of the router's span`).toBe(root.spanId);
    }
    const llmServer = trace.find((s) => s.service === 'promptmesh-llm' && s.kind === 2)!;
    const llmSpans = trace.filter((s) => s.service === 'promptmesh-llm');
    const upstream = llmSpans.find((s) => s.kind === 3 && attr(s, 'gen_ai.request.model') === 'model-a')!;
    expect(upstream, 'a client span for the provider call').toBeDefined();
    expect(attr(upstream, 'gen_ai.operation.name')).toBe('chat');
    expect(attr(upstream, 'gen_ai.system')).toBe('openai-compatible');
    expect(Number(attr(upstream, 'gen_ai.usage.input_tokens'))).toBeGreaterThan(0);
    expect(Number(attr(upstream, 'gen_ai.usage.output_tokens'))).toBeGreaterThan(0);
    // The provider call hangs under the llm request (directly or through the llm's operation span).
    const ids = new Set(llmSpans.map((s) => s.spanId));
    let parent: OtlpSpan | undefined = upstream;
    while (parent && parent.spanId !== llmServer.spanId) parent = llmSpans.find((s) => s.spanId === parent!.parentSpanId);
    expect(parent, 'the provider span descends from the llm server span').toBeDefined();
    expect(ids.has(upstream.parentSpanId!)).toBe(true);

    // A failing request: error status on its spans, and its trace id in the log lines of the router and the llm.
    fake.setBehavior({ rules: [{ fault: { type: 'status', status: 500 } }] });
    const failedId = randomBytes(16).toString('hex');
    const failed = await chat({ model: 'model-b', messages: [{ role: 'user', content: 'fail please' }] }, { traceparent: `00-${failedId}-${clientSpan}-01` });
    fake.setBehavior({});
    expect(failed.status).toBeGreaterThanOrEqual(500);
    let failedTrace: OtlpSpan[] = [];
    await waitFor(
      () => {
        failedTrace = spans.filter((s) => s.traceId === failedId);
        return failedTrace.some((s) => s.service === 'promptmesh-llm' && s.kind === 3) && failedTrace.some((s) => s.service === 'promptmesh-router');
      },
      120_000,
      'the spans of the failed request',
    );
    expect(failedTrace.find((s) => s.service === 'promptmesh-router' && s.kind === 2)!.status?.code).toBe(2);
    expect(failedTrace.find((s) => s.service === 'promptmesh-llm' && s.kind === 3)!.status?.code).toBe(2);
    await waitFor(() => procs.get('router')!.output.includes(failedId) && procs.get('llm')!.output.includes(failedId), 60_000, 'the trace id in the logs');
    const line = procs.get('router')!.output.split('\n').find((l) => l.includes(failedId))!;
    expect(JSON.parse(line)).toMatchObject({ trace_id: failedId });
  }, 600_000);

  it('latency and outages: slow answers fire the latency burns; a killed templates service fires the stale template cache and the degraded alert; the data stores down fire theirs', async () => {
    expect(firing('PromptmeshDegraded'), 'no degraded alert before the outages').toEqual([]);
    // The outages run together, waited for in parallel: each alert's labels name its own fault.
    // "Redis down" is the exporter's own redis-server stopped, "PostgreSQL down" its relay cut
    // (the shared server stays up).
    await Promise.all([procs.get('templates')!.stop('SIGKILL'), exportedRedis.stop(), pgRelay.cut()]);
    const outages = Promise.all(['PromptmeshRedisDown', 'PromptmeshPostgresDown', 'PromptmeshDegraded'].map((name) => waitForAlert(name, ALERT_WAIT_MS)));
    outages.catch(() => undefined);
    fake.setBehavior({ rules: [{ latencyMs: 10_500 }] });
    const slow = background(6, uncached);
    const stale = await waitForAlert('PromptmeshTemplateCacheStale', ALERT_WAIT_MS);
    expect(stale.labels).toMatchObject({ severity: 'warning', namespace: NAMESPACE });
    expect(stale.annotations.summary).toContain(stale.labels.pod!);
    expect(stale.labels.pod).toMatch(/^router-stable-/);
    const fast = await waitForAlert('PromptmeshLatencyBudgetBurnFast', ALERT_WAIT_MS);
    await waitForAlert('PromptmeshLatencyBudgetBurnSlow', ALERT_WAIT_MS);
    await slow.stop();
    fake.setBehavior({});
    expect(fast.labels).toMatchObject({ severity: 'critical', slo: 'latency', burn: 'fast', namespace: NAMESPACE });
    expect(fast.annotations.summary).toContain('latency SLO');
    expect(fast.annotations.runbook_url).toMatch(/observability\.md#promptmeshlatencybudgetburnfast$/);
    expect(firing('PromptmeshAvailabilityBudgetBurnFast')).toEqual([]);

    const [redisDown, postgresDown] = await outages.catch(async (err: Error) => {
      const up = await prometheus.query('redis_up or pg_up');
      const targets = (await prometheus.targets()).map((t) => `${JSON.stringify(t.labels ?? {})}:${t.health}:${t.lastError ?? ''}`);
      throw new Error(`${err.message}; exporters: ${JSON.stringify(up)}; targets: ${targets.join(' | ')}; received: ${received.map((a) => a.labels.alertname).join(',')}`);
    });
    expect(redisDown.labels).toMatchObject({ severity: 'critical', namespace: NAMESPACE, job: 'redis', pod: 'redis-0-0' });
    expect(redisDown.annotations.summary).toBe('Redis redis-0-0 does not answer its exporter');
    expect(redisDown.annotations.runbook_url).toMatch(/observability\.md#promptmeshredisdown$/);
    expect(postgresDown.labels).toMatchObject({ severity: 'critical', namespace: NAMESPACE, job: 'postgres-exporter' });
    expect(postgresDown.annotations.summary).toBe(`PostgreSQL ${postgresDown.labels.pod} does not answer its exporter`);
    expect(postgresDown.annotations.runbook_url).toMatch(/observability\.md#promptmeshpostgresdown$/);
    // The router serves without its templates peer (cached templates): that, and only that, is degraded.
    await waitFor(() => firing('PromptmeshDegraded').some((a) => a.labels.component === 'templates'), ALERT_WAIT_MS, 'PromptmeshDegraded{component="templates"}');
    const degraded = firing('PromptmeshDegraded');
    expect(new Set(degraded.map((a) => a.labels.component))).toEqual(new Set(['templates']));
    expect(degraded[0]!.labels).toMatchObject({ severity: 'warning', namespace: NAMESPACE });
    expect(degraded[0]!.annotations.summary).toBe('promptmesh serves without templates');
    expect(degraded[0]!.annotations.runbook_url).toMatch(/observability\.md#promptmeshdegraded$/);
  }, 600_000);

  it('cache: misses after a run of hits fire the cache hit ratio drop', async () => {
    expect(firing('PromptmeshCacheHitRatioDrop'), 'no cache alert before the cache fault').toEqual([]);
    const misses = background(15, fresh);
    const alert = await waitForAlert('PromptmeshCacheHitRatioDrop', ALERT_WAIT_MS);
    await misses.stop();
    expect(alert.labels).toMatchObject({ severity: 'warning', namespace: NAMESPACE });
    expect(alert.annotations.runbook_url).toMatch(/#promptmeshcachehitratiodrop$/);
  }, 600_000);

  it('provider: errors fire the provider error alert, a provider down opens its breaker and fires the circuit alert', async () => {
    fake.setBehavior({ rules: [{ model: 'model-a', probability: 0.3, fault: { type: 'status', status: 500 } }] });
    const traffic = background(10, fresh);
    const errors = await waitForAlert('PromptmeshProviderErrorRateHigh', ALERT_WAIT_MS);
    expect(errors.labels).toMatchObject({ provider: 'fake-a', namespace: NAMESPACE, severity: 'warning' });
    expect(errors.annotations.summary).toContain('fake-a');
    fake.setBehavior({ rules: [{ model: 'model-a', fault: { type: 'status', status: 500 } }] });
    const open = await waitForAlert('PromptmeshCircuitOpen', ALERT_WAIT_MS);
    const statuses = await traffic.stop();
    expect(open.labels).toMatchObject({ provider: 'fake-a', namespace: NAMESPACE });
    expect(open.annotations.runbook_url).toMatch(/#promptmeshcircuitopen$/);
    // Fallback to fake-b kept clients whole: no 5xx, so no availability alert.
    expect(Object.keys(statuses)).toEqual(['200']);
    expect(firing('PromptmeshAvailabilityBudgetBurnFast')).toEqual([]);
  }, 600_000);

  it('availability: 5xx to clients fire the fast and slow error budget burn alerts', async () => {
    // fake-a's circuit is open; fake-b answers half the requests with 503: clients get 5xx.
    fake.setBehavior({ rules: [{ model: 'model-b', probability: 0.5, fault: { type: 'status', status: 503 } }] });
    const traffic = background(10, fresh);
    const fast = await waitForAlert('PromptmeshAvailabilityBudgetBurnFast', ALERT_WAIT_MS);
    await waitForAlert('PromptmeshAvailabilityBudgetBurnSlow', ALERT_WAIT_MS);
    const statuses = await traffic.stop();
    fake.setBehavior({});
    expect(Object.keys(statuses).some((s) => Number(s) >= 500)).toBe(true);
    expect(fast.labels).toMatchObject({ alertname: 'PromptmeshAvailabilityBudgetBurnFast', severity: 'critical', slo: 'availability', burn: 'fast', namespace: NAMESPACE });
    expect(fast.annotations.summary).toBe('promptmesh availability SLO: error budget burning 14.4x too fast');
    expect(fast.annotations.runbook_url).toMatch(/#promptmeshavailabilitybudgetburnfast$/);
  }, 600_000);

  it('every query of every dashboard panel returns at least one series', async () => {
    const maps = objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1');
    expect(maps.length).toBeGreaterThanOrEqual(2);
    const empty: string[] = [];
    let count = 0;
    for (const cm of maps) {
      for (const json of Object.values(cm.data as Record<string, string>)) {
        const d = JSON.parse(json) as Dashboard;
        for (const p of d.panels) {
          for (const t of p.targets ?? []) {
            count++;
            const expr = t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '10m').replaceAll('$namespace', NAMESPACE);
            if ((await prometheus.query(expr)).length === 0) empty.push(`${d.title} / ${p.title}: ${expr}`);
          }
        }
      }
    }
    expect(count).toBeGreaterThan(20);
    expect(empty).toEqual([]);
  }, 600_000);

  it("serves the HPAs' requests-per-second metric per pod through the prometheus-adapter rule", async () => {
    const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.metadata.labels['app.kubernetes.io/component'] === 'router');
    const podsMetric = hpa.spec.metrics.find((m: { type: string }) => m.type === 'Pods').pods.metric.name;
    const rule = REQUESTS_PER_SECOND_ADAPTER_RULE;
    // Discovery: the series query, then the name mapping (as the adapter does it).
    const discovered = await prometheus.series(rule.seriesQuery);
    const names = new Set(discovered.map((s) => s.__name__!.replace(new RegExp(rule.name.matches), rule.name.as)));
    expect([...names]).toEqual([podsMetric]);
    expect(podsMetric).toBe(REQUESTS_PER_SECOND_METRIC);
    // The per-pod query for the router's pods, rendered as the adapter renders its template.
    const pods = [...new Set(discovered.filter((s) => s.job === 'router').map((s) => s.pod!))];
    const query = rule.metricsQuery
      .replaceAll('<<.Series>>', `${METRICS.httpDuration}_count`)
      .replaceAll('<<.LabelMatchers>>', `namespace="${NAMESPACE}",pod=~"${pods.join('|')}"`)
      .replaceAll('<<.GroupBy>>', 'pod');
    const values = await prometheus.query(query);
    expect(values.map((v) => v.metric.pod)).toEqual(pods);
    expect(Number(values[0]!.value[1])).toBeGreaterThan(0);
  }, 600_000);

  it('the long burn windows (1h, 6h) pass promtool unit tests fed with the label sets this scrape stored', async () => {
    const stored = await prometheus.series(`{__name__=~"${METRICS.httpDuration}_(count|bucket)", job="router", route="/v1/chat/completions"}`);
    const rule = objects.find((o) => o.kind === 'PrometheusRule');
    const files = longWindowRuleTests(stored, rule.spec.groups, { rulesFile: 'rules.yaml' });
    const testDir = mkdtempSync(join(dir, 'promtest-'));
    writeFileSync(join(testDir, 'rules.yaml'), stringify({ groups: rule.spec.groups }, { lineWidth: 0 }));
    for (const [name, content] of Object.entries(files)) writeFileSync(join(testDir, name), content);
    const { stdout, stderr } = await run('promtool', ['test', 'rules', ...Object.keys(files)], { cwd: testDir }).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    });
    expect(`${stdout}${stderr}`).not.toContain('FAILED');
    // The committed fixture the unit tests generate the same files from is what this scrape stores.
    const live = routerScrapeLabels(stored);
    if (process.env.UPDATE_SCRAPE_LABELS === '1') writeFileSync(ROUTER_SCRAPE_LABELS_FILE, `${JSON.stringify(live, null, 2)}\n`);
    const committed = JSON.parse(readFileSync(ROUTER_SCRAPE_LABELS_FILE, 'utf8')) as LabelSet[];
    const ok = (sets: LabelSet[]) => sets.filter((l) => l.status_code === '200');
    expect(ok(live)).toEqual(ok(committed));
  }, 600_000);
});
