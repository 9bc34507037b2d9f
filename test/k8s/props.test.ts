import { Chart, Testing } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import {
  Mesh,
  NetworkPolicies,
  PromptService,
  type PromptServiceProps,
  PromptSystem,
  type PromptSystemProps,
} from '../../infra/k8s/index';
import { validateManifests } from '../support/k8s-validate';

const IMAGE = 'ghcr.io/promptmesh/promptmesh:0.1.0';

function service(props: Partial<PromptServiceProps> = {}): { chart: Chart; svc: PromptService } {
  const chart = new Chart(Testing.app(), 'test');
  const svc = new PromptService(chart, 'svc', { service: 'router', image: IMAGE, ...props });
  return { chart, svc };
}

function system(props: Partial<PromptSystemProps> = {}): any[] {
  return Testing.synth(new PromptSystem(Testing.app(), 'x', { images: IMAGE, ...props }));
}

describe('PromptService prop validation', () => {
  it.each([
    [{ service: 'gateway' as never }, /'service' must be one of router, templates, context, llm/],
    [{ image: undefined }, /'image' must be an image reference/],
    [{ minReplicas: 0 }, /'minReplicas' must be an integer from 1 to 1000, got 0/],
    [{ minReplicas: 2.5 }, /'minReplicas' must be an integer/],
    [{ minReplicas: 5, maxReplicas: 3 }, /'minReplicas' \(5\) must be less than or equal to 'maxReplicas' \(3\)/],
    [{ targetCpuUtilization: 150 }, /'targetCpuUtilization' must be an integer from 10 to 100/],
    [{ resources: { requests: { cpu: 'lots', memory: '1Gi' }, limits: { cpu: '1', memory: '1Gi' } } }, /'resources.requests.cpu' must be a positive CPU quantity/],
    [{ resources: { requests: { cpu: '2', memory: '1Gi' }, limits: { cpu: '1', memory: '1Gi' } } }, /'resources.requests.cpu' \(2\) must be less than or equal to 'resources.limits.cpu' \(1\)/],
    [{ resources: { requests: { cpu: '1', memory: '2Gi' }, limits: { cpu: '1', memory: '1Gi' } } }, /'resources.requests.memory' \(2Gi\) must be less than or equal to/],
    [{ resources: { requests: { cpu: '1', memory: '1GB' }, limits: { cpu: '1', memory: '1Gi' } } }, /'resources.requests.memory' must be a positive memory quantity/],
    [{ resources: { requests: { cpu: '1' } } as never }, /'resources' must have both 'requests' and 'limits'/],
    [{ capacity: 'preemptible' as never }, /'capacity' must be one of spot, on-demand/],
    [{ tracks: [] }, /'tracks' must list at least one track/],
    [{ tracks: [{ name: 'Canary' }] }, /'tracks\[0\].name' must be a DNS label/],
    [{ tracks: [{ name: 'stable' }, { name: 'stable' }] }, /'tracks' has the track "stable" twice/],
    [{ tracks: [{ name: 'stable' }, { name: 'canary' }], traffic: { stable: 90, canary: 20 } }, /'traffic' weights must sum to 100, got 110/],
    [{ tracks: [{ name: 'stable' }, { name: 'canary' }], traffic: { stable: 90, canari: 10 } }, /'traffic.canari' names no track; the tracks \(subsets\) are stable, canary/],
    [{ tracks: [{ name: 'stable' }, { name: 'canary' }], traffic: { stable: 101, canary: -1 } }, /'traffic.stable' must be an integer from 0 to 100, got 101/],
    [{ tracks: [{ name: 'stable' }], traffic: { stable: 50.5 } }, /'traffic.stable' must be an integer from 0 to 100/],
    [{ env: { OPENAI_API_KEY: 'sk-live-123' } }, /'env.OPENAI_API_KEY' looks like a secret; pass it as 'secretEnv.OPENAI_API_KEY'/],
    [{ env: { DATABASE_URL: 'postgres://u:hunter2@db:5432/x' } }, /'env.DATABASE_URL' holds a URL with a password/],
    [{ envVars: [{ name: 'DB_PASSWORD', value: 'hunter2' }] }, /'envVars\[0\]' \(DB_PASSWORD\) looks like a secret/],
    [{ envVars: [{ name: 'X', value: 'a', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] }, /exactly one of 'value'/],
    [{ secretEnv: { PORT: { name: 's', key: 'k' } } }, /'secretEnv.PORT' is also set/],
    [{ configFiles: [{ configMapName: 'c', key: 'a.yaml', content: 'x', mountPath: 'relative' }] }, /'configFiles\[0\].mountPath' must be an absolute path/],
    [{ metricsScraping: 'push' as never }, /'metricsScraping' must be one of istio-agent, app/],
    [{ scrapeInterval: 'often' }, /'scrapeInterval' must be a duration/],
    [{ name: 'Router_1' }, /'name' must be a DNS label/],
    [{ zoneSpread: 'Maybe' as never }, /'zoneSpread' must be one of DoNotSchedule, ScheduleAnyway/],
  ])('rejects %j', (props, message) => {
    expect(() => service(props as Partial<PromptServiceProps>)).toThrow(message);
  });

  it('allows a $(VAR) reference to a secret in a URL, and orders envVars after secretEnv', () => {
    const { chart } = service({
      secretEnv: { PROMPTMESH_REDIS_PASSWORD: { name: 'redis-auth', key: 'password' } },
      envVars: [{ name: 'REDIS_URL', value: 'redis://:$(PROMPTMESH_REDIS_PASSWORD)@redis:6379' }],
    });
    const env = Testing.synth(chart).find((o) => o.kind === 'Deployment').spec.template.spec.containers[0].env.map((e: any) => e.name);
    expect(env.indexOf('PROMPTMESH_REDIS_PASSWORD')).toBeLessThan(env.indexOf('REDIS_URL'));
  });

  it('moves traffic with one prop change: the weights follow `traffic`', () => {
    const weights = (traffic: Record<string, number>) => {
      const { chart, svc } = service({ tracks: [{ name: 'stable' }, { name: 'canary', image: `${IMAGE}-rc1` }], traffic });
      new Mesh(chart, 'mesh', { services: [svc], gateway: false });
      const objects = Testing.synth(chart);
      expect(validateManifests(objects)).toEqual([]);
      const vs = objects.find((o) => o.kind === 'VirtualService');
      return Object.fromEntries(vs.spec.http[0].route.map((r: any) => [r.destination.subset, r.weight]));
    };
    expect(weights({ stable: 90, canary: 10 })).toEqual({ stable: 90, canary: 10 });
    expect(weights({ stable: 0, canary: 100 })).toEqual({ stable: 0, canary: 100 });
  });

  it('runs each track as its own Deployment with its own image', () => {
    const { chart } = service({ tracks: [{ name: 'blue' }, { name: 'green', image: 'ghcr.io/promptmesh/promptmesh:0.2.0' }], traffic: { blue: 100 } });
    const deployments = Testing.synth(chart).filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => [d.metadata.name, d.spec.template.spec.containers[0].image, d.spec.template.metadata.labels.track])).toEqual([
      ['router-blue', IMAGE, 'blue'],
      ['router-green', 'ghcr.io/promptmesh/promptmesh:0.2.0', 'green'],
    ]);
  });

  it('changes the config checksum when the configuration changes, and only then', () => {
    const checksum = (content: string) =>
      service({ configFiles: [{ configMapName: 'providers', key: 'providers.yaml', content, mountPath: '/etc/p', env: 'PROVIDERS_FILE' }] }).svc
        .configChecksum;
    expect(checksum('a: 1')).toBe(checksum('a: 1'));
    expect(checksum('a: 1')).not.toBe(checksum('a: 2'));
  });
});

