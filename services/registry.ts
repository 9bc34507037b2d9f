import { SERVICE_NAMES, calleesOf, type ServiceName } from '../contracts';
import type { ServiceContext, ServiceInstance } from './kit';

/**
 * Builds one service. `peers` holds the services already built in this process (in
 * `SERVICE=all`, the router receives templates, context and llm here and calls their cores
 * in-process instead of over HTTP).
 */
export type ServiceFactory = (ctx: ServiceContext, peers: ReadonlyMap<ServiceName, ServiceInstance>) => Promise<ServiceInstance>;

/**
 * The factories, loaded lazily so a pod that runs one service loads only that service's code
 * (a router pod never loads `pg`). Typed over every ServiceName: a service in contracts
 * without its line here does not compile.
 */
export const SERVICE_FACTORIES: Readonly<Record<ServiceName, () => Promise<ServiceFactory>>> = {
  // One line per service: name: async () => (await import('./<name>/index.js')).create<Name>Service,
  llm: async () => (await import('./llm/index.js')).createLlmService,
  router: async () => (await import('./router/index.js')).createRouterService,
  templates: async () => (await import('./templates/index.js')).createTemplatesService,
  context: async () => (await import('./context/index.js')).createContextService,
};

/**
 * The order services are built in, so each finds its peers: every service after the services
 * it calls (from the contracts' `callers`), otherwise in SERVICE_NAMES order.
 */
export const BUILD_ORDER: readonly ServiceName[] = buildOrder();

function buildOrder(): ServiceName[] {
  const order: ServiceName[] = [];
  const visiting = new Set<ServiceName>();
  const visit = (svc: ServiceName) => {
    if (order.includes(svc)) return;
    if (visiting.has(svc)) throw new Error(`contracts: services call each other in a cycle through '${svc}'`);
    visiting.add(svc);
    for (const callee of calleesOf(svc)) visit(callee);
    visiting.delete(svc);
    order.push(svc);
  };
  for (const svc of SERVICE_NAMES) visit(svc);
  return order;
}
