/**
 * Pieces the data-store constructs (`Redis`, `Postgres`) share: the restricted security
 * context, resource and image validation, the ServiceMonitor object and pod spreading.
 *
 * Internal to `infra/k8s`: library users see the results through the constructs' props.
 */
import { createHash } from 'node:crypto';
import { Chart } from 'cdk8s';
import type { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import { ServiceMonitor } from '../../imports/monitoring.coreos.com';
import { validateResources, type ContainerResources } from './resources';

/** A key of a Secret, referenced by name: the value never appears in a manifest. */
export interface SecretKeyReference {
  /** Name of the Secret (in the construct's namespace). */
  readonly name: string;
  /** Key inside the Secret's `data`. */
  readonly key: string;
}

/**
 * Props every data-store construct ({@link Redis}, {@link Postgres}) shares: naming, images
 * beside the main one, storage, resources, monitoring and mesh membership. Declared once here;
 * `RedisProps` and `PostgresProps` extend it with what is theirs.
 */
export interface DataStoreProps {
  /**
   * Base name of every object (StatefulSets, Services, ConfigMap, PDB, ServiceMonitor, Job).
   * @default 'redis' for Redis, 'postgres' for Postgres
   */
  readonly name?: string;
  /**
   * Namespace of every object. Host names are fully qualified when it is known.
   * @default the chart's namespace
   */
  readonly namespace?: string;
  /**
   * Pins the main image to a digest as well (`sha256:...`): the tag documents, the digest decides.
   * @default no digest: the exact tag alone
   */
  readonly imageDigest?: string;
  /**
   * The metrics exporter's image, with an exact tag.
   * @default DEFAULT_REDIS_EXPORTER_IMAGE or DEFAULT_POSTGRES_EXPORTER_IMAGE
   */
  readonly exporterImage?: string;
  /**
   * Pins the exporter image to a digest as well.
   * @default no digest
   */
  readonly exporterImageDigest?: string;
  /**
   * The Secret key holding the password (Postgres: of its `user`, in-cluster mode only). The
   * construct only references it; create it before applying (`kubectl create secret generic
   * <name>-auth --from-literal=password=$(openssl rand -hex 32)`, or the Pulumi program). It may
   * hold only URL-safe characters (`A-Z a-z 0-9 . _ ~ -`): it is embedded in the services' URL.
   * @default { name: '<name>-auth', key: 'password' }
   */
  readonly passwordSecret?: SecretKeyReference;
  /**
   * Size of each pod's persistent volume.
   * @default Redis '8Gi' (per pod: append-only file, snapshots, nodes.conf); Postgres '20Gi'
   */
  readonly storageSize?: string;
  /**
   * StorageClass of the persistent volumes.
   * @default the cluster's default StorageClass
   */
  readonly storageClass?: string;
  /**
   * Requests and limits of the main container (the same shape as `PromptService`'s `resources`).
   * @default Redis { requests: { cpu: '100m', memory: '640Mi' }, limits: { cpu: '1', memory: '640Mi' } };
   *   Postgres { requests: { cpu: '250m', memory: '1Gi' }, limits: { cpu: '2', memory: '1Gi' } }
   */
  readonly resources?: ContainerResources;
  /**
   * Requests and limits of the exporter sidecar.
   * @default { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } }
   */
  readonly exporterResources?: ContainerResources;
  /**
   * Labels on the ServiceMonitor so the platform's Prometheus selects it
   * (kube-prometheus-stack selects `release: <its release name>` by default).
   * @default { release: 'kube-prometheus-stack' }
   */
  readonly serviceMonitorLabels?: Record<string, string>;
  /**
   * Whether Istio injects its sidecar into the pods. Off by default: Redis Cluster addresses pods
   * directly over its bus, and meshed clients reach a pod without a sidecar in plain text (auto
   * mTLS), guarded by the password and the NetworkPolicies; exporters and probes stay independent
   * of the mesh. Jobs never get a sidecar (it would never complete).
   * @default false
   */
  readonly istioSidecar?: boolean;
}

/** Labels that make the platform's Prometheus select a ServiceMonitor or PrometheusRule. */
export const DEFAULT_PROMETHEUS_SELECTOR_LABELS: Readonly<Record<string, string>> = { release: 'kube-prometheus-stack' };

const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
// An image reference pinned to an exact tag: repository[:port]/path:tag, no "latest".
const PINNED_IMAGE = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Throws unless `value` is a Kubernetes quantity. */
export function checkQuantity(construct: string, prop: string, value: string): void {
  if (!QUANTITY.test(value)) {
    throw new Error(`${construct}: '${prop}' must be a Kubernetes quantity such as 250m, 1, 512Mi or 8Gi, got ${JSON.stringify(value)}`);
  }
}

/** Converts a quantity to a number of base units (cores or bytes) so limits can be compared. */
export function quantityValue(value: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/.exec(value);
  if (!m) return NaN;
  const factor: Record<string, number> = {
    '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
  };
  return Number(m[1]) * factor[m[2] ?? '']!;
}

/** Throws unless `value` can be a Kubernetes object name (RFC 1123 label, at most 63 characters). */
export function checkName(construct: string, prop: string, value: string, maxLength = 63): void {
  if (!DNS_LABEL.test(value) || value.length > maxLength) {
    throw new Error(`${construct}: '${prop}' must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most ${maxLength} characters), got ${JSON.stringify(value)}`);
  }
}

/** Throws unless `ref` names a Secret and a key. */
export function checkSecretRef(construct: string, prop: string, ref: SecretKeyReference): void {
  checkName(construct, `${prop}.name`, ref.name, 253);
  if (!SECRET_KEY.test(ref.key)) {
    throw new Error(`${construct}: '${prop}.key' must be a Secret key (letters, digits, '-', '_', '.'), got ${JSON.stringify(ref.key)}`);
  }
}

/**
 * Resolves an image reference: the tag must be exact (not `latest`, not missing); a digest, when
 * given, is appended so the registry cannot serve anything else.
 */
export function pinnedImage(construct: string, prop: string, image: string, digest?: string): string {
  if (!PINNED_IMAGE.test(image) || /:latest$/.test(image)) {
    throw new Error(`${construct}: '${prop}' must be an image with an exact tag (repository:tag, not latest), got ${JSON.stringify(image)}`);
  }
  if (digest === undefined) return image;
  if (!DIGEST.test(digest)) {
    throw new Error(`${construct}: '${prop}Digest' must be sha256:<64 hex digits>, got ${JSON.stringify(digest)}`);
  }
  return `${image}@${digest}`;
}

/**
 * Builds the `resources` block from the prop (or the defaults), checked like the services'
 * resources (`validateResources`: valid quantities, requests within limits).
 */
export function containerResources(
  construct: string,
  prop: string,
  given: ContainerResources | undefined,
  defaults: ContainerResources,
): { resolved: ContainerResources; spec: k8s.ResourceRequirements } {
  const resolved = given ?? defaults;
  try {
    validateResources(resolved, prop);
  } catch (err) {
    throw new Error(`${construct}: ${(err as Error).message}`);
  }
  return {
    resolved,
    spec: {
      requests: { cpu: k8s.Quantity.fromString(resolved.requests.cpu), memory: k8s.Quantity.fromString(resolved.requests.memory) },
      limits: { cpu: k8s.Quantity.fromString(resolved.limits.cpu), memory: k8s.Quantity.fromString(resolved.limits.memory) },
    },
  };
}

// The one restricted security context (security-context.ts), re-exported for the data stores.
export { restrictedContainerSecurityContext, restrictedPodSecurityContext } from './security-context';

/** Spreads pods of one workload over zones and nodes, preferring (not requiring) an even spread. */
export function spreadConstraints(selector: Record<string, string>): k8s.TopologySpreadConstraint[] {
  return ['topology.kubernetes.io/zone', 'kubernetes.io/hostname'].map((topologyKey) => ({
    maxSkew: 1,
    topologyKey,
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: { ...selector } },
  }));
}

