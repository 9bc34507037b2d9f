/**
 * Grafana dashboards of promptmesh, built as Grafana JSON models (schemaVersion 39). The
 * `Observability` construct ships them as ConfigMaps for the Grafana dashboard sidecar.
 *
 * Every query uses the metric names in contracts/index.ts METRICS (and the recording rules of
 * ./rules.ts); `$namespace` and `$datasource` are dashboard variables.
 */
import { METRICS } from '../../../contracts';
import { RECORDS } from './rules';

/** A Grafana panel target. */
export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
  readonly legendFormat?: string;
}

/** The part of a Grafana panel model these dashboards use. */
export interface DashboardPanel {
  readonly id: number;
  readonly type: 'timeseries' | 'stat' | 'state-timeline' | 'row';
  readonly title: string;
  readonly description?: string;
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly datasource?: { type: string; uid: string };
  readonly targets?: DashboardTarget[];
  readonly fieldConfig?: Record<string, unknown>;
  readonly options?: Record<string, unknown>;
}

/** The part of a Grafana dashboard model these dashboards use. */
export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly tags: string[];
  readonly panels: DashboardPanel[];
  readonly [key: string]: unknown;
}

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };
const NS = 'namespace="$namespace"';

interface PanelSpec {
  title: string;
  description: string;
  type?: DashboardPanel['type'];
  unit: string;
  targets: Array<{ expr: string; legend: string }>;
  width?: number;
  mappings?: unknown[];
  min?: number;
  max?: number;
}

/** Lays panels out on Grafana's 24-column grid, two per row unless a width is given. */
function layout(specs: PanelSpec[]): DashboardPanel[] {
  let x = 0;
  let y = 0;
  const height = 8;
  return specs.map((s, i) => {
    const w = s.width ?? 12;
    if (x + w > 24) {
      x = 0;
      y += height;
    }
    const panel: DashboardPanel = {
      id: i + 1,
      type: s.type ?? 'timeseries',
      title: s.title,
      description: s.description,
      gridPos: { h: height, w, x, y },
      datasource: DATASOURCE,
      targets: s.targets.map((t, j) => ({ refId: String.fromCharCode(65 + j), expr: t.expr, legendFormat: t.legend })),
      fieldConfig: {
        defaults: {
          unit: s.unit,
          ...(s.min === undefined ? {} : { min: s.min }),
          ...(s.max === undefined ? {} : { max: s.max }),
          ...(s.mappings ? { mappings: s.mappings } : {}),
        },
        overrides: [],
      },
      options: s.type === 'state-timeline' ? { showValue: 'never', mergeValues: true } : { legend: { displayMode: 'list', placement: 'bottom' }, tooltip: { mode: 'multi' } },
    };
    x += w;
    return panel;
  });
}

function dashboard(uid: string, title: string, panels: PanelSpec[]): Dashboard {
  return {
    uid,
    title,
    tags: ['promptmesh'],
    timezone: 'browser',
    editable: false,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: {}, hide: 0 },
        {
          name: 'namespace',
          label: 'Namespace',
          type: 'query',
          datasource: DATASOURCE,
          query: { query: `label_values(${METRICS.httpDuration}_count, namespace)`, refId: 'namespace' },
          definition: `label_values(${METRICS.httpDuration}_count, namespace)`,
          refresh: 2,
          current: {},
          hide: 0,
        },
      ],
    },
    annotations: { list: [] },
    panels: layout(panels),
  };
}

/** The request path: traffic, latency, errors, SLO burn, template freshness. */
export function overviewDashboard(routerService: string): Dashboard {
  const http = (suffix: string, extra = '') => `${METRICS.httpDuration}_${suffix}{${NS}${extra}}`;
  const router = `,service="${routerService}"`;
  const quantile = (q: number) => ({
    expr: `histogram_quantile(${q}, sum by (le) (rate(${http('bucket', router)}[$__rate_interval])))`,
    legend: `p${Math.round(q * 100)}`,
  });
  return dashboard('promptmesh-overview', 'promptmesh / overview', [
    {
      title: 'Request rate by service',
      description: 'HTTP requests per second each service answers.',
      unit: 'reqps',
      targets: [{ expr: `sum by (service) (rate(${http('count')}[$__rate_interval]))`, legend: '{{service}}' }],
    },
    {
      title: 'Router latency (p50 / p95 / p99)',
      description: 'Router request duration quantiles, from the histogram.',
      unit: 's',
      targets: [quantile(0.5), quantile(0.95), quantile(0.99)],
    },
    {
      title: 'Errors (5xx ratio by service)',
      description: 'Share of requests that failed with a 5xx status.',
      unit: 'percentunit',
      min: 0,
      targets: [
        {
          expr: `sum by (service) (rate(${http('count', ',status_code=~"5.."')}[$__rate_interval])) / sum by (service) (rate(${http('count')}[$__rate_interval]))`,
          legend: '{{service}}',
        },
      ],
    },
    {
      title: 'Responses by status code (router)',
      description: 'Router responses per second by status code (4xx are client errors, not SLO errors).',
      unit: 'reqps',
      targets: [{ expr: `sum by (status_code) (rate(${http('count', router)}[$__rate_interval]))`, legend: '{{status_code}}' }],
    },
    {
      title: 'Availability SLO: error ratio by window',
      description: 'Recorded 5xx ratios over the burn-rate windows (compare with the budget).',
      unit: 'percentunit',
      min: 0,
      targets: ['5m', '1h', '6h'].map((w) => ({ expr: `${RECORDS.availabilityErrorRatio(w)}{${NS}}`, legend: w })),
    },
    {
      title: 'Latency SLO: slow ratio by window',
      description: 'Recorded ratios of requests slower than the SLO threshold.',
      unit: 'percentunit',
      min: 0,
      targets: ['5m', '1h', '6h'].map((w) => ({ expr: `${RECORDS.latencySlowRatio(w)}{${NS}}`, legend: w })),
    },
    {
      title: 'Template cache age',
      description: 'Seconds since each router last synced its template cache.',
      unit: 's',
      targets: [{ expr: `max by (pod) (${METRICS.templateCacheAge}{${NS}})`, legend: '{{pod}}' }],
    },
    {
      title: 'Degraded components',
      description: 'Parts a service is serving without (1 = down): postgres, redis, templates, context. Pods stay ready while degraded (docs/router.md, "Degradation").',
      unit: 'short',
      min: 0,
      max: 1,
      targets: [{ expr: `max by (component) (${METRICS.degraded}{${NS}})`, legend: '{{component}}' }],
    },
    {
      title: 'Prompt requests by prompt and version',
      description: 'Requests per second that rendered a template.',
      unit: 'reqps',
      targets: [{ expr: `sum by (prompt, version) (rate(${METRICS.promptRequests}{${NS}}[$__rate_interval]))`, legend: '{{prompt}} v{{version}}' }],
    },
  ]);
}

