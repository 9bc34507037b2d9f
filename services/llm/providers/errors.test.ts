// Every way a provider call can fail, produced by the fake provider over real sockets, and the
// ProviderError kind each network adapter turns it into.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/support/net';
import { fakeProviderConfig } from '../../../test/fake-provider/provider-config';
import { startFakeProvider, type Fault, type FakeProvider } from '../../../test/fake-provider/server';
import { ProviderError, type ProviderAdapter, type ProviderConfig } from '../types';
import type { ChatCompletionChunk, ChatRequest } from '../../openai';
import { createAnthropicAdapter } from './anthropic';
import { createOpenAIAdapter } from './openai';

let fake: FakeProvider;
const adapters: Record<string, ProviderAdapter> = {};

beforeAll(async () => {
  fake = await startFakeProvider({ apiKey: 'sk-secret-key', anthropicApiKey: 'ak-secret-key' });
  adapters.openai = createOpenAIAdapter({ type: 'openai' });
  adapters['openai-compatible'] = createOpenAIAdapter({ type: 'openai-compatible' });
  adapters.anthropic = createAnthropicAdapter();
});
afterAll(async () => {
  await Promise.all(Object.values(adapters).map((a) => a.close?.()));
  await fake.close();
});
afterEach(() => fake.reset());

const request: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'one two three four five six' }] };

async function drain(it: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

/** The ProviderError a promise rejects with (fails the test if it resolves or throws something else). */
async function failure(p: Promise<unknown>): Promise<ProviderError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof ProviderError)) throw new Error(`expected a ProviderError, got ${String(err)}`);
  return err;
}

