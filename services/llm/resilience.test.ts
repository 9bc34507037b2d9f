import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider, type BehaviorPlan } from '../../test/fake-provider/server';
import { waitFor } from '../../test/support/net';
import { ask, chat, fakeOpenAi, metricValue, ssePayloads, startLlm, type TestLlm } from '../../test/support/llm-service';

let fa: FakeProvider;
let fb: FakeProvider;
const running: TestLlm[] = [];

beforeAll(async () => {
  fa = await startFakeProvider();
  fb = await startFakeProvider();
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

const BOTH = { chat: [{ provider: 'a', model: 'gpt-4o-mini' }, { provider: 'b', model: 'gpt-4o-mini' }] };
const A_ONLY = { chat: [{ provider: 'a', model: 'gpt-4o-mini' }] };

async function llm(models: Record<string, unknown>, routing: Record<string, unknown> = {}, providerExtra: Record<string, unknown> = {}) {
  const s = await startLlm({
    providers: [fakeOpenAi('a', fa.url, providerExtra), fakeOpenAi('b', fb.url)],
    models,
    routing: { strategy: 'priority', retries: { attempts: 2, backoffMs: 5 }, ...routing },
  });
  running.push(s);
  return s;
}

function planA(plan: BehaviorPlan) {
  fa.setBehavior(plan);
}

describe('retries per failure kind (one provider)', () => {
  it('retries a 500 and succeeds', async () => {
    planA({ rules: [{ times: 2, fault: { type: 'status', status: 500 } }] });
    const s = await llm(A_ONLY);
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(200);
    expect(fa.stats.requests).toBe(3);
  });

  it('does not retry a 400, and answers 400 without trying others', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 400, message: 'bad things' } }] });
    const s = await llm(BOTH);
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(400);
    expect(r.json.error.message).toContain('bad things');
    expect(fa.stats.requests).toBe(1);
    expect(fb.stats.requests).toBe(0);
  });

  it('honours a short Retry-After by waiting, then retries the same provider', async () => {
    planA({ rules: [{ times: 1, fault: { type: 'status', status: 429, retryAfter: 1 } }] });
    const s = await llm(BOTH, { retries: { attempts: 2, backoffMs: 5, maxRetryAfterMs: 2000 } });
    const started = Date.now();
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(200);
    expect(r.headers['x-promptmesh-provider']).toBe('a');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(fa.stats.requests).toBe(2);
    expect(fb.stats.requests).toBe(0);
  });

  it('moves on to the next candidate when Retry-After is longer than the cap', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 429, retryAfter: 30 } }] });
    const s = await llm(BOTH, { retries: { attempts: 2, backoffMs: 5, maxRetryAfterMs: 1000 } });
    const started = Date.now();
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(200);
    expect(r.headers['x-promptmesh-provider']).toBe('b');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(fa.stats.requests).toBe(1);
  });

  it('answers 429 with Retry-After when every provider is rate limited', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 429, retryAfter: 30 } }] });
    fb.setBehavior({ rules: [{ fault: { type: 'status', status: 429, retryAfter: 20 } }] });
    const s = await llm(BOTH, { retries: { attempts: 1, maxRetryAfterMs: 1000 } });
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(429);
    expect(r.headers['retry-after']).toBe('20');
    expect(r.json.error.message).toMatch(/a: rate_limited.*b: rate_limited/);
  });

  it.each([
    ['reset', { type: 'reset' }],
    ['malformed', { type: 'malformed' }],
    ['503', { type: 'status', status: 503 }],
  ] as const)('retries after %s', async (_name, fault) => {
    planA({ rules: [{ times: 1, fault: fault as any }] });
    const s = await llm(A_ONLY);
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(200);
    expect(fa.stats.requests).toBe(2);
  });

  it('times out a stalled provider and falls back without retrying it', async () => {
    planA({ rules: [{ fault: { type: 'stall' } }] });
    const s = await llm(BOTH, {}, { timeoutMs: 300 });
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(200);
    expect(r.headers['x-promptmesh-provider']).toBe('b');
    expect(fa.stats.requests).toBe(1);
  });

  it('answers 502 naming every provider and the last error when all fail', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 500, message: 'a is broken' } }] });
    fb.setBehavior({ rules: [{ fault: { type: 'status', status: 502, message: 'b is broken' } }] });
    const s = await llm(BOTH, { retries: { attempts: 1, backoffMs: 1 } });
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('providers_failed');
    expect(r.json.error.message).toContain('a: server (500)');
    expect(r.json.error.message).toContain('b: server (502)');
    expect(r.json.error.message).toContain('b is broken');
    expect(fa.stats.requests).toBe(2);
    expect(fb.stats.requests).toBe(2);
  });

  it('does not fall back when fallback is off', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 500 } }] });
    const s = await llm(BOTH, { fallback: false, retries: { attempts: 0 } });
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(502);
    expect(fb.stats.requests).toBe(0);
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, skips the provider, half-opens, and closes on a good probe', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 500 } }] });
    const s = await llm(BOTH, { retries: { attempts: 0 }, breaker: { failures: 3, cooldownMs: 400 } });
    for (let i = 0; i < 3; i++) expect((await chat(s.url, ask('chat'))).headers['x-promptmesh-provider']).toBe('b');
    expect(fa.stats.requests).toBe(3);

    const providers = async () => (await (await request(`${s.url}/v1/providers`)).body.json()) as any;
    const metric = async () => metricValue(await (await request(`${s.url}/metrics`)).body.text(), 'promptmesh_circuit_state', { provider: 'a' });
    expect((await providers()).data.find((p: any) => p.name === 'a').circuit).toMatchObject({ state: 'open', opens: 1 });
    expect(await metric()).toBe(2);
    expect(await metricValue(await (await request(`${s.url}/metrics`)).body.text(), 'promptmesh_circuit_state', { provider: 'b' })).toBe(0);

    // Open: a is skipped at once.
    for (let i = 0; i < 5; i++) expect((await chat(s.url, ask('chat'))).status).toBe(200);
    expect(fa.stats.requests).toBe(3);

    await waitFor(async () => (await providers()).data.find((p: any) => p.name === 'a').circuit.state === 'half-open', 5_000, 'half-open');
    expect(await metric()).toBe(1);

    // A failing probe re-opens it.
    expect((await chat(s.url, ask('chat'))).headers['x-promptmesh-provider']).toBe('b');
    expect(fa.stats.requests).toBe(4);
    expect((await providers()).data.find((p: any) => p.name === 'a').circuit.state).toBe('open');

    // The provider recovers; the next probe closes the circuit.
    fa.setBehavior({});
    await waitFor(async () => (await providers()).data.find((p: any) => p.name === 'a').circuit.state === 'half-open', 5_000, 'half-open again');
    const probe = await chat(s.url, ask('chat'));
    expect(probe.headers['x-promptmesh-provider']).toBe('a');
    expect((await providers()).data.find((p: any) => p.name === 'a').circuit.state).toBe('closed');
    expect(await metric()).toBe(0);
  });

  it('with slowCallMs, opens on calls that hang instead of waiting for their timeouts', async () => {
    planA({ rules: [{ fault: { type: 'stall' } }] });
    const s = await llm(BOTH, { retries: { attempts: 0 }, breaker: { failures: 2, slowCallMs: 150 } }, { timeoutMs: 4_000 });
    const hanging = [s.core.complete(ask('chat', 'h1')), s.core.complete(ask('chat', 'h2'))];
    await waitFor(() => fa.stats.inFlight === 2, 5_000, 'two calls hanging on a');
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const r = await s.core.complete(ask('chat', 'next'));
    expect(r.provider).toBe('b');
    expect(Date.now() - started).toBeLessThan(3_000); // without the breaker: a's 4 s timeout, then b
    expect(s.core.providers().find((p) => p.name === 'a')!.circuit.state).toBe('open');
    expect(fa.stats.requests).toBe(2);
    // The two hanging calls time out and fall back to b.
    for (const result of await Promise.all(hanging)) expect(result.provider).toBe('b');
  });

  it('answers 503 naming the open circuits when no provider is left', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 500 } }] });
    const s = await llm(A_ONLY, { retries: { attempts: 0 }, breaker: { failures: 2, cooldownMs: 60_000 } });
    expect((await chat(s.url, ask('chat'))).status).toBe(502);
    expect((await chat(s.url, ask('chat'))).status).toBe(502);
    const r = await chat(s.url, ask('chat'));
    expect(r.status).toBe(503);
    expect(r.json.error.message).toContain('a: circuit open');
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(fa.stats.requests).toBe(2);
  });
});

