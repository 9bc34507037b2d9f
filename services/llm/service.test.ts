import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../test/fake-provider/server';
import { freePort, waitFor } from '../../test/support/net';
import { deletePrefix, uniquePrefix } from '../../test/support/redis';
import { createApp, createLogger, createMetrics, createTracing, mountService, readConfig } from '../kit';
import { startSpan, trace, type Tracing } from '../kit/tracing';
import { createLlmService } from './index';
import { ask, chat, fakeOpenAi, metricValue, ssePayloads, startLlm, type TestLlm } from '../../test/support/llm-service';

let fa: FakeProvider;
const running: TestLlm[] = [];
const PRICED = { prices: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } };

beforeAll(async () => {
  fa = await startFakeProvider();
});
afterEach(async () => {
  while (running.length) await running.pop()!.close();
  fa.reset();
});
afterAll(async () => {
  await fa.close();
});

async function llm(extra: Record<string, unknown> = {}, options: Parameters<typeof startLlm>[1] = {}) {
  const s = await startLlm(
    { providers: [fakeOpenAi('a', fa.url, PRICED)], models: { chat: [{ provider: 'a', model: 'gpt-4o-mini' }] }, ...extra },
    options,
  );
  running.push(s);
  return s;
}

const metrics = async (url: string) => (await request(`${url}/metrics`)).body.text();

