/**
 * The router: promptmesh's public, OpenAI-compatible API (docs/router.md).
 *
 * `createRouterService(ctx, peers)` wires the router to its peers (wiring.ts): in-process cores when
 * templates, context and llm run in the same process (`SERVICE=all`), HTTP keep-alive pools to
 * `TEMPLATES_URL`, `CONTEXT_URL` and `LLM_URL` otherwise. It serves
 * - `POST /v1/chat/completions` (plain and SSE), `GET /v1/models` (scope `invoke`),
 * - `GET /v1/providers` (scope `admin`),
 * - the templates API under `/v1/templates/**` and the sessions API under `/v1/sessions/**`
 *   (template reads `invoke`, everything else `admin`; the key id is passed on as the actor).
 * The scope of every route is in `ROUTE_SCOPES` (route-scopes.ts), read from the route that
 * matched; a route missing there stops the start.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { ServiceName } from '../../contracts';
import { PATHS } from '../../contracts';
import { badRequest, closeRedis, createRedis, redisConnected, type RedisClient, type ServiceContext, type ServiceInstance } from '../kit';
import { setActor } from './admin';
import { ApiKeyStore } from './auth';
import { authenticate } from './auth-hook';
import { createChatHandler, createPromptMetrics } from './chat';
import { createEmbeddingsHandler } from './embeddings';
import { createResponsesHandler } from './responses';
import { anthropicErrorHandler, createMessagesHandler } from './messages';
import { RouterMessagesRequestSchema } from '../anthropic';
import type { RouterClients } from './clients';
import { KeyRateLimiter } from './key-rate-limit';
import { guardRouteScopes, isPublicRoute, scopeOfRequest } from './route-scopes';
import { EmbeddingsRequestSchema, ResponsesRequestSchema, MAX_SESSION_ID_CHARS, RouterChatRequestSchema, SESSION_ID_PATTERN, chatResponseSchemas, embeddingsResponseSchemas } from '../openai';
import { consoleRoutes } from './console';
import { statsRoutes } from './stats';
import { RollingStats, STATS_KINDS } from '../kit/rolling-stats';
import { TemplateCache } from './template-cache';
import { openKeys, type VirtualKeys } from './keys';
import { keysRoutes } from './keys/routes';
import { inProcessPeers, wireInProcess, wireMesh, type PeerWiring } from './wiring';

const SESSION_ID = new RegExp(SESSION_ID_PATTERN);

export { ApiKeyStore, SCOPES, hashApiKey, parseApiKeys, type ApiKey, type Scope } from './auth';
export { PUBLIC_ROUTES, ROUTE_SCOPES, guardRouteScopes, isPublicRoute, scopeOfRoute, type RouteScope } from './route-scopes';
export type { CallMeta, ContextClient, LlmClient, RouterClients, TemplatesClient } from './clients';
export { HttpContextClient, HttpLlmClient, HttpTemplatesClient, createHttpClients } from './clients-http';
export { LocalContextClient, LocalLlmClient, LocalTemplatesClient } from './clients-local';
export { PeerHttp, isDependencyDown } from './http-client';
export { KeyRateLimiter } from './key-rate-limit';
export { TemplateCache, type CachedVersion } from './template-cache';
export { wireInProcess, wireMesh, type InProcessPeers, type PeerWiring } from './wiring';

/** The routes whose calls the spend ledger counts: each takes a budget lease before the call (docs/keys.md). */
const BILLED_PATHS: ReadonlySet<string> = new Set([PATHS.chatCompletions, PATHS.embeddings, PATHS.messages, PATHS.responses]);

/** What the router exposes to in-process callers (tests, embedding). */
export interface RouterCore {
  clients: RouterClients;
  templates: TemplateCache;
  /** The API keys; undefined when auth is off. */
  keys: ApiKeyStore | undefined;
  /** The virtual keys, teams and spend ledger; undefined when auth is off. */
  virtualKeys: VirtualKeys | undefined;
}

