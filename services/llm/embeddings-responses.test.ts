/**
 * The llm service's `/v1/embeddings` and `/v1/responses` over real sockets, against the fake
 * provider misbehaving on demand: retries, the circuit, provider limits, malformed answers,
 * cost metrics, a stream broken mid-way, and the unit of the base64 encoding.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startFakeProvider, type FakeProvider } from '../../test/fake-provider/server';
import { fakeVector } from '../../test/fake-provider/wire';
import { fakeOpenAi, metricValue, postJson, startLlm, type TestLlm } from '../../test/support/llm-service';
import { base64ToFloats, encodeEmbeddings, floatsToBase64 } from '../openai';

describe('base64 embeddings', () => {
  it('writes little-endian float32 as OpenAI does, and reads it back', () => {
    const v = [0.5, -1, 0.25, 3.5];
    const text = floatsToBase64(v);
    expect(Buffer.from(text, 'base64')).toHaveLength(16);
    expect(Buffer.from(text, 'base64').readFloatLE(4)).toBe(-1);
    expect(base64ToFloats(text)).toEqual(v);
    expect(() => base64ToFloats('AAA=')).toThrow();
    const response = { object: 'list' as const, data: [{ object: 'embedding' as const, index: 0, embedding: v }], model: 'm', usage: { prompt_tokens: 1, total_tokens: 1 } };
    expect(encodeEmbeddings(response, 'float')).toBe(response);
    expect(encodeEmbeddings(response, 'base64').data[0]!.embedding).toBe(text);
  });
});

describe('llm embeddings and responses against a misbehaving provider', () => {
  let fake: FakeProvider;
  let llm: TestLlm;

  beforeAll(async () => {
    fake = await startFakeProvider({ apiKey: 'sk-fake-secret-1234567890' });
    llm = await startLlm(
      {
        providers: [
          fakeOpenAi('emb', fake.url, { apiKeyEnv: 'EMB_TEST_KEY', models: ['emb-1', 'gpt-r'], prices: { 'emb-1': { input: 0.5, output: 0 }, 'gpt-r': { input: 1, output: 4 } }, limits: { rpm: 1000 } }),
          { name: 'claude', type: 'anthropic', baseUrl: fake.url, timeoutMs: 5000, models: ['claude-x'] },
        ],
        routing: { strategy: 'priority', fallback: true, retries: { attempts: 2, backoffMs: 1 } },
        cache: { enabled: true, ttlSeconds: 60 },
      },
      { env: { EMB_TEST_KEY: 'sk-fake-secret-1234567890' } },
    );
  });
  afterAll(async () => {
    await llm?.close();
    await fake?.close();
  });
  beforeEach(() => fake.reset());

  it('retries a 429 and a reset on embeddings, then answers with the float vectors and the cost', async () => {
    fake.setBehavior({ rules: [{ model: 'emb-1', times: 1, fault: { type: 'status', status: 429, retryAfterMs: 1 } }, { model: 'emb-1', times: 1, fault: { type: 'reset' } }] });
    const res = await postJson(llm.url, '/v1/embeddings', { model: 'emb-1', input: ['one', 'two'], dimensions: 3 }, { 'x-promptmesh-cache': 'off' });
    expect(res.status).toBe(200);
    expect(fake.requests.filter((r) => r.path === '/v1/embeddings')).toHaveLength(3);
    // The adapter asked OpenAI for base64 and decoded it.
    expect((fake.requests.at(-1)!.body as { encoding_format: string }).encoding_format).toBe('base64');
    expect(res.json.data.map((d: { embedding: number[] }) => d.embedding)).toEqual([fakeVector('one', 3), fakeVector('two', 3)]);
    expect(res.headers['x-promptmesh-cost-usd']).toBe(String((res.json.usage.prompt_tokens * 0.5) / 1e6));
    const metrics = await (await request(`${llm.url}/metrics`)).body.text();
    expect(metricValue(metrics, 'promptmesh_llm_cost_usd_total', { provider: 'emb', model: 'emb-1' })).toBeGreaterThan(0);
  });

  it('answers a 502 naming the provider for a malformed answer, and a 400 for a provider 400, never retried', async () => {
    fake.setBehavior({ rules: [{ model: 'emb-1', fault: { type: 'malformed' } }] });
    const bad = await postJson(llm.url, '/v1/embeddings', { model: 'emb-1', input: 'x' }, { 'x-promptmesh-cache': 'off' });
    expect(bad.status).toBe(502);
    expect(bad.json.error.message).toContain('emb');
    expect(bad.text).not.toContain('sk-fake-secret');

    fake.reset();
    const before = fake.requests.length;
    const refused = await postJson(llm.url, '/v1/embeddings', { model: 'emb-1', input: 'x', dimensions: 5000 }, { 'x-promptmesh-cache': 'off' });
    expect(refused.status).toBe(400);
    expect(refused.json.error.message).toContain('dimensions');
    expect(fake.requests.length - before).toBe(1);
  });

  it('refuses embeddings for a model whose providers have none, naming the model', async () => {
    const res = await postJson(llm.url, '/v1/embeddings', { model: 'claude-x', input: 'x' });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe('model');
    expect(res.json.error.message).toContain('claude (anthropic)');
    expect(fake.requests).toHaveLength(0);
  });

  it('retries the Responses API before its answer began, and passes its stream through unchanged', async () => {
    fake.setBehavior({ rules: [{ model: 'gpt-r', times: 1, fault: { type: 'status', status: 503 } }] });
    const res = await postJson(llm.url, '/v1/responses', { model: 'gpt-r', input: 'two words', stream: true });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    expect(res.headers['x-promptmesh-provider']).toBe('emb');
    expect(res.text).toContain('event: response.completed');
    expect(res.text).toContain('"delta":" words"');
    expect(fake.requests.filter((r) => r.path === '/v1/responses')).toHaveLength(2);
    const metrics = await (await request(`${llm.url}/metrics`)).body.text();
    // Priced from the usage of the stream's response.completed event.
    expect(metricValue(metrics, 'promptmesh_llm_cost_usd_total', { provider: 'emb', model: 'gpt-r' })).toBeGreaterThan(0);
  });

  it('ends a Responses stream broken mid-way with the connection cut, not a hang', async () => {
    fake.setBehavior({ rules: [{ model: 'gpt-r', fault: { type: 'reset', afterHeaders: true } }] });
    const res = await request(`${llm.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-r', input: 'a b c', stream: true }) });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
  });

  it('refuses the Responses API for an Anthropic model with a 400 naming the providers that can', async () => {
    const res = await postJson(llm.url, '/v1/responses', { model: 'claude-x', input: 'x' });
    expect(res.status).toBe(400);
    expect(res.json.error.param).toBe('model');
    expect(res.json.error.message).toContain('Providers that do: emb (openai)');
  });
});