describe('Mesh and NetworkPolicies prop validation', () => {
  it('requires the router for the gateway', () => {
    const chart = new Chart(Testing.app(), 't');
    const llm = new PromptService(chart, 'llm', { service: 'llm', image: IMAGE });
    expect(() => new Mesh(chart, 'mesh', { services: [llm], callers: { llm: [] } })).toThrow(/'gateway' needs the router among 'services'/);
  });

  it('rejects callers that are not services of the mesh', () => {
    const chart = new Chart(Testing.app(), 't');
    const llm = new PromptService(chart, 'llm', { service: 'llm', image: IMAGE });
    expect(() => new Mesh(chart, 'mesh', { services: [llm], gateway: false, callers: { llm: ['context'] } })).toThrow(
      /'callers.llm' names context, which is not among 'services'/,
    );
    expect(() => new Mesh(chart, 'mesh2', { services: [llm], gateway: false, callers: { llm: ['browser' as never] } })).toThrow(
      /'callers.llm' has "browser"; allowed: ingress-gateway, router/,
    );
  });

  it('rejects bad gateway hosts, durations and pool sizes', () => {
    const mk = (extra: object) => {
      const chart = new Chart(Testing.app(), 't');
      const router = new PromptService(chart, 'r', { service: 'router', image: IMAGE });
      return () => new Mesh(chart, 'mesh', { services: [router], callers: { router: ['ingress-gateway'] }, ...extra });
    };
    expect(mk({ gateway: { hosts: ['https://api.example.com'] } })).toThrow(/'gateway.hosts\[0\]' must be a host name/);
    expect(mk({ timeouts: { router: 'forever' } })).toThrow(/'timeouts.router' must be a duration/);
    expect(mk({ connectionPool: { maxConnections: 0 } })).toThrow(/'connectionPool.maxConnections' must be an integer from 1/);
  });

  it('rejects bad CIDRs, ports and empty datastore selectors', () => {
    const mk = (extra: object) => {
      const chart = new Chart(Testing.app(), 't');
      const llm = new PromptService(chart, 'l', { service: 'llm', image: IMAGE });
      return () => new NetworkPolicies(chart, 'np', { services: [llm], callers: { llm: [] }, ...extra });
    };
    expect(mk({ providerEgress: { cidrs: ['0.0.0.0/33'] } })).toThrow(/'providerEgress.cidrs\[0\]' must be an IPv4 CIDR/);
    expect(mk({ providerEgress: { ports: [70000] } })).toThrow(/'providerEgress.ports\[0\]' must be a port from 1 to 65535/);
    expect(mk({ datastores: [{ name: 'redis', podLabels: {}, ports: [6379], clients: ['llm'] }] })).toThrow(/'datastores\[0\].podLabels' must not be empty/);
    expect(mk({ datastores: [{ name: 'redis', podLabels: { a: 'b' }, ports: [6379], clients: ['router'] }] })).toThrow(
      /'datastores\[0\].clients' names router, which is not among 'services'/,
    );
  });
});

