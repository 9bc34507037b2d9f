/**
 * `Postgres`: the system of record for prompt templates.
 *
 * `in-cluster`: a StatefulSet of the official image with a persistent volume, the password
 * from a Secret, `pg_isready` probes, a postgres_exporter sidecar scraped through a
 * ServiceMonitor, and a PDB. `external`: nothing runs in the cluster; the services read
 * `DATABASE_URL` from a Secret (the Pulumi program creates a managed database and that Secret).
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import type { ServiceMonitor } from '../../imports/monitoring.coreos.com';
import { ENV } from '../../contracts';
import {
  DEFAULT_PROMETHEUS_SELECTOR_LABELS,
  checkName,
  checkQuantity,
  checkSecretRef,
  checksum,
  containerResources,
  pinnedImage,
  resolveNamespace,
  restrictedContainerSecurityContext,
  restrictedPodSecurityContext,
  serviceHost,
  serviceMonitor,
  spreadConstraints,
  type DataStoreProps,
  type SecretKeyReference,
} from './data-store';
import { IMAGES } from '../versions';

/** The official PostgreSQL image, pinned to an exact release. */
export const DEFAULT_POSTGRES_IMAGE: string = IMAGES.postgres.image;
/** The Prometheus exporter for PostgreSQL (prometheus-community/postgres_exporter), pinned. */
export const DEFAULT_POSTGRES_EXPORTER_IMAGE: string = IMAGES.postgresExporter.image;
/** The port clients use. */
export const POSTGRES_PORT = 5432;
/** The port the exporter serves `/metrics` on. */
export const POSTGRES_METRICS_PORT = 9187;
/**
 * The variable `clientEnv()` carries the password in (in-cluster mode without a URL Secret), so
 * `DATABASE_URL` can be composed with Kubernetes' `$(VAR)` expansion.
 */
export const POSTGRES_PASSWORD_ENV = 'PROMPTMESH_POSTGRES_PASSWORD';

/** uid/gid of the `postgres` user in the official Debian-based image. */
const POSTGRES_UID = 999;
const POSTGRES_GID = 999;
const DATA_MOUNT = '/var/lib/postgresql/data';
/** A subdirectory: the volume's root may hold lost+found, which initdb refuses. */
const PGDATA = `${DATA_MOUNT}/pgdata`;

/** Where the database runs. */
export type PostgresMode = 'in-cluster' | 'external';
const POSTGRES_MODES: readonly PostgresMode[] = ['in-cluster', 'external'];

/** Server settings applied unless `parameters` overrides them. */
export const DEFAULT_POSTGRES_PARAMETERS: Readonly<Record<string, string>> = {
  max_connections: '200',
  shared_buffers: '128MB',
  password_encryption: 'scram-sha-256',
  log_min_duration_statement: '1000',
};

/** Props of {@link Postgres}. */
export interface PostgresProps extends DataStoreProps {
  /**
   * `in-cluster`: a StatefulSet in this namespace. `external`: no workload; `DATABASE_URL` comes
   * from `databaseUrlSecret` (a managed database, e.g. RDS made by the Pulumi program).
   * @default 'in-cluster'
   */
  readonly mode?: PostgresMode;
  /**
   * The Secret key holding `DATABASE_URL` (`postgres://user:password@host:5432/db`). Required
   * in spirit for `external` mode (it is the only way the services learn the URL). In
   * `in-cluster` mode, when given, services read the URL from it instead of having it composed
   * from `passwordSecret`.
   * @default external: { name: '<name>-url', key: 'DATABASE_URL' }; in-cluster: none (composed)
   */
  readonly databaseUrlSecret?: SecretKeyReference;
  /**
   * The database the services use (created at first start).
   * @default 'promptmesh'
   */
  readonly database?: string;
  /**
   * The role that owns `database` (created at first start, with the password from `passwordSecret`).
   * @default 'promptmesh'
   */
  readonly user?: string;
  /**
   * The PostgreSQL image, with an exact tag (an official Debian-based `postgres` image: the
   * security context uses its uid 999).
   * @default DEFAULT_POSTGRES_IMAGE
   */
  readonly image?: string;
  /**
   * Server settings passed as `-c name=value`, merged over DEFAULT_POSTGRES_PARAMETERS.
   * @default DEFAULT_POSTGRES_PARAMETERS
   */
  readonly parameters?: Record<string, string>;
}

