import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Chart } from 'cdk8s';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { METRICS } from '../../contracts';
import { LATENCY_BUCKETS } from '../../services/kit/metrics';
import { validateManifests } from '../../test/support/k8s-validate';
import { ROUTER_SCRAPE_LABELS_FILE, longWindowRuleTests, type LabelSet } from '../../test/support/promtest';
import { GRAFANA_DASHBOARD_LABEL, Observability, REQUEST_DURATION_BUCKETS, type ObservabilityProps } from './observability';
import type { Dashboard } from './observability/dashboards';
import { EXPORTER_METRICS } from './observability/rules';

const run = promisify(execFile);
const scratchDirs: string[] = [];
afterAll(() => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
});

function synth(props: ObservabilityProps = {}): { obs: Observability; objects: any[] } {
  const chart = new Chart(new App(), 'test', { namespace: 'pm' });
  const obs = new Observability(chart, 'observability', props);
  return { obs, objects: chart.toJson() };
}

/** Runs promtool; a missing binary fails with the way to get it, not a cryptic ENOENT. */
async function promtool(args: string[], cwd: string): Promise<string> {
  try {
    // Generous: promtool evaluates hours of one-minute samples, and the machine may be busy.
    const { stdout, stderr } = await run('promtool', args, { cwd, timeout: 240_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error('promtool is not installed (it is in the Debian package "prometheus": apt-get install prometheus; .ci/run installs it)');
    }
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/**
 * The long-window burn-rate tests, generated from the label sets the e2e scrape stored
 * (test/e2e/observability.test.ts checks the fixture against a live Prometheus).
 */
function burnRateTests(obs: Observability): Record<string, string> {
  const stored = JSON.parse(readFileSync(ROUTER_SCRAPE_LABELS_FILE, 'utf8')) as LabelSet[];
  expect(stored.length).toBeGreaterThan(0);
  return longWindowRuleTests(stored, obs.ruleGroups as unknown as Array<{ rules: Array<Record<string, any>> }>, { rulesFile: 'rules.yaml' });
}

function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pm-rules-'));
  scratchDirs.push(dir);
  return dir;
}

const PROMQL_WORDS = new Set([
  'sum', 'avg', 'min', 'max', 'count', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless',
  'bool', 'offset', 'rate', 'irate', 'increase', 'histogram_quantile', 'max_over_time', 'min_over_time', 'avg_over_time',
  'label_values', 'topk', 'bottomk', 'abs', 'clamp_min', 'clamp_max', 'vector', 'scalar', 'time',
]);

/** The metric names an expression refers to: identifiers that are not functions, keywords or labels. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/label_values\(([^,]+),[^)]*\)/g, '$1');
  const names = stripped.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  return [...new Set(names.filter((n) => !PROMQL_WORDS.has(n) && !/^\d/.test(n)))];
}

function allowedMetric(name: string, recorded: Set<string>): boolean {
  if (recorded.has(name)) return true;
  // The standard metrics of the exporter sidecars the data-store constructs run.
  if ((Object.values(EXPORTER_METRICS) as string[]).includes(name)) return true;
  const contract = Object.values(METRICS) as string[];
  return contract.some((m) => name === m || ['_bucket', '_count', '_sum'].some((s) => name === m + s));
}

/** Every PromQL expression in a dashboard (panel targets and query variables). */
function dashboardExprs(d: Dashboard): string[] {
  const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const templating = (d.templating as { list: Array<{ type: string; query: unknown }> }).list;
  for (const v of templating) if (v.type === 'query') exprs.push((v.query as { query: string }).query);
  return exprs;
}

describe('Observability construct', () => {
  it('makes one PrometheusRule and two dashboard ConfigMaps, valid against the schemas', () => {
    const { objects } = synth();
    expect(validateManifests(objects)).toEqual([]);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'PrometheusRule/promptmesh-rules',
      'ConfigMap/promptmesh-dashboard-overview',
      'ConfigMap/promptmesh-dashboard-llm',
    ]);
    expect(objects[0].metadata.labels.release).toBe('kube-prometheus-stack');
    for (const cm of objects.slice(1)) {
      expect(cm.metadata.labels.grafana_dashboard).toBe('1');
      expect(cm.metadata.annotations.grafana_folder).toBe('promptmesh');
    }
  });

  it('has the burn-rate pairs, provider, circuit, cache and template alerts, and SLI recording rules', () => {
    const { obs } = synth();
    const rules = obs.ruleGroups.flatMap((g) => g.rules) as unknown as Array<Record<string, string>>;
    const alerts = Object.fromEntries(rules.filter((r) => r.alert).map((r) => [r.alert, r.expr]));
    expect(Object.keys(alerts).sort()).toEqual([
      'PromptmeshAvailabilityBudgetBurnFast',
      'PromptmeshAvailabilityBudgetBurnSlow',
      'PromptmeshBudgetNearlySpent',
      'PromptmeshCacheHitRatioDrop',
      'PromptmeshCircuitOpen',
      'PromptmeshDegraded',
      'PromptmeshLatencyBudgetBurnFast',
      'PromptmeshLatencyBudgetBurnSlow',
      'PromptmeshPostgresDown',
      'PromptmeshProviderErrorRateHigh',
      'PromptmeshRedisDown',
      'PromptmeshTemplateCacheStale',
    ]);
    expect(alerts.PromptmeshAvailabilityBudgetBurnFast).toBe(
      'promptmesh:router_request_errors:ratio_rate1h > (14.4 * (1 - 0.999)) and promptmesh:router_request_errors:ratio_rate5m > (14.4 * (1 - 0.999))',
    );
    expect(alerts.PromptmeshAvailabilityBudgetBurnSlow).toContain('ratio_rate6h > (6 * (1 - 0.999)) and');
    expect(alerts.PromptmeshAvailabilityBudgetBurnSlow).toContain('ratio_rate30m > (6 * (1 - 0.999))');
    expect(alerts.PromptmeshCircuitOpen).toContain(`${METRICS.circuitState}[2m])) == 2`);
    const errorsRecord = rules.find((r) => r.record === 'promptmesh:router_request_errors:ratio_rate5m')!;
    expect(errorsRecord.expr).toContain(`${METRICS.httpDuration}_count{job="router"`);
    expect(errorsRecord.expr).toContain('status_code=~"5.."');
    const providerRecord = rules.find((r) => r.record === 'promptmesh:gen_ai_operation_errors:ratio_rate5m')!;
    expect(providerRecord.expr).toContain(`${METRICS.genAiDuration}_count{outcome!="success"}`);
  });

  it('follows its props: objectives, latency bucket, thresholds, selector labels, folder', () => {
    const { obs, objects } = synth({
      availabilityObjective: 0.995,
      latencyObjective: 0.95,
      latencyThresholdSeconds: 2.5,
      circuitOpenMinutes: 10,
      templateCacheMaxAgeSeconds: 120,
      ruleSelectorLabels: { prometheus: 'main' },
      dashboardFolder: 'LLM platform',
    });
    const text = obs.ruleFile();
    expect(text).toContain('(14.4 * (1 - 0.995))');
    expect(text).toContain('(6 * (1 - 0.95))');
    expect(text).toContain('le="2.5"');
    expect(text).toContain('for: 10m');
    expect(text).toContain(`(${METRICS.templateCacheAge}) > 120`);
    expect(objects[0].metadata.labels).toMatchObject({ prometheus: 'main' });
    expect(objects[0].metadata.labels.release).toBeUndefined();
    expect(objects[1].metadata.annotations.grafana_folder).toBe('LLM platform');
  });

  it('the rules in the manifest pass promtool check rules', async () => {
    const { obs, objects } = synth();
    const dir = scratch();
    // What Prometheus would load: the groups exactly as they stand in the PrometheusRule.
    writeFileSync(join(dir, 'manifest-rules.yaml'), stringify({ groups: objects[0].spec.groups }));
    writeFileSync(join(dir, 'rules.yaml'), obs.ruleFile());
    const out = await promtool(['check', 'rules', 'manifest-rules.yaml', 'rules.yaml'], dir);
    expect(out).toMatch(/SUCCESS: 23 rules found[\s\S]*SUCCESS: 23 rules found/);
  });

  it('the rules pass promtool test rules: burn rates over the long windows (series labelled as the real scrape stores them) and component alerts', async () => {
    const { obs } = synth();
    const dir = scratch();
    writeFileSync(join(dir, 'rules.yaml'), obs.ruleFile());
    const generated = burnRateTests(obs);
    for (const [name, content] of Object.entries(generated)) writeFileSync(join(dir, name), content);
    const files = ['component-alerts.promtest.yaml', 'cache-alerts.promtest.yaml', 'budget-alerts.promtest.yaml'];
    for (const f of files) copyFileSync(join(__dirname, 'observability', f), join(dir, f));
    const all = [...Object.keys(generated), ...files];
    const out = await promtool(['test', 'rules', ...all], dir);
    expect(out).not.toContain('FAILED');
    expect(out.match(/SUCCESS/g)).toHaveLength(all.length);
  }, 300_000);

  it('promtool test rules fails when a burn-rate threshold is wrong, or when the rules select a label the scrape does not store', async () => {
    const { obs } = synth();
    const dir = scratch();
    const fast = { 'burn-fast.promtest.yaml': burnRateTests(obs)['burn-fast.promtest.yaml']! };
    writeFileSync(join(dir, 'burn-fast.promtest.yaml'), fast['burn-fast.promtest.yaml']);
    // A 60x fast-burn factor would miss the 50x burn the test feeds in.
    writeFileSync(join(dir, 'rules.yaml'), obs.ruleFile().replaceAll('(14.4 * (1 - 0.999))', '(60 * (1 - 0.999))'));
    await expect(promtool(['test', 'rules', 'burn-fast.promtest.yaml'], dir)).rejects.toThrow(/PromptmeshAvailabilityBudgetBurnFast/);
    // The old rules selected the app's `service` label, which Prometheus stores as `exported_service`.
    writeFileSync(join(dir, 'rules.yaml'), obs.ruleFile().replaceAll('job="router"', 'service="router"'));
    await expect(promtool(['test', 'rules', 'burn-fast.promtest.yaml'], dir)).rejects.toThrow(/PromptmeshAvailabilityBudgetBurnFast/);
    // The same case passes with the real rules.
    writeFileSync(join(dir, 'rules.yaml'), obs.ruleFile());
    expect(await promtool(['test', 'rules', 'burn-fast.promtest.yaml'], dir)).toContain('SUCCESS');
  }, 300_000);

  it('rules and dashboards refer only to contract metrics (METRICS) and their own recording rules', () => {
    const { obs } = synth();
    const rules = obs.ruleGroups.flatMap((g) => g.rules) as unknown as Array<Record<string, string>>;
    const recorded = new Set(rules.filter((r) => r.record).map((r) => r.record));
    const exprs = [...rules.map((r) => r.expr), ...Object.values(obs.dashboards).flatMap(dashboardExprs)];
    const seen = new Set<string>();
    for (const expr of exprs) {
      for (const name of metricNames(expr)) {
        seen.add(name);
        expect(allowedMetric(name, recorded), `${name} in ${expr}`).toBe(true);
      }
    }
    // The extraction sees real names (so the check is not vacuous), and every contract metric is shown somewhere.
    for (const m of Object.values(METRICS)) {
      expect([...seen].some((n) => n === m || n.startsWith(`${m}_`)), m).toBe(true);
    }
    expect(metricNames('sum by (le) (rate(bogus_metric{a="b"}[5m]))')).toEqual(['bogus_metric']);
  });

  it('dashboards are valid Grafana JSON with the required panels, and every query is valid PromQL (promtool)', async () => {
    const { objects } = synth();
    const exprs: string[] = [];
    const titles: string[] = [];
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap')) {
      const [file, json] = Object.entries(cm.data as Record<string, string>)[0]!;
      expect(file).toMatch(/^promptmesh-[a-z]+\.json$/);
      const d = JSON.parse(json) as Dashboard;
      expect(d.uid).toMatch(/^promptmesh-/);
      expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
      for (const p of d.panels) {
        expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
        expect(p.targets?.length, p.title).toBeGreaterThan(0);
        expect(p.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      }
      exprs.push(...dashboardExprs(d));
      titles.push(...d.panels.map((p) => p.title));
    }
    // DESIGN.md: request rate, latency and error rate per service; and what issue 12 adds.
    const needed = [
      /request rate by service/i, /latency by service/i, /errors \(5xx ratio by service\)/i,
      /prompt traffic by prompt version/i, /prompt latency .* by prompt version/i, /prompt errors by prompt version/i, /prompt cost .* by prompt version/i,
      /cache hit ratio/i, /cache savings/i, /circuit states/i, /provider latency/i, /cost .* by model/i, /tokens per second/i, /template cache age/i, /rate-limit rejections/i,
      // issue 14: spend per team and per key, budgets
      /spend .* by team/i, /spend .* by key/i, /budget used/i,
    ];
    for (const pattern of needed) {
      expect(titles.join('\n')).toMatch(pattern);
    }
    // Grafana variables replaced by what Grafana would put there; each query becomes a recording rule.
    const rules = exprs
      .filter((e) => !e.startsWith('label_values('))
      .map((expr, i) => ({
        record: `dashboard:query_${i}`,
        expr: expr.replaceAll('$__rate_interval', '2m').replaceAll('$__range', '6h').replaceAll('$namespace', 'pm'),
      }));
    const dir = scratch();
    writeFileSync(join(dir, 'dashboard-queries.yaml'), stringify({ groups: [{ name: 'dashboard-queries', rules }] }));
    const out = await promtool(['check', 'rules', 'dashboard-queries.yaml'], dir);
    expect(out).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it('the latency SLO buckets are the ones the services declare', () => {
    expect(REQUEST_DURATION_BUCKETS).toEqual(LATENCY_BUCKETS);
    expect(GRAFANA_DASHBOARD_LABEL).toEqual({ grafana_dashboard: '1' });
  });

  it('rejects bad props with errors naming the prop and the allowed values', () => {
    const bad: Array<[ObservabilityProps, RegExp]> = [
      [{ availabilityObjective: 99.9 }, /'availabilityObjective' must be a fraction from 0.9 to 0.99999/],
      [{ latencyObjective: 0.5 }, /'latencyObjective' must be a fraction from 0.9 to 0.99999/],
      [{ latencyThresholdSeconds: 3 }, /'latencyThresholdSeconds' must be one of the histogram buckets 0.0005, .*, 60, got 3/],
      [{ providerErrorRatio: 1.5 }, /'providerErrorRatio' must be a number between 0 and 1/],
      [{ cacheHitRatioDropFactor: 0 }, /'cacheHitRatioDropFactor' must be a number between 0 and 1/],
      [{ circuitOpenMinutes: 0 }, /'circuitOpenMinutes' must be an integer from 1 to 60/],
      [{ templateCacheMaxAgeSeconds: 1 }, /'templateCacheMaxAgeSeconds' must be a number of seconds, at least 10/],
      [{ routerService: 'Router!' }, /'routerService' must be a job label value/],
      [{ ruleSelectorLabels: {} }, /'ruleSelectorLabels' must hold at least one label/],
      [{ dashboardFolder: ' ' }, /'dashboardFolder' must be a non-empty folder name/],
      [{ name: 'Bad Name' }, /'name' must be a lowercase RFC 1123 label/],
    ];
    for (const [props, message] of bad) expect(() => synth(props), JSON.stringify(props)).toThrow(message);
  });

  it('matches the snapshot', () => {
    expect(synth().objects).toMatchSnapshot();
  });
});
