/**
 * The contracts the services and the infrastructure share: service names, ports, paths,
 * environment variable names, header names and metric names.
 *
 * Both `services/` and `infra/` read this module; neither imports the other. Changing a value
 * here changes the public contract described in DESIGN.md, so extend, don't rename.
 */

/** The four services of the prompt system. */
export const SERVICE_NAMES = ['router', 'templates', 'context', 'llm'] as const;
/** One service of the prompt system. */
export type ServiceName = (typeof SERVICE_NAMES)[number];
/** What `SERVICE` may be set to: one service, or all of them in one process. */
export type ServiceSelection = ServiceName | 'all';

/** The port every service listens on inside its container. */
export const DEFAULT_PORT = 8080;

/** HTTP paths every service serves. */
export const PATHS = {
  /** Liveness: the process is up. */
  healthz: '/healthz',
  /** Readiness: the service's own dependencies answer. */
  readyz: '/readyz',
  /** Prometheus text format. */
  metrics: '/metrics',
  /** router (public) and llm (internal). */
  chatCompletions: '/v1/chat/completions',
  /** router. */
  models: '/v1/models',
  /** templates. */
  templates: '/v1/templates',
  /** templates: change feed for reconciliation. */
  templateChanges: '/v1/templates/changes',
  /** context. */
  sessions: '/v1/sessions',
  /** llm. */
  providers: '/v1/providers',
  /** router (admin): virtual API keys (docs/keys.md). */
  keys: '/v1/keys',
  /** router (admin): teams, the budget and limits over all their keys. */
  teams: '/v1/teams',
  /** router: the spend ledger, grouped (a key without admin scope sees its own rows). */
  spend: '/v1/spend',
} as const;

/** Environment variables the services read (DESIGN.md, "Environment"). */
export const ENV = {
  service: 'SERVICE',
  port: 'PORT',
  host: 'HOST',
  databaseUrl: 'DATABASE_URL',
  redisUrl: 'REDIS_URL',
  redisClusterNodes: 'REDIS_CLUSTER_NODES',
  redisKeyPrefix: 'REDIS_KEY_PREFIX',
  templatesUrl: 'TEMPLATES_URL',
  contextUrl: 'CONTEXT_URL',
  llmUrl: 'LLM_URL',
  providersFile: 'PROVIDERS_FILE',
  apiKeysFile: 'API_KEYS_FILE',
  otlpEndpoint: 'OTEL_EXPORTER_OTLP_ENDPOINT',
  logLevel: 'LOG_LEVEL',
  shutdownTimeoutMs: 'SHUTDOWN_TIMEOUT_MS',
  drainDelayMs: 'DRAIN_DELAY_MS',
  bodyLimitBytes: 'BODY_LIMIT_BYTES',
} as const;

/** Response headers the router adds. */
export const HEADERS = {
  provider: 'x-promptmesh-provider',
  model: 'x-promptmesh-model',
  cache: 'x-promptmesh-cache',
  promptVersion: 'x-promptmesh-prompt-version',
  degraded: 'x-promptmesh-degraded',
  /** Between services: who made a change (the router sets it to the API key id). */
  actor: 'x-promptmesh-actor',
  /** Between services: whose cache and limits a call counts against (the API key id). */
  tenant: 'x-promptmesh-tenant',
  /** Between services: the tenant's own tokens-per-minute budget (the `tpm` of its API key). */
  tenantTpm: 'x-promptmesh-tenant-tpm',
  /** Between services: the team of the tenant's key (cost metrics' `team` label, the team's `tpm`). */
  team: 'x-promptmesh-team',
  /** Between services: the team's own tokens-per-minute budget over all its keys. */
  teamTpm: 'x-promptmesh-team-tpm',
  requestId: 'x-request-id',
  traceparent: 'traceparent',
} as const;

/** Prometheus metric names (DESIGN.md, "Metrics"). */
export const METRICS = {
  httpDuration: 'http_server_request_duration_seconds',
  genAiDuration: 'gen_ai_client_operation_duration_seconds',
  genAiTokens: 'gen_ai_client_token_usage',
  costUsd: 'promptmesh_llm_cost_usd_total',
  cacheRequests: 'promptmesh_cache_requests_total',
  circuitState: 'promptmesh_circuit_state',
  promptRequests: 'promptmesh_prompt_requests_total',
  templateCacheAge: 'promptmesh_template_cache_age_seconds',
  /** Gauge {component}: 1 while a part the process serves without is down (it stays ready). */
  degraded: 'promptmesh_degraded',
  /** router: chat completions that used a template, by `prompt`, `version`, `status_code` (histogram). */
  promptDuration: 'promptmesh_prompt_request_duration_seconds',
  /** router: USD spent on completions that used a template, by `prompt`, `version`. */
  promptCostUsd: 'promptmesh_prompt_cost_usd_total',
  /** llm: USD the response cache saved (what the cached answer cost when it was made), by `provider`, `model`. */
  cacheSavedUsd: 'promptmesh_cache_savings_usd_total',
  /** router gauge {budget="key"|"team", id, period}: USD spent in the budget's current period. */
  budgetSpentUsd: 'promptmesh_budget_spent_usd',
  /** router gauge {budget="key"|"team", id, period}: the budget in USD per period. */
  budgetLimitUsd: 'promptmesh_budget_limit_usd',
} as const;

/** The Redis pub/sub channel the routers publish virtual-key changes on (message: the key id). */
export function keyChangesChannel(keyPrefix: string = DEFAULT_REDIS_KEY_PREFIX): string {
  return `${keyPrefix}keys:changes`;
}

/** The default prefix of every Redis key and channel the services use (`REDIS_KEY_PREFIX`). */
export const DEFAULT_REDIS_KEY_PREFIX = 'pm:';

/** The Redis pub/sub channel the templates service publishes every change on. */
export function templateChangesChannel(keyPrefix: string = DEFAULT_REDIS_KEY_PREFIX): string {
  return `${keyPrefix}templates:changes`;
}
