/**
 * The stack configuration of the Pulumi program (`promptmesh:*` keys in Pulumi.<stack>.yaml),
 * typed and checked before anything is created. Every error names the key:
 * `promptmesh:nodeGroups[1].instanceTypes must list at least 4 types for a spot group`.
 *
 * Secrets (`providerApiKeys`, `adminApiKey`) are never parsed here: the program reads them with
 * `config.requireSecret`, so they only exist as secret outputs.
 */
import { SERVICE_NAMES, type ServiceName } from '../../contracts';
import { ACME_SERVERS, KUBERNETES_RELEASES, KUBERNETES_VERSION, MIN_SPOT_INSTANCE_TYPES, isKubernetesVersion, type KubernetesVersion, validateNodeGroups, validateSystemNodeGroup, type NodeGroupSpec, type SystemNodeGroupSpec } from '../../infra/pulumi';

/** The config namespace of this project. */
export const NS = 'promptmesh';

/** Keys that must be Pulumi secrets (`pulumi config set --secret`). */
export const SECRET_KEYS = ['providerApiKeys', 'adminApiKey'] as const;

/** A config error; the message names the key. */
export class StackConfigError extends Error {
  constructor(key: string, problem: string) {
    // Keys of other namespaces (aws:region) stay as they are; short keys are ours.
    super(`${key.includes(':') ? key : `${NS}:${key}`} ${problem}`);
    this.name = 'StackConfigError';
  }
}

/** Per-service settings of the app. */
export interface StackServiceSettings {
  /** Fewest replicas (HPA floor). */
  minReplicas: number;
  /** Most replicas (HPA ceiling). */
  maxReplicas: number;
  /** Spot or on-demand nodes. */
  capacity: 'spot' | 'on-demand';
}

/** The app's settings (`promptmesh:app`). */
export interface AppSettings {
  /** Namespace of the app. */
  namespace: string;
  /** Redis standalone (dev) or cluster mode (production). */
  redis: 'standalone' | 'cluster';
  /** Per service; unset services use the chart's defaults. */
  services: Partial<Record<ServiceName, Partial<StackServiceSettings>>>;
  /** The providers file content (providers, models, routing, cache); no keys in it. */
  providers?: Record<string, unknown>;
  /** SHA-256 hashes of additional client API keys: `[{ id, sha256, scopes, rpm? }]`. */
  apiKeyHashes: { id: string; sha256: string; scopes: ('invoke' | 'admin')[]; rpm?: number }[];
  /** Log level of the services. */
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /**
   * HTTPS at the gateway: the TLS Secret (in `istio-ingress`, made by you or cert-manager) and
   * the host names. Without it the gateway serves plain HTTP on port 80.
   */
  tls?: { credentialName: string; hosts: string[] };
}

/** Settings of an AWS stack. */
export interface AwsSettings {
  /** AWS region (from `aws:region`). */
  region: string;
  /** EKS cluster name. */
  clusterName: string;
  /** Three or more zones. */
  availabilityZones: string[];
  /** The VPC range. */
  vpcCidr: string;
  /** `single` (dev) or `perZone` (production). */
  natGateways: 'single' | 'perZone';
  /** Kubernetes minor version (one of the pins table's). */
  kubernetesVersion: KubernetesVersion;
  /** Private API endpoint only. */
  privateEndpoint: boolean;
  /** Who may reach a public endpoint. */
  publicAccessCidrs?: string[];
  /** IAM roles granted cluster-admin. */
  adminRoleArns: string[];
  /** The system node group. */
  systemNodeGroup: SystemNodeGroupSpec;
  /** The workload node groups. */
  nodeGroups: NodeGroupSpec[];
  /** `in-cluster` or `rds`. */
  database: 'in-cluster' | 'rds';
  /** RDS settings (when `database` is `rds`). */
  rds: { instanceClass?: string; allocatedStorageGiB?: number; multiAz?: boolean; protect?: boolean; backupRetentionDays?: number };
  /** Prometheus replicas. */
  prometheusReplicas: number;
  /** istiod and gateway replicas. */
  meshReplicas: number;
  /** Tags on every AWS resource. */
  tags: Record<string, string>;
  /** HTTPS at the gateway: cert-manager's ACME DNS-01 certificate for these hosts, in this Route 53 zone. */
  tls: AwsTlsSettings;
  /** Docker Hub credentials (Secrets Manager ARN) for the ECR pull-through cache, if any. */
  dockerHubCredentialArn?: string;
}

