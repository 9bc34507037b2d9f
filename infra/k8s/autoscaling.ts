/**
 * Autoscaling of a PromptService track: the HPA (CPU and requests per second), and the quiet
 * hours schedule that lowers the HPAs' floor at night and restores it in the morning.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { IMAGES } from '../versions';
import { REQUESTS_PER_SECOND_METRIC } from './monitoring';
import { checkCidr, checkCronSchedule, checkImage, checkInt } from './prop-checks';
import { restrictedContainerSecurityContext, restrictedPodSecurityContext } from './security-context';

/**
 * The kubectl image the quiet hours jobs run (`kubectl patch`), pinned in the pins table
 * (`IMAGES.kubectl` in infra/versions.ts): the Kubernetes project's own image, at the minor of
 * the default cluster version.
 */
export const KUBECTL_IMAGE: string = IMAGES.kubectl.image;

/** Numeric user the quiet hours jobs run as (the kubectl image's nonroot user). */
const KUBECTL_UID = 65532;

/** Lower replica floors during quiet hours (DESIGN.md "Scaling and cost figures"). */
export interface QuietHours {
  /**
   * When quiet hours begin: a five-field cron schedule in `timeZone`, e.g. `'0 22 * * *'`
   * (22:00 every day). The HPAs' `minReplicas` drops to `minReplicas` below.
   */
  readonly start: string;
  /**
   * When quiet hours end: a cron schedule in `timeZone`, e.g. `'0 6 * * 1-5'`. Each HPA gets
   * its normal `minReplicas` back.
   */
  readonly end: string;
  /**
   * The replica floor during quiet hours; the HPA still scales out above it on load.
   * @default 1
   */
  readonly minReplicas?: number;
  /**
   * IANA time zone of both schedules (CronJob `timeZone`).
   * @default 'Etc/UTC'
   */
  readonly timeZone?: string;
  /**
   * Image with `kubectl` that patches the HPAs.
   * @default KUBECTL_IMAGE
   */
  readonly image?: string;
  /**
   * Where the jobs may connect (TCP 443 and 6443): the API server's endpoint addresses, which
   * the in-cluster `kubernetes` Service resolves to. On EKS those are ENIs in the VPC's private
   * subnets; a cluster whose API server has a public address must list it here.
   * @default API_SERVER_PRIVATE_CIDRS (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)
   */
  readonly apiServerCidrs?: string[];
}

/** The private IPv4 ranges (RFC 1918): where a VPC-internal API server endpoint lives. */
export const API_SERVER_PRIVATE_CIDRS: readonly string[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

/** Props of {@link TrackAutoscaler}. */
export interface TrackAutoscalerProps {
  /** Name of the HPA (the Deployment's). */
  readonly name: string;
  /** Namespace of the HPA. */
  readonly namespace: string;
  /** Labels of the HPA. */
  readonly labels: Record<string, string>;
  /** The Deployment the HPA scales. */
  readonly deploymentName: string;
  /** The HPA's floor. */
  readonly minReplicas: number;
  /** The HPA's ceiling. */
  readonly maxReplicas: number;
  /** Average CPU utilisation (percent of requests) the HPA aims at. */
  readonly targetCpuUtilization: number;
  /** Requests per second per pod the HPA aims at. */
  readonly targetRequestsPerSecond: number;
}

/**
 * The HPA of one track: scales on CPU and on requests per second (prometheus-adapter), out
 * fast (double or +4 pods every 30 s), in slowly (half every minute after 5 minutes of calm).
 */
export class TrackAutoscaler extends Construct {
  /** The HPA. */
  public readonly hpa: k8s.KubeHorizontalPodAutoscalerV2;
  /** Name of the HPA. */
  public readonly name: string;
  /** The HPA's normal floor. */
  public readonly minReplicas: number;

  constructor(scope: Construct, id: string, props: TrackAutoscalerProps) {
    super(scope, id);
    this.name = props.name;
    this.minReplicas = props.minReplicas;
    this.hpa = new k8s.KubeHorizontalPodAutoscalerV2(this, 'Resource', {
      metadata: { name: props.name, namespace: props.namespace, labels: props.labels },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: props.deploymentName },
        minReplicas: props.minReplicas,
        maxReplicas: props.maxReplicas,
        metrics: [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: props.targetCpuUtilization } } },
          {
            type: 'Pods',
            pods: {
              metric: { name: REQUESTS_PER_SECOND_METRIC },
              target: { type: 'AverageValue', averageValue: k8s.Quantity.fromString(String(props.targetRequestsPerSecond)) },
            },
          },
        ],
        behavior: {
          scaleUp: {
            stabilizationWindowSeconds: 0,
            selectPolicy: 'Max',
            policies: [
              { type: 'Percent', value: 100, periodSeconds: 30 },
              { type: 'Pods', value: 4, periodSeconds: 30 },
            ],
          },
          scaleDown: {
            stabilizationWindowSeconds: 300,
            selectPolicy: 'Max',
            policies: [{ type: 'Percent', value: 50, periodSeconds: 60 }],
          },
        },
      },
    });
  }
}

