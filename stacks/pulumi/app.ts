/**
 * From the stack configuration to the `PromptSystem` chart's props, and the Secrets the chart
 * references. Pure functions: the program resolves the runtime values (image digests, hosts)
 * first and passes them in.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { ServiceName } from '../../contracts';
import { OTLP_ENDPOINT, PLATFORM_NAMESPACES, RELEASE_NAMES, type BedrockModel } from '../../infra/pulumi';
import { placementPolicyFor } from '../../infra/k8s/placement';
import type { PromptSystemProps, ServiceSettings } from '../../infra/k8s/prompt-system';
import type { AppSettings } from './config';

/** The Secret names and keys the program creates and the chart references. */
export const APP_SECRETS = {
  redis: { name: 'redis-auth', key: 'password' },
  postgresPassword: { name: 'postgres-auth', key: 'password' },
  databaseUrl: { name: 'postgres-url', key: 'DATABASE_URL' },
  exporterDataSource: { name: 'postgres-exporter-dsn', key: 'DATA_SOURCE_NAME' },
  providerKeys: 'promptmesh-provider-keys',
  apiKeys: { name: 'promptmesh-api-keys', key: 'api-keys.yaml' },
} as const;

/** The data stores' images, when they come from somewhere else than their pins (the ECR pull-through cache). */
export interface DataStoreImages {
  redis: string;
  redisExporter: string;
  postgres: string;
  postgresExporter: string;
}

/** Runtime values the chart needs. */
export interface AppInputs {
  /** The data stores' images; unset: the pins' public images. */
  dataStoreImages?: DataStoreImages;
  /** The image per service (by digest on AWS). */
  images: { router: string; templates: string; context: string; llm: string };
  /** `in-cluster`: the chart runs PostgreSQL; `external`: RDS, URL from the Secret. */
  postgres: 'in-cluster' | 'external';
  /** CIDR of the VPC (external PostgreSQL egress). */
  vpcCidr?: string;
  /** Environment label. */
  environment: string;
  /** Whether the platform (Istio, monitoring, tracing) is installed by this program. */
  withTracing: boolean;
  /** The IRSA role the llm ServiceAccount assumes (Bedrock providers on AWS). */
  llmRoleArn?: string;
}

/** The `PromptSystem` props for a stack. */
export function promptSystemProps(app: AppSettings, inputs: AppInputs): PromptSystemProps {
  const services: Partial<Record<ServiceName, ServiceSettings>> = {};
  for (const [name, s] of Object.entries(app.services)) {
    services[name as keyof typeof services] = { ...s };
  }
  return {
    namespace: app.namespace,
    environment: inputs.environment,
    // The same per-environment decision as the cdk8s app's (stacks/k8s/environments.ts).
    placement: placementPolicyFor(inputs.environment),
    images: { ...inputs.images },
    services,
    logLevel: app.logLevel,
    redis: {
      mode: app.redis, passwordSecret: { ...APP_SECRETS.redis },
      ...(inputs.dataStoreImages ? { image: inputs.dataStoreImages.redis, exporterImage: inputs.dataStoreImages.redisExporter } : {}),
    },
    postgres: inputs.postgres === 'in-cluster'
      ? {
        mode: 'in-cluster', passwordSecret: { ...APP_SECRETS.postgresPassword },
        ...(inputs.dataStoreImages ? { image: inputs.dataStoreImages.postgres, exporterImage: inputs.dataStoreImages.postgresExporter } : {}),
      }
      : { mode: 'external', databaseUrlSecret: { ...APP_SECRETS.databaseUrl } },
    ...(inputs.postgres === 'external' && inputs.vpcCidr ? { externalPostgresCidrs: [inputs.vpcCidr] } : {}),
    gateway: app.tls ? { hosts: app.tls.hosts, tlsCredentialName: app.tls.credentialName } : { hosts: ['*'] },
    ingressGateway: { namespace: PLATFORM_NAMESPACES.istioIngress, serviceAccount: RELEASE_NAMES.istioGateway, selector: { istio: 'ingressgateway' } },
    istioNamespace: PLATFORM_NAMESPACES.istioSystem,
    monitoring: { namespace: PLATFORM_NAMESPACES.monitoring },
    ...(app.providers ? { providers: app.providers, providerKeysSecret: APP_SECRETS.providerKeys } : {}),
    apiKeys: { ...APP_SECRETS.apiKeys },
    ...(inputs.withTracing ? { otlpEndpoint: OTLP_ENDPOINT, extraEgress: [{ namespace: PLATFORM_NAMESPACES.observability, ports: [4317, 4318] }] } : {}),
    ...(inputs.llmRoleArn ? { serviceAccountAnnotations: { llm: { 'eks.amazonaws.com/role-arn': inputs.llmRoleArn } } } : {}),
  };
}

/**
 * The Bedrock models the providers file can route to: for each `bedrock` provider, in its
 * region, every model a `models` target names for it, plus its `models` list and priced models.
 * The llm's IAM role is granted exactly these.
 */
export function bedrockModels(providersFile: Record<string, unknown> | undefined): BedrockModel[] {
  type P = { name?: unknown; type?: unknown; region?: unknown; models?: unknown; prices?: unknown };
  const providers = (Array.isArray(providersFile?.providers) ? providersFile.providers : []) as P[];
  const targets = Object.values((providersFile?.models ?? {}) as Record<string, { provider?: unknown; model?: unknown }[]>).flat();
  const out: BedrockModel[] = [];
  const seen = new Set<string>();
  for (const p of providers) {
    if (p?.type !== 'bedrock' || typeof p.region !== 'string') continue;
    const ids = [
      ...targets.filter((t) => t?.provider === p.name).map((t) => t.model),
      ...(Array.isArray(p.models) ? p.models : []),
      ...Object.keys(p.prices && typeof p.prices === 'object' ? p.prices : {}),
    ];
    for (const id of ids) {
      if (typeof id !== 'string' || seen.has(`${p.region}|${id}`)) continue;
      seen.add(`${p.region}|${id}`);
      out.push({ region: p.region, modelId: id });
    }
  }
  return out;
}

/** The router's API keys file: the admin key (hashed here) and any extra hashes from config. */
export function apiKeysFile(adminKey: string, extra: AppSettings['apiKeyHashes']): string {
  const sha256 = createHash('sha256').update(adminKey).digest('hex');
  return stringify({ keys: [{ id: 'admin', sha256, scopes: ['invoke', 'admin'] }, ...extra] });
}
