import { createHash } from 'node:crypto';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { DEFAULT_PORT, ENV, PATHS, SERVICE_NAMES, type ServiceName } from '../../contracts/index';
import { type QuietHours, QuietHoursSchedule, TrackAutoscaler } from './autoscaling';
import { canonicalJson, imageVersion, MANAGED_BY, PART_OF, TRACK_LABEL } from './labels';
import { MONITOR_LABELS } from './monitoring';
import { CAPACITIES, type Capacity } from './placement';
import {
  checkDnsLabel,
  checkDnsSubdomain,
  checkDuration,
  checkEnvName,
  checkImage,
  checkInt,
  checkLabels,
  checkMountedFile,
  checkOneOf,
} from './prop-checks';
import { type ContainerResources, validateResources } from './resources';
import { METRICS_SCRAPING, type MetricsScraping, ServiceScraping } from './service-monitoring';
import { TrackWorkload } from './service-workload';
import { DEFAULT_DRAIN_SECONDS, DEFAULT_ROUTE_TIMEOUT_SECONDS } from './shutdown';

export type { MetricsScraping } from './service-monitoring';
export type { QuietHours } from './autoscaling';

/** Requests and limits a service gets when none are given: fits a Node.js service at moderate load. */
export const DEFAULT_SERVICE_RESOURCES: ContainerResources = {
  requests: { cpu: '200m', memory: '256Mi' },
  limits: { cpu: '1', memory: '384Mi' },
};

/** Numeric user and group the containers run as (the image need not define them). */
export const DEFAULT_RUN_AS_USER = 10001;

/** Annotation on the pod template holding the checksum of the service's configuration. */
export const CONFIG_CHECKSUM_ANNOTATION = 'promptmesh.io/config-checksum';

/** One release track of a service: its own Deployment, HPA, PDB and DestinationRule subset. */
export interface ReleaseTrack {
  /**
   * Name of the track, a DNS label: `stable`, `canary`, `blue`, `green`, ... It becomes the
   * `track` pod label, the Deployment suffix and the Istio subset name.
   */
  readonly name: string;
  /**
   * Image this track runs.
   * @default the service's `image`
   */
  readonly image?: string;
  /**
   * Minimum replicas of this track.
   * @default the service's `minReplicas`
   */
  readonly minReplicas?: number;
  /**
   * Maximum replicas of this track.
   * @default the service's `maxReplicas`
   */
  readonly maxReplicas?: number;
}

/** A value taken from a key of a Secret, never inlined into the manifest. */
export interface SecretKeyRef {
  /** Name of the Secret (in the service's namespace). */
  readonly name: string;
  /** Key within the Secret. */
  readonly key: string;
  /**
   * Whether the pod may start when the Secret or key is missing.
   * @default false
   */
  readonly optional?: boolean;
}

/** A file the service reads from a ConfigMap (for example the providers file). */
export interface ConfigFile {
  /** Name of the ConfigMap holding the file. */
  readonly configMapName: string;
  /** Key of the file in the ConfigMap; also its file name. */
  readonly key: string;
  /**
   * The file's content, as written to the ConfigMap. It is not put into the pod; it feeds the
   * config checksum so a change rolls the pods.
   */
  readonly content: string;
  /** Directory the ConfigMap is mounted at (read-only). */
  readonly mountPath: string;
  /**
   * Environment variable set to the file's full path (e.g. `PROVIDERS_FILE`).
   * @default no variable
   */
  readonly env?: string;
}

/** A file the service reads from a Secret (for example the API keys file). */
export interface SecretFile {
  /** Name of the Secret holding the file. */
  readonly secretName: string;
  /** Key of the file in the Secret; also its file name. */
  readonly key: string;
  /** Directory the Secret is mounted at (read-only). */
  readonly mountPath: string;
  /**
   * Environment variable set to the file's full path (e.g. `API_KEYS_FILE`).
   * @default no variable
   */
  readonly env?: string;
  /**
   * Whether the pod may start when the Secret is missing.
   * @default false
   */
  readonly optional?: boolean;
}

