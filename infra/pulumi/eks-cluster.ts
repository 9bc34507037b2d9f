import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { ON_DEMAND_LABEL_VALUE, SPOT_NODE_LABEL, SPOT_NODE_TAINT } from './placement';
import { CLUSTER_AUTOSCALER, KUBERNETES_RELEASES, KUBERNETES_VERSION, isKubernetesVersion, type EksAddonName } from './versions';

/** The label every node carries to say which node group role it has. */
export const NODE_ROLE_LABEL = 'promptmesh.io/node-role';

/** The taint of the system node group: only critical add-ons (CoreDNS, ...) tolerate it. */
export const CRITICAL_ADDONS_TAINT = { key: 'CriticalAddonsOnly', value: 'true', effect: 'NoSchedule' } as const;

/** The fewest instance types a spot node group may list, so one reclaimed pool cannot drain it. */
export const MIN_SPOT_INSTANCE_TYPES = 4;

/** One managed node group. */
export interface NodeGroupSpec {
  /** The node group's name (lowercase letters, digits and dashes), unique in the cluster. */
  name: string;
  /**
   * `spot` for interruptible capacity (labelled and tainted with the spot placement constants,
   * so only workloads that opt in land there) or `on-demand` (untainted, for everything else).
   */
  capacity: 'spot' | 'on-demand';
  /**
   * EC2 instance types, all of ONE size (one class and size suffix: m6i.xlarge, m6a.xlarge,
   * m7i.xlarge), because the cluster autoscaler plans with one node shape per group. A spot group
   * needs at least {@link MIN_SPOT_INSTANCE_TYPES} types from at least two families, so losing
   * one spot pool does not empty it.
   */
  instanceTypes: string[];
  /** The fewest nodes, per zone (the group is one managed node group per zone). */
  minSize: number;
  /** The most nodes, per zone. */
  maxSize: number;
  /**
   * The nodes to start with, per zone; later changes by an autoscaler are not reverted.
   * @default minSize
   */
  desiredSize?: number;
  /**
   * The root volume size in GiB (gp3, encrypted).
   * @default 40
   */
  diskSizeGiB?: number;
}

/** The on-demand node group that runs the cluster's critical add-ons. */
export interface SystemNodeGroupSpec {
  /** On-demand instance types of one size (the first available is used). */
  instanceTypes: string[];
  /** The fewest nodes per zone (one group per zone); at least 1, so critical add-ons run in every zone. */
  minSize: number;
  /** The most nodes per zone. */
  maxSize: number;
  /**
   * The nodes to start with, per zone.
   * @default minSize
   */
  desiredSize?: number;
}

