import type { FastifyInstance } from 'fastify';
import type { KitConfig } from './config';

/** How a running server stops. */
export interface ShutdownOptions {
  /** Readiness fails for this long before the listener closes, so load balancers notice. */
  drainDelayMs: number;
  /** In-flight requests (streams too) get this long to finish; then connections are cut. */
  shutdownTimeoutMs: number;
}

/**
 * Stops an app gracefully: readiness fails first, then the listener stops accepting while
 * in-flight requests finish (bounded by the timeout), then `onClose` hooks close the pools.
 * Resolves with `true` when everything finished in time.
 */
export async function shutdownGracefully(app: FastifyInstance, options: ShutdownOptions): Promise<boolean> {
  app.readiness.startDraining();
  if (options.drainDelayMs > 0) await new Promise((r) => setTimeout(r, options.drainDelayMs));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      app.log.warn({ timeoutMs: options.shutdownTimeoutMs }, 'shutdown timeout: closing remaining connections');
      app.server.closeAllConnections();
      resolve(false);
    }, options.shutdownTimeoutMs);
  });
  // Keep-alive connections that finish their last request after close() began would hold the
  // server open; close them as soon as they go idle.
  const sweeper = setInterval(() => app.server.closeIdleConnections(), 50);
  const closed = app.close().then(() => true as const);
  const inTime = await Promise.race([closed, timedOut]);
  clearTimeout(timer);
  clearInterval(sweeper);
  if (!inTime) await closed.catch(() => undefined);
  return inTime;
}

/**
 * Listens and installs SIGTERM/SIGINT handlers that shut down gracefully and exit.
 * Returns the address the server listens on.
 */
export async function serve(
  app: FastifyInstance,
  config: Pick<KitConfig, 'port' | 'host' | 'drainDelayMs' | 'shutdownTimeoutMs'>,
  onStopped: () => Promise<void> = async () => {},
): Promise<string> {
  const address = await app.listen({ port: config.port, host: config.host });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'shutting down');
    shutdownGracefully(app, config)
      .then(async (inTime) => {
        await onStopped();
        app.log.info({ inTime }, 'stopped');
        process.exit(0);
      })
      .catch((err) => {
        app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return address;
}