/** One environment variable in Kubernetes' shape: a plain value, or a value from a Secret or ConfigMap key. */
export interface EnvVar {
  /** Variable name. */
  readonly name: string;
  /** Plain value (never a secret). */
  readonly value?: string;
  /** Where the value comes from instead. */
  readonly valueFrom?: {
    readonly secretKeyRef?: { readonly name?: string; readonly key: string; readonly optional?: boolean };
    readonly configMapKeyRef?: { readonly name?: string; readonly key: string; readonly optional?: boolean };
  };
}

/** Props of {@link PromptService}. */
export interface PromptServiceProps {
  /** Which of the four services this is; becomes `SERVICE` in the container. */
  readonly service: ServiceName;
  /**
   * Image of the service (all four services are one image that reads `SERVICE`).
   * @default none: required unless every track sets its own `image`
   */
  readonly image?: string;
  /**
   * Namespace of every object.
   * @default 'promptmesh'
   */
  readonly namespace?: string;
  /**
   * Name of the Service, ServiceAccount and prefix of the Deployments (`<name>-<track>`).
   * @default the service name, e.g. 'router'
   */
  readonly name?: string;
  /**
   * `app.kubernetes.io/instance` label: tells several installations apart.
   * @default 'promptmesh'
   */
  readonly instance?: string;
  /**
   * Release tracks, each its own Deployment and image. Two tracks run canary
   * (`stable` + `canary`) or blue-green (`blue` + `green`).
   * @default [{ name: 'stable' }]
   */
  readonly tracks?: ReleaseTrack[];
  /**
   * Percentage of traffic per track (integers 0-100 summing to 100; every key must be a track).
   * Moving traffic between tracks is a change of this prop only.
   * @default 100 to the first track, 0 to the others
   */
  readonly traffic?: Record<string, number>;
  /**
   * Minimum replicas per track (the HPA's floor). At least 2 keeps the service up through a
   * node drain.
   * @default 2
   */
  readonly minReplicas?: number;
  /**
   * Maximum replicas per track (the HPA's ceiling).
   * @default 10
   */
  readonly maxReplicas?: number;
  /**
   * Average CPU utilisation (percent of requests) the HPA aims at (DESIGN.md: scale out at 50%).
   * @default 50
   */
  readonly targetCpuUtilization?: number;
  /**
   * Requests per second per pod the HPA aims at (custom metric
   * `promptmesh_http_requests_per_second` from prometheus-adapter).
   * @default 50
   */
  readonly targetRequestsPerSecond?: number;
  /**
   * Container requests and limits.
   * @default DEFAULT_SERVICE_RESOURCES: requests 200m / 256Mi, limits 1 CPU / 384Mi
   */
  readonly resources?: ContainerResources;
  /**
   * Spot or on-demand nodes. Spot pods tolerate the spot taint and prefer spot nodes;
   * on-demand pods stay off spot nodes.
   * @default 'on-demand'
   */
  readonly capacity?: Capacity;
  /**
   * What the scheduler does when a pod cannot keep the zones balanced (maxSkew 1).
   * `DoNotSchedule` guarantees the spread (nodes must carry `topology.kubernetes.io/zone`, as
   * cloud nodes do); `ScheduleAnyway` only prefers it (for clusters without zone labels, e.g.
   * kind). Spread across nodes is always `ScheduleAnyway`.
   * @default 'DoNotSchedule'
   */
  readonly zoneSpread?: 'DoNotSchedule' | 'ScheduleAnyway';
  /**
   * Plain environment variables (never secrets: names that look like secrets or URLs with
   * credentials are refused; use `secretEnv`).
   * @default none beyond SERVICE, PORT, HOST, DRAIN_DELAY_MS and SHUTDOWN_TIMEOUT_MS
   */
  readonly env?: Record<string, string>;
  /**
   * Environment variables taken from Secret keys (e.g. `DATABASE_URL`, `REDIS_URL`).
   * @default none
   */
  readonly secretEnv?: Record<string, SecretKeyRef>;
  /**
   * Secrets whose every key becomes an environment variable (e.g. provider API keys named as
   * the providers file's `apiKeyEnv`). Listed as `{ name, optional }`.
   * @default none
   */
  readonly secretEnvFrom?: { readonly name: string; readonly optional?: boolean }[];
  /**
   * Environment variables in Kubernetes' own shape, placed after `env` and `secretEnv` in this
   * order, so a value may use `$(VAR)` expansion of an earlier variable (e.g. a datastore's
   * `clientEnv()`: a password from a Secret, then a URL made with `$(PASSWORD_VAR)`). A `value`
   * may reference a secret only through `$(VAR)`; plain secrets are refused as in `env`.
   * @default none
   */
  readonly envVars?: EnvVar[];
  /**
   * Files from ConfigMaps; their content feeds the config checksum.
   * @default none
   */
  readonly configFiles?: ConfigFile[];
  /**
   * Files from Secrets (mounted read-only, mode 0440).
   * @default none
   */
  readonly secretFiles?: SecretFile[];
  /**
   * Seconds the pod keeps serving after it is marked for termination (preStop sleep), so
   * endpoints and the mesh stop routing to it before the process stops accepting.
   * @default 5
   */
  readonly drainSeconds?: number;
  /**
   * Seconds in-flight requests (streams too) get to finish after SIGTERM
   * (`SHUTDOWN_TIMEOUT_MS`). It must cover the service's route timeout in {@link Mesh} (which
   * checks it), or a rollout cuts the longest stream the mesh allows. The termination grace
   * period is drain + this + 5 (see shutdown.ts).
   * @default the service's default route timeout: 300 for router and llm (the longest stream), 10 for templates, 5 for context
   */
  readonly shutdownTimeoutSeconds?: number;
  /**
   * Lower replica floors during quiet hours: two CronJobs patch the HPAs' `minReplicas` down
   * at `start` and back at `end`, with a Role allowed to patch only these HPAs.
   * @default none: the floor is `minReplicas` at every hour
   */
  readonly quietHours?: QuietHours;
  /**
   * Numeric user and group the container runs as.
   * @default 10001
   */
  readonly runAsUser?: number;
  /**
   * How Prometheus scrapes metrics. `istio-agent`: the Istio agent's merged metrics on port
   * 15020 (plain text, outside mTLS, so it works under STRICT); `app`: the app's `/metrics` on
   * the service port (only without STRICT mTLS, or with a Prometheus that holds mesh certificates).
   * @default 'istio-agent'
   */
  readonly metricsScraping?: MetricsScraping;
  /**
   * Labels of the ServiceMonitor, which Prometheus' `serviceMonitorSelector` must match.
   * @default MONITOR_LABELS ({ release: 'kube-prometheus-stack' })
   */
  readonly monitorLabels?: Record<string, string>;
  /**
   * Scrape interval.
   * @default '30s'
   */
  readonly scrapeInterval?: string;
  /**
   * Image pull policy.
   * @default 'IfNotPresent'
   */
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /**
   * Annotations of the service's ServiceAccount, e.g. IRSA's `eks.amazonaws.com/role-arn` that
   * lets the pods assume an IAM role (the llm service calling Bedrock).
   * @default none
   */
  readonly serviceAccountAnnotations?: Record<string, string>;
}

