/**
 * `Redis`: the store behind sessions, the response cache, rate limits and template pub/sub.
 *
 * A StatefulSet of the official image with persistent volumes, password auth from a Secret,
 * a memory policy, a `redis_exporter` sidecar scraped through a ServiceMonitor, and a PDB.
 * `standalone` runs one pod (dev, small installs); `cluster` runs Redis Cluster (three masters,
 * one replica each by default) and a bootstrap Job that creates the cluster once.
 */
import { Duration } from 'cdk8s';
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
  quantityValue,
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

// A prop type the data-store constructs share, for library users (index.ts re-exports this file).
export type { DataStoreProps, SecretKeyReference, ServiceMonitorEndpoint } from './data-store';

/** The official Redis image, pinned to an exact release. */
export const DEFAULT_REDIS_IMAGE: string = IMAGES.redis.image;
/** The Prometheus exporter for Redis (oliver006/redis_exporter), pinned. */
export const DEFAULT_REDIS_EXPORTER_IMAGE: string = IMAGES.redisExporter.image;
/** The port clients use. */
export const REDIS_PORT = 6379;
/** Label naming a pod's shard in cluster mode (its StatefulSet: a master and its replica). */
export const REDIS_SHARD_LABEL = 'promptmesh.io/redis-shard';
/** The Redis Cluster bus port (client port + 10000). */
export const REDIS_CLUSTER_BUS_PORT = 16379;
/** The port the exporter serves `/metrics` on. */
export const REDIS_METRICS_PORT = 9121;
/**
 * The variable the `clientEnv()` list carries the password in, so `REDIS_URL` can be composed
 * with Kubernetes' `$(VAR)` expansion without the value ever being written into a manifest.
 */
export const REDIS_PASSWORD_ENV = 'PROMPTMESH_REDIS_PASSWORD';

/**
 * The largest share of the container's memory limit `maxmemory` may take. AOF is always on, so
 * Redis forks for every AOF rewrite and snapshot; copy-on-write can duplicate the whole data set
 * while the child runs (2 x 45%), and the remaining 10% holds the process, buffers and
 * fragmentation.
 */
export const REDIS_MAX_MEMORY_SHARE = 0.45;

/** uid/gid of the `redis` user in the official image. */
const REDIS_UID = 999;
const REDIS_GID = 1000;
const CONFIG_DIR = '/etc/redis';
const RUN_DIR = '/run/redis';
const DATA_DIR = '/data';

/** Deployment shape: one pod, or Redis Cluster. */
export type RedisMode = 'standalone' | 'cluster';
const REDIS_MODES: readonly RedisMode[] = ['standalone', 'cluster'];

/** What Redis evicts when it reaches `maxMemory` (redis.conf `maxmemory-policy`). */
export type RedisMaxMemoryPolicy =
  | 'allkeys-lru'
  | 'allkeys-lfu'
  | 'allkeys-random'
  | 'volatile-lru'
  | 'volatile-lfu'
  | 'volatile-random'
  | 'volatile-ttl'
  | 'noeviction';
const MAX_MEMORY_POLICIES: readonly RedisMaxMemoryPolicy[] = [
  'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl', 'noeviction',
];

/** Props of {@link Redis}. */
export interface RedisProps extends DataStoreProps {
  /**
   * `standalone`: one pod, `REDIS_URL` for the services. `cluster`: Redis Cluster with
   * `masters` shards, each a StatefulSet `<name>-<shard>` of two pods (a master and its replica,
   * in different zones), a bootstrap Job, and `REDIS_CLUSTER_NODES` for the services.
   * @default 'standalone'
   */
  readonly mode?: RedisMode;
  /**
   * Number of masters in `cluster` mode (each gets one replica). Ignored in `standalone` mode.
   * Changing it after the cluster exists needs a manual reshard (see docs/k8s-data.md).
   * @default 3
   */
  readonly masters?: number;
  /**
   * The Redis image, with an exact tag (an official `redis` image: the config and scripts
   * rely on its `redis-server`, `redis-cli` and `sh`).
   * @default DEFAULT_REDIS_IMAGE
   */
  readonly image?: string;
  /**
   * Memory Redis may use for data (redis.conf `maxmemory`, units `kb`, `mb` or `gb`). It must
   * stay at or below 45% of `resources.limits.memory` (REDIS_MAX_MEMORY_SHARE): with AOF on, every
   * AOF rewrite and snapshot forks, and in the worst case (writes touching every page while the
   * child runs) copy-on-write doubles the data set, all of it charged to the container's memory
   * limit; the last 10% is the process itself, client and replication buffers, fragmentation.
   * Above that, the kernel OOM-kills Redis in the middle of a rewrite.
   * @default '256mb'
   */
  readonly maxMemory?: string;
  /**
   * What Redis evicts at `maxMemory`. The services keep only caches, rate-limit counters and
   * bounded session histories in Redis, so evicting the least recently used key is safe.
   * @default 'allkeys-lru'
   */
  readonly maxMemoryPolicy?: RedisMaxMemoryPolicy;
  /**
   * Cluster mode: where each master's replica may run. `required`: never in its master's zone
   * (each shard's two pods have a required pod anti-affinity on `topology.kubernetes.io/zone`),
   * so losing a zone leaves every shard a copy; it needs nodes in at least two zones.
   * `preferred`: another zone when there is room, else the same (single-zone clusters).
   * @default 'required'
   */
  readonly replicaZone?: 'required' | 'preferred';
}

