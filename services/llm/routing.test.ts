import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from '../../test/fake-provider/server';
import { LatencyTracker, orderCandidates, type Candidate } from './routing';
import { ask, chat, fakeOpenAi, startLlm, type TestLlm } from '../../test/support/llm-service';

let fa: FakeProvider;
let fb: FakeProvider;
const running: TestLlm[] = [];

beforeAll(async () => {
  fa = await startFakeProvider({ recordRequests: 0 });
  fb = await startFakeProvider({ recordRequests: 0 });
});
afterEach(async () => {
  while (running.length) await running.pop()!.close();
  fa.reset();
  fb.reset();
});
afterAll(async () => {
  await fa.close();
  await fb.close();
});

async function llm(doc: Record<string, unknown>) {
  const s = await startLlm({ providers: [fakeOpenAi('a', fa.url), fakeOpenAi('b', fb.url)], ...doc });
  running.push(s);
  return s;
}

/** Runs `n` requests through the core, `concurrency` at a time; counts answers per provider. */
async function spread(s: TestLlm, model: string, n: number, concurrency = 16) {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const r = await s.core.complete(ask(model));
        counts[r.provider] = (counts[r.provider] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

describe('routing over the fake provider', () => {
  it('holds weights within 5% over 2000 requests (weighted)', async () => {
    const s = await llm({
      models: { chat: [{ provider: 'a', model: 'gpt-4o-mini', weight: 70 }, { provider: 'b', model: 'gpt-4o-mini', weight: 30 }] },
      cache: { enabled: false },
    });
    const counts = await spread(s, 'chat', 2000);
    expect((counts.a ?? 0) + (counts.b ?? 0)).toBe(2000);
    expect(counts.a! / 2000).toBeGreaterThan(0.65);
    expect(counts.a! / 2000).toBeLessThan(0.75);
    // The providers really served them, over their sockets.
    expect(fa.stats.requests).toBe(counts.a);
    expect(fb.stats.requests).toBe(counts.b);
  });

  it('priority sends everything to the first target and falls back in order', async () => {
    const s = await llm({
      models: { chat: [{ provider: 'a', model: 'gpt-4o-mini' }, { provider: 'b', model: 'gpt-4o-mini' }] },
      routing: { strategy: 'priority', retries: { attempts: 0 } },
    });
    expect(await spread(s, 'chat', 20, 4)).toEqual({ a: 20 });
    fa.setBehavior({ rules: [{ fault: { type: 'status', status: 500 } }] });
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(200);
    expect(r.headers['x-promptmesh-provider']).toBe('b');
  });

  it('cheapest picks the lowest price from the table', async () => {
    const s = await llm({
      providers: [
        fakeOpenAi('a', fa.url, { prices: { 'gpt-4o': { input: 2.5, output: 10 } } }),
        fakeOpenAi('b', fb.url, { prices: { 'gpt-4o-mini': { input: 0.15, output: 0.6 } } }),
      ],
      models: { chat: [{ provider: 'a', model: 'gpt-4o' }, { provider: 'b', model: 'gpt-4o-mini' }] },
      routing: { strategy: 'cheapest' },
    });
    expect(await spread(s, 'chat', 10, 2)).toEqual({ b: 10 });
  });

  it('least-latency learns which provider is faster', async () => {
    fa.setBehavior({ rules: [{ latencyMs: 40 }] });
    const s = await llm({
      models: { chat: [{ provider: 'a', model: 'gpt-4o-mini' }, { provider: 'b', model: 'gpt-4o-mini' }] },
      routing: { strategy: 'least-latency' },
    });
    const counts = await spread(s, 'chat', 30, 1);
    expect(counts.b).toBeGreaterThanOrEqual(28); // a is measured once, then b wins
    const a = s.core.providers().find((p) => p.name === 'a')!;
    const b = s.core.providers().find((p) => p.name === 'b')!;
    expect(a.latencyMs['gpt-4o-mini']).toBeGreaterThan(b.latencyMs['gpt-4o-mini']!);
  });

  it('routes a provider model name that is no alias to the provider listing it', async () => {
    const s = await llm({
      providers: [fakeOpenAi('a', fa.url, { models: ['gpt-4o-mini'] }), fakeOpenAi('b', fb.url, { prices: { 'claude-haiku-4-5': { input: 1, output: 5 } } })],
      models: {},
    });
    const r1 = await chat(s.url, ask('claude-haiku-4-5'));
    expect(r1.status).toBe(200);
    expect(r1.headers['x-promptmesh-provider']).toBe('b');
    expect(r1.json.model).toBe('claude-haiku-4-5');
    const r2 = await chat(s.url, ask('gpt-4o-mini'));
    expect(r2.headers['x-promptmesh-provider']).toBe('a');
    const unknown = await chat(s.url, ask('gpt-5-ultra'));
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatchObject({ param: 'model', code: 'model_not_found' });
    expect(unknown.json.error.message).toContain('gpt-5-ultra');
  });
});

describe('orderCandidates', () => {
  const c = (provider: string, weight: number): Candidate => ({
    provider,
    model: 'm',
    weight,
    config: { name: provider, type: 'openai', baseUrl: 'http://x', timeoutMs: 1, connectTimeoutMs: 1, firstByteTimeoutMs: 1 },
  });

  it('puts zero-weight targets last as pure fallbacks', () => {
    const latency = new LatencyTracker();
    for (let i = 0; i < 50; i++) {
      const order = orderCandidates([c('spare', 0), c('x', 1), c('y', 3)], 'weighted', latency);
      expect(order.at(-1)!.provider).toBe('spare');
      expect(order).toHaveLength(3);
    }
  });
});
