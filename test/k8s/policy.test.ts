/**
 * Policy checks over the whole synthesized output (the default chart and every environment):
 * what a reviewer or an admission controller would insist on, checked on every object.
 */
import { describe, expect, it } from 'vitest';
import { MONITOR_LABELS, SPOT_TAINT_KEY } from '../../infra/k8s/index';
import { allOutputs } from './manifests';

const WORKLOAD_KINDS = ['Deployment', 'StatefulSet'];
/** Volume types Pod Security `restricted` allows. */
const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];

function podSpecOf(o: any): any {
  return o.spec?.template?.spec ?? o.spec?.jobTemplate?.spec?.template?.spec;
}

function containersOf(pod: any): any[] {
  return [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** Pod Security Standard `restricted` (Kubernetes 1.34+); returns violations. */
function restrictedViolations(o: any): string[] {
  const pod = podSpecOf(o);
  const where = `${o.kind} ${o.metadata.name}`;
  const out: string[] = [];
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) out.push(`${where}: host namespaces`);
  for (const v of pod.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (!RESTRICTED_VOLUMES.includes(type!)) out.push(`${where}: volume ${v.name} of type ${type}`);
  }
  const podSc = pod.securityContext ?? {};
  if (podSc.runAsUser === 0) out.push(`${where}: pod runAsUser 0`);
  for (const c of containersOf(pod)) {
    const sc = c.securityContext ?? {};
    const cw = `${where} container ${c.name}`;
    if (sc.privileged) out.push(`${cw}: privileged`);
    if (sc.allowPrivilegeEscalation !== false) out.push(`${cw}: allowPrivilegeEscalation not false`);
    if (!(sc.runAsNonRoot ?? podSc.runAsNonRoot)) out.push(`${cw}: runAsNonRoot not true`);
    if (sc.runAsUser === 0) out.push(`${cw}: runAsUser 0`);
    const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') out.push(`${cw}: seccomp ${seccomp}`);
    if (!sc.capabilities?.drop?.includes('ALL')) out.push(`${cw}: capabilities not dropped`);
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') out.push(`${cw}: adds ${cap}`);
    if (sc.readOnlyRootFilesystem !== true) out.push(`${cw}: root filesystem writable`);
    for (const p of c.ports ?? []) if (p.hostPort) out.push(`${cw}: hostPort`);
  }
  return out;
}

const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)$/i;
const SECRET_VALUE_PATTERNS = [
  /sk-[A-Za-z0-9_-]{16,}/, // OpenAI-style keys
  /sk-ant-[A-Za-z0-9_-]{16,}/, // Anthropic keys
  /AKIA[0-9A-Z]{16}/, // AWS access keys
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  /:\/\/[^/@:\s$]*:(?!\$\()[^/@\s]+@/, // URL with an inline password (a $(VAR) reference is fine)
];

function allStrings(value: unknown, path: string, out: Array<[string, string]>): void {
  if (typeof value === 'string') out.push([path, value]);
  else if (Array.isArray(value)) value.forEach((v, i) => allStrings(v, `${path}/${i}`, out));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) allStrings(v, `${path}/${k}`, out);
}

