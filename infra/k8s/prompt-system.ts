import { Chart, type ChartProps } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import type { Construct } from 'constructs';
import { stringify } from 'yaml';
import { type Datastore, ENV, type EnvName, SERVICE_NAMES, SERVICES, type ServiceName, calleesOf } from '../../contracts/index';
import { MANAGED_BY, PART_OF } from './labels';
import { type Caller, type GatewayOptions, type IngressGatewayOptions, Mesh } from './mesh';
import { MONITOR_LABELS } from './monitoring';
import { Observability, type ObservabilityProps } from './observability';
import { type DatastoreAccess, type ExternalEndpoint, NetworkPolicies, type ProviderEgress } from './network-policies';
import { type Capacity, PLACEMENT_POLICIES, type PlacementPolicy, REQUEST_PATH_SERVICES, serviceCapacities } from './placement';
import { Postgres, type PostgresProps } from './postgres';
import { type ConfigFile, type EnvVar, PromptService, type PromptServiceProps, type SecretFile } from './prompt-service';
import { checkDnsLabel, checkLabels, checkOneOf } from './prop-checks';
import { Redis, type RedisProps } from './redis';
import { LONGEST_STREAM_SECONDS } from './shutdown';

/** The per-service settings an environment chooses (each prop documented on {@link PromptServiceProps}). */
export type ServiceSettings = Pick<
  PromptServiceProps,
  | 'minReplicas'
  | 'maxReplicas'
  | 'resources'
  | 'capacity'
  | 'tracks'
  | 'traffic'
  | 'targetCpuUtilization'
  | 'targetRequestsPerSecond'
  | 'env'
  | 'drainSeconds'
  | 'shutdownTimeoutSeconds'
  | 'zoneSpread'
  | 'quietHours'
>;

/** Images per service, with a fallback for the services not named. */
export interface ServiceImages {
  /**
   * Image of every service not named below.
   * @default none: then all four must be named
   */
  readonly default?: string;
  /** Image of the router. @default `default` */
  readonly router?: string;
  /** Image of templates. @default `default` */
  readonly templates?: string;
  /** Image of context. @default `default` */
  readonly context?: string;
  /** Image of llm. @default `default` */
  readonly llm?: string;
}

/** A file from a Secret key. */
export interface SecretFileRef {
  /** Secret name. */
  readonly name: string;
  /** Key (file name) in the Secret. */
  readonly key: string;
}