/** Overrides for {@link createRouterService}, mostly for tests. */
export interface RouterServiceOptions {
  /** How often the template cache reads the change feed. @default 5000 */
  reconcileIntervalMs?: number;
  /** How often the keys file is stat'ed besides fs.watch. @default 2000 */
  keysPollIntervalMs?: number;
  /** Where the built console is (`npm run build`). @default build/console (see console.ts) */
  consoleDir?: string;
  /** How often the virtual keys are reloaded in full besides the change announcements. @default 30000 */
  keysRefreshIntervalMs?: number;
  /** How often buffered spend rows are written to PostgreSQL. @default 1000 */
  spendFlushIntervalMs?: number;
}

/**
 * Builds the router (see the module comment). Throws a ConfigError when the keys file is
 * broken, or when it runs alone without the peers' URLs.
 */
export async function createRouterService(
  ctx: ServiceContext,
  peers: ReadonlyMap<ServiceName, ServiceInstance> = new Map(),
  options: RouterServiceOptions = {},
): Promise<ServiceInstance<RouterCore>> {
  const { config, logger } = ctx;
  const local = inProcessPeers(peers);

  // The keys file first: a broken one stops the start before anything is opened.
  const keys = config.apiKeysFile ? ApiKeyStore.open(config.apiKeysFile, logger, { pollIntervalMs: options.keysPollIntervalMs }) : undefined;
  let wiring: PeerWiring;
  try {
    wiring = local ? wireInProcess(local) : wireMesh(config);
  } catch (err) {
    keys?.close();
    throw err;
  }
  const { clients } = wiring;

  const redisClients: RedisClient[] = [];
  let limiter: KeyRateLimiter | undefined;
  let virtualKeys: VirtualKeys | undefined;
  if (keys) {
    const redis = createRedis(config, 'router');
    redis.on('error', () => undefined);
    redisClients.push(redis);
    limiter = new KeyRateLimiter(redis, config.redisKeyPrefix);
    // Virtual keys live beside the file's keys: with auth on, the router needs PostgreSQL.
    try {
      virtualKeys = await openKeys(ctx, { redis, fileKeys: keys, refreshIntervalMs: options.keysRefreshIntervalMs, flushIntervalMs: options.spendFlushIntervalMs });
    } catch (err) {
      keys.close();
      await closeRedis(redis);
      await clients.close();
      throw err;
    }
  }
  // The stats aggregates (per prompt version written here, per provider written by llm) live
  // in Redis so every replica answers the same.
  const statsRedis = createRedis(config, 'router-stats');
  statsRedis.on('error', () => undefined);
  redisClients.push(statsRedis);
  const promptStats = new RollingStats({ redis: statsRedis, keyPrefix: config.redisKeyPrefix, kind: STATS_KINDS.prompts, logger });
  const providerStats = new RollingStats({ redis: statsRedis, keyPrefix: config.redisKeyPrefix, kind: STATS_KINDS.providers, logger });
  const subscriber = createRedis(config, 'router-templates');
  subscriber.on('error', () => undefined);

  const cache = new TemplateCache({
    client: clients.templates,
    logger,
    subscriber,
    keyPrefix: config.redisKeyPrefix,
    reconcileIntervalMs: options.reconcileIntervalMs,
    registry: ctx.metrics.registry,
    onChange: wiring.onTemplateChange,
  });
  await cache.start();

  // One hook for every route: the scope comes from the route that matched (ROUTE_SCOPES); the
  // public routes (PUBLIC_ROUTES: the console's static assets) need no key.
  const keyCheck = authenticate(
    {
      keys,
      limiter,
      logger,
      registry: virtualKeys?.registry,
      ledger: virtualKeys?.ledger,
      billed: (request) => request.method === 'POST' && BILLED_PATHS.has(request.routeOptions.url ?? ''),
    },
    scopeOfRequest,
  );
  const auth: onRequestAsyncHookHandler = async function (this: FastifyInstance, request, reply) {
    if (isPublicRoute(request)) return;
    await keyCheck.call(this, request, reply);
  };
  const promptMetrics = createPromptMetrics(ctx.metrics.registry);
  const chat = createChatHandler({
    llm: clients.llm,
    context: clients.context,
    templates: cache,
    logger,
    registry: ctx.metrics.registry,
    stats: promptStats,
    ledger: virtualKeys?.ledger,
    promptMetrics,
  });
  const messages = createMessagesHandler({ llm: clients.llm, context: clients.context, templates: cache, logger, promptMetrics, stats: promptStats, ledger: virtualKeys?.ledger });
  const consoleApp = consoleRoutes({ dir: options.consoleDir, logger });

  const routes: FastifyPluginAsync = async (app: FastifyInstance) => {
    app.decorateRequest('apiKey', undefined);
    app.decorateRequest('degraded', undefined);
    app.decorateRequest('team', undefined);
    app.decorateRequest('admission', undefined);
    guardRouteScopes(app);
    app.addHook('onRequest', auth);
    // A call refused after its admission (a bad template, a model not allowed) gives its lease back.
    app.addHook('onResponse', async (request) => {
      const admission = request.admission;
      if (!admission || !virtualKeys || !request.apiKey) return;
      request.admission = undefined;
      const lease = await admission.catch(() => undefined);
      if (lease) await virtualKeys.ledger.settle(lease, request.apiKey.id, request.team?.id, undefined).catch(() => undefined);
    });

    app.post(PATHS.chatCompletions, { schema: { body: RouterChatRequestSchema, response: chatResponseSchemas } }, chat as never);
    app.post(PATHS.responses, { schema: { body: ResponsesRequestSchema } }, createResponsesHandler(clients.llm, virtualKeys?.ledger, logger) as never);
    app.post(PATHS.embeddings, { schema: { body: EmbeddingsRequestSchema, response: embeddingsResponseSchemas } }, createEmbeddingsHandler(clients.llm, virtualKeys?.ledger, logger) as never);

    // Anthropic's Messages API: its errors (auth and validation included) in Anthropic's shape.
    app.post(PATHS.messages, { schema: { body: RouterMessagesRequestSchema }, errorHandler: anthropicErrorHandler }, messages as never);

    app.get(PATHS.models, async (request) => {
      const data = await clients.llm.models({ requestId: request.id, traceContext: request.traceContext });
      // A key with a `models` list sees the models it may use.
      const allowed = request.apiKey?.models;
      return { object: 'list', data: allowed ? data.filter((m) => allowed.has(m.id)) : data };
    });

    app.get(PATHS.providers, async (request) => clients.llm.providers({ requestId: request.id, traceContext: request.traceContext }));

    await app.register(statsRoutes({ prompts: promptStats, providers: providerStats }));
    await app.register(keysRoutes(virtualKeys ? { ...virtualKeys, fileKeys: keys } : undefined));
    await app.register(consoleApp);

    // The templates and sessions APIs (in-process or proxied, see wiring.ts) behind the same
    // auth hook and scope guard; the key id goes on as the actor.
    await app.register(async (guarded) => {
      guarded.addHook('preHandler', async (request: FastifyRequest) => {
        setActor(request);
        // A client's session id follows the same rule on every route (chat's `session_id` too).
        const params = request.params as { id?: string } | undefined;
        if (params?.id !== undefined && request.routeOptions.url?.startsWith(`${PATHS.sessions}/`) && !SESSION_ID.test(params.id)) {
          throw badRequest(
            `'session_id' must be 1 to ${MAX_SESSION_ID_CHARS} characters of letters, digits, '.', '_', ':' or '-' (and not '.' or '..')`,
            'session_id',
            'invalid_session_id',
          );
        }
      });
      await guarded.register(wiring.peerRoutes);
    });
  };

  return {
    name: 'router',
    core: { clients, templates: cache, keys, virtualKeys },
    routes,
    readiness: wiring.readiness,
    // What the router serves without (docs/router.md, "Degradation"): Redis (template pushes,
    // per-key limits), and the peers the wiring names.
    degradations: {
      redis: redisConnected(subscriber),
      // Keys stay in memory and spend rows in the buffer while PostgreSQL is away.
      ...(virtualKeys ? { postgres: virtualKeys.check } : {}),
      ...wiring.degradations,
    },
    async close() {
      keys?.close();
      await virtualKeys?.close();
      await promptStats.close();
      await providerStats.close();
      await cache.close();
      await clients.close();
      for (const r of redisClients) await closeRedis(r);
    },
  };
}
