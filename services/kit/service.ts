import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { ServiceName } from '../../contracts';
import { mountRoutes, type ReadinessCheck } from './app';
import type { KitConfig } from './config';
import type { Logger } from './logger';
import type { KitMetrics } from './metrics';
import type { Tracing } from './tracing';

/** The shared parts of a process that every service is built with. */
export interface ServiceContext {
  config: KitConfig;
  logger: Logger;
  metrics: KitMetrics;
  tracing: Tracing;
}

/**
 * One running service: its core (what an in-process caller such as the router uses in
 * `SERVICE=all`), its HTTP routes, the checks behind `/readyz`, and how to release its pools.
 */
export interface ServiceInstance<Core = unknown> {
  name: ServiceName;
  core: Core;
  /** The service's HTTP API as a Fastify plugin. */
  routes: FastifyPluginAsync;
  /** Dependency checks for `/readyz`, by name. */
  readiness: Record<string, ReadinessCheck>;
  /** Stops background work and closes pools; called once, after the server stopped. */
  close(): Promise<void>;
}

/** Mounts a service onto an app: routes (labelled with its name), readiness, and cleanup on close. */
export async function mountService(app: FastifyInstance, instance: ServiceInstance, options: { routes?: boolean } = {}): Promise<void> {
  if (options.routes !== false) await mountRoutes(app, instance.name, instance.routes);
  for (const [name, check] of Object.entries(instance.readiness)) app.readiness.add(`${instance.name}:${name}`, check);
  app.addHook('onClose', async () => {
    await instance.close();
  });
}
