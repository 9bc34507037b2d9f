// The llm service's internal POST /v1/messages over a real socket: pass-through to Anthropic
// providers with the pipeline's accounting (cost, tokens, retries, fallback), translation to the
// others, and Anthropic's error shape. Client-facing behaviour: test/e2e/messages.suite.ts.
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../test/fake-provider/server';
import { thinkingSignature } from '../../test/fake-provider/wire';
import { fakeOpenAi, metricValue, startLlm, type TestLlm } from '../../test/support/llm-service';

let fake: FakeProvider;
let llm: TestLlm;
const saved = { ...process.env };
const BEDROCK_CLAUDE = 'us.anthropic.claude-sonnet-4-20250514-v1:0';
const PRICE = { input: 1, output: 2, cached_input: 0.1, cache_write: 1.25 };

beforeAll(async () => {
  fake = await startFakeProvider();
  llm = await startLlm(
    {
      providers: [
        { name: 'claude-a', type: 'anthropic', baseUrl: fake.url, apiKeyEnv: 'PM_TEST_MESSAGES_KEY', timeoutMs: 5_000, prices: { 'claude-x': PRICE } },
        { name: 'claude-b', type: 'anthropic', baseUrl: fake.url, apiKeyEnv: 'PM_TEST_MESSAGES_KEY', timeoutMs: 5_000, models: ['claude-y'] },
        fakeOpenAi('gpt', fake.url, { models: ['gpt-x'] }),
        { name: 'bedrock', type: 'bedrock', region: 'us-east-1', baseUrl: fake.url, timeoutMs: 5_000, models: [BEDROCK_CLAUDE] },
      ],
      models: {
        claude: [{ provider: 'claude-a', model: 'claude-x' }, { provider: 'claude-b', model: 'claude-y' }],
        mixed: [{ provider: 'claude-a', model: 'claude-x' }, { provider: 'gpt', model: 'gpt-x' }],
      },
      routing: { strategy: 'priority', fallback: true, retries: { attempts: 0, backoffMs: 1 } },
    },
    // Bedrock's credentials: the AWS default chain's environment source.
    { env: { PM_TEST_MESSAGES_KEY: 'ak-test', AWS_ACCESS_KEY_ID: 'AKIDMESSAGES', AWS_SECRET_ACCESS_KEY: 'secret' } },
  );
});
afterEach(() => fake.reset());
afterAll(async () => {
  await llm.close();
  await fake.close();
  process.env = saved;
});

