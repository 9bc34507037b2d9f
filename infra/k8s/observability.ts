/**
 * `Observability`: the SLO alerts, component alerts and recording rules of promptmesh as a
 * PrometheusRule (prometheus-operator), and its Grafana dashboards as ConfigMaps for the
 * Grafana dashboard sidecar (kube-prometheus-stack's Grafana runs one).
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { stringify } from 'yaml';
import { PrometheusRule, PrometheusRuleSpecGroupsRulesExpr } from '../../imports/monitoring.coreos.com';
import { DEFAULT_PROMETHEUS_SELECTOR_LABELS, checkName, resolveNamespace } from './data-store';
import { llmDashboard, overviewDashboard, type Dashboard } from './observability/dashboards';
import { DEFAULT_RUNBOOK_BASE_URL, ruleGroups, type RuleGroup, type RuleOptions } from './observability/rules';

/**
 * Bucket boundaries (seconds) of the request duration histogram, as the services' kit declares
 * them (services/kit/metrics.ts LATENCY_BUCKETS). A latency SLO threshold must be one of them.
 */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The label the Grafana sidecar looks for (kube-prometheus-stack: `sidecar.dashboards.label`). */
export const GRAFANA_DASHBOARD_LABEL = { grafana_dashboard: '1' } as const;
/** The annotation naming the Grafana folder (`sidecar.dashboards.folderAnnotation`). */
export const GRAFANA_FOLDER_ANNOTATION = 'grafana_folder';

/** Props of {@link Observability}. */
export interface ObservabilityProps {
  /**
   * Namespace of the PrometheusRule and the dashboard ConfigMaps. The Grafana sidecar must
   * search it (kube-prometheus-stack: `grafana.sidecar.dashboards.searchNamespace: ALL`).
   * @default the chart's namespace
   */
  readonly namespace?: string;
  /**
   * Base name of the objects (`<name>-rules`, `<name>-dashboard-overview`, `<name>-dashboard-llm`).
   * @default 'promptmesh'
   */
  readonly name?: string;
  /**
   * Availability objective of the router over 30 days: the fraction of requests (health and
   * metrics endpoints excluded) that must not fail with a 5xx. From 0.9 to 0.99999.
   * @default 0.999
   */
  readonly availabilityObjective?: number;
  /**
   * Latency objective of the router over 30 days: the fraction of requests that must finish
   * within `latencyThresholdSeconds`. From 0.9 to 0.99999.
   * @default 0.99
   */
  readonly latencyObjective?: number;
  /**
   * The latency SLO threshold, in seconds; one of REQUEST_DURATION_BUCKETS (the SLI reads that
   * histogram bucket). Router requests include the model's answer, so it is seconds, not ms.
   * @default 10
   */
  readonly latencyThresholdSeconds?: number;
  /**
   * Provider error ratio (failed calls / calls over 5 minutes, per provider) that raises
   * `PromptmeshProviderErrorRateHigh` when it lasts 10 minutes. Between 0 and 1, exclusive.
   * @default 0.1
   */
  readonly providerErrorRatio?: number;
  /**
   * Minutes a provider's circuit must stay open before `PromptmeshCircuitOpen` fires (1 to 60).
   * @default 5
   */
  readonly circuitOpenMinutes?: number;
  /**
   * `PromptmeshCacheHitRatioDrop` fires when the 30-minute response cache hit ratio falls below
   * this fraction of the 1-day ratio for 15 minutes. Between 0 and 1, exclusive.
   * @default 0.5
   */
  readonly cacheHitRatioDropFactor?: number;
  /**
   * `PromptmeshTemplateCacheStale` fires when a router's template cache is older than this
   * for 5 minutes (its periodic reconcile should keep it far below). At least 10.
   * @default 300
   */
  readonly templateCacheMaxAgeSeconds?: number;
  /**
   * `PromptmeshBudgetNearlySpent` fires when a key or team has spent this fraction of its
   * budget for the current period (docs/keys.md). Between 0 and 1, exclusive.
   * @default 0.8
   */
  readonly budgetWarnRatio?: number;
  /**
   * The `job` label of the router's series as Prometheus stores them (the SLIs are the
   * router's). The PromptService ServiceMonitor sets `job` from the Service label
   * `app.kubernetes.io/component`, which is `router`; change this only for a router scraped
   * some other way.
   * @default 'router'
   */
  readonly routerService?: string;
  /**
   * The runbook page the alerts link to: each alert's `runbook_url` annotation is this plus
   * `#<alert name in lower case>`, the alert's section in docs/observability.md. Point it at
   * your own copy of that page (an internal wiki, a fork).
   * @default DEFAULT_RUNBOOK_BASE_URL (docs/observability.md in the promptmesh repository)
   */
  readonly runbookBaseUrl?: string;
  /**
   * Labels on the PrometheusRule so the platform's Prometheus loads it (its `ruleSelector`;
   * kube-prometheus-stack selects `release: <release name>` unless
   * `prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues` is false).
   * @default { release: 'kube-prometheus-stack' }
   */
  readonly ruleSelectorLabels?: Record<string, string>;
  /**
   * The Grafana folder the dashboards go into (the `grafana_folder` annotation; the sidecar
   * honours it when `sidecar.dashboards.folderAnnotation: grafana_folder` is set).
   * @default 'promptmesh'
   */
  readonly dashboardFolder?: string;
  /**
   * Labels that make the Grafana sidecar load the dashboard ConfigMaps.
   * @default { grafana_dashboard: '1' }
   */
  readonly dashboardLabels?: Record<string, string>;
}

