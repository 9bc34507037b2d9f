/**
 * Issue 9, item 2, as a class: no provider credential ever leaves promptmesh. A fake upstream
 * echoes the request headers (our `Authorization` / `x-api-key` with the provider key, and a
 * secret provider header) into every kind of failure: 4xx, 5xx, 429, 529 and an error event in
 * the middle of a stream, on each provider type, plain and streamed. Both layouts run as real
 * processes (`SERVICE=all`, and the four-process mesh) with every log line of every process
 * captured at the most verbose level; no secret may appear in any response status line, header,
 * body or SSE event, nor in any log line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../services/router/auth';
import { startFakeProvider, type FakeProvider } from '../fake-provider/server';
import type { Fault } from '../fake-provider/behavior';
import { freePort, waitFor } from '../support/net';
import { createTestDatabase, type TestDatabase } from '../support/pg';
import { deletePrefix, uniquePrefix } from '../support/redis';

const ROOT = join(__dirname, '..', '..');
const KEY = 'pm-hardening-secrets-key';
/** Deliberately not shaped like any known key format: only the configured-secret net can catch them. */
const SECRETS = {
  openai: 'PmOpenaiProviderCredential0001',
  anthropic: 'PmAnthropicProviderCredential02',
  compatible: 'PmCompatibleProviderCredential3',
  header: 'PmProxyHeaderCredentialValue004',
};

/** One process under test, with everything it ever wrote. */
class Proc {
  child: ChildProcess | undefined;
  output = '';
  constructor(
    readonly name: string,
    readonly env: Record<string, string>,
  ) {}

