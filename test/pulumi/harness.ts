/**
 * Runs a Pulumi program against `pulumi.runtime.setMocks` and records what it registered.
 *
 * Pulumi's runtime state is per process: use ONE `runWithMocks` per test file (vitest runs each
 * file in its own fork). The mocks answer like the providers would for the outputs the program
 * reads back (cluster endpoint and CA, OIDC issuer, ARNs, image digest, load balancer host), so
 * kubeconfig and URL `apply`s run for real.
 */
import { createHash } from 'node:crypto';
import * as pulumi from '@pulumi/pulumi';

/** One registered resource: its type, name, inputs (secrets stay wrapped) and dependencies. */
export interface RegisteredResource {
  type: string;
  name: string;
  /** Inputs as the provider would receive them; secret values are `{ [SECRET_SIG]: ..., value }`. */
  inputs: Record<string, any>;
  /** The resources in `dependsOn` (directly, as passed), as `type::name`. */
  dependsOn: string[];
  /** The parent resource as `type::name`, if any. */
  parent?: string;
  /** A custom resource (a provider's), not a component. */
  custom: boolean;
}

/** What a mock run produced. */
export interface MockRun {
  resources: RegisteredResource[];
  outputs: Record<string, unknown>;
  /** Stack outputs that were secrets. */
  secretOutputs: string[];
  invokes: { token: string; inputs: Record<string, any> }[];
}

/** The key Pulumi marks serialized secrets with. */
export const SECRET_SIG = '4dabf18193072939515e22adb298388d';

/** Whether `value` is a serialized secret. */
export function isSecretValue(value: unknown): boolean {
  return typeof value === 'object' && value !== null && SECRET_SIG in value && (value as any)[SECRET_SIG] === '1b47061264138c4ac30d75fd1eb44270';
}

/** Unwraps serialized secrets everywhere in `value` (for assertions on content). */
export function unwrapSecrets(value: any): any {
  if (isSecretValue(value)) return unwrapSecrets(value.value);
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
  return value;
}

/** Every place a string containing `needle` appears outside a secret wrapper: `path` list. */
export function plainOccurrences(value: any, needle: string, path = ''): string[] {
  if (isSecretValue(value)) return [];
  if (typeof value === 'string') return value.includes(needle) ? [path || '(root)'] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => plainOccurrences(v, needle, `${path}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => plainOccurrences(v, needle, path ? `${path}.${k}` : k));
  return [];
}

const ACCOUNT = '123456789012';
const digestOf = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

/** The outputs a real provider would compute, for the types the program reads back. */
function computedState(type: string, name: string, inputs: Record<string, any>): Record<string, any> {
  const arn = `arn:aws:${type.split(':')[1]?.split('/')[0] ?? 'x'}::${ACCOUNT}:${name}`;
  const base = { ...inputs, arn, name: inputs.name ?? name };
  switch (type) {
    case 'aws:eks/cluster:Cluster':
      return {
        ...base,
        endpoint: `https://${name}.gr7.eu-west-1.eks.amazonaws.com`,
        certificateAuthority: { data: Buffer.from(`ca-of-${name}`).toString('base64') },
        identities: [{ oidcs: [{ issuer: `https://oidc.eks.eu-west-1.amazonaws.com/id/${name.toUpperCase()}` }] }],
        vpcConfig: { ...inputs.vpcConfig, clusterSecurityGroupId: `sg-cluster-${name}`, vpcId: 'vpc-mock' },
      };
    case 'aws:ec2/launchTemplate:LaunchTemplate':
      return { ...base, latestVersion: 1 };
    case 'aws:ecr/repository:Repository':
      return { ...base, registryId: ACCOUNT, repositoryUrl: `${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/${inputs.name}` };
    case 'docker-build:index:Image':
      return { ...base, digest: digestOf(JSON.stringify(inputs.tags ?? name)), ref: `${inputs.tags?.[0]}@${digestOf(name)}` };
    case 'aws:rds/instance:Instance':
      return { ...base, address: `${name}.cluster-mock.eu-west-1.rds.amazonaws.com`, port: 5432, endpoint: `${name}.mock:5432` };
    case 'aws:rds/subnetGroup:SubnetGroup':
    case 'aws:rds/parameterGroup:ParameterGroup':
      return { ...base, name: inputs.name ?? `${name}-mock` };
    case 'kubernetes:helm.sh/v3:Release':
      return { ...base, status: { name: inputs.name, namespace: inputs.namespace, chart: inputs.chart, version: inputs.version, status: 'deployed' } };
    case 'random:index/randomPassword:RandomPassword':
      return { ...base, result: `generated-${name}-Zx9`.replace(/[^A-Za-z0-9]/g, '') };
    case 'kubernetes:core/v1:Service':
      return {
        ...base,
        spec: { type: 'LoadBalancer', ports: [{ name: 'status-port', port: 15021, nodePort: 30021 }, { name: 'http2', port: 80, nodePort: 31380 }] },
        status: { loadBalancer: { ingress: [{ hostname: `${name}.elb.eu-west-1.amazonaws.com` }] } },
      };
    default:
      return base;
  }
}

