/**
 * Grafana dashboards of promptmesh, built as Grafana JSON models (schemaVersion 39). The
 * `Observability` construct ships them as ConfigMaps for the Grafana dashboard sidecar.
 *
 * Every query uses the metric names in contracts/index.ts METRICS (and the recording rules of
 * ./rules.ts); `$namespace` and `$datasource` are dashboard variables.
 */
import { METRICS, PATHS } from '../../../contracts';
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
/** Routes that are not traffic: probes and scrapes. */
const PROBE_ROUTES = [PATHS.healthz, PATHS.readyz, PATHS.metrics].join('|');

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

/** The request path: traffic, latency and errors per service, SLO burn, prompts, templates. */
export function overviewDashboard(routerService: string): Dashboard {
  const http = (suffix: string, extra = '') => `${METRICS.httpDuration}_${suffix}{${NS}${extra}}`;
  // The service is the target's `job` (DESIGN.md "Metric labels"); probes and scrapes are no traffic.
  const user = `,route!~"${PROBE_ROUTES}"`;
  const router = `,job="${routerService}"`;
  const quantile = (q: number) => ({
    expr: `histogram_quantile(${q}, sum by (job, le) (rate(${http('bucket', user)}[$__rate_interval])))`,
    legend: `{{job}} p${Math.round(q * 100)}`,
  });
  const prompt = (suffix: string, extra = '') => `${METRICS.promptDuration}_${suffix}{${NS}${extra}}`;
  return dashboard('promptmesh-overview', 'promptmesh / overview', [
    {
      title: 'Request rate by service',
      description: 'HTTP requests per second each service answers (probes and scrapes excluded).',
      unit: 'reqps',
      targets: [{ expr: `sum by (job) (rate(${http('count', user)}[$__rate_interval]))`, legend: '{{job}}' }],
    },
    {
      title: 'Latency by service (p50 / p95 / p99)',
      description: 'Request duration quantiles per service, from the histogram.',
      unit: 's',
      targets: [quantile(0.5), quantile(0.95), quantile(0.99)],
    },
    {
      title: 'Errors (5xx ratio by service)',
      description: 'Share of requests that failed with a 5xx status, per service.',
      unit: 'percentunit',
      min: 0,
      targets: [
        {
          expr: `sum by (job) (rate(${http('count', `${user},status_code=~"5.."`)}[$__rate_interval])) / sum by (job) (rate(${http('count', user)}[$__rate_interval]))`,
          legend: '{{job}}',
        },
      ],
    },
    {
      title: 'Responses by status code (router)',
      description: 'Router responses per second by status code (4xx are client errors, not SLO errors).',
      unit: 'reqps',
      targets: [{ expr: `sum by (status_code) (rate(${http('count', `${router}${user}`)}[$__rate_interval]))`, legend: '{{status_code}}' }],
    },
    {
      title: 'Rate-limit rejections by service',
      description: 'Requests answered 429 per second: API key limits (router) and provider limits (llm).',
      unit: 'reqps',
      targets: [{ expr: `sum by (job) (rate(${http('count', ',status_code="429"')}[$__rate_interval]))`, legend: '{{job}}' }],
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
      title: 'Prompt traffic by prompt version',
      description: 'Chat completions per second that rendered a template, by template and version.',
      unit: 'reqps',
      targets: [{ expr: `sum by (prompt, version) (rate(${METRICS.promptRequests}{${NS}}[$__rate_interval]))`, legend: '{{prompt}} v{{version}}' }],
    },
    {
      title: 'Prompt latency p95 by prompt version',
      description: 'Duration of the chat completions of each template version, 95th percentile.',
      unit: 's',
      targets: [
        {
          expr: `histogram_quantile(0.95, sum by (prompt, version, le) (rate(${prompt('bucket')}[$__rate_interval])))`,
          legend: '{{prompt}} v{{version}}',
        },
      ],
    },
    {
      title: 'Prompt errors by prompt version',
      description: 'Share of the chat completions of each template version that failed with a 5xx.',
      unit: 'percentunit',
      min: 0,
      targets: [
        {
          expr: `(sum by (prompt, version) (rate(${prompt('count', ',status_code=~"5.."')}[$__rate_interval])) or sum by (prompt, version) (rate(${prompt('count')}[$__rate_interval])) * 0) / sum by (prompt, version) (rate(${prompt('count')}[$__rate_interval]))`,
          legend: '{{prompt}} v{{version}}',
        },
      ],
    },
    {
      title: 'Prompt cost (USD per hour) by prompt version',
      description: 'Spend rate of the chat completions of each template version (cache hits cost nothing).',
      unit: 'currencyUSD',
      targets: [{ expr: `sum by (prompt, version) (rate(${METRICS.promptCostUsd}{${NS}}[$__rate_interval])) * 3600`, legend: '{{prompt}} v{{version}}' }],
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
      title: 'Spend (USD per hour) by team',
      description: 'Spend rate per team (the key\'s team; none for keys without one, other past the label cap).',
      unit: 'currencyUSD',
      targets: [{ expr: `sum by (team) (rate(${METRICS.costUsd}{${NS}}[$__rate_interval])) * 3600`, legend: '{{team}}' }],
    },
    {
      title: 'Spend (USD per hour) by key',
      description: 'Spend rate per API key id, the 20 largest (other past the label cap).',
      unit: 'currencyUSD',
      targets: [{ expr: `topk(20, sum by (key) (rate(${METRICS.costUsd}{${NS}}[$__rate_interval])) * 3600)`, legend: '{{key}}' }],
    },
    {
      title: 'Budget used (current period) by key and team',
      description: 'Spent / budget for each key and team with a budget; PromptmeshBudgetNearlySpent warns at 80%.',
      unit: 'percentunit',
      min: 0,
      targets: [
        {
          expr: `max by (budget, id, period) (${METRICS.budgetSpentUsd}{${NS}}) / max by (budget, id, period) (${METRICS.budgetLimitUsd}{${NS}})`,
          legend: '{{budget}} {{id}} ({{period}})',
        },
      ],
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
      title: 'Cache savings (USD per hour) by model',
      description: 'What the cached answers served would have cost at their provider and model prices.',
      unit: 'currencyUSD',
      targets: [{ expr: `sum by (provider, model) (rate(${METRICS.cacheSavedUsd}{${NS}}[$__rate_interval])) * 3600`, legend: '{{provider}} / {{model}}' }],
    },
    {
      title: 'Cache requests by result',
      description: 'Cache lookups per second: hit, miss, skip (not cacheable), error.',
      unit: 'reqps',
      targets: [{ expr: `sum by (result) (rate(${METRICS.cacheRequests}{${NS}}[$__rate_interval]))`, legend: '{{result}}' }],
    },
  ]);
}
