import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ENV } from '../../contracts';
import { ConfigError } from '../kit/config';
import { knownModel } from './model-limits';
import { PROVIDER_TYPES, type ModelPrice, type ProviderConfig, type ProviderType } from './types';
import type { Usage } from '../openai';

/**
 * The providers file (`PROVIDERS_FILE`, DESIGN.md "Providers file"): providers, model aliases,
 * routing and cache settings. Everything is validated at start; a problem stops the process with
 * a {@link ConfigError} naming the file and the field path (`providers[1].limits.rpm`).
 */

/** How the candidates of a model are ordered. */
export const ROUTING_STRATEGIES = ['weighted', 'priority', 'least-latency', 'cheapest'] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

/** One target of a model alias: a provider and the model name that provider knows. */
export interface ModelTarget {
  /** A provider's `name`. */
  provider: string;
  /** The model name sent to that provider. */
  model: string;
  /** Share of traffic under the `weighted` strategy (relative to the alias's other targets). @default 1 */
  weight: number;
}

/** Retries on the same provider, for retryable failures only. */
export interface RetryConfig {
  /** Retries after the first call to one provider (0 = no retries). @default 2 */
  attempts: number;
  /** Base of the exponential backoff; each retry waits a random time in [0, backoffMs * 2^n] (full jitter). @default 100 */
  backoffMs: number;
  /** Upper bound of one backoff wait. @default 2000 */
  maxBackoffMs: number;
  /**
   * A provider's Retry-After up to this long is honoured by waiting and retrying; a longer one
   * moves on to the next candidate at once. @default 2000
   */
  maxRetryAfterMs: number;
}

/** The circuit breaker every provider gets (per process). */
export interface BreakerConfig {
  /** Consecutive failures that open the circuit. @default 5 */
  failures: number;
  /** Failure share over the last `windowSize` calls that opens the circuit. @default 0.5 */
  failureRate: number;
  /** How many recent calls the failure rate looks at. @default 20 */
  windowSize: number;
  /** Calls needed in the window before the failure rate counts. @default 10 */
  minRequests: number;
  /** How long an open circuit skips the provider before letting probes through (half-open). @default 5000 */
  cooldownMs: number;
  /** Concurrent probe calls allowed while half-open. @default 1 */
  halfOpenProbes: number;
  /**
   * Opt-in: a call still outstanding after this long counts as failing while it hangs, so
   * `failures` hanging calls open the circuit before their timeouts fire. Set it well above the
   * provider's slowest healthy answer (for plain requests that is the whole generation).
   * @default off
   */
  slowCallMs?: number;
}

/** How requests are routed over a model's targets. */
export interface RoutingConfig {
  /** @default 'weighted' */
  strategy: RoutingStrategy;
  /** Try the remaining candidates (in strategy order) when one fails or is limited. @default true */
  fallback: boolean;
  retries: RetryConfig;
  breaker: BreakerConfig;
}

/** The exact-match response cache. */
export interface CacheConfig {
  /** @default true */
  enabled: boolean;
  /** How long a cached answer lives. @default 3600 */
  ttlSeconds: number;
}

/** The validated providers file, with every default applied. */
export interface LlmConfig {
  /** Where it came from (a path, or `built-in`). */
  source: string;
  providers: ProviderConfig[];
  /** Model aliases: what clients send as `model`, mapped to targets. */
  models: Record<string, ModelTarget[]>;
  routing: RoutingConfig;
  cache: CacheConfig;
}

/** The default `routing` section. */
export const DEFAULT_ROUTING: RoutingConfig = {
  strategy: 'weighted',
  fallback: true,
  retries: { attempts: 2, backoffMs: 100, maxBackoffMs: 2_000, maxRetryAfterMs: 2_000 },
  breaker: { failures: 5, failureRate: 0.5, windowSize: 20, minRequests: 10, cooldownMs: 5_000, halfOpenProbes: 1 },
};

/** The default `cache` section. */
export const DEFAULT_CACHE: CacheConfig = { enabled: true, ttlSeconds: 3_600 };