/** Arguments of {@link EksCluster}. */
export interface EksClusterArgs {
  /** The EKS cluster's name (also used in subnet tags and the kubeconfig). */
  clusterName: string;
  /** The VPC the cluster runs in. */
  vpcId: pulumi.Input<string>;
  /**
   * The zones of `privateSubnetIds`, in the same order: each node group becomes one managed node
   * group per zone, named `<group>-<zone letter>`.
   * @default zones named by position: `<group>-z1`, `<group>-z2`, ...
   */
  availabilityZones?: string[];
  /**
   * Private subnets, one per zone: nodes and the control plane's network interfaces live here.
   * (Internet-facing load balancers find the public subnets by their `kubernetes.io/role/elb` tag.)
   */
  privateSubnetIds: pulumi.Input<string>[];
  /** The AWS region, written into the kubeconfig's `aws eks get-token` call. */
  region: string;
  /**
   * The Kubernetes minor version: one of `KUBERNETES_RELEASES` in `infra/versions.ts`, which
   * resolves the add-on builds and the autoscaler image for it.
   * @default KUBERNETES_VERSION from versions.ts
   */
  kubernetesVersion?: string;
  /**
   * Make the API server reachable only from inside the VPC (and peered networks). Then
   * `pulumi up` itself must run from inside the network (a bastion, VPN or CI runner there).
   * @default false
   */
  privateEndpoint?: boolean;
  /**
   * When the endpoint is public: the IPv4 ranges allowed to reach it.
   * @default ['0.0.0.0/0'] (the endpoint still requires IAM authentication)
   */
  publicAccessCidrs?: string[];
  /** The on-demand system node group, tainted `CriticalAddonsOnly=true:NoSchedule`. */
  systemNodeGroup: SystemNodeGroupSpec;
  /** The workload node groups: spot groups and, optionally, untainted on-demand groups. */
  nodeGroups: NodeGroupSpec[];
  /**
   * IAM role ARNs granted cluster-admin through EKS access entries (the creator of the cluster
   * is granted it too).
   * @default []
   */
  adminRoleArns?: string[];
  /**
   * Pinned add-on versions, by add-on name, to override the pins table's builds for the version.
   * @default KUBERNETES_RELEASES[kubernetesVersion].eksAddons from infra/versions.ts
   */
  addonVersions?: Partial<Record<EksAddonName, string>>;
  /**
   * Install the cluster autoscaler (pinned Helm release with its own IRSA role), which grows and
   * shrinks every node group between its `minSize` and `maxSize` as pods need room.
   * @default true
   */
  clusterAutoscaler?: boolean;
  /**
   * Registry prefixes of the account's ECR pull-through cache (`docker-hub`, `quay`, ...): the
   * nodes may create and import into those repositories on a first pull.
   * @default [] (no pull-through cache)
   */
  pullThroughCachePrefixes?: string[];
  /**
   * Tags added to every AWS resource.
   * @default {}
   */
  tags?: Record<string, string>;
}

const NAME_PATTERN = /^[a-z][a-z0-9-]{0,37}$/;
const INSTANCE_TYPE_PATTERN = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;

/** Checks node group specs; throws an error naming the offending field. Exported for the program's config checks. */
export function validateNodeGroups(groups: NodeGroupSpec[], field = 'nodeGroups'): void {
  if (!Array.isArray(groups) || groups.length === 0) throw new Error(`'${field}' must list at least one node group`);
  const names = new Set<string>();
  groups.forEach((g, i) => {
    const at = `${field}[${i}]`;
    if (typeof g.name !== 'string' || !NAME_PATTERN.test(g.name)) {
      throw new Error(`'${at}.name' must be lowercase letters, digits and dashes, starting with a letter, at most 38 characters (got ${JSON.stringify(g.name)})`);
    }
    if (names.has(g.name)) throw new Error(`'${at}.name' repeats the node group name '${g.name}'`);
    names.add(g.name);
    if (g.capacity !== 'spot' && g.capacity !== 'on-demand') {
      throw new Error(`'${at}.capacity' must be 'spot' or 'on-demand' (got ${JSON.stringify(g.capacity)})`);
    }
    if (!Array.isArray(g.instanceTypes) || g.instanceTypes.some((t) => typeof t !== 'string' || !INSTANCE_TYPE_PATTERN.test(t))) {
      throw new Error(`'${at}.instanceTypes' must be a list of EC2 instance types like m6i.large (got ${JSON.stringify(g.instanceTypes)})`);
    }
    checkOneSize(`${at}.instanceTypes`, g.instanceTypes);
    if (g.capacity === 'spot') {
      if (new Set(g.instanceTypes).size < MIN_SPOT_INSTANCE_TYPES) {
        throw new Error(`'${at}.instanceTypes' must list at least ${MIN_SPOT_INSTANCE_TYPES} types for a spot group (got ${g.instanceTypes.length})`);
      }
      const families = new Set(g.instanceTypes.map((t) => t.split('.')[0]));
      if (families.size < 2) throw new Error(`'${at}.instanceTypes' must span at least 2 instance families for a spot group (got only ${[...families].join(', ')})`);
    } else if (g.instanceTypes.length === 0) {
      throw new Error(`'${at}.instanceTypes' must list at least 1 type`);
    }
    checkSizes(at, g);
    if (g.diskSizeGiB !== undefined && (!Number.isInteger(g.diskSizeGiB) || g.diskSizeGiB < 20 || g.diskSizeGiB > 1000)) {
      throw new Error(`'${at}.diskSizeGiB' must be an integer from 20 to 1000 (got ${g.diskSizeGiB})`);
    }
  });
}