/**
 * PostgreSQL in the cluster (StatefulSet) or outside it (a Secret with the URL). Other
 * constructs read `clientEnv()`, and in-cluster also `host`, `port`, `selectorLabels` and
 * `metricsPort`.
 */
export class Postgres extends Construct {
  /** The mode the construct was built in. */
  public readonly mode: PostgresMode;
  /** The client port (in-cluster). */
  public readonly port = POSTGRES_PORT;
  /** The exporter's metrics port (in-cluster; named `metrics`). */
  public readonly metricsPort = POSTGRES_METRICS_PORT;
  /** The database name. */
  public readonly database: string;
  /** The owner role. */
  public readonly user: string;
  /** DNS name of the client Service; undefined in external mode. */
  public readonly host?: string;
  /** Name of the client Service; undefined in external mode. */
  public readonly serviceName?: string;
  /** The Secret key with the password (in-cluster); undefined in external mode. */
  public readonly passwordSecret?: SecretKeyReference;
  /** The Secret key with `DATABASE_URL`, when the URL comes from a Secret (always in external mode). */
  public readonly databaseUrlSecret?: SecretKeyReference;
  /** Labels selecting the PostgreSQL pod (for NetworkPolicies); undefined in external mode. */
  public readonly selectorLabels?: Readonly<Record<string, string>>;
  /** The StatefulSet (in-cluster). */
  public readonly statefulSet?: k8s.KubeStatefulSet;
  /** The ServiceMonitor for the exporter (in-cluster). */
  public readonly serviceMonitor?: ServiceMonitor;

