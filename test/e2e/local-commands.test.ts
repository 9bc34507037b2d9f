/**
 * The local commands as a new user runs them: `npm run dev` (one process; creates its database;
 * the echo provider) with the docs/router.md `openai` snippet run exactly as written, and
 * `npm run start:mesh` (four processes wired by URL, stopped together by SIGTERM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../support/net';
import { TEST_PG_ADMIN_URL, dropDatabase } from '../support/pg';
import { deletePrefix, uniquePrefix } from '../support/redis';

const ROOT = join(__dirname, '..', '..');

/** The environment of a new user: no provider keys, no keys file, no providers file. */
function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
  for (const name of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'PROVIDERS_FILE', 'API_KEYS_FILE', 'SERVICE', 'PORT', 'TEMPLATES_URL', 'CONTEXT_URL', 'LLM_URL']) delete env[name];
  return { ...env, ...extra };
}

function collect(child: ChildProcess): { text: () => string } {
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  return { text: () => out };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

function databaseUrl(name: string): string {
  const url = new URL(TEST_PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The ```js block of docs/router.md's quickstart. */
function docsSnippet(): string {
  const doc = readFileSync(join(ROOT, 'docs/router.md'), 'utf8');
  const m = /```js\n([\s\S]*?)```/.exec(doc);
  if (!m) throw new Error('docs/router.md has no ```js snippet');
  return m[1]!;
}

async function consecutiveFreePorts(count: number): Promise<number> {
  const isFree = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await isFree(base + i);
    if (ok) return base;
  }
  throw new Error('no run of free ports found');
}

describe('npm run dev', () => {
  const dbName = `pm_test_dev_${randomBytes(4).toString('hex')}`;
  const prefix = uniquePrefix('dev');
  const dir = mkdtempSync(join(tmpdir(), 'pm-snippet-'));
  let dev: ChildProcess | undefined;
  afterAll(async () => {
    if (dev && dev.exitCode === null) {
      dev.kill('SIGKILL');
      await exitOf(dev);
    }
    await dropDatabase(dbName);
    await deletePrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('creates its database, serves the echo model, and the docs snippet works as written', async () => {
    const port = await freePort();
    dev = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/dev.ts')], {
      cwd: ROOT,
      env: userEnv({ PORT: String(port), DATABASE_URL: databaseUrl(dbName), REDIS_KEY_PREFIX: prefix }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = collect(dev);
    await waitFor(() => out.text().includes('promptmesh is up on'), 60_000, `npm run dev to start:\n${out.text()}`).catch((err) => {
      throw new Error(`${(err as Error).message}\n${out.text()}`);
    });
    expect(out.text()).toContain(`created database ${dbName}`);
    expect(out.text()).toContain(`curl -s http://127.0.0.1:${port}/v1/chat/completions`);
    expect(out.text()).toContain(`model: 'echo'`);

    // The README shows the same snippet.
    const readme = /```js\n([\s\S]*?)```/.exec(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(readme?.[1]).toBe(docsSnippet());

    // The snippet, byte for byte, as a user saves it next to their node_modules.
    writeFileSync(join(dir, 'hello.mjs'), docsSnippet());
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const run = spawn(process.execPath, ['hello.mjs'], { cwd: dir, env: { ...process.env, PROMPTMESH_URL: `http://127.0.0.1:${port}/v1` }, stdio: ['ignore', 'pipe', 'pipe'] });
    const snippetOut = collect(run);
    expect(await exitOf(run)).toBe(0);
    const lines = snippetOut.text().trim().split('\n');
    expect(lines).toEqual(['Hello, promptmesh!', 'Stream this back to me.', 'My name is Ada.', 'What is my name?']);

    // The session kept both turns.
    const stored = await (await fetch(`http://127.0.0.1:${port}/v1/sessions/demo-1/messages`)).json();
    expect((stored as { messages: Array<{ content: string }> }).messages.map((m) => m.content)).toEqual([
      'My name is Ada.',
      'My name is Ada.',
      'What is my name?',
      'What is my name?',
    ]);

    // The console is served (dev builds it into build/console/ when a fresh clone has none).
    const page = await fetch(`http://127.0.0.1:${port}/console/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/^<!doctype html>/i);

    dev.kill('SIGINT');
    expect(await exitOf(dev)).toBe(0);
  });
});

describe('npm run start:mesh', () => {
  const dbName = `pm_test_mesh_${randomBytes(4).toString('hex')}`;
  const prefix = uniquePrefix('mesh-cmd');
  let mesh: ChildProcess | undefined;
  afterAll(async () => {
    if (mesh && mesh.exitCode === null) {
      mesh.kill('SIGKILL');
      await exitOf(mesh);
    }
    await dropDatabase(dbName);
    await deletePrefix(prefix);
  }, 60_000);

  it('runs the four services on their own ports, wired by URL, and stops them all on SIGTERM', async () => {
    const base = await consecutiveFreePorts(4);
    mesh = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/mesh.ts')], {
      cwd: ROOT,
      env: userEnv({ MESH_BASE_PORT: String(base), DATABASE_URL: databaseUrl(dbName), REDIS_KEY_PREFIX: prefix }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = collect(mesh);
    await waitFor(() => out.text().includes('promptmesh is up on'), 120_000, 'npm run start:mesh to start').catch((err) => {
      throw new Error(`${(err as Error).message}\n${out.text()}`);
    });
    for (const [name, offset] of [['router', 0], ['templates', 1], ['context', 2], ['llm', 3]] as const) {
      expect(out.text()).toContain(`[mesh] ${name} ready on http://127.0.0.1:${base + offset}`);
    }
    const res = await fetch(`http://127.0.0.1:${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'echo', session_id: 'mesh-cmd', messages: [{ role: 'user', content: 'through four processes' }] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe('through four processes');
    // The context service on its own port holds the turn the router stored over HTTP.
    const stored = (await (await fetch(`http://127.0.0.1:${base + 2}/v1/sessions/mesh-cmd/messages`)).json()) as { messages: unknown[] };
    expect(stored.messages).toHaveLength(2);

    mesh.kill('SIGTERM');
    expect(await exitOf(mesh)).toBe(0);
    for (let i = 0; i < 4; i++) {
      await expect(fetch(`http://127.0.0.1:${base + i}/healthz`)).rejects.toThrow();
    }
  });
});