async function messages(body: unknown, headers: Record<string, string> = {}) {
  const res = await request(`${llm.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: text.startsWith('{') ? JSON.parse(text) : undefined };
}

const metrics = async () => (await request(`${llm.url}/metrics`)).body.text();

describe('llm POST /v1/messages', () => {
  it('passes through to Anthropic and costs the answer, cache reads and writes at their rates', async () => {
    fake.setBehavior({ reply: { cachedTokens: 4, cacheWriteTokens: 2 } });
    const body = { model: 'claude', max_tokens: 50, top_k: 3, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'a b c d e f g h' } }, { type: 'text', text: 'sum up' }] }] };
    const r = await messages(body);
    expect(r.status).toBe(200);
    expect(r.headers['x-promptmesh-passthrough']).toBe('true');
    expect(fake.requests.at(-1)!.body).toEqual({ ...body, model: 'claude-x' });
    const u = r.json.usage;
    expect(u).toMatchObject({ cache_read_input_tokens: 4, cache_creation_input_tokens: 2 });
    const expected = (u.input_tokens * PRICE.input + 4 * PRICE.cached_input + 2 * PRICE.cache_write + u.output_tokens * PRICE.output) / 1e6;
    expect(Number(r.headers['x-promptmesh-cost-usd'])).toBeCloseTo(expected, 12);
    expect(metricValue(await metrics(), 'promptmesh_llm_cost_usd_total', { provider: 'claude-a', model: 'claude-x' })).toBeCloseTo(expected, 12);
  });

  it('falls back to the next Anthropic target before the first event, and streams its raw events', async () => {
    fake.setBehavior({ rules: [{ model: 'claude-x', fault: { type: 'status', status: 529 } }] });
    const r = await messages({ model: 'claude', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi there' }] });
    expect(r.status).toBe(200);
    expect(r.headers['x-promptmesh-provider']).toBe('claude-b');
    const events = r.text.split('\n\n').filter(Boolean).map((e) => e.split('\n')[0]);
    expect(events[0]).toBe('event: message_start');
    expect(events).toContain('event: ping');
    expect(events.at(-1)).toBe('event: message_stop');
    expect(r.text).toContain('"model":"claude-y"');
    expect(metricValue(await metrics(), 'gen_ai_client_operation_duration_seconds_count', { provider: 'claude-a', model: 'claude-x', outcome: 'overloaded' })).toBeGreaterThan(0);
  });

  it('translates when another type may answer: what it cannot carry is a 400 in Anthropic shape, before any call', async () => {
    const before = fake.stats.requests;
    const r = await messages({ model: 'mixed', max_tokens: 50, top_k: 3, messages: [{ role: 'user', content: 'x' }] });
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('top_k') } });
    expect(fake.stats.requests).toBe(before);
    // An Anthropic provider of a mixed model still gets the body as sent.
    const ok = await messages({ model: 'mixed', max_tokens: 50, metadata: { user_id: 'u' }, messages: [{ role: 'user', content: 'x' }] });
    expect(ok.headers['x-promptmesh-passthrough']).toBe('true');
    expect(fake.requests.at(-1)!.body).toEqual({ model: 'claude-x', max_tokens: 50, metadata: { user_id: 'u' }, messages: [{ role: 'user', content: 'x' }] });
    // The OpenAI provider alone: translated.
    const gpt = await messages({ model: 'gpt-x', max_tokens: 50, messages: [{ role: 'user', content: 'x' }] });
    expect(gpt.headers['x-promptmesh-passthrough']).toBe('false');
    expect(gpt.json).toMatchObject({ type: 'message', content: [{ type: 'text', text: 'echo: x' }] });
  });

  it('answers bad bodies and headers with a 400 naming the field, in Anthropic shape', async () => {
    const noMax = await messages({ model: 'claude', messages: [{ role: 'user', content: 'x' }] });
    expect(noMax.status).toBe(400);
    expect(noMax.json.error.message).toContain('max_tokens');
    const beta = await messages({ model: 'claude', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, { 'anthropic-beta': 'bad beta!' });
    expect(beta.status).toBe(400);
    expect(beta.json.error.message).toContain('anthropic-beta');
    const unknown = await messages({ model: 'nope', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.type).toBe('not_found_error');
  });

  it('carries thinking signatures through Bedrock: answered with them, sent back unchanged, refused without', async () => {
    fake.setBehavior({ rules: [{ times: 1, reply: { toolCall: { name: 'weather', arguments: { city: 'Oslo' } } } }] });
    const tools = [{ name: 'weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }];
    const base = { model: BEDROCK_CLAUDE, max_tokens: 30_000, thinking: { type: 'enabled', budget_tokens: 2_000 }, tools };
    const question = { role: 'user', content: 'weather in Oslo?' };
    const first = await messages({ ...base, messages: [question] });
    expect(first.status).toBe(200);
    expect(first.headers['x-promptmesh-passthrough']).toBe('false');
    const text = 'Thinking about: weather in Oslo?';
    expect(first.json.content.map((b: { type: string }) => b.type)).toEqual(['thinking', 'tool_use']);
    expect(first.json.content[0]).toEqual({ type: 'thinking', thinking: text, signature: thinkingSignature(text) });
    const result = { role: 'user', content: [{ type: 'tool_result', tool_use_id: first.json.content[1].id, content: 'sunny' }] };

    // Streamed: the thinking block with its signature_delta, then the next answer.
    const next = await messages({ ...base, stream: true, messages: [question, { role: 'assistant', content: first.json.content }, result] });
    expect(next.status).toBe(200);
    const deltas = next.text
      .split('\n\n')
      .filter((e) => e.startsWith('event: content_block_delta'))
      .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)).delta);
    const thought = deltas.filter((d) => d.type === 'thinking_delta').map((d) => d.thinking).join('');
    expect(thought).toMatch(/^Thinking about:/);
    expect(deltas.filter((d) => d.type === 'signature_delta')).toEqual([{ type: 'signature_delta', signature: thinkingSignature(thought) }]);
    expect((fake.requests.at(-1)!.body as any).messages[1].content[0]).toEqual({ reasoningContent: { reasoningText: { text, signature: thinkingSignature(text) } } });

    const { signature: _s, ...unsigned } = first.json.content[0];
    const refused = await messages({ ...base, messages: [question, { role: 'assistant', content: [unsigned, first.json.content[1]] }, result] });
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(/must start with a thinking block/) } });
  });
});
