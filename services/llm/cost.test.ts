// Issue 9, item 9: every kind of token is costed at its own rate (uncached input, cached input,
// cache writes, output), on every adapter that reports them, plain and streamed, in the body, the
// header and the metric; and OpenAI-shaped usage carries prompt_tokens_details.cached_tokens.
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../test/fake-provider/server';
import { billedTokens, costOf, parseLlmConfig } from './config';
import { ask, chat, metricValue, ssePayloads, startLlm, type TestLlm } from '../../test/support/llm-service';
import { KNOWN_MODELS, knownModel } from './model-limits';
import type { ProviderConfig } from './types';

let fake: FakeProvider;
const running: TestLlm[] = [];
beforeAll(async () => {
  fake = await startFakeProvider();
});
afterEach(async () => {
  while (running.length) await running.pop()!.close();
  fake.reset();
});
afterAll(() => fake.close());

const PRICE = { input: 2, output: 8, cached_input: 0.5, cache_write: 2.5 };

describe('cost by token kind (unit)', () => {
  const provider = (prices: ProviderConfig['prices']): ProviderConfig => ({ name: 'p', type: 'openai', baseUrl: 'http://x', timeoutMs: 1, connectTimeoutMs: 1, firstByteTimeoutMs: 1, prices });

  it('splits prompt tokens into uncached, cached and written, never below zero', () => {
    expect(billedTokens({ prompt_tokens: 100, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 60 }, cache_creation_input_tokens: 30 })).toEqual({ input: 10, cachedInput: 60, cacheWrite: 30, output: 5 });
    expect(billedTokens({ prompt_tokens: 10, completion_tokens: 0, prompt_tokens_details: { cached_tokens: 50 }, cache_creation_input_tokens: 50 })).toEqual({ input: 0, cachedInput: 10, cacheWrite: 0, output: 0 });
  });

  it('uses the configured rates, else the known share of the input price, else the input price', () => {
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 0, prompt_tokens_details: { cached_tokens: 1_000_000 } };
    expect(costOf(provider({ 'gpt-4o': PRICE }), 'gpt-4o', usage)).toBeCloseTo(0.5, 10);
    expect(costOf(provider({ 'gpt-4o': { input: 2.5, output: 10 } }), 'gpt-4o', usage)).toBeCloseTo(1.25, 10);
    expect(costOf(provider({ 'gpt-4.1-mini': { input: 0.4, output: 1.6 } }), 'gpt-4.1-mini', usage)).toBeCloseTo(0.1, 10);
    expect(costOf(provider({ 'claude-sonnet-4-5': { input: 3, output: 15 } }), 'claude-sonnet-4-5', usage)).toBeCloseTo(0.3, 10);
    expect(costOf(provider({ 'claude-sonnet-4-5': { input: 3, output: 15 } }), 'claude-sonnet-4-5', { prompt_tokens: 1_000_000, completion_tokens: 0, cache_creation_input_tokens: 1_000_000 })).toBeCloseTo(3.75, 10);
    expect(costOf(provider({ mystery: { input: 1, output: 1 } }), 'mystery', usage)).toBeCloseTo(1, 10);
  });

  it('every known model has a max output and a cached-input share no higher than the input price', () => {
    for (const [name, m] of Object.entries(KNOWN_MODELS)) {
      expect(knownModel(name)).toBe(m);
      expect(knownModel(`${name}-2025-01-01`)).toBe(m);
      // The smallest documented cap: Llama 3 on Bedrock (max_gen_len 2048).
      expect(m.maxOutputTokens).toBeGreaterThanOrEqual(2_048);
      expect(m.cachedInputRatio).toBeGreaterThan(0);
      expect(m.cachedInputRatio).toBeLessThanOrEqual(1);
    }
    expect(knownModel('gpt-4o-mini')?.maxOutputTokens).toBe(16_384);
    expect(knownModel('o3x')).toBeUndefined();
  });

  it('the providers file takes cached_input, cache_write and maxOutputTokens, and names bad ones', () => {
    const parsed = parseLlmConfig({ providers: [{ name: 'p', type: 'openai', baseUrl: 'http://x', prices: { m: PRICE }, maxOutputTokens: { m: 5000 } }] }, 'f.yaml');
    expect(parsed.providers[0]!.prices!.m).toEqual(PRICE);
    expect(parsed.providers[0]!.maxOutputTokens).toEqual({ m: 5000 });
    const bad = (p: Record<string, unknown>) => () => parseLlmConfig({ providers: [{ name: 'p', type: 'openai', baseUrl: 'http://x', ...p }] }, 'f.yaml');
    expect(bad({ prices: { m: { ...PRICE, cached_input: -1 } } })).toThrow(/providers\[0\]\.prices\.m\.cached_input/);
    expect(bad({ prices: { m: { ...PRICE, cache_write: 'x' } } })).toThrow(/providers\[0\]\.prices\.m\.cache_write/);
    expect(bad({ maxOutputTokens: { m: 1.5 } })).toThrow(/providers\[0\]\.maxOutputTokens\.m/);
    expect(bad({ maxOutputTokens: { m: null } })).toThrow(/providers\[0\]\.maxOutputTokens\.m/);
    expect(bad({ maxOutputTokens: [1] })).toThrow(/providers\[0\]\.maxOutputTokens/);
  });
});

