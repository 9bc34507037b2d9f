import type { ServiceName } from '../contracts';
import type { ServiceContext, ServiceInstance } from './kit';

/**
 * Builds one service. `peers` holds the services already built in this process (in
 * `SERVICE=all`, the router receives templates, context and llm here and calls their cores
 * in-process instead of over HTTP).
 */
export type ServiceFactory = (ctx: ServiceContext, peers: ReadonlyMap<ServiceName, ServiceInstance>) => Promise<ServiceInstance>;

/**
 * The factories, loaded lazily so a pod that runs one service loads only that service's code
 * (a router pod never loads `pg`). Order matters in `all` mode: dependencies first.
 */
export const SERVICE_FACTORIES: Partial<Record<ServiceName, () => Promise<ServiceFactory>>> = {
  // One line per service: name: async () => (await import('./<name>')).create<Name>Service,
  llm: async () => (await import('./llm/index.js')).createLlmService,
  router: async () => (await import('./router/index.js')).createRouterService,
  templates: async () => (await import('./templates/index.js')).createTemplatesService,
  context: async () => (await import('./context/index.js')).createContextService,
};

/** The order services are built in, so each finds its peers. */
export const BUILD_ORDER: readonly ServiceName[] = ['templates', 'context', 'llm', 'router'];
