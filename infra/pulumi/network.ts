import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';

/** Arguments of {@link Network}. */
export interface NetworkArgs {
  /**
   * The name of the EKS cluster that will run in this network. Subnets are tagged
   * `kubernetes.io/cluster/<clusterName>: shared` so the AWS load balancer integration finds them.
   */
  clusterName: string;
  /**
   * The availability zones to spread over, one public and one private subnet in each. At least
   * three, so a zone outage leaves a quorum of nodes and database replicas.
   */
  availabilityZones: string[];
  /**
   * The VPC's IPv4 range. Each zone gets a /20 private and a /22 public subnet carved from it,
   * so it must be at least a /16.
   * @default '10.40.0.0/16'
   */
  cidrBlock?: string;
  /**
   * One NAT gateway per zone (`perZone`, what production wants: a zone outage does not cut the
   * other zones off the internet) or one shared NAT gateway (`single`, cheaper, for dev).
   * @default 'perZone'
   */
  natGateways?: 'perZone' | 'single';
  /**
   * VPC endpoints for ECR (API and registry), STS (IRSA token exchange) and S3 (image layers),
   * so image pulls and IAM calls stay inside the VPC instead of crossing NAT.
   * @default true
   */
  vpcEndpoints?: boolean;
  /**
   * Tags added to every resource.
   * @default {}
   */
  tags?: Record<string, string>;
}

/**
 * A VPC over several availability zones: public subnets (load balancers, NAT gateways) and
 * private subnets (nodes, databases), each tagged for the Kubernetes load balancer integration,
 * an internet gateway, NAT gateways (one per zone or one in all) and the route tables.
 */
export class Network extends pulumi.ComponentResource {
  /** The VPC's id. */
  public readonly vpcId: pulumi.Output<string>;
  /** The public subnets, one per zone, in the order of `availabilityZones`. */
  public readonly publicSubnetIds: pulumi.Output<string>[];
  /** The private subnets, one per zone, in the order of `availabilityZones`. */
  public readonly privateSubnetIds: pulumi.Output<string>[];
  /** The VPC's IPv4 range. */
  public readonly cidrBlock: string;
  /** The NAT gateways created (1 or one per zone). */
  public readonly natGatewayCount: number;
  /** The VPC endpoints, by service (`ecr.api`, `ecr.dkr`, `sts`, `s3`). */
  public readonly endpoints: Record<string, aws.ec2.VpcEndpoint>;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:aws:Network', name, {}, opts);
    const zones = args.availabilityZones;
    if (!Array.isArray(zones) || zones.length < 3) {
      throw new Error(`Network ${name}: 'availabilityZones' must list at least 3 zones (got ${JSON.stringify(zones)})`);
    }
    if (new Set(zones).size !== zones.length) {
      throw new Error(`Network ${name}: 'availabilityZones' must not repeat a zone (got ${zones.join(', ')})`);
    }
    if (zones.length > 6) {
      throw new Error(`Network ${name}: 'availabilityZones' may list at most 6 zones (got ${zones.length})`);
    }
    const cidrBlock = args.cidrBlock ?? '10.40.0.0/16';
    const cidr = /^(\d{1,3})\.(\d{1,3})\.0\.0\/(\d{1,2})$/.exec(cidrBlock);
    if (!cidr || Number(cidr[3]) > 16 || Number(cidr[1]) > 255 || Number(cidr[2]) > 255) {
      throw new Error(`Network ${name}: 'cidrBlock' must be an IPv4 /16 (or larger) range like 10.40.0.0/16 (got ${cidrBlock})`);
    }
    const natMode = args.natGateways ?? 'perZone';
    if (natMode !== 'perZone' && natMode !== 'single') {
      throw new Error(`Network ${name}: 'natGateways' must be 'perZone' or 'single' (got ${String(natMode)})`);
    }
    this.cidrBlock = cidrBlock;
    const prefix = `${cidr[1]}.${cidr[2]}`;
    const tags = { ...(args.tags ?? {}), [`kubernetes.io/cluster/${args.clusterName}`]: 'shared' };
    const child = { parent: this };

    const vpc = new aws.ec2.Vpc(`${name}-vpc`, {
      cidrBlock,
      enableDnsHostnames: true,
      enableDnsSupport: true,
      tags: { ...tags, Name: `${name}-vpc` },
    }, child);
    this.vpcId = vpc.id;