/** The namespace objects of `scope` land in: the prop, else the chart's, else none (the current one). */
export function resolveNamespace(scope: Construct, namespace: string | undefined): string | undefined {
  return namespace ?? Chart.of(scope).namespace;
}

/** The DNS name of a Service: fully qualified when the namespace is known. */
export function serviceHost(service: string, namespace: string | undefined): string {
  return namespace ? `${service}.${namespace}.svc.cluster.local` : service;
}

/** An endpoint of a ServiceMonitor (prometheus-operator `monitoring.coreos.com/v1`). */
export interface ServiceMonitorEndpoint {
  /** Name of the Service port to scrape. */
  readonly port: string;
  /**
   * HTTP path of the metrics.
   * @default '/metrics'
   */
  readonly path?: string;
  /**
   * How often Prometheus scrapes.
   * @default '30s'
   */
  readonly interval?: string;
  /**
   * How long one scrape may take.
   * @default '10s'
   */
  readonly scrapeTimeout?: string;
}

/** Creates a ServiceMonitor that scrapes the named port of the Services matching `selector`. */
export function serviceMonitor(
  scope: Construct,
  id: string,
  options: {
    name: string;
    namespace: string | undefined;
    labels: Record<string, string>;
    selector: Record<string, string>;
    endpoints: ServiceMonitorEndpoint[];
  },
): ServiceMonitor {
  return new ServiceMonitor(scope, id, {
    metadata: { name: options.name, namespace: options.namespace, labels: options.labels },
    spec: {
      selector: { matchLabels: { ...options.selector } },
      endpoints: options.endpoints.map((e) => ({ path: '/metrics', interval: '30s', scrapeTimeout: '10s', ...e })),
    },
  });
}

/** A short, stable hash of a text, for checksum annotations that roll pods when config changes. */
export function checksum(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