/** The model side: tokens, cost, provider latency and errors, circuits, the response cache. */
export function llmDashboard(): Dashboard {
  const circuitMappings = [
    {
      type: 'value',
      options: {
        '0': { text: 'closed', color: 'green', index: 0 },
        '1': { text: 'half-open', color: 'yellow', index: 1 },
        '2': { text: 'open', color: 'red', index: 2 },
      },
    },
  ];
  const ops = (suffix: string, extra = '') => `${METRICS.genAiDuration}_${suffix}{${NS}${extra}}`;
  return dashboard('promptmesh-llm', 'promptmesh / LLM providers', [
    {
      title: 'Tokens per second by type',
      description: 'Input and output tokens per second, from the token usage histogram.',
      unit: 'short',
      targets: [{ expr: `sum by (token_type) (rate(${METRICS.genAiTokens}_sum{${NS}}[$__rate_interval]))`, legend: '{{token_type}}' }],
    },
    {
      title: 'Tokens per second by model',
      description: 'All tokens per second, by provider and model.',
      unit: 'short',
      targets: [{ expr: `sum by (provider, model) (rate(${METRICS.genAiTokens}_sum{${NS}}[$__rate_interval]))`, legend: '{{provider}} / {{model}}' }],
    },
    {
      title: 'Cost (USD per hour) by model',
      description: 'Spend rate from the configured prices.',
      unit: 'currencyUSD',
      targets: [{ expr: `sum by (provider, model) (rate(${METRICS.costUsd}{${NS}}[$__rate_interval])) * 3600`, legend: '{{provider}} / {{model}}' }],
    },
    {
      title: 'Cost over the selected range',
      description: 'USD spent in the dashboard time range.',
      type: 'stat',
      unit: 'currencyUSD',
      targets: [{ expr: `sum(increase(${METRICS.costUsd}{${NS}}[$__range]))`, legend: 'total' }],
    },
    {
      title: 'Provider latency p95 by provider',
      description: 'Duration of successful provider calls, 95th percentile.',
      unit: 's',
      targets: [
        {
          expr: `histogram_quantile(0.95, sum by (le, provider) (rate(${ops('bucket', ',outcome="success"')}[$__rate_interval])))`,
          legend: '{{provider}}',
        },
      ],
    },
    {
      title: 'Provider error ratio',
      description: 'Failed calls / calls per provider (5m), the alerting SLI.',
      unit: 'percentunit',
      min: 0,
      targets: [{ expr: `${RECORDS.providerErrorRatio}{${NS}}`, legend: '{{provider}}' }],
    },
    {
      title: 'Provider calls by outcome',
      description: 'Calls per second by provider and outcome.',
      unit: 'reqps',
      targets: [{ expr: `sum by (provider, outcome) (rate(${ops('count')}[$__rate_interval]))`, legend: '{{provider}} {{outcome}}' }],
    },
    {
      title: 'Circuit states',
      description: 'Circuit breaker per provider: closed, half-open, open (worst pod).',
      type: 'state-timeline',
      unit: 'none',
      mappings: circuitMappings,
      targets: [{ expr: `max by (provider) (${METRICS.circuitState}{${NS}})`, legend: '{{provider}}' }],
    },
    {
      title: 'Response cache hit ratio',
      description: 'Hits / cache lookups (requests the cache could serve), 30 minutes and 1 day.',
      unit: 'percentunit',
      min: 0,
      max: 1,
      targets: [
        { expr: `${RECORDS.cacheHitRatio('30m')}{${NS}}`, legend: '30m' },
        { expr: `${RECORDS.cacheHitRatio('1d')}{${NS}}`, legend: '1d' },
      ],
    },
    {
      title: 'Cache requests by result',
      description: 'Cache lookups per second: hit, miss, skip (not cacheable), error.',
      unit: 'reqps',
      targets: [{ expr: `sum by (result) (rate(${METRICS.cacheRequests}{${NS}}[$__rate_interval]))`, legend: '{{result}}' }],
    },
  ]);
}