/** `promptmesh:tls` (aws mode): what the gateway's certificate is issued for, and where. */
export interface AwsTlsSettings {
  /** The Route 53 hosted zone holding the hosts (cert-manager may write only its challenge records there). */
  hostedZoneId: string;
  /** The public host names (`api.example.com`). */
  hosts: string[];
  /** The ACME account's contact address. */
  acmeEmail: string;
  /** Let's Encrypt `production` (trusted) or `staging` (untrusted, for trying a new stack). */
  acmeServer: keyof typeof ACME_SERVERS;
}

/** Settings of a local stack (an existing cluster from a kubeconfig). */
export interface LocalSettings {
  /** Path of the kubeconfig. */
  kubeconfigPath?: string;
  /** Context in the kubeconfig. */
  kubeContext?: string;
  /** The image (all services), e.g. `promptmesh:dev` loaded with `kind load docker-image`. */
  image: string;
  /** The ingress gateway's Service type. */
  gatewayServiceType: 'LoadBalancer' | 'NodePort';
  /** Install the platform (Istio, monitoring, tracing) too. */
  installPlatform: boolean;
}

/** What is known about the secrets without holding their values: the names of the provider keys. */
export interface SecretShape {
  /** The environment variable names in `providerApiKeys` (e.g. OPENAI_API_KEY). */
  providerKeyNames: string[];
}

/** The whole stack configuration. */
export type StackConfig =
  | { mode: 'aws'; environment: string; app: AppSettings; secrets: SecretShape; aws: AwsSettings }
  | { mode: 'local'; environment: string; app: AppSettings; secrets: SecretShape; local: LocalSettings };

/**
 * Checks the secret keys' presence and shape only (values are looked at for their form and
 * dropped): they must be Pulumi secrets, `adminApiKey` long enough, `providerApiKeys` an object
 * of variable names that covers every `apiKeyEnv` of the providers file.
 */
function checkSecrets(allConfig: Record<string, string>, isSecret: (key: string) => boolean, app: AppSettings): SecretShape {
  for (const key of SECRET_KEYS) {
    const full = `${NS}:${key}`;
    if (allConfig[full] !== undefined && !isSecret(full)) {
      throw new StackConfigError(key, `must be a secret; set it with: pulumi config set --secret ${full} <value> (and rotate it: it was stored in plain text)`);
    }
  }
  const admin = allConfig[`${NS}:adminApiKey`];
  if (admin === undefined || admin === '') {
    throw new StackConfigError('adminApiKey', `is required (the router's admin API key); set it with: pulumi config set --secret ${NS}:adminApiKey "$(openssl rand -hex 32)"`);
  }
  if (admin.length < 24 || /\s/.test(admin)) throw new StackConfigError('adminApiKey', 'must be at least 24 characters without spaces (e.g. openssl rand -hex 32)');
  let providerKeyNames: string[] = [];
  const rawKeys = allConfig[`${NS}:providerApiKeys`];
  if (rawKeys !== undefined) {
    let parsed: unknown;
    try { parsed = JSON.parse(rawKeys); } catch { parsed = undefined; }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new StackConfigError('providerApiKeys', `must be an object of variable name -> key; set entries with: pulumi config set --secret --path '${NS}:providerApiKeys.OPENAI_API_KEY' <key>`);
    }
    for (const [name, value] of Object.entries(parsed)) {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new StackConfigError(`providerApiKeys.${name}`, 'must be an environment variable name (A-Z, 0-9, _)');
      if (typeof value !== 'string' || value === '') throw new StackConfigError(`providerApiKeys.${name}`, 'must be a non-empty string');
    }
    providerKeyNames = Object.keys(parsed);
  }
  const providers = (app.providers?.providers ?? []) as { name?: string; apiKeyEnv?: string }[];
  providers.forEach((p, i) => {
    if (p.apiKeyEnv && !providerKeyNames.includes(p.apiKeyEnv)) {
      throw new StackConfigError(`providerApiKeys.${p.apiKeyEnv}`, `is missing: provider app.providers.providers[${i}] (${p.name ?? '?'}) reads its key from ${p.apiKeyEnv}; set it with: pulumi config set --secret --path '${NS}:providerApiKeys.${p.apiKeyEnv}' <key>`);
    }
  });
  if (providerKeyNames.length > 0 && !app.providers) {
    throw new StackConfigError('providerApiKeys', `is set but ${NS}:app.providers is not: no provider would read these keys`);
  }
  return { providerKeyNames };
}

