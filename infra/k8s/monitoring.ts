/**
 * The names the in-cluster monitoring agrees on with the platform (kube-prometheus-stack and
 * prometheus-adapter, installed by the Pulumi program or by hand).
 */
import { METRICS, PATHS } from '../../contracts/index';
import { DEFAULT_PROMETHEUS_SELECTOR_LABELS } from './data-store';

/**
 * Labels every ServiceMonitor and PrometheusRule of promptmesh carries by default, so that
 * Prometheus selects them: kube-prometheus-stack's Prometheus selects `release: <its release
 * name>` unless told otherwise, so install it as release `kube-prometheus-stack` (or set
 * `serviceMonitorSelector`/`ruleSelector` to these labels, or pass other labels to the
 * constructs). The same value as the data stores' `DEFAULT_PROMETHEUS_SELECTOR_LABELS`.
 */
export const MONITOR_LABELS: Readonly<Record<string, string>> = DEFAULT_PROMETHEUS_SELECTOR_LABELS;

/**
 * The Service label a PromptService's ServiceMonitor takes the `job` label from
 * (`spec.jobLabel`): its value is the service (`router`, `templates`, `context`, `llm`), so
 * Prometheus stores every series of the router with `job="router"`, whatever the Services are
 * named. The rules and dashboards select on it.
 */
export const JOB_LABEL = 'app.kubernetes.io/component';

/**
 * Port of the Istio agent in every meshed pod that serves the merged metrics (the app's
 * `/metrics` and Envoy's) on `/stats/prometheus`, in plain text. Istio excludes it from
 * interception, so Prometheus outside the mesh can scrape it under STRICT mTLS.
 */
export const ISTIO_MERGED_METRICS_PORT = 15020;
/** Path of the merged metrics on {@link ISTIO_MERGED_METRICS_PORT}. */
export const ISTIO_MERGED_METRICS_PATH = '/stats/prometheus';

/**
 * The per-pod metric the HPAs scale on: HTTP requests per second, served through the custom
 * metrics API by prometheus-adapter using {@link REQUESTS_PER_SECOND_ADAPTER_RULE}.
 */
export const REQUESTS_PER_SECOND_METRIC = 'promptmesh_http_requests_per_second';

/** One prometheus-adapter rule (the `rules.custom[]` entries of its Helm chart). */
export interface PrometheusAdapterRule {
  /** PromQL series selector the rule discovers. */
  readonly seriesQuery: string;
  /** How series labels map to Kubernetes resources. */
  readonly resources: { readonly overrides: Record<string, { readonly resource: string }> };
  /** The name the custom metrics API serves. */
  readonly name: { readonly matches: string; readonly as: string };
  /** The query per pod. */
  readonly metricsQuery: string;
}

/**
 * The prometheus-adapter rule that serves {@link REQUESTS_PER_SECOND_METRIC} per pod from the
 * services' request histogram. Put it into the adapter's Helm values as
 * `rules: { custom: [REQUESTS_PER_SECOND_ADAPTER_RULE] }`.
 */
export const REQUESTS_PER_SECOND_ADAPTER_RULE: PrometheusAdapterRule = {
  seriesQuery: `${METRICS.httpDuration}_count{namespace!="",pod!=""}`,
  resources: { overrides: { namespace: { resource: 'namespace' }, pod: { resource: 'pod' } } },
  name: { matches: `^${METRICS.httpDuration}_count$`, as: REQUESTS_PER_SECOND_METRIC },
  // Probes and scrapes are no load: only the requests the pod serves count.
  metricsQuery: `sum(rate(<<.Series>>{<<.LabelMatchers>>,route!~"${[PATHS.healthz, PATHS.readyz, PATHS.metrics].join('|')}"}[2m])) by (<<.GroupBy>>)`,
};
