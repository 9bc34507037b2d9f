/**
 * How Prometheus scrapes a PromptService: a ServiceMonitor, and with Istio's merged metrics a
 * headless Service for the agent's port, so that port stays out of the Service clients call.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PATHS } from '../../contracts/index';
import { ServiceMonitor, ServiceMonitorSpecEndpointsScheme } from '../../imports/monitoring.coreos.com';
import { TRACK_LABEL } from './labels';
import { ISTIO_MERGED_METRICS_PATH, ISTIO_MERGED_METRICS_PORT, JOB_LABEL } from './monitoring';

/** How Prometheus scrapes the service's metrics. */
export type MetricsScraping = 'istio-agent' | 'app';
/** Every {@link MetricsScraping}. */
export const METRICS_SCRAPING: readonly MetricsScraping[] = ['istio-agent', 'app'];

/** Props of {@link ServiceScraping}. */
export interface ServiceScrapingProps {
  /** Name of the service (the ServiceMonitor's; the metrics Service is `<name>-metrics`). */
  readonly name: string;
  /** Namespace. */
  readonly namespace: string;
  /** Labels of the service's objects. */
  readonly labels: Record<string, string>;
  /** Labels selecting the service's pods. */
  readonly selectorLabels: Record<string, string>;
  /** Labels Prometheus' `serviceMonitorSelector` matches. */
  readonly monitorLabels: Record<string, string>;
  /** `istio-agent` (merged metrics on 15020) or `app` (the app's `/metrics` on `http`). */
  readonly scraping: MetricsScraping;
  /** Scrape interval (Prometheus duration). */
  readonly interval: string;
}

/** The ServiceMonitor of a PromptService (and the metrics Service it selects under Istio). */
export class ServiceScraping extends Construct {
  /** The ServiceMonitor. */
  public readonly serviceMonitor: ServiceMonitor;

  constructor(scope: Construct, id: string, props: ServiceScrapingProps) {
    super(scope, id);
    const metricsLabels = { ...props.labels, 'promptmesh.io/metrics': 'true' };
    const agent = props.scraping === 'istio-agent';
    if (agent) {
      new k8s.KubeService(this, 'MetricsService', {
        metadata: { name: `${props.name}-metrics`, namespace: props.namespace, labels: metricsLabels },
        spec: {
          type: 'ClusterIP',
          clusterIp: 'None',
          selector: { ...props.selectorLabels },
          ports: [
            {
              name: 'http-metrics',
              port: ISTIO_MERGED_METRICS_PORT,
              targetPort: k8s.IntOrString.fromNumber(ISTIO_MERGED_METRICS_PORT),
              protocol: 'TCP',
            },
          ],
        },
      });
    }
    this.serviceMonitor = new ServiceMonitor(this, 'ServiceMonitor', {
      metadata: { name: props.name, namespace: props.namespace, labels: { ...props.labels, ...props.monitorLabels } },
      spec: {
        selector: { matchLabels: agent ? metricsLabels : props.labels },
        // job = the service (router, templates, ...) whatever the objects are named: the
        // rules and dashboards select on it (DESIGN.md "Metric labels").
        jobLabel: JOB_LABEL,
        namespaceSelector: { matchNames: [props.namespace] },
        podTargetLabels: [TRACK_LABEL, 'app.kubernetes.io/version'],
        endpoints: [
          {
            port: agent ? 'http-metrics' : 'http',
            path: agent ? ISTIO_MERGED_METRICS_PATH : PATHS.metrics,
            interval: props.interval,
            scrapeTimeout: '10s',
            scheme: ServiceMonitorSpecEndpointsScheme.HTTP,
          },
        ],
      },
    });
  }
}