describe('response cache', () => {
  it('misses, then hits for the same deterministic request of the same tenant only', async () => {
    const s = await llm();
    const body = ask('chat', 'cache me', { temperature: 0 });
    const first = await chat(s.url, body, { 'x-promptmesh-tenant': 't1' });
    expect(first.status).toBe(200);
    expect(first.headers['x-promptmesh-cache']).toBe('miss');
    const second = await chat(s.url, body, { 'x-promptmesh-tenant': 't1' });
    expect(second.headers['x-promptmesh-cache']).toBe('hit');
    expect(second.headers['x-promptmesh-provider']).toBe('a');
    expect(second.json.choices).toEqual(first.json.choices);
    expect(second.json.usage.cost_usd).toBe(0);
    expect(fa.stats.requests).toBe(1);

    const otherTenant = await chat(s.url, body, { 'x-promptmesh-tenant': 't2' });
    expect(otherTenant.headers['x-promptmesh-cache']).toBe('miss');
    expect(fa.stats.requests).toBe(2);

    const text = await metrics(s.url);
    expect(metricValue(text, 'promptmesh_cache_requests_total', { result: 'hit' })).toBe(1);
    expect(metricValue(text, 'promptmesh_cache_requests_total', { result: 'miss' })).toBe(2);
  });

  it('skips non-deterministic requests unless forced, and can be turned off', async () => {
    const s = await llm();
    const warm = ask('chat', 'warm', { temperature: 0.9 });
    expect((await chat(s.url, warm)).headers['x-promptmesh-cache']).toBe('skip');
    expect((await chat(s.url, warm)).headers['x-promptmesh-cache']).toBe('skip');
    expect(fa.stats.requests).toBe(2);

    expect((await chat(s.url, warm, { 'x-promptmesh-cache': 'force' })).headers['x-promptmesh-cache']).toBe('miss');
    expect((await chat(s.url, warm, { 'x-promptmesh-cache': 'force' })).headers['x-promptmesh-cache']).toBe('hit');
    expect((await chat(s.url, { ...warm, cache: true })).headers['x-promptmesh-cache']).toBe('hit');

    const cold = ask('chat', 'cold', { temperature: 0, cache: false });
    expect((await chat(s.url, cold)).headers['x-promptmesh-cache']).toBe('skip');
    expect((await chat(s.url, cold)).headers['x-promptmesh-cache']).toBe('skip');
    // The extension field never reaches the provider.
    expect(fa.requests.every((r) => !('cache' in (r.body as object)))).toBe(true);
    expect(metricValue(await metrics(s.url), 'promptmesh_cache_requests_total', { result: 'skip' })).toBe(4);
  });

  it('replays a cached answer as a stream, and caches a streamed answer', async () => {
    const s = await llm();
    const body = ask('chat', 'replay this answer please', { temperature: 0 });
    const plain = await chat(s.url, body);
    const replay = await chat(s.url, { ...body, stream: true, stream_options: { include_usage: true } });
    expect(replay.headers['x-promptmesh-cache']).toBe('hit');
    const events = ssePayloads(replay.text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(plain.json.choices[0].message.content);
    expect(chunks.at(-1).usage).toMatchObject({ prompt_tokens: plain.json.usage.prompt_tokens, cost_usd: 0 });
    expect(fa.stats.requests).toBe(1);

    const streamed = ask('chat', 'first as a stream', { temperature: 0, stream: true });
    expect((await chat(s.url, streamed)).headers['x-promptmesh-cache']).toBe('miss');
    const after = await chat(s.url, { ...streamed, stream: false });
    expect(after.headers['x-promptmesh-cache']).toBe('hit');
    expect(after.json.choices[0].message.content).toBe('echo: first as a stream');
    expect(fa.stats.requests).toBe(2);
  });
});

describe('usage and cost', () => {
  it('returns tokens and USD from the price table, in the body, a header and the metrics', async () => {
    fa.setBehavior({ reply: { tokens: 1000 } });
    const s = await llm();
    const r = await chat(s.url, ask('chat', 'price me'));
    const u = r.json.usage;
    expect(u.completion_tokens).toBe(1000);
    const expected = (u.prompt_tokens * 0.15 + 1000 * 0.6) / 1e6;
    expect(u.cost_usd).toBeCloseTo(expected, 12);
    expect(Number(r.headers['x-promptmesh-cost-usd'])).toBeCloseTo(expected, 12);

    const text = await metrics(s.url);
    expect(metricValue(text, 'promptmesh_llm_cost_usd_total', { provider: 'a', model: 'gpt-4o-mini' })).toBeCloseTo(expected, 12);
    expect(metricValue(text, 'gen_ai_client_token_usage_sum', { provider: 'a', model: 'gpt-4o-mini', token_type: 'output' })).toBe(1000);
    expect(metricValue(text, 'gen_ai_client_token_usage_sum', { provider: 'a', model: 'gpt-4o-mini', token_type: 'input' })).toBe(u.prompt_tokens);
    expect(metricValue(text, 'gen_ai_client_operation_duration_seconds_count', { provider: 'a', model: 'gpt-4o-mini', outcome: 'success' })).toBe(1);
  });

  it('counts failed calls by outcome', async () => {
    fa.setBehavior({ rules: [{ times: 1, fault: { type: 'status', status: 500 } }] });
    const s = await llm({ routing: { retries: { attempts: 1, backoffMs: 1 } } });
    expect((await chat(s.url, ask('chat'))).status).toBe(200);
    const text = await metrics(s.url);
    expect(metricValue(text, 'gen_ai_client_operation_duration_seconds_count', { provider: 'a', outcome: 'server' })).toBe(1);
    expect(metricValue(text, 'gen_ai_client_operation_duration_seconds_count', { provider: 'a', outcome: 'success' })).toBe(1);
  });
});

describe('through the anthropic adapter', () => {
  it('routes, costs and streams an alias served by an Anthropic-API provider', async () => {
    const s = await llm(
      {
        providers: [
          { name: 'claude', type: 'anthropic', baseUrl: fa.url, apiKeyEnv: 'PM_LLM_TEST_ANTHROPIC_KEY', prices: { 'claude-haiku-4-5': { input: 1, output: 5 } } },
        ],
        models: { chat: [{ provider: 'claude', model: 'claude-haiku-4-5' }] },
      },
      { env: { PM_LLM_TEST_ANTHROPIC_KEY: 'sk-ant-test' } },
    );
    const plain = await chat(s.url, ask('chat', 'bonjour tout le monde'));
    expect(plain.status).toBe(200);
    expect(plain.json.choices[0].message.content).toBe('echo: bonjour tout le monde');
    const u = plain.json.usage;
    expect(u.cost_usd).toBeCloseTo((u.prompt_tokens * 1 + u.completion_tokens * 5) / 1e6, 12);
    expect(fa.requests.at(-1)!.path).toBe('/v1/messages');
    expect(fa.requests.at(-1)!.headers['x-api-key']).toBe('sk-ant-test');

    const streamed = await chat(s.url, ask('chat', 'stream it', { stream: true, stream_options: { include_usage: true } }));
    const events = ssePayloads(streamed.text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('echo: stream it');
    expect(chunks.at(-1).usage.completion_tokens).toBe(3);
  });
});

describe('GenAI spans', () => {
  it('are children of the caller, carry gen_ai.* attributes, and propagate traceparent to the provider', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tracing: Tracing = { tracer: provider.getTracer('test'), exporting: true, shutdown: () => provider.shutdown() };
    const s = await llm({}, { tracing });
    const { span: parent, context } = startSpan(tracing.tracer, 'caller', undefined);
    const result = await s.core.complete(ask('chat', 'trace me'), { traceContext: context });
    parent.end();
    const spans = exporter.getFinishedSpans();
    const root = spans.find((x) => x.name === 'chat chat')!;
    const call = spans.find((x) => x.name === 'chat gpt-4o-mini')!;
    const parentCtx = trace.getSpan(context)!.spanContext();
    expect(root.parentSpanContext?.spanId).toBe(parentCtx.spanId);
    expect(call.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(call.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.system': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.usage.input_tokens': result.completion.usage.prompt_tokens,
      'gen_ai.usage.output_tokens': result.completion.usage.completion_tokens,
    });
    expect(root.attributes).toMatchObject({ 'gen_ai.request.model': 'chat', 'gen_ai.response.model': 'gpt-4o-mini', 'promptmesh.provider': 'a' });
    const traceparent = String(fa.requests.at(-1)!.headers.traceparent);
    expect(traceparent).toContain(parentCtx.traceId);
    expect(traceparent).toContain(call.spanContext().spanId);
    await provider.shutdown();
  });
});

describe('HTTP API', () => {
  it.each([
    [{ messages: [{ role: 'user', content: 'x' }] }, 'model'],
    [{ model: 'chat' }, 'messages'],
    [{ model: 'chat', messages: 'hi' }, 'messages'],
    [{ model: 'chat', messages: [] }, 'messages'],
    [{ model: 'chat', messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role'],
    [{ model: 'chat', messages: [{ role: 'user' }] }, 'messages[0].content'],
    [{ model: 'chat', messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    [{ model: 'chat', messages: [{ role: 'user', content: 'x' }], temperature: '0' }, 'temperature'],
    [{ model: 'chat', messages: [{ role: 'user', content: 'x' }], temperature: 3 }, 'temperature'],
    [{ model: 'chat', messages: [{ role: 'user', content: 'x' }], max_tokens: 1.5 }, 'max_tokens'],
    [{ model: 'chat', messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
    [{ model: 7, messages: [{ role: 'user', content: 'x' }] }, 'model'],
  ])('answers 400 naming the field for %j', async (body, param) => {
    const s = await llm();
    const r = await chat(s.url, body);
    expect(r.status).toBe(400);
    expect(r.json.error.type).toBe('invalid_request_error');
    expect(r.json.error.param).toBe(param);
    expect(r.json.error.message).toContain(param);
    expect(fa.stats.requests).toBe(0);
  });

  it('accepts unknown top-level extension fields and checks headers', async () => {
    const s = await llm();
    expect((await chat(s.url, ask('chat', 'x', { metadata: { a: 1 } }))).status).toBe(200);
    const bad = await chat(s.url, ask('chat'), { 'x-promptmesh-cache': 'always' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe('x-promptmesh-cache');
    const refused: Array<[Record<string, string>, string]> = [
      [{ 'x-promptmesh-tenant': 't'.repeat(257) }, 'x-promptmesh-tenant'],
      [{ 'x-promptmesh-tenant': 't', 'x-promptmesh-tenant-tpm': '0' }, 'x-promptmesh-tenant-tpm'],
      [{ 'x-promptmesh-tenant': 't', 'x-promptmesh-tenant-tpm': '10000000001' }, 'x-promptmesh-tenant-tpm'],
      [{ 'x-promptmesh-tenant': 't', 'x-promptmesh-tenant-tpm': '1e3' }, 'x-promptmesh-tenant-tpm'],
      [{ 'x-promptmesh-tenant-tpm': '100' }, 'x-promptmesh-tenant-tpm'],
    ];
    for (const [headers, param] of refused) {
      const r = await chat(s.url, ask('chat'), headers);
      expect(r.status, JSON.stringify(headers)).toBe(400);
      expect(r.json.error.param).toBe(param);
    }
    const budget = await chat(s.url, ask('chat'), { 'x-promptmesh-tenant': 't'.repeat(256), 'x-promptmesh-tenant-tpm': '10000000000', 'x-promptmesh-cache': 'off' });
    expect(budget.status, budget.text).toBe(200);
  });

  it('lists models and providers (without secrets)', async () => {
    const s = await llm(
      { providers: [fakeOpenAi('a', fa.url, { ...PRICED, apiKeyEnv: 'PM_LLM_TEST_KEY', models: ['gpt-4o'], limits: { rpm: 100, concurrency: 5 } })] },
      { env: { PM_LLM_TEST_KEY: 'sk-super-secret' } },
    );
    const models = (await (await request(`${s.url}/v1/models`)).body.json()) as any;
    expect(models.data.map((m: any) => m.id)).toEqual(['chat', 'gpt-4o', 'gpt-4o-mini']);
    const res = await request(`${s.url}/v1/providers`);
    const text = await res.body.text();
    expect(text).not.toContain('sk-super-secret');
    const a = JSON.parse(text).data[0];
    expect(a).toMatchObject({ name: 'a', type: 'openai', circuit: { state: 'closed' }, limits: { rpm: 100, tpm: null, concurrency: 5 }, inFlight: 0 });
    expect(fa.requests.length).toBe(0);
    await chat(s.url, ask('chat'));
    expect(fa.requests[0]!.headers.authorization).toBe('Bearer sk-super-secret');
  });

  it('serves the built-in echo provider without a providers file', async () => {
    const config = readConfig({ SERVICE: 'llm', LOG_LEVEL: 'silent' });
    const logger = createLogger('llm', 'silent');
    const m = createMetrics({ defaultMetrics: false });
    const tracing = createTracing('llm', undefined);
    const app = createApp({ service: 'llm', config, logger, metrics: m, tracing });
    await mountService(app, await createLlmService({ config, logger, metrics: m, tracing }, new Map()));
    try {
      const r = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: ask('echo', 'hi there') });
      expect(r.statusCode).toBe(200);
      expect(r.headers['x-promptmesh-provider']).toBe('echo');
      expect(r.json().choices[0].message.content).toContain('hi there');
    } finally {
      await app.close();
    }
  });
});

describe('Redis outage', () => {
  let redis: ChildProcess | undefined;
  afterEach(() => {
    redis?.kill('SIGKILL');
    redis = undefined;
  });

  async function startRedis(port: number) {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitFor(async () => {
      return new Promise<boolean>((resolve) => {
        const sock = new Socket();
        sock.once('error', () => resolve(false));
        sock.connect(port, '127.0.0.1', () => (sock.destroy(), resolve(true)));
      });
    }, 10_000, 'private redis-server');
    return child;
  }

  it('answers without cache and limits while Redis is down, and uses them again when it is back', async () => {
    const port = await freePort();
    redis = await startRedis(port);
    const s = await llm(
      { providers: [fakeOpenAi('a', fa.url, { ...PRICED, limits: { rpm: 1000 } })] },
      { redisUrl: `redis://127.0.0.1:${port}` },
    );
    const body = ask('chat', 'outage', { temperature: 0 });
    await waitFor(async () => (await chat(s.url, body)).headers['x-promptmesh-cache'] === 'hit', 10_000, 'cache hit');

    redis.kill('SIGKILL');
    await new Promise((resolve) => redis!.once('exit', resolve));
    for (let i = 0; i < 3; i++) {
      const r = await chat(s.url, body);
      expect(r.status).toBe(200);
      expect(r.headers['x-promptmesh-cache']).toBe('skip');
    }
    expect(metricValue(await metrics(s.url), 'promptmesh_cache_requests_total', { result: 'error' })).toBeGreaterThanOrEqual(3);
    expect((await request(`${s.url}/readyz`)).statusCode).toBe(200);

    redis = await startRedis(port);
    await waitFor(async () => (await chat(s.url, body)).headers['x-promptmesh-cache'] === 'miss', 15_000, 'cache back (miss on the empty Redis)');
    expect((await chat(s.url, body)).headers['x-promptmesh-cache']).toBe('hit');
  });
});

describe('rate limits across two llm processes', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  it('holds rpm cluster-wide and answers 429 with Retry-After when every candidate is limited', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-llm-2p-'));
    const file = join(dir, 'providers.yaml');
    writeFileSync(
      file,
      `providers:\n  - { name: a, type: openai, baseUrl: "${fa.url}/v1", limits: { rpm: 12 } }\nmodels:\n  chat: [{ provider: a, model: gpt-4o-mini }]\n`,
    );
    const prefix = uniquePrefix('llm-2p');
    const ports = [await freePort(), await freePort()];
    try {
      for (const port of ports) {
        const child = spawn(process.execPath, ['--import', 'tsx', 'services/main.ts'], {
          env: { ...process.env, SERVICE: 'llm', PORT: String(port), HOST: '127.0.0.1', PROVIDERS_FILE: file, REDIS_KEY_PREFIX: prefix, LOG_LEVEL: 'warn', DRAIN_DELAY_MS: '0' },
          stdio: 'ignore',
        });
        children.push(child);
      }
      for (const port of ports) {
        await waitFor(async () => (await request(`http://127.0.0.1:${port}/readyz`)).statusCode === 200, 30_000, `llm on ${port}`);
      }
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: 36 }, (_, i) => chat(`http://127.0.0.1:${ports[i % 2]}`, ask('chat', `r${i}`))));
      const refillAllowance = Math.ceil(((Date.now() - started) / 60_000) * 12);
      const ok = results.filter((r) => r.status === 200);
      const limited = results.filter((r) => r.status === 429);
      expect(ok.length).toBeGreaterThanOrEqual(12);
      expect(ok.length).toBeLessThanOrEqual(12 + refillAllowance);
      expect(ok.length + limited.length).toBe(36);
      expect(Number(limited[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(limited[0]!.json.error.message).toContain('12 rpm');
      expect(fa.stats.requests).toBe(ok.length);
      // Each process answered its own 18 (so a per-process limit would have let up to 24
      // through). Which process wins the burst is a race, so neither is required to serve.
      for (const side of [0, 1]) {
        const mine = results.filter((_, i) => i % 2 === side);
        expect(mine.length).toBe(18);
        expect(mine.every((r) => r.status === 200 || r.status === 429)).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await deletePrefix(prefix);
    }
  }, 90_000);
});
