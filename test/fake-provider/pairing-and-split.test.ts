/**
 * Two ways the fake provider behaves like the real APIs where promptmesh once broke: it refuses
 * tool traffic that is not paired as OpenAI and Anthropic require, and (on request) it delivers
 * every multi-byte character of a stream split across two network chunks.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProvider, type FakeProvider } from './server';

let fake: FakeProvider;
beforeAll(async () => {
  fake = await startFakeProvider();
});
afterAll(async () => {
  await fake.close();
});

async function openai(messages: unknown[]): Promise<{ status: number; body: any }> {
  const res = await request(`${fake.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages }) });
  return { status: res.statusCode, body: await res.body.json() };
}

async function anthropic(messages: unknown[]): Promise<{ status: number; body: any }> {
  const res = await request(`${fake.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'k', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 50, messages }),
  });
  return { status: res.statusCode, body: await res.body.json() };
}

const call = (id: string) => ({ id, type: 'function', function: { name: 'f', arguments: '{}' } });

describe('tool pairing, OpenAI side', () => {
  it('accepts calls answered right after them, several per message', async () => {
    const ok = await openai([
      { role: 'user', content: 'q' },
      { role: 'assistant', content: null, tool_calls: [call('c1'), call('c2')] },
      { role: 'tool', tool_call_id: 'c2', content: 'r2' },
      { role: 'tool', tool_call_id: 'c1', content: 'r1' },
      { role: 'assistant', content: 'done' },
      { role: 'user', content: 'again' },
    ]);
    expect(ok.status).toBe(200);
  });

  it.each([
    ['a tool result without any call', [{ role: 'user', content: 'q' }, { role: 'tool', tool_call_id: 'c1', content: 'r' }], 'messages.[1].role', /must be a response to a preceeding message with 'tool_calls'/],
    ['a tool result for an unknown id', [{ role: 'user', content: 'q' }, { role: 'assistant', content: null, tool_calls: [call('c1')] }, { role: 'tool', tool_call_id: 'c9', content: 'r' }], 'messages.[2].role', /preceeding/],
    ['a call answered after a user message', [{ role: 'user', content: 'q' }, { role: 'assistant', content: null, tool_calls: [call('c1')] }, { role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'c1', content: 'r' }], 'messages.[1].role', /did not have response messages: c1/],
    ['a call never answered', [{ role: 'user', content: 'q' }, { role: 'assistant', content: null, tool_calls: [call('c1'), call('c2')] }, { role: 'tool', tool_call_id: 'c1', content: 'r' }], 'messages.[1].role', /: c2$/],
    ['a call answered twice', [{ role: 'user', content: 'q' }, { role: 'assistant', content: null, tool_calls: [call('c1')] }, { role: 'tool', tool_call_id: 'c1', content: 'r' }, { role: 'tool', tool_call_id: 'c1', content: 'r' }], 'messages.[3].role', /preceeding/],
  ])('refuses %s with a 400 in OpenAI error shape', async (_label, messages, param, message) => {
    const res = await openai(messages);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param });
    expect(res.body.error.message).toMatch(message);
  });
});

describe('tool pairing, Anthropic side', () => {
  const use = { type: 'tool_use', id: 'toolu_1', name: 'f', input: {} };
  const result = (id: string) => ({ type: 'tool_result', tool_use_id: id, content: 'r' });

  it('accepts a tool_use answered in the next message', async () => {
    expect((await anthropic([{ role: 'user', content: 'q' }, { role: 'assistant', content: [use] }, { role: 'user', content: [result('toolu_1')] }])).status).toBe(200);
  });

  it('refuses a tool_result without its tool_use, and a tool_use left unanswered', async () => {
    const orphan = await anthropic([{ role: 'user', content: [result('toolu_9')] }]);
    expect(orphan.status).toBe(400);
    expect(orphan.body.error.message).toMatch(/unexpected `tool_use_id`/);
    const unanswered = await anthropic([{ role: 'user', content: 'q' }, { role: 'assistant', content: [use] }, { role: 'user', content: 'no result' }]);
    expect(unanswered.status).toBe(400);
    expect(unanswered.body.error.message).toMatch(/without `tool_result` blocks immediately after: toolu_1/);
  });
});

describe('splitMultibyte', () => {
  it('delivers each multi-byte character in two network chunks, and the bytes add up to the stream', async () => {
    const text = 'ü 名 😀';
    fake.setBehavior({ reply: { text, splitMultibyte: true } });
    try {
      const res = await request(`${fake.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'x' }] }),
      });
      const chunks: Buffer[] = [];
      for await (const c of res.body) chunks.push(c as Buffer);
      // A chunk that ends on a lead byte (>= 0xC0) cut a character in two (of three; a reader
      // under load may join two pieces).
      const cutAfterLead = chunks.filter((c) => c[c.length - 1]! >= 0xc0).length;
      expect(cutAfterLead).toBeGreaterThanOrEqual(2);
      const whole = Buffer.concat(chunks).toString('utf8');
      const deltas = whole
        .split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => (JSON.parse(e.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '');
      expect(deltas.join('')).toBe(text);
    } finally {
      fake.setBehavior({});
    }
  });
});