/** The class (m, c, r, t, ...) and size (large, xlarge, ...) of an instance type: equal ones have the same vCPU and memory. */
function sizeOf(type: string): string {
  const [family, size] = type.split('.');
  return `${/^[a-z]+/.exec(family!)?.[0] ?? family}.${size}`;
}

// The cluster autoscaler sizes a scale-up from one node shape per group; mixed sizes make it
// pick the wrong group or add too few nodes.
function checkOneSize(at: string, types: string[]): void {
  const sizes = [...new Set(types.map(sizeOf))];
  if (sizes.length > 1) {
    throw new Error(`'${at}' must all be one size (one class and size, like m6i.xlarge, m6a.xlarge, m7i.xlarge), so the cluster autoscaler plans with one node shape (got ${sizes.join(', ')})`);
  }
}

function checkSizes(at: string, g: { minSize: number; maxSize: number; desiredSize?: number }): void {
  if (!Number.isInteger(g.minSize) || g.minSize < 0) throw new Error(`'${at}.minSize' must be an integer >= 0 (got ${g.minSize})`);
  if (!Number.isInteger(g.maxSize) || g.maxSize < 1 || g.maxSize < g.minSize) {
    throw new Error(`'${at}.maxSize' must be an integer >= 1 and >= minSize (got ${g.maxSize})`);
  }
  const desired = g.desiredSize ?? g.minSize;
  if (!Number.isInteger(desired) || desired < g.minSize || desired > g.maxSize) {
    throw new Error(`'${at}.desiredSize' must be an integer from minSize to maxSize (got ${g.desiredSize})`);
  }
}

/** Checks the system node group spec; throws an error naming the offending field. */
export function validateSystemNodeGroup(g: SystemNodeGroupSpec, field = 'systemNodeGroup'): void {
  if (!g || !Array.isArray(g.instanceTypes) || g.instanceTypes.length === 0 || g.instanceTypes.some((t) => !INSTANCE_TYPE_PATTERN.test(t))) {
    throw new Error(`'${field}.instanceTypes' must list at least 1 EC2 instance type like m6i.large (got ${JSON.stringify(g?.instanceTypes)})`);
  }
  checkOneSize(`${field}.instanceTypes`, g.instanceTypes);
  checkSizes(field, g);
  if (g.minSize < 1) throw new Error(`'${field}.minSize' must be at least 1: critical add-ons need a node (got ${g.minSize})`);
}

function assumeRolePolicy(service: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }],
  });
}

const managedPolicy = (name: string) => `arn:aws:iam::aws:policy/${name}`;

/**
 * An EKS cluster ready for the platform: encrypted secrets, control plane logs, an OIDC provider
 * for IRSA, pinned managed add-ons (VPC CNI and EBS CSI with their own IRSA roles, CoreDNS,
 * kube-proxy, metrics-server), a default encrypted gp3 StorageClass, an on-demand system node
 * group for critical add-ons and spot/on-demand workload node groups over all private subnets,
 * with IMDSv2 required and encrypted root volumes, and the cluster autoscaler. Exposes a kubeconfig (secret) and a
 * `k8s.Provider` for everything that goes into the cluster.
 */