const KNOWN_KEYS = new Set([
  'mode', 'environment', 'clusterName', 'availabilityZones', 'vpcCidr', 'natGateways', 'kubernetesVersion', 'privateEndpoint',
  'publicAccessCidrs', 'adminRoleArns', 'systemNodeGroup', 'nodeGroups', 'database', 'rds', 'prometheusReplicas', 'meshReplicas',
  'tags', 'tls', 'dockerHubCredentialArn', 'app', 'kubeconfigPath', 'kubeContext', 'image', 'gatewayServiceType', 'installPlatform', ...SECRET_KEYS,
]);
const AWS_ONLY = ['clusterName', 'availabilityZones', 'vpcCidr', 'natGateways', 'kubernetesVersion', 'privateEndpoint', 'publicAccessCidrs',
  'adminRoleArns', 'systemNodeGroup', 'nodeGroups', 'rds', 'prometheusReplicas', 'meshReplicas', 'tags', 'tls', 'dockerHubCredentialArn'];
const LOCAL_ONLY = ['kubeconfigPath', 'kubeContext', 'image', 'gatewayServiceType', 'installPlatform'];

/** Reads raw config values (strings, JSON for structured values) by short key. */
type Raw = Record<string, string>;

function parseJson(raw: Raw, key: string): unknown {
  const text = raw[key];
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    // Pulumi stores plain strings unquoted.
    return text;
  }
}

function str(raw: Raw, key: string, fallback?: string, pattern?: RegExp, what = 'a string'): string {
  const v = raw[key];
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    throw new StackConfigError(key, `is required (${what}); set it with: pulumi config set ${NS}:${key} <value>`);
  }
  if (pattern && !pattern.test(v)) throw new StackConfigError(key, `must be ${what} (got ${JSON.stringify(v)})`);
  return v;
}

function oneOf<T extends string>(raw: Raw, key: string, allowed: readonly T[], fallback?: T): T {
  const v = raw[key] ?? fallback;
  if (v === undefined) throw new StackConfigError(key, `is required: one of ${allowed.join(', ')}`);
  if (!allowed.includes(v as T)) throw new StackConfigError(key, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
  return v as T;
}

function bool(raw: Raw, key: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined) return fallback;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new StackConfigError(key, `must be true or false (got ${JSON.stringify(v)})`);
}

