import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { REQUESTS_PER_SECOND_ADAPTER_RULE } from '../k8s/monitoring';
import { HELM_CHARTS, type PinnedChart } from './versions';

/** A pod toleration, as Helm values take it. */
export interface Toleration {
  /** The taint key. */
  key: string;
  /** `Exists` or `Equal`. */
  operator: 'Exists' | 'Equal';
  /** The taint value when `operator` is `Equal`. */
  value?: string;
  /** The taint effect, or every effect when left out. */
  effect?: 'NoSchedule' | 'NoExecute' | 'PreferNoSchedule';
}

/** Arguments of {@link Platform}. */
export interface PlatformArgs {
  /** The Kubernetes provider of the target cluster. */
  provider: k8s.Provider;
  /**
   * Resources the platform must wait for (node groups, add-ons, the StorageClass).
   * @default []
   */
  dependsOn?: pulumi.Resource[];
  /**
   * Tolerations given to the platform's pods, so they may run on the system node group.
   * @default [{ key: 'CriticalAddonsOnly', operator: 'Exists' }]
   */
  tolerations?: Toleration[];
  /**
   * The StorageClass of Prometheus's and Grafana's volumes; `undefined` uses the cluster default.
   * @default undefined
   */
  storageClassName?: pulumi.Input<string>;
  /**
   * The ingress gateway's Service type. `LoadBalancer` on EKS (an internet-facing NLB);
   * `NodePort` or `LoadBalancer` (with `minikube tunnel`) on a local cluster.
   * @default 'LoadBalancer'
   */
  gatewayServiceType?: 'LoadBalancer' | 'NodePort' | 'ClusterIP';
  /**
   * Labels a ServiceMonitor, PodMonitor or PrometheusRule must carry for this Prometheus to load
   * it. The default selects every one in every namespace: the app's (labelled
   * `promptmesh.io/monitor=true`), its data stores' and the chart's own, whatever their labels.
   * @default {} (all)
   */
  monitoringSelectorLabels?: Record<string, string>;
  /**
   * How long Prometheus keeps samples.
   * @default '15d'
   */
  prometheusRetention?: string;
  /**
   * The size of Prometheus's volume.
   * @default '50Gi'
   */
  prometheusStorageSize?: string;
  /**
   * Prometheus replicas (2 in production for an HA pair).
   * @default 1
   */
  prometheusReplicas?: number;
  /**
   * Replicas of istiod and of the ingress gateway (at least 2 in production).
   * @default 2
   */
  meshReplicas?: number;
  /**
   * Pinned charts, to override one (normally left alone: versions.ts is the one place).
   * @default HELM_CHARTS from versions.ts
   */
  charts?: Partial<typeof HELM_CHARTS>;
}

/** Namespaces the platform installs into. */
export const PLATFORM_NAMESPACES = {
  istioSystem: 'istio-system',
  istioIngress: 'istio-ingress',
  monitoring: 'monitoring',
  observability: 'observability',
} as const;

/** Release names; other services' names derive from them (e.g. `kube-prometheus-stack-grafana`). */
export const RELEASE_NAMES = {
  istioBase: 'istio-base',
  istiod: 'istiod',
  istioCni: 'istio-cni',
  istioGateway: 'istio-ingressgateway',
  kubePrometheusStack: 'kube-prometheus-stack',
  prometheusAdapter: 'prometheus-adapter',
  opentelemetryCollector: 'otel-collector',
  jaeger: 'jaeger',
} as const;

/** Where the app sends traces (OTLP over HTTP). */
export const OTLP_ENDPOINT = `http://${RELEASE_NAMES.opentelemetryCollector}-opentelemetry-collector.${PLATFORM_NAMESPACES.observability}.svc.cluster.local:4318`;

/**
 * The cluster platform the app needs, as pinned Helm releases: Istio (base CRDs, the CNI node
 * agent, istiod, an ingress gateway), kube-prometheus-stack (Prometheus selecting the app's ServiceMonitors and
 * rules by label, Grafana with its dashboard sidecar on `grafana_dashboard=1`),
 * prometheus-adapter (the requests-per-second metric behind the HPAs, REQUESTS_PER_SECOND_METRIC) and tracing (an
 * OpenTelemetry collector exporting to Jaeger). `crdsReady` lists what must exist before
 * anything uses Istio or prometheus-operator kinds.
 */