export class EksCluster extends pulumi.ComponentResource {
  /** The EKS cluster's name. */
  public readonly clusterName: pulumi.Output<string>;
  /** The API server endpoint. */
  public readonly endpoint: pulumi.Output<string>;
  /** The kubeconfig (authenticates with `aws eks get-token`); a secret. */
  public readonly kubeconfig: pulumi.Output<string>;
  /** The Kubernetes provider targeting this cluster. */
  public readonly provider: k8s.Provider;
  /** The cluster security group EKS attaches to the control plane and managed nodes. */
  public readonly nodeSecurityGroupId: pulumi.Output<string>;
  /** The IAM OIDC provider for IRSA. */
  public readonly oidcProviderArn: pulumi.Output<string>;
  /** The OIDC issuer URL without `https://`. */
  public readonly oidcIssuer: pulumi.Output<string>;
  /** The node groups, by name (`system` and each workload group). */
  public readonly nodeGroups: Record<string, aws.eks.NodeGroup>;
  /** The default gp3 StorageClass's name. */
  public readonly storageClassName: pulumi.Output<string>;
  /** Everything in-cluster work must wait for: node groups, add-ons, the StorageClass. */
  public readonly ready: pulumi.Resource[];
  /**
   * Creates an IRSA role (a child of this cluster) that only `namespace/serviceAccount` can
   * assume, with `policy` (an IAM policy document, JSON) inline. For add-ons installed outside
   * this component (cert-manager, exporters).
   */
  public readonly serviceAccountRole: (roleName: string, namespace: string, serviceAccount: string, policy: pulumi.Input<string>) => aws.iam.Role;

