import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { App, type Chart } from 'cdk8s';

/** One Kubernetes Secret the app's manifests reference, with secret values. */
export interface AppSecret {
  /** The Secret's name (what the chart references). */
  name: string;
  /** Key -> value. Pass Pulumi secrets (`config.requireSecret`, `RandomPassword`); they stay secret. */
  data: Record<string, pulumi.Input<string>>;
}

/** A Kubernetes object as the chart renders it. */
export type KubernetesObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [key: string]: unknown }; [key: string]: unknown };

/** Arguments of {@link PromptSystemDeployment}. */
export interface PromptSystemDeploymentArgs<T> {
  /** The Kubernetes provider of the target cluster. */
  provider: k8s.Provider;
  /**
   * The values the chart depends on that are only known during the deployment (image digests,
   * hosts). They are resolved first, then passed to `chart`.
   */
  inputs: pulumi.Input<T>;
  /**
   * Builds the app's cdk8s chart in `app` from the resolved `inputs` (normally a `PromptSystem`).
   * It runs in memory; nothing is written to disk.
   */
  chart: (app: App, inputs: T) => Chart;
  /** The namespace the app's Secrets go into (the chart's namespace). */
  namespace: string;
  /**
   * The Secrets the chart references but does not contain (API keys, passwords, DATABASE_URL).
   * @default []
   */
  secrets?: AppSecret[];
  /**
   * What must exist before the app's objects: the platform's CRDs and webhooks
   * (`Platform.crdsReady`), the database.
   * @default []
   */
  dependsOn?: pulumi.Resource[];
  /**
   * Wait for every object to become ready (Deployments rolled out, ...).
   * @default true
   */
  await?: boolean;
}

/** Renders the chart's objects in memory: each chart's `toJson()`, in order. */
export function renderChart<T>(chart: (app: App, inputs: T) => Chart, inputs: T): KubernetesObject[] {
  const app = new App({ outdir: '/nonexistent' });
  chart(app, inputs);
  return app.charts.flatMap((c) => c.toJson() as KubernetesObject[]);
}

/**
 * Deploys the prompt system: renders its cdk8s chart with the stack's values (image digests,
 * database host, ...) and applies the objects through the cluster's provider in three steps:
 * the Namespaces, then the Secrets the chart references (from secret inputs only), then
 * everything else, after the platform's CRDs exist.
 *
 * @example
 * const app = new PromptSystemDeployment('app', {
 *   provider: eks.provider,
 *   namespace: 'promptmesh',
 *   inputs: images.imageRefs.router,                       // resolved before rendering
 *   chart: (app, image) => new PromptSystem(app, 'promptmesh', { images: image, redis: { mode: 'standalone' } }),
 *   secrets: [{ name: 'redis-auth', data: { password: redisPassword.result } }],
 *   dependsOn: platform.crdsReady,
 * });
 */
export class PromptSystemDeployment<T = unknown> extends pulumi.ComponentResource {
  /** The rendered objects (everything the chart emits). */
  public readonly manifests: pulumi.Output<KubernetesObject[]>;
  /** The Namespace objects, applied first. */
  public readonly namespaces: k8s.yaml.v2.ConfigGroup;
  /** The Secrets, applied after the namespaces. */
  public readonly secrets: k8s.core.v1.Secret[];
  /** The rest of the app. */
  public readonly app: k8s.yaml.v2.ConfigGroup;

  constructor(name: string, args: PromptSystemDeploymentArgs<T>, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:k8s:PromptSystemDeployment', name, {}, opts);
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(args.namespace)) {
      throw new Error(`PromptSystemDeployment ${name}: 'namespace' must be a lowercase RFC 1123 label (got ${args.namespace})`);
    }
    const names = new Set<string>();
    for (const [i, secret] of (args.secrets ?? []).entries()) {
      if (!/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(secret.name)) throw new Error(`PromptSystemDeployment ${name}: 'secrets[${i}].name' must be a Kubernetes object name (got ${secret.name})`);
      if (names.has(secret.name)) throw new Error(`PromptSystemDeployment ${name}: 'secrets[${i}].name' repeats '${secret.name}'`);
      names.add(secret.name);
    }
    const provider = args.provider;

    this.manifests = pulumi.output(args.inputs).apply((resolved) => renderChart(args.chart, resolved as T));
    // The Secrets this component creates must not also be in the chart (two owners of one object).
    const objects = this.manifests.apply((objs) => {
      for (const o of objs) {
        if (o.kind === 'Secret' && names.has(o.metadata.name) && (o.metadata.namespace ?? args.namespace) === args.namespace) {
          throw new Error(`PromptSystemDeployment ${name}: the chart already contains Secret '${o.metadata.name}'`);
        }
      }
      return objs;
    });
    const skipAwait = args.await === false;

    this.namespaces = new k8s.yaml.v2.ConfigGroup(`${name}-namespaces`, {
      objs: objects.apply((objs) => objs.filter((o) => o.kind === 'Namespace')),
      skipAwait,
    }, { parent: this, provider, dependsOn: args.dependsOn });

    this.secrets = (args.secrets ?? []).map((secret) => new k8s.core.v1.Secret(`${name}-${secret.name}`, {
      metadata: { name: secret.name, namespace: args.namespace, labels: { 'app.kubernetes.io/part-of': 'promptmesh', 'app.kubernetes.io/managed-by': 'pulumi' } },
      type: 'Opaque',
      // Every value is wrapped as a secret, whatever the caller passed.
      stringData: Object.fromEntries(Object.entries(secret.data).map(([k, v]) => [k, pulumi.secret(v)])),
    }, { parent: this, provider, dependsOn: [this.namespaces] }));

    this.app = new k8s.yaml.v2.ConfigGroup(`${name}-app`, {
      objs: objects.apply((objs) => objs.filter((o) => o.kind !== 'Namespace')),
      skipAwait,
    }, { parent: this, provider, dependsOn: [this.namespaces, ...this.secrets, ...(args.dependsOn ?? [])] });

    this.registerOutputs({});
  }
}
