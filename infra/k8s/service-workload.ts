/**
 * The workload of one release track of a PromptService: its Deployment and PodDisruptionBudget.
 * Everything here is already checked and resolved by {@link PromptService}.
 */
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { PATHS } from '../../contracts/index';
import { placementFor, type Capacity } from './placement';
import type { ContainerResources } from './resources';
import { restrictedContainerSecurityContext, restrictedPodSecurityContext } from './security-context';
import { terminationGracePeriodSeconds } from './shutdown';

/** Environment variable the container gets its memory limit in, in MiB (downward API); the image sizes V8's heap from it. */
export const MEMORY_LIMIT_ENV = 'MEMORY_LIMIT_MIB';

/**
 * A Deployment whose first container drains with the `sleep` preStop action (Kubernetes 1.30+:
 * no shell or sleep binary needed in the image). cdk8s-plus-27's typed classes stop at the 1.27
 * schema and drop fields they do not know when they serialize, so the action is added after
 * that, typed here; the 1.34+ schema test validates the result.
 */
class DrainingDeployment extends k8s.KubeDeployment {
  constructor(scope: Construct, id: string, props: k8s.KubeDeploymentProps, private readonly drainSeconds: number) {
    super(scope, id, props);
  }

  public override toJson(): any {
    const json = super.toJson();
    if (this.drainSeconds > 0) {
      const preStop: { sleep: { seconds: number } } = { sleep: { seconds: this.drainSeconds } };
      json.spec.template.spec.containers[0].lifecycle = { preStop };
    }
    return json;
  }
}

/** Props of {@link TrackWorkload}. */
export interface TrackWorkloadProps {
  /** Name of the Deployment and PDB (`<service name>-<track>`). */
  readonly name: string;
  /** Namespace. */
  readonly namespace: string;
  /** Name of the container (the service: router, templates, context, llm). */
  readonly containerName: string;
  /** Image. */
  readonly image: string;
  /** Image pull policy. */
  readonly imagePullPolicy: string;
  /** Labels of the Deployment, PDB and pods. */
  readonly labels: Record<string, string>;
  /** Labels selecting this track's pods. */
  readonly selectorLabels: Record<string, string>;
  /** Annotations of the pods. */
  readonly podAnnotations: Record<string, string>;
  /** ServiceAccount of the pods. */
  readonly serviceAccountName: string;
  /** Container port (named `http`). */
  readonly port: number;
  /** Environment, in order. */
  readonly env: k8s.EnvVar[];
  /** Secrets whose every key becomes an environment variable. */
  readonly envFrom: k8s.EnvFromSource[];
  /** Volumes, and where the container mounts them. */
  readonly volumes: k8s.Volume[];
  /** Mounts of the volumes. */
  readonly volumeMounts: k8s.VolumeMount[];
  /** Requests and limits. */
  readonly resources: ContainerResources;
  /** Spot or on-demand. */
  readonly capacity: Capacity;
  /** `whenUnsatisfiable` of the zone spread. */
  readonly zoneSpread: string;
  /** preStop drain in seconds (0: none). */
  readonly drainSeconds: number;
  /** Seconds in-flight requests get after SIGTERM. */
  readonly shutdownTimeoutSeconds: number;
  /** Numeric user and group. */
  readonly runAsUser: number;
}

/**
 * A track's Deployment (no `replicas`: the HPA owns the count) and PDB (one pod at a time).
 * Pods run restricted, spread over zones and nodes, drain in preStop, and get the termination
 * grace period their shutdown needs.
 */
export class TrackWorkload extends Construct {
  /** The Deployment. */
  public readonly deployment: k8s.KubeDeployment;
  /** The termination grace period the pods get. */
  public readonly terminationGracePeriodSeconds: number;

  constructor(scope: Construct, id: string, props: TrackWorkloadProps) {
    super(scope, id);
    const meta = { name: props.name, namespace: props.namespace, labels: props.labels };
    const quantities = (q: { cpu: string; memory: string }) => ({ cpu: k8s.Quantity.fromString(q.cpu), memory: k8s.Quantity.fromString(q.memory) });
    const spread = (topologyKey: string, whenUnsatisfiable: string): k8s.TopologySpreadConstraint => ({
      maxSkew: 1,
      topologyKey,
      whenUnsatisfiable,
      labelSelector: { matchLabels: props.selectorLabels },
      // Counts only the pods of the same ReplicaSet: during a rollout the old pods do not skew the new ones.
      matchLabelKeys: ['pod-template-hash'],
    });
    const placement = placementFor(props.capacity);
    this.terminationGracePeriodSeconds = terminationGracePeriodSeconds(props.drainSeconds, props.shutdownTimeoutSeconds);
    const http = k8s.IntOrString.fromString('http');

    const deployment: k8s.KubeDeploymentProps = {
      metadata: meta,
      spec: {
        // No `replicas`: the HPA owns the count; a fixed value would fight it on every apply.
        revisionHistoryLimit: 5,
        progressDeadlineSeconds: 600,
        minReadySeconds: 5,
        selector: { matchLabels: props.selectorLabels },
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: { maxSurge: k8s.IntOrString.fromString('25%'), maxUnavailable: k8s.IntOrString.fromNumber(0) },
        },
        template: {
          metadata: { labels: props.labels, annotations: props.podAnnotations },
          spec: {
            serviceAccountName: props.serviceAccountName,
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: this.terminationGracePeriodSeconds,
            securityContext: restrictedPodSecurityContext(props.runAsUser),
            ...placement,
            topologySpreadConstraints: [spread('topology.kubernetes.io/zone', props.zoneSpread), spread('kubernetes.io/hostname', 'ScheduleAnyway')],
            containers: [
              {
                name: props.containerName,
                image: props.image,
                imagePullPolicy: props.imagePullPolicy,
                ports: [{ name: 'http', containerPort: props.port, protocol: 'TCP' }],
                env: [
                  ...props.env,
                  {
                    name: MEMORY_LIMIT_ENV,
                    valueFrom: {
                      resourceFieldRef: { containerName: props.containerName, resource: 'limits.memory', divisor: k8s.Quantity.fromString('1Mi') },
                    },
                  },
                ],
                ...(props.envFrom.length > 0 ? { envFrom: props.envFrom } : {}),
                resources: { requests: quantities(props.resources.requests), limits: quantities(props.resources.limits) },
                startupProbe: { httpGet: { path: PATHS.healthz, port: http }, periodSeconds: 2, timeoutSeconds: 2, failureThreshold: 30 },
                readinessProbe: { httpGet: { path: PATHS.readyz, port: http }, periodSeconds: 5, timeoutSeconds: 2, failureThreshold: 2 },
                livenessProbe: { httpGet: { path: PATHS.healthz, port: http }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
                securityContext: restrictedContainerSecurityContext(props.runAsUser, props.runAsUser),
                volumeMounts: props.volumeMounts,
                terminationMessagePolicy: 'FallbackToLogsOnError',
              },
            ],
            volumes: props.volumes,
          },
        },
      },
    };
    this.deployment = new DrainingDeployment(this, 'Deployment', deployment, props.drainSeconds);

    new k8s.KubePodDisruptionBudget(this, 'PDB', {
      metadata: meta,
      spec: {
        // One pod at a time may go, whatever the replica count: drains proceed, never all at once.
        maxUnavailable: k8s.IntOrString.fromNumber(1),
        selector: { matchLabels: props.selectorLabels },
        // Pods that never became ready must not block a node drain.
        unhealthyPodEvictionPolicy: 'AlwaysAllow',
      },
    });
  }
}
