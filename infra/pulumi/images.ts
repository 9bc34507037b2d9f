import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as aws from '@pulumi/aws';
import * as dockerBuild from '@pulumi/docker-build';
import * as pulumi from '@pulumi/pulumi';
import { SERVICE_NAMES, type ServiceName } from '../../contracts';

/** Arguments of {@link Images}. */
export interface ImagesArgs {
  /** A prefix for the repository names: `<prefix>/<service>` (e.g. `promptmesh-dev`). */
  repositoryPrefix: string;
  /**
   * The directory the image is built from (it holds the Dockerfile and the `.dockerignore`).
   * Usually the repository root.
   */
  contextPath: string;
  /**
   * The Dockerfile, relative to `contextPath`.
   * @default 'Dockerfile'
   */
  dockerfile?: string;
  /**
   * The tag the build pushes. Tags are immutable, so it must change whenever the content
   * does: the program derives it from a hash of the build context (`contextTag`).
   */
  tag: string;
  /**
   * The platform to build for; the node groups run x86_64.
   * @default 'linux/amd64'
   */
  platform?: 'linux/amd64' | 'linux/arm64';
  /**
   * How many tagged images each repository keeps; older ones are expired by the lifecycle policy.
   * @default 30
   */
  keepImages?: number;
  /**
   * Delete the repositories even when they still hold images (dev stacks).
   * @default false
   */
  forceDelete?: boolean;
  /**
   * Tags added to every AWS resource.
   * @default {}
   */
  tags?: Record<string, string>;
}

/**
 * The container images of the four services. The services are ONE image (the entry point picks
 * the service from `SERVICE`), built once from the repository's Dockerfile by `pulumi up` and
 * pushed to one ECR repository per service (scan on push, immutable tags, a lifecycle policy),
 * so each service has its own repository, permissions and scan findings. Deployments refer to
 * `repository@sha256:digest`, never to a tag.
 */
export class Images extends pulumi.ComponentResource {
  /** The ECR repository per service. */
  public readonly repositories: Record<ServiceName, aws.ecr.Repository>;
  /** The image build. */
  public readonly image: dockerBuild.Image;
  /** The pushed image's digest (`sha256:...`). */
  public readonly digest: pulumi.Output<string>;
  /** The image reference per service: `<repository url>@sha256:...`. */
  public readonly imageRefs: Record<ServiceName, pulumi.Output<string>>;

  constructor(name: string, args: ImagesArgs, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:aws:Images', name, {}, opts);
    if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(args.repositoryPrefix)) {
      throw new Error(`Images ${name}: 'repositoryPrefix' must be lowercase letters, digits and . _ - separators (got ${args.repositoryPrefix})`);
    }
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(args.tag) || args.tag === 'latest') {
      throw new Error(`Images ${name}: 'tag' must be a Docker tag other than 'latest' (got ${args.tag})`);
    }
    const keep = args.keepImages ?? 30;
    if (!Number.isInteger(keep) || keep < 1) throw new Error(`Images ${name}: 'keepImages' must be an integer >= 1 (got ${keep})`);
    const tags = args.tags ?? {};
    const child = { parent: this };

    const repositories = {} as Record<ServiceName, aws.ecr.Repository>;
    for (const service of SERVICE_NAMES) {
      const repo = new aws.ecr.Repository(`${name}-${service}`, {
        name: `${args.repositoryPrefix}/${service}`,
        imageTagMutability: 'IMMUTABLE',
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfigurations: [{ encryptionType: 'AES256' }],
        forceDelete: args.forceDelete ?? false,
        tags,
      }, child);
      new aws.ecr.LifecyclePolicy(`${name}-${service}`, {
        repository: repo.name,
        policy: JSON.stringify({
          rules: [
            { rulePriority: 1, description: 'expire untagged images after 7 days', selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 7 }, action: { type: 'expire' } },
            { rulePriority: 2, description: `keep the ${keep} newest images`, selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: keep }, action: { type: 'expire' } },
          ],
        }),
      }, child);
      repositories[service] = repo;
    }
    this.repositories = repositories;

    // All repositories live in the same registry, so one token authenticates every push.
    const first = repositories[SERVICE_NAMES[0]];
    const auth = aws.ecr.getAuthorizationTokenOutput({ registryId: first.registryId }, child);
    this.image = new dockerBuild.Image(`${name}-image`, {
      context: { location: args.contextPath },
      dockerfile: { location: `${args.contextPath}/${args.dockerfile ?? 'Dockerfile'}` },
      platforms: [args.platform ?? 'linux/amd64'],
      push: true,
      tags: SERVICE_NAMES.map((s) => pulumi.interpolate`${repositories[s].repositoryUrl}:${args.tag}`),
      registries: [{
        address: first.repositoryUrl.apply((url) => url.split('/')[0]),
        username: auth.userName,
        password: pulumi.secret(auth.password),
      }],
      labels: { 'org.opencontainers.image.source': 'promptmesh', 'org.opencontainers.image.version': args.tag },
    }, child);
    this.digest = this.image.digest;
    const refs = {} as Record<ServiceName, pulumi.Output<string>>;
    for (const service of SERVICE_NAMES) {
      refs[service] = pulumi.interpolate`${repositories[service].repositoryUrl}@${this.image.digest}`;
    }
    this.imageRefs = refs;
    this.registerOutputs({ digest: this.digest, imageRefs: this.imageRefs });
  }
}

/**
 * A tag derived from the content of the build context: the files git tracks or would track
 * (ignored files excluded), minus what `.dockerignore` excludes at the top level. Same content,
 * same tag; any change, a new tag (the repositories' tags are immutable).
 */
export function contextTag(contextPath: string): string {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: contextPath, maxBuffer: 64 * 1024 * 1024 })
    .toString('utf8').split('\0').filter(Boolean);
  const ignoreFile = join(contextPath, '.dockerignore');
  const ignored = existsSync(ignoreFile)
    ? readFileSync(ignoreFile, 'utf8').split('\n').map((l) => l.trim().replace(/^\/+|\/+$/g, '')).filter((l) => l && !l.startsWith('#') && !l.startsWith('!') && !/[*?[]/.test(l))
    : [];
  const hash = createHash('sha256');
  for (const file of listed.sort()) {
    if (ignored.some((p) => file === p || file.startsWith(`${p}/`))) continue;
    const full = join(contextPath, file);
    if (!existsSync(full) || !lstatSync(full).isFile()) continue; // deleted, a directory or a link
    hash.update(file).update('\0').update(readFileSync(full)).update('\0');
  }
  return `src-${hash.digest('hex').slice(0, 16)}`;
}
