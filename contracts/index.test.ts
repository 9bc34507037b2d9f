/**
 * The contracts are complete: every service has its entry in every per-service map, the
 * registry, the process builder, the kit's config and the cdk8s chart all enumerate the same
 * services, and what the chart gives each service (ports, probes, environment, callers) is what
 * its contract says. So a new service is its folder, its name and `SERVICES` entry here, and
 * its line in services/registry.ts; everything else follows from these (or fails here).
 */
import { Testing } from 'cdk8s';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { DEFAULT_CALLERS, PromptSystem, PUBLIC_PATH_PREFIXES as MESH_PUBLIC_PATH_PREFIXES } from '../infra/k8s/index';
import { REQUEST_PATH_SERVICES } from '../infra/k8s/placement';
import { ConfigError, readConfig } from '../services/kit/config';
import { ROUTE_SCOPES } from '../services/router/route-scopes';
import { BUILD_ORDER, SERVICE_FACTORIES, type ServiceFactory } from '../services/registry';
import {
  COMMON_ENV,
  ENV,
  PATHS,
  PROBES,
  PUBLIC_PATH_PREFIXES,
  PUBLIC_SERVICE,
  SERVICE_NAMES,
  SERVICES,
  calleesOf,
  type EnvName,
  type ServiceContract,
  type ServiceName,
} from './index';

const ENV_NAMES = new Set<string>(Object.values(ENV));

describe('every service has its entries', () => {
  it('in every per-service map (checked by the compiler, and at run time)', () => {
    // A map that misses a service does not compile:
    // @ts-expect-error 'templates', 'context' and 'llm' are missing
    const incomplete: Record<ServiceName, ServiceContract> = { router: SERVICES.router };
    expect(incomplete).toBeDefined();
    expectTypeOf(SERVICES).toEqualTypeOf<Readonly<Record<ServiceName, ServiceContract>>>();
    expectTypeOf(SERVICE_FACTORIES).toEqualTypeOf<Readonly<Record<ServiceName, () => Promise<ServiceFactory>>>>();

    const names = [...SERVICE_NAMES].sort();
    expect(Object.keys(SERVICES).sort()).toEqual(names);
    expect(Object.keys(SERVICE_FACTORIES).sort()).toEqual(names);
    expect([...BUILD_ORDER].sort()).toEqual(names);
    expect(Object.keys(DEFAULT_CALLERS).sort()).toEqual(names);
  });

  it('with values that hold together', () => {
    for (const svc of SERVICE_NAMES) {
      const c = SERVICES[svc];
      expect(c.probes, svc).toEqual(PROBES);
      for (const path of c.paths) expect(Object.values(PATHS), `${svc} path ${path}`).toContain(path);
      for (const name of c.env) expect(ENV_NAMES.has(name), `${svc} env ${name}`).toBe(true);
      for (const caller of c.callers) expect([...SERVICE_NAMES, 'ingress-gateway'], `${svc} caller`).toContain(caller);
      // Whoever is called by another service says where it is found.
      const calledByServices = c.callers.some((caller) => caller !== 'ingress-gateway');
      expect(c.urlEnv !== undefined, `${svc} urlEnv`).toBe(calledByServices);
      // ...and its callers read that variable.
      for (const caller of c.callers) if (caller !== 'ingress-gateway') expect(SERVICES[caller].env, `${caller} reads ${c.urlEnv}`).toContain(c.urlEnv);
      if (c.datastores.includes('redis')) expect(c.env, svc).toContain(ENV.redisUrl);
      if (c.datastores.includes('postgres')) expect(c.env, svc).toContain(ENV.databaseUrl);
    }
    expect(SERVICE_NAMES.filter((s) => SERVICES[s].callers.includes('ingress-gateway'))).toEqual([PUBLIC_SERVICE]);
    expect(MESH_PUBLIC_PATH_PREFIXES).toBe(PUBLIC_PATH_PREFIXES);
    expect(REQUEST_PATH_SERVICES).toEqual(SERVICE_NAMES.filter((s) => SERVICES[s].requestPath));
  });

  it('builds every service after the services it calls', () => {
    for (const svc of SERVICE_NAMES) {
      for (const callee of calleesOf(svc)) expect(BUILD_ORDER.indexOf(callee), `${callee} before ${svc}`).toBeLessThan(BUILD_ORDER.indexOf(svc));
    }
  });

  it('registers a factory that loads for every service', async () => {
    for (const svc of SERVICE_NAMES) expect(typeof (await SERVICE_FACTORIES[svc]()), svc).toBe('function');
  });

  it('the router serves under the paths its contract names, and each of them', () => {
    const router = SERVICES.router.paths;
    for (const { url } of ROUTE_SCOPES) expect(router.some((p) => url.startsWith(p)), url).toBe(true);
    for (const path of router) expect(ROUTE_SCOPES.some(({ url }) => url.startsWith(path)) || path === PATHS.console, path).toBe(true);
  });

  it('a service alone is told where the services it calls are, each named by its variable', () => {
    for (const svc of SERVICE_NAMES) {
      const callees = calleesOf(svc);
      const given: Record<string, string> = { SERVICE: svc };
      for (const callee of callees) given[SERVICES[callee].urlEnv!] = `http://${callee}:${SERVICES[callee].port}`;
      expect(() => readConfig(given), svc).not.toThrow();
      for (const callee of callees) {
        const missing = { ...given };
        delete missing[SERVICES[callee].urlEnv!];
        expect(() => readConfig(missing), `${svc} without ${callee}`).toThrow(ConfigError);
        expect(() => readConfig(missing)).toThrow(SERVICES[callee].urlEnv!);
      }
    }
  });
});

