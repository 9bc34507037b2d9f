/**
 * Virtual keys in the mesh layout (four processes, the router reaching llm over HTTP): the key's
 * team and its limits travel in the internal headers, llm's exact cost comes back in the usage
 * (plain and streamed), the ledger counts it, llm's cost metric names the key and the team, and a
 * spent budget is refused.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, PRICES, keysFixture, type KeysFixture } from '../../services/router/keys/test-support';
import { freePort, waitFor } from '../support/net';
import { ServiceProcess } from './support';

function expectedMicro(model: keyof typeof PRICES, usage: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number }): number {
  const price = PRICES[model] as { input: number; output: number; cached_input?: number };
  const pico = (usd: number) => BigInt(Math.round(usd * 1e6));
  const cached = usage.cached_tokens ?? 0;
  const total = BigInt(usage.prompt_tokens - cached) * pico(price.input) + BigInt(cached) * pico(price.cached_input ?? price.input) + BigInt(usage.completion_tokens) * pico(price.output);
  return Number((total + 500_000n) / 1_000_000n);
}

/** The `data` of each event of an SSE body whose type is `type`. */
function eventsOf(body: string, type: string): any[] {
  return body
    .split('\n\n')
    .filter((e) => e.startsWith(`event: ${type}\n`))
    .map((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)));
}

