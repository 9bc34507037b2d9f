/**
 * Rollouts, placement, scaling and outlier detection over the synthesized output: the numbers
 * that must agree across objects (route timeout, shutdown timeout, grace period), where the
 * request path runs in production in both the cdk8s and the Pulumi path, the HPA target, the
 * quiet hours schedule and its RBAC, and what ejects a pod.
 */
import { isDeepStrictEqual } from 'node:util';
import { Testing } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import {
  API_SERVER_PRIVATE_CIDRS,
  EXIT_MARGIN_SECONDS,
  KUBECTL_IMAGE,
  LONGEST_STREAM_SECONDS,
  Mesh,
  placementFor,
  placementPolicyFor,
  PromptService,
  PromptSystem,
  serviceCapacities,
} from '../../infra/k8s/index';
import { promptSystemProps } from '../../stacks/pulumi/app';
import { parseStackConfig } from '../../stacks/pulumi/config';
import { environmentProps } from '../../stacks/k8s/environments';
import { allOutputs, TEST_IMAGE } from './manifests';
import { stackConfig } from '../pulumi/stacks';

const SERVICES = ['router', 'templates', 'context', 'llm'];

function seconds(duration: string): number {
  const m = /^(\d+)(ms|s|m)$/.exec(duration)!;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] as 'ms' | 's' | 'm'];
}

function deploymentsOf(objects: any[]): any[] {
  return objects.filter((o) => o.kind === 'Deployment' && SERVICES.includes(o.metadata.labels['app.kubernetes.io/component']));
}

/** The capacity a pod spec's scheduling fields place it on. */
function capacityOf(podSpec: any): string {
  const { affinity, tolerations } = podSpec;
  for (const capacity of ['spot', 'on-demand'] as const) {
    const want = placementFor(capacity);
    if (isDeepStrictEqual(want.affinity, affinity) && isDeepStrictEqual(want.tolerations, tolerations)) return capacity;
  }
  return 'unknown';
}

