/**
 * The keys, teams and spend API on a real socket, against real PostgreSQL and Redis and the fake
 * provider (`SERVICE=all`): every field of every route validated, the secret stored hashed,
 * rotation, revocation, expiry, model allow-lists, budgets, concurrency and the ledger.
 */
import { createHash } from 'node:crypto';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/support/net';
import { TEST_PG_ADMIN_URL } from '../../../test/support/pg';
import { ADMIN_KEY, PRICES, USER_KEY, startKeysSystem, type RunningKeys } from './test-support';

/** The ledger's rule, written again: exact picodollars, rounded once to microdollars, halves up. */
function expectedMicro(model: keyof typeof PRICES, usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } }): number {
  const price = PRICES[model] as { input: number; output: number; cached_input?: number };
  const pico = (usd: number) => BigInt(Math.round(usd * 1e6));
  const cached = usage.prompt_tokens_details?.cached_tokens ?? 0;
  const total =
    BigInt(usage.prompt_tokens - cached) * pico(price.input) + BigInt(cached) * pico(price.cached_input ?? price.input) + BigInt(usage.completion_tokens) * pico(price.output);
  return Number((total + 500_000n) / 1_000_000n);
}

const chat = (model: string, text = 'hello there', extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: text }], ...extra });

/** The same rule for Anthropic's usage: `input_tokens` is the uncached input, cache reads at their rate. */
function expectedMicroAnthropic(model: keyof typeof PRICES, usage: { input_tokens: number; output_tokens: number; cache_read_input_tokens?: number | null; cache_creation_input_tokens?: number | null }): number {
  const read = usage.cache_read_input_tokens ?? 0;
  const written = usage.cache_creation_input_tokens ?? 0;
  return expectedMicro(model, { prompt_tokens: usage.input_tokens + read + written, completion_tokens: usage.output_tokens, prompt_tokens_details: { cached_tokens: read } });
}

/** And for the Responses API's usage. */
function expectedMicroResponses(model: keyof typeof PRICES, usage: { input_tokens: number; output_tokens: number; input_tokens_details?: { cached_tokens?: number } }): number {
  return expectedMicro(model, { prompt_tokens: usage.input_tokens, completion_tokens: usage.output_tokens, prompt_tokens_details: { cached_tokens: usage.input_tokens_details?.cached_tokens ?? 0 } });
}

const message = (model: string, text = 'hello there', extra: Record<string, unknown> = {}) => ({ model, max_tokens: 64, messages: [{ role: 'user', content: text }], ...extra });

