import { DEFAULT_PORT, DEFAULT_REDIS_KEY_PREFIX, ENV, SERVICE_NAMES, SERVICES, calleesOf, type ServiceSelection } from '../../contracts';

/**
 * A configuration problem found at start. The message names the variable (or file) and the
 * field, and says what is wrong; the entry point prints it and exits non-zero.
 */
export class ConfigError extends Error {
  constructor(
    /** The environment variable or file the problem is in. */
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** Log levels pino accepts. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The process configuration every service shares, read from the environment once at start. */
export interface KitConfig {
  /** Which service (or all) this process runs. */
  service: ServiceSelection;
  port: number;
  host: string;
  /** PostgreSQL URL (templates). */
  databaseUrl: string;
  /** Redis URL (standalone mode). */
  redisUrl: string;
  /** Redis Cluster seed nodes (`host:port,host:port`); when set, cluster mode is used. */
  redisClusterNodes: Array<{ host: string; port: number }> | undefined;
  /** Prefix of every Redis key and channel. */
  redisKeyPrefix: string;
  /** Where the router finds the other services; unset in `all` mode. */
  templatesUrl: string | undefined;
  contextUrl: string | undefined;
  llmUrl: string | undefined;
  /** Providers, aliases, routing and cache settings (YAML or JSON). */
  providersFile: string | undefined;
  /** API keys (YAML or JSON); unset means auth is off. */
  apiKeysFile: string | undefined;
  /** OTLP/HTTP endpoint for traces; unset means tracing export is off. */
  otlpEndpoint: string | undefined;
  logLevel: LogLevel;
  /** How long in-flight requests get to finish after SIGTERM before connections are cut. */
  shutdownTimeoutMs: number;
  /** How long readiness fails before the server stops accepting, so load balancers notice. */
  drainDelayMs: number;
  /** Largest request body accepted; larger bodies get a 413. */
  bodyLimitBytes: number;
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === '' ? fallback : v;
}

function optional(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function url(env: Env, name: string, fallback: string | undefined, protocols: string[]): string | undefined {
  const raw = optional(env, name) ?? fallback;
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `is not a valid URL: ${JSON.stringify(redactUrl(raw))}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${parsed.protocol}`);
  }
  return raw;
}

/** Hides the password of a URL so it can be logged. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return raw.replace(/\/\/([^:/@]+):[^@]+@/, '//$1:***@');
  }
}

function clusterNodes(env: Env): KitConfig['redisClusterNodes'] {
  const raw = optional(env, ENV.redisClusterNodes);
  if (raw === undefined) return undefined;
  return raw.split(',').map((part) => {
    const m = /^\s*([^\s:]+):(\d{1,5})\s*$/.exec(part);
    if (!m) throw new ConfigError(ENV.redisClusterNodes, `each node must be host:port, got ${JSON.stringify(part)}`);
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new ConfigError(ENV.redisClusterNodes, `port out of range in ${JSON.stringify(part)}`);
    return { host: m[1]!, port };
  });
}

/**
 * Reads and validates the shared configuration. Throws a {@link ConfigError} naming the variable
 * for the first problem found.
 */
export function readConfig(env: Env = process.env): KitConfig {
  const service = str(env, ENV.service, 'all');
  if (service !== 'all' && !(SERVICE_NAMES as readonly string[]).includes(service)) {
    throw new ConfigError(ENV.service, `must be one of ${[...SERVICE_NAMES, 'all'].join(', ')}, got ${JSON.stringify(service)}`);
  }
  const logLevel = str(env, ENV.logLevel, 'info');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(ENV.logLevel, `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  }
  const config: KitConfig = {
    service: service as ServiceSelection,
    port: int(env, ENV.port, DEFAULT_PORT, 0, 65535),
    host: str(env, ENV.host, '0.0.0.0'),
    databaseUrl: url(env, ENV.databaseUrl, 'postgres://postgres@127.0.0.1:5432/promptmesh', ['postgres:', 'postgresql:'])!,
    redisUrl: url(env, ENV.redisUrl, 'redis://127.0.0.1:6379', ['redis:', 'rediss:'])!,
    redisClusterNodes: clusterNodes(env),
    redisKeyPrefix: str(env, ENV.redisKeyPrefix, DEFAULT_REDIS_KEY_PREFIX),
    templatesUrl: url(env, ENV.templatesUrl, undefined, ['http:', 'https:']),
    contextUrl: url(env, ENV.contextUrl, undefined, ['http:', 'https:']),
    llmUrl: url(env, ENV.llmUrl, undefined, ['http:', 'https:']),
    providersFile: optional(env, ENV.providersFile),
    apiKeysFile: optional(env, ENV.apiKeysFile),
    otlpEndpoint: url(env, ENV.otlpEndpoint, undefined, ['http:', 'https:']),
    logLevel: logLevel as LogLevel,
    shutdownTimeoutMs: int(env, ENV.shutdownTimeoutMs, 25_000, 0, 600_000),
    drainDelayMs: int(env, ENV.drainDelayMs, 5_000, 0, 120_000),
    bodyLimitBytes: int(env, ENV.bodyLimitBytes, 1_048_576, 1024, 64 * 1_048_576),
  };
  // One service alone must be told where the services it calls are (in `all` they are in-process).
  if (config.service !== 'all') {
    for (const peer of calleesOf(config.service)) {
      const name = SERVICES[peer].urlEnv!;
      if (!optional(env, name)) throw new ConfigError(name, `is required when SERVICE=${config.service} (where the ${config.service} finds that service)`);
    }
  }
  // No braces: the services put a {hash tag} after the prefix so that the keys of one
  // operation share a Redis Cluster slot, and a brace in the prefix would take its place.
  if (!/^[A-Za-z0-9:_.-]{0,64}$/.test(config.redisKeyPrefix)) {
    throw new ConfigError(ENV.redisKeyPrefix, 'may hold only letters, digits and : _ - . (at most 64; no braces, they would break cluster hash tags)');
  }
  return config;
}
