/**
 * The entry point the images run: `SERVICE=router|templates|context|llm|all npm start`.
 * Bad configuration stops the process with a message naming the variable and the problem.
 */
import { ENV, SERVICE_NAMES, SERVICES } from '../contracts';
import { ConfigError, readConfig, serve, type KitConfig } from './kit';
import { buildProcess } from './process';

/** Names the variable behind a listen failure (port in use, a host that does not resolve). */
function listenError(err: unknown, config: KitConfig): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EADDRINUSE' || code === 'EACCES') return new ConfigError(ENV.port, `cannot listen on port ${config.port} of ${config.host}: ${code}`);
  if (code === 'ENOTFOUND' || code === 'EADDRNOTAVAIL' || code === 'EAI_AGAIN' || code === 'EAI_FAIL') {
    return new ConfigError(ENV.host, `cannot listen on ${JSON.stringify(config.host)}: ${code}`);
  }
  return err;
}

async function main(): Promise<void> {
  const config = readConfig(process.env);
  const { app } = await buildProcess(config);
  const running = config.service === 'all' ? SERVICE_NAMES : [config.service];
  if (!config.apiKeysFile && running.some((svc) => SERVICES[svc].env.includes(ENV.apiKeysFile))) {
    app.log.warn('API_KEYS_FILE is not set: authentication is OFF; set it before exposing this service');
  }
  const address = await serve(app, config).catch((err: unknown) => {
    throw listenError(err, config);
  });
  app.log.info({ address, service: config.service }, 'listening');
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`promptmesh: configuration error: ${err.message}\n`);
  } else {
    process.stderr.write(`promptmesh: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
  }
  process.exit(1);
});
