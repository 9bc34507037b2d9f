// Each component checks its arguments and names the offending one.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { beforeAll, describe, expect, it } from 'vitest';
import { Database, EksCluster, Images, Network, Platform, PromptSystemDeployment, contextTag } from '../../infra/pulumi';
import { REPO_ROOT } from '../../stacks/pulumi/program';
import { KUBERNETES_RELEASES } from '../../infra/versions';

beforeAll(async () => {
  await pulumi.runtime.setMocks({
    newResource: (args) => ({ id: `${args.name}-id`, state: args.inputs }),
    call: (args) => args.inputs,
  }, 'promptmesh', 'components', false);
});

const zones = ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'];
const spot = { name: 'spot', capacity: 'spot' as const, instanceTypes: ['m6i.large', 'm6a.large', 'm7i.large', 'm5.large'], minSize: 1, maxSize: 3 };
const eksArgs = {
  clusterName: 'pm', vpcId: 'vpc-1', privateSubnetIds: ['a', 'b', 'c'], region: 'eu-west-1',
  systemNodeGroup: { instanceTypes: ['m6i.large'], minSize: 2, maxSize: 3 }, nodeGroups: [spot],
};

describe('component arguments', () => {
  it('Network wants at least three distinct zones, a /16 and a known NAT mode', () => {
    expect(() => new Network('n1', { clusterName: 'pm', availabilityZones: zones.slice(0, 2) })).toThrow(/'availabilityZones' must list at least 3 zones/);
    expect(() => new Network('n2', { clusterName: 'pm', availabilityZones: [zones[0], zones[0], zones[1]] })).toThrow(/'availabilityZones' must not repeat a zone/);
    expect(() => new Network('n3', { clusterName: 'pm', availabilityZones: zones, cidrBlock: '10.0.0.0/24' })).toThrow(/'cidrBlock' must be an IPv4 \/16/);
    expect(() => new Network('n4', { clusterName: 'pm', availabilityZones: zones, natGateways: 'none' as any })).toThrow(/'natGateways' must be 'perZone' or 'single'/);
  });

  it('EksCluster wants diverse spot groups, a system group and a Kubernetes minor', () => {
    expect(() => new EksCluster('e1', { ...eksArgs, nodeGroups: [{ ...spot, instanceTypes: spot.instanceTypes.slice(0, 3) }] }))
      .toThrow(/'nodeGroups\[0\]\.instanceTypes' must list at least 4 types for a spot group/);
    expect(() => new EksCluster('e2', { ...eksArgs, systemNodeGroup: { instanceTypes: [], minSize: 1, maxSize: 2 } })).toThrow(/'systemNodeGroup\.instanceTypes'/);
    expect(() => new EksCluster('e3', { ...eksArgs, kubernetesVersion: 'latest' })).toThrow(`'kubernetesVersion' must be one of ${Object.keys(KUBERNETES_RELEASES).join(', ')}`);
    expect(() => new EksCluster('e5', { ...eksArgs, nodeGroups: [{ ...spot, instanceTypes: ['m6i.large', 'm6a.large', 'm7i.large', 'c6i.xlarge'] }] }))
      .toThrow(/'nodeGroups\[0\]\.instanceTypes' must all be one size .*got m\.large, c\.xlarge/);
    expect(() => new EksCluster('e6', { ...eksArgs, availabilityZones: ['eu-west-1a'] })).toThrow(/'availabilityZones' must name the zone of each of the 3 private subnets/);
    expect(() => new EksCluster('e4', { ...eksArgs, nodeGroups: [spot, { ...spot }] })).toThrow(/'nodeGroups\[1\]\.name' repeats the node group name 'spot'/);
  });

  it('Platform refuses version ranges and non-https repositories', () => {
    const provider = undefined as any;
    expect(() => new Platform('p1', { provider, charts: { jaeger: { chart: 'jaeger', version: '^3.4.0', repo: 'https://x' } } as any }))
      .toThrow(/'charts\.jaeger\.version' must be an exact version/);
    expect(() => new Platform('p2', { provider, charts: { jaeger: { chart: 'jaeger', version: '3.4.1', repo: 'http://x' } } as any }))
      .toThrow(/'charts\.jaeger\.repo' must be an https URL/);
  });

  it('Images refuses `latest` and bad repository prefixes', () => {
    expect(() => new Images('i1', { repositoryPrefix: 'pm', contextPath: REPO_ROOT, tag: 'latest' })).toThrow(/'tag' must be a Docker tag other than 'latest'/);
    expect(() => new Images('i2', { repositoryPrefix: 'PM!', contextPath: REPO_ROOT, tag: 'v1' })).toThrow(/'repositoryPrefix' must be lowercase/);
  });

  it('Database needs its mode settings and refuses reserved users', () => {
    expect(() => new Database('d1', { mode: 'rds' })).toThrow(/'rds' is required in rds mode/);
    expect(() => new Database('d2', { mode: 'in-cluster' })).toThrow(/'inClusterHost' is required in in-cluster mode/);
    expect(() => new Database('d3', { mode: 'in-cluster', inClusterHost: 'pg', username: 'postgres' })).toThrow(/'username' must be a lowercase identifier other than postgres/);
    expect(() => new Database('d5', { mode: 'rds', rds: { vpcId: 'v', privateSubnetIds: ['a', 'b'], clientSecurityGroupId: 'sg', engineVersion: '17.4' } })).toThrow(/'rds\.engineVersion' must be a major version like 17/);
    expect(() => new Database('d4', { mode: 'rds', rds: { vpcId: 'v', privateSubnetIds: ['a'], clientSecurityGroupId: 'sg' } })).toThrow(/'rds\.privateSubnetIds' must list subnets in at least 2 zones/);
  });

  it('PromptSystemDeployment refuses duplicate Secrets and bad namespaces', () => {
    const base = { provider: undefined as any, inputs: {}, chart: () => { throw new Error('not rendered'); } };
    expect(() => new PromptSystemDeployment('a1', { ...base, namespace: 'Prompt_Mesh' })).toThrow(/'namespace' must be a lowercase RFC 1123 label/);
    expect(() => new PromptSystemDeployment('a2', { ...base, namespace: 'pm', secrets: [{ name: 'x', data: {} }, { name: 'x', data: {} }] })).toThrow(/'secrets\[1\]\.name' repeats 'x'/);
  });
});