/** PrometheusRule with SLO burn-rate and component alerts, and Grafana dashboards as ConfigMaps. */
export class Observability extends Construct {
  /** The rule groups, in Prometheus rule-file shape (what the PrometheusRule holds). */
  public readonly ruleGroups: RuleGroup[];
  /** The dashboards (Grafana JSON models), by file name. */
  public readonly dashboards: Readonly<Record<string, Dashboard>>;
  /** The PrometheusRule. */
  public readonly prometheusRule: PrometheusRule;
  /** The dashboard ConfigMaps. */
  public readonly dashboardConfigMaps: k8s.KubeConfigMap[];

  constructor(scope: Construct, id: string, props: ObservabilityProps = {}) {
    super(scope, id);
    const what = 'Observability';
    const name = props.name ?? 'promptmesh';
    checkName(what, 'name', name, 40);
    if (props.namespace !== undefined) checkName(what, 'namespace', props.namespace);
    const options: RuleOptions = {
      routerService: props.routerService ?? 'router',
      availabilityObjective: props.availabilityObjective ?? 0.999,
      latencyObjective: props.latencyObjective ?? 0.99,
      latencyThresholdSeconds: props.latencyThresholdSeconds ?? 10,
      providerErrorRatio: props.providerErrorRatio ?? 0.1,
      circuitOpenMinutes: props.circuitOpenMinutes ?? 5,
      cacheHitRatioDropFactor: props.cacheHitRatioDropFactor ?? 0.5,
      templateCacheMaxAgeSeconds: props.templateCacheMaxAgeSeconds ?? 300,
      budgetWarnRatio: props.budgetWarnRatio ?? 0.8,
      runbookBaseUrl: props.runbookBaseUrl ?? DEFAULT_RUNBOOK_BASE_URL,
    };
    if (typeof options.runbookBaseUrl !== 'string' || !/^https?:\/\/[^\s#]+$/.test(options.runbookBaseUrl)) {
      throw new Error(`${what}: 'runbookBaseUrl' must be an http(s) URL without a fragment, got ${JSON.stringify(options.runbookBaseUrl)}`);
    }
    for (const prop of ['availabilityObjective', 'latencyObjective'] as const) {
      const v = options[prop];
      if (typeof v !== 'number' || !(v >= 0.9 && v <= 0.99999)) {
        throw new Error(`${what}: '${prop}' must be a fraction from 0.9 to 0.99999 (e.g. 0.999 for 99.9%), got ${JSON.stringify(v)}`);
      }
    }
    if (!REQUEST_DURATION_BUCKETS.includes(options.latencyThresholdSeconds)) {
      throw new Error(`${what}: 'latencyThresholdSeconds' must be one of the histogram buckets ${REQUEST_DURATION_BUCKETS.join(', ')}, got ${JSON.stringify(options.latencyThresholdSeconds)}`);
    }
    for (const prop of ['providerErrorRatio', 'cacheHitRatioDropFactor', 'budgetWarnRatio'] as const) {
      const v = options[prop];
      if (typeof v !== 'number' || !(v > 0 && v < 1)) {
        throw new Error(`${what}: '${prop}' must be a number between 0 and 1 (exclusive), got ${JSON.stringify(v)}`);
      }
    }
    if (!Number.isInteger(options.circuitOpenMinutes) || options.circuitOpenMinutes < 1 || options.circuitOpenMinutes > 60) {
      throw new Error(`${what}: 'circuitOpenMinutes' must be an integer from 1 to 60, got ${JSON.stringify(options.circuitOpenMinutes)}`);
    }
    if (typeof options.templateCacheMaxAgeSeconds !== 'number' || !(options.templateCacheMaxAgeSeconds >= 10)) {
      throw new Error(`${what}: 'templateCacheMaxAgeSeconds' must be a number of seconds, at least 10, got ${JSON.stringify(options.templateCacheMaxAgeSeconds)}`);
    }
    if (!/^[a-z][a-z0-9_-]*$/.test(options.routerService)) {
      throw new Error(`${what}: 'routerService' must be a job label value (a-z, 0-9, _ and -), got ${JSON.stringify(options.routerService)}`);
    }
    const folder = props.dashboardFolder ?? 'promptmesh';
    if (folder.trim() === '' || folder.length > 100) {
      throw new Error(`${what}: 'dashboardFolder' must be a non-empty folder name of at most 100 characters, got ${JSON.stringify(folder)}`);
    }
    const ruleLabels = props.ruleSelectorLabels ?? DEFAULT_PROMETHEUS_SELECTOR_LABELS;
    const dashboardLabels = props.dashboardLabels ?? GRAFANA_DASHBOARD_LABEL;
    for (const [prop, labels] of [['ruleSelectorLabels', ruleLabels], ['dashboardLabels', dashboardLabels]] as const) {
      if (Object.keys(labels).length === 0) {
        throw new Error(`${what}: '${prop}' must hold at least one label (an empty set selects nothing useful), got {}`);
      }
    }

    const namespace = resolveNamespace(this, props.namespace);
    const labels = { 'app.kubernetes.io/name': 'promptmesh', 'app.kubernetes.io/component': 'observability', 'app.kubernetes.io/part-of': 'promptmesh' };

    this.ruleGroups = ruleGroups(options);
    this.prometheusRule = new PrometheusRule(this, 'rules', {
      metadata: { name: `${name}-rules`, namespace, labels: { ...labels, ...ruleLabels } },
      spec: {
        groups: this.ruleGroups.map((g) => ({
          ...g,
          rules: g.rules.map((r) => ({ ...r, expr: PrometheusRuleSpecGroupsRulesExpr.fromString(r.expr) })),
        })),
      },
    });

    this.dashboards = {
      'promptmesh-overview.json': overviewDashboard(options.routerService),
      'promptmesh-llm.json': llmDashboard(),
    };
    this.dashboardConfigMaps = Object.entries(this.dashboards).map(([file, dashboard]) => {
      const short = file.replace(/^promptmesh-/, '').replace(/\.json$/, '');
      return new k8s.KubeConfigMap(this, `dashboard-${short}`, {
        metadata: {
          name: `${name}-dashboard-${short}`,
          namespace,
          labels: { ...labels, ...dashboardLabels },
          annotations: { [GRAFANA_FOLDER_ANNOTATION]: folder },
        },
        data: { [file]: JSON.stringify(dashboard, null, 2) },
      });
    });
  }

  /** The rules as a Prometheus rule file (YAML), as `promtool check rules` reads it. */
  public ruleFile(): string {
    return stringify({ groups: this.ruleGroups }, { lineWidth: 0 });
  }
}