describe('streams', () => {
  it('falls back before the first byte', async () => {
    planA({ rules: [{ fault: { type: 'status', status: 500 } }] });
    const s = await llm(BOTH, { retries: { attempts: 0 } });
    const r = await chat(s.url, ask('chat', 'stream me', { stream: true }));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('text/event-stream');
    expect(r.headers['x-promptmesh-provider']).toBe('b');
    const data = ssePayloads(r.text);
    expect(data.at(-1)).toBe('[DONE]');
    const text = data.slice(0, -1).map((d) => JSON.parse(d).choices[0]?.delta?.content ?? '').join('');
    expect(text).toBe('echo: stream me');
  });

  it('does not fall back after the first chunk: the stream ends with an error event and no [DONE]', async () => {
    planA({ rules: [{ fault: { type: 'reset', afterHeaders: true } }] });
    const s = await llm(BOTH, { retries: { attempts: 0 } });
    const r = await chat(s.url, ask('chat', 'one two three four five six', { stream: true }));
    expect(r.status).toBe(200);
    const data = ssePayloads(r.text);
    expect(data).not.toContain('[DONE]');
    const last = JSON.parse(data.at(-1)!);
    expect(last.error.code).toBe('stream_interrupted');
    expect(last.error.message).toContain('provider a failed mid-stream');
    expect(fb.stats.requests).toBe(0);
  });

  it('passes usage (with cost) last when the client asks for it', async () => {
    const s = await startLlm({
      providers: [fakeOpenAi('a', fa.url, { prices: { 'gpt-4o-mini': { input: 1, output: 2 } } })],
      models: A_ONLY,
    });
    running.push(s);
    const r = await chat(s.url, ask('chat', 'count these words', { stream: true, stream_options: { include_usage: true } }));
    const events = ssePayloads(r.text).slice(0, -1).map((d) => JSON.parse(d));
    const usage = events.at(-1).usage;
    expect(events.at(-1).choices).toEqual([]);
    expect(usage.prompt_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBe(4);
    expect(usage.cost_usd).toBeCloseTo((usage.prompt_tokens * 1 + usage.completion_tokens * 2) / 1e6, 12);
    expect(events.slice(0, -1).every((e) => !e.usage)).toBe(true);
  });
});

describe('giving up', () => {
  const inFlight = (s: TestLlm) => s.core.providers().find((p) => p.name === 'a')!.inFlight;

  it('releases the provider slot when a stream is dropped before or during consumption', async () => {
    fa.setBehavior({ reply: { tokens: 50, tokenDelayMs: 5 } });
    const s = await llm(A_ONLY, {}, { limits: { concurrency: 1 } });
    const unread = await s.core.stream(ask('chat', 'x', { stream: true }));
    expect(inFlight(s)).toBe(1);
    await unread.chunks[Symbol.asyncIterator]().return!();
    expect(inFlight(s)).toBe(0);

    const partly = await s.core.stream(ask('chat', 'y', { stream: true }));
    const it = partly.chunks[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    await it.return!();
    expect(inFlight(s)).toBe(0);
    // The slot is free again: the cap of 1 lets the next call through.
    expect((await s.core.complete(ask('chat'))).provider).toBe('a');
    expect(s.core.providers().find((p) => p.name === 'a')!.circuit.consecutiveFailures).toBe(0);
  });

  it('stops the upstream stream when the HTTP client disconnects mid-stream', async () => {
    fa.setBehavior({ reply: { tokens: 2000, tokenDelayMs: 10 } }); // 20 s if nobody stops it
    const s = await llm(A_ONLY);
    const controller = new AbortController();
    const res = await request(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ask('chat', 'long', { stream: true })),
      signal: controller.signal,
    });
    expect(res.statusCode).toBe(200);
    for await (const _chunk of res.body) break; // the first bytes arrived
    controller.abort();
    await waitFor(() => inFlight(s) === 0, 3_000, 'slot released');
    await waitFor(() => fa.stats.inFlight === 0, 3_000, 'upstream call closed');
    expect(s.core.providers().find((p) => p.name === 'a')!.circuit.consecutiveFailures).toBe(0);
  });

  it('stops waiting when the caller aborts, without counting it against the provider', async () => {
    fa.setBehavior({ rules: [{ latencyMs: 2_000 }] });
    const s = await llm(A_ONLY);
    const controller = new AbortController();
    const pending = s.core.complete(ask('chat'), { signal: controller.signal });
    await waitFor(() => inFlight(s) === 1, 5_000, 'call in flight');
    controller.abort();
    await expect(pending).rejects.toMatchObject({ statusCode: 499 });
    expect(inFlight(s)).toBe(0);
    expect(s.core.providers().find((p) => p.name === 'a')!.circuit.consecutiveFailures).toBe(0);
  });
});