describe('rollouts do not cut the streams the mesh allows', () => {
  for (const [name, objects] of allOutputs()) {
    it(`${name}: route timeout <= SHUTDOWN_TIMEOUT_MS, and grace = drain + shutdown + margin`, () => {
      const routes = objects.filter((o) => o.kind === 'VirtualService');
      for (const d of deploymentsOf(objects)) {
        const svc = d.metadata.labels['app.kubernetes.io/component'];
        const pod = d.spec.template.spec;
        const c = pod.containers[0];
        const shutdown = Number(c.env.find((e: any) => e.name === 'SHUTDOWN_TIMEOUT_MS').value) / 1000;
        const drain = c.lifecycle.preStop.sleep.seconds;
        const timeouts = routes
          .filter((vs) => vs.spec.http.some((h: any) => h.route.some((r: any) => r.destination.host.startsWith(`${svc}.`))))
          .flatMap((vs) => vs.spec.http.map((h: any) => seconds(h.timeout)));
        expect(timeouts.length, `${svc} has routes`).toBeGreaterThan(0);
        expect(Math.max(...timeouts), `${svc}: the longest route fits the shutdown`).toBeLessThanOrEqual(shutdown);
        expect(pod.terminationGracePeriodSeconds).toBe(drain + shutdown + EXIT_MARGIN_SECONDS);
        if (svc === 'router' || svc === 'llm') {
          expect(Math.max(...timeouts)).toBe(LONGEST_STREAM_SECONDS);
          expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(LONGEST_STREAM_SECONDS + drain);
        }
      }
    });
  }

  it('refuses a route timeout longer than the service shutdown', () => {
    const chart = Testing.chart();
    const router = new PromptService(chart, 'router', { service: 'router', image: TEST_IMAGE, shutdownTimeoutSeconds: 60 });
    expect(() => new Mesh(chart, 'mesh', { services: [router] })).toThrow(/'timeouts.router' \(300s\) is longer than router's shutdownTimeoutSeconds \(60\)/);
    expect(() => new Mesh(Testing.chart(), 'mesh2', { services: [new PromptService(Testing.chart(), 'r', { service: 'router', image: TEST_IMAGE })], timeouts: { router: '301s' } })).toThrow(
      /is longer than router's shutdownTimeoutSeconds \(300\)/,
    );
  });
});

describe('placement: one decision for both paths', () => {
  it('the cdk8s app puts prod router and llm on on-demand nodes, templates and context on spot', () => {
    const objects = Testing.synth(new PromptSystem(Testing.app(), 'p', environmentProps('prod', TEST_IMAGE)));
    const byService = Object.fromEntries(deploymentsOf(objects).map((d) => [d.metadata.labels['app.kubernetes.io/component'], capacityOf(d.spec.template.spec)]));
    expect(byService).toEqual({ router: 'on-demand', llm: 'on-demand', templates: 'spot', context: 'spot' });
    expect(byService).toEqual(serviceCapacities(placementPolicyFor('prod')));
  });

  it('the Pulumi program renders prod (Pulumi.prod.yaml) the same way (the full program under mocks: test/pulumi/aws-stack-suite.ts)', () => {
    const flat = Object.fromEntries(Object.entries(stackConfig('prod').config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    const cfg = parseStackConfig(flat, 'prod');
    const images = { router: TEST_IMAGE, templates: TEST_IMAGE, context: TEST_IMAGE, llm: TEST_IMAGE };
    const props = promptSystemProps(cfg.app, { images, postgres: 'external', vpcCidr: '10.42.0.0/16', environment: cfg.environment, withTracing: true });
    const objects = Testing.synth(new PromptSystem(Testing.app(), 'p', props));
    const byService = Object.fromEntries(deploymentsOf(objects).map((d) => [d.metadata.labels['app.kubernetes.io/component'], capacityOf(d.spec.template.spec)]));
    expect(byService.router).toBe('on-demand');
    expect(byService.llm).toBe('on-demand');
  });

  it('refuses spot for the request path under the production policy, naming the prop', () => {
    expect(() => new PromptSystem(Testing.app(), 'p', { images: TEST_IMAGE, services: { llm: { capacity: 'spot' } } })).toThrow(
      /'services.llm.capacity' is spot, but placement 'request-path-on-demand' keeps router and llm on on-demand nodes/,
    );
    expect(() => new PromptSystem(Testing.app(), 'p', { images: TEST_IMAGE, serviceDefaults: { capacity: 'spot' } })).toThrow(/'serviceDefaults.capacity' is spot/);
    expect(() => new PromptSystem(Testing.app(), 'p', { images: TEST_IMAGE, spot: true, placement: 'all-on-demand' })).toThrow(/'spot' .* contradicts 'placement'/);
    expect(() => new PromptSystem(Testing.app(), 'p', { images: TEST_IMAGE, placement: 'cheap' as never })).toThrow(/'placement' must be one of request-path-on-demand, all-spot, all-on-demand/);
  });
});

describe('autoscaling', () => {
  for (const [name, objects] of allOutputs()) {
    it(`${name}: scales out at 50% CPU and on requests per second`, () => {
      const hpas = objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
      expect(hpas.length).toBeGreaterThanOrEqual(4);
      for (const h of hpas) {
        expect(h.spec.metrics[0].resource.target).toEqual({ type: 'Utilization', averageUtilization: 50 });
        expect(h.spec.metrics[1].pods.metric.name).toBe('promptmesh_http_requests_per_second');
      }
    });
  }

  it('prod lowers the floors in quiet hours with a Role that may only patch those HPAs', () => {
    const objects = Testing.synth(new PromptSystem(Testing.app(), 'p', environmentProps('prod', TEST_IMAGE)));
    const hpas = objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
    const cronJobs = objects.filter((o) => o.kind === 'CronJob');
    const roles = objects.filter((o) => o.kind === 'Role');
    expect(cronJobs).toHaveLength(8);
    expect(roles).toHaveLength(4);
    for (const svc of SERVICES) {
      const own = hpas.filter((h) => h.metadata.labels['app.kubernetes.io/component'] === svc);
      const role = roles.find((r) => r.metadata.name === `${svc}-quiet-hours`);
      expect(role.rules).toEqual([
        { apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], resourceNames: own.map((h) => h.metadata.name), verbs: ['patch'] },
      ]);
      const binding = objects.find((o) => o.kind === 'RoleBinding' && o.metadata.name === `${svc}-quiet-hours`);
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: `${svc}-quiet-hours`, namespace: 'promptmesh' }]);
      const start = cronJobs.find((c) => c.metadata.name === `${svc}-quiet-start`);
      const end = cronJobs.find((c) => c.metadata.name === `${svc}-quiet-end`);
      expect([start.spec.schedule, end.spec.schedule, start.spec.timeZone]).toEqual(['0 23 * * *', '0 6 * * *', 'Etc/UTC']);
      const patchOf = (c: any) => c.spec.jobTemplate.spec.template.spec.containers.map((k: any) => [k.args[2], JSON.parse(k.args.at(-1).replace('--patch=', ''))]);
      expect(patchOf(start)).toEqual(own.map((h) => [h.metadata.name, { spec: { minReplicas: 2 } }]));
      expect(patchOf(end)).toEqual(own.map((h) => [h.metadata.name, { spec: { minReplicas: h.spec.minReplicas } }]));
      const pod = start.spec.jobTemplate.spec.template;
      expect(pod.metadata.labels['sidecar.istio.io/inject']).toBe('false');
      // Not selected by the service's own Service or policies.
      expect(pod.metadata.labels['app.kubernetes.io/name']).toBe(`${svc}-quiet-hours`);
      expect(pod.spec.serviceAccountName).toBe(`${svc}-quiet-hours`);
      const policy = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === `${svc}-quiet-hours`);
      expect(policy.spec.podSelector.matchLabels).toEqual({ 'promptmesh.io/quiet-hours': svc });
      expect(pod.metadata.labels['promptmesh.io/quiet-hours']).toBe(svc);
      expect(policy.spec.egress).toEqual([
        { to: API_SERVER_PRIVATE_CIDRS.map((cidr) => ({ ipBlock: { cidr } })), ports: [{ protocol: 'TCP', port: 443 }, { protocol: 'TCP', port: 6443 }] },
      ]);
      expect(policy.spec.ingress).toBeUndefined();
      for (const c of pod.spec.containers) {
        expect(c.image).toBe(KUBECTL_IMAGE);
        expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      }
    }
    expect(KUBECTL_IMAGE).toMatch(/^registry\.k8s\.io\/kubectl:v\d+\.\d+\.\d+$/);
  });

  it('checks the quiet hours props', () => {
    const svc = (quietHours: any) => () => new PromptService(Testing.chart(), 's', { service: 'context', image: TEST_IMAGE, quietHours });
    expect(svc({ start: 'nightly', end: '0 6 * * *' })).toThrow(/'quietHours.start' must be a cron schedule with five fields/);
    expect(svc({ start: '0 22 * * *', end: '0 6 * *' })).toThrow(/'quietHours.end' must be a cron schedule/);
    expect(svc({ start: '0 22 * * *', end: '0 6 * * *', minReplicas: 5 })).toThrow(/'quietHours.minReplicas' \(5\) must not be above 'minReplicas' \(2\)/);
    expect(svc({ start: '0 22 * * *', end: '0 6 * * *', timeZone: 'Mars time' })).toThrow(/'quietHours.timeZone' must be an IANA time zone/);
    expect(svc({ start: '0 22 * * *', end: '0 6 * * *', image: 'not an image' })).toThrow(/'quietHours.image' must be an image reference/);
    expect(svc({ start: '0 22 * * *', end: '0 6 * * *', apiServerCidrs: ['10.0.0.0/33'] })).toThrow(/'quietHours.apiServerCidrs\[0\]' must be an IPv4 CIDR/);
  });
});

describe('outlier detection', () => {
  for (const [name, objects] of allOutputs()) {
    it(`${name}: ejects a pod for its own failures, never for the 5xx a provider or datastore outage makes every pod answer`, () => {
      const drs = objects.filter((o) => o.kind === 'DestinationRule');
      expect(drs.map((d) => d.metadata.name).sort()).toEqual(['context', 'llm', 'router', 'templates']);
      for (const d of drs) {
        expect(d.spec.trafficPolicy.outlierDetection).toEqual({
          splitExternalLocalOriginErrors: true,
          consecutiveLocalOriginFailures: 5,
          consecutiveGatewayErrors: 0,
          consecutive5xxErrors: 0,
          interval: '10s',
          baseEjectionTime: '30s',
          maxEjectionPercent: 50,
        });
      }
    });
  }
});