// The class: for each adapter that reports prompt caching, each delivery (plain, stream) and each
// token kind, the cost in the body (and header) and the metric is the price table applied per kind.
describe('cached tokens are costed at their own rate (class)', () => {
  const flavours = [
    { type: 'openai', model: 'gpt-4.1', baseUrl: () => `${fake.url}/v1`, reply: { cachedTokens: 20 }, write: 0 },
    { type: 'openai-compatible', model: 'served-model', baseUrl: () => `${fake.url}/v1`, reply: { cachedTokens: 20 }, write: 0 },
    { type: 'anthropic', model: 'claude-haiku-4-5', baseUrl: () => fake.url, reply: { cachedTokens: 20, cacheWriteTokens: 7 }, write: 7 },
  ] as const;

  for (const f of flavours) {
    for (const stream of [false, true]) {
      it(`${f.type}, ${stream ? 'streamed' : 'plain'}`, async () => {
        const s = await startLlm(
          {
            providers: [{ name: 'p', type: f.type, baseUrl: f.baseUrl(), apiKeyEnv: 'PM_COST_TEST_KEY', prices: { [f.model]: PRICE }, models: [f.model] }],
            cache: { enabled: false },
          },
          { env: { PM_COST_TEST_KEY: 'sk-cost-test-key-000' } },
        );
        running.push(s);
        fake.setBehavior({ reply: f.reply });
        const body = ask(f.model, 'a prompt long enough to have twenty cached tokens in it, and then some more words', stream ? { stream: true, stream_options: { include_usage: true } } : {});
        const r = await chat(s.url, body);
        expect(r.status).toBe(200);
        const usage = stream ? JSON.parse(ssePayloads(r.text).at(-2)!).usage : r.json.usage;
        expect(usage.prompt_tokens_details.cached_tokens).toBe(20);
        if (f.write) expect(usage.cache_creation_input_tokens).toBe(f.write);
        const uncached = usage.prompt_tokens - 20 - f.write;
        expect(uncached).toBeGreaterThan(0);
        const expected = (uncached * PRICE.input + 20 * PRICE.cached_input + f.write * PRICE.cache_write + usage.completion_tokens * PRICE.output) / 1e6;
        // Costed at the full input price, the same usage would cost more: the bug this guards.
        expect(expected).toBeLessThan((usage.prompt_tokens * PRICE.input + usage.completion_tokens * PRICE.output) / 1e6);
        expect(usage.cost_usd).toBeCloseTo(expected, 12);
        if (!stream) expect(Number(r.headers['x-promptmesh-cost-usd'])).toBeCloseTo(expected, 12);
        const text = await (await request(`${s.url}/metrics`)).body.text();
        expect(metricValue(text, 'promptmesh_llm_cost_usd_total', { provider: 'p', model: f.model })).toBeCloseTo(expected, 12);
        expect(metricValue(text, 'gen_ai_client_token_usage_sum', { provider: 'p', model: f.model, token_type: 'cached_input' })).toBe(20);
        if (f.write) expect(metricValue(text, 'gen_ai_client_token_usage_sum', { provider: 'p', model: f.model, token_type: 'cache_write' })).toBe(f.write);
      });
    }
  }
});