describe('virtual keys in the mesh layout', () => {
  let fixture: KeysFixture;
  let procs: Record<'templates' | 'context' | 'llm' | 'router', ServiceProcess>;
  let pool: pg.Pool;

  beforeAll(async () => {
    fixture = await keysFixture('mesh');
    const env = { ...fixture.env, LOG_LEVEL: 'warn' };
    const ports = { templates: await freePort(), context: await freePort(), llm: await freePort(), router: await freePort() };
    const url = (p: number) => `http://127.0.0.1:${p}`;
    procs = {
      templates: new ServiceProcess('templates', ports.templates, env, 90_000),
      context: new ServiceProcess('context', ports.context, env, 90_000),
      llm: new ServiceProcess('llm', ports.llm, env, 90_000),
      router: new ServiceProcess('router', ports.router, { ...env, TEMPLATES_URL: url(ports.templates), CONTEXT_URL: url(ports.context), LLM_URL: url(ports.llm) }, 90_000),
    };
    await Promise.all([procs.templates.start(), procs.context.start(), procs.llm.start()]);
    await procs.router.start();
    pool = new pg.Pool({ connectionString: fixture.db.url, max: 2 });
  }, 180_000);

  afterAll(async () => {
    if (procs) await Promise.all(Object.values(procs).map((p) => p.stop()));
    await pool?.end();
    await fixture?.close();
  });

  const call = async (method: string, path: string, key: string, body?: unknown) => {
    const res = await fetch(`${procs.router.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // SSE
    }
    return { status: res.status, body: parsed };
  };

  it('meters /v1/messages and /v1/responses over HTTP too: plain and streamed, llm usage events kept from the client', async () => {
    const created = await call('POST', '/v1/keys', ADMIN_KEY, { name: 'mesh-apis', scopes: ['invoke'], budget: { usd: 10, period: 'day' } });
    expect(created.status).toBe(201);
    const { id, key } = created.body as { id: string; key: string };
    fixture.fake.setBehavior({ rules: [{ model: 'claude-a', reply: { cachedTokens: 3 } }] });
    const expected: number[] = [];
    const anthropic = (u: any) => ({ prompt_tokens: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0), completion_tokens: u.output_tokens, cached_tokens: u.cache_read_input_tokens ?? 0 });

    const plain = await call('POST', '/v1/messages', key, { model: 'claude-a', max_tokens: 64, messages: [{ role: 'user', content: 'plain over the mesh' }] });
    expect(plain.status, JSON.stringify(plain.body)).toBe(200);
    expected.push(expectedMicro('claude-a', anthropic(plain.body.usage)));
    const streamed = await call('POST', '/v1/messages', key, { model: 'claude-a', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'streamed over the mesh' }] });
    expect(streamed.status).toBe(200);
    expect(streamed.body).toContain('event: message_stop');
    expect(streamed.body).not.toContain('promptmesh.usage');
    const start = eventsOf(streamed.body, 'message_start')[0].message.usage;
    const delta = eventsOf(streamed.body, 'message_delta')[0].usage;
    expected.push(expectedMicro('claude-a', anthropic({ ...start, ...delta })));
    const translated = await call('POST', '/v1/messages', key, { model: 'model-b', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'translated over the mesh' }] });
    expect(translated.body).not.toContain('promptmesh.usage');
    expected.push(expectedMicro('model-b', anthropic(eventsOf(translated.body, 'message_delta')[0].usage)));

    const response = await call('POST', '/v1/responses', key, { model: 'gpt-r', input: 'a responses question over the mesh' });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    expected.push(expectedMicro('gpt-r', { prompt_tokens: response.body.usage.input_tokens, completion_tokens: response.body.usage.output_tokens }));
    const responseStream = await call('POST', '/v1/responses', key, { model: 'gpt-r', input: 'a streamed responses question', stream: true });
    expect(responseStream.status).toBe(200);
    expect(responseStream.body).not.toContain('promptmesh.usage');
    const completed = eventsOf(responseStream.body, 'response.completed');
    expect(completed).toHaveLength(1);
    expected.push(expectedMicro('gpt-r', { prompt_tokens: completed[0].response.usage.input_tokens, completion_tokens: completed[0].response.usage.output_tokens }));
    fixture.fake.reset();

    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === 5, 10_000, 'five rows');
    const rows = (await pool.query('SELECT * FROM promptmesh_spend WHERE key_id = $1 ORDER BY at', [id])).rows;
    expect(rows.map((r) => Number(r.micro_usd))).toEqual(expected);
    expect(rows.map((r) => r.model)).toEqual(['claude-a', 'claude-a', 'model-b', 'gpt-r', 'gpt-r']);
    expect(Number(rows[0].cached_input_tokens)).toBe(3);
  });

  it('counts plain and streamed calls exactly, labels llm cost by key and team, refuses a spent budget, and applies the team tpm', async () => {
    expect((await call('PUT', '/v1/teams/mesh-team', ADMIN_KEY, { name: 'Mesh', tpm: 1_000_000 })).status).toBe(201);
    const created = await call('POST', '/v1/keys', ADMIN_KEY, { name: 'mesh', scopes: ['invoke'], team: 'mesh-team', models: ['model-a'], budget: { usd: 0.002, period: 'day' } });
    expect(created.status).toBe(201);
    const { id, key } = created.body as { id: string; key: string };

    expect((await call('POST', '/v1/chat/completions', key, { model: 'model-b', messages: [{ role: 'user', content: 'no' }] })).body.error.code).toBe('model_not_allowed');
    const plain = await call('POST', '/v1/chat/completions', key, { model: 'model-a', messages: [{ role: 'user', content: 'a plain question' }] });
    expect(plain.status).toBe(200);
    expect(plain.body.usage.cost_micro_usd).toBe(expectedMicro('model-a', plain.body.usage));
    // A stream without include_usage: the router asks llm for the usage and keeps it to itself.
    const streamed = await call('POST', '/v1/chat/completions', key, { model: 'model-a', stream: true, messages: [{ role: 'user', content: 'a streamed one' }] });
    expect(streamed.status).toBe(200);
    expect(streamed.body).toContain('data: [DONE]');
    expect(streamed.body).not.toContain('"usage":{');

    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === 2, 10_000, 'two rows');
    const rows = (await pool.query('SELECT * FROM promptmesh_spend WHERE key_id = $1 ORDER BY at', [id])).rows;
    expect(rows.every((r) => r.team === 'mesh-team' && r.provider === 'fake' && r.model === 'model-a')).toBe(true);
    expect(Number(rows[0].micro_usd)).toBe(plain.body.usage.cost_micro_usd);
    expect(Number(rows[1].micro_usd)).toBe(expectedMicro('model-a', { prompt_tokens: Number(rows[1].input_tokens), completion_tokens: Number(rows[1].output_tokens) }));

    const metrics = await (await fetch(`${procs.llm.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`promptmesh_llm_cost_usd_total\\{provider="fake",model="model-a",key="${id}",team="mesh-team"\\} 0\\.\\d+`));

    // Spend until the budget is gone.
    let refused: any;
    for (let i = 0; i < 40 && !refused; i++) {
      const r = await call('POST', '/v1/chat/completions', key, { model: 'model-a', messages: [{ role: 'user', content: `more ${i}` }] });
      if (r.status === 429) refused = r.body;
      else expect(r.status).toBe(200);
    }
    expect(refused?.error).toMatchObject({ type: 'insufficient_quota', code: 'budget_exceeded' });

    // The team's tpm is held by llm over all the team's keys.
    await call('PUT', '/v1/teams/mesh-team', ADMIN_KEY, { name: 'Mesh', tpm: 50 });
    const other = (await call('POST', '/v1/keys', ADMIN_KEY, { name: 'mesh-2', scopes: ['invoke'], team: 'mesh-team' })).body.key as string;
    let limited: any;
    for (let i = 0; i < 10 && !limited; i++) {
      const r = await call('POST', '/v1/chat/completions', other, { model: 'model-a', max_tokens: 20, messages: [{ role: 'user', content: `over the team tpm ${i}` }] });
      if (r.status === 429) limited = r.body;
      else expect(r.status).toBe(200);
    }
    expect(limited?.error.message).toContain(`team 'mesh-team'`);
    expect(limited.error.message).toContain('tokens per minute');
  });
});
