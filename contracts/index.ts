/**
 * The contracts the services and the infrastructure share: service names, ports, paths,
 * environment variable names, header names and metric names, and per service (`SERVICES`) what
 * it serves, reads, listens on and is called by.
 *
 * Both `services/` and `infra/` read this module; neither imports the other. Changing a value
 * here changes the public contract described in DESIGN.md, so extend, don't rename.
 *
 * A new service is: its folder under `services/`, its name in {@link SERVICE_NAMES}, its entry
 * in {@link SERVICES} (the type makes both the registry and this map incomplete until it has
 * one), and one line in `services/registry.ts`. The cdk8s chart, the mesh, the network
 * policies, placement, the Pulumi image builds and the process builder read the rest from here
 * (test/contracts.test.ts checks they agree).
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
  /** router (public) and llm (internal): the OpenAI Embeddings API. */
  embeddings: '/v1/embeddings',
  /** router (public) and llm (internal): the OpenAI Responses API, passed through to providers that speak it. */
  responses: '/v1/responses',
  /** router (public, Anthropic's Messages API) and llm (internal). */
  messages: '/v1/messages',
  /** router. */
  models: '/v1/models',
  /** templates. */
  templates: '/v1/templates',
  /** templates: change feed for reconciliation. */
  templateChanges: '/v1/templates/changes',
  /** context. */
  sessions: '/v1/sessions',
  /** llm (internal), router (admin). */
  providers: '/v1/providers',
  /** router (admin): virtual API keys (docs/keys.md). */
  keys: '/v1/keys',
  /** router (admin): teams, the budget and limits over all their keys. */
  teams: '/v1/teams',
  /** router: the spend ledger, grouped (a key without admin scope sees its own rows). */
  spend: '/v1/spend',
  /** router (admin): the console's rolling per-prompt aggregates; `/:name` follows. */
  statsPrompts: '/v1/stats/prompts',
  /** router (admin): the console's rolling per-provider aggregates. */
  statsProviders: '/v1/stats/providers',
  /** router: the web console (DESIGN.md "The console"); the bare `/console` redirects here. */
  console: '/console/',
} as const;

/**
 * The path prefixes the public ingress routes to the router (DESIGN.md "The public surface"):
 * the API and the console. Everything else is reached only inside the mesh.
 */
export const PUBLIC_PATH_PREFIXES: readonly string[] = ['/v1/', PATHS.console];

/** The paths the kubelet probes on every service's HTTP port. */
export interface Probes {
  /** Until it answers, the other probes wait (a slow start is no failure). */
  readonly startup: string;
  /** Failing: no new requests are sent to the pod. */
  readonly readiness: string;
  /** Failing: the container is restarted. */
  readonly liveness: string;
}

/** The probes of every service: alive is `/healthz`, ready is `/readyz`. */
export const PROBES: Probes = { startup: PATHS.healthz, readiness: PATHS.readyz, liveness: PATHS.healthz };

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
  /** context: session TTL (services/context/config.ts has each of these settings' meaning and bounds). */
  contextTtlSeconds: 'CONTEXT_TTL_SECONDS',
  contextMaxMessages: 'CONTEXT_MAX_MESSAGES',
  contextMaxTokens: 'CONTEXT_MAX_TOKENS',
  contextMaxAppend: 'CONTEXT_MAX_APPEND',
  contextMaxContentChars: 'CONTEXT_MAX_CONTENT_CHARS',
  contextDedupeWindow: 'CONTEXT_DEDUPE_WINDOW',
} as const;

/** One environment variable name the services read. */
export type EnvName = (typeof ENV)[keyof typeof ENV];

/** What every service reads, whichever it is (the kit's config). */
export const COMMON_ENV: readonly EnvName[] = [
  ENV.service,
  ENV.port,
  ENV.host,
  ENV.redisKeyPrefix,
  ENV.otlpEndpoint,
  ENV.logLevel,
  ENV.shutdownTimeoutMs,
  ENV.drainDelayMs,
  ENV.bodyLimitBytes,
];

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
  /** llm -> router: what a plain completion cost, in USD. */
  costUsd: 'x-promptmesh-cost-usd',
  /**
   * router -> llm on `/v1/messages` and `/v1/responses`: `report` asks llm for the call's usage
   * with its exact cost (the spend ledger's input): on a plain answer as this response header
   * (the OpenAI usage object with `cost_usd` and `cost_micro_usd`, JSON), on a stream as a last
   * {@link LLM_USAGE_EVENT} event, which the router reads and does not pass on.
   */
  usage: 'x-promptmesh-usage',
  /** `/v1/messages` answers: `true` when an Anthropic provider answered the client's body as it came, `false` when translated. */
  passthrough: 'x-promptmesh-passthrough',
  requestId: 'x-request-id',
  traceparent: 'traceparent',
} as const;

