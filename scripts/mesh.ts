/**
 * `npm run start:mesh`: the four services as separate processes on separate ports, wired by
 * URL as they run in the mesh: router on 8080 (public), templates 8081, context 8082, llm 8083
 * (set MESH_BASE_PORT to move them all). Uses the same local database and providers as
 * `npm run dev`. Ctrl-C or SIGTERM stops them all gracefully; if one dies, the rest are stopped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ConfigError, readConfig } from '../services/kit';
import { ensureConsoleBuilt, ensureDatabase, localProvidersFile, tryItText } from './local-env';

const ROOT = join(__dirname, '..');
const ORDER = ['templates', 'context', 'llm', 'router'] as const;
type Name = (typeof ORDER)[number];

async function waitReady(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with code ${child.exitCode} before it was ready`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not ready after ${timeoutMs} ms`);
}

function prefixLines(name: string, stream: NodeJS.ReadableStream | null, out: NodeJS.WritableStream): void {
  let buffer = '';
  stream?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      out.write(`[${name.padEnd(9)}] ${buffer.slice(0, nl)}\n`);
      buffer = buffer.slice(nl + 1);
    }
  });
}

async function main(): Promise<void> {
  const base = Number(process.env.MESH_BASE_PORT ?? 8080);
  if (!Number.isInteger(base) || base < 1 || base > 65_530) throw new ConfigError('MESH_BASE_PORT', 'must be a port number up to 65530');
  const ports: Record<Name, number> = { router: base, templates: base + 1, context: base + 2, llm: base + 3 };
  const host = '127.0.0.1';
  const url = (name: Name) => `http://${host}:${ports[name]}`;
  const env: NodeJS.ProcessEnv = { ...process.env, HOST: host, DRAIN_DELAY_MS: process.env.DRAIN_DELAY_MS ?? '0' };
  const providers = localProvidersFile(env);
  if (providers.file) env.PROVIDERS_FILE = providers.file;
  const config = readConfig({ ...env, SERVICE: 'all' });
  if (await ensureDatabase(config.databaseUrl)) process.stdout.write(`created database ${new URL(config.databaseUrl).pathname.slice(1)}\n`);
  if (await ensureConsoleBuilt()) process.stdout.write('built the console into build/console/ (npm run build rebuilds it)\n');

  const children = new Map<Name, ChildProcess>();
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    // The router first, so it drains before its peers go.
    for (const name of [...ORDER].reverse()) {
      const child = children.get(name);
      if (!child || child.exitCode !== null) continue;
      child.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 30_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    process.exit(code);
  };
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));

  const launch = async (name: Name): Promise<boolean> => {
    const childEnv: NodeJS.ProcessEnv = { ...env, SERVICE: name, PORT: String(ports[name]) };
    if (name === 'router') Object.assign(childEnv, { TEMPLATES_URL: url('templates'), CONTEXT_URL: url('context'), LLM_URL: url('llm') });
    const child = spawn(process.execPath, ['--enable-source-maps', '--import', 'tsx', join(ROOT, 'services/main.ts')], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.set(name, child);
    prefixLines(name, child.stdout, process.stdout);
    prefixLines(name, child.stderr, process.stderr);
    child.once('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`[mesh] ${name} exited (${signal ?? code}); stopping the others\n`);
      void stopAll(1);
    });
    try {
      await waitReady(url(name), child);
    } catch (err) {
      process.stderr.write(`[mesh] ${name} on port ${ports[name]}: ${(err as Error).message}\n`);
      return false;
    }
    process.stdout.write(`[mesh] ${name} ready on ${url(name)}\n`);
    return true;
  };
  // The router's peers start together; the router once they are ready.
  const peersUp = await Promise.all((['templates', 'context', 'llm'] as const).map(launch));
  if (peersUp.includes(false) || !(await launch('router'))) {
    await stopAll(1);
    return;
  }
  process.stdout.write(tryItText(url('router'), providers.models[0] ?? 'chat', Boolean(env.API_KEYS_FILE)));
}

main().catch((err: unknown) => {
  process.stderr.write(`promptmesh mesh: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