export class Platform extends pulumi.ComponentResource {
  /** Everything that creates the CRDs and webhooks the app's objects need; depend on these. */
  public readonly crdsReady: pulumi.Resource[];
  /** Every release, by key of HELM_CHARTS. */
  public readonly releases: Record<keyof typeof HELM_CHARTS, k8s.helm.v3.Release>;
  /** The ingress gateway's Service (namespace/name). */
  public readonly gatewayService: { namespace: string; name: string };
  /** Grafana's in-cluster URL. */
  public readonly grafanaInClusterUrl: string;
  /** The Grafana admin password (secret). */
  public readonly grafanaAdminPassword: pulumi.Output<string>;
  /** The OTLP/HTTP endpoint the app exports traces to. */
  public readonly otlpEndpoint: string;

  constructor(name: string, args: PlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:k8s:Platform', name, {}, opts);
    const charts = { ...HELM_CHARTS, ...(args.charts ?? {}) };
    for (const [key, c] of Object.entries(charts)) {
      if (!/^\d+\.\d+\.\d+$/.test(c.version)) throw new Error(`Platform ${name}: 'charts.${key}.version' must be an exact version like 1.2.3 (got ${c.version})`);
      if (!/^https:\/\//.test(c.repo)) throw new Error(`Platform ${name}: 'charts.${key}.repo' must be an https URL (got ${c.repo})`);
    }
    const replicas = args.meshReplicas ?? 2;
    if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`Platform ${name}: 'meshReplicas' must be an integer >= 1 (got ${replicas})`);
    const promReplicas = args.prometheusReplicas ?? 1;
    if (!Number.isInteger(promReplicas) || promReplicas < 1) throw new Error(`Platform ${name}: 'prometheusReplicas' must be an integer >= 1 (got ${promReplicas})`);
    const selector = args.monitoringSelectorLabels ?? {};
    const tolerations = args.tolerations ?? [{ key: 'CriticalAddonsOnly', operator: 'Exists' }];
    const ns = PLATFORM_NAMESPACES;

    const release = (key: keyof typeof HELM_CHARTS, namespace: string, values: pulumi.Inputs, dependsOn: pulumi.Resource[] = []) => {
      const c: PinnedChart = charts[key];
      return new k8s.helm.v3.Release(`${name}-${RELEASE_NAMES[key]}`, {
        name: RELEASE_NAMES[key],
        chart: c.chart,
        version: c.version,
        repositoryOpts: { repo: c.repo },
        namespace,
        createNamespace: true,
        values,
        cleanupOnFail: true,
        timeout: 900,
      }, { parent: this, provider: args.provider, dependsOn: [...(args.dependsOn ?? []), ...dependsOn] });
    };

    // Istio: CRDs (base), then the control plane with its injection webhook, then the gateway.
    const istioBase = release('istioBase', ns.istioSystem, { defaultRevision: 'default' });
    // The CNI node agent sets up the sidecar's traffic redirection, so meshed pods need no
    // NET_ADMIN init container and pass Pod Security `restricted` (the app namespace enforces it).
    const istioCni = release('istioCni', ns.istioSystem, {}, [istioBase]);
    const istiod = release('istiod', ns.istioSystem, {
      pilot: { replicaCount: replicas, autoscaleMin: replicas, tolerations, cni: { enabled: true } },
      global: { defaultPodDisruptionBudget: { enabled: true } },
      meshConfig: {
        enableTracing: true,
        extensionProviders: [{ name: 'otel', opentelemetry: { service: `${RELEASE_NAMES.opentelemetryCollector}-opentelemetry-collector.${ns.observability}.svc.cluster.local`, port: 4317 } }],
        defaultProviders: { tracing: ['otel'] },
        outboundTrafficPolicy: { mode: 'ALLOW_ANY' },
      },
    }, [istioBase, istioCni]);
    const gatewayType = args.gatewayServiceType ?? 'LoadBalancer';
    const istioGateway = release('istioGateway', ns.istioIngress, {
      replicaCount: replicas,
      autoscaling: { minReplicas: replicas },
      tolerations,
      service: {
        type: gatewayType,
        annotations: gatewayType === 'LoadBalancer'
          ? { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb', 'service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled': 'true' }
          : {},
      },
    }, [istiod]);
    this.gatewayService = { namespace: ns.istioIngress, name: RELEASE_NAMES.istioGateway };

    // Grafana's admin password: generated, kept in a Secret the chart reads (never in values).
    const grafanaPassword = new random.RandomPassword(`${name}-grafana-admin`, { length: 32, special: false }, { parent: this });
    this.grafanaAdminPassword = pulumi.secret(grafanaPassword.result);
    const grafanaSecretName = 'grafana-admin';
    const monitoringNs = new k8s.core.v1.Namespace(`${name}-monitoring`, { metadata: { name: ns.monitoring } }, { parent: this, provider: args.provider, dependsOn: args.dependsOn });
    const grafanaSecret = new k8s.core.v1.Secret(`${name}-grafana-admin`, {
      metadata: { name: grafanaSecretName, namespace: ns.monitoring },
      type: 'Opaque',
      stringData: { 'admin-user': 'admin', 'admin-password': this.grafanaAdminPassword },
    }, { parent: this, provider: args.provider, dependsOn: [monitoringNs] });

    const storage = (size: string) => ({
      volumeClaimTemplate: { spec: { ...(args.storageClassName ? { storageClassName: args.storageClassName } : {}), accessModes: ['ReadWriteOnce'], resources: { requests: { storage: size } } } },
    });
    const kps = release('kubePrometheusStack', ns.monitoring, {
      crds: { enabled: true },
      prometheusOperator: { tolerations },
      prometheus: {
        prometheusSpec: {
          replicas: promReplicas,
          retention: args.prometheusRetention ?? '15d',
          tolerations,
          // Load the app's monitors and rules from every namespace, selected by label only.
          serviceMonitorSelectorNilUsesHelmValues: false,
          podMonitorSelectorNilUsesHelmValues: false,
          ruleSelectorNilUsesHelmValues: false,
          serviceMonitorSelector: { matchLabels: selector },
          podMonitorSelector: { matchLabels: selector },
          ruleSelector: { matchLabels: selector },
          serviceMonitorNamespaceSelector: {},
          podMonitorNamespaceSelector: {},
          ruleNamespaceSelector: {},
          storageSpec: storage(args.prometheusStorageSize ?? '50Gi'),
        },
      },
      alertmanager: { alertmanagerSpec: { tolerations } },
      grafana: {
        admin: { existingSecret: grafanaSecretName, userKey: 'admin-user', passwordKey: 'admin-password' },
        tolerations,
        sidecar: {
          dashboards: { enabled: true, label: 'grafana_dashboard', labelValue: '1', searchNamespace: 'ALL' },
          datasources: { enabled: true },
        },
        'grafana.ini': { analytics: { check_for_updates: false, reporting_enabled: false }, users: { allow_sign_up: false } },
      },
      'kube-state-metrics': { tolerations },
      // Node exporters run on every node, spot included.
      'prometheus-node-exporter': { tolerations: [{ operator: 'Exists' }] },
    }, [grafanaSecret]);
    this.grafanaInClusterUrl = `http://${RELEASE_NAMES.kubePrometheusStack}-grafana.${ns.monitoring}.svc.cluster.local`;

    // prometheus-adapter: the per-pod request rate the HPAs scale on (the rule comes from the
    // constructs, so the metric name the HPA asks for and the one served cannot drift apart).
    const adapter = release('prometheusAdapter', ns.monitoring, {
      prometheus: { url: `http://${RELEASE_NAMES.kubePrometheusStack}-prometheus.${ns.monitoring}.svc`, port: 9090 },
      replicas: 2,
      tolerations,
      rules: {
        default: false,
        custom: [REQUESTS_PER_SECOND_ADAPTER_RULE],
      },
    }, [kps]);

    // Tracing: the app (and Istio) send OTLP to the collector, which forwards to Jaeger (v2, chart
    // 4.x: no agent any more).
    const jaeger = release('jaeger', ns.observability, {
      provisionDataStore: { cassandra: false, elasticsearch: false, kafka: false },
      allInOne: { enabled: true, tolerations },
      storage: { type: 'memory' },
      collector: { enabled: false },
      query: { enabled: false },
    });
    const otel = release('opentelemetryCollector', ns.observability, {
      mode: 'deployment',
      image: { repository: 'otel/opentelemetry-collector-k8s' },
      tolerations,
      config: {
        receivers: { otlp: { protocols: { grpc: { endpoint: '${env:MY_POD_IP}:4317' }, http: { endpoint: '${env:MY_POD_IP}:4318' } } } },
        exporters: { 'otlp/jaeger': { endpoint: `${RELEASE_NAMES.jaeger}-collector.${ns.observability}.svc.cluster.local:4317`, tls: { insecure: true } } },
        service: { pipelines: { traces: { receivers: ['otlp'], processors: ['memory_limiter', 'batch'], exporters: ['otlp/jaeger'] } } },
      },
    }, [jaeger]);
    this.otlpEndpoint = OTLP_ENDPOINT;

    this.releases = {
      istioBase, istiod, istioCni, istioGateway, kubePrometheusStack: kps, prometheusAdapter: adapter, opentelemetryCollector: otel, jaeger,
    };
    this.crdsReady = [istioBase, istioCni, istiod, istioGateway, kps, adapter];
    this.registerOutputs({ grafanaInClusterUrl: this.grafanaInClusterUrl, otlpEndpoint: this.otlpEndpoint });
  }
}