const SECRET_LIKE_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)$/i;
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@:\s]*:[^/@\s]+@/i;

/** A track after defaults and validation. */
interface ResolvedTrack {
  readonly name: string;
  readonly image: string;
  readonly minReplicas: number;
  readonly maxReplicas: number;
}

/**
 * One service of the prompt system (`router`, `templates`, `context` or `llm`): a Deployment per
 * release track, a Service, a ServiceAccount, an HPA and a PDB per track, and a ServiceMonitor.
 *
 * Pods run restricted (non-root numeric user, read-only root with a writable `/tmp`, no
 * privilege escalation, no capabilities, RuntimeDefault seccomp, no service account token),
 * spread across zones and nodes, probed on `/healthz` and `/readyz`, drained before they stop,
 * and rolled when their configuration changes (config checksum annotation). Secrets are only
 * referenced, never inlined.
 *
 * The Istio routing for the tracks (DestinationRule subsets, VirtualService weights) is made by
 * {@link Mesh} from {@link PromptService.trafficWeights}.
 */
export class PromptService extends Construct {
  /** Which service this is. */
  public readonly service: ServiceName;
  /** Name of the Service, ServiceAccount and Deployment prefix. */
  public readonly name: string;
  /** Namespace of the objects. */
  public readonly namespace: string;
  /** The ServiceAccount the pods run as (the identity Istio authorizes). */
  public readonly serviceAccountName: string;
  /** Container and Service port. */
  public readonly port: number;
  /** Labels selecting every pod of the service, across tracks. */
  public readonly selectorLabels: Readonly<Record<string, string>>;
  /** The release tracks, in the order given. */
  public readonly tracks: readonly string[];
  /** Traffic percentage per track (sums to 100). */
  public readonly trafficWeights: Readonly<Record<string, number>>;
  /** sha256 of the configuration the pods get (plain env, Secret references, config files). */
  public readonly configChecksum: string;
  /** How metrics are scraped. */
  public readonly metricsScraping: MetricsScraping;
  /** The Deployments, one per track. */
  public readonly deployments: readonly k8s.KubeDeployment[];
  /** The HPAs, one per track. */
  public readonly autoscalers: readonly TrackAutoscaler[];
  /** Seconds in-flight requests get after SIGTERM (`SHUTDOWN_TIMEOUT_MS`). */
  public readonly shutdownTimeoutSeconds: number;
  /** The pods' termination grace period. */
  public readonly terminationGracePeriodSeconds: number;
  /** The quiet hours schedule, when `quietHours` is set. */
  public readonly quietHours?: QuietHoursSchedule;

