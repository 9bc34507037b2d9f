/**
 * The checks every AWS stack file must pass, run against the graph the program registers for it.
 * Expected values come from the stack file itself (what the config says), so a stack file
 * change is checked, not re-stated.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { CERT_MANAGER_CHART, CLUSTER_AUTOSCALER, HELM_CHARTS, IMAGES, KUBERNETES_RELEASES, RDS_POSTGRES_MAJOR, KUBERNETES_VERSION, VPC_CNI_CONFIGURATION, type KubernetesVersion } from '../../infra/pulumi';
import { REQUESTS_PER_SECOND_ADAPTER_RULE } from '../../infra/k8s/monitoring';
import { CAPACITY_LABEL, placementFor, placementPolicyFor, serviceCapacities, SPOT_TAINT_KEY } from '../../infra/k8s/placement';
import { validateManifests } from '../support/k8s-validate';
import { isSecretValue, ofType, plainOccurrences, unwrapSecrets, type MockRun } from './harness';
import { runStack, stackFileConfig, TEST_SECRETS } from './stacks';

/** What differs between stacks beyond what their files say. */
export interface StackExpectations {
  /** NAT gateways. */
  natGateways: number;
  /** Whether an RDS instance exists. */
  rds: boolean;
}

const EXACT_SEMVER = /^v?\d+\.\d+\.\d+$/;

/** All manifests the program applies (namespaces and app ConfigGroups). */
export function appliedManifests(run: MockRun): any[] {
  return ofType(run, 'kubernetes:yaml/v2:ConfigGroup').flatMap((g) => unwrapSecrets(g.inputs.objs) ?? []);
}

/** The values generated as secrets during the run (mocked RandomPassword results). */
function generatedSecrets(run: MockRun): string[] {
  return ofType(run, 'random:index/randomPassword:RandomPassword').map((r) => `generated-${r.name}-Zx9`.replace(/[^A-Za-z0-9]/g, ''));
}

/** Statements of every IAM policy document the run registered (inline policies and trust policies). */
function policyStatements(run: MockRun): { resource: string; statement: any }[] {
  const docs: { resource: string; doc: string }[] = [];
  for (const r of run.resources) {
    if (r.type === 'aws:iam/rolePolicy:RolePolicy' || r.type === 'aws:iam/policy:Policy') docs.push({ resource: r.name, doc: unwrapSecrets(r.inputs.policy) });
    if (r.type === 'aws:iam/role:Role') docs.push({ resource: r.name, doc: unwrapSecrets(r.inputs.assumeRolePolicy) });
  }
  return docs.flatMap(({ resource, doc }) => (JSON.parse(doc).Statement as any[]).map((statement) => ({ resource, statement })));
}

const list = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]) as string[];

