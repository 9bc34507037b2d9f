/**
 * `npm run dev`: the whole system in one process (SERVICE=all) on port 8080, against the local
 * PostgreSQL and Redis. Creates the `promptmesh` database when it is missing, uses the built-in
 * `echo` provider unless provider keys (OPENAI_API_KEY, ANTHROPIC_API_KEY) or a PROVIDERS_FILE
 * are given, and prints what to try. Stops gracefully on Ctrl-C.
 */
import type { AddressInfo } from 'node:net';
import { ConfigError, readConfig, serve } from '../services/kit';
import { buildProcess } from '../services/process';
import { ensureConsoleBuilt, ensureDatabase, localProvidersFile, tryItText } from './local-env';

async function main(): Promise<void> {
  const env = { ...process.env };
  env.SERVICE = 'all';
  env.PORT ??= '8080';
  env.HOST ??= '127.0.0.1';
  env.DRAIN_DELAY_MS ??= '0';
  const providers = localProvidersFile(env);
  if (providers.file) env.PROVIDERS_FILE = providers.file;
  // The llm service reads provider keys from process.env.
  Object.assign(process.env, env);
  const config = readConfig(env);
  if (await ensureDatabase(config.databaseUrl)) process.stdout.write(`created database ${new URL(config.databaseUrl).pathname.slice(1)}\n`);
  if (await ensureConsoleBuilt()) process.stdout.write('built the console into build/console/ (npm run build rebuilds it)\n');
  const { app } = await buildProcess(config);
  if (!config.apiKeysFile) app.log.warn('API_KEYS_FILE is not set: authentication is OFF (fine for local use; set it before exposing this service)');
  await serve(app, config);
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
  const model = providers.models[0] ?? 'chat';
  const { port } = app.server.address() as AddressInfo;
  process.stdout.write(tryItText(`http://${host}:${port}`, model, Boolean(config.apiKeysFile)));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`promptmesh dev: configuration error: ${err.message}\n`);
  else process.stderr.write(`promptmesh dev: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