  constructor(scope: Construct, id: string, props: PromptServiceProps) {
    super(scope, id);
    if (!(SERVICE_NAMES as readonly string[]).includes(props.service)) {
      throw new Error(`'service' must be one of ${SERVICE_NAMES.join(', ')}, got ${JSON.stringify(props.service)}`);
    }
    this.service = props.service;
    this.name = checkDnsLabel(props.name ?? props.service, 'name', 50);
    this.namespace = checkDnsLabel(props.namespace ?? 'promptmesh', 'namespace');
    const instance = checkDnsLabel(props.instance ?? 'promptmesh', 'instance');
    this.serviceAccountName = this.name;
    this.port = DEFAULT_PORT;
    this.metricsScraping = checkOneOf(props.metricsScraping ?? 'istio-agent', METRICS_SCRAPING, 'metricsScraping');
    const capacity = checkOneOf(props.capacity ?? 'on-demand', CAPACITIES, 'capacity');
    const minReplicas = checkInt(props.minReplicas, 2, 'minReplicas', 1, 1000);
    const maxReplicas = checkInt(props.maxReplicas, Math.max(10, minReplicas), 'maxReplicas', 1, 1000);
    if (minReplicas > maxReplicas) {
      throw new Error(`'minReplicas' (${minReplicas}) must be less than or equal to 'maxReplicas' (${maxReplicas})`);
    }
    const targetCpu = checkInt(props.targetCpuUtilization, 50, 'targetCpuUtilization', 10, 100);
    const targetRps = checkInt(props.targetRequestsPerSecond, 50, 'targetRequestsPerSecond', 1, 100_000);
    const resources = props.resources ?? DEFAULT_SERVICE_RESOURCES;
    validateResources(resources, 'resources');
    const drainSeconds = checkInt(props.drainSeconds, DEFAULT_DRAIN_SECONDS, 'drainSeconds', 0, 120);
    const shutdownSeconds = checkInt(props.shutdownTimeoutSeconds, DEFAULT_ROUTE_TIMEOUT_SECONDS[props.service], 'shutdownTimeoutSeconds', 1, 600);
    const runAsUser = checkInt(props.runAsUser, DEFAULT_RUN_AS_USER, 'runAsUser', 1, 2_147_483_647);
    const zoneSpread = props.zoneSpread ?? 'DoNotSchedule';
    if (!['DoNotSchedule', 'ScheduleAnyway'].includes(zoneSpread)) {
      throw new Error(`'zoneSpread' must be one of DoNotSchedule, ScheduleAnyway, got ${JSON.stringify(props.zoneSpread)}`);
    }
    const pullPolicy = checkOneOf(props.imagePullPolicy ?? 'IfNotPresent', ['Always', 'IfNotPresent', 'Never'], 'imagePullPolicy');
    const monitorLabels = checkLabels({ ...(props.monitorLabels ?? MONITOR_LABELS) }, 'monitorLabels');
    const scrapeInterval = checkDuration(props.scrapeInterval ?? '30s', 'scrapeInterval');

    // Tracks and traffic.
    const trackProps = props.tracks ?? [{ name: 'stable' }];
    if (!Array.isArray(trackProps) || trackProps.length === 0) {
      throw new Error(`'tracks' must list at least one track, e.g. [{ name: 'stable' }]`);
    }
    const tracks: ResolvedTrack[] = trackProps.map((t, i) => {
      const name = checkDnsLabel(t?.name, `tracks[${i}].name`, 12);
      const image = checkImage(t.image ?? props.image, t.image !== undefined ? `tracks[${i}].image` : 'image');
      const tMin = checkInt(t.minReplicas, minReplicas, `tracks[${i}].minReplicas`, 1, 1000);
      const tMax = checkInt(t.maxReplicas, Math.max(maxReplicas, tMin), `tracks[${i}].maxReplicas`, 1, 1000);
      if (tMin > tMax) {
        throw new Error(`'tracks[${i}].minReplicas' (${tMin}) must be less than or equal to 'tracks[${i}].maxReplicas' (${tMax})`);
      }
      return { name, image, minReplicas: tMin, maxReplicas: tMax };
    });
    const names = tracks.map((t) => t.name);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate) throw new Error(`'tracks' has the track ${JSON.stringify(duplicate)} twice; track names must be unique`);
    this.tracks = names;
    this.trafficWeights = resolveTraffic(props.traffic, names);