/** The configuration without a providers file: one built-in `echo` provider serving model `echo`. */
export function builtinConfig(): LlmConfig {
  return {
    source: 'built-in',
    providers: [
      {
        name: 'echo',
        type: 'echo',
        baseUrl: 'builtin:echo',
        timeoutMs: 30_000,
        connectTimeoutMs: 5_000,
        firstByteTimeoutMs: 30_000,
        models: ['echo'],
        prices: { echo: { input: 0, output: 0 } },
      },
    ],
    models: { echo: [{ provider: 'echo', model: 'echo', weight: 1 }] },
    routing: structuredClone(DEFAULT_ROUTING),
    cache: { ...DEFAULT_CACHE },
  };
}

/** Reads and validates `PROVIDERS_FILE` (or returns the built-in config when it is unset). */
export function loadLlmConfig(path: string | undefined, env: Record<string, string | undefined> = process.env): LlmConfig {
  if (path === undefined || path === '') return builtinConfig();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(ENV.providersFile, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, `is not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseLlmConfig(raw, path, env);
}

type Obj = Record<string, unknown>;

/** Validates a parsed providers document; `source` names it in errors. */
export function parseLlmConfig(raw: unknown, source: string, env: Record<string, string | undefined> = process.env): LlmConfig {
  const v = new Validator(source);
  const root = v.object(raw, '', ['providers', 'models', 'routing', 'cache']);
  const providerList = v.array(root.providers, 'providers', true);
  if (providerList.length === 0) v.fail('providers', 'must list at least one provider');
  const providers = providerList.map((p, i) => parseProvider(v, p, `providers[${i}]`, env));
  const names = new Set<string>();
  providers.forEach((p, i) => {
    if (names.has(p.name)) v.fail(`providers[${i}].name`, `duplicate provider name ${JSON.stringify(p.name)}`);
    names.add(p.name);
  });

  // Null-prototype maps: a model name is user input, and a plain object answers 'constructor'.
  const models: Record<string, ModelTarget[]> = Object.create(null);
  if (root.models !== undefined) {
    const m = v.object(root.models, 'models');
    for (const [alias, targetsRaw] of Object.entries(m)) {
      const at = `models.${alias}`;
      if (!/^[\w.:/@-]{1,128}$/.test(alias)) v.fail(at, 'alias may hold letters, digits and . : / @ _ - (at most 128)');
      const list = v.array(targetsRaw, at, true);
      if (list.length === 0) v.fail(at, 'must list at least one target');
      models[alias] = list.map((t, i) => {
        const tp = `${at}[${i}]`;
        const o = v.object(t, tp, ['provider', 'model', 'weight']);
        const provider = v.string(o.provider, `${tp}.provider`, true)!;
        if (!names.has(provider)) v.fail(`${tp}.provider`, `names no provider in 'providers' (known: ${[...names].join(', ')}), got ${JSON.stringify(provider)}`);
        const model = v.string(o.model, `${tp}.model`, true)!;
        const weight = v.number(o.weight, `${tp}.weight`, { min: 0, max: 1_000_000 }) ?? 1;
        return { provider, model, weight };
      });
      if (models[alias]!.every((t) => t.weight === 0)) v.fail(at, 'at least one target needs a weight above 0');
    }
  }

  const routing = structuredClone(DEFAULT_ROUTING);
  if (root.routing !== undefined) {
    const r = v.object(root.routing, 'routing', ['strategy', 'fallback', 'retries', 'breaker']);
    routing.strategy = (v.oneOf(r.strategy, 'routing.strategy', ROUTING_STRATEGIES) ?? routing.strategy) as RoutingStrategy;
    routing.fallback = v.boolean(r.fallback, 'routing.fallback') ?? routing.fallback;
    if (r.retries !== undefined) {
      const x = v.object(r.retries, 'routing.retries', ['attempts', 'backoffMs', 'maxBackoffMs', 'maxRetryAfterMs']);
      const d = routing.retries;
      d.attempts = v.int(x.attempts, 'routing.retries.attempts', 0, 10) ?? d.attempts;
      d.backoffMs = v.int(x.backoffMs, 'routing.retries.backoffMs', 0, 60_000) ?? d.backoffMs;
      d.maxBackoffMs = v.int(x.maxBackoffMs, 'routing.retries.maxBackoffMs', 0, 600_000) ?? Math.max(d.maxBackoffMs, d.backoffMs);
      d.maxRetryAfterMs = v.int(x.maxRetryAfterMs, 'routing.retries.maxRetryAfterMs', 0, 600_000) ?? d.maxRetryAfterMs;
    }
    if (r.breaker !== undefined) {
      const x = v.object(r.breaker, 'routing.breaker', ['failures', 'failureRate', 'windowSize', 'minRequests', 'cooldownMs', 'halfOpenProbes', 'slowCallMs']);
      const d = routing.breaker;
      d.failures = v.int(x.failures, 'routing.breaker.failures', 1, 10_000) ?? d.failures;
      d.failureRate = v.number(x.failureRate, 'routing.breaker.failureRate', { min: 0, max: 1, exclusiveMin: true }) ?? d.failureRate;
      d.windowSize = v.int(x.windowSize, 'routing.breaker.windowSize', 1, 10_000) ?? d.windowSize;
      d.minRequests = v.int(x.minRequests, 'routing.breaker.minRequests', 1, 10_000) ?? Math.min(d.minRequests, d.windowSize);
      if (d.minRequests > d.windowSize) v.fail('routing.breaker.minRequests', `must be at most windowSize (${d.windowSize})`);
      d.cooldownMs = v.int(x.cooldownMs, 'routing.breaker.cooldownMs', 1, 3_600_000) ?? d.cooldownMs;
      d.halfOpenProbes = v.int(x.halfOpenProbes, 'routing.breaker.halfOpenProbes', 1, 1_000) ?? d.halfOpenProbes;
      const slowCallMs = v.int(x.slowCallMs, 'routing.breaker.slowCallMs', 1, 600_000);
      if (slowCallMs !== undefined) d.slowCallMs = slowCallMs;
    }
  }

  const cache = { ...DEFAULT_CACHE };
  if (root.cache !== undefined) {
    const c = v.object(root.cache, 'cache', ['enabled', 'ttlSeconds']);
    cache.enabled = v.boolean(c.enabled, 'cache.enabled') ?? cache.enabled;
    cache.ttlSeconds = v.int(c.ttlSeconds, 'cache.ttlSeconds', 1, 30 * 86_400) ?? cache.ttlSeconds;
  }
  return { source, providers, models, routing, cache };
}

function parseProvider(v: Validator, raw: unknown, at: string, env: Record<string, string | undefined>): ProviderConfig {
  const o = v.object(raw, at, [
    'name',
    'type',
    'baseUrl',
    'apiKeyEnv',
    'timeoutMs',
    'connectTimeoutMs',
    'firstByteTimeoutMs',
    'idleTimeoutMs',
    'limits',
    'prices',
    'models',
    'headers',
    'maxOutputTokens',
    'passthrough',
    'deployments',
    'apiVersion',
    'auth',
    'region',
    'accountId',
    'project',
    'location',
  ]);
  const name = v.string(o.name, `${at}.name`, true)!;
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/i.test(name)) v.fail(`${at}.name`, 'must be 1-63 letters, digits, . _ - (starting with a letter or digit)');
  const type = v.oneOf(o.type, `${at}.type`, PROVIDER_TYPES, true) as ProviderType;
  // Bedrock and Vertex know their endpoints from region/location; baseUrl only overrides them.
  let baseUrl = v.string(o.baseUrl, `${at}.baseUrl`, type !== 'echo' && type !== 'bedrock' && type !== 'vertex');
  if (baseUrl !== undefined && type !== 'echo') {
    let u: URL | undefined;
    try {
      u = new URL(baseUrl);
    } catch {
      v.fail(`${at}.baseUrl`, `is not a valid URL: ${JSON.stringify(baseUrl)}`);
    }
    if (u!.protocol !== 'http:' && u!.protocol !== 'https:') v.fail(`${at}.baseUrl`, `must use http: or https:, got ${u!.protocol}`);
    baseUrl = baseUrl.replace(/\/+$/, '');
  }
  const apiKeyEnv = v.string(o.apiKeyEnv, `${at}.apiKeyEnv`);
  let apiKey: string | undefined;
  if (apiKeyEnv !== undefined) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(apiKeyEnv)) v.fail(`${at}.apiKeyEnv`, `must be an environment variable name, got ${JSON.stringify(apiKeyEnv)}`);
    apiKey = env[apiKeyEnv];
    if (apiKey === undefined || apiKey === '') {
      throw new ConfigError(apiKeyEnv, `is not set, but ${v.source} ${at}.apiKeyEnv names it as the API key of provider ${JSON.stringify(name)}`);
    }
  }
  const timeoutMs = v.int(o.timeoutMs, `${at}.timeoutMs`, 1, 600_000) ?? 30_000;
  const connectTimeoutMs = v.int(o.connectTimeoutMs, `${at}.connectTimeoutMs`, 1, 600_000) ?? Math.min(timeoutMs, 5_000);
  const firstByteTimeoutMs = v.int(o.firstByteTimeoutMs, `${at}.firstByteTimeoutMs`, 1, 600_000) ?? timeoutMs;
  const idleTimeoutMs = v.int(o.idleTimeoutMs, `${at}.idleTimeoutMs`, 1, 600_000);
  const cloud = parseCloudSettings(v, o, at, type, apiKeyEnv);
  const provider: ProviderConfig = { name, type, baseUrl: baseUrl ?? cloud.defaultBaseUrl ?? `builtin:${type}`, timeoutMs, connectTimeoutMs, firstByteTimeoutMs, ...cloud.settings };
  if (idleTimeoutMs !== undefined) provider.idleTimeoutMs = idleTimeoutMs;
  if (v.boolean(o.passthrough, `${at}.passthrough`) === true) provider.passthrough = true;
  if (apiKeyEnv !== undefined) {
    provider.apiKeyEnv = apiKeyEnv;
    provider.apiKey = apiKey;
  }
  if (o.limits !== undefined) {
    const l = v.object(o.limits, `${at}.limits`, ['rpm', 'tpm', 'concurrency']);
    provider.limits = {};
    const rpm = v.int(l.rpm, `${at}.limits.rpm`, 1, 100_000_000);
    const tpm = v.int(l.tpm, `${at}.limits.tpm`, 1, 10_000_000_000);
    const concurrency = v.int(l.concurrency, `${at}.limits.concurrency`, 1, 1_000_000);
    if (rpm !== undefined) provider.limits.rpm = rpm;
    if (tpm !== undefined) provider.limits.tpm = tpm;
    if (concurrency !== undefined) provider.limits.concurrency = concurrency;
  }
  if (o.prices !== undefined) {
    const p = v.object(o.prices, `${at}.prices`);
    // Null prototype: prices are looked up by model name, which is client input.
    provider.prices = Object.create(null) as NonNullable<ProviderConfig['prices']>;
    for (const [model, priceRaw] of Object.entries(p)) {
      const pp = `${at}.prices.${model}`;
      const price = v.object(priceRaw, pp, ['input', 'output', 'cached_input', 'cache_write'], true);
      const parsed: ModelPrice = {
        input: v.number(price.input, `${pp}.input`, { min: 0, max: 1_000_000, required: true })!,
        output: v.number(price.output, `${pp}.output`, { min: 0, max: 1_000_000, required: true })!,
      };
      const cachedInput = v.number(price.cached_input, `${pp}.cached_input`, { min: 0, max: 1_000_000 });
      const cacheWrite = v.number(price.cache_write, `${pp}.cache_write`, { min: 0, max: 1_000_000 });
      if (cachedInput !== undefined) parsed.cached_input = cachedInput;
      if (cacheWrite !== undefined) parsed.cache_write = cacheWrite;
      provider.prices[model] = parsed;
    }
  }
  if (o.maxOutputTokens !== undefined) {
    const m = v.object(o.maxOutputTokens, `${at}.maxOutputTokens`);
    provider.maxOutputTokens = {};
    for (const [model, max] of Object.entries(m)) {
      provider.maxOutputTokens[model] = v.int(max, `${at}.maxOutputTokens.${model}`, 1, 10_000_000)!;
      if (provider.maxOutputTokens[model] === undefined) v.fail(`${at}.maxOutputTokens.${model}`, 'must be a whole number');
    }
  }
  if (o.models !== undefined) {
    provider.models = v.array(o.models, `${at}.models`).map((m, i) => v.string(m, `${at}.models[${i}]`, true)!);
  }
  if (o.headers !== undefined) {
    const h = v.object(o.headers, `${at}.headers`);
    provider.headers = {};
    for (const [k, value] of Object.entries(h)) {
      if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(k)) v.fail(`${at}.headers`, `${JSON.stringify(k)} is not a valid header name`);
      provider.headers[k] = v.string(value, `${at}.headers.${k}`, true)!;
    }
  }
  return provider;
}

/** Field checks that throw a ConfigError naming the file and the field path. */
/** Fields only one provider type may set, and which. */
const TYPE_FIELDS: Record<string, ProviderType> = {
  deployments: 'azure-openai',
  apiVersion: 'azure-openai',
  auth: 'azure-openai',
  region: 'bedrock',
  accountId: 'bedrock',
  project: 'vertex',
  location: 'vertex',
};

/** The per-type settings of the cloud provider types, and the endpoint each defaults to. */
function parseCloudSettings(
  v: Validator,
  o: Obj,
  at: string,
  type: ProviderType,
  apiKeyEnv: string | undefined,
): { settings: Pick<ProviderConfig, 'azure' | 'bedrock' | 'vertex'>; defaultBaseUrl?: string } {
  for (const [field, owner] of Object.entries(TYPE_FIELDS)) {
    if (o[field] !== undefined && owner !== type) v.fail(`${at}.${field}`, `is only for providers of type '${owner}', this one is '${type}'`);
  }
  if (type === 'azure-openai') {
    const deployments: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [model, dep] of Object.entries(v.object(o.deployments, `${at}.deployments`))) {
      const name = v.string(dep, `${at}.deployments.${model}`, true)!;
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) v.fail(`${at}.deployments.${model}`, `must be an Azure deployment name (letters, digits, . _ -), got ${JSON.stringify(name)}`);
      deployments[model] = name;
    }
    const apiVersion = v.string(o.apiVersion, `${at}.apiVersion`) ?? DEFAULT_AZURE_API_VERSION;
    if (!/^\d{4}-\d{2}-\d{2}(-preview)?$/.test(apiVersion)) v.fail(`${at}.apiVersion`, `must look like 2024-10-21 or 2025-04-01-preview, got ${JSON.stringify(apiVersion)}`);
    const auth = (v.oneOf(o.auth, `${at}.auth`, ['api-key', 'entra'] as const) ?? (apiKeyEnv ? 'api-key' : 'entra')) as 'api-key' | 'entra';
    if (auth === 'api-key' && !apiKeyEnv) v.fail(`${at}.apiKeyEnv`, "is required when auth is 'api-key' (or set auth: entra for workload identity)");
    if (auth === 'entra' && apiKeyEnv) v.fail(`${at}.apiKeyEnv`, "must not be set when auth is 'entra' (the token comes from workload identity)");
    return { settings: { azure: { deployments, apiVersion, auth } } };
  }
  if (type === 'bedrock') {
    const region = v.string(o.region, `${at}.region`, true)!;
    if (!/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(region)) v.fail(`${at}.region`, `must be an AWS region such as us-east-1, got ${JSON.stringify(region)}`);
    const accountId = v.string(o.accountId, `${at}.accountId`);
    if (accountId !== undefined && !/^\d{12}$/.test(accountId)) v.fail(`${at}.accountId`, `must be a 12-digit AWS account ID, got ${JSON.stringify(accountId)}`);
    if (apiKeyEnv) v.fail(`${at}.apiKeyEnv`, 'is not used by bedrock: credentials come from the AWS default chain (IRSA or Pod Identity on EKS)');
    return { settings: { bedrock: { region, ...(accountId ? { accountId } : {}) } }, defaultBaseUrl: `https://bedrock-runtime.${region}.amazonaws.com` };
  }
  if (type === 'vertex') {
    const project = v.string(o.project, `${at}.project`);
    const location = v.string(o.location, `${at}.location`);
    if (project !== undefined && !/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/.test(project)) v.fail(`${at}.project`, `must be a Google Cloud project ID, got ${JSON.stringify(project)}`);
    if (location !== undefined && !/^[a-z0-9-]{1,40}$/.test(location)) v.fail(`${at}.location`, `must be a Vertex AI location such as us-central1 or global, got ${JSON.stringify(location)}`);
    if (project === undefined && location !== undefined) v.fail(`${at}.project`, 'is required with location (Vertex AI)');
    if (project === undefined && !apiKeyEnv) v.fail(`${at}.project`, 'is required for Vertex AI (or set apiKeyEnv for the Gemini API)');
    if (project !== undefined && apiKeyEnv) v.fail(`${at}.apiKeyEnv`, 'must not be set with project: Vertex AI authenticates with Application Default Credentials');
    if (project === undefined) return { settings: { vertex: {} }, defaultBaseUrl: 'https://generativelanguage.googleapis.com' };
    const loc = location ?? 'us-central1';
    return { settings: { vertex: { project, location: loc } }, defaultBaseUrl: loc === 'global' ? 'https://aiplatform.googleapis.com' : `https://${loc}-aiplatform.googleapis.com` };
  }
  return { settings: {} };
}

