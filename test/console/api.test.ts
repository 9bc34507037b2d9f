/**
 * The console's server side over real sockets: the static assets (CSP, caching, no traversal,
 * public) and the stats API over the services' own aggregates (Redis), which must agree with
 * the Prometheus counters.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP } from '../../services/router/console';
import { CONSOLE_KEYS, startConsoleSystem, type ConsoleSystem } from './harness';

let sys: ConsoleSystem;

beforeAll(async () => {
  sys = await startConsoleSystem('api');
  const created = await sys.call('POST', '/v1/templates', { name: 'greet', type: 'text', template: 'Hello {{name}}', model: 'chat' });
  expect(created.status).toBe(201);
  const v2 = await sys.call('POST', '/v1/templates/greet/versions', { type: 'text', template: 'Hi there {{name}}', model: 'chat' });
  expect(v2.status).toBe(201);
});

afterAll(async () => {
  await sys?.close();
});

/** The sum over every series of `name` whose labels include `labels`. */
function metricSum(text: string, name: string, labels: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('console assets', () => {
  it('serves index.html without a key, with the strict policy and no caching', async () => {
    const res = await fetch(`${sys.url}/console/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const html = await res.text();
    expect(html).not.toMatch(/<script>(?!<)|<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i);
    const js = /src="(assets\/main-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const css = /href="(assets\/main-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    expect(js).toBeDefined();
    expect(css).toBeDefined();

    const script = await fetch(`${sys.url}/console/${js}`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = script.headers.get('etag')!;
    expect((await fetch(`${sys.url}/console/${js}`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${sys.url}/console/${css}`)).headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('redirects /console to /console/ and answers 404 for anything not built, never a file outside', async () => {
    const redirect = await fetch(`${sys.url}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/console/');
    for (const path of ['/console/nope.js', '/console/assets/../../package.json', '/console/%2e%2e/%2e%2e/package.json', '/console/..%2f..%2fpackage.json']) {
      const res = await fetch(`${sys.url}${path}`);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
      expect(await res.text(), path).not.toContain('"devDependencies"');
    }
  });
});

describe('stats API', () => {
  it('counts each prompt version like the Prometheus counter does, with errors, latency and cost', async () => {
    const before = await (await fetch(`${sys.url}/metrics`)).text();
    for (const version of [1, 1, 1, 2]) {
      const res = await sys.call('POST', '/v1/chat/completions', { model: 'chat', prompt: { name: 'greet', version, variables: { name: 'Ada' } } });
      expect(res.status).toBe(200);
    }
    // A streamed one, with usage (so its cost is counted too).
    const streamed = await fetch(`${sys.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CONSOLE_KEYS.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'chat', stream: true, stream_options: { include_usage: true }, prompt: { name: 'greet', version: 2, variables: { name: 'Bo' } } }),
    });
    expect(streamed.status).toBe(200);
    expect(await streamed.text()).toContain('[DONE]');
    // One failure: the provider answers 500 for the next request of either model.
    sys.fake.setBehavior({ rules: [{ times: 1, fault: { type: 'status', status: 500 } }] });
    const failed = await sys.call('POST', '/v1/chat/completions', { model: 'chat', prompt: { name: 'greet', version: 2, variables: { name: 'Cy' } } });
    expect(failed.status).toBeGreaterThanOrEqual(500);
    sys.fake.setBehavior({});
    // A client mistake (missing variable) is no error of the version, and is not a request upstream.
    expect((await sys.call('POST', '/v1/chat/completions', { model: 'chat', prompt: { name: 'greet', version: 2 } })).status).toBe(400);

    const stats = await sys.call<{ prompt: string; versions: Array<{ version: number; requests: number; errors: number; error_rate: number; cost_usd: number; latency_ms: { p50: number | null }; points: unknown[] }> }>(
      'GET',
      '/v1/stats/prompts/greet',
    );
    expect(stats.status).toBe(200);
    const v1 = stats.body.versions.find((v) => v.version === 1)!;
    const v2 = stats.body.versions.find((v) => v.version === 2)!;
    expect(v1.requests).toBe(3);
    expect(v1.errors).toBe(0);
    expect(v2.requests).toBe(3);
    expect(v2.errors).toBe(1);
    expect(v2.error_rate).toBeCloseTo(1 / 3, 5);
    expect(v1.points).toHaveLength(60);
    expect(v1.latency_ms.p50).toBeGreaterThan(0);
    // fake-a is priced; with weights 3:1 some calls went there, and model-b is free: cost >= 0,
    // and the sum over versions is what the llm cost counter says for fake-a.
    const after = await (await fetch(`${sys.url}/metrics`)).text();
    const costDelta = metricValue(after, 'promptmesh_llm_cost_usd_total', 'provider="fake-a"') - metricValue(before, 'promptmesh_llm_cost_usd_total', 'provider="fake-a"');
    expect(v1.cost_usd + v2.cost_usd).toBeCloseTo(costDelta, 6);

    // The figures agree with the dashboards' counter (requests per prompt version).
    for (const v of [v1, v2]) {
      const delta =
        metricValue(after, 'promptmesh_prompt_requests_total', `version="${v.version}"`) - metricValue(before, 'promptmesh_prompt_requests_total', `version="${v.version}"`);
      expect(v.requests, `version ${v.version}`).toBe(delta);
    }
  });

  it('reports per-provider calls, errors and cost, and the aliases with their weights', async () => {
    // The llm side flushes once a second.
    let body: { providers: Array<{ provider: string; requests: number; errors: number }> } | undefined;
    for (let i = 0; i < 50; i++) {
      body = (await sys.call<typeof body>('GET', '/v1/stats/providers')).body;
      const total = body!.providers.reduce((n, p) => n + p.requests, 0);
      if (total >= 6) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const total = body!.providers.reduce((n, p) => n + p.requests, 0);
    const errors = body!.providers.reduce((n, p) => n + p.errors, 0);
    expect(total).toBe(6);
    expect(errors).toBe(1);
    const providers = await sys.call<{ data: Array<{ name: string; circuit: { state: string } }>; aliases: Record<string, Array<{ provider: string; weight: number }>> }>('GET', '/v1/providers');
    expect(providers.body.data.map((p) => p.name).sort()).toEqual(['fake-a', 'fake-b']);
    expect(providers.body.aliases.chat).toEqual([
      { provider: 'fake-a', model: 'model-a', weight: 3 },
      { provider: 'fake-b', model: 'model-b', weight: 1 },
    ]);
  });

  it('needs the admin scope and names a bad template name', async () => {
    expect((await sys.call('GET', '/v1/stats/prompts/greet', undefined, 'not-a-key')).status).toBe(401);
    expect((await sys.call('GET', '/v1/stats/prompts/greet', undefined, CONSOLE_KEYS.user)).status).toBe(403);
    expect((await sys.call('GET', '/v1/stats/providers', undefined, CONSOLE_KEYS.user)).status).toBe(403);
    const bad = await sys.call<{ error: { param: string } }>('GET', '/v1/stats/prompts/Not%20A%20Name');
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe('name');
    const none = await sys.call<{ versions: unknown[] }>('GET', '/v1/stats/prompts/never-used');
    expect(none.status).toBe(200);
    expect(none.body.versions).toEqual([]);
  });
});

describe('spend series (GET /v1/spend?interval=), what the spend page charts', () => {
  type Row = { key?: string; team?: string | null; start?: string; micro_usd: number; usd: number; requests: number; input_tokens: number; output_tokens: number };
  const spend = (query: string, key?: string) => sys.call<{ interval?: string; data: Row[]; error?: { param: string } }>('GET', `/v1/spend?${query}`, undefined, key);

  it('splits each group into UTC hours or days, whose sums are the ungrouped totals', async () => {
    // Rows of the past at known instants, written as the ledger writes them.
    const pool = new pg.Pool({ connectionString: sys.databaseUrl, max: 1 });
    try {
      const rows: Array<[string, string, string, number]> = [
        ['c1', '2026-11-20T10:15:00Z', 'key_past_x', 100],
        ['c2', '2026-11-20T10:45:00Z', 'key_past_x', 50],
        ['c3', '2026-11-20T23:59:59.999Z', 'key_past_x', 7],
        ['c4', '2026-11-21T00:00:00Z', 'key_past_y', 3],
      ];
      for (const [callId, at, keyId, micro] of rows) {
        await pool.query(`INSERT INTO promptmesh_spend (call_id, at, key_id, provider, model, micro_usd, input_tokens, output_tokens) VALUES ($1, $2, $3, 'fake-a', 'model-a', $4, 10, 5)`, [callId, at, keyId, micro]);
      }
    } finally {
      await pool.end();
    }
    const hourly = await spend('group_by=key&interval=hour&from=2026-11-20&to=2026-11-20');
    expect(hourly.status, JSON.stringify(hourly.body)).toBe(200);
    expect(hourly.body.interval).toBe('hour');
    expect(hourly.body.data.map((r) => [r.key, r.start, r.micro_usd, r.requests])).toEqual([
      ['key_past_x', '2026-11-20T10:00:00.000Z', 150, 2],
      ['key_past_x', '2026-11-20T23:00:00.000Z', 7, 1],
    ]);
    const daily = await spend('group_by=key&interval=day&from=2026-11-20&to=2026-11-21');
    expect(daily.body.data.map((r) => [r.key, r.start, r.micro_usd, r.usd, r.input_tokens, r.output_tokens])).toEqual([
      ['key_past_x', '2026-11-20T00:00:00.000Z', 157, 0.000157, 30, 15],
      ['key_past_y', '2026-11-21T00:00:00.000Z', 3, 0.000003, 10, 5],
    ]);

    // Today's real calls: the hours of a range add up to the range's totals, group by group.
    const from = new Date(Date.now() - 3 * 3_600_000).toISOString();
    const to = new Date(Date.now() + 3_600_000).toISOString();
    const adminCalls = async () => (await spend(`group_by=key&from=${from}&to=${to}`)).body.data.find((r) => r.key === 'console-admin')?.requests ?? 0;
    const callsBefore = await adminCalls();
    for (let i = 0; i < 3; i++) expect((await sys.call('POST', '/v1/chat/completions', { model: 'model-a', messages: [{ role: 'user', content: `spend ${i}` }] })).status).toBe(200);
    // The router records a call's spend just after answering it (docs/keys.md): wait for all three.
    await expect.poll(adminCalls).toBe(callsBefore + 3);
    for (const group of ['key', 'model', 'team', 'prompt'] as const) {
      const totals = await spend(`group_by=${group}&from=${from}&to=${to}`);
      const series = await spend(`group_by=${group}&interval=hour&from=${from}&to=${to}`);
      const summed = new Map<string | null, number>();
      for (const r of series.body.data) {
        const g = (r as Record<string, unknown>)[group] as string | null;
        summed.set(g, (summed.get(g) ?? 0) + r.micro_usd);
        expect(Date.parse(r.start!) % 3_600_000, `${group}: ${r.start}`).toBe(0);
      }
      expect(totals.body.data.length, group).toBeGreaterThan(0);
      expect(new Map(totals.body.data.map((r) => [(r as Record<string, unknown>)[group] as string | null, r.micro_usd])), group).toEqual(summed);
    }
  });

  it('refuses an unknown interval and hourly buckets over more than 31 days, naming interval', async () => {
    for (const query of ['interval=week', 'interval=', 'interval=hour&from=2026-01-01&to=2026-02-15']) {
      const r = await spend(query);
      expect(r.status, query).toBe(400);
      expect(r.body.error?.param, query).toBe('interval');
    }
    expect((await spend('interval=hour&from=2026-01-01&to=2026-01-31')).status).toBe(200);
    expect((await spend('interval=day&from=2026-01-01&to=2026-12-31')).status).toBe(200);
  });

  it('shows a key without admin only its own series, which agree with the cost counter the dashboards use', async () => {
    const before = await (await fetch(`${sys.url}/metrics`)).text();
    const spentBefore = (await spend('group_by=key&interval=day', CONSOLE_KEYS.user)).body.data.reduce((n, r) => n + r.micro_usd, 0);
    for (const content of ['mine', 'mine too']) {
      expect((await sys.call('POST', '/v1/chat/completions', { model: 'model-a', messages: [{ role: 'user', content }] }, CONSOLE_KEYS.user)).status).toBe(200);
    }
    // The counter moves before the answer; the ledger records the spend just after it.
    const after = await (await fetch(`${sys.url}/metrics`)).text();
    const counter = metricSum(after, 'promptmesh_llm_cost_usd_total', 'key="console-user"') - metricSum(before, 'promptmesh_llm_cost_usd_total', 'key="console-user"');
    expect(counter).toBeGreaterThan(0);
    let own = await spend('group_by=key&interval=day', CONSOLE_KEYS.user);
    await expect
      .poll(async () => {
        own = await spend('group_by=key&interval=day', CONSOLE_KEYS.user);
        return own.body.data.reduce((n, r) => n + r.micro_usd, 0) - spentBefore;
      })
      .toBeCloseTo(counter * 1e6, 3);
    expect(own.status).toBe(200);
    expect(new Set(own.body.data.map((r) => r.key))).toEqual(new Set(['console-user']));
  });
});
