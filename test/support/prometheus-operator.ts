/**
 * What prometheus-operator makes of a ServiceMonitor, for a Prometheus that runs outside a
 * cluster: the scrape configuration the operator generates (pkg/prometheus/promcfg.go,
 * `generateServiceMonitorConfig`, Kubernetes SD role `endpoints`, one shard), with the
 * Kubernetes service discovery replaced by `file_sd_configs` whose targets carry the
 * `__meta_kubernetes_*` labels the endpoints role would give them. The relabelling then runs
 * in Prometheus exactly as in a cluster, so the series are stored with the labels a real
 * scrape gives them (`job`, `namespace`, `service`, `pod`, `container`, `endpoint`,
 * `instance`, the pod target labels).
 *
 * Covered: `selector.matchLabels` and `matchExpressions` (relabel mechanism), `endpoints[].port`,
 * `path`, `scheme`, `interval`, `scrapeTimeout`, `honorLabels`, `relabelings`,
 * `metricRelabelings`, `jobLabel`, `targetLabels`, `podTargetLabels`. Not covered (none of our
 * ServiceMonitors uses them): `targetPort`, TLS and auth settings, limits, scrape classes.
 */

/** A relabel rule in Prometheus' configuration shape. */
export type RelabelConfig = Record<string, unknown>;

/** The part of a ServiceMonitor (monitoring.coreos.com/v1) the generator reads. */
export interface ServiceMonitorObject {
  metadata: { name: string; namespace: string };
  spec: {
    selector?: {
      matchLabels?: Record<string, string>;
      matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
    };
    namespaceSelector?: { matchNames?: string[]; any?: boolean };
    jobLabel?: string;
    targetLabels?: string[];
    podTargetLabels?: string[];
    endpoints: Array<{
      port?: string;
      path?: string;
      scheme?: string;
      interval?: string;
      scrapeTimeout?: string;
      honorLabels?: boolean;
      relabelings?: Array<Record<string, unknown>>;
      metricRelabelings?: Array<Record<string, unknown>>;
    }>;
  };
}

/** One endpoint address of a Service as the endpoints role sees it: a pod and a port. */
export interface DiscoveredEndpoint {
  /** The Service (name, namespace, labels, ports). */
  service: { name: string; namespace: string; labels: Record<string, string>; ports: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string }> };
  /** The backing pod. */
  pod: {
    name: string;
    labels: Record<string, string>;
    /** Containers with the ports they declare. */
    containers: Array<{ name: string; ports?: Array<{ name?: string; containerPort: number }> }>;
    phase?: string;
  };
  /** The Service port (by name) this address serves. */
  portName: string;
  /** Where Prometheus reaches it (`host:port`): the pod IP and target port in a cluster. */
  address: string;
}

/** A `file_sd` target group. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** The Prometheus label name a Kubernetes label becomes (the operator's `sanitizeLabelName`). */
export function sanitizeLabelName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

/** The job name the operator gives the scrape config of endpoint `i` of a ServiceMonitor. */
export function scrapeJobName(sm: ServiceMonitorObject, i: number): string {
  return `serviceMonitor/${sm.metadata.namespace}/${sm.metadata.name}/${i}`;
}

/** The operator's `generateRelabelConfig`: camelCase CRD fields to Prometheus' snake_case. */
function relabelFromCrd(r: Record<string, unknown>): RelabelConfig {
  const out: RelabelConfig = {};
  const names: Record<string, string> = { sourceLabels: 'source_labels', targetLabel: 'target_label' };
  for (const [k, v] of Object.entries(r)) out[names[k] ?? k] = k === 'action' && typeof v === 'string' ? v.toLowerCase() : v;
  return out;
}

/**
 * The `relabel_configs` the operator generates for endpoint `i` of `sm`, in its order. With
 * `shard` set, `$(SHARD)` is replaced by it (the operator's config reloader does that).
 */
