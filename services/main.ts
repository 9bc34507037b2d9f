/**
 * The entry point the images run: `SERVICE=router|templates|context|llm|all npm start`.
 * Bad configuration stops the process with a message naming the variable and the problem.
 */
import { ConfigError, readConfig, serve } from './kit';
import { buildProcess } from './process';

async function main(): Promise<void> {
  const config = readConfig(process.env);
  const { app } = await buildProcess(config);
  if (!config.apiKeysFile && (config.service === 'router' || config.service === 'all')) {
    app.log.warn('API_KEYS_FILE is not set: authentication is OFF; set it before exposing this service');
  }
  const address = await serve(app, config);
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