/**
 * Redis as a StatefulSet, standalone or Redis Cluster, with auth, persistence, a memory
 * policy, metrics and a PDB. Other constructs read `host`, `port`, `passwordSecret`,
 * `selectorLabels`, `metricsPort` and `clientEnv()` from it.
 */
export class Redis extends Construct {
  /** The mode the construct was built in. */
  public readonly mode: RedisMode;
  /** Name of the client Service (also the StatefulSet's base name). */
  public readonly serviceName: string;
  /** Name of the headless Service that gives each pod a stable DNS name. */
  public readonly headlessServiceName: string;
  /** DNS name of the client Service. */
  public readonly host: string;
  /** The client port. */
  public readonly port = REDIS_PORT;
  /** The exporter's metrics port (named `metrics` on the pods and the Service). */
  public readonly metricsPort = REDIS_METRICS_PORT;
  /** The cluster bus port (cluster mode; NetworkPolicies must allow it between Redis pods). */
  public readonly clusterBusPort = REDIS_CLUSTER_BUS_PORT;
  /** The Secret key holding the password (referenced, never created here). */
  public readonly passwordSecret: SecretKeyReference;
  /** Labels selecting the Redis pods (for NetworkPolicies). */
  public readonly selectorLabels: Readonly<Record<string, string>>;
  /** Labels selecting the bootstrap Job's pod (cluster mode; it talks to every Redis pod). */
  public readonly bootstrapSelectorLabels: Readonly<Record<string, string>>;
  /** `host:port` of every pod, in order (cluster mode: the seed list for `REDIS_CLUSTER_NODES`). */
  public readonly nodes: readonly string[];
  /** The StatefulSet (in cluster mode: the first shard's). */
  public readonly statefulSet: k8s.KubeStatefulSet;
  /** Every StatefulSet: one in standalone mode, one per shard (a master and its replica) in cluster mode. */
  public readonly statefulSets: readonly k8s.KubeStatefulSet[];
  /** The bootstrap Job (cluster mode only). */
  public readonly bootstrapJob?: k8s.KubeJob;
  /** The ServiceMonitor for the exporter. */
  public readonly serviceMonitor: ServiceMonitor;