/** Runs `program` as a stack with `config` (keys like `promptmesh:mode`; non-strings are JSON). */
export async function runWithMocks(options: {
  project?: string;
  stack: string;
  config: Record<string, unknown>;
  secretKeys?: string[];
  program: () => Promise<Record<string, unknown> | void>;
}): Promise<MockRun> {
  const resources: RegisteredResource[] = [];
  const invokes: MockRun['invokes'] = [];
  const config = Object.fromEntries(Object.entries(options.config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  pulumi.runtime.setAllConfig(config, options.secretKeys ?? []);
  const dependsOnByName = new Map<string, { dependsOn: string[]; parent?: string }>();
  const names = new WeakMap<pulumi.Resource, string>();

  await pulumi.runtime.setMocks({
    newResource(args) {
      const registered = dependsOnByName.get(`${args.type}::${args.name}`);
      resources.push({ type: args.type, name: args.name, inputs: args.inputs, dependsOn: registered?.dependsOn ?? [], parent: registered?.parent, custom: !!args.custom });
      return { id: `${args.name}-id`, state: computedState(args.type, args.name, args.inputs) };
    },
    call(args) {
      invokes.push({ token: args.token, inputs: args.inputs });
      switch (args.token) {
        case 'aws:ecr/getAuthorizationToken:getAuthorizationToken':
          return { userName: 'AWS', password: 'ecr-token-from-mock', authorizationToken: 'QVdTOmVjcg==', proxyEndpoint: `https://${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com` };
        case 'aws:index/getCallerIdentity:getCallerIdentity':
          return { accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/test`, userId: 'test' };
        case 'aws:index/getRegion:getRegion':
          return { name: 'eu-west-1', region: 'eu-west-1' };
        default:
          return args.inputs;
      }
    },
  }, options.project ?? 'promptmesh', options.stack, false);

  const stackOutputs: Record<string, unknown> = {};
  let programError: unknown;
  const secretOutputs: string[] = [];
  await pulumi.runtime.runInPulumiStack(async () => {
    // Client-side transformations see the options (dependsOn, parent) the mocks do not get.
    pulumi.runtime.registerStackTransformation((t) => {
      names.set(t.resource, `${t.type}::${t.name}`);
      const deps = t.opts.dependsOn;
      const list = (deps === undefined ? [] : Array.isArray(deps) ? deps : [deps]) as pulumi.Resource[];
      dependsOnByName.set(`${t.type}::${t.name}`, { dependsOn: list.map((r) => names.get(r) ?? '?'), parent: t.opts.parent ? names.get(t.opts.parent) : undefined });
      return undefined;
    });
    // A program error is kept and rethrown after the stack settles: thrown inside the stack's
    // init it would also surface as an unhandled rejection of the runtime's own promises.
    let result: Record<string, unknown>;
    try {
      result = (await options.program()) ?? {};
    } catch (err) {
      programError = err;
      return {};
    }
    for (const [key, value] of Object.entries(result)) {
      if (pulumi.Output.isInstance(value)) {
        const isSecret = await (value as any).isSecret;
        if (isSecret) secretOutputs.push(key);
        stackOutputs[key] = await new Promise((resolve) => (value as pulumi.Output<unknown>).apply((v) => { resolve(v); return v; }));
      } else {
        stackOutputs[key] = value;
      }
    }
    return result;
  });
  await (pulumi.runtime as any).waitForRPCs();
  if (programError !== undefined) {
    // What had been registered by then, for tests that check nothing was.
    if (programError instanceof Error) Object.defineProperty(programError, 'registered', { value: [...resources], enumerable: false });
    throw programError;
  }
  return { resources, outputs: stackOutputs, secretOutputs, invokes };
}

/** The resources of one type. */
export function ofType(run: MockRun, type: string): RegisteredResource[] {
  return run.resources.filter((r) => r.type === type);
}
