/**
 * THE pins table: every version this repository deploys (Kubernetes, its EKS add-ons, Helm
 * charts, container images, the RDS engine, the Node base image), each with the date its
 * support ends. Both sides read it: the cdk8s constructs (`infra/k8s`, images) and the Pulumi
 * components (`infra/pulumi`, everything else). It imports nothing, so a cdk8s-only user never
 * loads the AWS SDK through it.
 *
 * `test/versions.test.ts` fails once today is past any pin's `endOfSupport`: bump the pin (and
 * its date) here, nowhere else. Where a date could not be looked up when it was pinned, `source`
 * says `assumed: ...` and why; check those first when you bump.
 *
 * Kubernetes: EKS's standard support (14 months from the EKS release). Charts and images: the
 * upstream project's end of life where it publishes one, otherwise a review-by date one year
 * after the release (`source` says which).
 */

/** When a pin stops being supported, and where that date comes from. */
export interface SupportWindow {
  /** The last day of support, `YYYY-MM-DD` (UTC). */
  readonly endOfSupport: string;
  /** Where the date comes from (a URL, or `assumed: <reason>`). */
  readonly source: string;
}

/** A Helm chart pinned to one exact version in one repository. */
export interface PinnedChart {
  /** The chart's name in its repository. */
  readonly chart: string;
  /** The exact chart version (semver, no range; cert-manager's carries a leading `v`). */
  readonly version: string;
  /** The chart repository URL. */
  readonly repo: string;
}

/** A pinned chart with its support window. */
export interface ChartPin extends PinnedChart, SupportWindow {}

/** A container image pinned to an exact tag. */
export interface ImagePin extends SupportWindow {
  /** `repository:tag`, as the Pod spec takes it (Docker Hub images without a registry host). */
  readonly image: string;
  /** The registry the image comes from, so a pull-through cache can rewrite it. */
  readonly registry: 'docker.io' | 'quay.io' | 'registry.k8s.io' | 'ghcr.io';
}

/** The EKS managed add-ons the cluster runs. */
export type EksAddonName = 'vpc-cni' | 'coredns' | 'kube-proxy' | 'aws-ebs-csi-driver' | 'metrics-server';

/** Everything pinned per Kubernetes minor: EKS's support window, the add-on builds, the autoscaler. */
export interface KubernetesRelease extends SupportWindow {
  /** EKS managed add-on builds published for this minor (`aws eks describe-addon-versions --kubernetes-version <v>`). */
  readonly eksAddons: Readonly<Record<EksAddonName, string>>;
  /** The cluster-autoscaler image tag; its minor must equal the cluster's. */
  readonly clusterAutoscalerImageTag: string;
}

const EKS_CALENDAR = 'https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html (standard support: 14 months)';
const ADDONS_ASSUMED = 'add-on builds assumed from the EKS release pattern; confirm with aws eks describe-addon-versions before the first pulumi up';

/**
 * The Kubernetes minors a stack may run (`promptmesh:kubernetesVersion`), each with the add-on
 * builds and the autoscaler that belong to it. Add a minor here before EKS offers it to stacks.
 */
export const KUBERNETES_RELEASES = {
  '1.35': {
    endOfSupport: '2027-03-27',
    source: `${EKS_CALENDAR}; endoflife.date/amazon-eks (EKS 1.35 released 2026-01-28); ${ADDONS_ASSUMED}`,
    eksAddons: {
      'vpc-cni': 'v1.21.1-eksbuild.1',
      coredns: 'v1.13.1-eksbuild.1',
      'kube-proxy': 'v1.35.0-eksbuild.2',
      'aws-ebs-csi-driver': 'v1.53.0-eksbuild.1',
      'metrics-server': 'v0.8.0-eksbuild.3',
    },
    clusterAutoscalerImageTag: 'v1.35.0',
  },
  '1.36': {
    endOfSupport: '2027-08-31',
    source: `assumed: EKS 1.36 released about 2026-06 (four months after 1.35) plus 14 months of standard support; ${ADDONS_ASSUMED}`,
    eksAddons: {
      'vpc-cni': 'v1.21.1-eksbuild.1',
      coredns: 'v1.13.1-eksbuild.1',
      'kube-proxy': 'v1.36.0-eksbuild.1',
      'aws-ebs-csi-driver': 'v1.53.0-eksbuild.1',
      'metrics-server': 'v0.8.0-eksbuild.3',
    },
    clusterAutoscalerImageTag: 'v1.36.0',
  },
} as const satisfies Record<string, KubernetesRelease>;