  constructor(scope: Construct, id: string, props: PostgresProps = {}) {
    super(scope, id);
    const what = 'Postgres';
    const mode = props.mode ?? 'in-cluster';
    if (!POSTGRES_MODES.includes(mode)) {
      throw new Error(`${what}: 'mode' must be one of ${POSTGRES_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
    }
    const name = props.name ?? 'postgres';
    checkName(what, 'name', name, 40);
    if (props.namespace !== undefined) checkName(what, 'namespace', props.namespace);
    const database = props.database ?? 'promptmesh';
    const user = props.user ?? 'promptmesh';
    for (const [prop, value] of [['database', database], ['user', user]] as const) {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
        throw new Error(`${what}: '${prop}' must be a lowercase SQL identifier (a-z, 0-9, _; at most 63 characters, not starting with a digit), got ${JSON.stringify(value)}`);
      }
    }
    if (user === 'postgres') {
      throw new Error(`${what}: 'user' must not be 'postgres' (the services get their own role), got "postgres"`);
    }
    this.mode = mode;
    this.database = database;
    this.user = user;

    if (mode === 'external') {
      const urlSecret = props.databaseUrlSecret ?? { name: `${name}-url`, key: ENV.databaseUrl };
      checkSecretRef(what, 'databaseUrlSecret', urlSecret);
      for (const prop of ['passwordSecret', 'image', 'imageDigest', 'storageSize', 'storageClass', 'resources', 'parameters'] as const) {
        if (props[prop] !== undefined) {
          throw new Error(`${what}: '${prop}' applies only to mode 'in-cluster'; with mode 'external' nothing runs in the cluster`);
        }
      }
      this.databaseUrlSecret = urlSecret;
      return;
    }

    const image = pinnedImage(what, 'image', props.image ?? DEFAULT_POSTGRES_IMAGE, props.imageDigest);
    const exporterImage = pinnedImage(what, 'exporterImage', props.exporterImage ?? DEFAULT_POSTGRES_EXPORTER_IMAGE, props.exporterImageDigest);
    const passwordSecret = props.passwordSecret ?? { name: `${name}-auth`, key: 'password' };
    checkSecretRef(what, 'passwordSecret', passwordSecret);
    if (props.databaseUrlSecret) checkSecretRef(what, 'databaseUrlSecret', props.databaseUrlSecret);
    const storageSize = props.storageSize ?? '20Gi';
    checkQuantity(what, 'storageSize', storageSize);
    if (props.storageClass !== undefined) checkName(what, 'storageClass', props.storageClass, 253);
    const resources = containerResources(what, 'resources', props.resources, {
      requests: { cpu: '250m', memory: '1Gi' },
      limits: { cpu: '2', memory: '1Gi' },
    });
    const exporterResources = containerResources(what, 'exporterResources', props.exporterResources, {
      requests: { cpu: '10m', memory: '32Mi' },
      limits: { cpu: '100m', memory: '64Mi' },
    });
    const parameters = { ...DEFAULT_POSTGRES_PARAMETERS, ...(props.parameters ?? {}) };
    for (const [key, value] of Object.entries(parameters)) {
      if (!/^[a-z_][a-z0-9_.]*$/.test(key)) {
        throw new Error(`${what}: 'parameters' keys must be PostgreSQL setting names (a-z, 0-9, _ and .), got ${JSON.stringify(key)}`);
      }
      if (typeof value !== 'string' || !/^[A-Za-z0-9_.:,+\-/]+$/.test(value)) {
        throw new Error(`${what}: 'parameters.${key}' must be a plain value (letters, digits and _ . : , + - /), got ${JSON.stringify(value)}`);
      }
    }
    const smLabels = props.serviceMonitorLabels ?? DEFAULT_PROMETHEUS_SELECTOR_LABELS;

    const namespace = resolveNamespace(this, props.namespace);
    const headless = `${name}-headless`;
    const selector = { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/instance': name };
    const labels = { ...selector, 'app.kubernetes.io/component': 'database', 'app.kubernetes.io/part-of': 'promptmesh' };
    this.serviceName = name;
    this.host = serviceHost(name, namespace);
    this.passwordSecret = passwordSecret;
    this.databaseUrlSecret = props.databaseUrlSecret;
    this.selectorLabels = selector;

    const passwordEnv = (envName: string): k8s.EnvVar => ({
      name: envName,
      valueFrom: { secretKeyRef: { name: passwordSecret.name, key: passwordSecret.key, optional: false } },
    });
    const isReady = (overrides: Partial<k8s.Probe>): k8s.Probe => ({
      exec: { command: ['pg_isready', '-h', '127.0.0.1', '-p', String(POSTGRES_PORT), '-U', user, '-d', database] },
      timeoutSeconds: 5,
      periodSeconds: 10,
      ...overrides,
    });
    const args = Object.entries(parameters).flatMap(([k, v]) => ['-c', `${k}=${v}`]);

    new k8s.KubeServiceAccount(this, 'service-account', {
      metadata: { name, namespace, labels },
      automountServiceAccountToken: false,
    });

    this.statefulSet = new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: { name, namespace, labels },
      spec: {
        serviceName: headless,
        replicas: 1,
        podManagementPolicy: 'OrderedReady',
        updateStrategy: { type: 'RollingUpdate' },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        selector: { matchLabels: { ...selector } },
        template: {
          metadata: {
            labels: { ...labels, 'sidecar.istio.io/inject': props.istioSidecar ? 'true' : 'false' },
            annotations: { 'promptmesh.io/config-checksum': checksum(args.join(' ')) },
          },
          spec: {
            serviceAccountName: name,
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            // Enough for a fast shutdown (checkpoint) before the kubelet kills it.
            terminationGracePeriodSeconds: 60,
            // fsGroup 999 makes the volume writable for uid 999, the image's postgres user.
            securityContext: restrictedPodSecurityContext(POSTGRES_UID, POSTGRES_GID),
            topologySpreadConstraints: spreadConstraints(selector),
            containers: [
              {
                name: 'postgres',
                image,
                imagePullPolicy: 'IfNotPresent',
                args,
                env: [
                  { name: 'POSTGRES_USER', value: user },
                  { name: 'POSTGRES_DB', value: database },
                  passwordEnv('POSTGRES_PASSWORD'),
                  { name: 'PGDATA', value: PGDATA },
                ],
                ports: [{ name: 'postgres', containerPort: POSTGRES_PORT, protocol: 'TCP' }],
                resources: resources.spec,
                securityContext: restrictedContainerSecurityContext(),
                // initdb on first start, crash recovery after a hard stop: up to 10 minutes.
                startupProbe: isReady({ periodSeconds: 5, failureThreshold: 120 }),
                readinessProbe: isReady({ failureThreshold: 3 }),
                livenessProbe: isReady({ failureThreshold: 6 }),
                volumeMounts: [
                  { name: 'data', mountPath: DATA_MOUNT },
                  // The image writes its socket and lock here; the root filesystem is read-only.
                  { name: 'run', mountPath: '/var/run/postgresql' },
                  { name: 'tmp', mountPath: '/tmp' },
                  { name: 'shm', mountPath: '/dev/shm' },
                ],
              },
              {
                name: 'exporter',
                image: exporterImage,
                imagePullPolicy: 'IfNotPresent',
                env: [
                  { name: 'DATA_SOURCE_URI', value: `127.0.0.1:${POSTGRES_PORT}/${database}?sslmode=disable` },
                  { name: 'DATA_SOURCE_USER', value: user },
                  passwordEnv('DATA_SOURCE_PASS'),
                ],
                args: [`--web.listen-address=:${POSTGRES_METRICS_PORT}`],
                ports: [{ name: 'metrics', containerPort: POSTGRES_METRICS_PORT, protocol: 'TCP' }],
                resources: exporterResources.spec,
                securityContext: restrictedContainerSecurityContext(),
                readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 10, timeoutSeconds: 5 },
                livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 6 },
              },
            ],
            volumes: [
              { name: 'run', emptyDir: { sizeLimit: k8s.Quantity.fromString('16Mi') } },
              { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('256Mi') } },
              { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString('256Mi') } },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: 'data', labels: { ...selector } },
            spec: {
              accessModes: ['ReadWriteOnce'],
              resources: { requests: { storage: k8s.Quantity.fromString(storageSize) } },
              ...(props.storageClass ? { storageClassName: props.storageClass } : {}),
            },
          },
        ],
      },
    });

    new k8s.KubeService(this, 'service', {
      metadata: { name, namespace, labels: { ...labels, 'promptmesh.io/endpoint': 'client' } },
      spec: {
        type: 'ClusterIP',
        selector: { ...selector },
        ports: [
          { name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres'), protocol: 'TCP' },
          { name: 'metrics', port: POSTGRES_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics'), protocol: 'TCP' },
        ],
      },
    });
    new k8s.KubeService(this, 'headless-service', {
      metadata: { name: headless, namespace, labels: { ...labels, 'promptmesh.io/endpoint': 'peers' } },
      spec: {
        clusterIp: 'None',
        selector: { ...selector },
        ports: [{ name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres'), protocol: 'TCP' }],
      },
    });

    new k8s.KubePodDisruptionBudget(this, 'pdb', {
      metadata: { name, namespace, labels },
      spec: {
        // A single instance: a drain may take it down (a short outage) rather than block forever.
        maxUnavailable: k8s.IntOrString.fromNumber(1),
        selector: { matchLabels: { ...selector } },
      },
    });

    this.serviceMonitor = serviceMonitor(this, 'service-monitor', {
      name,
      namespace,
      labels: { ...labels, ...smLabels },
      selector: { ...selector, 'promptmesh.io/endpoint': 'client' },
      endpoints: [{ port: 'metrics' }],
    });
  }

  /**
   * The environment variables a service container needs for `DATABASE_URL`: from
   * `databaseUrlSecret` by reference when there is one (always in external mode), else the
   * password by reference and `DATABASE_URL` composed from it with `$(VAR)` expansion.
   */
  public clientEnv(): k8s.EnvVar[] {
    if (this.databaseUrlSecret) {
      return [
        {
          name: ENV.databaseUrl,
          valueFrom: { secretKeyRef: { name: this.databaseUrlSecret.name, key: this.databaseUrlSecret.key, optional: false } },
        },
      ];
    }
    const secret = this.passwordSecret!;
    return [
      { name: POSTGRES_PASSWORD_ENV, valueFrom: { secretKeyRef: { name: secret.name, key: secret.key, optional: false } } },
      { name: ENV.databaseUrl, value: `postgres://${this.user}:$(${POSTGRES_PASSWORD_ENV})@${this.host}:${POSTGRES_PORT}/${this.database}` },
    ];
  }
}
