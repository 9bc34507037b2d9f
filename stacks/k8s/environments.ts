/**
 * The PromptSystem props of each environment. Plain typed objects: the cdk8s app
 * (`stacks/k8s/main.ts`) and the Pulumi program render the same chart from them.
 */
import { placementPolicyFor, type PromptSystemProps, type ServiceImages } from '../../infra/k8s/index';

/** The environments this repository deploys. */
export const ENVIRONMENTS = ['dev', 'staging', 'prod'] as const;
/** One environment. */
export type EnvironmentName = (typeof ENVIRONMENTS)[number];

/** The repository's image, tagged with the package version. */
export function defaultImage(version: string): string {
  return `ghcr.io/promptmesh/promptmesh:${version}`;
}

/** OpenAI and Anthropic, keys from the provider keys Secret (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`). */
const HOSTED_PROVIDERS = {
  providers: [
    {
      name: 'openai-main',
      type: 'openai',
      baseUrl: 'https://api.openai.com/v1',
      apiKeyEnv: 'OPENAI_API_KEY',
      timeoutMs: 30000,
      limits: { rpm: 600, tpm: 200000, concurrency: 64 },
      prices: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } },
    },
    {
      name: 'anthropic-main',
      type: 'anthropic',
      baseUrl: 'https://api.anthropic.com',
      apiKeyEnv: 'ANTHROPIC_API_KEY',
      timeoutMs: 30000,
      limits: { rpm: 300, tpm: 100000, concurrency: 32 },
      prices: { 'claude-haiku-4-5': { input: 1, output: 5 } },
    },
  ],
  models: {
    chat: [
      { provider: 'openai-main', model: 'gpt-4o-mini', weight: 70 },
      { provider: 'anthropic-main', model: 'claude-haiku-4-5', weight: 30 },
    ],
  },
  routing: { strategy: 'weighted', fallback: true, retries: { attempts: 2, backoffMs: 100 } },
  cache: { enabled: true, ttlSeconds: 3600 },
};

/** The props of `env`, with the given images. */
export function environmentProps(env: EnvironmentName, images: string | ServiceImages): PromptSystemProps {
  switch (env) {
    case 'dev':
      // Small and cheap: one replica floor, standalone Redis, in-cluster PostgreSQL, spot,
      // plain HTTP, no auth (dev clusters only), the built-in echo provider.
      return {
        images,
        environment: 'dev',
        placement: placementPolicyFor('dev'),
        serviceDefaults: {
          minReplicas: 1,
          maxReplicas: 2,
          // Dev clusters (kind, k3d) often have no zone labels.
          zoneSpread: 'ScheduleAnyway',
          resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
        },
        redis: { mode: 'standalone', storageSize: '1Gi' },
        postgres: { mode: 'in-cluster', storageSize: '2Gi' },
        gateway: { hosts: ['*'] },
        apiKeys: false,
        logLevel: 'debug',
      };
    case 'staging':
      // Production's shape at a smaller size, with a canary track on the router.
      return {
        images,
        environment: 'staging',
        placement: placementPolicyFor('staging'),
        serviceDefaults: { minReplicas: 2, maxReplicas: 6 },
        services: {
          router: { tracks: [{ name: 'stable' }, { name: 'canary', minReplicas: 1, maxReplicas: 2 }], traffic: { stable: 90, canary: 10 } },
        },
        redis: { mode: 'cluster', storageSize: '4Gi' },
        postgres: { mode: 'in-cluster', storageSize: '10Gi' },
        gateway: { hosts: ['staging.promptmesh.example.com'], tlsCredentialName: 'promptmesh-staging-tls' },
        providers: HOSTED_PROVIDERS,
      };
    case 'prod':
      // Streams (router, llm) stay on on-demand nodes, the short calls ride spot
      // (placementPolicyFor: the same decision the Pulumi program takes); two replicas a
      // service from 23:00 to 06:00 UTC, the HPAs scale out on load at any hour.
      return {
        images,
        environment: 'prod',
        placement: placementPolicyFor('prod'),
        serviceDefaults: {
          minReplicas: 3,
          maxReplicas: 20,
          quietHours: { start: '0 23 * * *', end: '0 6 * * *', minReplicas: 2, timeZone: 'Etc/UTC' },
        },
        services: {
          router: { resources: { requests: { cpu: '500m', memory: '384Mi' }, limits: { cpu: '2', memory: '768Mi' } } },
          llm: { resources: { requests: { cpu: '500m', memory: '384Mi' }, limits: { cpu: '2', memory: '768Mi' } } },
        },
        redis: { mode: 'cluster', storageSize: '16Gi' },
        // The Pulumi program makes a managed database and the Secret with its URL.
        postgres: { mode: 'external' },
        gateway: { hosts: ['api.promptmesh.example.com'], tlsCredentialName: 'promptmesh-tls' },
        providers: HOSTED_PROVIDERS,
      };
    default:
      throw new Error(`unknown environment ${JSON.stringify(env)}; allowed: ${ENVIRONMENTS.join(', ')}`);
  }
}
