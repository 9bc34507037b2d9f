/**
 * The flow matrix: for every topology this repository deploys (the library's defaults, the cdk8s
 * environments of `stacks/k8s`, and the chart the Pulumi program applies for each stack file), the
 * NetworkPolicies, read by the evaluator in test/support/network-policy.ts, admit every flow the
 * design needs and deny the ones it must not have.
 *
 * What a flow needs is derived from the synthesized objects wherever they say it: a service
 * reaches Redis or PostgreSQL when its container gets REDIS_URL or DATABASE_URL; Prometheus
 * scrapes what the ServiceMonitors name; meshed pods (no `sidecar.istio.io/inject: "false"`)
 * talk to istiod. The call graph between services is the design's (DESIGN.md, "The request
 * path"). Pods get addresses from the pod network (the VPC for the EKS stacks: vpc-cni), and
 * every matrix runs twice, with `ipBlock` matching pod addresses and without (Kubernetes leaves
 * that to the network plugin).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'cdk8s';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ENV, SERVICE_NAMES, type ServiceName } from '../../contracts/index';
import { DEFAULT_INGRESS_GATEWAY, PromptSystem } from '../../infra/k8s/index';
import { promptSystemProps } from '../../stacks/pulumi/app';
import { parseStackConfig } from '../../stacks/pulumi/config';
import { REPO_ROOT } from '../../stacks/pulumi/program';
import { ENVIRONMENTS } from '../../stacks/k8s/environments';
import { synthesize } from '../../stacks/k8s/synth';
import { defaultChart, TEST_IMAGE } from './manifests';
import { evaluate, explain, inCidr, modelOf, podsOf, type ClusterModel, type Endpoint, type External, type Pod, type Protocol } from '../support/network-policy';

interface Topology {
  name: string;
  objects: any[];
  /** The pod network: where pod addresses come from. */
  podCidr: string;
  /** Where a managed PostgreSQL would sit (inside the VPC, outside the pod selectors). */
  databaseIp: string;
  ingressNamespace: string;
  istioNamespace: string;
  monitoringNamespace: string;
  /** The OpenTelemetry collector's namespace, when the stack installs tracing. */
  tracingNamespace?: string;
}

const CALLS: Array<[ServiceName, ServiceName]> = [
  ['router', 'templates'],
  ['router', 'context'],
  ['router', 'llm'],
];

