import { describe, expect, it } from 'vitest';
import { validateManifests } from '../support/k8s-validate';

function deployment(): any {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'ns', labels: { app: 'web' }, annotations: { note: 'x' } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'web',
              image: 'example/web:1',
              imagePullPolicy: 'IfNotPresent',
              ports: [{ name: 'http', containerPort: 8080 }],
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' } },
              env: [{ name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'db', key: 'url' } } }],
            },
          ],
        },
      },
    },
  };
}

function virtualService(): any {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'router' },
    spec: {
      hosts: ['router'],
      http: [
        {
          route: [
            { destination: { host: 'router', subset: 'stable' }, weight: 90 },
            { destination: { host: 'router', subset: 'canary' }, weight: 10 },
          ],
          retries: { attempts: 2, perTryTimeout: '2s', retryOn: '5xx,reset' },
          timeout: '30s',
        },
      ],
    },
  };
}

function serviceMonitor(): any {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'router', labels: { release: 'kube-prometheus-stack' } },
    spec: {
      selector: { matchLabels: { 'app.kubernetes.io/name': 'router' } },
      endpoints: [{ port: 'http', path: '/metrics', interval: '30s' }],
    },
  };
}

describe('validateManifests', () => {
  it('accepts valid Kubernetes, Istio and prometheus-operator objects', () => {
    const peerAuth = {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: 'ns' },
      spec: { mtls: { mode: 'STRICT' }, portLevelMtls: { 9090: { mode: 'PERMISSIVE' } } },
    };
    const rule = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'slo' },
      spec: { groups: [{ name: 'g', rules: [{ alert: 'Down', expr: 'up == 0', for: '5m', labels: { severity: 'page' } }] }] },
    };
    expect(validateManifests([deployment(), virtualService(), serviceMonitor(), peerAuth, rule])).toEqual([]);
  });

  it('rejects a misspelt top-level spec field (spec.replica)', () => {
    const d = deployment();
    d.spec.replica = 3;
    expect(validateManifests([d])).toEqual(['Deployment ns/web: /spec/replica: unknown field "replica"']);
  });

  it('rejects a misspelt container field (imagePullPolicyy)', () => {
    const d = deployment();
    d.spec.template.spec.containers[0].imagePullPolicyy = 'Always';
    expect(validateManifests([d])).toEqual([
      'Deployment ns/web: /spec/template/spec/containers/0/imagePullPolicyy: unknown field "imagePullPolicyy"',
    ]);
  });

  it('rejects misspelt fields in metadata and nested typed objects', () => {
    const d = deployment();
    d.metadata.lables = { a: 'b' };
    d.spec.template.spec.securityContext.runAsNonRot = true;
    const problems = validateManifests([d]);
    expect(problems).toContain('Deployment ns/web: /metadata/lables: unknown field "lables"');
    expect(problems).toContain('Deployment ns/web: /spec/template/spec/securityContext/runAsNonRot: unknown field "runAsNonRot"');
  });

  it('rejects a wrong type', () => {
    const d = deployment();
    d.spec.replicas = 'two';
    const problems = validateManifests([d]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^Deployment ns\/web: \/spec\/replicas: must be integer/);
  });

  it('rejects a missing required field', () => {
    const d = deployment();
    delete d.spec.selector;
    expect(validateManifests([d]).join('\n')).toMatch(/selector/);
  });

  it('rejects an unknown VirtualService field', () => {
    const vs = virtualService();
    expect(validateManifests([vs])).toEqual([]);
    vs.spec.http[0].retrys = { attempts: 3 };
    expect(validateManifests([vs])).toEqual(['VirtualService router: /spec/http/0/retrys: unknown field "retrys"']);
  });

  it('rejects an unknown field in Istio metadata and a wrong Istio enum value', () => {
    const pa: any = {
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', labelz: {} },
      spec: { mtls: { mode: 'STRICTT' } },
    };
    const problems = validateManifests([pa]).join('\n');
    expect(problems).toMatch(/\/metadata\/labelz: unknown field/);
    expect(problems).toMatch(/\/spec\/mtls\/mode/);
  });

  it('rejects an unknown ServiceMonitor field', () => {
    const sm = serviceMonitor();
    expect(validateManifests([sm])).toEqual([]);
    sm.spec.endpoints[0].intervall = '10s';
    expect(validateManifests([sm])).toEqual(['ServiceMonitor router: /spec/endpoints/0/intervall: unknown field "intervall"']);
  });

  it('rejects an unknown kind or apiVersion', () => {
    const problems = validateManifests([
      { apiVersion: 'apps/v1', kind: 'Deploymnt', metadata: { name: 'x' } },
      { apiVersion: 'apps/v9', kind: 'Deployment', metadata: { name: 'y' } },
      { apiVersion: 'networking.istio.io/v1', kind: 'VirtualSrvice', metadata: { name: 'z' } },
    ]);
    expect(problems).toHaveLength(3);
    for (const p of problems) expect(p).toMatch(/unknown apiVersion\/kind/);
  });

  it('rejects an object without a name', () => {
    expect(validateManifests([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: {} }])).toEqual([
      'ConfigMap undefined: /metadata/name is required',
    ]);
  });
});