function int(raw: Raw, key: string, fallback: number, min: number, max: number): number {
  const v = raw[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new StackConfigError(key, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  return n;
}

function stringList(raw: Raw, key: string, pattern: RegExp, what: string): string[] | undefined {
  const v = parseJson(raw, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw new StackConfigError(key, `must be a list of ${what} (got ${JSON.stringify(v)})`);
  v.forEach((item, i) => {
    if (typeof item !== 'string' || !pattern.test(item)) throw new StackConfigError(`${key}[${i}]`, `must be ${what} (got ${JSON.stringify(item)})`);
  });
  return v as string[];
}

function object(raw: Raw, key: string): Record<string, unknown> | undefined {
  const v = parseJson(raw, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new StackConfigError(key, `must be an object (got ${JSON.stringify(v)})`);
  return v as Record<string, unknown>;
}

function onlyKeys(key: string, value: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) throw new StackConfigError(`${key}.${k}`, `is not a known setting (known: ${allowed.join(', ')})`);
  }
}

/** Rethrows a component validation error (`'nodeGroups[1].x' must ...`) as a StackConfigError on the key. */
function asConfigError(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    const m = /^'([^']+)' (.*)$/s.exec((e as Error).message);
    if (m) throw new StackConfigError(m[1], m[2]);
    throw e;
  }
}