  constructor(name: string, args: EksClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:aws:EksCluster', name, {}, opts);
    validateSystemNodeGroup(args.systemNodeGroup);
    validateNodeGroups(args.nodeGroups);
    if (!NAME_PATTERN.test(args.clusterName) && !/^[A-Za-z][A-Za-z0-9_-]{0,99}$/.test(args.clusterName)) {
      throw new Error(`EksCluster ${name}: 'clusterName' must be letters, digits, dashes and underscores (got ${args.clusterName})`);
    }
    if (!Array.isArray(args.privateSubnetIds) || args.privateSubnetIds.length < 2) {
      throw new Error(`EksCluster ${name}: 'privateSubnetIds' must list at least 2 subnets in different zones`);
    }
    const version = args.kubernetesVersion ?? KUBERNETES_VERSION;
    if (!isKubernetesVersion(version)) {
      throw new Error(`EksCluster ${name}: 'kubernetesVersion' must be one of ${Object.keys(KUBERNETES_RELEASES).join(', ')} (the minors infra/versions.ts pins add-ons for; got ${version})`);
    }
    const release = KUBERNETES_RELEASES[version];
    const addonVersions = { ...release.eksAddons, ...(args.addonVersions ?? {}) };
    const zones = args.availabilityZones ?? args.privateSubnetIds.map((_s, i) => `z${i + 1}`);
    if (zones.length !== args.privateSubnetIds.length) {
      throw new Error(`EksCluster ${name}: 'availabilityZones' must name the zone of each of the ${args.privateSubnetIds.length} private subnets (got ${zones.length})`);
    }
    const tags = args.tags ?? {};
    const child = { parent: this };

    // Control plane role: only the AWS-managed cluster policy, plus use of our own secrets key.
    const clusterRole = new aws.iam.Role(`${name}-cluster`, { assumeRolePolicy: assumeRolePolicy('eks.amazonaws.com'), tags }, child);
    const clusterPolicy = new aws.iam.RolePolicyAttachment(`${name}-cluster-policy`, {
      role: clusterRole.name,
      policyArn: managedPolicy('AmazonEKSClusterPolicy'),
    }, child);
    const secretsKey = new aws.kms.Key(`${name}-secrets`, {
      description: `Envelope encryption of Kubernetes Secrets in ${args.clusterName}`,
      enableKeyRotation: true,
      deletionWindowInDays: 30,
      tags,
    }, child);
    const keyUse = new aws.iam.RolePolicy(`${name}-cluster-kms`, {
      role: clusterRole.name,
      policy: secretsKey.arn.apply((arn) => JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:DescribeKey', 'kms:ListGrants', 'kms:CreateGrant'], Resource: arn }],
      })),
    }, child);

    const cluster = new aws.eks.Cluster(`${name}-cluster`, {
      name: args.clusterName,
      version,
      roleArn: clusterRole.arn,
      // Add-ons are managed below at pinned versions instead of the unmanaged defaults.
      bootstrapSelfManagedAddons: false,
      accessConfig: { authenticationMode: 'API', bootstrapClusterCreatorAdminPermissions: true },
      vpcConfig: {
        subnetIds: [...args.privateSubnetIds],
        endpointPrivateAccess: true,
        endpointPublicAccess: !args.privateEndpoint,
        ...(args.privateEndpoint ? {} : { publicAccessCidrs: args.publicAccessCidrs ?? ['0.0.0.0/0'] }),
      },
      encryptionConfig: { resources: ['secrets'], provider: { keyArn: secretsKey.arn } },
      enabledClusterLogTypes: ['api', 'audit', 'authenticator'],
      tags,
    }, { parent: this, dependsOn: [clusterPolicy, keyUse] });
    this.clusterName = cluster.name;
    this.endpoint = cluster.endpoint;
    this.nodeSecurityGroupId = cluster.vpcConfig.clusterSecurityGroupId;

    for (const [i, roleArn] of (args.adminRoleArns ?? []).entries()) {
      const entry = new aws.eks.AccessEntry(`${name}-admin-${i}`, { clusterName: cluster.name, principalArn: roleArn, type: 'STANDARD' }, child);
      new aws.eks.AccessPolicyAssociation(`${name}-admin-${i}`, {
        clusterName: cluster.name,
        principalArn: entry.principalArn,
        policyArn: 'arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy',
        accessScope: { type: 'cluster' },
      }, child);
    }

    // IRSA: pods assume IAM roles through the cluster's OIDC issuer.
    const issuerUrl = cluster.identities.apply((ids) => ids[0].oidcs![0].issuer!);
    const oidc = new aws.iam.OpenIdConnectProvider(`${name}-oidc`, { url: issuerUrl, clientIdLists: ['sts.amazonaws.com'], tags }, child);
    this.oidcProviderArn = oidc.arn;
    this.oidcIssuer = issuerUrl.apply((u) => u.replace(/^https:\/\//, ''));
    const irsaRole = (roleName: string, namespace: string, serviceAccount: string, policy: string | pulumi.Input<string>, inline = false) => {
      const role = new aws.iam.Role(`${name}-${roleName}`, {
        assumeRolePolicy: pulumi.all([oidc.arn, this.oidcIssuer]).apply(([arn, issuer]) => JSON.stringify({
          Version: '2012-10-17',
          Statement: [{
            Effect: 'Allow',
            Principal: { Federated: arn },
            Action: 'sts:AssumeRoleWithWebIdentity',
            Condition: { StringEquals: { [`${issuer}:sub`]: `system:serviceaccount:${namespace}:${serviceAccount}`, [`${issuer}:aud`]: 'sts.amazonaws.com' } },
          }],
        })),
        tags,
      }, child);
      if (inline) new aws.iam.RolePolicy(`${name}-${roleName}`, { role: role.name, policy }, child);
      else new aws.iam.RolePolicyAttachment(`${name}-${roleName}`, { role: role.name, policyArn: managedPolicy(policy as string) }, child);
      return role;
    };
    const cniRole = irsaRole('vpc-cni', 'kube-system', 'aws-node', 'AmazonEKS_CNI_Policy');
    const ebsRole = irsaRole('ebs-csi', 'kube-system', 'ebs-csi-controller-sa', 'service-role/AmazonEBSCSIDriverPolicy');

    // Nodes: only what a kubelet needs (the CNI's permissions sit on its own IRSA role).
    const nodeRole = new aws.iam.Role(`${name}-node`, { assumeRolePolicy: assumeRolePolicy('ec2.amazonaws.com'), tags }, child);
    const nodePolicies: pulumi.Resource[] = ['AmazonEKSWorkerNodePolicy', 'AmazonEC2ContainerRegistryPullOnly'].map((p) =>
      new aws.iam.RolePolicyAttachment(`${name}-node-${p}`, { role: nodeRole.name, policyArn: managedPolicy(p) }, child));
    const cachePrefixes = args.pullThroughCachePrefixes ?? [];
    if (cachePrefixes.length > 0) {
      // A first pull through the cache creates the repository and imports the image: only under
      // the cache's prefixes, in this account and region.
      const identity = aws.getCallerIdentityOutput({}, child);
      const region = aws.getRegionOutput({}, child);
      nodePolicies.push(new aws.iam.RolePolicy(`${name}-node-pull-through-cache`, {
        role: nodeRole.name,
        policy: pulumi.all([identity.accountId, region.region]).apply(([account, r]) => JSON.stringify({
          Version: '2012-10-17',
          Statement: [{
            Effect: 'Allow',
            Action: ['ecr:CreateRepository', 'ecr:BatchImportUpstreamImage'],
            Resource: cachePrefixes.map((prefix) => `arn:aws:ecr:${r}:${account}:repository/${prefix}/*`),
          }],
        })),
      }, child));
    }

    const addon = (addonName: EksAddonName, extra: Partial<aws.eks.AddonArgs> = {}, dependsOn: pulumi.Resource[] = []) =>
      new aws.eks.Addon(`${name}-${addonName}`, {
        clusterName: cluster.name,
        addonName,
        addonVersion: addonVersions[addonName],
        resolveConflictsOnCreate: 'OVERWRITE',
        resolveConflictsOnUpdate: 'OVERWRITE',
        tags,
        ...extra,
      }, { parent: this, dependsOn });
    // The network add-ons come before the nodes, which cannot become Ready without them.
    // The CNI's network policy agent enforces NetworkPolicies; without it default-deny and every
    // rule the app ships are accepted by the API server and do nothing.
    const vpcCni = addon('vpc-cni', { serviceAccountRoleArn: cniRole.arn, configurationValues: JSON.stringify(VPC_CNI_CONFIGURATION) });
    const kubeProxy = addon('kube-proxy');

    const launchTemplate = (ltName: string, diskSizeGiB: number) => new aws.ec2.LaunchTemplate(`${name}-${ltName}`, {
      // IMDSv2 only, and one hop: pods cannot borrow the node's credentials (they use IRSA).
      metadataOptions: { httpEndpoint: 'enabled', httpTokens: 'required', httpPutResponseHopLimit: 1 },
      blockDeviceMappings: [{ deviceName: '/dev/xvda', ebs: { volumeSize: diskSizeGiB, volumeType: 'gp3', encrypted: 'true', deleteOnTermination: 'true' } }],
      tagSpecifications: [{ resourceType: 'instance', tags: { ...tags, Name: `${args.clusterName}-${ltName}` } }],
      tags,
    }, child);

    const nodeGroup = (groupName: string, spec: {
      capacity: 'SPOT' | 'ON_DEMAND'; instanceTypes: string[]; minSize: number; maxSize: number; desiredSize?: number; diskSizeGiB?: number;
      labels: Record<string, string>; taints: { key: string; value: string; effect: string }[];
    }) => {
      const lt = launchTemplate(groupName, spec.diskSizeGiB ?? 40);
      // One managed node group per zone: the autoscaler can then grow the zone a pending pod
      // needs (a zone-bound volume, a DoNotSchedule zone spread), which a group over three zones
      // cannot promise.
      return args.privateSubnetIds.map((subnetId, i) => {
        const zoneName = `${groupName}-${zoneSuffix(zones[i]!)}`;
        return [zoneName, new aws.eks.NodeGroup(`${name}-${zoneName}`, {
        clusterName: cluster.name,
        nodeGroupName: zoneName,
        nodeRoleArn: nodeRole.arn,
        subnetIds: [subnetId],
        capacityType: spec.capacity,
        instanceTypes: spec.instanceTypes,
        amiType: 'AL2023_x86_64_STANDARD',
        launchTemplate: { id: lt.id, version: lt.latestVersion.apply((v) => String(v)) },
        scalingConfig: { minSize: spec.minSize, maxSize: spec.maxSize, desiredSize: spec.desiredSize ?? spec.minSize },
        updateConfig: { maxUnavailablePercentage: 33 },
        labels: spec.labels,
        taints: spec.taints.map((t) => ({ key: t.key, value: t.value, effect: taintEffect(t.effect) })),
        tags: { ...tags, [`k8s.io/cluster-autoscaler/${args.clusterName}`]: 'owned', 'k8s.io/cluster-autoscaler/enabled': 'true', 'promptmesh.io/node-group': groupName },
      }, { parent: this, dependsOn: [...nodePolicies, vpcCni, kubeProxy], ignoreChanges: ['scalingConfig.desiredSize'] })] as const;
      });
    };

    this.nodeGroups = {};
    const system = nodeGroup('system', {
      capacity: 'ON_DEMAND',
      ...args.systemNodeGroup,
      labels: { [NODE_ROLE_LABEL]: 'system', [SPOT_NODE_LABEL.key]: ON_DEMAND_LABEL_VALUE },
      taints: [CRITICAL_ADDONS_TAINT],
    });
    for (const [zoneName, group] of system) this.nodeGroups[zoneName] = group;
    for (const g of args.nodeGroups) {
      const spot = g.capacity === 'spot';
      const perZone = nodeGroup(g.name, {
        ...g,
        capacity: spot ? 'SPOT' : 'ON_DEMAND',
        labels: { [NODE_ROLE_LABEL]: 'workload', [SPOT_NODE_LABEL.key]: spot ? SPOT_NODE_LABEL.value : ON_DEMAND_LABEL_VALUE },
        taints: spot ? [SPOT_NODE_TAINT] : [],
      });
      for (const [zoneName, group] of perZone) this.nodeGroups[zoneName] = group;
    }
    const allGroups = Object.values(this.nodeGroups);

    // Add-ons with pods need nodes to become ACTIVE. CoreDNS and the EBS CSI controller tolerate
    // the system group's taint; metrics-server may land on an untainted on-demand group, so all
    // groups come first.
    const coredns = addon('coredns', {}, allGroups);
    const ebsCsi = addon('aws-ebs-csi-driver', { serviceAccountRoleArn: ebsRole.arn }, allGroups);
    const metricsServer = addon('metrics-server', {}, allGroups);

    const kubeconfig = pulumi.all([cluster.name, cluster.endpoint, cluster.certificateAuthority]).apply(([clusterName, endpoint, ca]) =>
      JSON.stringify(kubeconfigFor(clusterName, endpoint, ca.data!, args.region)));
    this.kubeconfig = pulumi.secret(kubeconfig);
    this.provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: this.kubeconfig, enableServerSideApply: true }, { parent: this, dependsOn: allGroups });

    const storageClass = new k8s.storage.v1.StorageClass(`${name}-gp3`, {
      metadata: { name: 'gp3', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
      provisioner: 'ebs.csi.aws.com',
      parameters: { type: 'gp3', encrypted: 'true', 'csi.storage.k8s.io/fstype': 'ext4' },
      volumeBindingMode: 'WaitForFirstConsumer',
      allowVolumeExpansion: true,
      reclaimPolicy: 'Delete',
    }, { parent: this, provider: this.provider, dependsOn: [ebsCsi] });
    this.storageClassName = storageClass.metadata.name;
    this.ready = [...allGroups, vpcCni, kubeProxy, coredns, ebsCsi, metricsServer, storageClass];

    if (args.clusterAutoscaler ?? true) {
      // Scaling calls only on this cluster's groups (EKS tags their auto scaling groups);
      // the Describe calls have no resource-level permissions in IAM, so they take '*'.
      const autoscalerRole = irsaRole('cluster-autoscaler', 'kube-system', 'cluster-autoscaler', JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: ['autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup'],
            Resource: '*',
            Condition: { StringEquals: { [`aws:ResourceTag/k8s.io/cluster-autoscaler/${args.clusterName}`]: 'owned' } },
          },
          {
            Effect: 'Allow',
            Action: [
              'autoscaling:DescribeAutoScalingGroups', 'autoscaling:DescribeAutoScalingInstances', 'autoscaling:DescribeLaunchConfigurations',
              'autoscaling:DescribeScalingActivities', 'autoscaling:DescribeTags', 'ec2:DescribeImages', 'ec2:DescribeInstanceTypes',
              'ec2:DescribeLaunchTemplateVersions', 'ec2:GetInstanceTypesFromInstanceRequirements', 'eks:DescribeNodegroup',
            ],
            Resource: '*',
          },
        ],
      }), true);
      const c = CLUSTER_AUTOSCALER.chart;
      const autoscaler = new k8s.helm.v3.Release(`${name}-cluster-autoscaler`, {
        name: 'cluster-autoscaler',
        chart: c.chart,
        version: c.version,
        repositoryOpts: { repo: c.repo },
        namespace: 'kube-system',
        values: {
          cloudProvider: 'aws',
          awsRegion: args.region,
          autoDiscovery: { clusterName: args.clusterName },
          image: { tag: release.clusterAutoscalerImageTag },
          rbac: { serviceAccount: { create: true, name: 'cluster-autoscaler', annotations: { 'eks.amazonaws.com/role-arn': autoscalerRole.arn } } },
          tolerations: [{ key: CRITICAL_ADDONS_TAINT.key, operator: 'Exists' }],
          nodeSelector: { [NODE_ROLE_LABEL]: 'system' },
          extraArgs: { 'balance-similar-node-groups': true, 'skip-nodes-with-system-pods': false, expander: 'least-waste' },
        },
        cleanupOnFail: true,
        timeout: 600,
      }, { parent: this, provider: this.provider, dependsOn: [coredns] });
      this.ready.push(autoscaler);
    }

    this.serviceAccountRole = (roleName, namespace, serviceAccount, policy) => irsaRole(roleName, namespace, serviceAccount, policy, true);

    this.registerOutputs({
      clusterName: this.clusterName,
      endpoint: this.endpoint,
      kubeconfig: this.kubeconfig,
      oidcProviderArn: this.oidcProviderArn,
      nodeSecurityGroupId: this.nodeSecurityGroupId,
      storageClassName: this.storageClassName,
    });
  }
}