    // Environment: contract variables first, then the caller's.
    const env: Record<string, string> = {
      [ENV.service]: this.service,
      [ENV.port]: String(this.port),
      [ENV.host]: '0.0.0.0',
      // The preStop sleep already drains; the process can stop accepting at SIGTERM.
      [ENV.drainDelayMs]: '0',
      [ENV.shutdownTimeoutMs]: String(shutdownSeconds * 1000),
    };
    for (const [key, value] of Object.entries(props.env ?? {})) {
      checkEnvName(key, 'env');
      if (typeof value !== 'string') throw new Error(`'env.${key}' must be a string, got ${JSON.stringify(value)}`);
      if (SECRET_LIKE_NAME.test(key)) {
        throw new Error(`'env.${key}' looks like a secret; pass it as 'secretEnv.${key}' (a Secret reference), never as a value`);
      }
      if (URL_WITH_PASSWORD.test(value)) {
        throw new Error(`'env.${key}' holds a URL with a password; pass it as 'secretEnv.${key}' (a Secret reference), never as a value`);
      }
      env[key] = value;
    }
    const secretEnv = props.secretEnv ?? {};
    for (const [key, ref] of Object.entries(secretEnv)) {
      checkEnvName(key, 'secretEnv');
      if (key in env) throw new Error(`'secretEnv.${key}' is also set in 'env' or by the construct; set it once`);
      if (!ref || typeof ref.name !== 'string' || typeof ref.key !== 'string' || !ref.key) {
        throw new Error(`'secretEnv.${key}' must be { name, key } of a Secret, got ${JSON.stringify(ref)}`);
      }
      checkDnsSubdomain(ref.name, `secretEnv.${key}.name`);
    }
    const envVars = props.envVars ?? [];
    const seen = new Set([...Object.keys(env), ...Object.keys(secretEnv)]);
    envVars.forEach((v, i) => {
      checkEnvName(v?.name, `envVars[${i}].name`);
      if (seen.has(v.name)) throw new Error(`'envVars[${i}]' sets ${v.name}, which is already set; set it once`);
      seen.add(v.name);
      const hasValue = v.value !== undefined;
      const from = v.valueFrom?.secretKeyRef ?? v.valueFrom?.configMapKeyRef;
      if (hasValue === (from !== undefined) || (v.valueFrom?.secretKeyRef && v.valueFrom?.configMapKeyRef)) {
        throw new Error(`'envVars[${i}]' (${v.name}) must have exactly one of 'value', 'valueFrom.secretKeyRef', 'valueFrom.configMapKeyRef'`);
      }
      if (hasValue) {
        if (typeof v.value !== 'string') throw new Error(`'envVars[${i}].value' must be a string`);
        const unexpanded = v.value.replace(/\$\([A-Za-z_][A-Za-z0-9_]*\)/g, '');
        if (SECRET_LIKE_NAME.test(v.name) && unexpanded === v.value) {
          throw new Error(`'envVars[${i}]' (${v.name}) looks like a secret; take it from a Secret (valueFrom.secretKeyRef), never as a value`);
        }
        if (URL_WITH_PASSWORD.test(v.value) && !/:\/\/[^/@:\s]*:\$\([A-Za-z_][A-Za-z0-9_]*\)@/.test(v.value)) {
          throw new Error(`'envVars[${i}]' (${v.name}) holds a URL with a password; put the password in a Secret and use $(VAR) expansion`);
        }
      } else {
        checkDnsSubdomain(from!.name, `envVars[${i}].valueFrom.name`);
      }
    });
    const secretEnvFrom = props.secretEnvFrom ?? [];
    secretEnvFrom.forEach((s, i) => checkDnsSubdomain(s?.name, `secretEnvFrom[${i}].name`));
    const configFiles = props.configFiles ?? [];
    const secretFiles = props.secretFiles ?? [];
    configFiles.forEach((f, i) => {
      checkDnsSubdomain(f.configMapName, `configFiles[${i}].configMapName`);
      checkMountedFile(f, `configFiles[${i}]`);
      if (typeof f.content !== 'string') throw new Error(`'configFiles[${i}].content' must be the file's content as a string`);
    });
    secretFiles.forEach((f, i) => {
      checkDnsSubdomain(f.secretName, `secretFiles[${i}].secretName`);
      checkMountedFile(f, `secretFiles[${i}]`);
    });
    const mountPaths = [...configFiles, ...secretFiles].map((f) => f.mountPath);
    const dupMount = mountPaths.find((p, i) => mountPaths.indexOf(p) !== i || p === '/tmp');
    if (dupMount) throw new Error(`'configFiles'/'secretFiles' mount two volumes at ${JSON.stringify(dupMount)}; mount paths must be distinct and not /tmp`);
    for (const f of [...configFiles, ...secretFiles]) {
      if (f.env) {
        checkEnvName(f.env, 'configFiles/secretFiles env');
        env[f.env] = `${f.mountPath.replace(/\/$/, '')}/${f.key}`;
      }
    }

