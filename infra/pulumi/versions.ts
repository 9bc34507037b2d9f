/**
 * The Pulumi side's view of the pins table (`infra/versions.ts`, the one place every version
 * lives). These names are kept for library users; bump versions in `infra/versions.ts`.
 */
import {
  CLUSTER_AUTOSCALER_CHART, DEFAULT_KUBERNETES_VERSION, KUBERNETES_RELEASES, PLATFORM_CHARTS, RDS_POSTGRES_MAJOR,
  type EksAddonName, type KubernetesVersion, type PinnedChart,
} from '../versions';

export * from '../versions';

/** The Kubernetes minor EKS runs unless a stack sets `promptmesh:kubernetesVersion`. */
export const KUBERNETES_VERSION: KubernetesVersion = DEFAULT_KUBERNETES_VERSION;

/** EKS managed add-ons at the builds published for {@link KUBERNETES_VERSION}. */
export const EKS_ADDON_VERSIONS: Readonly<Record<EksAddonName, string>> = KUBERNETES_RELEASES[DEFAULT_KUBERNETES_VERSION].eksAddons;

/** The add-on builds for a Kubernetes minor of the pins table. */
export function eksAddonVersions(version: KubernetesVersion): Readonly<Record<EksAddonName, string>> {
  return KUBERNETES_RELEASES[version].eksAddons;
}

/** The platform's Helm charts. */
export const HELM_CHARTS = PLATFORM_CHARTS;

/** The cluster autoscaler (EKS only): the chart, and its image at the default Kubernetes minor. */
export const CLUSTER_AUTOSCALER: { chart: PinnedChart; imageTag: string } = {
  chart: CLUSTER_AUTOSCALER_CHART,
  imageTag: KUBERNETES_RELEASES[DEFAULT_KUBERNETES_VERSION].clusterAutoscalerImageTag,
};

/** The PostgreSQL engine version for managed databases (RDS): the major only. */
export const RDS_POSTGRES_VERSION = RDS_POSTGRES_MAJOR.version;
