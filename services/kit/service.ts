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
  /** Dependency checks for `/readyz`, by name: the service cannot serve while one fails. */
  readiness: Record<string, ReadinessCheck>;
  /**
   * Checks of parts the service serves without, by component (`redis`, `templates`, ...): a
   * failing one is reported as degraded (`/readyz` body, `promptmesh_degraded`) and the
   * process stays ready.
   * @default none
   */
  degradations?: Record<string, ReadinessCheck>;
  /** Stops background work and closes pools; called once, after the server stopped. */
  close(): Promise<void>;
}

/** How {@link mountService} mounts a service. */
export interface MountOptions {
  /** Whether the service's routes are published. @default true */
  routes?: boolean;
  /**
   * Whether the process serves without this service (in `SERVICE=all`, the router without
   * templates or context): its readiness checks then only degrade, each named after its check
   * (`postgres`, `redis`).
   * @default false
   */
  optional?: boolean;
}

/** Mounts a service onto an app: routes (labelled with its name), readiness, and cleanup on close. */
export async function mountService(app: FastifyInstance, instance: ServiceInstance, options: MountOptions = {}): Promise<void> {
  if (options.routes !== false) await mountRoutes(app, instance.name, instance.routes);
  for (const [name, check] of Object.entries(instance.readiness)) {
    app.readiness.add(`${instance.name}:${name}`, check, options.optional ? { degrades: name } : {});
  }
  for (const [component, check] of Object.entries(instance.degradations ?? {})) {
    app.readiness.add(`${instance.name}:${component}`, check, { degrades: component });
  }
  app.addHook('onClose', async () => {
    await instance.close();
  });
}