describe.each(['openai', 'openai-compatible', 'anthropic'] as const)('%s adapter errors', (type) => {
  let provider: ProviderConfig;
  let adapter: ProviderAdapter;
  beforeAll(() => {
    adapter = adapters[type];
    provider = fakeProviderConfig(fake, type, { apiKey: type === 'anthropic' ? 'ak-secret-key' : 'sk-secret-key', firstByteTimeoutMs: 400, idleTimeoutMs: 400 });
  });

  const plan = (fault: Fault) => fake.setBehavior({ rules: [{ fault }] });

  it.each([
    [429, 'rate_limited'],
    [500, 'server'],
    [502, 'server'],
    [504, 'server'],
    [503, 'overloaded'],
    [529, 'overloaded'],
    [400, 'bad_request'],
    [404, 'bad_request'],
    [422, 'bad_request'],
    [401, 'auth'],
    [403, 'auth'],
  ] as const)('HTTP %i -> %s, plain and streaming', async (status, kind) => {
    plan({ type: 'status', status, message: `upstream says ${status}` });
    for (const call of [adapter.complete(provider, request, {}), adapter.stream(provider, request, {})]) {
      const err = await failure(call);
      expect(err).toMatchObject({ kind, status });
      expect(err.retryable).toBe(kind !== 'bad_request' && kind !== 'auth');
      expect(err.message).toContain(`upstream says ${status}`);
      expect(err.message).toContain(provider.name);
      expect(err.message).not.toContain('secret-key');
    }
  });

  it('reads Retry-After as seconds, as an HTTP date, and retry-after-ms', async () => {
    plan({ type: 'status', status: 429, retryAfter: 2 });
    expect(await failure(adapter.complete(provider, request, {}))).toMatchObject({ kind: 'rate_limited', retryAfterMs: 2000 });
    plan({ type: 'status', status: 429, retryAfter: 1, retryAfterMs: 1500 });
    expect(await failure(adapter.stream(provider, request, {}))).toMatchObject({ retryAfterMs: 1500 });
    plan({ type: 'status', status: 503, retryAfter: new Date(Date.now() + 30_000).toUTCString() });
    const err = await failure(adapter.complete(provider, request, {}));
    expect(err.kind).toBe('overloaded');
    expect(err.retryAfterMs).toBeGreaterThan(25_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(30_000);
    plan({ type: 'status', status: 429 });
    expect((await failure(adapter.complete(provider, request, {}))).retryAfterMs).toBeUndefined();
  });

  it('a wrong key is auth', async () => {
    const err = await failure(adapter.complete({ ...provider, apiKey: 'wrong' }, request, {}));
    expect(err).toMatchObject({ kind: 'auth', status: 401 });
  });

  it('a reset before the headers is connection', async () => {
    plan({ type: 'reset' });
    expect(await failure(adapter.complete(provider, request, {}))).toMatchObject({ kind: 'connection' });
    expect(await failure(adapter.stream(provider, request, {}))).toMatchObject({ kind: 'connection' });
  });

  it('a reset after the headers is connection: from complete, and from the stream iterator', async () => {
    plan({ type: 'reset', afterHeaders: true });
    expect(await failure(adapter.complete(provider, request, {}))).toMatchObject({ kind: 'connection' });
    const stream = await adapter.stream(provider, request, {});
    expect(await failure(drain(stream))).toMatchObject({ kind: 'connection' });
  });

  it('no headers within firstByteTimeoutMs is timeout', async () => {
    plan({ type: 'stall' });
    expect(await failure(adapter.complete(provider, request, {}))).toMatchObject({ kind: 'timeout' });
    plan({ type: 'stall', beforeHeaders: true });
    expect(await failure(adapter.stream(provider, request, {}))).toMatchObject({ kind: 'timeout' });
  });

  it('a stream that stalls halfway throws timeout from the iterator, after the chunks it got', async () => {
    plan({ type: 'stall', afterChunks: 2 });
    const stream = await adapter.stream(provider, request, {});
    const got: string[] = [];
    const err = await failure(
      (async () => {
        for await (const c of stream) got.push(c.choices[0]?.delta.content ?? '');
      })(),
    );
    expect(err.kind).toBe('timeout');
    expect(err.message).toMatch(/stalled/);
    expect(got.join('')).toBe('echo: one');
  });

  it('a body that stalls halfway is timeout', async () => {
    plan({ type: 'stall', beforeHeaders: false });
    expect(await failure(adapter.complete(provider, request, {}))).toMatchObject({ kind: 'timeout' });
  });

  it('a body that does not parse is malformed, plain and mid-stream', async () => {
    plan({ type: 'malformed' });
    expect(await failure(adapter.complete(provider, request, {}))).toMatchObject({ kind: 'malformed' });
    const stream = await adapter.stream(provider, request, {});
    expect(await failure(drain(stream))).toMatchObject({ kind: 'malformed' });
  });

  it('an error event mid-stream is thrown from the iterator with its kind', async () => {
    plan({ type: 'error_event', afterChunks: 1 });
    const stream = await adapter.stream(provider, request, {});
    const got: string[] = [];
    const err = await failure(
      (async () => {
        for await (const c of stream) got.push(c.choices[0]?.delta.content ?? '');
      })(),
    );
    expect(err.kind).toBe(type === 'anthropic' ? 'overloaded' : 'server');
    expect(err.retryable).toBe(true);
    expect(got.join('')).toBe('echo:');
  });

  it('a refused connection is connection', async () => {
    const port = await freePort();
    const closed = { ...provider, baseUrl: `http://127.0.0.1:${port}${type === 'anthropic' ? '' : '/v1'}` };
    expect(await failure(adapter.complete(closed, request, {}))).toMatchObject({ kind: 'connection' });
    expect(await failure(adapter.stream(closed, request, {}))).toMatchObject({ kind: 'connection' });
  });

  it("the caller's signal bounds the whole call: timeout, before or during the stream", async () => {
    fake.setBehavior({ rules: [{ latencyMs: 3_000 }] });
    const slow = { ...provider, firstByteTimeoutMs: 10_000 };
    const err = await failure(adapter.complete(slow, request, { signal: AbortSignal.timeout(150) }));
    expect(err).toMatchObject({ kind: 'timeout' });
    expect(err.message).toMatch(/total timeout/);
    const aborted = new AbortController();
    aborted.abort();
    expect(await failure(adapter.stream(slow, request, { signal: aborted.signal }))).toMatchObject({ kind: 'timeout' });

    fake.setBehavior({ reply: { tokens: 200, tokenDelayMs: 20 } });
    const ac = new AbortController();
    const stream = await adapter.stream(slow, request, { signal: ac.signal });
    let n = 0;
    const reading = failure(
      (async () => {
        for await (const _ of stream) if (++n === 3) ac.abort();
      })(),
    );
    expect(await reading).toMatchObject({ kind: 'timeout' });
    expect(n).toBeLessThan(50);
  });

  it('stays usable after failures (the pool recovers)', async () => {
    plan({ type: 'reset', afterHeaders: true });
    await failure(adapter.complete(provider, request, {}));
    fake.reset();
    const res = await adapter.complete(provider, request, {});
    expect(res.choices[0].message.content).toBe('echo: one two three four five six');
  });
});

describe('connect timeout', () => {
  it('a connection the server never accepts is timeout after connectTimeoutMs', async () => {
    // A listener with a zero backlog that never accepts: once one connection fills its queue,
    // the kernel drops further SYNs and connecting hangs (node cannot listen without accepting).
    const listener = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(0)\nprint(s.getsockname()[1], flush=True)\nsys.stdin.read()'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    try {
      const [line] = (await once(listener.stdout!, 'data')) as [Buffer];
      const port = Number(line.toString().trim());
      const filler = connect(port, '127.0.0.1');
      await once(filler, 'connect');
      const provider = fakeProviderConfig(fake, 'openai', { baseUrl: `http://127.0.0.1:${port}/v1`, connectTimeoutMs: 300 });
      const err = await failure(adapters.openai.complete(provider, request, {}));
      expect(err).toMatchObject({ kind: 'timeout' });
      expect(err.message).toMatch(/connect timeout/);
      filler.destroy();
    } finally {
      listener.kill();
    }
  });
});