/** The Azure OpenAI `api-version` used when a provider names none (the GA version of October 2024). */
export const DEFAULT_AZURE_API_VERSION = '2024-10-21';

class Validator {
  constructor(readonly source: string) {}

  fail(path: string, message: string): never {
    throw new ConfigError(this.source, `${path || '(top level)'}: ${message}`);
  }

  object(value: unknown, path: string, known?: readonly string[], required = false): Obj {
    if (value === undefined || value === null) {
      if (required || path === '') this.fail(path, 'is required and must be an object');
      return {};
    }
    if (typeof value !== 'object' || Array.isArray(value)) this.fail(path, `must be an object, got ${describe(value)}`);
    if (known) {
      for (const key of Object.keys(value)) {
        if (!known.includes(key)) this.fail(path ? `${path}.${key}` : key, `is not a known field (known: ${known.join(', ')})`);
      }
    }
    return value as Obj;
  }

  array(value: unknown, path: string, required = false): unknown[] {
    if (value === undefined || value === null) {
      if (required) this.fail(path, 'is required and must be a list');
      return [];
    }
    if (!Array.isArray(value)) this.fail(path, `must be a list, got ${describe(value)}`);
    return value;
  }

  string(value: unknown, path: string, required = false): string | undefined {
    if (value === undefined || value === null) {
      if (required) this.fail(path, 'is required');
      return undefined;
    }
    if (typeof value !== 'string' || value.trim() === '') this.fail(path, `must be a non-empty string, got ${describe(value)}`);
    return value;
  }