function pulumiTopology(stack: string): Topology {
  const doc = parse(readFileSync(join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> };
  const flat: Record<string, string> = Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  // The secrets no stack file holds (values never reach the chart; only their presence is checked).
  flat['promptmesh:adminApiKey'] = 'adm1n-key-for-the-flow-matrix-0123456789';
  const keyNames = ((parse(flat['promptmesh:app'] ?? '{}') as { providers?: { providers?: { apiKeyEnv?: string }[] } }).providers?.providers ?? [])
    .map((p) => p.apiKeyEnv)
    .filter((n): n is string => !!n);
  if (keyNames.length > 0) flat['promptmesh:providerApiKeys'] = JSON.stringify(Object.fromEntries(keyNames.map((n) => [n, 'sk-flow-matrix'])));
  const cfg = parseStackConfig(flat, stack, () => true);
  const aws = cfg.mode === 'aws' ? cfg.aws : undefined;
  const postgres = aws?.database === 'rds' ? 'external' : 'in-cluster';
  const withTracing = cfg.mode === 'aws' || cfg.local.installPlatform;
  const image = 'registry.example/promptmesh@sha256:' + '0'.repeat(64);
  const app = new App();
  const chart = new PromptSystem(app, 'promptmesh', promptSystemProps(cfg.app, {
    images: { router: image, templates: image, context: image, llm: image },
    postgres,
    vpcCidr: aws?.vpcCidr,
    environment: cfg.environment,
    withTracing,
  }));
  const podCidr = aws?.vpcCidr ?? '10.244.0.0/16';
  const base = podCidr.split('.').slice(0, 2).join('.');
  return {
    name: `Pulumi.${stack}.yaml (${cfg.mode}, ${postgres} PostgreSQL)`,
    objects: chart.toJson(),
    podCidr,
    databaseIp: `${base}.200.17`,
    ingressNamespace: 'istio-ingress',
    istioNamespace: 'istio-system',
    monitoringNamespace: 'monitoring',
    tracingNamespace: withTracing ? 'observability' : undefined,
  };
}

function topologies(): Topology[] {
  const k8s = (name: string, objects: any[]): Topology => ({
    name,
    objects,
    podCidr: '10.0.0.0/16',
    databaseIp: '10.0.200.17',
    ingressNamespace: DEFAULT_INGRESS_GATEWAY.namespace,
    istioNamespace: 'istio-system',
    monitoringNamespace: 'monitoring',
  });
  return [
    k8s('library defaults (PromptSystem with images only)', defaultChart()),
    ...ENVIRONMENTS.map((env) => k8s(`stacks/k8s ${env}`, synthesize({ env, images: TEST_IMAGE }))),
    ...['local', 'dev', 'staging', 'prod'].map(pulumiTopology),
  ];
}

function envNames(objects: any[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const o of objects.filter((x) => ['Deployment', 'StatefulSet', 'Job'].includes(x.kind))) {
    const names = new Set<string>();
    for (const c of o.spec.template.spec.containers) for (const e of c.env ?? []) names.add(e.name);
    out.set(`${o.kind}/${o.metadata.name}`, names);
  }
  return out;
}

/** The pods and container ports Prometheus scrapes, from the ServiceMonitors and the Services they select. */
function scrapeTargets(objects: any[], pods: Pod[]): Array<{ pod: Pod; port: number; monitor: string }> {
  const out: Array<{ pod: Pod; port: number; monitor: string }> = [];
  const matches = (sel: Record<string, string>, labels: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  for (const sm of objects.filter((o) => o.kind === 'ServiceMonitor')) {
    const namespaces: string[] = sm.spec.namespaceSelector?.matchNames ?? [sm.metadata.namespace];
    const services = objects.filter(
      (o) => o.kind === 'Service' && namespaces.includes(o.metadata.namespace) && matches(sm.spec.selector.matchLabels ?? {}, o.metadata.labels ?? {}),
    );
    expect(services.length, `ServiceMonitor ${sm.metadata.name} selects a Service`).toBeGreaterThan(0);
    for (const svc of services) {
      for (const ep of sm.spec.endpoints) {
        const sp = svc.spec.ports.find((p: any) => p.name === ep.port);
        expect(sp, `Service ${svc.metadata.name} has the port ${ep.port}`).toBeDefined();
        for (const pod of pods.filter((p) => p.namespace === svc.metadata.namespace && matches(svc.spec.selector, p.labels))) {
          const target = sp.targetPort ?? sp.port;
          const port = typeof target === 'number' ? target : pod.ports.find((c) => c.name === target)?.containerPort;
          expect(port, `${pod.name} has the container port ${target}`).toBeDefined();
          out.push({ pod, port: port!, monitor: sm.metadata.name });
        }
      }
    }
    expect(out.some((t) => t.monitor === sm.metadata.name), `ServiceMonitor ${sm.metadata.name} reaches a pod`).toBe(true);
  }
  return out;
}

for (const topology of topologies()) {
  for (const ipBlockMatchesPods of [true, false]) {
    describe(`flow matrix: ${topology.name}${ipBlockMatchesPods ? '' : ' (ipBlock never matches pods)'}`, () => {
      const { objects } = topology;
      const appNamespace: string = objects.find((o) => o.kind === 'Namespace').metadata.name;
      const model: ClusterModel = modelOf(
        objects,
        Object.fromEntries(['default', 'kube-system', topology.ingressNamespace, topology.istioNamespace, topology.monitoringNamespace, 'observability'].map((n) => [n, {}])),
        ipBlockMatchesPods,
      );
      const pods = podsOf(objects, topology.podCidr);
      const env = envNames(objects);
      const outside = (name: string, ip: string, namespace: string, labels: Record<string, string>, ports: Pod['ports'] = []): Pod => ({
        kind: 'pod', name, namespace, labels, ip, ports,
      });
      const base = topology.podCidr.split('.').slice(0, 2).join('.');
      const gateway = outside('istio ingress gateway', `${base}.250.1`, topology.ingressNamespace, { istio: 'ingressgateway', app: 'istio-ingressgateway' });
      const istiod = outside('istiod', `${base}.250.2`, topology.istioNamespace, { app: 'istiod', istio: 'pilot' }, [
        { name: 'grpc-xds', containerPort: 15012 }, { name: 'https-webhooks', containerPort: 15017 },
      ]);
      const dns = outside('kube-dns', `${base}.250.3`, 'kube-system', { 'k8s-app': 'kube-dns' }, [
        { name: 'dns', containerPort: 53, protocol: 'UDP' }, { name: 'dns-tcp', containerPort: 53 },
      ]);
      const prometheus = outside('prometheus', `${base}.250.4`, topology.monitoringNamespace, { 'app.kubernetes.io/name': 'prometheus' });
      const collector = outside('otel collector', `${base}.250.5`, 'observability', { 'app.kubernetes.io/name': 'opentelemetry-collector' }, [
        { name: 'otlp', containerPort: 4317 }, { name: 'otlp-http', containerPort: 4318 },
      ]);
      const stranger = outside('a pod in default', `${base}.250.6`, 'default', { app: 'curl' });
      const internet: External = { kind: 'external', name: 'the internet (api.openai.com)', ip: '104.18.7.192' };
      const metadataService: External = { kind: 'external', name: 'instance metadata', ip: '169.254.169.254' };
      const privateNet: External = { kind: 'external', name: 'another private network', ip: '192.168.10.20' };

      const appPods = pods.filter((p) => p.namespace === appNamespace);
      const servicePods = (s: ServiceName) => appPods.filter((p) => p.name.startsWith('Deployment/') && p.labels['app.kubernetes.io/name'] === s);
      const redis = appPods.filter((p) => p.name.startsWith('StatefulSet/') && p.labels['app.kubernetes.io/name'] === 'redis');
      const postgresPods = appPods.filter((p) => p.name.startsWith('StatefulSet/') && p.labels['app.kubernetes.io/name'] === 'postgres');
      const bootstrap = appPods.filter((p) => p.labels['app.kubernetes.io/name'] === 'redis-cluster-bootstrap');
      const database: Endpoint[] = postgresPods.length > 0 ? postgresPods : [{ kind: 'external', name: 'managed PostgreSQL', ip: topology.databaseIp }];
      const meshed = appPods.filter((p) => p.labels['sidecar.istio.io/inject'] !== 'false');
      const uses = (p: Pod, variable: string) => env.get(p.name)?.has(variable) ?? false;
      const appPort = (p: Pod) => p.ports.find((c) => c.name === 'http')!.containerPort;

      const expectFlow = (want: boolean, a: Endpoint, b: Endpoint, port: number, protocol: Protocol = 'TCP') => {
        const v = evaluate(model, a, b, port, protocol);
        expect(v.allowed, `${want ? 'must allow' : 'must deny'}: ${explain(a, b, port, protocol, v)}`).toBe(want);
      };

      it('models the topology: every service has pods, pods sit in the pod network, policies in the namespace', () => {
        for (const s of SERVICE_NAMES) expect(servicePods(s).length, s).toBeGreaterThan(0);
        expect(redis.length).toBeGreaterThanOrEqual(1);
        for (const p of appPods) expect(inCidr(p.ip, topology.podCidr)).toBe(true);
        expect(model.policies.length).toBeGreaterThan(0);
        expect(model.policies.every((p) => p.metadata.namespace === appNamespace)).toBe(true);
        // Default deny both ways for every pod of the namespace.
        expect(model.policies.some((p) => Object.keys(p.spec.podSelector ?? {}).length === 0 && !p.spec.ingress && !p.spec.egress)).toBe(true);
      });

      it('allows the request path: gateway -> router, router -> templates, context, llm', () => {
        for (const r of servicePods('router')) expectFlow(true, gateway, r, appPort(r));
        for (const [from, to] of CALLS) {
          for (const a of servicePods(from)) for (const b of servicePods(to)) expectFlow(true, a, b, appPort(b));
        }
      });

      it('denies every other service-to-service call and the gateway anywhere but the router port', () => {
        for (const from of SERVICE_NAMES) {
          for (const to of SERVICE_NAMES) {
            if (from === to || CALLS.some(([x, y]) => x === from && y === to)) continue;
            for (const a of servicePods(from)) for (const b of servicePods(to)) expectFlow(false, a, b, appPort(b));
          }
        }
        for (const s of ['templates', 'context', 'llm'] as const) for (const b of servicePods(s)) expectFlow(false, gateway, b, appPort(b));
        for (const r of servicePods('router')) for (const port of [15020, 15090, 15000, 9999]) expectFlow(false, gateway, r, port);
        for (const d of [...redis, ...postgresPods]) for (const c of d.ports) expectFlow(false, gateway, d, c.containerPort);
      });

      it('lets each service reach Redis and PostgreSQL exactly when it is configured to use them', () => {
        for (const s of SERVICE_NAMES) {
          for (const p of servicePods(s)) {
            for (const r of redis) {
              expectFlow(uses(p, ENV.redisUrl), p, r, 6379);
              expectFlow(false, p, r, 16379);
            }
            for (const d of database) expectFlow(uses(p, ENV.databaseUrl), p, d, 5432);
          }
        }
        // The configuration the matrix reads: router on PostgreSQL exactly when it has API keys
        // (virtual keys and spend live there, docs/keys.md), templates on it always.
        for (const p of servicePods('router')) expect(uses(p, ENV.databaseUrl)).toBe(uses(p, ENV.apiKeysFile));
        for (const p of servicePods('templates')) expect(uses(p, ENV.databaseUrl)).toBe(true);
        // Nothing else reaches the data stores' client ports.
        for (const r of redis) for (const other of [stranger, gateway, prometheus, ...postgresPods]) expectFlow(false, other, r, 6379);
        for (const d of postgresPods) for (const other of [stranger, gateway, prometheus, ...redis, ...bootstrap]) expectFlow(false, other, d, 5432);
      });

      it('lets Redis Cluster nodes reach each other (client and bus port) and the bootstrap Job reach them', () => {
        const bus = redis[0]!.ports.some((p) => p.name === 'cluster-bus');
        for (const a of redis) for (const b of redis) {
          expectFlow(true, a, b, 6379);
          expectFlow(bus, a, b, 16379);
        }
        for (const j of bootstrap) for (const r of redis) expectFlow(true, j, r, 6379);
        for (const j of bootstrap) for (const s of SERVICE_NAMES) for (const p of servicePods(s)) expectFlow(false, j, p, appPort(p));
        expect(bootstrap.length > 0).toBe(bus);
      });

      it('lets Prometheus scrape what the ServiceMonitors name, and nothing else of the pods', () => {
        const targets = scrapeTargets(objects, appPods);
        expect(targets.length).toBeGreaterThanOrEqual(SERVICE_NAMES.length + 1);
        for (const t of targets) expectFlow(true, prometheus, t.pod, t.port);
        for (const p of appPods) {
          for (const c of p.ports) {
            if (targets.some((t) => t.pod === p && t.port === c.containerPort)) continue;
            expectFlow(false, prometheus, p, c.containerPort);
          }
        }
        for (const t of targets) expectFlow(false, stranger, t.pod, t.port);
      });

      it('lets every pod resolve names, and every meshed pod reach istiod for xDS and certificates (15012) only', () => {
        for (const p of appPods) {
          expectFlow(true, p, dns, 53, 'UDP');
          expectFlow(true, p, dns, 53, 'TCP');
          expectFlow(false, p, dns, 80);
        }
        expect(meshed.length).toBeGreaterThanOrEqual(SERVICE_NAMES.length);
        for (const p of meshed) {
          expectFlow(true, p, istiod, 15012);
          // 15017 is istiod's webhook port: the API server calls it, sidecars never do.
          expectFlow(false, p, istiod, 15017);
          expectFlow(false, p, istiod, 15010);
        }
      });

      it('lets only llm out to the providers on 443: never to private, metadata or other ports', () => {
        for (const p of servicePods('llm')) {
          expectFlow(true, p, internet, 443);
          expectFlow(false, p, internet, 80);
          expectFlow(false, p, metadataService, 443);
          expectFlow(false, p, metadataService, 80);
          expectFlow(false, p, privateNet, 443);
          expectFlow(false, p, { kind: 'external', name: 'an address in the VPC', ip: topology.databaseIp }, 443);
        }
        for (const p of appPods.filter((x) => !servicePods('llm').includes(x))) {
          for (const port of [443, 80]) expectFlow(false, p, internet, port);
          expectFlow(false, p, metadataService, 80);
        }
      });

      it('admits nothing from the internet or from other namespaces into the app namespace (the gateway alone is public)', () => {
        for (const p of appPods) {
          for (const c of [...p.ports, { containerPort: 15020 }, { containerPort: 15008 }]) {
            expectFlow(false, internet, p, c.containerPort);
            expectFlow(false, stranger, p, c.containerPort);
          }
        }
        // The kubelet (the pod's node) still probes every pod.
        for (const p of appPods) expectFlow(true, { kind: 'host', name: 'node' }, p, 15021);
      });

      it('sends traces to the collector only when the stack installs it', () => {
        for (const p of meshed) {
          expectFlow(!!topology.tracingNamespace, p, collector, 4317);
          expectFlow(!!topology.tracingNamespace, p, collector, 4318);
        }
      });
    });
  }
}
