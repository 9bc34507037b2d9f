/**
 * What `npm run dev` and `npm run start:mesh` share: the local database, the console's build,
 * and a providers file when provider keys are in the environment (otherwise the built-in `echo`
 * provider serves).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { redactUrl } from '../services/kit';
import { CONSOLE_BUILD_DIR, buildConsole } from './build-console';

/**
 * Builds the console into build/console/ when it is not there (a fresh clone: about a second),
 * so the router serves `/console/` in local runs as the image does. Returns whether it built.
 */
export async function ensureConsoleBuilt(): Promise<boolean> {
  if (existsSync(join(CONSOLE_BUILD_DIR, 'index.html'))) return false;
  await buildConsole();
  return true;
}

/** Creates the database `databaseUrl` names when it does not exist yet; returns whether it did. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'promptmesh';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) throw new Error(`DATABASE_URL: database name ${JSON.stringify(name)} is not a plain identifier`);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `cannot reach PostgreSQL at ${redactUrl(url.toString())}: ${(err as Error).message}\n` +
        `start it (e.g. pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or set DATABASE_URL`,
    );
  }
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    await admin.query(`CREATE DATABASE "${name}"`);
    return true;
  } finally {
    await admin.end();
  }
}

/**
 * The providers file to use: `PROVIDERS_FILE` when set; else one written for the provider keys
 * found in the environment (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`); else undefined (the llm
 * service then serves the built-in `echo` model).
 */
export function localProvidersFile(env: NodeJS.ProcessEnv): { file: string | undefined; models: string[] } {
  if (env.PROVIDERS_FILE) return { file: env.PROVIDERS_FILE, models: [] };
  const providers: string[] = [];
  const targets: string[] = [];
  if (env.OPENAI_API_KEY) {
    providers.push('  - { name: openai, type: openai, baseUrl: https://api.openai.com/v1, apiKeyEnv: OPENAI_API_KEY, prices: { gpt-4o-mini: { input: 0.15, output: 0.60 } } }');
    targets.push('    - { provider: openai, model: gpt-4o-mini }');
  }
  if (env.ANTHROPIC_API_KEY) {
    providers.push('  - { name: anthropic, type: anthropic, baseUrl: https://api.anthropic.com, apiKeyEnv: ANTHROPIC_API_KEY, prices: { claude-haiku-4-5: { input: 1, output: 5 } } }');
    targets.push('    - { provider: anthropic, model: claude-haiku-4-5 }');
  }
  if (providers.length === 0) return { file: undefined, models: ['echo'] };
  const file = join(mkdtempSync(join(tmpdir(), 'promptmesh-dev-')), 'providers.yaml');
  writeFileSync(file, ['providers:', ...providers, 'models:', '  chat:', ...targets, 'routing: { strategy: priority, fallback: true }', ''].join('\n'));
  return { file, models: ['chat'] };
}

/** The lines `npm run dev` and `npm run start:mesh` print: what to try. */
export function tryItText(baseUrl: string, model: string, authOn: boolean): string {
  const key = authOn ? '<your key>' : 'unused';
  const auth = authOn ? ` -H 'authorization: Bearer <your key>'` : '';
  return [
    '',
    `promptmesh is up on ${baseUrl}`,
    '',
    'Try it:',
    `  curl -s ${baseUrl}/v1/chat/completions -H 'content-type: application/json'${auth} \\`,
    `    -d '{"model":"${model}","messages":[{"role":"user","content":"Hello!"}]}'`,
    '',
    '  # a template, then a completion that renders it in a session',
    `  curl -s ${baseUrl}/v1/templates -H 'content-type: application/json'${auth} \\`,
    `    -d '{"name":"greeting","type":"chat","template":[{"role":"system","content":"You greet {{name}}."}]}'`,
    `  curl -s ${baseUrl}/v1/chat/completions -H 'content-type: application/json'${auth} \\`,
    `    -d '{"model":"${model}","prompt":{"name":"greeting","variables":{"name":"Ada"}},"session_id":"s1","messages":[{"role":"user","content":"Hi"}]}'`,
    '',
    '  // with the openai SDK (npm install openai)',
    `  import OpenAI from 'openai';`,
    `  const client = new OpenAI({ baseURL: '${baseUrl}/v1', apiKey: '${key}' });`,
    `  const answer = await client.chat.completions.create({ model: '${model}', messages: [{ role: 'user', content: 'Hello!' }] });`,
    `  console.log(answer.choices[0].message.content);`,
    '',
    `Metrics: ${baseUrl}/metrics   Readiness: ${baseUrl}/readyz   Stop: Ctrl-C`,
    '',
  ].join('\n');
}
