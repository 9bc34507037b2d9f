/**
 * The Pulumi program: one stack per environment (Pulumi.<stack>.yaml). In `aws` mode it builds
 * the network, EKS, the images, the database, the platform and the app; in `local` mode it
 * targets an existing cluster from a kubeconfig and skips everything AWS.
 */
import { resolve } from 'node:path';
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import * as random from '@pulumi/random';
import { PromptSystem } from '../../infra/k8s/prompt-system';
import { PostgresExporter } from '../../infra/k8s/rds-exporter';
import {
  BedrockAccess, Database, EksCluster, GatewayTls, IMAGES, Images, Network, Platform, PLATFORM_NAMESPACES, PromptSystemDeployment, RegistryCache, contextTag,
  type AppSecret,
} from '../../infra/pulumi';
import { apiKeysFile, APP_SECRETS, bedrockModels, promptSystemProps, type AppInputs, type DataStoreImages } from './app';
import { NS, parseStackConfig, type StackConfig } from './config';

/** The TLS Secret cert-manager writes and the gateway serves (in the gateway's namespace). */
export const TLS_CREDENTIAL_NAME = 'promptmesh-tls';

/** The repository root: the Docker build context. */
export const REPO_ROOT = resolve(__dirname, '../..');

/** The stack's outputs. */
export interface StackOutputs {
  /** `aws` or `local`. */
  mode: string;
  /** The EKS cluster's name (aws) or the kube context (local). */
  clusterName: pulumi.Input<string>;
  /** A kubeconfig for the cluster (secret; aws only). */
  kubeconfig?: pulumi.Output<string>;
  /** The router's public URL: `https://<first promptmesh:tls host>` on AWS, the gateway's address locally. */
  routerUrl?: pulumi.Output<string>;
  /** The ingress load balancer's DNS name (aws; the hosts' CNAMEs point here). */
  loadBalancer?: pulumi.Output<string>;
  /** Grafana: reached through a port-forward (see grafanaAccess). */
  grafanaUrl?: string;
  /** The command that makes Grafana reachable at grafanaUrl. */
  grafanaAccess?: string;
  /** Grafana's admin password (secret; user `admin`). */
  grafanaAdminPassword?: pulumi.Output<string>;
  /** The deployed image digest (aws). */
  imageDigest?: pulumi.Output<string>;
  /** The image per service. */
  images: pulumi.Output<AppInputs['images']>;
  /** The app's namespace. */
  namespace: string;
}

function readStackConfig(): StackConfig {
  const isSecret = (key: string) => {
    const fn = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
    return fn ? fn(key) : true;
  };
  return parseStackConfig(pulumi.runtime.allConfig(), pulumi.getStack(), isSecret);
}

