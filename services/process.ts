import type { FastifyInstance } from 'fastify';
import { ENV, PUBLIC_SERVICE, SERVICE_NAMES, SERVICES, type ServiceName } from '../contracts';
import {
  ConfigError,
  createApp,
  createLogger,
  createMetrics,
  createTracing,
  mountService,
  type KitConfig,
  type Logger,
  type ServiceContext,
  type ServiceInstance,
} from './kit';
import { BUILD_ORDER, SERVICE_FACTORIES } from './registry';

/** One process of promptmesh: the app and the services mounted on it. */
export interface PromptmeshProcess {
  app: FastifyInstance;
  services: ReadonlyMap<ServiceName, ServiceInstance>;
  context: ServiceContext;
}

/**
 * Builds the app for `config.service` (one service, or all of them with in-process wiring).
 * Does not listen; `services/main.ts` does, and tests call this directly.
 */
export async function buildProcess(config: KitConfig, options: { logger?: Logger } = {}): Promise<PromptmeshProcess> {
  const label = config.service;
  const logger = options.logger ?? createLogger(label, config.logLevel);
  const metrics = createMetrics();
  const tracing = createTracing(label, config.otlpEndpoint);
  const context: ServiceContext = { config, logger, metrics, tracing };
  const wanted: readonly ServiceName[] = config.service === 'all' ? SERVICE_NAMES : [config.service];
  const services = new Map<ServiceName, ServiceInstance>();
  const app = createApp({ service: label, config, logger, metrics, tracing });
  try {
    for (const name of BUILD_ORDER) {
      if (!wanted.includes(name)) continue;
      const load = SERVICE_FACTORIES[name];
      if (!load) throw new ConfigError(ENV.service, `service '${name}' is not available in this build`);
      const factory = await load();
      services.set(name, await factory(context, services));
    }
    // In all-in-one mode only the router's routes are public: it reaches the other services
    // in-process and exposes what clients may use (with auth), so the internal APIs of
    // templates, context and llm are not mounted (their paths would also collide).
    // Readiness follows the router too: it serves without templates (cached templates) and
    // without context (no history), so their checks only mark the process degraded; without
    // llm it cannot answer, so llm's checks stay required.
    for (const [name, instance] of services) {
      const fronted = config.service === 'all' && services.has(PUBLIC_SERVICE);
      const routes = !fronted || name === PUBLIC_SERVICE;
      // The router answers without a `degradable` service (docs/router.md, "Degradation").
      await mountService(app, instance, { routes, optional: fronted && SERVICES[name].degradable });
    }
    app.addHook('onClose', async () => {
      await tracing.shutdown();
    });
  } catch (err) {
    for (const instance of services.values()) await instance.close().catch(() => undefined);
    await app.close().catch(() => undefined);
    throw err;
  }
  return { app, services, context };
}
