/**
 * Every version the Pulumi program pins, in one place. Bump a version here and nowhere else;
 * the tests check that each one is an exact version (no ranges, no `latest`).
 *
 * The EKS add-on versions belong to one Kubernetes minor: when `KUBERNETES_VERSION` moves, list
 * the matching builds with `aws eks describe-addon-versions --kubernetes-version <v>
 * --addon-name <name>` and update them together.
 */

/** The Kubernetes minor EKS runs unless a stack sets `promptmesh:kubernetesVersion`. */
export const KUBERNETES_VERSION = '1.33';

/** EKS managed add-ons, by add-on name, at builds published for {@link KUBERNETES_VERSION}. */
export const EKS_ADDON_VERSIONS = {
  'vpc-cni': 'v1.20.1-eksbuild.3',
  coredns: 'v1.12.2-eksbuild.4',
  'kube-proxy': 'v1.33.3-eksbuild.4',
  'aws-ebs-csi-driver': 'v1.47.0-eksbuild.1',
  'metrics-server': 'v0.8.0-eksbuild.2',
} as const;

/** An EKS add-on this program installs. */
export type EksAddonName = keyof typeof EKS_ADDON_VERSIONS;

/** A Helm chart pinned to one exact version in one repository. */
export interface PinnedChart {
  /** The chart's name in its repository. */
  readonly chart: string;
  /** The exact chart version (semver, no range). */
  readonly version: string;
  /** The chart repository URL. */
  readonly repo: string;
}

const ISTIO_REPO = 'https://istio-release.storage.googleapis.com/charts';
const ISTIO_VERSION = '1.27.1';

/** The platform's Helm charts. */
export const HELM_CHARTS = {
  istioBase: { chart: 'base', version: ISTIO_VERSION, repo: ISTIO_REPO },
  istiod: { chart: 'istiod', version: ISTIO_VERSION, repo: ISTIO_REPO },
  istioCni: { chart: 'cni', version: ISTIO_VERSION, repo: ISTIO_REPO },
  istioGateway: { chart: 'gateway', version: ISTIO_VERSION, repo: ISTIO_REPO },
  kubePrometheusStack: {
    chart: 'kube-prometheus-stack',
    version: '77.1.1',
    repo: 'https://prometheus-community.github.io/helm-charts',
  },
  prometheusAdapter: {
    chart: 'prometheus-adapter',
    version: '5.1.0',
    repo: 'https://prometheus-community.github.io/helm-charts',
  },
  opentelemetryCollector: {
    chart: 'opentelemetry-collector',
    version: '0.131.0',
    repo: 'https://open-telemetry.github.io/opentelemetry-helm-charts',
  },
  jaeger: { chart: 'jaeger', version: '3.4.1', repo: 'https://jaegertracing.github.io/helm-charts' },
} as const satisfies Record<string, PinnedChart>;

/** The cluster autoscaler (EKS only): the chart, and its image at the Kubernetes minor it serves. */
export const CLUSTER_AUTOSCALER = {
  chart: { chart: 'cluster-autoscaler', version: '9.46.6', repo: 'https://kubernetes.github.io/autoscaler' },
  imageTag: 'v1.33.0',
} as const satisfies { chart: PinnedChart; imageTag: string };

/** The PostgreSQL engine version for managed databases (RDS). */
export const RDS_POSTGRES_VERSION = '16.8';