  async start(port: number): Promise<void> {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'services/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d) => (this.output += String(d)));
    this.child.stderr!.on('data', (d) => (this.output += String(d)));
    await waitFor(
      async () => {
        if (this.child!.exitCode !== null) throw new Error(`${this.name} exited: ${this.output}`);
        return (await request(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.statusCode === 200;
      },
      // tsx compiles at start: minutes on a loaded shared machine, seconds on an idle one.
      180_000,
      `${this.name} to be up`,
    );
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

interface Layout {
  name: string;
  url: string;
  procs: Proc[];
}

let fake: FakeProvider;
let db: TestDatabase;
let dir: string;
const prefix = uniquePrefix('hardening-secrets');
const layouts: Layout[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pm-hardening-secrets-'));
  fake = await startFakeProvider({ apiKey: SECRETS.openai, anthropicApiKey: SECRETS.anthropic, models: ['gpt-4o-mini', 'claude-haiku-4-5', 'local'], recordRequests: 50 });
  db = await createTestDatabase('hardening_secrets');
  const providers = join(dir, 'providers.yaml');
  writeFileSync(
    providers,
    [
      'providers:',
      `  - { name: oa, type: openai, baseUrl: "${fake.url}/v1", apiKeyEnv: PM_SECRET_OA, models: [gpt-4o-mini], timeoutMs: 10000 }`,
      `  - { name: an, type: anthropic, baseUrl: "${fake.url}", apiKeyEnv: PM_SECRET_AN, models: [claude-haiku-4-5], timeoutMs: 10000 }`,
      `  - { name: oc, type: openai-compatible, baseUrl: "${fake.url}/v1", apiKeyEnv: PM_SECRET_OC, models: [local], timeoutMs: 10000, headers: { x-proxy-token: ${SECRETS.header} } }`,
      'routing: { fallback: false, retries: { attempts: 0 }, breaker: { failures: 10000, windowSize: 10000, minRequests: 10000 } }',
      'cache: { enabled: false }',
      '',
    ].join('\n'),
  );
  const keys = join(dir, 'keys.yaml');
  writeFileSync(keys, `keys:\n  - { id: secrets, sha256: ${hashApiKey(KEY)}, scopes: [invoke, admin] }\n`);
  const env = {
    DATABASE_URL: db.url,
    REDIS_KEY_PREFIX: prefix,
    PROVIDERS_FILE: providers,
    API_KEYS_FILE: keys,
    LOG_LEVEL: 'trace',
    DRAIN_DELAY_MS: '0',
    PM_SECRET_OA: SECRETS.openai,
    PM_SECRET_AN: SECRETS.anthropic,
    PM_SECRET_OC: SECRETS.compatible,
  };

  const allPort = await freePort();
  const all = new Proc('all', { ...env, SERVICE: 'all' });
  layouts.push({ name: 'SERVICE=all', url: `http://127.0.0.1:${allPort}`, procs: [all] });
  const ports = { templates: await freePort(), context: await freePort(), llm: await freePort(), router: await freePort() };
  const url = (p: number) => `http://127.0.0.1:${p}`;
  const mesh = {
    templates: new Proc('templates', { ...env, SERVICE: 'templates' }),
    context: new Proc('context', { ...env, SERVICE: 'context' }),
    llm: new Proc('llm', { ...env, SERVICE: 'llm' }),
    router: new Proc('router', { ...env, SERVICE: 'router', TEMPLATES_URL: url(ports.templates), CONTEXT_URL: url(ports.context), LLM_URL: url(ports.llm) }),
  };
  layouts.push({ name: 'mesh', url: url(ports.router), procs: Object.values(mesh) });
  await Promise.all([all.start(allPort), mesh.templates.start(ports.templates), mesh.context.start(ports.context), mesh.llm.start(ports.llm)]);
  await mesh.router.start(ports.router);
}, 240_000);

afterAll(async () => {
  for (const l of layouts) for (const p of l.procs) await p.stop().catch(() => undefined);
  await fake?.close();
  await db?.drop();
  await deletePrefix(prefix);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const FAULTS: Array<{ name: string; fault: Fault; stream?: boolean }> = [
  { name: '400', fault: { type: 'status', status: 400, echoRequest: true } },
  { name: '401', fault: { type: 'status', status: 401, echoRequest: true } },
  { name: '404', fault: { type: 'status', status: 404, echoRequest: true } },
  { name: '422', fault: { type: 'status', status: 422, echoRequest: true } },
  { name: '429', fault: { type: 'status', status: 429, echoRequest: true } },
  { name: '500', fault: { type: 'status', status: 500, echoRequest: true } },
  { name: '502', fault: { type: 'status', status: 502, echoRequest: true } },
  { name: '503', fault: { type: 'status', status: 503, echoRequest: true } },
  { name: '529', fault: { type: 'status', status: 529, echoRequest: true } },
  { name: 'error event mid-stream', fault: { type: 'error_event', afterChunks: 1, echoRequest: true }, stream: true },
];
const MODELS = ['gpt-4o-mini', 'claude-haiku-4-5', 'local'];

/** Every form a secret could take in text: raw, JSON-escaped, URL-encoded, and its first 12 characters. */
function leaks(text: string): string[] {
  const found: string[] = [];
  for (const secret of Object.values(SECRETS)) {
    for (const form of [secret, encodeURIComponent(secret), secret.slice(0, 12)]) if (text.includes(form)) found.push(form);
  }
  return found;
}

describe('provider credentials never leave promptmesh (class)', () => {
  it('the fake upstream really echoes the credentials it is sent (so the sweep below is not vacuous)', async () => {
    fake.setBehavior({ rules: [{ fault: { type: 'status', status: 500, echoRequest: true } }] });
    const res = await request(`${fake.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SECRETS.openai}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(await res.body.text()).toContain(SECRETS.openai);
    fake.setBehavior({});
  });

  for (const layoutIndex of [0, 1]) {
    it(`${layoutIndex === 0 ? 'SERVICE=all' : 'mesh'}: every failure kind, every provider type, plain and streamed`, async () => {
      const layout = layouts[layoutIndex]!;
      let redactedSeen = 0;
      for (const { name, fault, stream: streamOnly } of FAULTS) {
        fake.setBehavior({ rules: [{ fault }] });
        for (const model of MODELS) {
          for (const stream of streamOnly ? [true] : [false, true]) {
            const res = await request(`${layout.url}/v1/chat/completions`, {
              method: 'POST',
              headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
              body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'leak?' }] }),
            });
            const body = await res.body.text();
            const where = `${layout.name} ${name} ${model} ${stream ? 'stream' : 'plain'}`;
            expect(res.statusCode, where).toBeGreaterThanOrEqual(streamOnly ? 200 : 400);
            expect(leaks(`${res.statusCode} ${JSON.stringify(res.headers)} ${body}`), `${where}: ${body}`).toEqual([]);
            if (body.includes('[redacted]')) redactedSeen++;
          }
        }
      }
      // The echoed credentials did reach us, scrubbed: most answers carry the marker.
      expect(redactedSeen).toBeGreaterThan(FAULTS.length);
      fake.setBehavior({});
      // Let the last log lines flush, then read every line every process wrote.
      await new Promise((r) => setTimeout(r, 500));
      for (const proc of layout.procs) {
        expect(proc.output.length, `${proc.name} wrote logs`).toBeGreaterThan(0);
        const bad = proc.output.split('\n').filter((line) => leaks(line).length > 0);
        expect(bad, `${layout.name}/${proc.name} log lines with a secret`).toEqual([]);
      }
    }, 120_000);
  }
});