/** A Kubernetes minor this repository can deploy. */
export type KubernetesVersion = keyof typeof KUBERNETES_RELEASES;

/** The Kubernetes minor EKS runs unless a stack sets `promptmesh:kubernetesVersion`. */
export const DEFAULT_KUBERNETES_VERSION: KubernetesVersion = '1.35';

/** Whether `v` is a minor in {@link KUBERNETES_RELEASES}. */
export function isKubernetesVersion(v: string): v is KubernetesVersion {
  return Object.prototype.hasOwnProperty.call(KUBERNETES_RELEASES, v);
}

/** Istio: one release for every accepted Kubernetes minor (the mesh's objects use the v1 APIs). */
export const ISTIO = {
  version: '1.31.1',
  /** The Kubernetes minors this Istio release supports (istio.io "Supported releases"). */
  kubernetesVersions: ['1.33', '1.34', '1.35', '1.36', '1.37'],
  endOfSupport: '2027-03-31',
  source: 'assumed: Istio 1.31 released 2026-08 (1.30 was 2026-05-18, one minor a quarter), supported until about six weeks after 1.33 (istio.io support policy); Kubernetes range shifted by one from 1.30 (1.32-1.36, istio.io supportStatus.yml)',
} as const;

const ISTIO_REPO = 'https://istio-release.storage.googleapis.com/charts';
const PROMETHEUS_COMMUNITY = 'https://prometheus-community.github.io/helm-charts';
const istioChart = (chart: string): ChartPin => ({ chart, version: ISTIO.version, repo: ISTIO_REPO, endOfSupport: ISTIO.endOfSupport, source: ISTIO.source });

/** The platform's Helm charts (what `Platform` installs). */
export const PLATFORM_CHARTS = {
  istioBase: istioChart('base'),
  istiod: istioChart('istiod'),
  istioCni: istioChart('cni'),
  istioGateway: istioChart('gateway'),
  kubePrometheusStack: {
    chart: 'kube-prometheus-stack', version: '88.0.0', repo: PROMETHEUS_COMMUNITY,
    endOfSupport: '2027-11-01', source: 'review-by: one year after pinning; the project supports only its latest major (88.x current per issue 11)',
  },
  prometheusAdapter: {
    chart: 'prometheus-adapter', version: '5.3.0', repo: PROMETHEUS_COMMUNITY,
    endOfSupport: '2027-11-01', source: 'review-by: one year after pinning (5.3 current per issue 11)',
  },
  opentelemetryCollector: {
    chart: 'opentelemetry-collector', version: '0.170.0', repo: 'https://open-telemetry.github.io/opentelemetry-helm-charts',
    endOfSupport: '2027-06-01', source: 'review-by: six months after pinning; the collector ships every two weeks and supports only the latest (0.170 current per issue 11)',
  },
  jaeger: {
    chart: 'jaeger', version: '4.0.0', repo: 'https://jaegertracing.github.io/helm-charts',
    endOfSupport: '2027-11-01', source: 'review-by: one year after pinning; chart 4.x deploys Jaeger v2 (v1 reached end of life 2025-12-31)',
  },
} as const satisfies Record<string, ChartPin>;

/** cert-manager, which issues the ingress gateway's certificate (ACME DNS-01 on Route 53). */
export const CERT_MANAGER_CHART = {
  chart: 'cert-manager', version: 'v1.21.0', repo: 'https://charts.jetstack.io',
  endOfSupport: '2027-02-28',
  source: 'assumed: cert-manager supports a release until the release of the one two after it (cert-manager.io/docs/releases); 1.21 shipped 2026-07, 1.23 expected about 2027-02',
} as const satisfies ChartPin;

/** The cluster autoscaler's chart (the image tag comes per Kubernetes minor from {@link KUBERNETES_RELEASES}). */
export const CLUSTER_AUTOSCALER_CHART = {
  chart: 'cluster-autoscaler', version: '9.56.0', repo: 'https://kubernetes.github.io/autoscaler',
  endOfSupport: '2027-03-01', source: 'review-by: one year after the chart release (2026-03-02); the image, not the chart, follows the cluster minor',
} as const satisfies ChartPin;