/** Props of {@link QuietHoursSchedule}. */
export interface QuietHoursScheduleProps {
  /** Prefix of the objects' names (`<name>-quiet-start`, `<name>-quiet-end`, `<name>-quiet-hours`). */
  readonly name: string;
  /** Namespace of the HPAs and of the objects made here. */
  readonly namespace: string;
  /** Labels of the objects. */
  readonly labels: Record<string, string>;
  /** The HPAs to lower and restore. */
  readonly autoscalers: readonly TrackAutoscaler[];
  /** The schedule. */
  readonly quietHours: QuietHours;
}

/**
 * Two CronJobs that patch `minReplicas` of the given HPAs: down when quiet hours start, back to
 * each HPA's own floor when they end. They run as a ServiceAccount whose Role allows `patch` on
 * exactly those HPAs (by name) and nothing else, in restricted pods without an Istio sidecar
 * (a Job whose sidecar never exits never completes), with egress to the API server only.
 *
 * A `kubectl apply` or `pulumi up` during quiet hours puts the normal floor back until the next
 * start; the HPA scales out on load at any hour either way.
 */
export class QuietHoursSchedule extends Construct {
  /** The Role's ServiceAccount. */
  public readonly serviceAccountName: string;
  /** The two CronJobs: `start` lowers the floor, `end` restores it. */
  public readonly cronJobs: { readonly start: k8s.KubeCronJob; readonly end: k8s.KubeCronJob };