  boolean(value: unknown, path: string): boolean | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') this.fail(path, `must be true or false, got ${describe(value)}`);
    return value;
  }

  number(value: unknown, path: string, o: { min: number; max: number; exclusiveMin?: boolean; required?: boolean }): number | undefined {
    if (value === undefined || value === null) {
      if (o.required) this.fail(path, 'is required');
      return undefined;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) this.fail(path, `must be a number, got ${describe(value)}`);
    if ((o.exclusiveMin ? value <= o.min : value < o.min) || value > o.max) {
      this.fail(path, `must be ${o.exclusiveMin ? 'above' : 'at least'} ${o.min} and at most ${o.max}, got ${value}`);
    }
    return value;
  }

  int(value: unknown, path: string, min: number, max: number): number | undefined {
    const n = this.number(value, path, { min, max });
    if (n !== undefined && !Number.isInteger(n)) this.fail(path, `must be a whole number, got ${n}`);
    return n;
  }

  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[], required = false): T | undefined {
    if (value === undefined || value === null) {
      if (required) this.fail(path, `is required (one of ${allowed.join(', ')})`);
      return undefined;
    }
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(path, `must be one of ${allowed.join(', ')}, got ${describe(value)}`);
    }
    return value as T;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return JSON.stringify(value);
}

