import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { ImagePin } from '../versions';

/** The upstream registries the cache mirrors, by ECR repository prefix. */
export const CACHED_REGISTRIES = {
  'docker-hub': { upstream: 'registry-1.docker.io', registry: 'docker.io' },
  quay: { upstream: 'quay.io', registry: 'quay.io' },
  'registry-k8s-io': { upstream: 'registry.k8s.io', registry: 'registry.k8s.io' },
} as const;

/** A prefix of {@link CACHED_REGISTRIES}. */
export type CachePrefix = keyof typeof CACHED_REGISTRIES;

/** Arguments of {@link RegistryCache}. */
export interface RegistryCacheArgs {
  /**
   * The Secrets Manager secret (name prefixed `ecr-pullthroughcache/`, `{ username, accessToken }`)
   * with Docker Hub credentials. ECR caches Docker Hub only with credentials; without them the
   * Docker Hub images are pulled from Docker Hub itself, through NAT.
   * @default undefined (no Docker Hub rule)
   */
  dockerHubCredentialArn?: pulumi.Input<string>;
}

/**
 * An ECR pull-through cache for the third-party images the cluster runs (Redis, PostgreSQL,
 * their exporters): the first pull copies the image into this account's ECR, later pulls come
 * from there over the VPC endpoints instead of from the internet through NAT (no Docker Hub rate
 * limits, no dependency on the upstream at scale-up). `imageRef` rewrites a pin to its cached
 * path; the nodes' role may create only repositories under these prefixes (`EksCluster`'s
 * `pullThroughCachePrefixes`).
 */
export class RegistryCache extends pulumi.ComponentResource {
  /** The ECR prefixes with a rule (what the nodes may import into). */
  public readonly prefixes: CachePrefix[];
  /** This account's registry host: `<account>.dkr.ecr.<region>.amazonaws.com`. */
  public readonly registryHost: pulumi.Output<string>;
  /** The rules, by prefix. */
  public readonly rules: Partial<Record<CachePrefix, aws.ecr.PullThroughCacheRule>>;

  constructor(name: string, args: RegistryCacheArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:aws:RegistryCache', name, {}, opts);
    const child = { parent: this };
    this.prefixes = (Object.keys(CACHED_REGISTRIES) as CachePrefix[]).filter((p) => p !== 'docker-hub' || args.dockerHubCredentialArn !== undefined);
    this.rules = {};
    for (const prefix of this.prefixes) {
      this.rules[prefix] = new aws.ecr.PullThroughCacheRule(`${name}-${prefix}`, {
        ecrRepositoryPrefix: prefix,
        upstreamRegistryUrl: CACHED_REGISTRIES[prefix].upstream,
        ...(prefix === 'docker-hub' ? { credentialArn: args.dockerHubCredentialArn } : {}),
      }, child);
    }
    const identity = aws.getCallerIdentityOutput({}, child);
    const region = aws.getRegionOutput({}, child);
    this.registryHost = pulumi.interpolate`${identity.accountId}.dkr.ecr.${region.region}.amazonaws.com`;
    this.registerOutputs({ registryHost: this.registryHost });
  }

  /** The cached reference of a pinned image, or the image itself when its registry is not cached. */
  imageRef(pin: Pick<ImagePin, 'image' | 'registry'>): pulumi.Output<string> {
    return this.registryHost.apply((host) => cachedImage(pin, host, this.prefixes));
  }
}

/** `redis:8` -> `<host>/docker-hub/library/redis:8`; `quay.io/x/y:1` -> `<host>/quay/x/y:1`. */
export function cachedImage(pin: Pick<ImagePin, 'image' | 'registry'>, host: string, prefixes: readonly CachePrefix[]): string {
  const prefix = (Object.keys(CACHED_REGISTRIES) as CachePrefix[]).find((p) => CACHED_REGISTRIES[p].registry === pin.registry);
  if (!prefix || !prefixes.includes(prefix)) return pin.image;
  let path = pin.image.startsWith(`${pin.registry}/`) ? pin.image.slice(pin.registry.length + 1) : pin.image;
  if (pin.registry === 'docker.io' && !path.split(':')[0]!.includes('/')) path = `library/${path}`;
  return `${host}/${prefix}/${path}`;
}