describe('PromptSystem prop validation and options', () => {
  it('requires images, and names a missing per-service image', () => {
    expect(() => new PromptSystem(Testing.app(), 'x', {} as PromptSystemProps)).toThrow(/'images' is required/);
    expect(() => system({ images: { router: IMAGE } })).toThrow(/'images.templates' is missing and there is no 'images.default'/);
    expect(() => system({ images: { default: IMAGE, gateway: IMAGE } as never })).toThrow(/'images.gateway' is no service/);
  });

  it('rejects unknown services, log levels and a credentialed OTLP endpoint', () => {
    expect(() => system({ services: { proxy: {} } as never })).toThrow(/'services.proxy' is no service/);
    expect(() => system({ logLevel: 'verbose' as never })).toThrow(/'logLevel' must be one of fatal, error, warn, info, debug, trace/);
    expect(() => system({ otlpEndpoint: 'http://user:pw@collector:4318' })).toThrow(/'otlpEndpoint' must be an http\(s\) URL without credentials/);
    expect(() => system({ services: { llm: { traffic: { canary: 100 } } } })).toThrow(/'traffic.canary' names no track/);
  });

  it('uses one image per service when given, and SERVICE tells them apart', () => {
    const objects = system({ images: { default: IMAGE, llm: 'registry.example.com/llm:9' } });
    const deployments = objects.filter((o) => o.kind === 'Deployment');
    const byService = Object.fromEntries(
      deployments.map((d) => {
        const c = d.spec.template.spec.containers[0];
        return [c.env.find((e: any) => e.name === 'SERVICE').value, c.image];
      }),
    );
    expect(byService).toEqual({ router: IMAGE, templates: IMAGE, context: IMAGE, llm: 'registry.example.com/llm:9' });
  });

  it('switches Redis and Postgres modes and keeps every object valid', () => {
    const standalone = system({ redis: { mode: 'standalone' }, postgres: { mode: 'external' } });
    expect(validateManifests(standalone)).toEqual([]);
    expect(standalone.filter((o) => o.kind === 'StatefulSet').map((s) => s.metadata.name)).toEqual(['redis']);
    expect(standalone.filter((o) => o.kind === 'Job')).toEqual([]);
    const templates = standalone.find((o) => o.kind === 'Deployment' && o.metadata.name === 'templates-stable');
    expect(templates.spec.template.spec.containers[0].env.find((e: any) => e.name === 'DATABASE_URL').valueFrom.secretKeyRef).toBeDefined();
    const egress = standalone.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'allow-templates').spec.egress;
    expect(egress.some((e: any) => e.to[0].ipBlock?.cidr === '10.0.0.0/8' && e.ports[0].port === 5432)).toBe(true);

    const cluster = system();
    expect(cluster.find((o) => o.kind === 'Deployment' && o.metadata.name === 'context-stable').spec.template.spec.containers[0].env.map((e: any) => e.name)).toContain(
      'REDIS_CLUSTER_NODES',
    );
  });

  it('mounts the providers file and the provider keys Secret only on llm, the API keys file only on the router', () => {
    const objects = system({ providers: { providers: [{ name: 'oa', type: 'openai', baseUrl: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_API_KEY' }] } });
    const container = (name: string) => objects.find((o) => o.kind === 'Deployment' && o.metadata.name === `${name}-stable`).spec.template.spec.containers[0];
    const envNames = (name: string) => container(name).env.map((e: any) => e.name);
    expect(envNames('llm')).toContain('PROVIDERS_FILE');
    expect(container('llm').envFrom).toEqual([{ secretRef: { name: 'promptmesh-provider-keys', optional: false } }]);
    expect(envNames('router')).toContain('API_KEYS_FILE');
    for (const other of ['router', 'templates', 'context']) expect(container(other).envFrom).toBeUndefined();
    for (const other of ['templates', 'context', 'llm']) expect(envNames(other)).not.toContain('API_KEYS_FILE');
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'promptmesh-providers');
    expect(cm.data['providers.yaml']).toContain('apiKeyEnv: OPENAI_API_KEY');
  });

  it('serves HTTPS with an HTTP redirect by default, plain HTTP when no TLS secret is named', () => {
    const gw = (objects: any[]) => objects.find((o) => o.kind === 'Gateway').spec.servers;
    expect(gw(system()).map((s: any) => [s.port.number, s.tls])).toEqual([
      [443, { mode: 'SIMPLE', credentialName: 'promptmesh-tls', minProtocolVersion: 'TLSV1_2' }],
      [80, { httpsRedirect: true }],
    ]);
    expect(gw(system({ gateway: { hosts: ['api.example.com'] } }))).toEqual([{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['api.example.com'] }]);
    expect(system({ gateway: false }).filter((o) => o.kind === 'Gateway')).toEqual([]);
  });
});
