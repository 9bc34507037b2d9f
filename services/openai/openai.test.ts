/**
 * The wire format as both services serve it: each limit at its boundary (the last value that
 * passes, the first that is refused with a 400 naming the field), on the router (all-in-one,
 * real sockets) and on llm; and the answer serializer keeping every field a provider sends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createLogger, createMetrics, createTracing } from '../kit';
import { startFakeProvider, type FakeProvider } from '../../test/fake-provider/server';
import { startAllInOne, type Layout, KEYS } from '../../test/e2e/support';
import { chat, fakeOpenAi, ssePayloads, startLlm, type TestLlm } from '../../test/support/llm-service';
import { MAX_CHOICES, MAX_MESSAGES, MAX_SESSION_ID_CHARS, MAX_STOP_SEQUENCES, chatResponseSchemas } from './index';

const user = (text = 'hi') => ({ role: 'user', content: text });

/** One limit: a body at the boundary, and one just past it, which names `field`. */
interface Boundary {
  field: string;
  at: Record<string, unknown>;
  past: Record<string, unknown>;
}

const BOUNDARIES: Boundary[] = [
  { field: 'n', at: { n: MAX_CHOICES }, past: { n: MAX_CHOICES + 1 } },
  {
    field: 'stop',
    at: { stop: Array.from({ length: MAX_STOP_SEQUENCES }, (_, i) => `s${i}`) },
    past: { stop: Array.from({ length: MAX_STOP_SEQUENCES + 1 }, (_, i) => `s${i}`) },
  },
  {
    field: 'messages',
    at: { messages: Array.from({ length: MAX_MESSAGES }, () => user()) },
    past: { messages: Array.from({ length: MAX_MESSAGES + 1 }, () => user()) },
  },
];

/** The limits only the router has (its extension fields). */
const ROUTER_BOUNDARIES: Boundary[] = [
  { field: 'session_id', at: { session_id: 's'.repeat(MAX_SESSION_ID_CHARS) }, past: { session_id: 's'.repeat(MAX_SESSION_ID_CHARS + 1) } },
];

describe('the limits, as OpenAI sets them', () => {
  it('are the published ones', () => {
    expect({ MAX_CHOICES, MAX_MESSAGES, MAX_STOP_SEQUENCES, MAX_SESSION_ID_CHARS }).toEqual({ MAX_CHOICES: 128, MAX_MESSAGES: 2048, MAX_STOP_SEQUENCES: 4, MAX_SESSION_ID_CHARS: 128 });
  });
});

describe('the router (all-in-one)', () => {
  let layout: Layout;
  beforeAll(async () => {
    layout = await startAllInOne();
  }, 60_000);
  afterAll(async () => {
    await layout?.close();
  });

  const post = async (body: unknown) => {
    const res = await fetch(`${layout.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEYS.admin}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };

  for (const b of [...BOUNDARIES, ...ROUTER_BOUNDARIES]) {
    it(`accepts ${b.field} at its limit and refuses one past it, naming the field`, async () => {
      const at = await post({ model: 'chat', messages: [user()], ...b.at });
      expect(at.status, at.text).toBe(200);
      const past = await post({ model: 'chat', messages: [user()], ...b.past });
      expect(past.status, past.text).toBe(400);
      expect(JSON.parse(past.text).error.param).toBe(b.field);
    });
  }

  it('holds session ids to the same limit on the sessions API', async () => {
    const read = (id: string) => fetch(`${layout.url}/v1/sessions/${id}/messages`, { headers: { authorization: `Bearer ${KEYS.admin}` } });
    expect((await read('s'.repeat(MAX_SESSION_ID_CHARS))).status).toBe(200);
    const past = await read('s'.repeat(MAX_SESSION_ID_CHARS + 1));
    expect(past.status).toBe(400);
    expect(((await past.json()) as { error: { param: string } }).error.param).toBe('session_id');
  });

  it('passes every field of the provider answer through, unknown ones included', async () => {
    const r = await post({ model: 'chat', messages: [user('keep it all')] });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text);
    // Fields the fake provider sends that promptmesh does not model itself.
    expect(body.service_tier).toBe('default');
    expect(body.system_fingerprint).toBe('fp_fake');
    expect(body.choices[0].message.refusal).toBeNull();
    expect(body.choices[0].logprobs).toBeNull();
    expect(body.usage.completion_tokens_details).toEqual({ reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 });
    expect(body.usage.prompt_tokens_details.audio_tokens).toBe(0);
  });
});

describe('llm', () => {
  let fake: FakeProvider;
  let llm: TestLlm;
  beforeAll(async () => {
    fake = await startFakeProvider();
    llm = await startLlm({ providers: [fakeOpenAi('fake', fake.url)], models: { chat: [{ provider: 'fake', model: 'gpt-4o-mini' }] } });
  });
  afterAll(async () => {
    await llm?.close();
    await fake?.close();
  });

  for (const b of BOUNDARIES) {
    it(`accepts ${b.field} at its limit and refuses one past it, naming the field`, async () => {
      const at = await chat(llm.url, { model: 'chat', messages: [user()], ...b.at });
      expect(at.status, at.text).toBe(200);
      const past = await chat(llm.url, { model: 'chat', messages: [user()], ...b.past });
      expect(past.status, past.text).toBe(400);
      expect(past.json.error.param).toBe(b.field);
    });
  }

  it('passes provider fields through, in plain answers and in stream chunks', async () => {
    const plain = await chat(llm.url, { model: 'chat', messages: [user()] });
    expect(plain.json.service_tier).toBe('default');
    expect(plain.json.usage.completion_tokens_details.reasoning_tokens).toBe(0);
    const streamed = await chat(llm.url, { model: 'chat', stream: true, messages: [user()] });
    const chunks = ssePayloads(streamed.text);
    expect(chunks.at(-1)).toBe('[DONE]');
    expect(JSON.parse(chunks[0]!).system_fingerprint).toBe('fp_fake');
  });
});

describe('the completion serializer', () => {
  it('keeps every field of a completion, whatever the provider added', async () => {
    const app = createApp({
      service: 'test',
      config: { bodyLimitBytes: 1_000_000 },
      logger: createLogger('test', 'silent'),
      metrics: createMetrics({ defaultMetrics: false }),
      tracing: createTracing('test', undefined),
    });
    // Odd but real answers: content parts instead of a string, annotations, audio, a custom
    // tool call without `function`, logprobs, usage details, a top-level field of tomorrow.
    const completion = {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'm',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: [{ type: 'text', text: 'é 😀' }],
            annotations: [{ type: 'url_citation', url_citation: { url: 'https://example.com', start_index: 0, end_index: 3 } }],
            audio: null,
            tool_calls: [{ id: 'c1', type: 'custom', custom: { name: 'x', input: '{}' } }],
          },
          logprobs: { content: [{ token: 'a', logprob: -0.1, bytes: [97], top_logprobs: [] }] },
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, cost_usd: 0.001, completion_tokens_details: { reasoning_tokens: 7 } },
      system_fingerprint: null,
      service_tier: 'flex',
      tomorrow: { nested: [1, 'two', null, { deep: true }] },
    };
    app.get('/c', { schema: { response: chatResponseSchemas } }, async () => completion);
    try {
      const res = await app.inject({ method: 'GET', url: '/c' });
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(res.body)).toStrictEqual(completion);
    } finally {
      await app.close();
    }
  });
});