describe('contextTag', () => {
  it('is stable for the same content and names it by a content hash', () => {
    const a = contextTag(REPO_ROOT);
    expect(a).toMatch(/^src-[a-f0-9]{16}$/);
    expect(contextTag(REPO_ROOT)).toBe(a);
  });

  it('changes with the build context, not with what .dockerignore or .gitignore leave out', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-context-'));
    try {
      execFileSync('git', ['init', '-q'], { cwd: dir });
      writeFileSync(join(dir, '.dockerignore'), 'docs\n');
      writeFileSync(join(dir, '.gitignore'), 'node_modules/\n');
      writeFileSync(join(dir, 'app.ts'), 'export const a = 1;\n');
      const first = contextTag(dir);
      mkdirSync(join(dir, 'docs'));
      writeFileSync(join(dir, 'docs', 'notes.md'), 'not in the image');
      mkdirSync(join(dir, 'node_modules'));
      writeFileSync(join(dir, 'node_modules', 'x.js'), 'ignored');
      expect(contextTag(dir)).toBe(first);
      writeFileSync(join(dir, 'app.ts'), 'export const a = 2;\n');
      const second = contextTag(dir);
      expect(second).not.toBe(first);
      writeFileSync(join(dir, 'app.ts'), 'export const a = 1;\n');
      expect(contextTag(dir)).toBe(first);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
