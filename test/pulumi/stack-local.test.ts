// Pulumi.local.yaml: an existing cluster from the kubeconfig; nothing on AWS.
import { beforeAll, describe, expect, it } from 'vitest';
import { HELM_CHARTS, OTLP_ENDPOINT } from '../../infra/pulumi';
import { validateManifests } from '../support/k8s-validate';
import { appliedManifests } from './aws-stack-suite';
import { isSecretValue, ofType, plainOccurrences, type MockRun } from './harness';
import { runStack, stackFileConfig, TEST_SECRETS } from './stacks';

describe('Pulumi.local.yaml', () => {
  const file = stackFileConfig('local') as Record<string, any>;
  let run: MockRun;
  beforeAll(async () => {
    run = await runStack('local', { 'promptmesh:kubeContext': 'kind-promptmesh' });
  });

  it('registers no AWS resource, no image build and calls no AWS API', () => {
    expect(run.resources.length).toBeGreaterThan(10);
    const cloud = run.resources.filter((r) => r.type.startsWith('aws:') || r.type.startsWith('docker-build:') || r.type === 'pulumi:providers:aws');
    expect(cloud.map((r) => `${r.type}::${r.name}`)).toEqual([]);
    expect(run.invokes.filter((i) => i.token.startsWith('aws:'))).toEqual([]);
  });

  it('targets the configured kube context through its own Kubernetes provider', () => {
    const providers = ofType(run, 'pulumi:providers:kubernetes');
    expect(providers).toHaveLength(1);
    expect(providers[0].inputs.context).toBe('kind-promptmesh');
    expect(run.outputs.clusterName).toBe('kind-promptmesh');
    expect(run.outputs.kubeconfig).toBeUndefined();
  });

  it('installs the pinned platform with a NodePort gateway and deploys the configured image', () => {
    const releases = ofType(run, 'kubernetes:helm.sh/v3:Release');
    expect(releases).toHaveLength(Object.keys(HELM_CHARTS).length);
    const gateway = releases.find((r) => r.inputs.chart === 'gateway')!;
    expect(gateway.inputs.values.service.type).toBe('NodePort');
    const objects = appliedManifests(run);
    expect(validateManifests(objects)).toEqual([]);
    const images = objects.filter((o) => o.kind === 'Deployment').flatMap((d) => d.spec.template.spec.containers.map((c: any) => c.image));
    expect(images.filter((i) => i === file['promptmesh:image'])).toHaveLength(4);
    expect(objects.some((o) => o.kind === 'StatefulSet' && o.metadata.name === 'postgres')).toBe(true);
    // Traces go to the platform's collector.
    const otlp = objects.filter((o) => o.kind === 'Deployment')
      .flatMap((d) => d.spec.template.spec.containers.flatMap((c: any) => c.env ?? [])).filter((e: any) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT');
    expect(otlp.length).toBe(4);
    for (const e of otlp) expect(e.value).toBe(OTLP_ENDPOINT);
    expect(run.outputs.routerUrl).toMatch(/^http:\/\/<node address>:31380 /);
  });

  it('creates the Secrets from secret values only', () => {
    const secrets = ofType(run, 'kubernetes:core/v1:Secret').filter((s) => s.inputs.metadata.namespace === 'promptmesh');
    expect(secrets.map((s) => s.inputs.metadata.name).sort()).toEqual(['postgres-auth', 'promptmesh-api-keys', 'redis-auth']);
    for (const s of secrets) expect(isSecretValue(s.inputs.stringData)).toBe(true);
    const leaks = run.resources.flatMap((r) => plainOccurrences(r.inputs, TEST_SECRETS.adminApiKey).map((p) => `${r.name} ${p}`));
    expect(leaks).toEqual([]);
  });
});