export function serviceMonitorRelabelings(sm: ServiceMonitorObject, i: number, options: { shard?: number } = {}): RelabelConfig[] {
  const ep = sm.spec.endpoints[i]!;
  const r: RelabelConfig[] = [{ source_labels: ['job'], target_label: '__tmp_prometheus_job_name' }];
  const matchLabels = sm.spec.selector?.matchLabels ?? {};
  for (const k of Object.keys(matchLabels).sort()) {
    const l = sanitizeLabelName(k);
    r.push({ action: 'keep', source_labels: [`__meta_kubernetes_service_label_${l}`, `__meta_kubernetes_service_labelpresent_${l}`], regex: `(${matchLabels[k]});true` });
  }
  for (const exp of sm.spec.selector?.matchExpressions ?? []) {
    const l = sanitizeLabelName(exp.key);
    const both = [`__meta_kubernetes_service_label_${l}`, `__meta_kubernetes_service_labelpresent_${l}`];
    const values = `(${(exp.values ?? []).join('|')});true`;
    if (exp.operator === 'In') r.push({ action: 'keep', source_labels: both, regex: values });
    if (exp.operator === 'NotIn') r.push({ action: 'drop', source_labels: both, regex: values });
    if (exp.operator === 'Exists') r.push({ action: 'keep', source_labels: [both[1]], regex: 'true' });
    if (exp.operator === 'DoesNotExist') r.push({ action: 'drop', source_labels: [both[1]], regex: 'true' });
  }
  if (ep.port) r.push({ action: 'keep', source_labels: ['__meta_kubernetes_endpoint_port_name'], regex: ep.port });
  const target = ['__meta_kubernetes_endpoint_address_target_kind', '__meta_kubernetes_endpoint_address_target_name'];
  r.push(
    { source_labels: target, separator: ';', regex: 'Node;(.*)', replacement: '${1}', target_label: 'node' },
    { source_labels: target, separator: ';', regex: 'Pod;(.*)', replacement: '${1}', target_label: 'pod' },
    { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
    { source_labels: ['__meta_kubernetes_service_name'], target_label: 'service' },
    { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
    { source_labels: ['__meta_kubernetes_pod_container_name'], target_label: 'container' },
    { action: 'drop', source_labels: ['__meta_kubernetes_pod_phase'], regex: '(Failed|Succeeded)' },
  );
  for (const l of sm.spec.targetLabels ?? []) {
    r.push({ source_labels: [`__meta_kubernetes_service_label_${sanitizeLabelName(l)}`], target_label: sanitizeLabelName(l), regex: '(.+)', replacement: '${1}' });
  }
  for (const l of sm.spec.podTargetLabels ?? []) {
    r.push({ source_labels: [`__meta_kubernetes_pod_label_${sanitizeLabelName(l)}`], target_label: sanitizeLabelName(l), regex: '(.+)', replacement: '${1}' });
  }
  r.push({ source_labels: ['__meta_kubernetes_service_name'], target_label: 'job', replacement: '${1}' });
  if (sm.spec.jobLabel) {
    r.push({ source_labels: [`__meta_kubernetes_service_label_${sanitizeLabelName(sm.spec.jobLabel)}`], target_label: 'job', regex: '(.+)', replacement: '${1}' });
  }
  if (ep.port) r.push({ target_label: 'endpoint', replacement: ep.port });
  r.push(...(ep.relabelings ?? []).map(relabelFromCrd));
  const shard = options.shard === undefined ? '$(SHARD)' : String(options.shard);
  r.push(
    { source_labels: ['__address__', '__tmp_hash'], target_label: '__tmp_hash', regex: '(.+);', replacement: '$1', action: 'replace' },
    { source_labels: ['__tmp_hash'], target_label: '__tmp_hash', modulus: 1, action: 'hashmod' },
    { source_labels: ['__tmp_hash', '__tmp_disable_sharding'], regex: `${shard};|.+;.+`, action: 'keep' },
  );
  return r;
}

/**
 * The `__meta_kubernetes_*` labels Prometheus' Kubernetes SD (role `endpoints`) gives one
 * endpoint address: the Service's, the endpoint port's and the pod's.
 */
export function endpointsRoleMetaLabels(e: DiscoveredEndpoint): Record<string, string> {
  const labels: Record<string, string> = {
    __meta_kubernetes_namespace: e.service.namespace,
    __meta_kubernetes_service_name: e.service.name,
    __meta_kubernetes_endpoints_name: e.service.name,
    __meta_kubernetes_endpoint_port_name: e.portName,
    __meta_kubernetes_endpoint_port_protocol: 'TCP',
    __meta_kubernetes_endpoint_ready: 'true',
    __meta_kubernetes_endpoint_address_target_kind: 'Pod',
    __meta_kubernetes_endpoint_address_target_name: e.pod.name,
    __meta_kubernetes_pod_name: e.pod.name,
    __meta_kubernetes_pod_ready: 'true',
    __meta_kubernetes_pod_phase: e.pod.phase ?? 'Running',
  };
  for (const [k, v] of Object.entries(e.service.labels)) {
    labels[`__meta_kubernetes_service_label_${sanitizeLabelName(k)}`] = v;
    labels[`__meta_kubernetes_service_labelpresent_${sanitizeLabelName(k)}`] = 'true';
  }
  for (const [k, v] of Object.entries(e.pod.labels)) {
    labels[`__meta_kubernetes_pod_label_${sanitizeLabelName(k)}`] = v;
    labels[`__meta_kubernetes_pod_labelpresent_${sanitizeLabelName(k)}`] = 'true';
  }
  // The container labels exist only when a container declares the target port (Kubernetes SD
  // matches the endpoint port against the pod's container ports).
  const servicePort = e.service.ports.find((p) => p.name === e.portName);
  const targetPort = servicePort?.targetPort ?? servicePort?.port;
  for (const c of e.pod.containers) {
    const port = (c.ports ?? []).find((p) => p.containerPort === targetPort || (typeof targetPort === 'string' && p.name === targetPort));
    if (!port) continue;
    labels.__meta_kubernetes_pod_container_name = c.name;
    labels.__meta_kubernetes_pod_container_port_number = String(port.containerPort);
    if (port.name) labels.__meta_kubernetes_pod_container_port_name = port.name;
    labels.__meta_kubernetes_pod_container_port_protocol = 'TCP';
  }
  return labels;
}

/** Whether the ServiceMonitor's namespace selector covers `namespace` (the operator's SD namespaces). */
function watches(sm: ServiceMonitorObject, namespace: string): boolean {
  const ns = sm.spec.namespaceSelector;
  if (ns?.any) return true;
  return (ns?.matchNames ?? [sm.metadata.namespace]).includes(namespace);
}

/** Options of {@link scrapeConfigsFor}. */
export interface ScrapeConfigOptions {
  /** Directory the file_sd files are written to (their paths go into the config). */
  fileSdPath: (jobName: string) => string;
  /** Replaces every endpoint's `interval` (and caps `scrapeTimeout` at it), to scrape fast in tests. */
  interval?: string;
}

/**
 * The scrape configs the operator would generate for `monitors`, with file_sd in place of the
 * Kubernetes SD, and the target groups each file_sd file holds: every endpoint in a watched
 * namespace, relabelled by Prometheus itself (the selector is applied there, as in a cluster).
 */
export function scrapeConfigsFor(
  monitors: ServiceMonitorObject[],
  endpoints: DiscoveredEndpoint[],
  options: ScrapeConfigOptions,
): { scrapeConfigs: Array<Record<string, unknown>>; fileSd: Map<string, TargetGroup[]> } {
  const scrapeConfigs: Array<Record<string, unknown>> = [];
  const fileSd = new Map<string, TargetGroup[]>();
  for (const sm of monitors) {
    sm.spec.endpoints.forEach((ep, i) => {
      const jobName = scrapeJobName(sm, i);
      const file = options.fileSdPath(jobName);
      const cfg: Record<string, unknown> = { job_name: jobName, honor_labels: ep.honorLabels ?? false, file_sd_configs: [{ files: [file], refresh_interval: '1s' }] };
      const interval = options.interval ?? ep.interval;
      if (interval) cfg.scrape_interval = interval;
      const timeout = options.interval ?? ep.scrapeTimeout;
      if (timeout) cfg.scrape_timeout = timeout;
      if (ep.path) cfg.metrics_path = ep.path;
      if (ep.scheme) cfg.scheme = ep.scheme;
      cfg.relabel_configs = serviceMonitorRelabelings(sm, i, { shard: 0 });
      if (ep.metricRelabelings?.length) cfg.metric_relabel_configs = ep.metricRelabelings.map(relabelFromCrd);
      scrapeConfigs.push(cfg);
      fileSd.set(
        file,
        endpoints.filter((e) => watches(sm, e.service.namespace)).map((e) => ({ targets: [e.address], labels: endpointsRoleMetaLabels(e) })),
      );
    });
  }
  return { scrapeConfigs, fileSd };
}
