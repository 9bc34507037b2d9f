// Local mode on a cluster that already runs Istio and the Prometheus operator
// (promptmesh:installPlatform false): only the app, nothing on AWS, no Helm release.
import { beforeAll, expect, it } from 'vitest';
import { appliedManifests } from './aws-stack-suite';
import { ofType, type MockRun } from './harness';
import { runStack } from './stacks';

let run: MockRun;
beforeAll(async () => {
  run = await runStack('local', { 'promptmesh:installPlatform': 'false', 'promptmesh:kubeconfigPath': '/home/dev/.kube/kind.yaml' });
});

it('applies only the app through a provider on the given kubeconfig', () => {
  expect(ofType(run, 'kubernetes:helm.sh/v3:Release')).toEqual([]);
  expect(run.resources.filter((r) => r.type.startsWith('aws:') || r.type.startsWith('docker-build:'))).toEqual([]);
  const [provider] = ofType(run, 'pulumi:providers:kubernetes');
  expect(provider.inputs.kubeconfig).toBe('/home/dev/.kube/kind.yaml');
  const app = ofType(run, 'kubernetes:yaml/v2:ConfigGroup').find((g) => g.name === 'app-app')!;
  expect(app.dependsOn.filter((d) => d.startsWith('kubernetes:helm.sh'))).toEqual([]);
  // Without the platform's collector there is no tracing endpoint to send to.
  const env = appliedManifests(run).filter((o) => o.kind === 'Deployment')
    .flatMap((d) => d.spec.template.spec.containers.flatMap((c: any) => (c.env ?? []).map((e: any) => e.name)));
  expect(env).toContain('LOG_LEVEL');
  expect(env).not.toContain('OTEL_EXPORTER_OTLP_ENDPOINT');
  expect(run.outputs.routerUrl).toBeUndefined();
});
