/**
 * The end-to-end suite, run against both layouts (all-in-one.test.ts, mesh.test.ts) with the
 * official `openai` SDK as the client. Tests run in order and share one layout; the last one
 * stops the router.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADERS } from '../../contracts';
import { waitFor } from '../support/net';
import { KEYS, type Layout } from './support';
import { defineToolAndStreamCases } from './tools-and-streams.suite';
import { defineEmbeddingsAndResponsesCases } from './embeddings-responses.suite';
import { defineMessagesCases } from './messages.suite';

/** Calls the router's HTTP API directly (for the admin API and raw checks). */
export async function call(
  layout: Pick<Layout, 'url'>,
  method: string,
  path: string,
  options: { key?: string | null; body?: unknown } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const key = options.key === undefined ? KEYS.admin : options.key;
  const res = await fetch(`${layout.url}${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, headers: res.headers, body };
}

/** The refund of a reservation lands just after the answer: retry a call briefly until it does. */
async function waitForRefund(attempt: () => Promise<{ status: number }>): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const { status } = await attempt();
    if (status === 200 || Date.now() > deadline) {
      expect(status).toBe(200);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function client(layout: Layout, key: string = KEYS.admin): OpenAI {
  return new OpenAI({ baseURL: `${layout.url}/v1`, apiKey: key, maxRetries: 0, timeout: 30_000 });
}

/** A chat completions body with promptmesh's extension fields (not in the SDK's types). */
type Extended = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming & { prompt?: unknown; session_id?: string };

function lastUserText(messages: Array<{ role: string; content: unknown }>): string {
  return String([...messages].reverse().find((m) => m.role === 'user')?.content ?? '');
}

export function defineSuite(label: string, start: () => Promise<Layout>): void {
  describe(`end to end: ${label}`, () => {
    let layout: Layout;
    let sdk: OpenAI;
    beforeAll(async () => {
      layout = await start();
      sdk = client(layout);
    }, 120_000);
    afterAll(async () => {
      await layout?.close();
    }, 60_000);

    const upstreamMessages = () => {
      const req = layout.fake.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1);
      return (req?.body as { messages: Array<{ role: string; content: string }> }).messages;
    };

    it('answers a plain completion with the promptmesh headers', async () => {
      const { data, response } = await sdk.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'hello there' }] }).withResponse();
      expect(data.object).toBe('chat.completion');
      expect(data.choices[0]!.message.content).toContain('hello there');
      expect(data.usage!.total_tokens).toBeGreaterThan(0);
      expect(response.headers.get(HEADERS.provider)).toBe('fake-a');
      expect(response.headers.get(HEADERS.model)).toBe('model-a');
      expect(response.headers.get(HEADERS.cache)).toBe('miss');
      expect(response.headers.get(HEADERS.promptVersion)).toBeNull();
      // A deterministic request is answered from the llm cache the second time.
      const deterministic = { model: 'chat', temperature: 0, messages: [{ role: 'user' as const, content: `cache me ${layout.name}` }] };
      const first = await sdk.chat.completions.create(deterministic).withResponse();
      const second = await sdk.chat.completions.create(deterministic).withResponse();
      expect(first.response.headers.get(HEADERS.cache)).toBe('miss');
      expect(second.response.headers.get(HEADERS.cache)).toBe('hit');
      expect(second.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content);
    });

    it('streams a completion as SSE ending in [DONE]', async () => {
      const { data: stream, response } = await sdk.chat.completions
        .create({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'stream me please' }] })
        .withResponse();
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      expect(response.headers.get(HEADERS.provider)).toBe('fake-a');
      let text = '';
      let chunks = 0;
      for await (const chunk of stream) {
        chunks++;
        text += chunk.choices[0]?.delta?.content ?? '';
      }
      expect(chunks).toBeGreaterThan(1);
      expect(text).toContain('stream me please');
      // The raw wire format ends with [DONE].
      const raw = await fetch(`${layout.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'raw' }] }),
      });
      expect((await raw.text()).trimEnd().endsWith('data: [DONE]')).toBe(true);
    });

    it('carries the client trace id through to the provider', async () => {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const r = await fetch(`${layout.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
        body: JSON.stringify({ model: 'chat', messages: [{ role: 'user', content: 'traced' }] }),
      });
      expect(r.status).toBe(200);
      const req = layout.fake.requests.filter((x) => x.path.endsWith('/chat/completions')).at(-1)!;
      expect(String(req.headers.traceparent)).toContain(traceId);
    });

    it('lists models', async () => {
      const ids: string[] = [];
      for await (const m of sdk.models.list()) ids.push(m.id);
      expect(ids).toEqual(expect.arrayContaining(['chat', 'model-a', 'model-b']));
    });

    it('rejects bad input with a 400 naming the field', async () => {
      const err = await sdk.chat.completions
        .create({ model: 'chat', messages: [{ role: 'user', content: 'a' }, { role: 'robot' as 'user', content: 'b' }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages[1].role');
      const r = await call(layout, 'POST', '/v1/chat/completions', { body: { model: 'chat', prompt: { name: 'x', variables: 'nope' } } });
      expect(r.status).toBe(400);
      expect(r.body.error.param).toBe('prompt.variables');
      const notJson = await fetch(`${layout.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json' },
        body: '{"model": ',
      });
      expect(notJson.status).toBe(400);
    });

    it('renders a prompt with variables, and lists every missing variable', async () => {
      const created = await call(layout, 'POST', '/v1/templates', {
        body: {
          name: 'e2e-greeting',
          type: 'chat',
          template: [
            { role: 'system', content: 'You greet {{name}} in {{language}}.' },
            { role: 'user', content: 'Say hello to {{name}}.' },
          ],
        },
      });
      expect(created.status).toBe(201);
      const body: Extended = { model: 'chat', messages: [], prompt: { name: 'e2e-greeting', variables: { name: 'Ada', language: 'French' } } };
      delete (body as Partial<Extended>).messages;
      const { data, response } = await waitForPrompt(() => sdk.chat.completions.create(body as never).withResponse());
      expect(response.headers.get(HEADERS.promptVersion)).toBe('1');
      expect(data.choices[0]!.message.content).toContain('Say hello to Ada.');
      expect(upstreamMessages()).toEqual([
        { role: 'system', content: 'You greet Ada in French.' },
        { role: 'user', content: 'Say hello to Ada.' },
      ]);
      const missing = await call(layout, 'POST', '/v1/chat/completions', { body: { model: 'chat', prompt: { name: 'e2e-greeting', variables: {} } } });
      expect(missing.status).toBe(400);
      expect(missing.body.error.param).toBe('prompt.variables');
      expect(missing.body.error.message).toContain('language');
      expect(missing.body.error.message).toContain('name');
      const unknown = await call(layout, 'POST', '/v1/chat/completions', { body: { model: 'chat', prompt: { name: 'no-such-prompt' } } });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.param).toBe('prompt.name');
    });

    it('keeps a session over several turns, in the documented order', async () => {
      const session = `e2e-session-${Date.now()}`;
      const turn = (text: string) =>
        sdk.chat.completions.create({
          model: 'chat',
          session_id: session,
          prompt: { name: 'e2e-greeting', variables: { name: 'Bob', language: 'German' } },
          messages: [{ role: 'user', content: text }],
        } as Extended);
      const first = await turn('turn one');
      expect(first.choices[0]!.message.content).toContain('turn one');
      await turn('turn two');
      // A streamed third turn: stored after the last chunk.
      const stream = await sdk.chat.completions.create({
        model: 'chat',
        stream: true,
        session_id: session,
        prompt: { name: 'e2e-greeting', variables: { name: 'Bob', language: 'German' } },
        messages: [{ role: 'user', content: 'turn three' }],
      } as never);
      for await (const _ of stream as unknown as AsyncIterable<unknown>) void _;
      await turn('turn four');
      const sent = upstreamMessages();
      expect(sent[0]).toEqual({ role: 'system', content: 'You greet Bob in German.' });
      expect(sent.at(-2)).toEqual({ role: 'user', content: 'Say hello to Bob.' });
      expect(sent.at(-1)).toEqual({ role: 'user', content: 'turn four' });
      const history = sent.slice(1, -2);
      expect(history.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
      expect(history.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(['turn one', 'turn two', 'turn three']);
      expect(history[1]!.content).toContain('turn one');
      const stored = await call(layout, 'GET', `/v1/sessions/${session}/messages`);
      expect(stored.status).toBe(200);
      expect(stored.body.messages).toHaveLength(8);
    });

    it('keeps each API key in its own session namespace', async () => {
      const session = `e2e-shared-id-${Date.now()}`;
      await sdk.chat.completions.create({ model: 'chat', session_id: session, messages: [{ role: 'user', content: 'secret of the admin key' }] } as Extended);
      const other = client(layout, KEYS.user);
      await other.chat.completions.create({ model: 'chat', session_id: session, messages: [{ role: 'user', content: 'hello from the user key' }] } as Extended);
      // The user key's request went upstream without the admin key's history.
      expect(upstreamMessages().map((m) => m.content)).toEqual(['hello from the user key']);
      // Through the router the sessions API addresses the caller's own namespace.
      const mine = await call(layout, 'GET', `/v1/sessions/${session}/messages`);
      expect(mine.body.messages.map((m: { content: string }) => m.content)[0]).toBe('secret of the admin key');
      expect(mine.body.messages).toHaveLength(2);
    });

    it('retried requests with the same x-request-id do not duplicate the turn', async () => {
      const session = `e2e-retry-${Date.now()}`;
      const send = () =>
        fetch(`${layout.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json', 'x-request-id': `retry-${session}` },
          body: JSON.stringify({ model: 'chat', session_id: session, messages: [{ role: 'user', content: 'only once' }] }),
        });
      expect((await send()).status).toBe(200);
      expect((await send()).status).toBe(200);
      const stored = await call(layout, 'GET', `/v1/sessions/${session}/messages`);
      expect(stored.body.messages.map((m: { content: string }) => m.content)).toHaveLength(2);
    });

    defineToolAndStreamCases(() => layout);
    defineMessagesCases(() => layout);

    it('sees a template update within about a second, without a restart', async () => {
      const v2 = await call(layout, 'POST', '/v1/templates/e2e-greeting/versions', {
        body: { type: 'chat', template: [{ role: 'system', content: 'Version two for {{name}}.' }], labels: ['production'] },
      });
      expect(v2.status).toBe(201);
      const started = Date.now();
      await waitFor(
        async () => {
          const r = await call(layout, 'POST', '/v1/chat/completions', {
            body: { model: 'chat', prompt: { name: 'e2e-greeting', variables: { name: 'Cy' } }, messages: [{ role: 'user', content: 'hi' }] },
          });
          return r.status === 200 && r.headers.get(HEADERS.promptVersion) === '2';
        },
        10_000,
        'the router to serve version 2',
      );
      // About a second; generous for a shared, loaded CI machine, and well under the 5 s reconcile.
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(upstreamMessages()[0]).toEqual({ role: 'system', content: 'Version two for Cy.' });
    });

    it('splits a label between two versions, sticky per session, counted by version', async () => {
      const moved = await call(layout, 'PUT', '/v1/templates/e2e-greeting/labels/production', {
        body: { versions: [{ version: 1, weight: 50 }, { version: 2, weight: 50 }] },
      });
      expect(moved.status).toBe(200);
      const ask = async (session: string) => {
        const r = await call(layout, 'POST', '/v1/chat/completions', {
          body: { model: 'chat', session_id: session, prompt: { name: 'e2e-greeting', variables: { name: 'Di', language: 'Dutch' } }, messages: [{ role: 'user', content: 'q' }] },
        });
        expect(r.status).toBe(200);
        return r.headers.get(HEADERS.promptVersion);
      };
      // Wait until the split reached the router: some session gets version 1 again.
      const probe = Array.from({ length: 12 }, (_, i) => `split-probe-${i}`);
      await waitFor(async () => (await Promise.all(probe.map(ask))).includes('1'), 10_000, 'the split to be served');
      const seen = new Map<string, string | null>();
      for (let i = 0; i < 16; i++) seen.set(`split-${i}`, await ask(`split-${i}`));
      expect(new Set(seen.values())).toEqual(new Set(['1', '2']));
      for (const [session, version] of seen) expect(await ask(session)).toBe(version);
      const metrics = (await call(layout, 'GET', '/metrics')).body as string;
      expect(metrics).toMatch(/promptmesh_prompt_requests_total\{prompt="e2e-greeting",version="1"\} [1-9]/);
      expect(metrics).toMatch(/promptmesh_prompt_requests_total\{prompt="e2e-greeting",version="2"\} [1-9]/);
      expect(metrics).toMatch(/promptmesh_template_cache_age_seconds \d/);
    });

    it('refuses missing and wrong keys (401), missing scopes (403) and keys over their limit (429)', async () => {
      expect((await call(layout, 'POST', '/v1/chat/completions', { key: null, body: { model: 'chat', messages: [{ role: 'user', content: 'x' }] } })).status).toBe(401);
      const wrong = await client(layout, 'not-a-key').chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
      const userCreate = await call(layout, 'POST', '/v1/templates', { key: KEYS.user, body: { name: 'e2e-forbidden', type: 'text', template: 'x' } });
      expect(userCreate.status).toBe(403);
      expect(userCreate.body.error.type).toBe('permission_error');
      expect((await call(layout, 'GET', '/v1/providers', { key: KEYS.user })).status).toBe(403);
      expect((await call(layout, 'GET', '/v1/providers')).status).toBe(200);
      expect((await call(layout, 'GET', '/v1/templates/e2e-greeting', { key: KEYS.user })).status).toBe(200);
      const limited = client(layout, KEYS.limited);
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await limited.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: `n${i}` }] }).then(() => 200, (e: { status?: number; headers?: Headers }) => e));
      expect(results.slice(0, 3)).toEqual([200, 200, 200]);
      const refused = results[3] as InstanceType<typeof OpenAI.RateLimitError>;
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    });

    it("holds a key's tokens per minute (tpm from the keys file), refunding what a call did not use", async () => {
      const tokenLimited = (maxTokens: number) =>
        call(layout, 'POST', '/v1/chat/completions', { key: KEYS.tokenLimited, body: { model: 'chat', max_tokens: maxTokens, messages: [{ role: 'user', content: 'count me' }] } });
      // 900 reserved, a few used and the rest given back: the second call still fits.
      expect((await tokenLimited(900)).status).toBe(200);
      await waitForRefund(() => tokenLimited(900));
      layout.fake.setBehavior({ reply: { tokens: 800 } });
      try {
        expect((await tokenLimited(900)).status).toBe(200);
        const refused = await tokenLimited(300);
        expect(refused.status).toBe(429);
        expect(refused.body.error.message).toContain("'e2e-token-limited'");
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        // Other keys are untouched.
        expect((await call(layout, 'POST', '/v1/chat/completions', { key: KEYS.user, body: { model: 'chat', max_tokens: 300, messages: [{ role: 'user', content: 'x' }] } })).status).toBe(200);
      } finally {
        layout.fake.setBehavior({});
      }
    });

    defineEmbeddingsAndResponsesCases(() => layout);

    it('falls back to the second provider during an outage of the first', async () => {
      layout.fake.setBehavior({ rules: [{ model: 'model-a', fault: { type: 'status', status: 503 } }] });
      try {
        const { data, response } = await sdk.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'during the outage' }] }).withResponse();
        expect(data.choices[0]!.message.content).toContain('during the outage');
        expect(response.headers.get(HEADERS.provider)).toBe('fake-b');
        const stream = await sdk.chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content: 'streamed outage' }] }).withResponse();
        expect(stream.response.headers.get(HEADERS.provider)).toBe('fake-b');
        let text = '';
        for await (const c of stream.data) text += c.choices[0]?.delta?.content ?? '';
        expect(text).toContain('streamed outage');
        // Every provider down: a clear upstream error, not a 500.
        layout.fake.setBehavior({ rules: [{ fault: { type: 'status', status: 503 } }] });
        const down = await call(layout, 'POST', '/v1/chat/completions', { body: { model: 'chat', messages: [{ role: 'user', content: 'x' }] } });
        expect([502, 503]).toContain(down.status);
        expect(down.body.error.message).toBeTruthy();
        // Every provider rate limited: the 429 and its Retry-After reach the client.
        layout.fake.setBehavior({ rules: [{ fault: { type: 'status', status: 429, retryAfter: 30 } }] });
        const limited = await call(layout, 'POST', '/v1/chat/completions', { body: { model: 'chat', messages: [{ role: 'user', content: 'x' }] } });
        expect(limited.status).toBe(429);
        expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      } finally {
        layout.fake.setBehavior({});
      }
    });

    it('answers without history (and says so) while Redis is down, and recovers when it is back', async () => {
      const session = `e2e-redis-${Date.now()}`;
      const ask = (content: string) =>
        call(layout, 'POST', '/v1/chat/completions', { body: { model: 'model-b', session_id: session, messages: [{ role: 'user', content }] } });
      expect((await ask('before')).status).toBe(200);
      await layout.redis.stop();
      try {
        const during = await ask('during');
        expect(during.status).toBe(200);
        expect(during.headers.get(HEADERS.degraded)).toContain('history');
        expect(during.body.choices[0].message.content).toContain('during');
        expect(upstreamMessages()).toEqual([{ role: 'user', content: 'during' }]);
        // A template change while Redis is down is not pushed (publish fails)...
        const v3 = await call(layout, 'POST', '/v1/templates/e2e-greeting/versions', {
          body: { type: 'chat', template: [{ role: 'system', content: 'Version three for {{name}}.' }], labels: ['canary'] },
        });
        expect(v3.status).toBe(201);
      } finally {
        await layout.redis.start();
      }
      // ...but the change feed catches the router up (on reconnect, or by the periodic reconcile).
      await waitFor(async () => {
        const r = await call(layout, 'POST', '/v1/chat/completions', {
          body: { model: 'chat', prompt: { name: 'e2e-greeting', label: 'canary', variables: { name: 'Flo' } }, messages: [{ role: 'user', content: 'hi' }] },
        });
        return r.status === 200 && r.headers.get(HEADERS.promptVersion) === '3';
      }, 15_000, 'the router to learn about version 3 from the change feed');
      // Redis came back empty (no persistence): the session starts over, then history works again.
      await waitFor(async () => {
        const r = await ask('after');
        return r.status === 200 && r.headers.get(HEADERS.degraded) === null;
      }, 20_000, 'history to work again');
      expect((await ask('again')).status).toBe(200);
      expect(upstreamMessages().map((m) => m.content)).toEqual(expect.arrayContaining(['after', 'again']));
      expect(upstreamMessages().length).toBeGreaterThanOrEqual(3);
    });

    it('keeps serving cached templates while the templates service is down', async () => {
      await layout.stopTemplates();
      try {
        for (let i = 0; i < 3; i++) {
          const r = await call(layout, 'POST', '/v1/chat/completions', {
            body: { model: 'chat', prompt: { name: 'e2e-greeting', version: 2, variables: { name: 'Eve' } }, messages: [{ role: 'user', content: `cached ${i}` }] },
          });
          expect(r.status).toBe(200);
          expect(r.headers.get(HEADERS.promptVersion)).toBe('2');
        }
      } finally {
        await layout.startTemplates();
      }
    });

    it('stores no half turn when the client disconnects mid-stream', async () => {
      layout.fake.setBehavior({ reply: { tokens: 40, tokenDelayMs: 50 } });
      const session = `e2e-disconnect-${Date.now()}`;
      try {
        const abort = new AbortController();
        const res = await fetch(`${layout.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${KEYS.admin}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'chat', stream: true, session_id: session, messages: [{ role: 'user', content: 'leaving early' }] }),
          signal: abort.signal,
        });
        expect(res.status).toBe(200);
        const reader = res.body!.getReader();
        const first = await reader.read();
        expect(new TextDecoder().decode(first.value)).toContain('data: ');
        abort.abort();
        // The router stops the upstream call too; once the provider saw it go, nothing is pending.
        await waitFor(() => layout.fake.stats.inFlight === 0, 10_000, 'the upstream stream to be cancelled');
        await new Promise((r) => setTimeout(r, 200));
        const stored = await call(layout, 'GET', `/v1/sessions/${session}/messages`);
        expect(stored.status).toBe(200);
        expect(stored.body.messages).toEqual([]);
      } finally {
        layout.fake.setBehavior({});
      }
    });

    it('finishes in-flight streams on SIGTERM (no request lost)', async () => {
      layout.fake.setBehavior({ reply: { tokens: 12, tokenDelayMs: 60 } });
      const streams = Array.from({ length: 4 }, async (_, i) => {
        const stream = await sdk.chat.completions.create({ model: 'chat', stream: true, messages: [{ role: 'user', content: `slow ${i}` }] });
        let pieces = 0;
        let finish: string | null | undefined;
        for await (const c of stream) {
          if (c.choices[0]?.delta?.content) pieces++;
          finish = c.choices[0]?.finish_reason ?? finish;
        }
        return { pieces, finish };
      });
      await waitFor(() => layout.fake.stats.inFlight >= 4, 10_000, 'the streams to start');
      const terminated = layout.terminateRouter();
      const results = await Promise.all(streams);
      await terminated;
      for (const r of results) {
        expect(r.pieces).toBe(12);
        expect(r.finish).toBe('stop');
      }
    });
  });
}

/** Retries a prompt call until the router's cache has the template (created a moment ago). */
async function waitForPrompt<T>(fn: () => Promise<T>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < 40; i++) {
    try {
      return await fn();
    } catch (err) {
      last = err;
      if ((err as { status?: number }).status !== 404) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
}

export { lastUserText };