describe('keys API', () => {
  let sys: RunningKeys;
  let pool: pg.Pool;
  beforeAll(async () => {
    sys = await startKeysSystem('api');
    pool = new pg.Pool({ connectionString: sys.fixture.db.url, max: 2 });
  });
  afterAll(async () => {
    await pool?.end();
    await sys?.close();
  });

  const admin = (method: string, path: string, body?: unknown) => sys.call(method, path, ADMIN_KEY, body);
  const create = async (body: Record<string, unknown>) => {
    const r = await admin('POST', '/v1/keys', body);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body as { id: string; key: string; prefix: string };
  };

  it('creates a key shown once, stores only its SHA-256, and lists file keys read-only beside it', async () => {
    const created = await create({ name: 'ci', scopes: ['invoke'] });
    expect(created.key).toMatch(/^pm-[0-9A-Za-z]{43}$/);
    expect(created.key.startsWith(created.prefix)).toBe(true);
    expect(created.prefix).toHaveLength(11);
    const { rows } = await pool.query('SELECT * FROM promptmesh_keys WHERE id = $1', [created.id]);
    expect(rows[0].sha256).toBe(createHash('sha256').update(created.key).digest('hex'));
    expect(JSON.stringify(rows[0])).not.toContain(created.key);
    const got = await admin('GET', `/v1/keys/${created.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: created.id, name: 'ci', source: 'api', scopes: ['invoke'], prefix: created.prefix });
    expect(got.body.key).toBeUndefined();
    const list = await admin('GET', '/v1/keys');
    const ids = list.body.data.map((k: { id: string; source: string }) => `${k.source}:${k.id}`);
    expect(ids).toEqual(expect.arrayContaining(['file:file-admin', 'file:file-user', `api:${created.id}`]));
    expect((await sys.call('GET', '/v1/models', created.key)).status).toBe(200);
    // invoke only: the keys API needs admin
    expect((await sys.call('GET', '/v1/keys', created.key)).status).toBe(403);
  });

  it('refuses changes to keys-file keys with 409 key_read_only', async () => {
    for (const [method, path, body] of [
      ['PATCH', '/v1/keys/file-user', { name: 'x' }],
      ['POST', '/v1/keys/file-user/rotate', {}],
      ['DELETE', '/v1/keys/file-user', undefined],
    ] as const) {
      const r = await admin(method, path, body);
      expect(r.status, `${method} ${path}`).toBe(409);
      expect(r.body.error.code).toBe('key_read_only');
      expect(r.body.error.message).toMatch(/API_KEYS_FILE/);
    }
    expect((await admin('GET', '/v1/keys/file-user')).body).toMatchObject({ source: 'file', read_only: true });
  });

  describe('validation: every field, a 400 naming it', () => {
    beforeAll(async () => {
      expect((await admin('PUT', '/v1/teams/known', { name: 'Known' })).status).toBe(201);
    });
    const future = () => new Date(Date.now() + 3_600_000).toISOString();
    const keyCases: Array<[string, Record<string, unknown>, string]> = [
      ['name missing', { scopes: ['invoke'] }, 'name'],
      ['name empty', { name: '', scopes: ['invoke'] }, 'name'],
      ['name too long', { name: 'x'.repeat(129), scopes: ['invoke'] }, 'name'],
      ['name not a string', { name: 5, scopes: ['invoke'] }, 'name'],
      ['scopes missing', { name: 'a' }, 'scopes'],
      ['scopes empty', { name: 'a', scopes: [] }, 'scopes'],
      ['scopes unknown', { name: 'a', scopes: ['root'] }, 'scopes[0]'],
      ['scopes repeated', { name: 'a', scopes: ['invoke', 'invoke'] }, 'scopes'],
      ['models empty', { name: 'a', scopes: ['invoke'], models: [] }, 'models'],
      ['models entry not a string', { name: 'a', scopes: ['invoke'], models: [1] }, 'models[0]'],
      ['models entry empty', { name: 'a', scopes: ['invoke'], models: [''] }, 'models[0]'],
      ['rpm zero', { name: 'a', scopes: ['invoke'], rpm: 0 }, 'rpm'],
      ['rpm fraction', { name: 'a', scopes: ['invoke'], rpm: 1.5 }, 'rpm'],
      ['rpm string', { name: 'a', scopes: ['invoke'], rpm: '10' }, 'rpm'],
      ['tpm negative', { name: 'a', scopes: ['invoke'], tpm: -1 }, 'tpm'],
      ['tpm too large', { name: 'a', scopes: ['invoke'], tpm: 1e11 }, 'tpm'],
      ['max_concurrent zero', { name: 'a', scopes: ['invoke'], max_concurrent: 0 }, 'max_concurrent'],
      ['budget not an object', { name: 'a', scopes: ['invoke'], budget: 5 }, 'budget'],
      ['budget.usd missing', { name: 'a', scopes: ['invoke'], budget: { period: 'day' } }, 'budget.usd'],
      ['budget.usd zero', { name: 'a', scopes: ['invoke'], budget: { usd: 0, period: 'day' } }, 'budget.usd'],
      ['budget.usd below a microdollar', { name: 'a', scopes: ['invoke'], budget: { usd: 0.0000001, period: 'day' } }, 'budget.usd'],
      ['budget.usd string', { name: 'a', scopes: ['invoke'], budget: { usd: '1', period: 'day' } }, 'budget.usd'],
      ['budget.period missing', { name: 'a', scopes: ['invoke'], budget: { usd: 1 } }, 'budget.period'],
      ['budget.period unknown', { name: 'a', scopes: ['invoke'], budget: { usd: 1, period: 'week' } }, 'budget.period'],
      ['budget unknown field', { name: 'a', scopes: ['invoke'], budget: { usd: 1, period: 'day', soft: true } }, 'budget.soft'],
      ['expires_at not a date', { name: 'a', scopes: ['invoke'], expires_at: 'tomorrow' }, 'expires_at'],
      ['expires_at in the past', { name: 'a', scopes: ['invoke'], expires_at: '2020-01-01T00:00:00Z' }, 'expires_at'],
      ['team malformed', { name: 'a', scopes: ['invoke'], team: 'Bad Team' }, 'team'],
      ['team unknown', { name: 'a', scopes: ['invoke'], team: 'nobody' }, 'team'],
      ['unknown field', { name: 'a', scopes: ['invoke'], owner: 'me' }, 'owner'],
    ];
    it.each(keyCases)('POST /v1/keys: %s', async (_what, body, param) => {
      const before = (await pool.query('SELECT count(*)::int AS n FROM promptmesh_keys')).rows[0].n;
      const r = await admin('POST', '/v1/keys', body);
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error.param).toBe(param);
      expect(r.body.error.message).toContain(param);
      // nothing half-written
      expect((await pool.query('SELECT count(*)::int AS n FROM promptmesh_keys')).rows[0].n).toBe(before);
    });

    it('PATCH /v1/keys/{id}: every field, an empty body, a bad id', async () => {
      const { id } = await create({ name: 'patch-me', scopes: ['invoke'], expires_at: future() });
      for (const [, body, param] of keyCases.filter(([what]) => !what.endsWith('missing') && what !== 'budget.usd missing')) {
        const { name: _n, scopes: _s, ...rest } = body as Record<string, unknown>;
        const only = Object.keys(rest).length > 0 ? rest : body;
        if (Object.keys(only).length === 0) continue;
        const r = await admin('PATCH', `/v1/keys/${id}`, only);
        expect(r.status, `${JSON.stringify(only)} -> ${JSON.stringify(r.body)}`).toBe(400);
        expect(r.body.error.param).toBe(param);
      }
      for (const [body, param] of [
        [{ budget: { period: 'day' } }, 'budget.usd'],
        [{ budget: { usd: 1 } }, 'budget.period'],
        [{ name: '' }, 'name'],
        [{ scopes: [] }, 'scopes'],
      ] as const) {
        const r = await admin('PATCH', `/v1/keys/${id}`, body);
        expect(r.status).toBe(400);
        expect(r.body.error.param).toBe(param);
      }
      const empty = await admin('PATCH', `/v1/keys/${id}`, {});
      expect(empty.status).toBe(400);
      expect(empty.body.error.param).toBe('body');
      const badId = await admin('PATCH', '/v1/keys/has%20space', { name: 'x' });
      expect(badId.status).toBe(400);
      expect(badId.body.error.param).toBe('id');
      expect((await admin('PATCH', '/v1/keys/key_doesnotexist', { name: 'x' })).status).toBe(404);
      expect((await admin('GET', `/v1/keys/${id}`)).body.name).toBe('patch-me');
    });

    it('POST /v1/keys/{id}/rotate: grace_seconds and unknown fields', async () => {
      const { id } = await create({ name: 'rot', scopes: ['invoke'] });
      for (const [body, param] of [
        [{ grace_seconds: -1 }, 'grace_seconds'],
        [{ grace_seconds: 1.5 }, 'grace_seconds'],
        [{ grace_seconds: '60' }, 'grace_seconds'],
        [{ grace_seconds: 31 * 86_400 }, 'grace_seconds'],
        [{ grace: 5 }, 'grace'],
      ] as const) {
        const r = await admin('POST', `/v1/keys/${id}/rotate`, body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.body.error.param).toBe(param);
      }
      expect((await admin('POST', '/v1/keys/key_doesnotexist/rotate', {})).status).toBe(404);
    });

    it('PUT /v1/teams/{id}: every field and the id', async () => {
      for (const [path, body, param] of [
        ['/v1/teams/t1', {}, 'name'],
        ['/v1/teams/t1', { name: '' }, 'name'],
        ['/v1/teams/t1', { name: 'T', budget: { usd: -1, period: 'month' } }, 'budget.usd'],
        ['/v1/teams/t1', { name: 'T', budget: { usd: 1, period: 'year' } }, 'budget.period'],
        ['/v1/teams/t1', { name: 'T', rpm: 0 }, 'rpm'],
        ['/v1/teams/t1', { name: 'T', tpm: 'lots' }, 'tpm'],
        ['/v1/teams/t1', { name: 'T', max_concurrent: -2 }, 'max_concurrent'],
        ['/v1/teams/t1', { name: 'T', models: ['x'] }, 'models'],
        ['/v1/teams/Upper', { name: 'T' }, 'id'],
      ] as const) {
        const r = await admin('PUT', path, body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.body.error.param).toBe(param);
      }
      expect((await admin('GET', '/v1/teams/t1')).status).toBe(404);
    });

    it('GET /v1/keys and GET /v1/spend: every query parameter', async () => {
      for (const [path, param] of [
        ['/v1/keys?include_revoked=maybe', 'include_revoked'],
        ['/v1/keys?team=Not%20A%20Team', 'team'],
        ['/v1/keys?limit=5', 'limit'],
        ['/v1/spend?group_by=user', 'group_by'],
        ['/v1/spend?from=yesterday', 'from'],
        ['/v1/spend?from=2026-02-30', 'from'],
        ['/v1/spend?to=2026-13-01', 'to'],
        ['/v1/spend?to=2026-01-01T25:00:00Z', 'to'],
        ['/v1/spend?from=2026-05-01&to=2026-04-01', 'from'],
        ['/v1/spend?from=2020-01-01&to=2026-01-01', 'from'],
        ['/v1/spend?key=abc', 'key'],
      ] as const) {
        const r = await admin('GET', path);
        expect(r.status, path).toBe(400);
        expect(r.body.error.param, path).toBe(param);
      }
    });
  });

  it('rotation: the new secret works at once, the old one until the grace deadline; 0 ends it at once', async () => {
    const { id, key: first } = await create({ name: 'rotating', scopes: ['invoke'] });
    const rotated = await admin('POST', `/v1/keys/${id}/rotate`, { grace_seconds: 3600 });
    expect(rotated.status).toBe(200);
    const second = rotated.body.key as string;
    expect(second).not.toBe(first);
    expect(rotated.body.previous_key_valid_until).toBeTruthy();
    expect((await sys.call('GET', '/v1/models', first)).status).toBe(200);
    expect((await sys.call('GET', '/v1/models', second)).status).toBe(200);
    const again = await admin('POST', `/v1/keys/${id}/rotate`, { grace_seconds: 0 });
    const third = again.body.key as string;
    expect((await sys.call('GET', '/v1/models', third)).status).toBe(200);
    for (const old of [first, second]) expect((await sys.call('GET', '/v1/models', old)).status).toBe(401);
    // default grace (24 h)
    const fourth = (await admin('POST', `/v1/keys/${id}/rotate`)).body.key as string;
    expect((await sys.call('GET', '/v1/models', third)).status).toBe(200);
    expect((await sys.call('GET', '/v1/models', fourth)).status).toBe(200);
  });

  it('revocation refuses the key at once, keeps the row, and refuses changes to it', async () => {
    const { id, key } = await create({ name: 'doomed', scopes: ['invoke'] });
    expect((await sys.call('POST', '/v1/chat/completions', key, chat('model-b'))).status).toBe(200);
    const revoked = await admin('DELETE', `/v1/keys/${id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).toBeTruthy();
    const refused = await sys.call('POST', '/v1/chat/completions', key, chat('model-b'));
    expect(refused.status).toBe(401);
    expect((await admin('GET', `/v1/keys/${id}`)).body.revoked_at).toBeTruthy();
    expect((await admin('GET', '/v1/keys')).body.data.some((k: { id: string }) => k.id === id)).toBe(false);
    expect((await admin('GET', '/v1/keys?include_revoked=true')).body.data.some((k: { id: string }) => k.id === id)).toBe(true);
    const patch = await admin('PATCH', `/v1/keys/${id}`, { name: 'x' });
    expect(patch.status).toBe(409);
    expect((await admin('POST', `/v1/keys/${id}/rotate`, {})).status).toBe(409);
    // its spend stays in the ledger
    const spend = await admin('GET', '/v1/spend?group_by=key');
    expect(spend.body.data.find((r: { key: string }) => r.key === id)?.requests).toBe(1);
  });

  it('expiry: a key past expires_at is refused', async () => {
    const { id, key } = await create({ name: 'short-lived', scopes: ['invoke'], expires_at: new Date(Date.now() + 1_500).toISOString() });
    expect((await sys.call('GET', '/v1/models', key)).status).toBe(200);
    await waitFor(async () => (await sys.call('GET', '/v1/models', key)).status === 401, 10_000, 'the key to expire');
    const r = await sys.call('GET', '/v1/models', key);
    expect(r.body.error.message).toMatch(/expired/);
    // clearing the expiry brings it back
    expect((await admin('PATCH', `/v1/keys/${id}`, { expires_at: null })).status).toBe(200);
    expect((await sys.call('GET', '/v1/models', key)).status).toBe(200);
  });

  it('models allow-list: other models and aliases get 403 model_not_allowed; /v1/models shows the allowed ones', async () => {
    const { key } = await create({ name: 'only-a', scopes: ['invoke'], models: ['model-a'] });
    expect((await sys.call('POST', '/v1/chat/completions', key, chat('model-a'))).status).toBe(200);
    for (const model of ['model-b', 'chat']) {
      const r = await sys.call('POST', '/v1/chat/completions', key, chat(model));
      expect(r.status, model).toBe(403);
      expect(r.body.error.code).toBe('model_not_allowed');
      expect(r.body.error.param).toBe('model');
    }
    const stream = await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'hi', { stream: true }));
    expect(stream.status).toBe(403);
    const models = await sys.call('GET', '/v1/models', key);
    expect(models.body.data.map((m: { id: string }) => m.id)).toEqual(['model-a']);
  });

  it('a template whose model the key may not use is refused too', async () => {
    const t = await admin('POST', '/v1/templates', { name: 'greet', type: 'chat', template: [{ role: 'system', content: 'Be brief.' }], model: 'model-a' });
    expect(t.status, JSON.stringify(t.body)).toBe(201);
    const { key } = await create({ name: 'only-b', scopes: ['invoke'], models: ['model-b'] });
    const r = await sys.call('POST', '/v1/chat/completions', key, { prompt: { name: 'greet', version: 1 }, messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('model_not_allowed');
    expect((await sys.call('POST', '/v1/chat/completions', key, { prompt: { name: 'greet', version: 1 }, model: 'model-b', messages: [{ role: 'user', content: 'hi' }] })).status).toBe(200);
  });

  it('ledger: each call costed exactly from its usage (plain, streamed, cached tokens), cache hits free; grouped by key, team, model, prompt, day', async () => {
    await admin('PUT', '/v1/teams/ledger-team', { name: 'Ledger' });
    const { id, key } = await create({ name: 'ledger', scopes: ['invoke'], team: 'ledger-team' });
    sys.fixture.fake.setBehavior({ rules: [{ model: 'model-a', times: 1, reply: { cachedTokens: 3, tokens: 7 } }] });
    let expected = 0;
    const usages: unknown[] = [];
    const a = await sys.call('POST', '/v1/chat/completions', key, chat('model-a', 'a fairly long question to have some prompt tokens'));
    expect(a.status).toBe(200);
    expect(a.body.usage.prompt_tokens_details.cached_tokens).toBe(3);
    expected += expectedMicro('model-a', a.body.usage);
    usages.push(a.body.usage);
    expect(a.body.usage.cost_micro_usd).toBe(expectedMicro('model-a', a.body.usage));
    const b = await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'x'));
    expected += expectedMicro('model-b', b.body.usage);
    // a stream whose client did not ask for usage: billed all the same, no usage chunk sent
    const s = await sys.call('POST', '/v1/chat/completions', key, chat('model-a', 'streamed question', { stream: true }));
    expect(s.status).toBe(200);
    const events = (s.body as string).split('\n\n').filter((e) => e.startsWith('data: {'));
    expect(events.some((e) => e.includes('"usage":{'))).toBe(false);
    // the same deterministic request twice: the second is a cache hit and costs nothing
    const cacheable = chat('model-b', 'cache me', { temperature: 0 });
    const c1 = await sys.call('POST', '/v1/chat/completions', key, cacheable);
    expected += expectedMicro('model-b', c1.body.usage);
    const c2 = await sys.call('POST', '/v1/chat/completions', key, cacheable);
    expect(c2.headers.get('x-promptmesh-cache')).toBe('hit');
    expect(c2.body.usage.cost_micro_usd).toBe(0);

    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === 5, 10_000, 'five spend rows');
    const rows = (await pool.query('SELECT * FROM promptmesh_spend WHERE key_id = $1 ORDER BY at', [id])).rows;
    const streamed = rows.find((r) => !r.cache_hit && r.model === 'model-a' && Number(r.cached_input_tokens) === 0)!;
    expected += expectedMicro('model-a', { prompt_tokens: Number(streamed.input_tokens), completion_tokens: Number(streamed.output_tokens) });
    expect(rows.reduce((sum, r) => sum + Number(r.micro_usd), 0)).toBe(expected);
    expect(rows.filter((r) => r.cache_hit)).toHaveLength(1);
    expect(Number(rows.find((r) => r.cache_hit)!.micro_usd)).toBe(0);
    expect(rows.every((r) => r.team === 'ledger-team')).toBe(true);

    const byKey = await admin('GET', '/v1/spend?group_by=key');
    const mine = byKey.body.data.find((r: { key: string }) => r.key === id);
    expect(mine).toMatchObject({ micro_usd: expected, usd: expected / 1e6, requests: 5 });
    expect(mine.cached_input_tokens).toBe(3);
    const byTeam = await admin('GET', '/v1/spend?group_by=team');
    expect(byTeam.body.data.find((r: { team: string }) => r.team === 'ledger-team')).toMatchObject({ micro_usd: expected, requests: 5 });
    const byModel = await admin('GET', '/v1/spend?group_by=model');
    expect(byModel.body.data.map((r: { model: string }) => r.model).sort()).toEqual(expect.arrayContaining(['model-a', 'model-b']));
    const byDay = await admin('GET', `/v1/spend?group_by=day&from=${new Date().toISOString().slice(0, 10)}`);
    expect(byDay.body.data[0].day).toBe(new Date().toISOString().slice(0, 10));
    expect((await admin('GET', '/v1/spend?group_by=prompt')).status).toBe(200);

    // a key without admin sees its own rows only
    const own = await sys.call('GET', '/v1/spend?group_by=key', key);
    expect(own.status).toBe(200);
    expect(own.body.data.map((r: { key: string }) => r.key)).toEqual([id]);
    const user = await sys.call('GET', '/v1/spend?group_by=team', USER_KEY);
    expect(user.body.data).toEqual([]);

    // cost metrics name the key and the team
    const metrics = await (await fetch(`${sys.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`promptmesh_llm_cost_usd_total\\{[^}]*key="${id}"[^}]*team="ledger-team"`));
    expect(metrics).toMatch(new RegExp(`promptmesh_cache_savings_usd_total\\{[^}]*key="${id}"`));
  });

  it('budget: refused with 429 insufficient_quota / budget_exceeded once spent, naming the key and the reset time', async () => {
    const { id, key } = await create({ name: 'tiny-budget', scopes: ['invoke'], budget: { usd: 0.0001, period: 'day' } });
    let refused: { status: number; headers: Headers; body: any } | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      const r = await sys.call('POST', '/v1/chat/completions', key, chat('model-a', `question number ${i} with a few words`));
      if (r.status === 429) refused = r;
      else expect(r.status).toBe(200);
    }
    expect(refused).toBeDefined();
    expect(refused!.body.error).toMatchObject({ type: 'insufficient_quota', code: 'budget_exceeded' });
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    expect(refused!.body.error.message).toContain(`API key '${id}'`);
    expect(refused!.body.error.message).toContain(`${tomorrow}T00:00:00.000Z`);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    // raising the budget lets it through again
    expect((await admin('PATCH', `/v1/keys/${id}`, { budget: { usd: 100, period: 'month' } })).status).toBe(200);
    expect((await sys.call('POST', '/v1/chat/completions', key, chat('model-a'))).status).toBe(200);
    const metrics = await (await fetch(`${sys.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`promptmesh_budget_limit_usd\\{budget="key",id="${id}",period="month"\\} 100`));
    expect(metrics).toMatch(new RegExp(`promptmesh_budget_spent_usd\\{budget="key",id="${id}",period="month"\\} 0\\.\\d+`));
  });

  it('messages and responses are metered: plain and streamed, through the SDKs, spend exact in PostgreSQL', async () => {
    await admin('PUT', '/v1/teams/sdk-team', { name: 'SDK' });
    const { id, key } = await create({ name: 'sdk', scopes: ['invoke'], team: 'sdk-team', budget: { usd: 10, period: 'day' } });
    sys.fixture.fake.setBehavior({ rules: [{ model: 'claude-a', reply: { cachedTokens: 3 } }] });
    const anthropic = new Anthropic({ baseURL: sys.url, apiKey: key, maxRetries: 0 });
    const openai = new OpenAI({ baseURL: `${sys.url}/v1`, apiKey: key, maxRetries: 0 });
    let expected = 0;

    // Passed through to the Anthropic provider, plain and streamed (cache reads at their rate).
    const plain = await anthropic.messages.create({ model: 'claude-a', max_tokens: 64, messages: [{ role: 'user', content: 'a plain question for claude' }] });
    expect(plain.usage.cache_read_input_tokens).toBe(3);
    expected += expectedMicroAnthropic('claude-a', plain.usage);
    const streamed = await anthropic.messages.stream({ model: 'claude-a', max_tokens: 64, messages: [{ role: 'user', content: 'a streamed question for claude' }] }).finalMessage();
    expect(streamed.usage.output_tokens).toBeGreaterThan(0);
    expected += expectedMicroAnthropic('claude-a', streamed.usage);
    // Translated to the OpenAI-compatible provider.
    const translated = await anthropic.messages.create({ model: 'model-b', max_tokens: 64, messages: [{ role: 'user', content: 'translated, please' }] });
    expected += expectedMicroAnthropic('model-b', translated.usage);
    const translatedStream = await anthropic.messages.stream({ model: 'model-b', max_tokens: 64, messages: [{ role: 'user', content: 'translated and streamed' }] }).finalMessage();
    expected += expectedMicroAnthropic('model-b', translatedStream.usage);

    // The Responses API, plain and streamed.
    const response = await openai.responses.create({ model: 'gpt-r', input: 'a responses question' });
    expected += expectedMicroResponses('gpt-r', response.usage!);
    const events = await openai.responses.create({ model: 'gpt-r', input: 'a streamed responses question', stream: true });
    let completed: OpenAI.Responses.Response | undefined;
    for await (const ev of events) if (ev.type === 'response.completed') completed = ev.response;
    expect(completed?.usage?.output_tokens).toBeGreaterThan(0);
    expected += expectedMicroResponses('gpt-r', completed!.usage!);
    sys.fixture.fake.reset();

    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === 6, 10_000, 'six spend rows');
    const rows = (await pool.query('SELECT * FROM promptmesh_spend WHERE key_id = $1 ORDER BY at', [id])).rows;
    expect(rows.reduce((sum, r) => sum + Number(r.micro_usd), 0)).toBe(expected);
    expect(rows.map((r) => r.model).sort()).toEqual(['claude-a', 'claude-a', 'gpt-r', 'gpt-r', 'model-b', 'model-b']);
    expect(rows.filter((r) => r.model === 'claude-a').every((r) => Number(r.cached_input_tokens) === 3)).toBe(true);
    expect(rows.every((r) => r.team === 'sdk-team' && Number(r.micro_usd) > 0)).toBe(true);
    // llm's cost metric names the key and the team on these routes too.
    const metrics = await (await fetch(`${sys.url}/metrics`)).text();
    for (const model of ['claude-a', 'gpt-r']) expect(metrics).toMatch(new RegExp(`promptmesh_llm_cost_usd_total\\{[^}]*model="${model}"[^}]*key="${id}"[^}]*team="sdk-team"`));
  });

  it('messages and responses: a spent budget is a 429 (Anthropic shape on messages), a model off the list a 403', async () => {
    const onMessages = await create({ name: 'tiny-messages', scopes: ['invoke'], budget: { usd: 0.0001, period: 'day' } });
    let refused: { status: number; headers: Headers; body: any } | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      const r = await sys.call('POST', '/v1/messages', onMessages.key, message('claude-a', `messages question ${i} with a few words`));
      if (r.status === 429) refused = r;
      else expect(r.status, JSON.stringify(r.body)).toBe(200);
    }
    expect(refused?.body).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
    expect(refused!.body.error.message).toContain(`API key '${onMessages.id}' has spent its key budget`);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    // a streamed call is refused too
    expect((await sys.call('POST', '/v1/messages', onMessages.key, message('claude-a', 'more', { stream: true }))).status).toBe(429);

    const onResponses = await create({ name: 'tiny-responses', scopes: ['invoke'], budget: { usd: 0.0001, period: 'day' } });
    let refusedResponses: any;
    for (let i = 0; i < 50 && !refusedResponses; i++) {
      const r = await sys.call('POST', '/v1/responses', onResponses.key, { model: 'gpt-r', input: `responses question ${i} with a few words`, stream: i % 2 === 1 });
      if (r.status === 429) refusedResponses = r.body;
      else expect(r.status, JSON.stringify(r.body)).toBe(200);
    }
    expect(refusedResponses?.error).toMatchObject({ type: 'insufficient_quota', code: 'budget_exceeded' });

    const onlyA = await create({ name: 'only-a-apis', scopes: ['invoke'], models: ['model-a'] });
    const m = await sys.call('POST', '/v1/messages', onlyA.key, message('claude-a'));
    expect(m.status).toBe(403);
    expect(m.body).toMatchObject({ type: 'error', error: { type: 'permission_error' } });
    expect(m.body.error.message).toContain(`may not use model 'claude-a'`);
    const r = await sys.call('POST', '/v1/responses', onlyA.key, { model: 'gpt-r', input: 'hi' });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: 'model_not_allowed', param: 'model' });
    expect((await sys.call('POST', '/v1/messages', onlyA.key, message('model-a'))).status).toBe(200);
  });

  it('messages and responses streams a client leaves give their lease back (max_concurrent 1 frees at once)', async () => {
    const { key } = await create({ name: 'leaver', scopes: ['invoke'], max_concurrent: 1 });
    sys.fixture.fake.setBehavior({ rules: [{ reply: { tokens: 200, tokenDelayMs: 20 } }] });
    const bodies = [message('claude-a', 'a long stream', { stream: true }), message('model-b', 'a long translated stream', { stream: true })];
    const calls: Array<[string, unknown]> = [...bodies.map((b): [string, unknown] => ['/v1/messages', b]), ['/v1/responses', { model: 'gpt-r', input: 'a long responses stream', stream: true }]];
    for (const [path, body] of calls) {
      const abort = new AbortController();
      const res = await fetch(`${sys.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: abort.signal });
      expect(res.status, path).toBe(200);
      const reader = res.body!.getReader();
      await reader.read();
      abort.abort();
      await reader.cancel().catch(() => undefined);
      // the lease of the call that was left is released: the next call is admitted
      await waitFor(async () => (await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'next'))).status !== 429, 5_000, `${path}: lease released`);
    }
    sys.fixture.fake.reset();
  });

  it('messages and responses streams that break off (no usage reported) are not billed and give their lease back', async () => {
    const { id, key } = await create({ name: 'broken', scopes: ['invoke'], max_concurrent: 1, budget: { usd: 1, period: 'day' } });
    const calls: Array<[string, Record<string, unknown>]> = [
      ['/v1/messages', message('claude-a', 'a stream that breaks', { stream: true })],
      ['/v1/messages', message('model-b', 'a translated stream that breaks', { stream: true })],
      ['/v1/responses', { model: 'gpt-r', input: 'a responses stream that breaks', stream: true }],
    ];
    for (const [path, body] of calls) {
      sys.fixture.fake.setBehavior({ rules: [{ model: body.model as string, stream: true, times: 1, fault: { type: 'error_event', afterChunks: 1 } }] });
      const r = await sys.call('POST', path, key, body);
      expect(r.status, path).toBe(200);
      // Anthropic's error event on messages; on responses the provider's body as it came, without usage
      expect(r.body as string, path).toMatch(path === '/v1/messages' ? /event: error\n/ : /data: \{"error"/);
      expect(r.body as string, path).not.toMatch(/message_stop|response\.completed/);
      // the next call is admitted at once: the broken one's lease is gone
      const next = await sys.call('POST', '/v1/chat/completions', key, chat('model-b', `after ${path}`));
      expect(next.status, `${path}: ${JSON.stringify(next.body)}`).toBe(200);
    }
    sys.fixture.fake.reset();
    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', [id])).rows[0].n === 3, 10_000, 'three rows');
    const rows = (await pool.query('SELECT model FROM promptmesh_spend WHERE key_id = $1', [id])).rows;
    // only the three chat calls after them are counted
    expect(rows.map((r) => r.model)).toEqual(['model-b', 'model-b', 'model-b']);
  });

  it('a streamed /v1/messages call with a prompt counts its cost against the prompt version (metric, stats and spend)', async () => {
    const t = await admin('POST', '/v1/templates', { name: 'claude-greet', type: 'chat', template: [{ role: 'system', content: 'Be brief.' }], model: 'claude-a' });
    expect(t.status, JSON.stringify(t.body)).toBe(201);
    const { key } = await create({ name: 'prompted', scopes: ['invoke'] });
    const anthropic = new Anthropic({ baseURL: sys.url, apiKey: key, maxRetries: 0 });
    const final = await anthropic.messages
      .stream({ max_tokens: 64, messages: [{ role: 'user', content: 'hi from a template' }], prompt: { name: 'claude-greet', version: 1 } } as unknown as Anthropic.MessageStreamParams)
      .finalMessage();
    const micro = expectedMicroAnthropic('claude-a', final.usage);
    expect(micro).toBeGreaterThan(0);
    const metrics = await (await fetch(`${sys.url}/metrics`)).text();
    const line = metrics.split('\n').find((l) => l.startsWith('promptmesh_prompt_cost_usd_total{prompt="claude-greet",version="1"}'));
    expect(line, 'the prompt cost series').toBeDefined();
    expect(Number(line!.split(' ').pop())).toBeCloseTo(micro / 1e6, 9);
    const stats = await admin('GET', '/v1/stats/prompts/claude-greet');
    expect(stats.status, JSON.stringify(stats.body)).toBe(200);
    expect(JSON.stringify(stats.body)).toMatch(/"cost_usd":0\.\d+/);
    await waitFor(async () => {
      const byPrompt = await admin('GET', '/v1/spend?group_by=prompt');
      return byPrompt.body.data.find((r: { prompt: string }) => r.prompt === 'claude-greet')?.micro_usd === micro;
    }, 10_000, 'the prompt spend');
  });

  it('team budget: refused once the team spent it, the message says team', async () => {
    await admin('PUT', '/v1/teams/small', { name: 'Small', budget: { usd: 0.0001, period: 'month' } });
    const one = await create({ name: 'small-1', scopes: ['invoke'], team: 'small' });
    const two = await create({ name: 'small-2', scopes: ['invoke'], team: 'small' });
    let refused: any;
    for (let i = 0; i < 50 && !refused; i++) {
      const r = await sys.call('POST', '/v1/chat/completions', i % 2 ? one.key : two.key, chat('model-a', `team question ${i} with words`));
      if (r.status === 429) refused = r.body;
    }
    expect(refused?.error.code).toBe('budget_exceeded');
    expect(refused.error.message).toContain(`team 'small'`);
    // both keys are refused now
    for (const k of [one.key, two.key]) expect((await sys.call('POST', '/v1/chat/completions', k, chat('model-a'))).status).toBe(429);
  });

  it('max_concurrent: one request in flight, the next refused with 429 concurrency_limit_exceeded, then free again', async () => {
    const { key } = await create({ name: 'serial', scopes: ['invoke'], max_concurrent: 1 });
    sys.fixture.fake.setBehavior({ rules: [{ times: 1, latencyMs: 1_500 }] });
    const slow = sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'slow one'));
    await new Promise((r) => setTimeout(r, 300));
    const second = await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'second'));
    expect(second.status).toBe(429);
    expect(second.body.error.code).toBe('concurrency_limit_exceeded');
    expect((await slow).status).toBe(200);
    expect((await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'third'))).status).toBe(200);
    sys.fixture.fake.reset();
  });

  it('a call its admission refuses reaches no provider and is served no cache hit (the admission runs beside the call, llm waits for it)', async () => {
    const { key } = await create({ name: 'admission-cache', scopes: ['invoke'], max_concurrent: 1 });
    const fake = sys.fixture.fake;
    fake.reset();
    const cached = chat('model-b', 'an answer worth caching', { temperature: 0 });
    const first = await sys.call('POST', '/v1/chat/completions', key, cached);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-promptmesh-cache')).toBe('miss');
    fake.setBehavior({ rules: [{ times: 1, latencyMs: 1_500 }] });
    const slow = sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'a slow one'));
    await new Promise((r) => setTimeout(r, 300));
    // At its concurrency limit: refused, though the answer is in the cache; plain and streamed.
    const refused = await sys.call('POST', '/v1/chat/completions', key, cached);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('concurrency_limit_exceeded');
    expect(refused.headers.get('x-promptmesh-cache')).toBeNull();
    const refusedMiss = await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'not cached', { stream: true }));
    expect(refusedMiss.status).toBe(429);
    expect((await slow).status).toBe(200);
    // Only the first call and the slow one reached the provider.
    expect(fake.stats.outcomes.ok).toBe(2);
    const hit = await sys.call('POST', '/v1/chat/completions', key, cached);
    expect(hit.status).toBe(200);
    expect(hit.headers.get('x-promptmesh-cache')).toBe('hit');
    fake.reset();
  });

  it('a call its admission refuses gives back the tokens llm reserved for it meanwhile', async () => {
    // A call reserves its prompt and max_tokens of the key's 290 tpm and settles at what it used.
    // The slow call reserves ~157 (a 50-word prompt) and uses ~110 (the fake echoes it); the
    // others reserve ~108. The refused call's ~108 fits beside the slow one's; kept, it would
    // leave no room for the next call (110 + 108 + 108 > 290); given back, the next fits.
    const { key } = await create({ name: 'admission-tpm', scopes: ['invoke'], max_concurrent: 1, tpm: 290 });
    const fake = sys.fixture.fake;
    fake.setBehavior({ rules: [{ times: 1, latencyMs: 1_500 }] });
    const slow = sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'word '.repeat(50).trim(), { max_tokens: 100 }));
    await new Promise((r) => setTimeout(r, 300));
    const refused = await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'refused', { max_tokens: 100 }));
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('concurrency_limit_exceeded');
    expect((await slow).status).toBe(200);
    const next = await sys.call('POST', '/v1/chat/completions', key, chat('model-b', 'next', { max_tokens: 100 }));
    expect(next.status, JSON.stringify(next.body)).toBe(200);
    fake.reset();
  });

  it('team limits: rpm over all the team keys', async () => {
    await admin('PUT', '/v1/teams/slow-team', { name: 'Slow', rpm: 2 });
    const one = await create({ name: 'st-1', scopes: ['invoke'], team: 'slow-team' });
    const two = await create({ name: 'st-2', scopes: ['invoke'], team: 'slow-team' });
    expect((await sys.call('GET', '/v1/models', one.key)).status).toBe(200);
    expect((await sys.call('GET', '/v1/models', two.key)).status).toBe(200);
    const third = await sys.call('GET', '/v1/models', one.key);
    expect(third.status).toBe(429);
    expect(third.body.error.message).toContain(`team 'slow-team'`);
  });

  it('teams: create, replace, get and list', async () => {
    const created = await admin('PUT', '/v1/teams/growth', { name: 'Growth', budget: { usd: 50, period: 'month' }, rpm: 100 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'growth', name: 'Growth', budget: { usd: 50, period: 'month' }, rpm: 100, tpm: null });
    const replaced = await admin('PUT', '/v1/teams/growth', { name: 'Growth 2' });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({ name: 'Growth 2', budget: null, rpm: null });
    expect((await admin('GET', '/v1/teams/growth')).body.name).toBe('Growth 2');
    expect((await admin('GET', '/v1/teams')).body.data.map((t: { id: string }) => t.id)).toContain('growth');
  });
});

describe('keys API with PostgreSQL away', () => {
  let sys: RunningKeys;
  const admin = (method: string, path: string, body?: unknown) => sys.call(method, path, ADMIN_KEY, body);
  const setConnections = async (allow: boolean) => {
    const c = new pg.Client({ connectionString: TEST_PG_ADMIN_URL });
    await c.connect();
    try {
      await c.query(`ALTER DATABASE ${sys.fixture.db.name} WITH ALLOW_CONNECTIONS ${allow}`);
      if (!allow) await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [sys.fixture.db.name]);
    } finally {
      await c.end();
    }
  };
  beforeAll(async () => {
    sys = await startKeysSystem('pgdown');
  });
  afterAll(async () => {
    await setConnections(true).catch(() => undefined);
    await sys?.close();
  });

  it('keys in use keep working from memory, changes and spend answer 503, and the buffered spend is written once it is back', async () => {
    const { id, key } = (await admin('POST', '/v1/keys', { name: 'survives', scopes: ['invoke', 'admin'] })).body as { id: string; key: string };
    await setConnections(false);
    for (let i = 0; i < 3; i++) expect((await sys.call('POST', '/v1/chat/completions', key, chat('model-b', `while away ${i}`))).status).toBe(200);
    const create = await admin('POST', '/v1/keys', { name: 'later', scopes: ['invoke'] });
    expect(create.status).toBe(503);
    expect(create.body.error.code).toBe('database_unavailable');
    expect((await sys.call('GET', '/v1/spend', key)).status).toBe(503);
    await setConnections(true);
    await waitFor(async () => {
      const r = await sys.call('GET', '/v1/spend?group_by=key', key);
      return r.status === 200 && r.body.data[0]?.key === id && r.body.data[0].requests === 3;
    }, 15_000, 'the buffered rows in PostgreSQL');
  });
});