    this.configChecksum = createHash('sha256')
      .update(
        canonicalJson({
          env,
          secretEnv,
          envVars,
          secretEnvFrom,
          configFiles: configFiles.map((f) => ({ ...f })),
          secretFiles,
        }),
      )
      .digest('hex');

    // Labels.
    this.selectorLabels = {
      'app.kubernetes.io/name': this.name,
      'app.kubernetes.io/instance': instance,
    };
    const commonLabels = {
      ...this.selectorLabels,
      'app.kubernetes.io/component': this.service,
      'app.kubernetes.io/part-of': PART_OF,
      'app.kubernetes.io/managed-by': MANAGED_BY,
    };
    const meta = { name: this.name, namespace: this.namespace, labels: commonLabels };

    const saAnnotations = props.serviceAccountAnnotations && Object.keys(props.serviceAccountAnnotations).length > 0 ? { annotations: { ...props.serviceAccountAnnotations } } : {};
    new k8s.KubeServiceAccount(this, 'ServiceAccount', { metadata: { ...meta, name: this.serviceAccountName, ...saAnnotations }, automountServiceAccountToken: false });
    new k8s.KubeService(this, 'Service', {
      metadata: meta,
      spec: {
        type: 'ClusterIP',
        selector: { ...this.selectorLabels },
        // Istio reads the protocol from the port name / appProtocol.
        ports: [{ name: 'http', port: this.port, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP', appProtocol: 'http' }],
      },
    });
    new ServiceScraping(this, 'Monitoring', {
      name: this.name,
      namespace: this.namespace,
      labels: commonLabels,
      selectorLabels: this.selectorLabels,
      monitorLabels,
      scraping: this.metricsScraping,
      interval: scrapeInterval,
    });

    const volumes: k8s.Volume[] = [{ name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('64Mi') } }];
    const volumeMounts: k8s.VolumeMount[] = [{ name: 'tmp', mountPath: '/tmp' }];
    configFiles.forEach((f, i) => {
      volumes.push({ name: `config-${i}`, configMap: { name: f.configMapName, items: [{ key: f.key, path: f.key }] } });
      volumeMounts.push({ name: `config-${i}`, mountPath: f.mountPath, readOnly: true });
    });
    secretFiles.forEach((f, i) => {
      volumes.push({
        name: `secret-${i}`,
        secret: { secretName: f.secretName, items: [{ key: f.key, path: f.key }], defaultMode: 0o440, optional: f.optional ?? false },
      });
      volumeMounts.push({ name: `secret-${i}`, mountPath: f.mountPath, readOnly: true });
    });
    const envList: k8s.EnvVar[] = [
      ...Object.entries(env).map(([name, value]) => ({ name, value })),
      ...Object.entries(secretEnv).map(([name, ref]) => ({
        name,
        valueFrom: { secretKeyRef: { name: ref.name, key: ref.key, optional: ref.optional ?? false } },
      })),
      ...envVars.map((v): k8s.EnvVar => ({
        name: v.name,
        ...(v.value !== undefined ? { value: v.value } : {}),
        ...(v.valueFrom ? { valueFrom: { ...v.valueFrom } } : {}),
      })),
    ];
    const envFrom: k8s.EnvFromSource[] = secretEnvFrom.map((s) => ({ secretRef: { name: s.name, optional: s.optional ?? false } }));

    this.shutdownTimeoutSeconds = shutdownSeconds;
    const deployments: k8s.KubeDeployment[] = [];
    const autoscalers: TrackAutoscaler[] = [];
    let grace = 0;
    for (const track of tracks) {
      const trackSelector = { ...this.selectorLabels, [TRACK_LABEL]: track.name };
      const podLabels = { ...commonLabels, [TRACK_LABEL]: track.name, 'app.kubernetes.io/version': imageVersion(track.image) };
      const deploymentName = `${this.name}-${track.name}`;
      const podAnnotations: Record<string, string> = {
        [CONFIG_CHECKSUM_ANNOTATION]: this.configChecksum,
        'kubectl.kubernetes.io/default-container': this.service,
        // The app starts only once the sidecar is ready, so its first calls are not refused.
        'proxy.istio.io/config': '{"holdApplicationUntilProxyStarts":true}',
      };
      if (this.metricsScraping === 'istio-agent') {
        // Istio's metrics merging reads these and serves the app's metrics on 15020.
        podAnnotations['prometheus.io/scrape'] = 'true';
        podAnnotations['prometheus.io/port'] = String(this.port);
        podAnnotations['prometheus.io/path'] = PATHS.metrics;
      }
      const workload = new TrackWorkload(this, `Track-${track.name}`, {
        name: deploymentName,
        namespace: this.namespace,
        containerName: this.service,
        image: track.image,
        imagePullPolicy: pullPolicy,
        labels: podLabels,
        selectorLabels: trackSelector,
        podAnnotations,
        serviceAccountName: this.serviceAccountName,
        port: this.port,
        env: envList,
        envFrom,
        volumes,
        volumeMounts,
        resources,
        capacity,
        zoneSpread,
        drainSeconds,
        shutdownTimeoutSeconds: shutdownSeconds,
        runAsUser,
      });
      grace = workload.terminationGracePeriodSeconds;
      deployments.push(workload.deployment);
      autoscalers.push(
        new TrackAutoscaler(this, `Autoscaling-${track.name}`, {
          name: deploymentName,
          namespace: this.namespace,
          labels: podLabels,
          deploymentName,
          minReplicas: track.minReplicas,
          maxReplicas: track.maxReplicas,
          targetCpuUtilization: targetCpu,
          targetRequestsPerSecond: targetRps,
        }),
      );
    }
    this.deployments = deployments;
    this.autoscalers = autoscalers;
    this.terminationGracePeriodSeconds = grace;
    if (props.quietHours !== undefined) {
      this.quietHours = new QuietHoursSchedule(this, 'QuietHours', {
        name: this.name,
        namespace: this.namespace,
        // Not the service's selector labels: its Service and policies must not select these pods.
        labels: {
          'app.kubernetes.io/name': `${this.name}-quiet-hours`,
          'app.kubernetes.io/instance': instance,
          'app.kubernetes.io/part-of': PART_OF,
          'app.kubernetes.io/managed-by': MANAGED_BY,
        },
        autoscalers,
        quietHours: props.quietHours,
      });
    }
  }