/** The price of a provider model, in USD per million tokens, if the providers file lists it. */
export function priceOf(provider: ProviderConfig, model: string): ModelPrice | undefined {
  return provider.prices && Object.hasOwn(provider.prices, model) ? provider.prices[model] : undefined;
}

/** Tokens of one answer by how they are billed. */
export interface BilledTokens {
  /** Input tokens at the full input price. */
  input: number;
  /** Input tokens read from the prompt cache. */
  cachedInput: number;
  /** Input tokens written to the prompt cache. */
  cacheWrite: number;
  output: number;
}

/**
 * Splits a usage object by billing rate. `prompt_tokens` holds every input token, so cached
 * reads and cache writes are taken out of it (never below 0, whatever a provider reports).
 */
export function billedTokens(usage: Pick<Usage, 'prompt_tokens' | 'completion_tokens' | 'prompt_tokens_details' | 'cache_creation_input_tokens'>): BilledTokens {
  const count = (n: unknown) => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0);
  const prompt = count(usage.prompt_tokens);
  const cachedInput = Math.min(prompt, count(usage.prompt_tokens_details?.cached_tokens));
  const cacheWrite = Math.min(prompt - cachedInput, count(usage.cache_creation_input_tokens));
  return { input: prompt - cachedInput - cacheWrite, cachedInput, cacheWrite, output: count(usage.completion_tokens) };
}

