/**
 * The Prometheus rules of promptmesh: recording rules for the SLIs and alerts on them, as plain
 * data in the Prometheus rule-file shape (`groups: [{ name, rules }]`), so the same groups go into
 * a PrometheusRule object and into a file for `promtool check rules` / `promtool test rules`.
 *
 * Metric and label names are the ones in contracts/index.ts METRICS and DESIGN.md "Metrics";
 * the target labels (`job`, `namespace`, `pod`, ...) are the ones prometheus-operator gives a
 * ServiceMonitor's targets, as Prometheus stores them (DESIGN.md "Metric labels").
 */
import { METRICS, PATHS } from '../../../contracts';

/** A recording rule. */
export interface RecordingRule {
  readonly record: string;
  readonly expr: string;
  readonly labels?: Record<string, string>;
}

/** An alerting rule. */
export interface AlertingRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

/** One rule group. */
export interface RuleGroup {
  readonly name: string;
  readonly interval?: string;
  readonly rules: ReadonlyArray<RecordingRule | AlertingRule>;
}

/** What the rules are built from; every field has a default in `Observability`. */
export interface RuleOptions {
  /**
   * The `job` label of the router's series as Prometheus stores them (the PromptService
   * ServiceMonitor takes it from the Service's `app.kubernetes.io/component`: `router`).
   */
  readonly routerService: string;
  /** Fraction of router requests that must not fail with 5xx over 30 days (0.999 = 99.9%). */
  readonly availabilityObjective: number;
  /** Fraction of router requests that must finish within `latencyThresholdSeconds` over 30 days. */
  readonly latencyObjective: number;
  /** The latency SLO threshold: a bucket boundary of the request duration histogram. */
  readonly latencyThresholdSeconds: number;
  /** Provider error ratio (failed calls / calls, per provider, 5 minutes) that raises an alert. */
  readonly providerErrorRatio: number;
  /** Minutes a provider's circuit must stay open before the alert fires. */
  readonly circuitOpenMinutes: number;
  /** Alert when the 30-minute cache hit ratio falls below this fraction of the 1-day ratio. */
  readonly cacheHitRatioDropFactor: number;
  /** Alert when a router's template cache has not synced for longer than this. */
  readonly templateCacheMaxAgeSeconds: number;
  /** Alert when a key or team has spent this fraction of its current period's budget. */
  readonly budgetWarnRatio: number;
  /** The runbook page; each alert's `runbook_url` is this plus `#<alert name in lower case>`. */
  readonly runbookBaseUrl: string;
}

/** The runbook every alert links to (docs/observability.md, one section per alert). */
export const DEFAULT_RUNBOOK_BASE_URL = 'https://github.com/promptmesh/promptmesh/blob/main/docs/observability.md';

/** Recording rule names the dashboards and alerts use. */
export const RECORDS = {
  availabilityErrorRatio: (window: string) => `promptmesh:router_request_errors:ratio_rate${window}`,
  latencySlowRatio: (window: string) => `promptmesh:router_request_slow:ratio_rate${window}`,
  providerErrorRatio: 'promptmesh:gen_ai_operation_errors:ratio_rate5m',
  cacheHitRatio: (window: string) => `promptmesh:cache_hit:ratio_rate${window}`,
} as const;

/** Metrics of the exporter sidecars the data-store constructs run (not promptmesh's own). */
export const EXPORTER_METRICS = {
  /** redis_exporter: 1 when the last scrape reached Redis. */
  redisUp: 'redis_up',
  /** postgres_exporter: 1 when the last scrape reached PostgreSQL. */
  postgresUp: 'pg_up',
} as const;

/** Windows the SLI ratios are recorded over (the multi-window, multi-burn-rate pairs). */
export const SLO_WINDOWS = ['5m', '30m', '1h', '6h'] as const;

/**
 * The burn-rate alert pairs for a 30-day objective (Google SRE workbook, chapter 5): a fast burn
 * spends 2% of the budget in an hour (14.4x), a slow burn 5% in six hours (6x). Each alert needs
 * both its long and its short window above the threshold, so it fires fast and resets fast.
 */
export const BURN_RATES = [
  { speed: 'Fast', factor: 14.4, long: '1h', short: '5m', for: '2m', severity: 'critical' },
  { speed: 'Slow', factor: 6, long: '6h', short: '30m', for: '5m', severity: 'critical' },
] as const;

/** Routes that are not user traffic and stay out of the SLIs. */
const NON_USER_ROUTES = [PATHS.healthz, PATHS.readyz, PATHS.metrics];