/** Props of {@link PromptSystem}: one object per environment. */
export interface PromptSystemProps extends Omit<ChartProps, 'namespace'> {
  /**
   * The image(s): one reference for all four services (they are one image that reads
   * `SERVICE`), or per service.
   */
  readonly images: string | ServiceImages;
  /**
   * Namespace of everything (created by the chart, Pod Security `restricted`, Istio injection on).
   * @default 'promptmesh'
   */
  readonly namespace?: string;
  /**
   * `app.kubernetes.io/instance` of the services.
   * @default 'promptmesh'
   */
  readonly instance?: string;
  /**
   * Name of the environment, as the label `promptmesh.io/environment` on the namespace.
   * @default 'production'
   */
  readonly environment?: string;
  /**
   * Settings that apply to all four services (per-service `services` wins).
   * @default the PromptService defaults: 2-10 replicas, on-demand, 200m/256Mi requests, 1 CPU/384Mi limits
   */
  readonly serviceDefaults?: ServiceSettings;
  /**
   * Settings per service: replicas, resources, tracks and traffic, capacity, extra env.
   * @default none beyond `serviceDefaults`
   */
  readonly services?: Partial<Record<ServiceName, ServiceSettings>>;
  /**
   * Runs every service on spot nodes (shorthand for `placement: 'all-spot'`).
   * @default false
   */
  readonly spot?: boolean;
  /**
   * Which services run on spot and which on on-demand nodes (see {@link PlacementPolicy};
   * `placementPolicyFor(environment)` is this repository's choice per environment). Under
   * `request-path-on-demand`, a `capacity: 'spot'` for router or llm is refused: their streams
   * outlive a spot reclaim's notice. A service's own `capacity` wins otherwise.
   * @default 'request-path-on-demand' (router and llm on-demand, templates and context on spot), or 'all-spot' with `spot: true`
   */
  readonly placement?: PlacementPolicy;
  /**
   * The Redis construct's props (mode `standalone` or `cluster`, sizes, Secret).
   * @default { mode: 'cluster' }
   */
  readonly redis?: Omit<RedisProps, 'namespace'>;
  /**
   * The Postgres construct's props (mode `in-cluster` or `external`).
   * @default { mode: 'in-cluster' }
   */
  readonly postgres?: Omit<PostgresProps, 'namespace'>;
  /**
   * CIDRs of an external PostgreSQL (mode `external`), for the NetworkPolicy egress.
   * @default ['10.0.0.0/8'] (a managed database inside the VPC)
   */
  readonly externalPostgresCidrs?: string[];
  /**
   * The Observability construct's props (SLO objectives, alert thresholds, dashboard folder),
   * or `false` for no PrometheusRule and dashboards.
   * @default {} (its defaults: 99.9% availability, 99% within 10s), labelled for `monitoring.selectorLabels`
   */
  readonly observability?: Omit<ObservabilityProps, 'namespace'> | false;
  /**
   * The public Gateway for the router, or `false` for none.
   * @default { hosts: ['*'], tlsCredentialName: 'promptmesh-tls' }: HTTPS only, HTTP redirects
   */
  readonly gateway?: GatewayOptions | false;
  /**
   * The providers file (DESIGN.md "Providers file") for llm, as an object (written as YAML) or
   * as YAML text. Put into a ConfigMap and mounted; API keys are never in it (`apiKeyEnv`).
   * @default none: llm runs its built-in `echo` provider only
   */
  readonly providers?: Record<string, unknown> | string;
  /**
   * Secret whose keys become llm's environment, holding the provider API keys the providers
   * file names in `apiKeyEnv` (e.g. `OPENAI_API_KEY`). Required when `providers` is set.
   * @default 'promptmesh-provider-keys'
   */
  readonly providerKeysSecret?: string;
  /**
   * Secret key holding the router's API keys file (`API_KEYS_FILE`: key ids, sha256 hashes,
   * scopes), or `false` to run without authentication (never in production). With keys the
   * router also keeps virtual keys, teams and spend in PostgreSQL (docs/keys.md): its contract
   * gives it `DATABASE_URL` from the database secret by reference and a NetworkPolicy egress to it.
   * @default { name: 'promptmesh-api-keys', key: 'api-keys.yaml' }
   */
  readonly apiKeys?: SecretFileRef | false;
  /**
   * Log level of the services.
   * @default 'info'
   */
  readonly logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
  /**
   * OTLP/HTTP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`).
   * @default none: tracing off
   */
  readonly otlpEndpoint?: string;
  /**
   * Namespace of Prometheus (may scrape) and the labels its selectors match on ServiceMonitors.
   * @default { namespace: 'monitoring', selectorLabels: MONITOR_LABELS }
   */
  readonly monitoring?: { readonly namespace?: string; readonly selectorLabels?: Record<string, string> };
  /**
   * The Istio ingress gateway (namespace, service account, labels). Use
   * `ISTIOCTL_INGRESS_GATEWAY` for a cluster set up with `istioctl install`.
   * @default DEFAULT_INGRESS_GATEWAY: what the Pulumi platform installs (namespace 'istio-ingress', service account 'istio-ingressgateway', selector { istio: 'ingressgateway' })
   */
  readonly ingressGateway?: IngressGatewayOptions;
  /**
   * Namespace of istiod.
   * @default 'istio-system'
   */
  readonly istioNamespace?: string;
  /**
   * Egress to LLM providers.
   * @default HTTPS to public addresses from llm
   */
  readonly providerEgress?: ProviderEgress | false;
  /**
   * Extra egress for every pod by namespace and ports (e.g. the OpenTelemetry collector).
   * @default none
   */
  readonly extraEgress?: { readonly namespace: string; readonly ports: number[] }[];
  /**
   * Annotations of each service's ServiceAccount, e.g. `{ llm: { 'eks.amazonaws.com/role-arn':
   * <IRSA role> } }` so the llm pods reach Bedrock with the AWS default credential chain.
   * @default none
   */
  readonly serviceAccountAnnotations?: Partial<Record<ServiceName, Record<string, string>>>;
}