/**
 * The rates (USD per million tokens) of a priced model, with `cached_input` and `cache_write`
 * filled in from the known share of the input price for the model family, else the input price.
 */
export function ratesOf(provider: ProviderConfig, model: string): Required<ModelPrice> | undefined {
  const price = priceOf(provider, model);
  if (!price) return undefined;
  const known = knownModel(model);
  return {
    input: price.input,
    output: price.output,
    cached_input: price.cached_input ?? price.input * (known?.cachedInputRatio ?? 1),
    cache_write: price.cache_write ?? price.input * (known?.cacheWriteRatio ?? 1),
  };
}

/**
 * USD for the given usage at the provider's price for `model` (0 when the model has no price):
 * uncached input, cached input, cache writes and output each at their own rate.
 */
export function costOf(provider: ProviderConfig, model: string, usage: Pick<Usage, 'prompt_tokens' | 'completion_tokens' | 'prompt_tokens_details' | 'cache_creation_input_tokens'>): number {
  const rates = ratesOf(provider, model);
  if (!rates) return 0;
  const t = billedTokens(usage);
  return (t.input * rates.input + t.cachedInput * rates.cached_input + t.cacheWrite * rates.cache_write + t.output * rates.output) / 1_000_000;
}

/** One million, as a bigint: picodollars per microdollar. */
const PICO_PER_MICRO = 1_000_000n;

