// The library example of docs/pulumi.md, run as written (one import path aside) against the mocks.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { REPO_ROOT } from '../../stacks/pulumi/program';
import { clusterWithPlatform } from './fixtures/library-example';
import { ofType, runWithMocks, type MockRun } from './harness';

let run: MockRun;
beforeAll(async () => {
  run = await runWithMocks({ stack: 'example', config: { 'aws:region': 'eu-west-1' }, program: async () => clusterWithPlatform() });
});

it('is the block docs/pulumi.md shows', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs/pulumi.md'), 'utf8');
  const block = /<!-- pulumi-library-example -->\s*```ts\n([\s\S]*?)```/.exec(doc)?.[1];
  const fixture = readFileSync(join(__dirname, 'fixtures/library-example.ts'), 'utf8');
  expect(block).toBe(fixture.replace("from '../../../infra/pulumi';", "from 'promptmesh/pulumi';"));
});

it('builds the cluster, its node groups and the platform', () => {
  const groups = ofType(run, 'aws:eks/nodeGroup:NodeGroup').map((g) => [g.inputs.nodeGroupName, g.inputs.capacityType]);
  // One managed node group per zone for each group.
  expect(groups.sort()).toEqual(['on-demand', 'spot', 'system'].flatMap((g) => ['a', 'b', 'c'].map((z) => [`${g}-${z}`, g === 'spot' ? 'SPOT' : 'ON_DEMAND'])));
  expect(ofType(run, 'aws:ec2/natGateway:NatGateway')).toHaveLength(1);
  expect(ofType(run, 'kubernetes:helm.sh/v3:Release').map((r) => r.inputs.chart)).toEqual(expect.arrayContaining(['istiod', 'kube-prometheus-stack', 'cluster-autoscaler']));
  expect(run.outputs.clusterName).toBe('acme');
  expect(run.secretOutputs).toContain('kubeconfig');
});