/** The rule groups for the given options. */
export function ruleGroups(o: RuleOptions): RuleGroup[] {
  // The target's `job`, not a label of the app's: Prometheus renames an app label called
  // `service` to `exported_service` (DESIGN.md "Metric labels").
  const requests = `${METRICS.httpDuration}_count{job="${o.routerService}",route!~"${NON_USER_ROUTES.join('|')}"}`;
  const errors = requests.replace(/}$/, ',status_code=~"5.."}');
  const fast = requests.replace(`${METRICS.httpDuration}_count{`, `${METRICS.httpDuration}_bucket{`).replace(/}$/, `,le="${formatLe(o.latencyThresholdSeconds)}"}`);
  const byNs = 'sum by (namespace)';

  const sli: RecordingRule[] = [];
  for (const w of SLO_WINDOWS) {
    sli.push({
      record: RECORDS.availabilityErrorRatio(w),
      // `or ... * 0` records 0 (not nothing) while there are requests but no errors.
      expr: `(${byNs} (rate(${errors}[${w}])) or (${byNs} (rate(${requests}[${w}])) * 0)) / ${byNs} (rate(${requests}[${w}]))`,
    });
  }
  for (const w of SLO_WINDOWS) {
    sli.push({
      record: RECORDS.latencySlowRatio(w),
      expr: `1 - (${byNs} (rate(${fast}[${w}])) / ${byNs} (rate(${requests}[${w}])))`,
    });
  }
  const calls = `${METRICS.genAiDuration}_count`;
  const lookups = `${METRICS.cacheRequests}{result!="skip"}`;
  const hits = `${METRICS.cacheRequests}{result="hit"}`;
  const usage: RecordingRule[] = [
    {
      record: RECORDS.providerErrorRatio,
      expr: `(sum by (namespace, provider) (rate(${calls}{outcome!="success"}[5m])) or (sum by (namespace, provider) (rate(${calls}[5m])) * 0)) / sum by (namespace, provider) (rate(${calls}[5m]))`,
    },
    ...(['30m', '1d'] as const).map((w) => ({
      record: RECORDS.cacheHitRatio(w),
      expr: `(${byNs} (rate(${hits}[${w}])) or (${byNs} (rate(${lookups}[${w}])) * 0)) / ${byNs} (rate(${lookups}[${w}]))`,
    })),
  ];

  const sloAlerts: AlertingRule[] = [];
  const slos = [
    { name: 'Availability', objective: o.availabilityObjective, record: RECORDS.availabilityErrorRatio, what: 'router requests failing with 5xx' },
    { name: 'Latency', objective: o.latencyObjective, record: RECORDS.latencySlowRatio, what: `router requests slower than ${o.latencyThresholdSeconds}s` },
  ];
  for (const slo of slos) {
    for (const b of BURN_RATES) {
      // The budget is written as (1 - objective) in PromQL, so the file shows the objective as given.
      const threshold = `(${b.factor} * (1 - ${slo.objective}))`;
      sloAlerts.push({
        alert: `Promptmesh${slo.name}BudgetBurn${b.speed}`,
        expr: `${slo.record(b.long)} > ${threshold} and ${slo.record(b.short)} > ${threshold}`,
        for: b.for,
        labels: { severity: b.severity, slo: slo.name.toLowerCase(), burn: b.speed.toLowerCase() },
        annotations: {
          summary: `promptmesh ${slo.name.toLowerCase()} SLO: error budget burning ${b.factor}x too fast`,
          description: `The ratio of ${slo.what} over ${b.long} and over ${b.short} is above ${b.factor} times the budget of a ${slo.objective} objective over 30 days; at this rate the budget is gone in ${burnDays(b.factor)}.`,
        },
      });
    }
  }

  const componentAlerts: AlertingRule[] = [
    {
      alert: 'PromptmeshProviderErrorRateHigh',
      expr: `${RECORDS.providerErrorRatio} > ${o.providerErrorRatio}`,
      for: '10m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'LLM provider {{ $labels.provider }} fails more than ' + `${percent(o.providerErrorRatio)} of calls`,
        description: `More than ${percent(o.providerErrorRatio)} of calls to provider {{ $labels.provider }} failed over the last 5 minutes, for 10 minutes. Fallback routing may hide it from clients; check the provider's status and the llm logs.`,
      },
    },
    {
      alert: 'PromptmeshCircuitOpen',
      // max_over_time bridges the short half-open probes of a circuit that keeps re-opening.
      expr: `max by (namespace, provider) (max_over_time(${METRICS.circuitState}[2m])) == 2`,
      for: `${o.circuitOpenMinutes}m`,
      labels: { severity: 'warning' },
      annotations: {
        summary: 'The circuit breaker for provider {{ $labels.provider }} is open',
        description: `The llm service has kept the circuit for provider {{ $labels.provider }} open for ${o.circuitOpenMinutes} minutes: requests skip it (fallback) or fail.`,
      },
    },
    {
      alert: 'PromptmeshCacheHitRatioDrop',
      expr: `${RECORDS.cacheHitRatio('30m')} < ${o.cacheHitRatioDropFactor} * ${RECORDS.cacheHitRatio('1d')}`,
      for: '15m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'The response cache hit ratio dropped',
        description: `The response cache hit ratio over 30 minutes is below ${o.cacheHitRatioDropFactor} times its 1-day ratio: Redis may be failing or evicting, or traffic changed. Cost and latency rise.`,
      },
    },
    {
      alert: 'PromptmeshTemplateCacheStale',
      expr: `max by (namespace, pod) (${METRICS.templateCacheAge}) > ${o.templateCacheMaxAgeSeconds}`,
      for: '5m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'Router {{ $labels.pod }} serves templates older than ' + `${o.templateCacheMaxAgeSeconds}s`,
        description: `Router {{ $labels.pod }} has not synced its template cache for more than ${o.templateCacheMaxAgeSeconds} seconds: template changes do not reach it. Check the templates service and the change feed (Redis pub/sub).`,
      },
    },
  ];

  componentAlerts.push({
    alert: 'PromptmeshDegraded',
    // Pods stay ready while degraded (readiness means "can serve"), so this is what tells.
    expr: `max by (namespace, component) (${METRICS.degraded}) == 1`,
    for: '10m',
    labels: { severity: 'warning' },
    annotations: {
      summary: 'promptmesh serves without {{ $labels.component }}',
      description: 'At least one pod has served without {{ $labels.component }} for 10 minutes. Pods stay ready and answer, degraded: no history, cached templates only, no response cache or cluster-wide limits (docs/router.md, Degradation).',
    },
  });

  // From the exporter sidecars of the Redis and Postgres constructs (redis_exporter, postgres_exporter).
  const dataStoreAlerts: AlertingRule[] = [
    {
      alert: 'PromptmeshRedisDown',
      expr: `${EXPORTER_METRICS.redisUp} == 0`,
      for: '2m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'Redis {{ $labels.pod }} does not answer its exporter',
        description: 'The exporter beside Redis {{ $labels.pod }} cannot reach it for 2 minutes: sessions, the response cache, rate limits and template pushes degrade.',
      },
    },
    {
      alert: 'PromptmeshPostgresDown',
      expr: `${EXPORTER_METRICS.postgresUp} == 0`,
      for: '2m',
      labels: { severity: 'critical' },
      annotations: {
        summary: 'PostgreSQL {{ $labels.pod }} does not answer its exporter',
        description: 'The exporter beside PostgreSQL {{ $labels.pod }} cannot reach it for 2 minutes: template changes fail; routers keep serving their cached templates.',
      },
    },
  ];

  // From the router's budget gauges (docs/keys.md): every replica reports the same totals, so
  // the max over pods is the one value.
  const budgetBy = 'namespace, budget, id, period';
  const budgetAlerts: AlertingRule[] = [
    {
      alert: 'PromptmeshBudgetNearlySpent',
      expr: `max by (${budgetBy}) (${METRICS.budgetSpentUsd}) / max by (${budgetBy}) (${METRICS.budgetLimitUsd}) >= ${o.budgetWarnRatio}`,
      for: '5m',
      labels: { severity: 'warning' },
      annotations: {
        summary: 'The {{ $labels.budget }} {{ $labels.id }} has spent ' + `${percent(o.budgetWarnRatio)} of its budget per {{ $labels.period }}`,
        description:
          'The {{ $labels.budget }} {{ $labels.id }} has spent {{ $value | humanizePercentage }} of its budget for the current {{ $labels.period }} (UTC). At 100% its requests get 429 budget_exceeded until the period resets; raise the budget (PATCH /v1/keys/{id} or PUT /v1/teams/{id}) if that is not intended.',
      },
    },
  ];

  // Every alert links its section of the runbook (the heading is the alert's name).
  const withRunbook = (alerts: AlertingRule[]): AlertingRule[] =>
    alerts.map((a) => ({ ...a, annotations: { ...a.annotations, runbook_url: `${o.runbookBaseUrl}#${a.alert.toLowerCase()}` } }));
  return [
    { name: 'promptmesh-sli.rules', rules: sli },
    { name: 'promptmesh-usage.rules', rules: usage },
    { name: 'promptmesh-slo.alerts', rules: withRunbook(sloAlerts) },
    { name: 'promptmesh-components.alerts', rules: withRunbook(componentAlerts) },
    { name: 'promptmesh-datastores.alerts', rules: withRunbook(dataStoreAlerts) },
    { name: 'promptmesh-budget.alerts', rules: withRunbook(budgetAlerts) },
  ];
}

/** The `le` label value prom-client writes for a bucket boundary. */
export function formatLe(seconds: number): string {
  return String(seconds);
}

function percent(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10}%`;
}

function burnDays(factor: number): string {
  const days = 30 / factor;
  return days < 1 ? `${Math.round(days * 24)} hours` : `${Math.round(days * 10) / 10} days`;
}