  /** In-cluster URL of the service, e.g. `http://router.promptmesh.svc.cluster.local:8080`. */
  public get url(): string {
    return `http://${this.name}.${this.namespace}.svc.cluster.local:${this.port}`;
  }

  /** Fully qualified host name of the Service. */
  public get host(): string {
    return `${this.name}.${this.namespace}.svc.cluster.local`;
  }
}

/**
 * Checks and completes traffic weights against the track names: integers 0-100, summing to 100,
 * every key a track. Missing tracks get 0; with no weights at all the first track gets 100.
 */
export function resolveTraffic(traffic: Record<string, number> | undefined, tracks: readonly string[]): Record<string, number> {
  if (traffic === undefined) return Object.fromEntries(tracks.map((t, i) => [t, i === 0 ? 100 : 0]));
  if (!traffic || typeof traffic !== 'object' || Array.isArray(traffic)) {
    throw new Error(`'traffic' must map track names to percentages, e.g. { stable: 90, canary: 10 }`);
  }
  const result: Record<string, number> = Object.fromEntries(tracks.map((t) => [t, 0]));
  let sum = 0;
  for (const [track, weight] of Object.entries(traffic)) {
    if (!tracks.includes(track)) {
      throw new Error(`'traffic.${track}' names no track; the tracks (subsets) are ${tracks.join(', ')}`);
    }
    if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 100) {
      throw new Error(`'traffic.${track}' must be an integer from 0 to 100, got ${JSON.stringify(weight)}`);
    }
    result[track] = weight;
    sum += weight;
  }
  if (sum !== 100) {
    throw new Error(`'traffic' weights must sum to 100, got ${sum} (${JSON.stringify(traffic)})`);
  }
  return result;
}