export function awsStackSuite(stack: string, expected: StackExpectations): void {
  describe(`Pulumi.${stack}.yaml`, () => {
    const file = stackFileConfig(stack) as Record<string, any>;
    let run: MockRun;
    beforeAll(async () => {
      run = await runStack(stack);
    });

    it('spreads the network over the three configured zones, subnets tagged for load balancers', () => {
      const zones = file['promptmesh:availabilityZones'] as string[];
      expect(zones).toHaveLength(3);
      const subnets = ofType(run, 'aws:ec2/subnet:Subnet');
      const pub = subnets.filter((s) => s.inputs.tags['kubernetes.io/role/elb'] === '1');
      const priv = subnets.filter((s) => s.inputs.tags['kubernetes.io/role/internal-elb'] === '1');
      expect(pub.map((s) => s.inputs.availabilityZone).sort()).toEqual([...zones].sort());
      expect(priv.map((s) => s.inputs.availabilityZone).sort()).toEqual([...zones].sort());
      for (const s of subnets) {
        expect(s.inputs.tags[`kubernetes.io/cluster/${file['promptmesh:clusterName']}`]).toBe('shared');
        expect(s.inputs.mapPublicIpOnLaunch).toBe(false);
      }
      expect(ofType(run, 'aws:ec2/internetGateway:InternetGateway')).toHaveLength(1);
    });

    it(`has ${expected.natGateways} NAT gateway(s) and every private subnet routes through one`, () => {
      const nats = ofType(run, 'aws:ec2/natGateway:NatGateway');
      expect(nats).toHaveLength(expected.natGateways);
      expect(ofType(run, 'aws:ec2/eip:Eip')).toHaveLength(expected.natGateways);
      const natIds = new Set(nats.map((n) => `${n.name}-id`));
      const privateTables = ofType(run, 'aws:ec2/routeTable:RouteTable').filter((t) => t.name.includes('-private-'));
      expect(privateTables).toHaveLength(3);
      for (const t of privateTables) expect(natIds.has(t.inputs.routes[0].natGatewayId)).toBe(true);
      expect(new Set(privateTables.map((t) => t.inputs.routes[0].natGatewayId)).size).toBe(expected.natGateways);
    });

    it('runs EKS at the pinned version with encrypted secrets, logs and the configured endpoint access', () => {
      const [cluster] = ofType(run, 'aws:eks/cluster:Cluster');
      expect(cluster.inputs.version).toBe(file['promptmesh:kubernetesVersion'] ?? KUBERNETES_VERSION);
      expect(cluster.inputs.name).toBe(file['promptmesh:clusterName']);
      expect(cluster.inputs.vpcConfig.endpointPrivateAccess).toBe(true);
      expect(cluster.inputs.vpcConfig.endpointPublicAccess).toBe(!file['promptmesh:privateEndpoint']);
      expect(cluster.inputs.vpcConfig.subnetIds).toHaveLength(3);
      expect(cluster.inputs.encryptionConfig.resources).toEqual(['secrets']);
      expect(cluster.inputs.enabledClusterLogTypes).toEqual(expect.arrayContaining(['api', 'audit', 'authenticator']));
      expect(ofType(run, 'aws:iam/openIdConnectProvider:OpenIdConnectProvider')[0].inputs.clientIdLists).toEqual(['sts.amazonaws.com']);
    });

    it('pins every EKS add-on (EBS CSI and VPC CNI with IRSA roles) and makes gp3 the default, encrypted StorageClass', () => {
      const addons = ofType(run, 'aws:eks/addon:Addon');
      const minor = (file['promptmesh:kubernetesVersion'] ?? KUBERNETES_VERSION) as KubernetesVersion;
      expect(Object.fromEntries(addons.map((a) => [a.inputs.addonName, a.inputs.addonVersion]))).toEqual(KUBERNETES_RELEASES[minor].eksAddons);
      for (const name of ['aws-ebs-csi-driver', 'vpc-cni']) {
        expect(addons.find((a) => a.inputs.addonName === name)!.inputs.serviceAccountRoleArn).toMatch(/^arn:aws:/);
      }
      const [sc] = ofType(run, 'kubernetes:storage.k8s.io/v1:StorageClass');
      expect(sc.inputs.metadata.annotations['storageclass.kubernetes.io/is-default-class']).toBe('true');
      expect(sc.inputs.parameters).toMatchObject({ type: 'gp3', encrypted: 'true' });
      expect(sc.inputs.provisioner).toBe('ebs.csi.aws.com');
    });

    it('enforces NetworkPolicies: the vpc-cni add-on runs its network policy agent', () => {
      const cni = ofType(run, 'aws:eks/addon:Addon').find((a) => a.inputs.addonName === 'vpc-cni')!;
      expect(JSON.parse(cni.inputs.configurationValues)).toEqual({ enableNetworkPolicy: 'true' });
      expect(VPC_CNI_CONFIGURATION.enableNetworkPolicy).toBe('true');
      // The app ships the policies that are now enforced: default deny first.
      const policies = appliedManifests(run).filter((o) => o.kind === 'NetworkPolicy');
      expect(policies.some((p) => Object.keys(p.spec.podSelector ?? {}).length === 0 && (p.spec.policyTypes ?? []).includes('Ingress'))).toBe(true);
    });

    /** The managed node groups of one configured group: one per zone. */
    const perZone = (group: string) => ofType(run, 'aws:eks/nodeGroup:NodeGroup').filter((g) => g.inputs.tags['promptmesh.io/node-group'] === group);
    const privateSubnetIds = () => ofType(run, 'aws:ec2/subnet:Subnet').filter((s) => s.name.includes('-private-')).map((s) => `${s.name}-id`).sort();

    it('has an on-demand system node group per zone, tainted for critical add-ons', () => {
      const zones = file['promptmesh:availabilityZones'] as string[];
      const system = perZone('system');
      expect(system.map((g) => g.inputs.nodeGroupName).sort()).toEqual(zones.map((z) => `system-${z.slice(-1)}`).sort());
      expect(system.map((g) => g.inputs.subnetIds[0]).sort()).toEqual(privateSubnetIds());
      for (const g of system) {
        expect(g.inputs.subnetIds).toHaveLength(1);
        expect(g.inputs.capacityType).toBe('ON_DEMAND');
        expect(g.inputs.instanceTypes).toEqual(file['promptmesh:systemNodeGroup'].instanceTypes);
        expect(g.inputs.taints).toEqual([{ key: 'CriticalAddonsOnly', value: 'true', effect: 'NO_SCHEDULE' }]);
        expect(g.inputs.labels['promptmesh.io/node-role']).toBe('system');
        expect(g.inputs.scalingConfig.minSize).toBe(file['promptmesh:systemNodeGroup'].minSize);
      }
    });

    it('has the configured spot groups: >= 4 instance types over >= 2 families, all zones, labelled and tainted', () => {
      const groups = ofType(run, 'aws:eks/nodeGroup:NodeGroup');
      const configured = file['promptmesh:nodeGroups'] as any[];
      expect(groups).toHaveLength((configured.length + 1) * 3);
      const spot = configured.filter((g) => g.capacity === 'spot');
      expect(spot.length).toBeGreaterThan(0);
      for (const want of configured) {
        const zonal = perZone(want.name);
        expect(zonal, want.name).toHaveLength(3);
        // One zone each, all zones covered: the autoscaler can grow the zone a pod needs.
        expect(zonal.map((g) => g.inputs.subnetIds[0]).sort()).toEqual(privateSubnetIds());
        // One instance size per group: the autoscaler plans with one node shape.
        expect(new Set(want.instanceTypes.map((t: string) => `${/^[a-z]+/.exec(t)![0]}.${t.split('.')[1]}`)).size, want.name).toBe(1);
        for (const got of zonal) {
        expect(got.inputs.subnetIds).toHaveLength(1);
        expect(got.inputs.instanceTypes).toEqual(want.instanceTypes);
        expect(got.inputs.scalingConfig).toMatchObject({ minSize: want.minSize, maxSize: want.maxSize });
        if (want.capacity === 'spot') {
          expect(got.inputs.capacityType).toBe('SPOT');
          expect(new Set(got.inputs.instanceTypes).size).toBeGreaterThanOrEqual(4);
          expect(new Set(got.inputs.instanceTypes.map((t: string) => t.split('.')[0])).size).toBeGreaterThanOrEqual(2);
          expect(got.inputs.labels[CAPACITY_LABEL]).toBe('spot');
          expect(got.inputs.taints).toEqual([{ key: SPOT_TAINT_KEY, value: 'true', effect: 'NO_SCHEDULE' }]);
        } else {
          expect(got.inputs.capacityType).toBe('ON_DEMAND');
          expect(got.inputs.labels[CAPACITY_LABEL]).toBe('on-demand');
          expect(got.inputs.taints).toEqual([]);
        }
        }
      }
    });

    it('runs the pinned cluster autoscaler on the system nodes with its own IRSA role', () => {
      const release = ofType(run, 'kubernetes:helm.sh/v3:Release').find((r) => r.inputs.chart === 'cluster-autoscaler')!;
      expect(release.inputs.namespace).toBe('kube-system');
      const values = unwrapSecrets(release.inputs.values);
      expect(values.autoDiscovery.clusterName).toBe(file['promptmesh:clusterName']);
      expect(values.awsRegion).toBe(file['aws:region']);
      const minor = (file['promptmesh:kubernetesVersion'] ?? KUBERNETES_VERSION) as KubernetesVersion;
      expect(values.image.tag).toBe(KUBERNETES_RELEASES[minor].clusterAutoscalerImageTag);
      expect(values.image.tag.replace(/^v(\d+\.\d+)\..*$/, '$1')).toBe(minor);
      expect(values.extraArgs['balance-similar-node-groups']).toBe(true);
      expect(values.rbac.serviceAccount.annotations['eks.amazonaws.com/role-arn']).toBe('arn:aws:iam::123456789012:eks-cluster-autoscaler');
      expect(values.tolerations).toContainEqual({ key: 'CriticalAddonsOnly', operator: 'Exists' });
      // Its groups carry the auto-discovery tags.
      for (const g of ofType(run, 'aws:eks/nodeGroup:NodeGroup')) {
        expect(g.inputs.tags[`k8s.io/cluster-autoscaler/${file['promptmesh:clusterName']}`]).toBe('owned');
      }
    });

    it('requires IMDSv2 with one hop and encrypted root volumes on every node', () => {
      const templates = ofType(run, 'aws:ec2/launchTemplate:LaunchTemplate');
      // One launch template per configured group, shared by its per-zone node groups.
      expect(templates).toHaveLength(new Set(ofType(run, 'aws:eks/nodeGroup:NodeGroup').map((g) => g.inputs.tags['promptmesh.io/node-group'])).size);
      for (const lt of templates) {
        expect(lt.inputs.metadataOptions).toMatchObject({ httpTokens: 'required', httpPutResponseHopLimit: 1 });
        expect(lt.inputs.blockDeviceMappings[0].ebs.encrypted).toBe('true');
      }
    });

    it(expected.rds ? 'has a Multi-AZ, encrypted, private RDS PostgreSQL reachable only from the nodes' : 'has no RDS instance (PostgreSQL runs in the cluster)', () => {
      const instances = ofType(run, 'aws:rds/instance:Instance');
      if (!expected.rds) {
        expect(instances).toHaveLength(0);
        expect(ofType(run, 'aws:rds/subnetGroup:SubnetGroup')).toHaveLength(0);
        return;
      }
      expect(instances).toHaveLength(1);
      const db = instances[0].inputs;
      const rds = file['promptmesh:rds'];
      expect(db).toMatchObject({ engine: 'postgres', multiAz: true, storageEncrypted: true, publiclyAccessible: false, instanceClass: rds.instanceClass });
      // The major only: RDS upgrades minors itself, so a full version would be a downgrade next time.
      expect(db.engineVersion).toBe(RDS_POSTGRES_MAJOR.version);
      expect(db.autoMinorVersionUpgrade).toBe(true);
      expect(ofType(run, 'aws:rds/parameterGroup:ParameterGroup')[0].inputs.family).toBe(`postgres${RDS_POSTGRES_MAJOR.version}`);
      // An exporter in the cluster gives RDS the pg_up series PromptmeshPostgresDown reads.
      const objects = appliedManifests(run);
      const exporter = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'postgres-exporter')!;
      expect(exporter.spec.template.spec.containers[0].env).toEqual([{ name: 'DATA_SOURCE_NAME', valueFrom: { secretKeyRef: { name: 'postgres-exporter-dsn', key: 'DATA_SOURCE_NAME' } } }]);
      expect(objects.some((o) => o.kind === 'ServiceMonitor' && o.metadata.name === 'postgres-exporter')).toBe(true);
      const dsn = ofType(run, 'kubernetes:core/v1:Secret').find((x) => x.inputs.metadata.name === 'postgres-exporter-dsn')!;
      expect(isSecretValue(dsn.inputs.stringData)).toBe(true);
      expect(unwrapSecrets(dsn.inputs.stringData).DATA_SOURCE_NAME).toMatch(/^postgresql:\/\/promptmesh:[A-Za-z0-9]+@database-postgres\.cluster-mock\.eu-west-1\.rds\.amazonaws\.com:5432\/promptmesh\?sslmode=require$/);
      const policy = objects.find((o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'postgres-exporter')!;
      expect(policy.spec.egress[1]).toEqual({ to: [{ ipBlock: { cidr: file['promptmesh:vpcCidr'] } }], ports: [{ protocol: 'TCP', port: 5432 }] });
      expect(db.deletionProtection).toBe(rds.protect);
      expect(db.skipFinalSnapshot).toBe(!rds.protect);
      if (rds.protect) expect(db.finalSnapshotIdentifier).toBeTruthy();
      expect(isSecretValue(db.password)).toBe(true);
      const [subnets] = ofType(run, 'aws:rds/subnetGroup:SubnetGroup');
      const privateIds = ofType(run, 'aws:ec2/subnet:Subnet').filter((s) => s.name.includes('-private-')).map((s) => `${s.name}-id`);
      expect([...subnets.inputs.subnetIds].sort()).toEqual(privateIds.sort());
      const rules = ofType(run, 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule');
      expect(rules).toHaveLength(1);
      expect(rules[0].inputs).toMatchObject({ referencedSecurityGroupId: 'sg-cluster-eks-cluster', fromPort: 5432, toPort: 5432 });
      expect(rules[0].inputs.cidrIpv4).toBeUndefined();
    });

    it('pins every Helm release to an exact chart version from versions.ts', () => {
      const releases = ofType(run, 'kubernetes:helm.sh/v3:Release');
      const pinnedCharts = [...Object.values(HELM_CHARTS), CLUSTER_AUTOSCALER.chart, CERT_MANAGER_CHART];
      expect(releases.map((r) => r.inputs.chart).sort()).toEqual(pinnedCharts.map((c) => c.chart).sort());
      for (const r of releases) {
        expect(r.inputs.version, r.name).toMatch(EXACT_SEMVER);
        const pinned = pinnedCharts.find((c) => c.chart === r.inputs.chart)!;
        expect(r.inputs.version).toBe(pinned.version);
        expect(r.inputs.repositoryOpts.repo).toBe(pinned.repo);
      }
    });

    it('configures Prometheus to select the app monitors, Grafana dashboards by label and the HPA metric rule', () => {
      const releases = ofType(run, 'kubernetes:helm.sh/v3:Release');
      const kps = releases.find((r) => r.inputs.chart === 'kube-prometheus-stack')!.inputs.values;
      expect(kps.prometheus.prometheusSpec).toMatchObject({ serviceMonitorSelectorNilUsesHelmValues: false, ruleSelectorNilUsesHelmValues: false, serviceMonitorNamespaceSelector: {} });
      expect(kps.grafana.sidecar.dashboards).toMatchObject({ enabled: true, label: 'grafana_dashboard', labelValue: '1' });
      expect(kps.grafana.admin.existingSecret).toBeTruthy();
      const adapter = releases.find((r) => r.inputs.chart === 'prometheus-adapter')!.inputs.values;
      expect(adapter.rules.custom).toContainEqual(REQUESTS_PER_SECOND_ADAPTER_RULE);
      // Every ServiceMonitor the app ships carries labels the selector matches.
      const selector = kps.prometheus.prometheusSpec.serviceMonitorSelector.matchLabels as Record<string, string>;
      const monitors = appliedManifests(run).filter((o) => o.kind === 'ServiceMonitor');
      expect(monitors.length).toBeGreaterThan(0);
      for (const m of monitors) expect(m.metadata.labels ?? {}).toMatchObject(selector);
      const ruleSelector = kps.prometheus.prometheusSpec.ruleSelector.matchLabels as Record<string, string>;
      const rules = appliedManifests(run).filter((o) => o.kind === 'PrometheusRule');
      expect(rules.length).toBeGreaterThan(0);
      for (const r of rules) expect(r.metadata.labels ?? {}).toMatchObject(ruleSelector);
      // The app's dashboards carry the label Grafana's sidecar watches.
      const { label, labelValue } = kps.grafana.sidecar.dashboards;
      expect(appliedManifests(run).filter((o) => o.kind === 'ConfigMap' && o.metadata.labels?.[label] === labelValue).length).toBeGreaterThan(0);
    });

    it('applies the app after the platform CRDs and webhooks, its Secrets after its namespace', () => {
      const groups = ofType(run, 'kubernetes:yaml/v2:ConfigGroup');
      const app = groups.find((g) => g.name === 'app-app')!;
      const ns = groups.find((g) => g.name === 'app-namespaces')!;
      for (const release of ['platform-istio-base', 'platform-istio-cni', 'platform-istiod', 'platform-kube-prometheus-stack', 'platform-prometheus-adapter']) {
        expect(app.dependsOn).toContain(`kubernetes:helm.sh/v3:Release::${release}`);
      }
      expect(app.dependsOn).toContain('kubernetes:yaml/v2:ConfigGroup::app-namespaces');
      for (const secret of ofType(run, 'kubernetes:core/v1:Secret').filter((s) => s.name.startsWith('app-'))) {
        expect(secret.dependsOn).toContain('kubernetes:yaml/v2:ConfigGroup::app-namespaces');
        expect(app.dependsOn).toContain(`kubernetes:core/v1:Secret::${secret.name}`);
      }
      expect(unwrapSecrets(ns.inputs.objs).map((o: any) => o.kind)).toEqual(['Namespace']);
      if (expected.rds) expect(app.dependsOn).toContain('aws:rds/instance:Instance::database-postgres');
      // The platform waits for the nodes and add-ons.
      const base = ofType(run, 'kubernetes:helm.sh/v3:Release').find((r) => r.name === 'platform-istio-base')!;
      expect(base.dependsOn).toEqual(expect.arrayContaining(['aws:eks/addon:Addon::eks-coredns', 'kubernetes:storage.k8s.io/v1:StorageClass::eks-gp3']));
    });

    it('applies manifests that pass the same schema validation as the cdk8s tests, images by digest', () => {
      const objects = appliedManifests(run);
      expect(objects.length).toBeGreaterThan(20);
      expect(validateManifests(objects)).toEqual([]);
      const containers = objects.filter((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/part-of'] === 'promptmesh' && o.metadata.name !== 'postgres-exporter')
        .flatMap((d) => d.spec.template.spec.containers).filter((c: any) => !String(c.image).startsWith('oliver006/'));
      expect(containers.length).toBeGreaterThanOrEqual(4);
      const repo = `123456789012.dkr.ecr.eu-west-1.amazonaws.com/${file['promptmesh:clusterName']}`;
      for (const c of containers) expect(c.image).toMatch(new RegExp(`^${repo.replace(/\./g, '\\.')}/(router|templates|context|llm)@sha256:[a-f0-9]{64}$`));
    });

    it('runs Redis and PostgreSQL the way the file says (standalone/cluster, in-cluster/RDS)', () => {
      const objects = appliedManifests(run);
      const redisConfig = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'redis-config')!.data['redis.conf'] as string;
      expect(redisConfig.includes('cluster-enabled yes')).toBe(file['promptmesh:app'].redis === 'cluster');
      const postgres = objects.filter((o) => o.kind === 'StatefulSet' && o.metadata.name === 'postgres');
      const secrets = ofType(run, 'kubernetes:core/v1:Secret').map((s) => s.inputs.metadata.name);
      if (expected.rds) {
        expect(postgres).toHaveLength(0);
        expect(secrets).toContain('postgres-url');
        expect(secrets).not.toContain('postgres-auth');
        // templates may leave the namespace for the VPC's database port, nothing wider.
        const egress = objects.filter((o) => o.kind === 'NetworkPolicy').flatMap((p) => p.spec.egress ?? [])
          .filter((e: any) => (e.ports ?? []).some((p: any) => p.port === 5432));
        // (templates, and the RDS exporter)
        expect([...new Set(egress.flatMap((e: any) => e.to.map((t: any) => t.ipBlock?.cidr)).filter(Boolean))]).toEqual([file['promptmesh:vpcCidr']]);
      } else {
        expect(postgres).toHaveLength(1);
        expect(secrets).toContain('postgres-auth');
        expect(secrets).not.toContain('postgres-url');
      }
    });

    it('places each service as the environment says (placementPolicyFor): in prod, router and llm on on-demand nodes', () => {
      const env = file['promptmesh:environment'] as string;
      const overrides = ((file['promptmesh:app'] as any)?.services ?? {}) as Record<string, { capacity?: string }>;
      const deployments = appliedManifests(run).filter((o) => o.kind === 'Deployment' && o.metadata.name.endsWith('-stable'));
      const want = serviceCapacities(placementPolicyFor(env));
      for (const svc of ['router', 'templates', 'context', 'llm'] as const) {
        const d = deployments.find((o) => o.metadata.labels['app.kubernetes.io/component'] === svc);
        const capacity = (overrides[svc]?.capacity ?? want[svc]) as 'spot' | 'on-demand';
        if (env === 'prod' && (svc === 'router' || svc === 'llm')) expect(capacity).toBe('on-demand');
        expect(d.spec.template.spec.affinity, `${svc} affinity`).toEqual(placementFor(capacity).affinity);
      }
    });

    it('creates every Secret the chart references, with secret values only', () => {
      const objects = appliedManifests(run);
      const created = ofType(run, 'kubernetes:core/v1:Secret').filter((s) => s.inputs.metadata.namespace === 'promptmesh');
      const referenced = new Set<string>();
      const walk = (v: any) => {
        if (Array.isArray(v)) return v.forEach(walk);
        if (v && typeof v === 'object') {
          if (v.secretKeyRef?.name) referenced.add(v.secretKeyRef.name);
          if (v.secretRef?.name) referenced.add(v.secretRef.name);
          if (v.secret?.secretName) referenced.add(v.secret.secretName);
          Object.values(v).forEach(walk);
        }
      };
      walk(objects.filter((o) => o.metadata.namespace === 'promptmesh'));
      expect(referenced.size).toBeGreaterThan(0);
      const names = new Set(created.map((s) => s.inputs.metadata.name));
      for (const ref of referenced) expect(names.has(ref), `Secret ${ref} is referenced but not created`).toBe(true);
      for (const s of created) expect(isSecretValue(s.inputs.stringData), s.name).toBe(true);
      expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    });

    it('never puts a secret into a resource input as a plain value', () => {
      const providerKeys = Object.entries(TEST_SECRETS.providerApiKeys)
        .filter(([name]) => (file['promptmesh:app'].providers?.providers ?? []).some((p: any) => p.apiKeyEnv === name)).map(([, v]) => v);
      expect(providerKeys.length).toBeGreaterThan(0);
      const secrets = [TEST_SECRETS.adminApiKey, ...providerKeys, ...generatedSecrets(run), 'ecr-token-from-mock'];
      expect(generatedSecrets(run).length).toBeGreaterThanOrEqual(3);
      const leaks = run.resources.flatMap((r) => secrets.flatMap((s) => plainOccurrences(r.inputs, s).map((p) => `${r.type}::${r.name} ${p}`)));
      expect(leaks).toEqual([]);
      // And they are there, as secrets: the scan is not vacuous.
      const everything = JSON.stringify(run.resources.map((r) => unwrapSecrets(r.inputs)));
      for (const s of [...providerKeys, ...generatedSecrets(run), 'ecr-token-from-mock']) expect(everything).toContain(s);
      // The admin key itself is never sent anywhere: only its SHA-256, inside a secret.
      expect(everything).not.toContain(TEST_SECRETS.adminApiKey);
      expect(everything).toContain(createHash('sha256').update(TEST_SECRETS.adminApiKey).digest('hex'));
      expect(run.secretOutputs).toEqual(expect.arrayContaining(['kubeconfig', 'grafanaAdminPassword']));
    });

    it('keeps IAM least privilege: no wildcard action, a wildcard resource only for reads or tag-scoped writes', () => {
      const statements = policyStatements(run);
      expect(statements.length).toBeGreaterThan(4);
      const readOnly = (a: string) => /^[a-z0-9-]+:(Describe|Get|List)[A-Za-z]*$/.test(a);
      for (const { resource, statement } of statements) {
        const actions = list(statement.Action);
        const resources = list(statement.Resource);
        const what = `${resource}: ${JSON.stringify(statement)}`;
        expect(actions.some((a) => a.includes('*')), what).toBe(false);
        expect(statement.NotAction, what).toBeUndefined();
        expect(statement.NotResource, what).toBeUndefined();
        expect(statement.Effect).toBe('Allow');
        if (actions.includes('sts:AssumeRoleWithWebIdentity')) {
          expect(JSON.stringify(statement.Condition ?? {}), what).toMatch(/:sub":"system:serviceaccount:(kube-system|cert-manager):[a-z-]+"/);
        }
        if (statement.Principal) expect(JSON.stringify(statement.Principal), what).not.toMatch(/"\*"/);
        if (resources.includes('*')) {
          const scopedByTag = JSON.stringify(statement.Condition ?? {}).includes(`"aws:ResourceTag/k8s.io/cluster-autoscaler/${file['promptmesh:clusterName']}":"owned"`);
          expect(actions.every(readOnly) || scopedByTag, what).toBe(true);
        }
      }
      const autoscaler = statements.filter((s) => s.resource === 'eks-cluster-autoscaler' && s.statement.Action !== 'sts:AssumeRoleWithWebIdentity');
      expect(autoscaler.flatMap((s) => list(s.statement.Action))).toContain('autoscaling:SetDesiredCapacity');
      const attached = ofType(run, 'aws:iam/rolePolicyAttachment:RolePolicyAttachment').map((a) => a.inputs.policyArn);
      expect(new Set(attached)).toEqual(new Set([
        'arn:aws:iam::aws:policy/AmazonEKSClusterPolicy',
        'arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy',
        'arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly',
        'arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy',
        'arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy',
      ]));
    });

    it('builds one image, pushes it to an immutable, scanned ECR repository per service, and deploys by digest', () => {
      const repos = ofType(run, 'aws:ecr/repository:Repository');
      expect(repos.map((r) => r.inputs.name).sort()).toEqual(['context', 'llm', 'router', 'templates'].map((s) => `${file['promptmesh:clusterName']}/${s}`));
      for (const r of repos) {
        expect(r.inputs.imageTagMutability).toBe('IMMUTABLE');
        expect(r.inputs.imageScanningConfiguration.scanOnPush).toBe(true);
        expect(r.inputs.forceDelete).toBe(file['promptmesh:environment'] !== 'prod');
      }
      expect(ofType(run, 'aws:ecr/lifecyclePolicy:LifecyclePolicy')).toHaveLength(4);
      const images = ofType(run, 'docker-build:index:Image');
      expect(images).toHaveLength(1);
      expect(images[0].inputs.push).toBe(true);
      expect(images[0].inputs.tags).toHaveLength(4);
      for (const t of images[0].inputs.tags) expect(t).toMatch(/:src-[a-f0-9]{16}$/);
      expect(images[0].inputs.dockerfile.location).toMatch(/\/Dockerfile$/);
      expect(isSecretValue(images[0].inputs.registries)).toBe(true);
      expect(unwrapSecrets(images[0].inputs.registries)[0].username).toBe('AWS');
      expect(run.invokes.map((i) => i.token)).toContain('aws:ecr/getAuthorizationToken:getAuthorizationToken');
    });

    it('serves HTTPS only: cert-manager issues the gateway certificate by DNS-01 in the one hosted zone, HTTP redirects', () => {
      const tls = file['promptmesh:tls'];
      const release = ofType(run, 'kubernetes:helm.sh/v3:Release').find((r) => r.inputs.chart === 'cert-manager')!;
      expect(release.inputs.version).toBe(CERT_MANAGER_CHART.version);
      const values = unwrapSecrets(release.inputs.values);
      expect(values.crds.enabled).toBe(true);
      expect(values.serviceAccount.annotations['eks.amazonaws.com/role-arn']).toBe('arn:aws:iam::123456789012:eks-cert-manager');
      const crs = ofType(run, 'kubernetes:cert-manager.io/v1:ClusterIssuer');
      expect(crs).toHaveLength(1);
      const acme = crs[0].inputs.spec.acme;
      expect(acme.server).toBe(tls.acmeServer === 'staging' ? 'https://acme-staging-v02.api.letsencrypt.org/directory' : 'https://acme-v02.api.letsencrypt.org/directory');
      expect(acme.email).toBe(tls.acmeEmail);
      expect(acme.solvers).toEqual([{ dns01: { route53: { region: file['aws:region'], hostedZoneID: tls.hostedZoneId } } }]);
      const [cert] = ofType(run, 'kubernetes:cert-manager.io/v1:Certificate');
      expect(cert.inputs.metadata).toEqual({ name: 'promptmesh-tls', namespace: 'istio-ingress' });
      expect(cert.inputs.spec).toMatchObject({ secretName: 'promptmesh-tls', dnsNames: tls.hosts, issuerRef: { kind: 'ClusterIssuer', name: crs[0].inputs.metadata.name } });
      expect(cert.dependsOn).toContain('kubernetes:cert-manager.io/v1:ClusterIssuer::gateway-tls-issuer');
      expect(ofType(run, 'kubernetes:cert-manager.io/v1:ClusterIssuer')[0].dependsOn).toContain('kubernetes:helm.sh/v3:Release::gateway-tls-cert-manager');
      // The app's Gateway serves that Secret on 443 and redirects 80.
      const [gateway] = appliedManifests(run).filter((o) => o.kind === 'Gateway');
      const https = gateway.spec.servers.find((sv: any) => sv.port.number === 443);
      expect(https.tls).toMatchObject({ mode: 'SIMPLE', credentialName: 'promptmesh-tls' });
      expect(https.hosts).toEqual(tls.hosts);
      const http = gateway.spec.servers.find((sv: any) => sv.port.number === 80);
      expect(http.tls).toEqual({ httpsRedirect: true });
      // Each host points at the load balancer.
      const records = ofType(run, 'aws:route53/record:Record');
      expect(records.map((r) => r.inputs.name).sort()).toEqual([...tls.hosts].sort());
      for (const r of records) expect(r.inputs).toMatchObject({ zoneId: tls.hostedZoneId, type: 'CNAME', records: ['ingress-gateway.elb.eu-west-1.amazonaws.com'] });
    });

    it('scopes cert-manager to the challenge TXT records of its hosted zone, and the nodes to the cache prefixes', () => {
      const tls = file['promptmesh:tls'];
      const certManager = policyStatements(run).filter((s) => s.resource === 'eks-cert-manager' && s.statement.Action !== 'sts:AssumeRoleWithWebIdentity');
      const writes = certManager.filter((s) => list(s.statement.Action).includes('route53:ChangeResourceRecordSets'));
      expect(writes).toHaveLength(1);
      expect(writes[0].statement.Resource).toBe(`arn:aws:route53:::hostedzone/${tls.hostedZoneId}`);
      expect(writes[0].statement.Condition['ForAllValues:StringEquals']).toEqual({
        'route53:ChangeResourceRecordSetsNormalizedRecordNames': tls.hosts.map((h: string) => `_acme-challenge.${h.replace(/^\*\./, '')}`),
        'route53:ChangeResourceRecordSetsRecordTypes': ['TXT'],
      });
      expect(certManager.flatMap((s) => list(s.statement.Resource)).sort()).toEqual(
        ['*', 'arn:aws:route53:::change/*', `arn:aws:route53:::hostedzone/${tls.hostedZoneId}`, `arn:aws:route53:::hostedzone/${tls.hostedZoneId}`].sort());
      const trust = policyStatements(run).find((s) => s.resource === 'eks-cert-manager' && s.statement.Action === 'sts:AssumeRoleWithWebIdentity')!;
      expect(JSON.stringify(trust.statement.Condition)).toContain('"system:serviceaccount:cert-manager:cert-manager"');
      const cache = policyStatements(run).filter((s) => s.resource === 'eks-node-pull-through-cache');
      expect(cache).toHaveLength(1);
      expect(list(cache[0].statement.Action).sort()).toEqual(['ecr:BatchImportUpstreamImage', 'ecr:CreateRepository']);
      const prefixes = ofType(run, 'aws:ecr/pullThroughCacheRule:PullThroughCacheRule').map((r) => r.inputs.ecrRepositoryPrefix).sort();
      expect(list(cache[0].statement.Resource).sort()).toEqual(prefixes.map((p) => `arn:aws:ecr:eu-west-1:123456789012:repository/${p}/*`).sort());
    });

    it('pulls third-party images through the ECR pull-through cache over VPC endpoints for ECR, S3 and STS', () => {
      const rules = ofType(run, 'aws:ecr/pullThroughCacheRule:PullThroughCacheRule');
      const byPrefix = Object.fromEntries(rules.map((r) => [r.inputs.ecrRepositoryPrefix, r.inputs]));
      expect(byPrefix.quay.upstreamRegistryUrl).toBe('quay.io');
      expect(byPrefix['registry-k8s-io'].upstreamRegistryUrl).toBe('registry.k8s.io');
      // Docker Hub only with credentials (ECR requires them).
      expect('docker-hub' in byPrefix).toBe(file['promptmesh:dockerHubCredentialArn'] !== undefined);
      const cached = (image: string, prefix: string) => `123456789012.dkr.ecr.eu-west-1.amazonaws.com/${prefix}/${image}`;
      const containers = appliedManifests(run).filter((o) => o.kind === 'StatefulSet').flatMap((o) => o.spec.template.spec.containers.map((c: any) => c.image));
      const pods = appliedManifests(run).filter((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment').flatMap((o) => o.spec.template.spec.containers.map((c: any) => c.image));
      // PostgreSQL's exporter (beside the in-cluster PostgreSQL, or the RDS exporter) comes from quay.io, cached.
      expect(pods).toContain(cached(IMAGES.postgresExporter.image.replace('quay.io/', ''), 'quay'));
      if (file['promptmesh:dockerHubCredentialArn'] === undefined) expect(containers).toContain(IMAGES.redis.image);
      const endpoints = ofType(run, 'aws:ec2/vpcEndpoint:VpcEndpoint');
      expect(endpoints.map((e) => e.inputs.serviceName).sort()).toEqual(['ecr.api', 'ecr.dkr', 's3', 'sts'].map((s) => `com.amazonaws.eu-west-1.${s}`));
      for (const e of endpoints.filter((x) => x.inputs.vpcEndpointType === 'Interface')) {
        expect(e.inputs.privateDnsEnabled).toBe(true);
        expect(e.inputs.subnetIds).toHaveLength(3);
      }
      const s3 = endpoints.find((e) => e.inputs.vpcEndpointType === 'Gateway')!;
      const privateTables = ofType(run, 'aws:ec2/routeTable:RouteTable').filter((t) => t.name.includes('-private-')).map((t) => `${t.name}-id`);
      expect([...s3.inputs.routeTableIds].sort()).toEqual(privateTables.sort());
      const sg = ofType(run, 'aws:ec2/securityGroup:SecurityGroup').find((g) => g.name === 'network-endpoints')!;
      expect(sg.inputs.ingress).toEqual([expect.objectContaining({ fromPort: 443, toPort: 443, cidrBlocks: [file['promptmesh:vpcCidr']] })]);
    });

    it('outputs the cluster name, a secret kubeconfig, the router URL and Grafana', () => {
      expect(run.outputs.clusterName).toBe(file['promptmesh:clusterName']);
      const kubeconfig = JSON.parse(run.outputs.kubeconfig as string);
      expect(kubeconfig.users[0].user.exec.args).toEqual(expect.arrayContaining(['get-token', '--cluster-name', file['promptmesh:clusterName'], '--region', file['aws:region']]));
      expect(run.outputs.routerUrl).toBe(`https://${file['promptmesh:tls'].hosts[0]}`);
      expect(run.outputs.loadBalancer).toBe('ingress-gateway.elb.eu-west-1.amazonaws.com');
      expect(run.outputs.grafanaUrl).toBe('http://localhost:3000');
      expect(run.outputs.grafanaAccess).toContain('port-forward');
    });
  });
}
