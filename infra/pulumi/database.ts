import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { RDS_POSTGRES_VERSION } from './versions';

/** Arguments of a managed (RDS) database. */
export interface RdsDatabaseArgs {
  /** The VPC the database lives in. */
  vpcId: pulumi.Input<string>;
  /** Private subnets in at least two zones (Multi-AZ needs them). */
  privateSubnetIds: pulumi.Input<string>[];
  /** The only security group admitted on the PostgreSQL port: the cluster's node security group. */
  clientSecurityGroupId: pulumi.Input<string>;
  /**
   * The instance class.
   * @default 'db.m6g.large'
   */
  instanceClass?: string;
  /**
   * Storage in GiB (gp3, encrypted); grows automatically up to 4x.
   * @default 50
   */
  allocatedStorageGiB?: number;
  /**
   * A standby in another zone with automatic failover.
   * @default true
   */
  multiAz?: boolean;
  /**
   * Refuse to delete the database, and take a final snapshot when it is deleted anyway.
   * Production keeps this on; dev/staging may turn it off to tear down cleanly.
   * @default true
   */
  protect?: boolean;
  /**
   * Days of automated backups.
   * @default 7
   */
  backupRetentionDays?: number;
  /**
   * The PostgreSQL engine's MAJOR version (`17`). Minor versions are RDS's (automatic minor
   * upgrades are on): a full version here would make the next `pulumi up` attempt a downgrade.
   * @default RDS_POSTGRES_VERSION from versions.ts
   */
  engineVersion?: string;
  /**
   * Tags added to every AWS resource.
   * @default {}
   */
  tags?: Record<string, string>;
}

/** Arguments of {@link Database}. */
export interface DatabaseArgs {
  /**
   * `in-cluster`: the app chart's PostgreSQL StatefulSet (dev); this component then only
   * generates the password and the connection URL. `rds`: a managed RDS PostgreSQL.
   */
  mode: 'in-cluster' | 'rds';
  /**
   * The database name.
   * @default 'promptmesh'
   */
  databaseName?: string;
  /**
   * The user the services connect as.
   * @default 'promptmesh'
   */
  username?: string;
  /**
   * In `in-cluster` mode: the host of the chart's PostgreSQL Service (`<service>.<namespace>.svc`).
   * Required then.
   */
  inClusterHost?: string;
  /** In `rds` mode: the managed database's settings. Required then. */
  rds?: RdsDatabaseArgs;
}

/**
 * The templates service's PostgreSQL: a managed, Multi-AZ, encrypted RDS instance in the private
 * subnets that admits only the cluster's nodes (production), or the app chart's in-cluster
 * StatefulSet (dev). Either way the password is generated here and only ever leaves as a secret,
 * together with the `DATABASE_URL` the services read.
 */
export class Database extends pulumi.ComponentResource {
  /** The generated password (secret). */
  public readonly password: pulumi.Output<string>;
  /** `postgres://user:password@host:5432/db` (secret). */
  public readonly databaseUrl: pulumi.Output<string>;
  /** The same connection for postgres_exporter, whose driver wants `sslmode=require` (secret). */
  public readonly exporterDataSource: pulumi.Output<string>;
  /** The host the services connect to. */
  public readonly host: pulumi.Output<string>;
  /** The user. */
  public readonly username: string;
  /** The database name. */
  public readonly databaseName: string;
  /** The RDS instance, in `rds` mode. */
  public readonly instance?: aws.rds.Instance;

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:aws:Database', name, {}, opts);
    if (args.mode !== 'in-cluster' && args.mode !== 'rds') {
      throw new Error(`Database ${name}: 'mode' must be 'in-cluster' or 'rds' (got ${JSON.stringify(args.mode)})`);
    }
    const identifier = /^[a-z][a-z0-9_]{0,62}$/;
    this.databaseName = args.databaseName ?? 'promptmesh';
    this.username = args.username ?? 'promptmesh';
    if (!identifier.test(this.databaseName)) throw new Error(`Database ${name}: 'databaseName' must be a lowercase identifier (got ${this.databaseName})`);
    if (!identifier.test(this.username) || ['postgres', 'admin', 'rdsadmin'].includes(this.username)) {
      throw new Error(`Database ${name}: 'username' must be a lowercase identifier other than postgres, admin or rdsadmin (got ${this.username})`);
    }
    const child = { parent: this };

    // Letters and digits only: the password goes into a URL unescaped and RDS rejects / @ " and space.
    const password = new random.RandomPassword(`${name}-password`, { length: 40, special: false }, child);
    this.password = pulumi.secret(password.result);