const PROVIDERS_DIR = '/etc/promptmesh/providers';
const PROVIDERS_KEY = 'providers.yaml';
const API_KEYS_DIR = '/etc/promptmesh/api-keys';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

/**
 * The whole in-cluster topology of promptmesh from one typed props object: the Namespace (Pod
 * Security `restricted`, Istio injection), the four {@link PromptService}s, {@link Mesh},
 * {@link NetworkPolicies}, {@link Redis}, {@link Postgres}, {@link Observability} (PrometheusRule,
 * Grafana dashboards) and the providers ConfigMap. Secrets
 * (provider API keys, API keys file, datastore passwords) are referenced, never created.
 *
 * `new PromptSystem(app, 'promptmesh', { images: 'ghcr.io/promptmesh/promptmesh:0.1.0' })` is
 * production-shaped: Redis Cluster, in-cluster PostgreSQL, 2-10 replicas per service, HTTPS
 * gateway, authentication on.
 */
export class PromptSystem extends Chart {
  /** The namespace everything lives in. */
  public readonly namespaceName: string;
  /** The four services. */
  public readonly services: Readonly<Record<ServiceName, PromptService>>;
  /** The Istio objects. */
  public readonly mesh: Mesh;
  /** The NetworkPolicies. */
  public readonly networkPolicies: NetworkPolicies;
  /** Redis. */
  public readonly redis: Redis;
  /** PostgreSQL. */
  public readonly postgres: Postgres;
  /** The alerts and dashboards, unless turned off. */
  public readonly observability?: Observability;
  /** Which services run on spot, after defaults. */
  public readonly placement: PlacementPolicy;