describe('the cdk8s chart follows the contracts', () => {
  const app = Testing.app();
  const chart = new PromptSystem(app, 'promptmesh', {
    images: 'ghcr.io/promptmesh/promptmesh:0.1.0',
    providers: { providers: [{ name: 'echo', type: 'echo' }] },
  });
  const objects = Testing.synth(chart);
  const deployments = objects.filter((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/part-of'] === 'promptmesh');
  const deploymentOf = (svc: ServiceName) => deployments.find((d) => d.metadata.labels['app.kubernetes.io/component'] === svc);

  it('makes one workload per service, and nothing for a name that is none', () => {
    expect(Object.keys(chart.services).sort()).toEqual([...SERVICE_NAMES].sort());
    expect([...new Set(deployments.map((d) => d.metadata.labels['app.kubernetes.io/component']))].sort()).toEqual([...SERVICE_NAMES].sort());
  });

  it("listens, is probed and is configured as each service's contract says", () => {
    for (const svc of SERVICE_NAMES) {
      const c = SERVICES[svc];
      const container = deploymentOf(svc).spec.template.spec.containers.find((x: any) => x.name === svc) ?? deploymentOf(svc).spec.template.spec.containers[0];
      expect(container.ports.map((p: any) => p.containerPort), svc).toContain(c.port);
      expect(container.startupProbe.httpGet.path, svc).toBe(c.probes.startup);
      expect(container.readinessProbe.httpGet.path, svc).toBe(c.probes.readiness);
      expect(container.livenessProbe.httpGet.path, svc).toBe(c.probes.liveness);
      const names = new Set<string>((container.env ?? []).map((e: any) => e.name));
      // Every promptmesh variable it gets is one it reads...
      for (const name of names) if (ENV_NAMES.has(name)) expect([...COMMON_ENV, ...c.env], `${svc} gets ${name}`).toContain(name as EnvName);
      // ...and it gets where the services it calls are, its datastores and its files.
      for (const callee of calleesOf(svc)) expect(names.has(SERVICES[callee].urlEnv!), `${svc} finds ${callee}`).toBe(true);
      if (c.datastores.includes('redis')) expect(names.has(ENV.redisUrl) || names.has(ENV.redisClusterNodes), `${svc} redis`).toBe(true);
      if (c.datastores.includes('postgres')) expect(names.has(ENV.databaseUrl), `${svc} postgres`).toBe(true);
      for (const file of [ENV.providersFile, ENV.apiKeysFile]) expect(names.has(file), `${svc} ${file}`).toBe(c.env.includes(file));
    }
  });

  it('admits exactly the callers of each service in the mesh, on its port, and Prometheus on its metrics', () => {
    const policies = objects.filter((o) => o.kind === 'AuthorizationPolicy');
    for (const svc of SERVICE_NAMES) {
      const c = SERVICES[svc];
      const policy = policies.find((p) => p.spec?.selector?.matchLabels?.['app.kubernetes.io/name'] === svc);
      expect(policy, svc).toBeDefined();
      const principals: string[] = policy.spec.rules.flatMap((r: any) => (r.from ?? []).flatMap((f: any) => f.source.principals ?? []));
      const callers = principals.map((p) => (p.includes('/sa/istio-ingressgateway') ? 'ingress-gateway' : p.split('/sa/')[1]));
      expect(callers.sort(), svc).toEqual([...c.callers].sort());
      for (const rule of policy.spec.rules) expect(rule.to[0].operation.ports, svc).toEqual([String(rule.to[0].operation.paths?.includes(PATHS.metrics) ? c.metricsPort : c.port)]);
      expect(JSON.stringify(policy.spec.rules), svc).toContain(`"${PATHS.metrics}"`);
    }
  });
});