function parseApp(raw: Raw): AppSettings {
  const app = object(raw, 'app') ?? {};
  onlyKeys('app', app, ['namespace', 'redis', 'services', 'providers', 'apiKeyHashes', 'logLevel', 'tls']);
  const sub: Raw = Object.fromEntries(Object.entries(app).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  const namespace = str(sub, 'namespace', 'promptmesh', /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a lowercase RFC 1123 label');
  const redis = (() => { try { return oneOf(sub, 'redis', ['standalone', 'cluster'] as const, 'standalone'); } catch { throw new StackConfigError('app.redis', `must be standalone or cluster (got ${JSON.stringify(app.redis)})`); } })();
  const logLevel = (['trace', 'debug', 'info', 'warn', 'error'] as const).find((l) => l === (app.logLevel ?? 'info'));
  if (!logLevel) throw new StackConfigError('app.logLevel', `must be one of trace, debug, info, warn, error (got ${JSON.stringify(app.logLevel)})`);

  const services: AppSettings['services'] = {};
  const rawServices = app.services ?? {};
  if (typeof rawServices !== 'object' || Array.isArray(rawServices)) throw new StackConfigError('app.services', 'must be an object keyed by service name');
  for (const [service, settings] of Object.entries(rawServices as Record<string, any>)) {
    const at = `app.services.${service}`;
    if (!(SERVICE_NAMES as readonly string[]).includes(service)) throw new StackConfigError(at, `is not a service (${SERVICE_NAMES.join(', ')})`);
    if (typeof settings !== 'object' || settings === null) throw new StackConfigError(at, 'must be an object');
    onlyKeys(at, settings, ['minReplicas', 'maxReplicas', 'capacity']);
    const out: Partial<StackServiceSettings> = {};
    for (const k of ['minReplicas', 'maxReplicas'] as const) {
      if (settings[k] !== undefined) {
        if (!Number.isInteger(settings[k]) || settings[k] < 1 || settings[k] > 100) throw new StackConfigError(`${at}.${k}`, `must be an integer from 1 to 100 (got ${JSON.stringify(settings[k])})`);
        out[k] = settings[k];
      }
    }
    if (out.minReplicas !== undefined && out.maxReplicas !== undefined && out.minReplicas > out.maxReplicas) {
      throw new StackConfigError(`${at}.maxReplicas`, `must be >= minReplicas (${out.minReplicas})`);
    }
    if (settings.capacity !== undefined) {
      if (settings.capacity !== 'spot' && settings.capacity !== 'on-demand') throw new StackConfigError(`${at}.capacity`, `must be spot or on-demand (got ${JSON.stringify(settings.capacity)})`);
      out.capacity = settings.capacity;
    }
    services[service as keyof AppSettings['services']] = out;
  }

  let providers: Record<string, unknown> | undefined;
  if (app.providers !== undefined) {
    if (typeof app.providers !== 'object' || app.providers === null || Array.isArray(app.providers)) throw new StackConfigError('app.providers', 'must be an object (the providers file: providers, models, routing, cache)');
    providers = app.providers as Record<string, unknown>;
    const list = providers.providers;
    if (!Array.isArray(list) || list.length === 0) throw new StackConfigError('app.providers.providers', 'must list at least one provider');
    list.forEach((p: any, i: number) => {
      if (p && typeof p === 'object' && ('apiKey' in p)) throw new StackConfigError(`app.providers.providers[${i}].apiKey`, `must not be set: keys are secrets; name the variable in apiKeyEnv and set the key with: pulumi config set --secret --path '${NS}:providerApiKeys.<ENV_NAME>' <key>`);
    });
  }

  const hashes = app.apiKeyHashes ?? [];
  if (!Array.isArray(hashes)) throw new StackConfigError('app.apiKeyHashes', 'must be a list of { id, sha256, scopes }');
  hashes.forEach((h: any, i: number) => {
    const at = `app.apiKeyHashes[${i}]`;
    if (!h || typeof h.id !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(h.id)) throw new StackConfigError(`${at}.id`, 'must be 1-64 letters, digits, . _ -');
    if (typeof h.sha256 !== 'string' || !/^[a-f0-9]{64}$/.test(h.sha256)) throw new StackConfigError(`${at}.sha256`, 'must be the hex SHA-256 of the key (64 lowercase hex digits)');
    if (!Array.isArray(h.scopes) || h.scopes.length === 0 || h.scopes.some((s: unknown) => s !== 'invoke' && s !== 'admin')) throw new StackConfigError(`${at}.scopes`, 'must list invoke and/or admin');
    if (h.rpm !== undefined && (!Number.isInteger(h.rpm) || h.rpm < 1 || h.rpm > 1_000_000)) throw new StackConfigError(`${at}.rpm`, 'must be an integer from 1 to 1000000');
    // The program adds the admin key as id 'admin'; the router refuses repeated ids and hashes.
    if (h.id === 'admin') throw new StackConfigError(`${at}.id`, "must not be 'admin' (the program's entry for promptmesh:adminApiKey)");
    if (hashes.slice(0, i).some((o: any) => o.id === h.id)) throw new StackConfigError(`${at}.id`, `repeats '${h.id}'`);
    if (hashes.slice(0, i).some((o: any) => o.sha256 === h.sha256)) throw new StackConfigError(`${at}.sha256`, 'is the same key as another entry');
  });
  let tls: AppSettings['tls'];
  if (app.tls !== undefined) {
    const t = app.tls as any;
    if (typeof t !== 'object' || t === null) throw new StackConfigError('app.tls', 'must be { credentialName, hosts }');
    onlyKeys('app.tls', t, ['credentialName', 'hosts']);
    if (typeof t.credentialName !== 'string' || !/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(t.credentialName)) throw new StackConfigError('app.tls.credentialName', `must be a Secret name (got ${JSON.stringify(t.credentialName)})`);
    if (!Array.isArray(t.hosts) || t.hosts.length === 0 || t.hosts.some((h: unknown) => typeof h !== 'string' || !/^(\*|(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.test(h))) {
      throw new StackConfigError('app.tls.hosts', `must list host names like api.example.com (got ${JSON.stringify(t.hosts)})`);
    }
    tls = { credentialName: t.credentialName, hosts: t.hosts };
  }
  return { namespace, redis, services, providers, apiKeyHashes: hashes, logLevel, tls };
}

/**
 * Parses and checks the stack configuration.
 * @param allConfig every config value of the stack, keyed `promptmesh:key` / `aws:region`
 *   (secret keys are only checked for presence and shape; their values are not kept)
 * @param stack the stack name
 * @param isSecret whether a key was set as a secret
 */
export function parseStackConfig(allConfig: Record<string, string>, stack: string, isSecret: (key: string) => boolean = () => true, today: string = new Date().toISOString().slice(0, 10)): StackConfig {
  const raw: Raw = {};
  for (const [key, value] of Object.entries(allConfig)) {
    if (!key.startsWith(`${NS}:`)) continue;
    const short = key.slice(NS.length + 1);
    if (!KNOWN_KEYS.has(short)) {
      const near = [...KNOWN_KEYS].find((k) => k.toLowerCase() === short.toLowerCase() || k.startsWith(short) || short.startsWith(k));
      throw new StackConfigError(short, `is not a known setting${near ? ` (did you mean ${NS}:${near}?)` : ''}`);
    }
    if (!(SECRET_KEYS as readonly string[]).includes(short)) raw[short] = value;
  }
  const mode = oneOf(raw, 'mode', ['aws', 'local'] as const, 'aws');
  const environment = str(raw, 'environment', stack, /^[a-z][a-z0-9-]{0,19}$/, 'a short lowercase name like dev, staging or prod');
  const app = parseApp(raw);
  const secrets = checkSecrets(allConfig, isSecret, app);

  if (mode === 'local') {
    for (const k of AWS_ONLY) if (raw[k] !== undefined) throw new StackConfigError(k, `is an AWS setting; remove it in local mode (${NS}:mode is local)`);
    if (raw.database !== undefined && raw.database !== 'in-cluster') throw new StackConfigError('database', 'must be in-cluster in local mode');
    const installPlatform = bool(raw, 'installPlatform', true);
    return {
      mode,
      environment,
      app,
      secrets,
      local: {
        kubeconfigPath: raw.kubeconfigPath,
        kubeContext: raw.kubeContext,
        image: str(raw, 'image', undefined, /^[a-z0-9][a-z0-9._\-/:@]*$/, 'an image reference like promptmesh:dev or registry.local/promptmesh@sha256:...'),
        gatewayServiceType: oneOf(raw, 'gatewayServiceType', ['LoadBalancer', 'NodePort'] as const, 'NodePort'),
        installPlatform,
      },
    };
  }

  for (const k of LOCAL_ONLY) if (raw[k] !== undefined) throw new StackConfigError(k, `is a local-mode setting; remove it or set ${NS}:mode to local`);
  const region = allConfig['aws:region'];
  if (!region || !/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(region)) {
    throw new StackConfigError('aws:region', `is required in aws mode (a region like eu-west-1; got ${JSON.stringify(region)}); set it with: pulumi config set aws:region eu-west-1`);
  }
  const zones = stringList(raw, 'availabilityZones', /^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$/, 'availability zones like eu-west-1a') ?? ['a', 'b', 'c'].map((z) => `${region}${z}`);
  if (zones.length < 3) throw new StackConfigError('availabilityZones', `must list at least 3 zones (got ${zones.length})`);
  zones.forEach((z, i) => { if (!z.startsWith(region)) throw new StackConfigError(`availabilityZones[${i}]`, `must be a zone of ${region} (got ${z})`); });

  const systemRaw = object(raw, 'systemNodeGroup');
  if (!systemRaw) throw new StackConfigError('systemNodeGroup', 'is required: { instanceTypes, minSize, maxSize }');
  onlyKeys('systemNodeGroup', systemRaw, ['instanceTypes', 'minSize', 'maxSize', 'desiredSize']);
  const systemNodeGroup = systemRaw as unknown as SystemNodeGroupSpec;
  asConfigError(() => validateSystemNodeGroup(systemNodeGroup, 'systemNodeGroup'));

  const groupsRaw = parseJson(raw, 'nodeGroups');
  if (!Array.isArray(groupsRaw)) throw new StackConfigError('nodeGroups', `is required: a list of { name, capacity, instanceTypes, minSize, maxSize } (got ${JSON.stringify(groupsRaw)})`);
  groupsRaw.forEach((g, i) => {
    if (typeof g !== 'object' || g === null) throw new StackConfigError(`nodeGroups[${i}]`, 'must be an object');
    onlyKeys(`nodeGroups[${i}]`, g, ['name', 'capacity', 'instanceTypes', 'minSize', 'maxSize', 'desiredSize', 'diskSizeGiB']);
  });
  const nodeGroups = groupsRaw as NodeGroupSpec[];
  asConfigError(() => validateNodeGroups(nodeGroups, 'nodeGroups'));
  if (!nodeGroups.some((g) => g.capacity === 'spot')) throw new StackConfigError('nodeGroups', `must include a spot group (capacity: spot, at least ${MIN_SPOT_INSTANCE_TYPES} instance types)`);
  if (!nodeGroups.some((g) => g.capacity === 'on-demand')) {
    throw new StackConfigError('nodeGroups', 'must include an on-demand group: on-demand workloads (Redis, PostgreSQL, services placed on-demand) cannot run on the tainted system group');
  }

  const database = oneOf(raw, 'database', ['in-cluster', 'rds'] as const);
  const rdsRaw = object(raw, 'rds') ?? {};
  onlyKeys('rds', rdsRaw, ['instanceClass', 'allocatedStorageGiB', 'multiAz', 'protect', 'backupRetentionDays']);
  if (database !== 'rds' && Object.keys(rdsRaw).length > 0) throw new StackConfigError('rds', `only applies when ${NS}:database is rds`);
  if (rdsRaw.instanceClass !== undefined && (typeof rdsRaw.instanceClass !== 'string' || !/^db\.[a-z0-9]+\.[a-z0-9]+$/.test(rdsRaw.instanceClass))) {
    throw new StackConfigError('rds.instanceClass', `must be an RDS instance class like db.m6g.large (got ${JSON.stringify(rdsRaw.instanceClass)})`);
  }
  for (const k of ['multiAz', 'protect'] as const) {
    if (rdsRaw[k] !== undefined && typeof rdsRaw[k] !== 'boolean') throw new StackConfigError(`rds.${k}`, `must be true or false (got ${JSON.stringify(rdsRaw[k])})`);
  }
  for (const k of ['allocatedStorageGiB', 'backupRetentionDays'] as const) {
    if (rdsRaw[k] !== undefined && !Number.isInteger(rdsRaw[k])) throw new StackConfigError(`rds.${k}`, `must be an integer (got ${JSON.stringify(rdsRaw[k])})`);
  }

  const tags = object(raw, 'tags') ?? {};
  for (const [k, v] of Object.entries(tags)) if (typeof v !== 'string') throw new StackConfigError(`tags.${k}`, 'must be a string');
  const accepted = Object.keys(KUBERNETES_RELEASES).join(', ');
  const kubernetesVersion = str(raw, 'kubernetesVersion', KUBERNETES_VERSION, /^1\.\d{2}$/, `a Kubernetes minor, one of ${accepted}`);
  if (!isKubernetesVersion(kubernetesVersion)) {
    throw new StackConfigError('kubernetesVersion', `is ${kubernetesVersion} but infra/versions.ts pins EKS add-ons and the autoscaler only for ${accepted}`);
  }
  if (today > KUBERNETES_RELEASES[kubernetesVersion].endOfSupport) {
    throw new StackConfigError('kubernetesVersion', `is ${kubernetesVersion}, past EKS standard support since ${KUBERNETES_RELEASES[kubernetesVersion].endOfSupport} (extended support costs extra); choose a later one of ${accepted}`);
  }
  if (app.tls !== undefined) {
    throw new StackConfigError('app.tls', `is for local mode (a TLS Secret you make); in aws mode set ${NS}:tls { hostedZoneId, hosts, acmeEmail } and the certificate is issued for you`);
  }
  const tls = parseAwsTls(raw);
  const dockerHubCredentialArn = raw.dockerHubCredentialArn === undefined ? undefined
    : str(raw, 'dockerHubCredentialArn', undefined, /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache\/.+$/, 'the ARN of a Secrets Manager secret named ecr-pullthroughcache/<name>');

  return {
    mode,
    environment,
    app,
    secrets,
    aws: {
      region,
      clusterName: str(raw, 'clusterName', `promptmesh-${environment}`, /^[a-z][a-z0-9-]{0,99}$/, 'lowercase letters, digits and dashes'),
      availabilityZones: zones,
      vpcCidr: str(raw, 'vpcCidr', '10.40.0.0/16', /^\d{1,3}\.\d{1,3}\.0\.0\/(1[0-6]|[0-9])$/, 'an IPv4 /16 (or larger) like 10.40.0.0/16'),
      natGateways: oneOf(raw, 'natGateways', ['single', 'perZone'] as const, 'perZone'),
      kubernetesVersion,
      privateEndpoint: bool(raw, 'privateEndpoint', false),
      publicAccessCidrs: stringList(raw, 'publicAccessCidrs', /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'IPv4 CIDRs'),
      adminRoleArns: stringList(raw, 'adminRoleArns', /^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'IAM role ARNs') ?? [],
      systemNodeGroup,
      nodeGroups,
      database,
      rds: rdsRaw as AwsSettings['rds'],
      prometheusReplicas: int(raw, 'prometheusReplicas', 1, 1, 5),
      meshReplicas: int(raw, 'meshReplicas', 2, 1, 10),
      tags: tags as Record<string, string>,
      tls,
      ...(dockerHubCredentialArn ? { dockerHubCredentialArn } : {}),
    },
  };
}

const TLS_HELP = `every cloud environment serves HTTPS only: set ${NS}:tls { hostedZoneId: <Route 53 zone id>, hosts: [api.example.com], acmeEmail: <you@example.com> } (docs/pulumi.md, "HTTPS")`;

function parseAwsTls(raw: Raw): AwsTlsSettings {
  const t = object(raw, 'tls');
  if (!t) throw new StackConfigError('tls', `is required in aws mode: ${TLS_HELP}`);
  onlyKeys('tls', t, ['hostedZoneId', 'hosts', 'acmeEmail', 'acmeServer']);
  if (t.hostedZoneId === undefined) throw new StackConfigError('tls.hostedZoneId', `is required: the Route 53 hosted zone of the hosts; ${TLS_HELP}`);
  if (typeof t.hostedZoneId !== 'string' || !/^Z[A-Z0-9]{1,31}$/.test(t.hostedZoneId)) throw new StackConfigError('tls.hostedZoneId', `must be a Route 53 hosted zone id like Z0123456789ABCDEFGHIJ (got ${JSON.stringify(t.hostedZoneId)})`);
  if (t.hosts === undefined) throw new StackConfigError('tls.hosts', `is required: the public host names; ${TLS_HELP}`);
  if (!Array.isArray(t.hosts) || t.hosts.length === 0) throw new StackConfigError('tls.hosts', `must list host names like api.example.com (got ${JSON.stringify(t.hosts)})`);
  t.hosts.forEach((h: unknown, i: number) => {
    if (typeof h !== 'string' || !/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/.test(h)) throw new StackConfigError(`tls.hosts[${i}]`, `must be a DNS name like api.example.com (got ${JSON.stringify(h)})`);
  });
  if (t.acmeEmail === undefined) throw new StackConfigError('tls.acmeEmail', `is required: the ACME account's contact address; ${TLS_HELP}`);
  if (typeof t.acmeEmail !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(t.acmeEmail)) throw new StackConfigError('tls.acmeEmail', `must be an email address (got ${JSON.stringify(t.acmeEmail)})`);
  const acmeServer = t.acmeServer ?? 'production';
  if (acmeServer !== 'production' && acmeServer !== 'staging') throw new StackConfigError('tls.acmeServer', `must be production or staging (got ${JSON.stringify(t.acmeServer)})`);
  return { hostedZoneId: t.hostedZoneId, hosts: t.hosts as string[], acmeEmail: t.acmeEmail, acmeServer };
}
