/**
 * postgres_exporter for a PostgreSQL that does not run in the cluster (RDS): the same `pg_up`
 * series the in-cluster PostgreSQL's sidecar gives, so `PromptmeshPostgresDown` and the
 * dashboards have data in every environment.
 */
import { Construct } from 'constructs';
import { k8s } from 'cdk8s-plus-27';
import { IMAGES } from '../versions';
import {
  checkName, checkSecretRef, containerResources, DEFAULT_PROMETHEUS_SELECTOR_LABELS, pinnedImage, resolveNamespace,
  restrictedContainerSecurityContext, restrictedPodSecurityContext, serviceMonitor, type SecretKeyReference,
} from './data-store';
import { POSTGRES_METRICS_PORT, POSTGRES_PORT } from './postgres';
import { PART_OF } from './labels';

/** The exporter image's user (the image runs as `nobody`). */
const EXPORTER_UID = 65534;

/** Props of {@link PostgresExporter}. */
export interface PostgresExporterProps {
  /**
   * The Secret key holding the exporter's connection string (`DATA_SOURCE_NAME`:
   * `postgresql://user:password@host:5432/db?sslmode=require`). A separate key from the services'
   * `DATABASE_URL`: the exporter's driver does not know `sslmode=no-verify`.
   */
  readonly dataSourceSecret: SecretKeyReference;
  /** The database's address ranges (the VPC's CIDR for RDS): the only egress besides DNS. */
  readonly databaseCidrs: string[];
  /**
   * Base name of every object.
   * @default 'postgres-exporter'
   */
  readonly name?: string;
  /**
   * The namespace; defaults to the chart's.
   * @default the chart's namespace
   */
  readonly namespace?: string;
  /**
   * The exporter image, with an exact tag.
   * @default IMAGES.postgresExporter from infra/versions.ts
   */
  readonly image?: string;
  /**
   * The namespace Prometheus runs in: the only source admitted to the metrics port.
   * @default 'monitoring'
   */
  readonly monitoringNamespace?: string;
  /**
   * Labels of the ServiceMonitor (what the Prometheus selects).
   * @default { release: 'kube-prometheus-stack' }
   */
  readonly serviceMonitorLabels?: Record<string, string>;
}

/**
 * One postgres_exporter Deployment (outside the mesh: it talks only to the database and to
 * Prometheus), its metrics Service and ServiceMonitor, and NetworkPolicies that let it reach
 * only DNS and the database port, and be reached only by Prometheus.
 */
export class PostgresExporter extends Construct {
  /** The labels selecting the exporter pod. */
  public readonly selectorLabels: Record<string, string>;

  constructor(scope: Construct, id: string, props: PostgresExporterProps) {
    super(scope, id);
    const what = `PostgresExporter ${id}`;
    const name = props.name ?? 'postgres-exporter';
    checkName(what, 'name', name);
    checkSecretRef(what, 'dataSourceSecret', props.dataSourceSecret);
    if (!Array.isArray(props.databaseCidrs) || props.databaseCidrs.length === 0 || props.databaseCidrs.some((c) => !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(c))) {
      throw new Error(`${what}: 'databaseCidrs' must list IPv4 CIDRs like 10.42.0.0/16 (got ${JSON.stringify(props.databaseCidrs)})`);
    }
    const image = pinnedImage(what, 'image', props.image ?? IMAGES.postgresExporter.image);
    const namespace = resolveNamespace(this, props.namespace);
    const monitoringNamespace = props.monitoringNamespace ?? 'monitoring';
    this.selectorLabels = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': PART_OF };
    const labels = { ...this.selectorLabels, 'app.kubernetes.io/component': 'metrics' };
    const resources = containerResources(what, 'resources', undefined, { requests: { cpu: '20m', memory: '32Mi' }, limits: { cpu: '200m', memory: '64Mi' } });

    new k8s.KubeDeployment(this, 'deployment', {
      metadata: { name, namespace, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: { ...this.selectorLabels } },
        template: {
          metadata: { labels: { ...labels, 'sidecar.istio.io/inject': 'false' } },
          spec: {
            automountServiceAccountToken: false,
            securityContext: restrictedPodSecurityContext(EXPORTER_UID, EXPORTER_UID),
            containers: [{
              name: 'exporter',
              image,
              imagePullPolicy: 'IfNotPresent',
              env: [{ name: 'DATA_SOURCE_NAME', valueFrom: { secretKeyRef: { name: props.dataSourceSecret.name, key: props.dataSourceSecret.key } } }],
              args: [`--web.listen-address=:${POSTGRES_METRICS_PORT}`],
              ports: [{ name: 'metrics', containerPort: POSTGRES_METRICS_PORT, protocol: 'TCP' }],
              resources: resources.spec,
              securityContext: restrictedContainerSecurityContext(),
              readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 10, timeoutSeconds: 5 },
              livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 20, timeoutSeconds: 5, failureThreshold: 6 },
            }],
          },
        },
      },
    });

    new k8s.KubeService(this, 'service', {
      metadata: { name, namespace, labels },
      spec: {
        type: 'ClusterIP',
        selector: { ...this.selectorLabels },
        ports: [{ name: 'metrics', port: POSTGRES_METRICS_PORT, targetPort: k8s.IntOrString.fromString('metrics'), protocol: 'TCP' }],
      },
    });

    serviceMonitor(this, 'monitor', {
      name,
      namespace,
      labels: { ...labels, ...(props.serviceMonitorLabels ?? DEFAULT_PROMETHEUS_SELECTOR_LABELS) },
      selector: { ...this.selectorLabels },
      endpoints: [{ port: 'metrics' }],
    });

    new k8s.KubeNetworkPolicy(this, 'policy', {
      metadata: { name, namespace, labels },
      spec: {
        podSelector: { matchLabels: { ...this.selectorLabels } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{
          from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': monitoringNamespace } } }],
          ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(POSTGRES_METRICS_PORT) }],
        }],
        egress: [
          {
            to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
            ports: [{ protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) }, { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) }],
          },
          {
            to: props.databaseCidrs.map((cidr) => ({ ipBlock: { cidr } })),
            ports: [{ protocol: 'TCP', port: k8s.IntOrString.fromNumber(POSTGRES_PORT) }],
          },
        ],
      },
    });
  }
}