  constructor(scope: Construct, id: string, props: RedisProps = {}) {
    super(scope, id);
    const what = 'Redis';
    const mode = props.mode ?? 'standalone';
    if (!REDIS_MODES.includes(mode)) {
      throw new Error(`${what}: 'mode' must be one of ${REDIS_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
    }
    const name = props.name ?? 'redis';
    // "-headless" and "-cluster-bootstrap-<hash>" are appended to the name.
    checkName(what, 'name', name, 30);
    if (props.namespace !== undefined) checkName(what, 'namespace', props.namespace);
    const masters = props.masters ?? 3;
    if (!Number.isInteger(masters) || masters < 3 || masters > 16) {
      throw new Error(`${what}: 'masters' must be an integer from 3 to 16 (Redis Cluster needs at least three masters), got ${JSON.stringify(masters)}`);
    }
    const image = pinnedImage(what, 'image', props.image ?? DEFAULT_REDIS_IMAGE, props.imageDigest);
    const exporterImage = pinnedImage(what, 'exporterImage', props.exporterImage ?? DEFAULT_REDIS_EXPORTER_IMAGE, props.exporterImageDigest);
    const passwordSecret = props.passwordSecret ?? { name: `${name}-auth`, key: 'password' };
    checkSecretRef(what, 'passwordSecret', passwordSecret);
    const policy = props.maxMemoryPolicy ?? 'allkeys-lru';
    if (!MAX_MEMORY_POLICIES.includes(policy)) {
      throw new Error(`${what}: 'maxMemoryPolicy' must be one of ${MAX_MEMORY_POLICIES.join(', ')}, got ${JSON.stringify(policy)}`);
    }
    const storageSize = props.storageSize ?? '8Gi';
    checkQuantity(what, 'storageSize', storageSize);
    if (props.storageClass !== undefined) checkName(what, 'storageClass', props.storageClass, 253);
    const redisResources = containerResources(what, 'resources', props.resources, {
      requests: { cpu: '100m', memory: '640Mi' },
      limits: { cpu: '1', memory: '640Mi' },
    });
    const exporterResources = containerResources(what, 'exporterResources', props.exporterResources, {
      requests: { cpu: '10m', memory: '32Mi' },
      limits: { cpu: '100m', memory: '64Mi' },
    });
    const maxMemory = props.maxMemory ?? '256mb';
    const maxMemoryBytes = redisMemoryBytes(maxMemory);
    if (maxMemoryBytes === undefined) {
      throw new Error(`${what}: 'maxMemory' must be a number with unit kb, mb or gb (e.g. 256mb), got ${JSON.stringify(maxMemory)}`);
    }
    const limitBytes = quantityValue(redisResources.resolved.limits.memory);
    if (maxMemoryBytes > REDIS_MAX_MEMORY_SHARE * limitBytes) {
      throw new Error(
        `${what}: 'maxMemory' (${maxMemory}) must be at most ${REDIS_MAX_MEMORY_SHARE * 100}% of 'resources.limits.memory' (${redisResources.resolved.limits.memory}): ` +
          `with AOF on, a rewrite's fork can double the data set under the same limit; at most ${Math.floor((REDIS_MAX_MEMORY_SHARE * limitBytes) / 2 ** 20)}mb here`,
      );
    }
    const smLabels = props.serviceMonitorLabels ?? DEFAULT_PROMETHEUS_SELECTOR_LABELS;

    const namespace = resolveNamespace(this, props.namespace);
    const headless = `${name}-headless`;
    // Cluster mode: one StatefulSet per shard, pod 0 its master and pod 1 the master's replica.
    const shards = mode === 'cluster' ? masters : 1;
    const podsPerSet = mode === 'cluster' ? 2 : 1;
    const replicaZone = props.replicaZone ?? 'required';
    if (!['required', 'preferred'].includes(replicaZone)) {
      throw new Error(`${what}: 'replicaZone' must be one of required, preferred, got ${JSON.stringify(replicaZone)}`);
    }
    const selector = { 'app.kubernetes.io/name': 'redis', 'app.kubernetes.io/instance': name };
    const labels = { ...selector, 'app.kubernetes.io/component': 'cache', 'app.kubernetes.io/part-of': 'promptmesh' };
    const sidecarLabel = { 'sidecar.istio.io/inject': props.istioSidecar ? 'true' : 'false' };

    this.mode = mode;
    this.serviceName = name;
    this.headlessServiceName = headless;
    this.host = serviceHost(name, namespace);
    this.passwordSecret = passwordSecret;
    this.selectorLabels = selector;
    this.bootstrapSelectorLabels = { 'app.kubernetes.io/name': 'redis-cluster-bootstrap', 'app.kubernetes.io/instance': name };
    const setName = (shard: number) => (mode === 'cluster' ? `${name}-${shard}` : name);
    const podHost = (shard: number, ordinal: number) => `${setName(shard)}-${ordinal}.${serviceHost(headless, namespace)}`;
    // Masters first, then their replicas in the same order: the pairing BOOTSTRAP_SCRIPT applies.
    this.nodes = Array.from({ length: podsPerSet }, (_, ordinal) =>
      Array.from({ length: shards }, (_, shard) => `${podHost(shard, ordinal)}:${REDIS_PORT}`),
    ).flat();

    const config = redisConfig({ mode, maxMemory, policy });
    const configMap = new k8s.KubeConfigMap(this, 'config', {
      metadata: { name: `${name}-config`, namespace, labels },
      data: { 'redis.conf': config, 'start.sh': START_SCRIPT, 'bootstrap-cluster.sh': BOOTSTRAP_SCRIPT },
    });

    new k8s.KubeServiceAccount(this, 'service-account', {
      metadata: { name, namespace, labels },
      automountServiceAccountToken: false,
    });

    const passwordEnv = (envName: string): k8s.EnvVar => ({
      name: envName,
      valueFrom: { secretKeyRef: { name: passwordSecret.name, key: passwordSecret.key, optional: false } },
    });
    const probe = (overrides: Partial<k8s.Probe>): k8s.Probe => ({
      exec: { command: ['sh', '-c', `redis-cli -h 127.0.0.1 -p ${REDIS_PORT} ping | grep -q PONG`] },
      timeoutSeconds: 5,
      periodSeconds: 10,
      ...overrides,
    });

    const redisEnv: k8s.EnvVar[] = [
      passwordEnv('REDIS_PASSWORD'),
      // redis-cli (probes) reads the password from here, so it never shows in a process list.
      passwordEnv('REDISCLI_AUTH'),
    ];
    if (mode === 'cluster') {
      redisEnv.push(
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'REDIS_ANNOUNCE_HOSTNAME', value: `$(POD_NAME).${serviceHost(headless, namespace)}` },
      );
    }