  constructor(scope: Construct, id: string, props: QuietHoursScheduleProps) {
    super(scope, id);
    const q = props.quietHours;
    if (!q || typeof q !== 'object') throw new Error(`'quietHours' must be { start, end, minReplicas?, timeZone?, image? }`);
    const start = checkCronSchedule(q.start, 'quietHours.start');
    const end = checkCronSchedule(q.end, 'quietHours.end');
    const highestFloor = Math.max(...props.autoscalers.map((a) => a.minReplicas));
    const quietMin = checkInt(q.minReplicas, 1, 'quietHours.minReplicas', 1, 1000);
    if (quietMin > highestFloor) {
      throw new Error(`'quietHours.minReplicas' (${quietMin}) must not be above 'minReplicas' (${highestFloor}): quiet hours lower the floor`);
    }
    const timeZone = q.timeZone ?? 'Etc/UTC';
    if (typeof timeZone !== 'string' || !/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(timeZone)) {
      throw new Error(`'quietHours.timeZone' must be an IANA time zone such as "Europe/Berlin", got ${JSON.stringify(q.timeZone)}`);
    }
    const image = checkImage(q.image ?? KUBECTL_IMAGE, 'quietHours.image');
    const apiServerCidrs = q.apiServerCidrs ?? API_SERVER_PRIVATE_CIDRS;
    if (!Array.isArray(apiServerCidrs) || apiServerCidrs.length === 0) throw new Error(`'quietHours.apiServerCidrs' must list at least one CIDR`);
    apiServerCidrs.forEach((c, i) => checkCidr(c, `quietHours.apiServerCidrs[${i}]`));
    const { namespace, labels } = props;
    const component = { ...labels, 'app.kubernetes.io/component': 'quiet-hours' };
    const podLabels = { ...component, 'promptmesh.io/quiet-hours': props.name, 'sidecar.istio.io/inject': 'false' };
    const objectName = `${props.name}-quiet-hours`;
    this.serviceAccountName = objectName;

    new k8s.KubeServiceAccount(this, 'ServiceAccount', {
      metadata: { name: objectName, namespace, labels: component },
      // Only the quiet hours pods mount its token (they must call the API); see the pod spec.
      automountServiceAccountToken: false,
    });
    new k8s.KubeRole(this, 'Role', {
      metadata: { name: objectName, namespace, labels: component },
      rules: [
        {
          apiGroups: ['autoscaling'],
          resources: ['horizontalpodautoscalers'],
          resourceNames: props.autoscalers.map((a) => a.name),
          verbs: ['patch'],
        },
      ],
    });
    new k8s.KubeRoleBinding(this, 'RoleBinding', {
      metadata: { name: objectName, namespace, labels: component },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: objectName },
      subjects: [{ kind: 'ServiceAccount', name: objectName, namespace }],
    });
    // Default deny covers these pods too: they need the API server (443 on EKS, 6443 on most
    // others) and nothing else; the in-cluster config uses its IP, so no DNS. Policies see the
    // API server's endpoint addresses (after the Service's DNAT), hence CIDRs.
    new k8s.KubeNetworkPolicy(this, 'NetworkPolicy', {
      metadata: { name: objectName, namespace, labels: component },
      spec: {
        podSelector: { matchLabels: { 'promptmesh.io/quiet-hours': props.name } },
        policyTypes: ['Ingress', 'Egress'],
        egress: [
          {
            to: apiServerCidrs.map((cidr) => ({ ipBlock: { cidr } })),
            ports: [443, 6443].map((port) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) })),
          },
        ],
      },
    });

    const cronJob = (which: 'start' | 'end', schedule: string, floor: (a: TrackAutoscaler) => number) =>
      new k8s.KubeCronJob(this, `CronJob-${which}`, {
        metadata: { name: `${props.name}-quiet-${which}`, namespace, labels: component },
        spec: {
          schedule,
          timeZone,
          concurrencyPolicy: 'Forbid',
          // A run missed by more than ten minutes (controller down) is skipped; the next one fixes it.
          startingDeadlineSeconds: 600,
          successfulJobsHistoryLimit: 1,
          failedJobsHistoryLimit: 3,
          jobTemplate: {
            spec: {
              backoffLimit: 3,
              activeDeadlineSeconds: 300,
              ttlSecondsAfterFinished: 86_400,
              template: {
                metadata: { labels: podLabels },
                spec: {
                  serviceAccountName: objectName,
                  automountServiceAccountToken: true,
                  restartPolicy: 'OnFailure',
                  enableServiceLinks: false,
                  securityContext: restrictedPodSecurityContext(KUBECTL_UID),
                  // One container per HPA: kubectl patches one object per call and the image has no shell.
                  containers: props.autoscalers.map((a, i) => ({
                    name: `patch-${i}`,
                    image,
                    imagePullPolicy: 'IfNotPresent',
                    command: ['kubectl'],
                    args: [
                      'patch',
                      'horizontalpodautoscaler',
                      a.name,
                      `--namespace=${namespace}`,
                      '--type=merge',
                      `--patch=${JSON.stringify({ spec: { minReplicas: floor(a) } })}`,
                    ],
                    // kubectl keeps its discovery cache under $HOME; the root filesystem is read-only.
                    env: [{ name: 'HOME', value: '/tmp' }],
                    resources: {
                      requests: { cpu: k8s.Quantity.fromString('10m'), memory: k8s.Quantity.fromString('64Mi') },
                      limits: { cpu: k8s.Quantity.fromString('200m'), memory: k8s.Quantity.fromString('128Mi') },
                    },
                    securityContext: restrictedContainerSecurityContext(KUBECTL_UID, KUBECTL_UID),
                    volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
                  })),
                  volumes: [{ name: 'tmp', emptyDir: { sizeLimit: k8s.Quantity.fromString('16Mi') } }],
                },
              },
            },
          },
        },
      });
    this.cronJobs = {
      start: cronJob('start', start, (a) => Math.min(quietMin, a.minReplicas)),
      end: cronJob('end', end, (a) => a.minReplicas),
    };
  }
}