for (const [name, objects] of allOutputs()) {
  describe(`policies: ${name}`, () => {
    const workloads = objects.filter((o) => WORKLOAD_KINDS.includes(o.kind));
    const podOwners = objects.filter((o) => podSpecOf(o) !== undefined && ['Deployment', 'StatefulSet', 'Job', 'CronJob'].includes(o.kind));
    const namespace = objects.find((o) => o.kind === 'Namespace');
    const promptDeployments = objects.filter((o) => o.kind === 'Deployment');

    it('has a restricted, injected namespace and keeps everything in it', () => {
      expect(namespace.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
      expect(namespace.metadata.labels['istio-injection']).toBe('enabled');
      for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
        expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(namespace.metadata.name);
      }
    });

    it('runs every pod under Pod Security restricted with a read-only root', () => {
      expect(podOwners.length).toBeGreaterThanOrEqual(5);
      expect(podOwners.flatMap(restrictedViolations)).toEqual([]);
      for (const d of promptDeployments) {
        const pod = podSpecOf(d);
        expect(pod.automountServiceAccountToken).toBe(false);
        const tmp = pod.containers[0].volumeMounts.find((m: any) => m.mountPath === '/tmp');
        expect(pod.volumes.find((v: any) => v.name === tmp.name).emptyDir).toBeDefined();
        expect(Number.isInteger(pod.securityContext.runAsUser) && pod.securityContext.runAsUser > 0).toBe(true);
      }
    });

    it('gives every container requests and limits for CPU and memory, requests not above limits', () => {
      for (const o of podOwners) {
        for (const c of containersOf(podSpecOf(o))) {
          const r = c.resources ?? {};
          for (const k of ['cpu', 'memory']) {
            expect(r.requests?.[k], `${o.metadata.name}/${c.name} requests.${k}`).toBeDefined();
            expect(r.limits?.[k], `${o.metadata.name}/${c.name} limits.${k}`).toBeDefined();
          }
        }
      }
    });

    it('probes every long-running container (readiness and liveness; startup for the services)', () => {
      for (const o of workloads) {
        for (const c of podSpecOf(o).containers) {
          expect(c.readinessProbe, `${o.metadata.name}/${c.name} readiness`).toBeDefined();
          expect(c.livenessProbe, `${o.metadata.name}/${c.name} liveness`).toBeDefined();
        }
      }
      for (const d of promptDeployments) {
        const c = podSpecOf(d).containers[0];
        expect(c.startupProbe.httpGet.path).toBe('/healthz');
        expect(c.livenessProbe.httpGet.path).toBe('/healthz');
        expect(c.readinessProbe.httpGet.path).toBe('/readyz');
        expect(c.readinessProbe.httpGet.port).toBe('http');
      }
    });

    it('covers every workload with a PDB that allows a disruption', () => {
      const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget');
      for (const w of workloads) {
        const labels = podSpecOf(w) && w.spec.template.metadata.labels;
        const pdb = pdbs.find((p) => matches(p.spec.selector.matchLabels, labels));
        expect(pdb, `PDB for ${w.kind} ${w.metadata.name}`).toBeDefined();
        const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef.name === w.metadata.name);
        const replicas = w.spec.replicas ?? hpa?.spec.minReplicas ?? 1;
        if (pdb.spec.maxUnavailable !== undefined) {
          expect(pdb.spec.maxUnavailable === '100%' || Number.parseInt(String(pdb.spec.maxUnavailable), 10) >= 1).toBe(true);
        } else {
          expect(Number(pdb.spec.minAvailable), `${w.metadata.name} minAvailable < replicas`).toBeLessThan(replicas);
        }
      }
    });

    it('spreads every workload across zones and nodes', () => {
      for (const w of workloads) {
        const keys = (podSpecOf(w).topologySpreadConstraints ?? []).map((t: any) => t.topologyKey);
        expect(keys, `${w.kind} ${w.metadata.name}`).toContain('topology.kubernetes.io/zone');
        expect(keys, `${w.kind} ${w.metadata.name}`).toContain('kubernetes.io/hostname');
      }
    });

    it('autoscales every Deployment (CPU and requests per second) and leaves replicas to the HPA', () => {
      expect(promptDeployments.length).toBeGreaterThanOrEqual(4);
      for (const d of promptDeployments) {
        const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef.kind === 'Deployment' && o.spec.scaleTargetRef.name === d.metadata.name);
        expect(hpa, `HPA for ${d.metadata.name}`).toBeDefined();
        expect(d.spec.replicas).toBeUndefined();
        expect(hpa.spec.minReplicas).toBeLessThanOrEqual(hpa.spec.maxReplicas);
        const types = hpa.spec.metrics.map((m: any) => m.resource?.name ?? m.pods?.metric.name);
        expect(types).toEqual(['cpu', 'promptmesh_http_requests_per_second']);
      }
    });

    it('drains before stopping, within the termination grace period', () => {
      for (const d of promptDeployments) {
        const pod = podSpecOf(d);
        const c = pod.containers[0];
        const sleep = c.lifecycle.preStop.sleep.seconds;
        const shutdown = Number(c.env.find((e: any) => e.name === 'SHUTDOWN_TIMEOUT_MS').value) / 1000;
        expect(sleep).toBeGreaterThan(0);
        expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(sleep + shutdown);
      }
    });

    it('selects every workload with a NetworkPolicy besides the default deny', () => {
      const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
      const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0 && !p.spec.ingress && !p.spec.egress);
      expect(deny.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      for (const o of podOwners) {
        const labels = podSpecOf(o) && (o.spec.template ?? o.spec.jobTemplate.spec.template).metadata.labels;
        const specific = policies.filter((p) => Object.keys(p.spec.podSelector.matchLabels ?? {}).length > 0 && matches(p.spec.podSelector.matchLabels, labels));
        expect(specific.length, `${o.kind} ${o.metadata.name} has its own NetworkPolicy`).toBeGreaterThan(0);
      }
    });

    it('enforces STRICT mTLS namespace-wide and authorizes each service by caller identity', () => {
      const pa = objects.filter((o) => o.kind === 'PeerAuthentication');
      expect(pa).toHaveLength(1);
      expect(pa[0].spec).toEqual({ mtls: { mode: 'STRICT' } });
      const authz = objects.filter((o) => o.kind === 'AuthorizationPolicy');
      expect(authz.map((a) => a.metadata.name).sort()).toEqual(['context', 'llm', 'router', 'templates']);
      const ns = namespace.metadata.name;
      for (const a of authz) {
        const principals = a.spec.rules[0].from[0].source.principals;
        expect(principals).toEqual(
          a.metadata.name === 'router'
            ? ['cluster.local/ns/istio-ingress/sa/istio-ingressgateway']
            : [`cluster.local/ns/${ns}/sa/router`],
        );
      }
    });

    it('routes VirtualService weights that sum to 100 over subsets that exist', () => {
      const drs = objects.filter((o) => o.kind === 'DestinationRule');
      const vss = objects.filter((o) => o.kind === 'VirtualService');
      expect(vss.length).toBeGreaterThanOrEqual(4);
      for (const vs of vss) {
        for (const http of vs.spec.http) {
          const sum = http.route.reduce((s: number, r: any) => s + (r.weight ?? 100), 0);
          expect(sum, `${vs.metadata.name} weights`).toBe(100);
          for (const r of http.route) {
            const dr = drs.find((d) => d.spec.host === r.destination.host);
            expect(dr, `DestinationRule for ${r.destination.host}`).toBeDefined();
            expect(dr.spec.subsets.map((s: any) => s.name)).toContain(r.destination.subset);
          }
        }
      }
    });

    it('labels every ServiceMonitor for the Prometheus selector and points it at a Service port', () => {
      const services = objects.filter((o) => o.kind === 'Service');
      const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
      expect(monitors.length).toBeGreaterThanOrEqual(5);
      for (const m of monitors) {
        expect(matches({ ...MONITOR_LABELS }, m.metadata.labels), `${m.metadata.name} labels`).toBe(true);
        const targets = services.filter((s) => matches(m.spec.selector.matchLabels, s.metadata.labels));
        expect(targets.length, `${m.metadata.name} selects a Service`).toBeGreaterThan(0);
        for (const e of m.spec.endpoints) {
          expect(targets.some((s) => s.spec.ports.some((p: any) => p.name === e.port)), `${m.metadata.name} port ${e.port}`).toBe(true);
        }
      }
    });

    it('ships the SLO alerts and dashboards, labelled for Prometheus and the Grafana sidecar', () => {
      const rules = objects.filter((o) => o.kind === 'PrometheusRule');
      expect(rules).toHaveLength(1);
      expect(matches({ ...MONITOR_LABELS }, rules[0].metadata.labels)).toBe(true);
      const alerts = rules[0].spec.groups.flatMap((g: any) => g.rules.map((r: any) => r.alert).filter(Boolean));
      expect(alerts.length).toBeGreaterThan(3);
      expect(objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.grafana_dashboard === '1').length).toBeGreaterThan(0);
    });

    it('never carries a secret value', () => {
      expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
      for (const o of podOwners) {
        for (const c of containersOf(podSpecOf(o))) {
          for (const e of c.env ?? []) {
            if (SECRET_NAME.test(e.name)) expect(e.valueFrom, `${o.metadata.name}/${c.name} ${e.name}`).toBeDefined();
          }
        }
      }
      const strings: Array<[string, string]> = [];
      objects.forEach((o) => allStrings(o, `${o.kind}/${o.metadata.name}`, strings));
      for (const [path, value] of strings) {
        for (const pattern of SECRET_VALUE_PATTERNS) expect(pattern.test(value), `${path}: ${value.slice(0, 80)}`).toBe(false);
      }
    });

    it('annotates every service pod with a config checksum', () => {
      for (const d of promptDeployments) {
        expect(d.spec.template.metadata.annotations['promptmesh.io/config-checksum']).toMatch(/^[0-9a-f]{64}$/);
      }
    });

    it('places spot workloads with the spot toleration and on-demand ones off spot nodes', () => {
      for (const d of promptDeployments) {
        const pod = podSpecOf(d);
        const tolerates = (pod.tolerations ?? []).some((t: any) => t.key === SPOT_TAINT_KEY);
        const node = pod.affinity.nodeAffinity;
        if (tolerates) expect(node.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].values).toEqual(['spot']);
        else expect(node.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator).toBe('NotIn');
      }
    });
  });
}