  constructor(scope: Construct, id: string, props: PromptSystemProps) {
    super(scope, id, { labels: props?.labels, disableResourceNameHashes: props?.disableResourceNameHashes });
    if (!props || props.images === undefined) {
      throw new Error(`'images' is required: one image reference for all services, or { default?, router?, templates?, context?, llm? }`);
    }
    const namespace = checkDnsLabel(props.namespace ?? 'promptmesh', 'namespace');
    this.namespaceName = namespace;
    const instance = checkDnsLabel(props.instance ?? 'promptmesh', 'instance');
    const environment = checkLabels({ env: props.environment ?? 'production' }, 'environment').env!;
    const logLevel = props.logLevel ?? 'info';
    if (!LOG_LEVELS.includes(logLevel)) throw new Error(`'logLevel' must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
    if (props.otlpEndpoint !== undefined && !/^https?:\/\/[^\s@]+$/.test(props.otlpEndpoint)) {
      throw new Error(`'otlpEndpoint' must be an http(s) URL without credentials, got ${JSON.stringify(props.otlpEndpoint)}`);
    }
    const imageOf = resolveImages(props.images);
    const monitoringNamespace = checkDnsLabel(props.monitoring?.namespace ?? 'monitoring', 'monitoring.namespace');
    const monitorLabels = checkLabels({ ...(props.monitoring?.selectorLabels ?? MONITOR_LABELS) }, 'monitoring.selectorLabels');
    for (const key of Object.keys(props.services ?? {})) {
      if (!(SERVICE_NAMES as readonly string[]).includes(key)) {
        throw new Error(`'services.${key}' is no service; allowed: ${SERVICE_NAMES.join(', ')}`);
      }
    }

    if (props.spot && props.placement !== undefined && props.placement !== 'all-spot') {
      throw new Error(`'spot' (all services on spot) contradicts 'placement' ${JSON.stringify(props.placement)}; set one of them`);
    }
    const placement = checkOneOf(props.placement ?? (props.spot ? 'all-spot' : 'request-path-on-demand'), PLACEMENT_POLICIES, 'placement');
    const capacities = serviceCapacities(placement);
    for (const svc of REQUEST_PATH_SERVICES) {
      const where = props.services?.[svc]?.capacity !== undefined ? `services.${svc}.capacity` : 'serviceDefaults.capacity';
      const asked = props.services?.[svc]?.capacity ?? props.serviceDefaults?.capacity;
      if (placement === 'request-path-on-demand' && asked === 'spot') {
        throw new Error(
          `'${where}' is spot, but placement 'request-path-on-demand' keeps ${REQUEST_PATH_SERVICES.join(' and ')} on on-demand nodes: a spot reclaim gives two minutes' notice, a stream may last ${LONGEST_STREAM_SECONDS} s`,
        );
      }
    }

    new k8s.KubeNamespace(this, 'Namespace', {
      metadata: {
        name: namespace,
        labels: {
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'latest',
          'pod-security.kubernetes.io/audit': 'restricted',
          'pod-security.kubernetes.io/warn': 'restricted',
          'istio-injection': 'enabled',
          'app.kubernetes.io/part-of': PART_OF,
          'app.kubernetes.io/managed-by': MANAGED_BY,
          'promptmesh.io/environment': environment,
        },
      },
    });

    this.redis = new Redis(this, 'Redis', { mode: 'cluster', serviceMonitorLabels: monitorLabels, ...(props.redis ?? {}), namespace });
    this.postgres = new Postgres(this, 'Postgres', { mode: 'in-cluster', serviceMonitorLabels: monitorLabels, ...(props.postgres ?? {}), namespace });

    let providersFile: ConfigFile | undefined;
    if (props.providers !== undefined) {
      const content = typeof props.providers === 'string' ? props.providers : stringify(props.providers);
      if (typeof props.providers === 'string' && props.providers.trim() === '') throw new Error(`'providers' must not be empty`);
      const configMapName = `${instance}-providers`;
      new k8s.KubeConfigMap(this, 'ProvidersConfig', {
        metadata: {
          name: configMapName,
          namespace,
          labels: { 'app.kubernetes.io/part-of': PART_OF, 'app.kubernetes.io/managed-by': MANAGED_BY, 'app.kubernetes.io/component': 'llm' },
        },
        data: { [PROVIDERS_KEY]: content },
      });
      providersFile = { configMapName, key: PROVIDERS_KEY, content, mountPath: PROVIDERS_DIR, env: ENV.providersFile };
    }
    const providerKeysSecret = props.providerKeysSecret ?? 'promptmesh-provider-keys';
    const apiKeys = props.apiKeys === undefined ? { name: 'promptmesh-api-keys', key: 'api-keys.yaml' } : props.apiKeys;

    const common: Record<string, string> = { [ENV.logLevel]: logLevel };
    if (props.otlpEndpoint) common[ENV.otlpEndpoint] = props.otlpEndpoint;
    const redisEnv = this.redis.clientEnv() as EnvVar[];
    const postgresEnv = this.postgres.clientEnv() as EnvVar[];
    const url = (svc: ServiceName) => `http://${svc}.${namespace}.svc.cluster.local:${SERVICES[svc].port}`;

    const make = (svc: ServiceName, extra: Partial<PromptServiceProps>): PromptService => {
      const settings: ServiceSettings = { ...(props.serviceDefaults ?? {}), ...(props.services?.[svc] ?? {}) };
      const capacity: Capacity = settings.capacity ?? capacities[svc];
      return new PromptService(this, svc, {
        ...settings,
        capacity,
        service: svc,
        image: imageOf(svc),
        namespace,
        instance,
        monitorLabels,
        env: { ...common, ...(props.serviceDefaults?.env ?? {}), ...(props.services?.[svc]?.env ?? {}), ...(extra.env ?? {}) },
        envVars: extra.envVars,
        configFiles: extra.configFiles,
        secretFiles: extra.secretFiles,
        secretEnvFrom: extra.secretEnvFrom,
        serviceAccountAnnotations: props.serviceAccountAnnotations?.[svc],
      });
    };
    const routerSecretFiles: SecretFile[] = apiKeys
      ? [{ secretName: apiKeys.name, key: apiKeys.key, mountPath: API_KEYS_DIR, env: ENV.apiKeysFile }]
      : [];
    const datastoreEnv: Record<Datastore, EnvVar[]> = { redis: redisEnv, postgres: postgresEnv };
    // The files a service reads, by the variable that names them (the contract lists which it reads).
    const files: Partial<Record<EnvName, Partial<PromptServiceProps>>> = {
      [ENV.apiKeysFile]: { secretFiles: routerSecretFiles },
      [ENV.providersFile]: {
        configFiles: providersFile ? [providersFile] : [],
        secretEnvFrom: providersFile ? [{ name: providerKeysSecret, optional: false }] : [],
      },
    };
    // Every service from its contract: where it finds the services it calls, its datastores' env, its files.
    const services = Object.fromEntries(
      SERVICE_NAMES.map((svc) => {
        const contract = SERVICES[svc];
        const callees = calleesOf(svc);
        return [
          svc,
          make(svc, {
            ...(callees.length > 0 ? { env: Object.fromEntries(callees.map((peer) => [SERVICES[peer].urlEnv!, url(peer)])) } : {}),
            envVars: contract.datastores.flatMap((d) => datastoreEnv[d]),
            ...Object.assign({}, ...contract.env.map((name) => files[name] ?? {})),
          }),
        ];
      }),
    ) as Record<ServiceName, PromptService>;
    this.services = services;
    const all = Object.values(services);

    this.mesh = new Mesh(this, 'Mesh', {
      namespace,
      services: all,
      gateway: props.gateway ?? { hosts: ['*'], tlsCredentialName: 'promptmesh-tls' },
      ingressGateway: props.ingressGateway,
      monitoringNamespace,
    });
    this.placement = placement;

    const datastores: DatastoreAccess[] = [
      {
        name: 'redis',
        podLabels: { ...this.redis.selectorLabels },
        ports: [this.redis.port],
        peerPorts: this.redis.mode === 'cluster' ? [this.redis.port, this.redis.clusterBusPort] : [this.redis.port],
        metricsPort: this.redis.metricsPort,
        clients: SERVICE_NAMES.filter((svc) => SERVICES[svc].datastores.includes('redis')),
        extraClients: this.redis.mode === 'cluster' ? [{ ...this.redis.bootstrapSelectorLabels }] : [],
      },
    ];
    const externalEndpoints: ExternalEndpoint[] = [];
    const postgresClients = SERVICE_NAMES.filter((svc) => SERVICES[svc].datastores.includes('postgres'));
    if (this.postgres.mode === 'in-cluster') {
      datastores.push({
        name: 'postgres',
        podLabels: { ...this.postgres.selectorLabels! },
        ports: [this.postgres.port],
        metricsPort: this.postgres.metricsPort,
        clients: postgresClients,
      });
    } else {
      externalEndpoints.push({ name: 'postgres', cidrs: props.externalPostgresCidrs ?? ['10.0.0.0/8'], ports: [this.postgres.port], clients: postgresClients });
    }
    if (props.observability !== false) {
      this.observability = new Observability(this, 'Observability', {
        ruleSelectorLabels: monitorLabels,
        routerService: services.router.service,
        ...(props.observability ?? {}),
        namespace,
      });
    }

    const callers: Partial<Record<ServiceName, readonly Caller[]>> = this.mesh.callers as Record<ServiceName, Caller[]>;
    this.networkPolicies = new NetworkPolicies(this, 'NetworkPolicies', {
      namespace,
      services: all,
      callers,
      datastores,
      externalEndpoints,
      providerEgress: props.providerEgress,
      // The Mesh's resolved gateway: the policies admit the same pods the mesh authorizes.
      ingressGateway: this.mesh.ingressGateway,
      istioNamespace: props.istioNamespace,
      monitoringNamespace,
      extraEgress: props.extraEgress,
    });
  }
}

function resolveImages(images: string | ServiceImages): (svc: ServiceName) => string {
  if (typeof images === 'string') return () => images;
  if (!images || typeof images !== 'object') {
    throw new Error(`'images' must be an image reference or { default?, router?, templates?, context?, llm? }, got ${JSON.stringify(images)}`);
  }
  for (const key of Object.keys(images)) {
    if (key !== 'default' && !(SERVICE_NAMES as readonly string[]).includes(key)) {
      throw new Error(`'images.${key}' is no service; allowed: default, ${SERVICE_NAMES.join(', ')}`);
    }
  }
  return (svc) => {
    const image = images[svc] ?? images.default;
    if (!image) throw new Error(`'images.${svc}' is missing and there is no 'images.default'`);
    return image;
  };
}
