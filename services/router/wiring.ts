/**
 * How the router reaches its peers, one function per layout: {@link wireInProcess} when
 * templates, context and llm run in the same process (`SERVICE=all`), {@link wireMesh} when
 * they are other processes behind `TEMPLATES_URL`, `CONTEXT_URL` and `LLM_URL`. Everything that
 * differs between the layouts is decided here, once; the router's service (index.ts) only reads
 * the {@link PeerWiring} it gets.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { PATHS, SERVICES } from '../../contracts';
import { ConfigError, type KitConfig, type ServiceInstance } from '../kit';
import type { ContextCore } from '../context';
import type { LlmCore } from '../llm/core';
import type { TemplateChange, TemplatesCore } from '../templates/types';
import { proxyRoutes, scopedSessionId } from './admin';
import type { RouterClients } from './clients';
import { createHttpClients } from './clients-http';
import { LocalContextClient, LocalLlmClient, LocalTemplatesClient } from './clients-local';

/** A check that throws when what it checks is down. */
type Check = () => Promise<void>;

/** What one layout gives the router. */
export interface PeerWiring {
  /** The clients of the three peers. */
  clients: RouterClients;
  /**
   * The templates and sessions APIs, mounted behind the router's auth hook and scope guard:
   * in-process the peers' own route plugins, in the mesh proxies to them. Each request's session
   * id is already the caller's own (see `scopedSessionId`).
   */
  peerRoutes: FastifyPluginAsync;
  /**
   * Template changes as the templates core announces them (in-process only; the mesh hears them
   * through Redis or Postgres like every other replica).
   */
  onTemplateChange?: (listener: (change: TemplateChange) => void) => () => void;
  /** Readiness checks of the peers the router cannot serve without. */
  readiness: Record<string, Check>;
  /** Checks of the peers the router serves without (degraded), by name. */
  degradations: Record<string, Check>;
}

/** The three peer services of the same process. */
export interface InProcessPeers {
  templates: ServiceInstance<TemplatesCore>;
  context: ServiceInstance<ContextCore>;
  llm: ServiceInstance<LlmCore>;
}

/**
 * In-process: the peers' cores are called directly and their route plugins run inside the
 * router's context (sharing its auth hook and scope guard). Their health is the process's own
 * readiness (services/process.ts), so nothing is added here.
 */
export function wireInProcess(peers: InProcessPeers): PeerWiring {
  return {
    clients: {
      templates: new LocalTemplatesClient(peers.templates.core),
      context: new LocalContextClient(peers.context.core),
      llm: new LocalLlmClient(peers.llm.core),
      close: async () => {},
    },
    peerRoutes: async (app) => {
      // The context routes read the session id from the params: scope it before they run (the
      // mesh proxy rewrites the URL instead).
      app.addHook('preHandler', async (request: FastifyRequest) => {
        const params = request.params as { id?: string } | undefined;
        if (params?.id && request.routeOptions.url?.startsWith(`${PATHS.sessions}/`)) {
          params.id = scopedSessionId(request.apiKey?.id, params.id);
        }
      });
      await app.register(peers.templates.routes);
      await app.register(peers.context.routes);
    },
    onTemplateChange: (listener) => peers.templates.core.onChange(listener),
    readiness: {},
    degradations: {},
  };
}

/**
 * In the mesh: HTTP keep-alive pools to the peers' URLs, the templates and sessions APIs
 * proxied. The router is ready when llm answers; a templates or context outage degrades (cached
 * templates, no history) rather than taking the router out of the load balancer. Throws a
 * ConfigError naming the first peer URL that is not set.
 */
export function wireMesh(config: Pick<KitConfig, 'templatesUrl' | 'contextUrl' | 'llmUrl'>): PeerWiring {
  const { templatesUrl, contextUrl, llmUrl } = config;
  const required = 'is required when the router runs without that service in the same process';
  if (!templatesUrl) throw new ConfigError(SERVICES.templates.urlEnv!, required);
  if (!contextUrl) throw new ConfigError(SERVICES.context.urlEnv!, required);
  if (!llmUrl) throw new ConfigError(SERVICES.llm.urlEnv!, required);
  const http = createHttpClients({ templatesUrl, contextUrl, llmUrl });
  const answers = (peer: 'templates' | 'context' | 'llm', path: string): Check => async () => {
    const res = await http.peers[peer].request('GET', path, {});
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`${peer} ${path} answered ${res.statusCode}`);
  };
  return {
    clients: http,
    peerRoutes: proxyRoutes(http.peers.templates, http.peers.context),
    readiness: { llm: answers('llm', PATHS.healthz) },
    degradations: { templates: answers('templates', PATHS.readyz), context: answers('context', PATHS.readyz) },
  };
}

/** The in-process peers when all three are in `peers`, else undefined (the mesh layout). */
export function inProcessPeers(peers: ReadonlyMap<string, ServiceInstance>): InProcessPeers | undefined {
  const templates = peers.get('templates') as ServiceInstance<TemplatesCore> | undefined;
  const context = peers.get('context') as ServiceInstance<ContextCore> | undefined;
  const llm = peers.get('llm') as ServiceInstance<LlmCore> | undefined;
  return templates && context && llm ? { templates, context, llm } : undefined;
}
