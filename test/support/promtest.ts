/**
 * promtool unit tests of the SLO burn-rate alerts over their long windows (1 h, 6 h), which an
 * end-to-end run cannot wait for. The input series are not written by hand: they carry the
 * label sets a real scrape stored (the e2e reads them from Prometheus; the committed fixture
 * `infra/k8s/observability/router-scrape-labels.json` is what it read), so a rule that selects
 * on a label Prometheus does not store fails here.
 */
import { join } from 'node:path';
import { stringify } from 'yaml';

/** A series' labels as Prometheus' series API returns them (`__name__` included). */
export type LabelSet = Record<string, string>;

/** The label sets of the router's chat series as the e2e scrape stored them (committed fixture). */
export const ROUTER_SCRAPE_LABELS_FILE = join(__dirname, '..', '..', 'infra', 'k8s', 'observability', 'router-scrape-labels.json');

/**
 * What the fixture keeps of the stored label sets: the router's chat request `_count` and its
 * `_bucket`s at 10 s and +Inf, sorted, with `instance` (the test's port) replaced by the pod
 * address it stands for (pod IP and the Istio agent's port).
 */
export function routerScrapeLabels(stored: LabelSet[]): LabelSet[] {
  return stored
    .filter((l) => l.route === '/v1/chat/completions' && (l.__name__!.endsWith('_count') || l.le === '10' || l.le === '+Inf'))
    .map((l): LabelSet => ({ ...l, instance: '10.0.0.10:15020' }))
    .map((l) => Object.fromEntries(Object.keys(l).sort().map((k) => [k, l[k]!])))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

interface AlertRule {
  alert?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function selector(labels: LabelSet): string {
  const { __name__: name, ...rest } = labels;
  const inner = Object.keys(rest)
    .sort()
    .map((k) => `${k}=${JSON.stringify(rest[k])}`)
    .join(',');
  return `${name}{${inner}}`;
}

/**
 * Picks from the stored label sets the router's request series for one status: its `_count`
 * and its `_bucket`s at the latency threshold and `+Inf`. A status the scrape did not see is
 * derived from a stored series by changing `status_code` only (every other label is the
 * target's, the same for every status).
 */
function requestSeries(labelSets: LabelSet[], status: string, le: string): { count: LabelSet; fast: LabelSet; all: LabelSet } {
  const chat = labelSets.filter((l) => l.route === '/v1/chat/completions' && l.method === 'POST');
  const pick = (name: string, extra: Record<string, string> = {}): LabelSet => {
    const match = (l: LabelSet) => l.__name__ === name && Object.entries(extra).every(([k, v]) => l[k] === v);
    const exact = chat.find((l) => match(l) && l.status_code === status);
    if (exact) return exact;
    const any = chat.find(match);
    if (!any) throw new Error(`no stored series ${name}${JSON.stringify(extra)} for the router's chat route among ${labelSets.length} label sets`);
    return { ...any, status_code: status };
  };
  return {
    count: pick('http_server_request_duration_seconds_count'),
    fast: pick('http_server_request_duration_seconds_bucket', { le }),
    all: pick('http_server_request_duration_seconds_bucket', { le: '+Inf' }),
  };
}

/**
 * promtool test files (name -> YAML) for the fast (1 h / 5 m) and slow (6 h / 30 m) burn-rate
 * alerts of both SLOs, plus a healthy case, on one-minute samples over seven hours.
 */
export function longWindowRuleTests(
  labelSets: LabelSet[],
  ruleGroups: Array<{ rules: AlertRule[] }>,
  options: { rulesFile: string; latencyThresholdSeconds?: number },
): Record<string, string> {
  const le = String(options.latencyThresholdSeconds ?? 10);
  const ok = requestSeries(labelSets, '200', le);
  const failed = requestSeries(labelSets, '503', le);
  const namespace = ok.count.namespace;
  if (!namespace) throw new Error('the stored label sets have no namespace label');
  const alerts = new Map(ruleGroups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.alert!, r]));
  const expect = (name: string) => {
    const rule = alerts.get(name);
    if (!rule) throw new Error(`no alert ${name} in the rules`);
    return [{ exp_labels: { ...rule.labels, namespace }, exp_annotations: rule.annotations }];
  };
  // Per minute: `okRate` requests succeed (of which `slowOk` take longer than the threshold)
  // and `errRate` fail with 503, sampled every `step` minutes for seven hours (the 6 h window
  // and some). The slow and healthy cases sample every 2 minutes, which their 30 m and 6 h
  // windows do not notice, to keep promtool quick.
  const input = (okRate: number, errRate: number, slowOk: number, step: number) => {
    const v = (perMinute: number) => `0+${perMinute * step}x${420 / step}`;
    return [
      { series: selector(ok.count), values: v(okRate) },
      { series: selector(ok.all), values: v(okRate) },
      { series: selector(ok.fast), values: v(okRate - slowOk) },
      { series: selector(failed.count), values: v(errRate) },
      { series: selector(failed.all), values: v(errRate) },
      { series: selector(failed.fast), values: v(errRate) },
    ];
  };
  const names = ['Availability', 'Latency'].flatMap((slo) => ['Fast', 'Slow'].map((speed) => `Promptmesh${slo}BudgetBurn${speed}`));
  const none = (except: string[], at: string) => names.filter((n) => !except.includes(n)).map((alertname) => ({ eval_time: at, alertname, exp_alerts: [] }));
  const file = (tests: unknown[], step: number) => stringify({ rule_files: [options.rulesFile], evaluation_interval: `${step}m`, tests }, { lineWidth: 0 });
  return {
    'burn-fast.promtest.yaml': file([
      {
        // 5% of requests fail (50x a 0.1% budget) and 20% are slow (20x a 1% budget): both fast
        // burns fire once an hour of it fills the 1 h window.
        name: 'fast burn: 5% errors, 20% slow, over the 1 h window',
        interval: '1m',
        input_series: input(950, 50, 190, 1),
        alert_rule_test: [
          { eval_time: '70m', alertname: 'PromptmeshAvailabilityBudgetBurnFast', exp_alerts: expect('PromptmeshAvailabilityBudgetBurnFast') },
          { eval_time: '70m', alertname: 'PromptmeshLatencyBudgetBurnFast', exp_alerts: expect('PromptmeshLatencyBudgetBurnFast') },
        ],
      },
    ], 1),
    'burn-slow.promtest.yaml': file([
      {
        // 1% errors and 8% slow: above 6x the budget over 6 h and 30 m, below 14.4x.
        name: 'slow burn: 1% errors, 8% slow, over the 6 h window; no fast burn',
        interval: '2m',
        input_series: input(990, 10, 80, 2),
        alert_rule_test: [
          { eval_time: '6h10m', alertname: 'PromptmeshAvailabilityBudgetBurnSlow', exp_alerts: expect('PromptmeshAvailabilityBudgetBurnSlow') },
          { eval_time: '6h10m', alertname: 'PromptmeshLatencyBudgetBurnSlow', exp_alerts: expect('PromptmeshLatencyBudgetBurnSlow') },
          ...none(['PromptmeshAvailabilityBudgetBurnSlow', 'PromptmeshLatencyBudgetBurnSlow'], '6h10m'),
        ],
      },
    ], 2),
    'burn-healthy.promtest.yaml': file([
      {
        // 0.05% errors and 0.5% slow: inside both budgets, nothing fires.
        name: 'healthy: inside both budgets, no burn alert',
        interval: '2m',
        input_series: input(10000, 5, 50, 2),
        alert_rule_test: none([], '6h10m'),
      },
    ], 2),
  };
}