    const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: { ...tags, Name: `${name}-igw` } }, child);
    const publicRoutes = new aws.ec2.RouteTable(`${name}-public`, {
      vpcId: vpc.id,
      routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }],
      tags: { ...tags, Name: `${name}-public` },
    }, child);

    const publicSubnets = zones.map((zone, i) => {
      const subnet = new aws.ec2.Subnet(`${name}-public-${zone}`, {
        vpcId: vpc.id,
        availabilityZone: zone,
        // 10.x.192.0/22, 10.x.196.0/22, ...: above the private /20s.
        cidrBlock: `${prefix}.${192 + i * 4}.0/22`,
        // Nodes never live here; load balancers and NAT gateways get their addresses explicitly.
        mapPublicIpOnLaunch: false,
        tags: { ...tags, Name: `${name}-public-${zone}`, 'kubernetes.io/role/elb': '1' },
      }, child);
      new aws.ec2.RouteTableAssociation(`${name}-public-${zone}`, { subnetId: subnet.id, routeTableId: publicRoutes.id }, child);
      return subnet;
    });
    this.publicSubnetIds = publicSubnets.map((s) => s.id);

    const natZones = natMode === 'perZone' ? zones : [zones[0]];
    const nats = natZones.map((zone, i) => {
      const eip = new aws.ec2.Eip(`${name}-nat-${zone}`, { domain: 'vpc', tags: { ...tags, Name: `${name}-nat-${zone}` } }, child);
      return new aws.ec2.NatGateway(`${name}-nat-${zone}`, {
        allocationId: eip.id,
        subnetId: publicSubnets[i].id,
        connectivityType: 'public',
        tags: { ...tags, Name: `${name}-nat-${zone}` },
      }, { parent: this, dependsOn: [igw] });
    });
    this.natGatewayCount = nats.length;

    const privateTables: aws.ec2.RouteTable[] = [];
    const privateSubnets = zones.map((zone, i) => {
      const subnet = new aws.ec2.Subnet(`${name}-private-${zone}`, {
        vpcId: vpc.id,
        availabilityZone: zone,
        cidrBlock: `${prefix}.${i * 16}.0/20`,
        mapPublicIpOnLaunch: false,
        tags: { ...tags, Name: `${name}-private-${zone}`, 'kubernetes.io/role/internal-elb': '1' },
      }, child);
      const nat = nats[natMode === 'perZone' ? i : 0];
      const routes = new aws.ec2.RouteTable(`${name}-private-${zone}`, {
        vpcId: vpc.id,
        routes: [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }],
        tags: { ...tags, Name: `${name}-private-${zone}` },
      }, child);
      new aws.ec2.RouteTableAssociation(`${name}-private-${zone}`, { subnetId: subnet.id, routeTableId: routes.id }, child);
      privateTables.push(routes);
      return subnet;
    });
    this.privateSubnetIds = privateSubnets.map((s) => s.id);

    this.endpoints = {};
    if (args.vpcEndpoints ?? true) {
      const region = aws.getRegionOutput({}, child).region;
      // Interface endpoints answer on 443 to the VPC only; private DNS makes the public service
      // names resolve to them, so nothing in the cluster needs to know.
      const endpointSg = new aws.ec2.SecurityGroup(`${name}-endpoints`, {
        vpcId: vpc.id,
        description: 'VPC endpoints: HTTPS from inside the VPC',
        ingress: [{ protocol: 'tcp', fromPort: 443, toPort: 443, cidrBlocks: [cidrBlock], description: 'HTTPS from the VPC' }],
        tags: { ...tags, Name: `${name}-endpoints` },
      }, child);
      for (const service of ['ecr.api', 'ecr.dkr', 'sts']) {
        this.endpoints[service] = new aws.ec2.VpcEndpoint(`${name}-${service.replace('.', '-')}`, {
          vpcId: vpc.id,
          serviceName: pulumi.interpolate`com.amazonaws.${region}.${service}`,
          vpcEndpointType: 'Interface',
          privateDnsEnabled: true,
          subnetIds: this.privateSubnetIds,
          securityGroupIds: [endpointSg.id],
          tags: { ...tags, Name: `${name}-${service}` },
        }, child);
      }
      // ECR keeps image layers in S3: a gateway endpoint on the private route tables (free).
      this.endpoints.s3 = new aws.ec2.VpcEndpoint(`${name}-s3`, {
        vpcId: vpc.id,
        serviceName: pulumi.interpolate`com.amazonaws.${region}.s3`,
        vpcEndpointType: 'Gateway',
        routeTableIds: privateTables.map((t) => t.id),
        tags: { ...tags, Name: `${name}-s3` },
      }, child);
    }

    this.registerOutputs({
      vpcId: this.vpcId,
      publicSubnetIds: this.publicSubnetIds,
      privateSubnetIds: this.privateSubnetIds,
    });
  }
}