    if (args.mode === 'in-cluster') {
      if (!args.inClusterHost) throw new Error(`Database ${name}: 'inClusterHost' is required in in-cluster mode`);
      this.host = pulumi.output(args.inClusterHost);
      this.databaseUrl = pulumi.secret(pulumi.interpolate`postgres://${this.username}:${this.password}@${args.inClusterHost}:5432/${this.databaseName}`);
      this.exporterDataSource = pulumi.secret(pulumi.interpolate`postgresql://${this.username}:${this.password}@${args.inClusterHost}:5432/${this.databaseName}?sslmode=disable`);
    } else {
      const rds = args.rds;
      if (!rds) throw new Error(`Database ${name}: 'rds' is required in rds mode`);
      if (!Array.isArray(rds.privateSubnetIds) || rds.privateSubnetIds.length < 2) {
        throw new Error(`Database ${name}: 'rds.privateSubnetIds' must list subnets in at least 2 zones`);
      }
      const storage = rds.allocatedStorageGiB ?? 50;
      if (!Number.isInteger(storage) || storage < 20 || storage > 16384) throw new Error(`Database ${name}: 'rds.allocatedStorageGiB' must be an integer from 20 to 16384 (got ${storage})`);
      const backups = rds.backupRetentionDays ?? 7;
      if (!Number.isInteger(backups) || backups < 1 || backups > 35) throw new Error(`Database ${name}: 'rds.backupRetentionDays' must be an integer from 1 to 35 (got ${backups})`);
      const engineVersion = rds.engineVersion ?? RDS_POSTGRES_VERSION;
      if (!/^\d{2}$/.test(engineVersion)) throw new Error(`Database ${name}: 'rds.engineVersion' must be a major version like 17, not a full version (RDS upgrades minors itself; got ${engineVersion})`);
      const protect = rds.protect ?? true;
      const tags = rds.tags ?? {};

      const subnets = new aws.rds.SubnetGroup(`${name}-subnets`, { subnetIds: [...rds.privateSubnetIds], tags }, child);
      const sg = new aws.ec2.SecurityGroup(`${name}-sg`, {
        vpcId: rds.vpcId,
        description: 'PostgreSQL: only from the EKS nodes',
        tags,
      }, child);
      new aws.vpc.SecurityGroupIngressRule(`${name}-from-nodes`, {
        securityGroupId: sg.id,
        referencedSecurityGroupId: rds.clientSecurityGroupId,
        ipProtocol: 'tcp',
        fromPort: 5432,
        toPort: 5432,
        description: 'PostgreSQL from the cluster nodes',
      }, child);
      // TLS is required by the parameter group below.
      const params = new aws.rds.ParameterGroup(`${name}-params`, {
        family: `postgres${engineVersion}`,
        parameters: [{ name: 'rds.force_ssl', value: '1' }, { name: 'log_min_duration_statement', value: '1000' }],
        tags,
      }, child);
      this.instance = new aws.rds.Instance(`${name}-postgres`, {
        engine: 'postgres',
        engineVersion,
        instanceClass: rds.instanceClass ?? 'db.m6g.large',
        allocatedStorage: storage,
        maxAllocatedStorage: storage * 4,
        storageType: 'gp3',
        storageEncrypted: true,
        multiAz: rds.multiAz ?? true,
        dbName: this.databaseName,
        username: this.username,
        password: this.password,
        dbSubnetGroupName: subnets.name,
        vpcSecurityGroupIds: [sg.id],
        parameterGroupName: params.name,
        publiclyAccessible: false,
        backupRetentionPeriod: backups,
        copyTagsToSnapshot: true,
        deletionProtection: protect,
        skipFinalSnapshot: !protect,
        ...(protect ? { finalSnapshotIdentifier: `${name}-final` } : {}),
        autoMinorVersionUpgrade: true,
        performanceInsightsEnabled: true,
        enabledCloudwatchLogsExports: ['postgresql'],
        applyImmediately: false,
        tags,
      }, child);
      this.host = this.instance.address;
      // no-verify: encrypted, but the image does not ship the RDS CA bundle (see docs/pulumi.md).
      this.databaseUrl = pulumi.secret(pulumi.interpolate`postgres://${this.username}:${this.password}@${this.instance.address}:${this.instance.port}/${this.databaseName}?sslmode=no-verify`);
      this.exporterDataSource = pulumi.secret(pulumi.interpolate`postgresql://${this.username}:${this.password}@${this.instance.address}:${this.instance.port}/${this.databaseName}?sslmode=require`);
    }

    this.registerOutputs({ host: this.host, databaseUrl: this.databaseUrl });
  }
}