/** The vpc-cni add-on's configuration: NetworkPolicy enforcement on (its network policy agent). */
export const VPC_CNI_CONFIGURATION = { enableNetworkPolicy: 'true' } as const;

/** `eu-west-1a` -> `a`; a position name (`z1`) stays as it is. */
function zoneSuffix(zone: string): string {
  return /^[a-z]{2}(-gov)?-[a-z]+-\d([a-z])$/.exec(zone)?.[2] ?? zone;
}

function taintEffect(effect: string): 'NO_SCHEDULE' | 'NO_EXECUTE' | 'PREFER_NO_SCHEDULE' {
  switch (effect) {
    case 'NoSchedule': return 'NO_SCHEDULE';
    case 'NoExecute': return 'NO_EXECUTE';
    case 'PreferNoSchedule': return 'PREFER_NO_SCHEDULE';
    default: throw new Error(`unknown taint effect '${effect}'`);
  }
}

/** A kubeconfig that authenticates with `aws eks get-token` (the AWS CLI must be on the PATH). */
export function kubeconfigFor(clusterName: string, endpoint: string, caData: string, region: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: clusterName, cluster: { server: endpoint, 'certificate-authority-data': caData } }],
    contexts: [{ name: clusterName, context: { cluster: clusterName, user: clusterName } }],
    'current-context': clusterName,
    users: [{
      name: clusterName,
      user: {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: 'aws',
          args: ['eks', 'get-token', '--cluster-name', clusterName, '--region', region, '--output', 'json'],
          interactiveMode: 'Never',
        },
      },
    }],
  };
}