    const redisPorts: k8s.ContainerPort[] = [{ name: 'redis', containerPort: REDIS_PORT, protocol: 'TCP' }];
    if (mode === 'cluster') redisPorts.push({ name: 'cluster-bus', containerPort: REDIS_CLUSTER_BUS_PORT, protocol: 'TCP' });

    const storageSpec: k8s.PersistentVolumeClaimSpec = {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: k8s.Quantity.fromString(storageSize) } },
      ...(props.storageClass ? { storageClassName: props.storageClass } : {}),
    };

    const makeSet = (shard: number): k8s.KubeStatefulSet => {
      const shardLabel: Record<string, string> = mode === 'cluster' ? { [REDIS_SHARD_LABEL]: String(shard) } : {};
      // The two pods of a shard (a master and its replica) never share a zone: losing a zone
      // then costs each shard at most one of them, and the replica takes over. Their volumes
      // are zonal, so once placed they stay apart.
      const pairTerm: k8s.PodAffinityTerm = {
        labelSelector: { matchLabels: { ...selector, ...shardLabel } },
        topologyKey: 'topology.kubernetes.io/zone',
      };
      const affinity: k8s.Affinity | undefined = mode !== 'cluster'
        ? undefined
        : replicaZone === 'required'
          ? { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [pairTerm] } }
          : { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: pairTerm }] } };
      return new k8s.KubeStatefulSet(this, mode === 'cluster' ? `statefulset-${shard}` : 'statefulset', {
        metadata: { name: setName(shard), namespace, labels: { ...labels, ...shardLabel } },
        spec: {
          serviceName: headless,
          replicas: podsPerSet,
          // Cluster nodes must all be up before the bootstrap Job can join them.
          podManagementPolicy: mode === 'cluster' ? 'Parallel' : 'OrderedReady',
          updateStrategy: { type: 'RollingUpdate' },
          persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
          selector: { matchLabels: { ...selector, ...shardLabel } },
          template: {
            metadata: {
              labels: { ...labels, ...shardLabel, ...sidecarLabel },
              annotations: { 'promptmesh.io/config-checksum': checksum(config + START_SCRIPT) },
            },
            spec: {
              serviceAccountName: name,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              terminationGracePeriodSeconds: 30,
              securityContext: restrictedPodSecurityContext(REDIS_UID, REDIS_GID),
              topologySpreadConstraints: spreadConstraints(selector),
              ...(affinity ? { affinity } : {}),
              containers: [
                {
                  name: 'redis',
                  image,
                  imagePullPolicy: 'IfNotPresent',
                  command: ['sh', `${CONFIG_DIR}/start.sh`],
                  env: redisEnv,
                  ports: redisPorts,
                  resources: redisResources.spec,
                  securityContext: restrictedContainerSecurityContext(),
                  // Loading a large append-only file can take minutes: the startup probe covers it.
                  startupProbe: probe({ periodSeconds: 5, failureThreshold: 60 }),
                  readinessProbe: probe({ failureThreshold: 3 }),
                  livenessProbe: probe({ failureThreshold: 6 }),
                  volumeMounts: [
                    { name: 'data', mountPath: DATA_DIR },
                    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                    { name: 'run', mountPath: RUN_DIR },
                    { name: 'tmp', mountPath: '/tmp' },
                  ],
                },
                {
                  name: 'exporter',
                  image: exporterImage,
                  imagePullPolicy: 'IfNotPresent',
                  env: [
                    { name: 'REDIS_ADDR', value: `redis://127.0.0.1:${REDIS_PORT}` },
                    passwordEnv('REDIS_PASSWORD'),
                    { name: 'REDIS_EXPORTER_WEB_LISTEN_ADDRESS', value: `0.0.0.0:${REDIS_METRICS_PORT}` },
                  ],
                  ports: [{ name: 'metrics', containerPort: REDIS_METRICS_PORT, protocol: 'TCP' }],
                  resources: exporterResources.spec,
                  securityContext: restrictedContainerSecurityContext(),
                  readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 10, timeoutSeconds: 5 },
                  livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 6 },
                },
              ],
              volumes: [
                { name: 'config', configMap: { name: configMap.name, defaultMode: 0o444 } },
                // The runtime config holds the password: memory-backed, private to the pod.
                { name: 'run', emptyDir: { medium: 'Memory', sizeLimit: k8s.Quantity.fromString('1Mi') } },
                { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') } },
              ],
            },
          },
          volumeClaimTemplates: [{ metadata: { name: 'data', labels: { ...selector } }, spec: storageSpec }],
        },
      });
    };
    this.statefulSets = Array.from({ length: shards }, (_, shard) => makeSet(shard));
    this.statefulSet = this.statefulSets[0]!;

    const servicePorts: k8s.ServicePort[] = [
      { name: 'redis', port: REDIS_PORT, targetPort: k8s.IntOrString.fromString('redis'), protocol: 'TCP' },
      { name: 'metrics', port: REDIS_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics'), protocol: 'TCP' },
    ];
    new k8s.KubeService(this, 'service', {
      metadata: { name, namespace, labels: { ...labels, 'promptmesh.io/endpoint': 'client' } },
      spec: { type: 'ClusterIP', selector: { ...selector }, ports: servicePorts },
    });
    const headlessPorts: k8s.ServicePort[] = [{ name: 'redis', port: REDIS_PORT, targetPort: k8s.IntOrString.fromString('redis'), protocol: 'TCP' }];
    if (mode === 'cluster') {
      headlessPorts.push({ name: 'cluster-bus', port: REDIS_CLUSTER_BUS_PORT, targetPort: k8s.IntOrString.fromString('cluster-bus'), protocol: 'TCP' });
    }
    new k8s.KubeService(this, 'headless-service', {
      metadata: { name: headless, namespace, labels: { ...labels, 'promptmesh.io/endpoint': 'peers' } },
      spec: {
        clusterIp: 'None',
        // Cluster nodes must resolve each other before they are ready (they are not ready until joined).
        publishNotReadyAddresses: true,
        selector: { ...selector },
        ports: headlessPorts,
      },
    });

    new k8s.KubePodDisruptionBudget(this, 'pdb', {
      metadata: { name, namespace, labels },
      spec: {
        // One pod at a time: a drain proceeds; in cluster mode a replica takes over the master's slots.
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

    if (mode === 'cluster') {
      const bootstrapEnv: k8s.EnvVar[] = [
        passwordEnv('REDISCLI_AUTH'),
        { name: ENV.redisClusterNodes, value: this.nodes.join(' ') },
        { name: 'REDIS_CLUSTER_REPLICAS', value: '1' },
      ];
      // The Job's pod template is immutable: a new name when what it does changes.
      const jobName = `${name}-cluster-bootstrap-${checksum(BOOTSTRAP_SCRIPT + this.nodes.join(' ')).slice(0, 8)}`;
      this.bootstrapJob = new k8s.KubeJob(this, 'cluster-bootstrap', {
        metadata: { name: jobName, namespace, labels: { ...labels, ...this.bootstrapSelectorLabels } },
        spec: {
          backoffLimit: 20,
          activeDeadlineSeconds: 3600,
          ttlSecondsAfterFinished: Duration.days(1).toSeconds(),
          template: {
            metadata: { labels: { ...this.bootstrapSelectorLabels, 'sidecar.istio.io/inject': 'false' } },
            spec: {
              restartPolicy: 'OnFailure',
              serviceAccountName: name,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              securityContext: restrictedPodSecurityContext(REDIS_UID, REDIS_GID),
              containers: [
                {
                  name: 'bootstrap',
                  image,
                  imagePullPolicy: 'IfNotPresent',
                  command: ['sh', `${CONFIG_DIR}/bootstrap-cluster.sh`],
                  env: bootstrapEnv,
                  resources: {
                    requests: { cpu: k8s.Quantity.fromString('10m'), memory: k8s.Quantity.fromString('16Mi') },
                    limits: { cpu: k8s.Quantity.fromString('200m'), memory: k8s.Quantity.fromString('64Mi') },
                  },
                  securityContext: restrictedContainerSecurityContext(),
                  volumeMounts: [
                    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                    { name: 'tmp', mountPath: '/tmp' },
                  ],
                },
              ],
              volumes: [
                { name: 'config', configMap: { name: configMap.name, defaultMode: 0o444 } },
                { name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('16Mi') } },
              ],
            },
          },
        },
      });
    }
  }

  /**
   * The environment variables a service container needs to reach this Redis: the password
   * from the Secret (by reference), `REDIS_URL` composed from it with `$(VAR)` expansion, and in
   * cluster mode `REDIS_CLUSTER_NODES` (every pod's `host:port`). Put them in this order, before
   * any variable that refers to them.
   */
  public clientEnv(): k8s.EnvVar[] {
    const env: k8s.EnvVar[] = [
      {
        name: REDIS_PASSWORD_ENV,
        valueFrom: { secretKeyRef: { name: this.passwordSecret.name, key: this.passwordSecret.key, optional: false } },
      },
      { name: ENV.redisUrl, value: `redis://:$(${REDIS_PASSWORD_ENV})@${this.host}:${REDIS_PORT}` },
    ];
    if (this.mode === 'cluster') env.push({ name: ENV.redisClusterNodes, value: this.nodes.join(',') });
    return env;
  }
}

/** Bytes of a redis.conf memory value (`kb`, `mb`, `gb` are powers of 1024), or undefined. */
export function redisMemoryBytes(value: string): number | undefined {
  const m = /^([1-9][0-9]*)(kb|mb|gb)$/i.exec(value);
  if (!m) return undefined;
  return Number(m[1]) * { kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30 }[m[2]!.toLowerCase() as 'kb' | 'mb' | 'gb'];
}

/** The static part of redis.conf; `start.sh` adds the password and per-pod settings at start. */
export function redisConfig(options: { mode: RedisMode; maxMemory: string; policy: RedisMaxMemoryPolicy }): string {
  const lines = [
    '# Generated by promptmesh (infra/k8s/redis.ts). Auth and per-pod settings are appended at start.',
    'bind * -::*',
    `port ${REDIS_PORT}`,
    // Auth is always on (requirepass), so protected mode adds nothing but refusing pod-IP clients.
    'protected-mode no',
    `dir ${DATA_DIR}`,
    'appendonly yes',
    'appendfsync everysec',
    'save 3600 1 300 100 60 10000',
    `maxmemory ${options.maxMemory}`,
    `maxmemory-policy ${options.policy}`,
    'tcp-keepalive 60',
    'timeout 0',
    'loglevel notice',
    'logfile ""',
    // Nothing in the services needs these; they only help an attacker with the password.
    'rename-command DEBUG ""',
    'rename-command MODULE ""',
  ];
  if (options.mode === 'cluster') {
    lines.push(
      'cluster-enabled yes',
      `cluster-config-file ${DATA_DIR}/nodes.conf`,
      'cluster-node-timeout 5000',
      // Pods keep their DNS names across restarts, not their IPs: clients get names.
      'cluster-preferred-endpoint-type hostname',
      'cluster-require-full-coverage no',
      'cluster-allow-reads-when-down no',
    );
  }
  return lines.join('\n') + '\n';
}

/**
 * Starts Redis: in cluster mode first points `nodes.conf` at the peers' current addresses
 * (below), then writes the static config plus the password (and the pod's announced host name)
 * to a memory-backed file and execs redis-server on it. Extra arguments go to redis-server.
 *
 * Why the rewrite: the cluster bus finds its peers by the IPs stored in `nodes.conf`, never by
 * name. After every pod restarted at once (a node-pool replacement, a namespace-wide restart)
 * each stored IP is stale and no node can reach another: the cluster never re-forms. Every line
 * of `nodes.conf` also carries the host name that node announced (`ip:port@bus,hostname`), so
 * the script resolves each of those stable DNS names (the headless Service publishes them
 * before the pods are ready) and writes the new IP in place, as the widely used Redis charts do.
 * A name that does not resolve within REDIS_PEER_DNS_WAIT_SECONDS keeps its old IP: that node
 * corrects it itself when it starts, since a node that receives a ping from a known node id
 * updates that node's address.
 *
 * Settings (environment): REDIS_CONFIG_SOURCE, REDIS_RUN_DIR, REDIS_NODES_CONF (paths);
 * REDIS_PEER_RESOLVER, the command that resolves a name and prints `ip name` lines like
 * `getent hosts` (the default); REDIS_PEER_DNS_WAIT_SECONDS (default 120).
 */
export const START_SCRIPT = `#!/bin/sh
set -eu
: "\${REDIS_PASSWORD:?REDIS_PASSWORD must be set (from the Redis auth Secret)}"
case "$REDIS_PASSWORD" in
  *[!A-Za-z0-9._~-]*)
    echo "start.sh: the Redis password may hold only A-Z a-z 0-9 . _ ~ - (it is part of REDIS_URL); generate one with: openssl rand -hex 32" >&2
    exit 1 ;;
esac
source_conf="\${REDIS_CONFIG_SOURCE:-${CONFIG_DIR}/redis.conf}"
run_dir="\${REDIS_RUN_DIR:-${RUN_DIR}}"
nodes_conf="\${REDIS_NODES_CONF:-${DATA_DIR}/nodes.conf}"
resolver="\${REDIS_PEER_RESOLVER:-getent hosts}"
dns_wait="\${REDIS_PEER_DNS_WAIT_SECONDS:-120}"
umask 077

# Host names stored in nodes.conf: the part after the first comma of the address field, when it
# is a plain DNS name (later fields are key=value extensions).
peer_names() {
  awk '$1 != "vars" { n = split($2, a, ","); if (n > 1 && a[2] ~ /^[A-Za-z0-9][A-Za-z0-9.-]*$/) print a[2] }' "$nodes_conf" | sort -u
}

if [ -n "\${REDIS_ANNOUNCE_HOSTNAME:-}" ] && [ -s "$nodes_conf" ]; then
  map="$run_dir/peer-addresses"
  : > "$map"
  deadline=$(( $(date +%s) + dns_wait ))
  for name in $(peer_names); do
    ip=""
    while :; do
      # shellcheck disable=SC2086
      ip=$($resolver "$name" 2>/dev/null | awk 'NR == 1 && $1 ~ /^[0-9A-Fa-f.:]+$/ { print $1 }') || ip=""
      [ -n "$ip" ] && break
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "start.sh: $name does not resolve after \${dns_wait}s; keeping its stored address" >&2
        break
      fi
      sleep 1
    done
    if [ -n "$ip" ]; then printf '%s %s\\n' "$name" "$ip" >> "$map"; fi
  done
  # Replace the IP before ":port@bus" on each line whose host name resolved; the rest is untouched.
  # The new file replaces nodes.conf only when it has every line of the old one.
  if [ -s "$map" ]; then
    awk -v map="$map" 'FILENAME == map { ip[$1] = $2; next }
      $1 != "vars" {
        n = split($2, a, ",")
        if (n > 1 && (a[2] in ip) && match(a[1], /:[0-9]+@[0-9]+$/)) {
          old = substr(a[1], 1, RSTART - 1)
          if (old != ip[a[2]]) printf "start.sh: %s moved from %s to %s\\n", a[2], old, ip[a[2]] > "/dev/stderr"
          $2 = ip[a[2]] substr($2, RSTART)
        }
      }
      { print }' "$map" "$nodes_conf" > "$nodes_conf.tmp"
    if [ "$(wc -l < "$nodes_conf.tmp")" -eq "$(wc -l < "$nodes_conf")" ]; then
      mv "$nodes_conf.tmp" "$nodes_conf"
    else
      echo "start.sh: rewriting $nodes_conf went wrong; starting with it unchanged" >&2
      rm -f "$nodes_conf.tmp"
    fi
  fi
  rm -f "$map"
fi

{
  cat "$source_conf"
  printf 'requirepass "%s"\\nmasterauth "%s"\\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD"
  if [ -n "\${REDIS_ANNOUNCE_HOSTNAME:-}" ]; then
    printf 'cluster-announce-hostname "%s"\\n' "$REDIS_ANNOUNCE_HOSTNAME"
  fi
} > "$run_dir/redis.conf"
exec redis-server "$run_dir/redis.conf" "$@"
`;

/**
 * Creates the Redis Cluster once, with fixed master/replica pairs. REDIS_CLUSTER_NODES (space or
 * comma separated host:port) lists the masters first, then each round of replicas in the same
 * order: with N masters and REDIS_CLUSTER_REPLICAS r, node N*j + k (j = 1..r) replicates node k.
 * The construct lists the pods so that a master and its replica are the two pods of one shard's
 * StatefulSet, which keeps them in different zones.
 *
 * Waits until every node answers; if no node knows another yet, creates the cluster from the
 * masters (`redis-cli --cluster create ... --cluster-replicas 0`). Then every replica that is
 * still alone joins as the replica of its own master (`--cluster add-node --cluster-slave
 * --cluster-master-id`), so a run cut short resumes where it stopped. Safe to run again.
 */
export const BOOTSTRAP_SCRIPT = `#!/bin/sh
set -eu
: "\${REDIS_CLUSTER_NODES:?REDIS_CLUSTER_NODES must list the nodes as host:port}"
: "\${REDISCLI_AUTH:?REDISCLI_AUTH must be set (from the Redis auth Secret)}"
replicas="\${REDIS_CLUSTER_REPLICAS:-1}"
wait_ok_seconds="\${REDIS_CLUSTER_WAIT_SECONDS:-120}"
nodes=$(echo "$REDIS_CLUSTER_NODES" | tr ',' ' ')
# shellcheck disable=SC2086
total=$(echo $nodes | wc -w)
masters=$(( total / (replicas + 1) ))
if [ $(( masters * (replicas + 1) )) -ne "$total" ] || [ "$masters" -lt 3 ]; then
  echo "bootstrap: REDIS_CLUSTER_NODES has $total nodes; with $replicas replica(s) per master it needs a multiple of $((replicas + 1)), at least $((3 * (replicas + 1)))" >&2
  exit 1
fi

cli() { node="$1"; shift; redis-cli -h "\${node%:*}" -p "\${node##*:}" "$@"; }
info_field() { cli "$1" cluster info 2>/dev/null | tr -d '\\r' | sed -n "s/^$2://p"; }
nth() { echo "$nodes" | awk -v n="$1" '{ print $n }'; }
# redis-cli --cluster takes addresses; the pods' names resolve through the headless Service.
address() {
  host="\${1%:*}"
  # shellcheck disable=SC2086
  ip=$(\${REDIS_PEER_RESOLVER:-getent hosts} "$host" 2>/dev/null | awk 'NR == 1 { print $1 }' || true)
  echo "\${ip:-$host}:\${1##*:}"
}

for node in $nodes; do
  until [ "$(cli "$node" ping 2>/dev/null)" = "PONG" ]; do
    echo "bootstrap: waiting for $node"
    sleep 2
  done
done

existing=""
for node in $nodes; do
  known=$(info_field "$node" cluster_known_nodes)
  if [ "\${known:-1}" -gt 1 ]; then existing="$node"; break; fi
done

if [ -z "$existing" ]; then
  addrs=""
  i=1
  while [ "$i" -le "$masters" ]; do addrs="$addrs $(address "$(nth "$i")")"; i=$((i + 1)); done
  echo "bootstrap: creating the cluster from the masters:$addrs"
  # shellcheck disable=SC2086
  redis-cli --cluster create $addrs --cluster-replicas 0 --cluster-yes
  existing=$(nth 1)
else
  echo "bootstrap: the cluster already exists ($existing knows other nodes); not creating it again"
fi

i=$((masters + 1))
while [ "$i" -le "$total" ]; do
  replica=$(nth "$i")
  master=$(nth $(( (i - 1) % masters + 1 )))
  if [ "$(info_field "$replica" cluster_known_nodes)" = "1" ]; then
    master_id=$(cli "$master" cluster myid | tr -d '\\r')
    echo "bootstrap: $replica joins as the replica of $master ($master_id)"
    redis-cli --cluster add-node "$(address "$replica")" "$(address "$master")" --cluster-slave --cluster-master-id "$master_id"
  fi
  i=$((i + 1))
done

waited=0
until [ "$(info_field "$existing" cluster_state)" = "ok" ] && [ "$(info_field "$existing" cluster_known_nodes)" = "$total" ]; do
  if [ "$waited" -ge "$wait_ok_seconds" ]; then
    echo "bootstrap: the cluster is not healthy after \${wait_ok_seconds}s; inspect it with: redis-cli --cluster check $existing" >&2
    cli "$existing" cluster info >&2 || true
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
echo "bootstrap: cluster_state:ok, $(info_field "$existing" cluster_known_nodes) nodes, $(info_field "$existing" cluster_size) masters"
`;