/**
 * A rate in USD per million tokens is microdollars per token; times 1e6 it is picodollars per
 * token, an integer for any price given to six decimals (finer digits are rounded away here).
 */
function picoPerToken(usdPerMillion: number): bigint {
  return BigInt(Math.round(usdPerMillion * 1_000_000));
}

/**
 * The exact cost of one call in integer microdollars, what the spend ledger counts (docs/keys.md,
 * "Cost"): each token class (uncached input, cached input, cache writes, output) times its rate
 * in picodollars per token, summed exactly, then rounded once per call to the nearest
 * microdollar, halves up. 0 when the model has no price.
 */
export function microUsdOf(provider: ProviderConfig, model: string, usage: Pick<Usage, 'prompt_tokens' | 'completion_tokens' | 'prompt_tokens_details' | 'cache_creation_input_tokens'>): number {
  const rates = ratesOf(provider, model);
  if (!rates) return 0;
  return microUsdFor(billedTokens(usage), rates);
}

/** {@link microUsdOf} for tokens already split by rate, at `rates` (USD per million tokens). */
export function microUsdFor(t: BilledTokens, rates: Required<ModelPrice>): number {
  const pico =
    BigInt(Math.round(t.input)) * picoPerToken(rates.input) +
    BigInt(Math.round(t.cachedInput)) * picoPerToken(rates.cached_input) +
    BigInt(Math.round(t.cacheWrite)) * picoPerToken(rates.cache_write) +
    BigInt(Math.round(t.output)) * picoPerToken(rates.output);
  return Number((pico + PICO_PER_MICRO / 2n) / PICO_PER_MICRO);
}