/** Container images the constructs run beside the services. */
export const IMAGES = {
  /** Redis 8 (Alpine): the data store of context, cache, limits and pub/sub. */
  redis: {
    image: 'redis:8.4.0-alpine', registry: 'docker.io',
    endOfSupport: '2027-11-30', source: 'assumed: Redis Open Source 8.4 (2025-11) is maintained while it is one of the two latest minors; review one year after pinning',
  },
  /** redis_exporter, the sidecar behind `redis_up`. */
  redisExporter: {
    image: 'oliver006/redis_exporter:v1.80.0', registry: 'docker.io',
    endOfSupport: '2027-06-01', source: 'review-by: no published support policy; six months after pinning',
  },
  /** PostgreSQL 17, the same major as the RDS engine ({@link RDS_POSTGRES_MAJOR}). */
  postgres: {
    image: 'postgres:17.7-bookworm', registry: 'docker.io',
    endOfSupport: '2029-11-08', source: 'https://www.postgresql.org/support/versioning/ (17: final release 2029-11-08)',
  },
  /** postgres_exporter, the sidecar (and the RDS exporter) behind `pg_up`. */
  postgresExporter: {
    image: 'quay.io/prometheuscommunity/postgres-exporter:v0.18.1', registry: 'quay.io',
    endOfSupport: '2027-06-01', source: 'review-by: no published support policy; six months after pinning',
  },
  /**
   * kubectl, for the quiet hours jobs (`kubectl patch`): the Kubernetes project's own image at
   * the default cluster minor (kubectl supports one minor of skew either way).
   */
  kubectl: {
    image: 'registry.k8s.io/kubectl:v1.35.0', registry: 'registry.k8s.io',
    endOfSupport: '2027-03-27', source: `the default Kubernetes minor's EKS standard support (${EKS_CALENDAR}); kubectl supports +/-1 minor of skew`,
  },
} as const satisfies Record<string, ImagePin>;

/** The services' base image (the Dockerfile's `ARG NODE_IMAGE`, checked against this pin). */
export const NODE_IMAGE = {
  image: 'node:24.22-bookworm-slim', registry: 'docker.io',
  endOfSupport: '2028-04-30', source: 'https://nodejs.org/en/about/previous-releases (Node 24 LTS: end of life 2028-04-30)',
} as const satisfies ImagePin;

/**
 * The RDS PostgreSQL engine: the MAJOR version only. With automatic minor upgrades on, a full
 * version (17.4) would make the next `pulumi up` try to downgrade what RDS upgraded.
 */
export const RDS_POSTGRES_MAJOR = {
  version: '17',
  endOfSupport: '2030-02-28',
  source: 'https://docs.aws.amazon.com/AmazonRDS/latest/PostgreSQLReleaseNotes/postgresql-release-calendar.html (RDS end of standard support for 17: 2030-02-28)',
} as const satisfies SupportWindow & { version: string };

/** Every pin with its support window, named, for the date test and docs. */
export function allPins(): { name: string; version: string; endOfSupport: string; source: string }[] {
  const pins: { name: string; version: string; endOfSupport: string; source: string }[] = [];
  for (const [minor, r] of Object.entries(KUBERNETES_RELEASES)) {
    pins.push({ name: `kubernetes ${minor} (EKS)`, version: minor, endOfSupport: r.endOfSupport, source: r.source });
    for (const [addon, build] of Object.entries(r.eksAddons)) pins.push({ name: `eks add-on ${addon} for ${minor}`, version: build, endOfSupport: r.endOfSupport, source: r.source });
    pins.push({ name: `cluster-autoscaler image for ${minor}`, version: r.clusterAutoscalerImageTag, endOfSupport: r.endOfSupport, source: r.source });
  }
  pins.push({ name: 'istio', version: ISTIO.version, endOfSupport: ISTIO.endOfSupport, source: ISTIO.source });
  for (const [key, c] of Object.entries({ ...PLATFORM_CHARTS, certManager: CERT_MANAGER_CHART, clusterAutoscaler: CLUSTER_AUTOSCALER_CHART })) {
    pins.push({ name: `chart ${key} (${c.chart})`, version: c.version, endOfSupport: c.endOfSupport, source: c.source });
  }
  for (const [key, i] of Object.entries({ ...IMAGES, node: NODE_IMAGE })) pins.push({ name: `image ${key}`, version: i.image, endOfSupport: i.endOfSupport, source: i.source });
  pins.push({ name: 'rds postgres major', version: RDS_POSTGRES_MAJOR.version, endOfSupport: RDS_POSTGRES_MAJOR.endOfSupport, source: RDS_POSTGRES_MAJOR.source });
  return pins;
}
