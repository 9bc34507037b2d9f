/**
 * Test support for the llm suites: starts a real llm service (kit app, real adapters, real
 * Redis) on a free port, with a providers file written from an object.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { request } from 'undici';
import { createApp, createLogger, createMetrics, createTracing, mountService, readConfig, type Tracing } from '../../services/kit';
import type { ServiceContext } from '../../services/kit/service';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from './redis';
import type { LlmCore } from '../../services/llm/core';
import type { ChatRequest } from '../../services/openai';
import { createLlmService } from '../../services/llm';

/** A running llm service under test. */
export interface TestLlm {
  url: string;
  app: FastifyInstance;
  core: LlmCore;
  prefix: string;
  close(): Promise<void>;
}

/** Starts the llm service with `providers` as its providers file (JSON). */
export async function startLlm(
  providers: unknown,
  options: { redisUrl?: string; prefix?: string; tracing?: Tracing; env?: Record<string, string>; keepPrefix?: boolean } = {},
): Promise<TestLlm> {
  const dir = mkdtempSync(join(tmpdir(), 'pm-llm-'));
  const file = join(dir, 'providers.json');
  writeFileSync(file, JSON.stringify(providers));
  const prefix = options.prefix ?? uniquePrefix('llm');
  for (const [k, v] of Object.entries(options.env ?? {})) process.env[k] = v;
  const config = readConfig({
    SERVICE: 'llm',
    HOST: '127.0.0.1',
    PORT: '0',
    REDIS_URL: options.redisUrl ?? TEST_REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    PROVIDERS_FILE: file,
    LOG_LEVEL: 'silent',
  });
  const logger = createLogger('llm', 'silent');
  const metrics = createMetrics({ defaultMetrics: false });
  const tracing = options.tracing ?? createTracing('llm', undefined);
  const ctx: ServiceContext = { config, logger, metrics, tracing };
  const app = createApp({ service: 'llm', config, logger, metrics, tracing });
  const instance = await createLlmService(ctx, new Map());
  await mountService(app, instance);
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url: address,
    app,
    core: instance.core,
    prefix,
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
      if (!options.keepPrefix && (options.redisUrl ?? TEST_REDIS_URL) === TEST_REDIS_URL) await deletePrefix(prefix);
    },
  };
}

/** A provider entry for a fake provider at `url` (OpenAI API). */
export function fakeOpenAi(name: string, url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, type: 'openai', baseUrl: `${url}/v1`, timeoutMs: 5_000, ...extra };
}

/** POSTs a chat request to the service; returns status, headers and the parsed JSON body. */
export async function chat(url: string, body: unknown, headers: Record<string, string> = {}) {
  return postJson(url, '/v1/chat/completions', body, headers);
}

/** POSTs `body` as JSON to `path`; returns status, headers, the text and the parsed JSON (undefined when it is not). */
export async function postJson(url: string, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, json, text };
}

/** The `data:` payloads of an SSE body. */
export function ssePayloads(text: string): string[] {
  return text
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));
}

/** A user message request for `model`. */
export function ask(model: string, text = 'hello', extra: Record<string, unknown> = {}): ChatRequest {
  return { model, messages: [{ role: 'user', content: text }], ...extra };
}

/** The value of one Prometheus series in `/metrics` text, or undefined. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelPart = line.slice(name.length).split(' ')[0]!;
    if (want.every((w) => labelPart.includes(w))) return Number(line.split(' ').at(-1));
  }
  return undefined;
}
