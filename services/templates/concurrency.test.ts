import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTemplates, type RunningTemplates } from '../../test/support/templates-service';

let svc: RunningTemplates;
// One connection per writer: the 50 writes really are in flight together.
const agent = new Agent({ connections: 64, pipelining: 0 });

beforeAll(async () => {
  svc = await startTemplates({ label: 'conc' });
});

afterAll(async () => {
  await agent.close();
  await svc?.close();
});

async function post(path: string, body: unknown, actor?: string): Promise<{ status: number; body: any }> {
  const res = await request(`${svc.url}${path}`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/json', ...(actor ? { 'x-promptmesh-actor': actor } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.statusCode, body: await res.body.json() };
}

describe('concurrency', () => {
  it('numbers versions 1..51 without gaps or duplicates under 50 concurrent writers', async () => {
    expect((await post('/v1/templates', { name: 'hot', type: 'text', template: 'v1' })).status).toBe(201);
    const writers = Array.from({ length: 50 }, (_, i) =>
      post('/v1/templates/hot/versions', { type: 'text', template: `writer ${i} says {{x}}`, labels: i % 5 === 0 ? ['staging'] : [] }, `w${i}`),
    );
    const results = await Promise.all(writers);
    for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(201);
    const numbers = results.map((r) => r.body.version as number).sort((a, b) => a - b);
    expect(numbers).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));

    // What each writer was told is what was stored under that number.
    const listed = await request(`${svc.url}/v1/templates/hot/versions?limit=200`, { dispatcher: agent });
    const stored = (await listed.body.json()) as any;
    expect(stored.latest_version).toBe(51);
    expect(stored.data.map((v: any) => v.version)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    const byVersion = new Map(stored.data.map((v: any) => [v.version, v]));
    for (const r of results) {
      const v = byVersion.get(r.body.version) as any;
      expect(v.template).toBe(r.body.template);
      expect(v.created_by).toBe(r.body.created_by);
    }
    // Every label move and every version is in the change feed exactly once, in order.
    const feed = await svc.core.changesSince(0, 1000);
    const versionChanges = feed.changes.filter((c) => c.name === 'hot' && c.kind === 'version').map((c) => c.version);
    expect([...versionChanges].sort((a, b) => a! - b!)).toEqual(numbers);
    const seqs = feed.changes.map((c) => c.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it('creates one template when 20 clients create the same name at once', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => post('/v1/templates', { name: 'race', type: 'text', template: `t${i}` })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(19);
  });

  it('keeps a label consistent under concurrent moves, with every move in its history', async () => {
    await post('/v1/templates', { name: 'flip', type: 'text', template: 'a' });
    for (let i = 0; i < 4; i++) await post('/v1/templates/flip/versions', { type: 'text', template: `b${i}` });
    const moves = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const res = await request(`${svc.url}/v1/templates/flip/labels/production`, {
          method: 'PUT',
          dispatcher: agent,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ version: (i % 5) + 1 }),
        });
        return { status: res.statusCode, body: (await res.body.json()) as any };
      }),
    );
    for (const m of moves) expect(m.status).toBe(200);
    const history = await svc.core.labelHistory('flip', 'production', { limit: 200 });
    // Each recorded move starts where the previous one ended: no lost updates.
    const chronological = [...history.data].reverse();
    for (let i = 1; i < chronological.length; i++) expect(chronological[i]!.from).toEqual(chronological[i - 1]!.to);
    expect(history.data.length).toBe(1 + moves.filter((m) => m.body.changed).length);
    const current = await svc.core.get('flip');
    expect(current.split).toEqual(history.data[0]!.to);
  });
});