/** Runs the program; returns the stack outputs. */
export async function promptmeshProgram(): Promise<StackOutputs> {
  const cfg = readStackConfig();
  const config = new pulumi.Config(NS);
  const adminApiKey = config.requireSecret('adminApiKey');
  const providerApiKeys = cfg.secrets.providerKeyNames.length > 0 ? config.requireSecretObject<Record<string, string>>('providerApiKeys') : undefined;

  let provider: k8s.Provider;
  let clusterName: pulumi.Input<string>;
  let kubeconfig: pulumi.Output<string> | undefined;
  let images: pulumi.Output<AppInputs['images']>;
  let imageDigest: pulumi.Output<string> | undefined;
  let platform: Platform | undefined;
  let database: Database;
  let vpcCidr: string | undefined;
  let dataStoreImages: pulumi.Output<DataStoreImages> | undefined;
  let eksCluster: EksCluster | undefined;
  const appReady: pulumi.Resource[] = [];

  if (cfg.mode === 'aws') {
    const a = cfg.aws;
    const tags = { 'promptmesh.io/environment': cfg.environment, 'app.kubernetes.io/part-of': 'promptmesh', ...a.tags };
    const network = new Network('network', {
      clusterName: a.clusterName, availabilityZones: a.availabilityZones, cidrBlock: a.vpcCidr, natGateways: a.natGateways, tags,
    });
    vpcCidr = network.cidrBlock;
    // Third-party images come through this account's ECR (and the VPC endpoints), not Docker Hub.
    const cache = new RegistryCache('registry-cache', { dockerHubCredentialArn: a.dockerHubCredentialArn });
    dataStoreImages = pulumi.all([cache.imageRef(IMAGES.redis), cache.imageRef(IMAGES.redisExporter), cache.imageRef(IMAGES.postgres), cache.imageRef(IMAGES.postgresExporter)])
      .apply(([redis, redisExporter, postgres, postgresExporter]) => ({ redis, redisExporter, postgres, postgresExporter }));
    const eks = new EksCluster('eks', {
      clusterName: a.clusterName,
      vpcId: network.vpcId,
      availabilityZones: a.availabilityZones,
      privateSubnetIds: network.privateSubnetIds,
      pullThroughCachePrefixes: cache.prefixes,
      region: a.region,
      kubernetesVersion: a.kubernetesVersion,
      privateEndpoint: a.privateEndpoint,
      publicAccessCidrs: a.publicAccessCidrs,
      adminRoleArns: a.adminRoleArns,
      systemNodeGroup: a.systemNodeGroup,
      nodeGroups: a.nodeGroups,
      tags,
    });
    eksCluster = eks;
    provider = eks.provider;
    clusterName = eks.clusterName;
    kubeconfig = eks.kubeconfig;
    const built = new Images('images', {
      repositoryPrefix: a.clusterName,
      contextPath: REPO_ROOT,
      tag: contextTag(REPO_ROOT),
      // Production repositories refuse deletion while they hold images (docs/pulumi.md, "Destroy").
      forceDelete: !['prod', 'production'].includes(cfg.environment),
      tags,
    });
    imageDigest = built.digest;
    images = pulumi.all(built.imageRefs).apply((r) => ({ router: r.router, templates: r.templates, context: r.context, llm: r.llm }));
    database = a.database === 'rds'
      ? new Database('database', {
        mode: 'rds',
        rds: {
          vpcId: network.vpcId,
          privateSubnetIds: network.privateSubnetIds,
          clientSecurityGroupId: eks.nodeSecurityGroupId,
          ...a.rds,
          tags,
        },
      })
      : new Database('database', { mode: 'in-cluster', inClusterHost: `postgres.${cfg.app.namespace}.svc.cluster.local` });
    if (database.instance) appReady.push(database.instance);
    platform = new Platform('platform', {
      provider,
      dependsOn: eks.ready,
      storageClassName: eks.storageClassName,
      prometheusReplicas: a.prometheusReplicas,
      meshReplicas: a.meshReplicas,
      gatewayServiceType: 'LoadBalancer',
    });
  } else {
    const l = cfg.local;
    provider = new k8s.Provider('local', {
      ...(l.kubeconfigPath ? { kubeconfig: l.kubeconfigPath } : {}),
      ...(l.kubeContext ? { context: l.kubeContext } : {}),
      enableServerSideApply: true,
    });
    clusterName = l.kubeContext ?? 'current-context';
    images = pulumi.output({ router: l.image, templates: l.image, context: l.image, llm: l.image });
    database = new Database('database', { mode: 'in-cluster', inClusterHost: `postgres.${cfg.app.namespace}.svc.cluster.local` });
    if (l.installPlatform) {
      platform = new Platform('platform', {
        provider,
        gatewayServiceType: l.gatewayServiceType,
        meshReplicas: 1,
        prometheusStorageSize: '10Gi',
        prometheusRetention: '3d',
      });
    }
  }
  if (platform) appReady.push(...platform.crdsReady);

  const redisPassword = new random.RandomPassword('redis-password', { length: 40, special: false });
  const postgresMode = cfg.mode === 'aws' && cfg.aws.database === 'rds' ? 'external' : 'in-cluster';
  const secrets: AppSecret[] = [
    { name: APP_SECRETS.redis.name, data: { [APP_SECRETS.redis.key]: pulumi.secret(redisPassword.result) } },
    postgresMode === 'in-cluster'
      ? { name: APP_SECRETS.postgresPassword.name, data: { [APP_SECRETS.postgresPassword.key]: database.password } }
      : { name: APP_SECRETS.databaseUrl.name, data: { [APP_SECRETS.databaseUrl.key]: database.databaseUrl } },
    ...(postgresMode === 'external'
      ? [{ name: APP_SECRETS.exporterDataSource.name, data: { [APP_SECRETS.exporterDataSource.key]: database.exporterDataSource } }]
      : []),
    { name: APP_SECRETS.apiKeys.name, data: { [APP_SECRETS.apiKeys.key]: adminApiKey.apply((key) => apiKeysFile(key, cfg.app.apiKeyHashes)) } },
  ];
  if (providerApiKeys) {
    secrets.push({
      name: APP_SECRETS.providerKeys,
      data: Object.fromEntries(cfg.secrets.providerKeyNames.map((n) => [n, providerApiKeys.apply((keys) => keys[n])])),
    });
  }

  // Bedrock providers: the llm ServiceAccount assumes a role (IRSA) that may invoke exactly the
  // models the providers file routes to.
  let llmRoleArn: pulumi.Output<string> | undefined;
  const bedrock = bedrockModels(cfg.app.providers);
  if (eksCluster && bedrock.length > 0) {
    llmRoleArn = new BedrockAccess('bedrock', {
      models: bedrock,
      serviceAccountRole: eksCluster.serviceAccountRole,
      namespace: cfg.app.namespace,
      accountId: aws.getCallerIdentityOutput().accountId,
    }).roleArn;
  }

  const environment = cfg.environment;
  const withTracing = !!platform;
  // In aws mode the gateway serves the cert-manager certificate for promptmesh:tls's hosts.
  const appSettings = cfg.mode === 'aws' ? { ...cfg.app, tls: { credentialName: TLS_CREDENTIAL_NAME, hosts: cfg.aws.tls.hosts } } : cfg.app;
  const deployment = new PromptSystemDeployment<{ images: AppInputs['images']; dataStoreImages?: DataStoreImages; llmRoleArn?: string }>('app', {
    provider,
    namespace: cfg.app.namespace,
    inputs: pulumi.output({ images, ...(dataStoreImages ? { dataStoreImages } : {}), ...(llmRoleArn ? { llmRoleArn } : {}) }),
    chart: (app, resolved) => {
      const system = new PromptSystem(app, 'promptmesh', promptSystemProps(appSettings, {
        images: resolved.images, dataStoreImages: resolved.dataStoreImages, postgres: postgresMode, vpcCidr, environment, withTracing, llmRoleArn: resolved.llmRoleArn,
      }));
      // RDS has no exporter beside it: one in the cluster gives it the same pg_up series.
      if (postgresMode === 'external' && vpcCidr) {
        new PostgresExporter(system, 'RdsExporter', {
          namespace: cfg.app.namespace,
          dataSourceSecret: { ...APP_SECRETS.exporterDataSource },
          databaseCidrs: [vpcCidr],
          ...(resolved.dataStoreImages ? { image: resolved.dataStoreImages.postgresExporter } : {}),
          monitoringNamespace: PLATFORM_NAMESPACES.monitoring,
        });
      }
      return system;
    },
    secrets,
    dependsOn: appReady,
  });

  const outputs: StackOutputs = { mode: cfg.mode, clusterName, images, namespace: cfg.app.namespace };
  if (kubeconfig) outputs.kubeconfig = kubeconfig;
  if (imageDigest) outputs.imageDigest = imageDigest;
  if (platform) {
    // The id comes from the release's status, unknown until it is installed, so a first
    // preview defers the read instead of failing on a Service that does not exist yet.
    const gatewayRelease = platform.releases.istioGateway;
    const gw = k8s.core.v1.Service.get('ingress-gateway', pulumi.interpolate`${gatewayRelease.status.namespace}/${gatewayRelease.status.name}`, {
      provider, dependsOn: [gatewayRelease, deployment.app],
    });
    const scheme = cfg.app.tls ? 'https' : 'http';
    const lbHost = gw.status.apply((s) => s?.loadBalancer?.ingress?.[0]?.hostname ?? s?.loadBalancer?.ingress?.[0]?.ip);
    if (cfg.mode === 'aws' && eksCluster) {
      const t = cfg.aws.tls;
      new GatewayTls('gateway-tls', {
        provider,
        serviceAccountRole: eksCluster.serviceAccountRole,
        region: cfg.aws.region,
        hostedZoneId: t.hostedZoneId,
        hosts: t.hosts,
        acmeEmail: t.acmeEmail,
        acmeServer: t.acmeServer,
        credentialName: TLS_CREDENTIAL_NAME,
        gatewayNamespace: PLATFORM_NAMESPACES.istioIngress,
        loadBalancerHostname: lbHost.apply((h) => h ?? ''),
        dependsOn: [...eksCluster.ready, platform.releases.istioGateway],
      });
      const first = t.hosts.find((h) => !h.startsWith('*.')) ?? t.hosts[0]!.replace(/^\*\./, 'api.');
      outputs.routerUrl = pulumi.output(`https://${first}`);
      outputs.loadBalancer = lbHost.apply((h) => h ?? 'pending: the load balancer has no address yet (run pulumi refresh)');
    } else outputs.routerUrl = cfg.mode === 'local' && cfg.local.gatewayServiceType === 'LoadBalancer'
      ? lbHost.apply((host) => (host ? `${scheme}://${host}` : 'pending: the load balancer has no address yet (run pulumi refresh)'))
      : gw.spec.apply((spec) => {
        const port = spec?.ports?.find((p) => p.name === 'http2' || p.port === 80);
        return `http://<node address>:${port?.nodePort ?? '?'} (NodePort; minikube: minikube service -n istio-ingress istio-ingressgateway --url)`;
      });
    outputs.grafanaUrl = 'http://localhost:3000';
    outputs.grafanaAccess = 'kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80';
    outputs.grafanaAdminPassword = platform.grafanaAdminPassword;
  }
  return outputs;
}