/**
 * The SSE event type llm adds to a `/v1/messages` stream (before `message_stop`) or after a
 * `/v1/responses` stream when the router asked with `x-promptmesh-usage: report`: its data is
 * the call's usage with its cost (see {@link HEADERS} `usage`). Internal to the mesh.
 */
export const LLM_USAGE_EVENT = 'promptmesh.usage';

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

/** A datastore a service needs: its connection env comes from the data construct. */
export type Datastore = 'redis' | 'postgres';

/** Who may call a service: another service, or the Istio ingress gateway (the public API). */
export type Caller = ServiceName | 'ingress-gateway';

/** What one service is, as the services and the infrastructure both need to know it. */
export interface ServiceContract {
  /** The port its HTTP API, probes and `/metrics` listen on (`PORT`). */
  readonly port: number;
  /** The port Prometheus scrapes the app's {@link PATHS.metrics} on. */
  readonly metricsPort: number;
  readonly probes: Probes;
  /** The path prefixes of its own API (beyond the probes and `/metrics`). */
  readonly paths: readonly string[];
  /** The environment it reads beyond {@link COMMON_ENV}; the chart sets these. */
  readonly env: readonly EnvName[];
  /** The variable naming where its callers find it (`TEMPLATES_URL`), when other services call it. */
  readonly urlEnv?: EnvName;
  /** Who calls it; the mesh's AuthorizationPolicies and the NetworkPolicies admit exactly these. */
  readonly callers: readonly Caller[];
  readonly datastores: readonly Datastore[];
  /** Whether it carries the client's request end to end, streams included (on-demand nodes in production). */
  readonly requestPath: boolean;
  /** Whether it calls the LLM providers outside the cluster (the provider egress policy admits it). */
  readonly providerEgress: boolean;
  /**
   * Whether the router still serves while this service is down, degraded (`SERVICE=all`:
   * its readiness checks only mark the process degraded).
   */
  readonly degradable: boolean;
}

const HTTP = { port: DEFAULT_PORT, metricsPort: DEFAULT_PORT, probes: PROBES } as const;

/** Every service's contract. */
export const SERVICES: Readonly<Record<ServiceName, ServiceContract>> = {
  router: {
    ...HTTP,
    paths: [PATHS.chatCompletions, PATHS.messages, PATHS.embeddings, PATHS.responses, PATHS.models, PATHS.providers, PATHS.templates, PATHS.sessions, PATHS.statsPrompts, PATHS.statsProviders, PATHS.console, PATHS.keys, PATHS.teams, PATHS.spend],
    // DATABASE_URL: with API keys the router keeps virtual keys, teams and spend in PostgreSQL (docs/keys.md).
    env: [ENV.redisUrl, ENV.redisClusterNodes, ENV.templatesUrl, ENV.contextUrl, ENV.llmUrl, ENV.apiKeysFile, ENV.databaseUrl],
    callers: ['ingress-gateway'],
    datastores: ['redis', 'postgres'],
    requestPath: true,
    providerEgress: false,
    degradable: false,
  },
  templates: {
    ...HTTP,
    paths: [PATHS.templates],
    env: [ENV.databaseUrl, ENV.redisUrl, ENV.redisClusterNodes],
    urlEnv: ENV.templatesUrl,
    callers: ['router'],
    datastores: ['redis', 'postgres'],
    requestPath: false,
    providerEgress: false,
    degradable: true,
  },
  context: {
    ...HTTP,
    paths: [PATHS.sessions],
    env: [
      ENV.redisUrl,
      ENV.redisClusterNodes,
      ENV.contextTtlSeconds,
      ENV.contextMaxMessages,
      ENV.contextMaxTokens,
      ENV.contextMaxAppend,
      ENV.contextMaxContentChars,
      ENV.contextDedupeWindow,
    ],
    urlEnv: ENV.contextUrl,
    callers: ['router'],
    datastores: ['redis'],
    requestPath: false,
    providerEgress: false,
    degradable: true,
  },
  llm: {
    ...HTTP,
    paths: [PATHS.chatCompletions, PATHS.messages, PATHS.embeddings, PATHS.responses, PATHS.models, PATHS.providers],
    env: [ENV.redisUrl, ENV.redisClusterNodes, ENV.providersFile],
    urlEnv: ENV.llmUrl,
    callers: ['router'],
    datastores: ['redis'],
    requestPath: true,
    providerEgress: true,
    degradable: false,
  },
};

/** The service the ingress gateway sends the public API to (its callers include `ingress-gateway`). */
export const PUBLIC_SERVICE: ServiceName = 'router';

/** The services `svc` calls: those that list it among their callers. */
export function calleesOf(svc: ServiceName): ServiceName[] {
  return SERVICE_NAMES.filter((other) => SERVICES[other].callers.includes(svc));
}
