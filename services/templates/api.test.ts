import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../kit/logger';
import { freePort } from '../../test/support/net';
import { PgTemplatesCore } from './core';
import { startTemplates, type RunningTemplates } from '../../test/support/templates-service';

let svc: RunningTemplates;

beforeAll(async () => {
  svc = await startTemplates({ label: 'api' });
});

afterAll(async () => {
  await svc?.close();
});

interface Answer {
  status: number;
  body: any;
  headers: Record<string, unknown>;
}

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`${svc.url}${path}`, {
    method: method as 'GET',
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : null, headers: res.headers };
}

/** Asserts a 400 in the OpenAI error shape naming `param`. */
function expect400(res: Answer, param: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error.type).toBe('invalid_request_error');
  expect(res.body.error.param).toBe(param);
  expect(res.body.error.message).toContain(param.split(/[.[]/)[0]);
}

describe('templates API', () => {
  it('creates, versions, resolves by label and version, and lists versions', async () => {
    const created = await call('POST', '/v1/templates', {
      name: 'support.greeting',
      type: 'text',
      template: 'Hello {{ name }}, welcome to {{product}}.',
      description: 'first',
      model: 'chat',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'support.greeting',
      version: 1,
      type: 'text',
      variables: ['name', 'product'],
      labels: ['production'],
      description: 'first',
      model: 'chat',
      created_by: 'anonymous',
    });

    const v2 = await call(
      'POST',
      '/v1/templates/support.greeting/versions',
      { type: 'chat', template: [{ role: 'system', content: 'Be {{tone}}.' }, { role: 'user', content: 'Hi {{name}}' }], labels: ['staging'] },
      { 'x-promptmesh-actor': 'key-42' },
    );
    expect(v2.status).toBe(201);
    expect(v2.body).toMatchObject({ version: 2, type: 'chat', variables: ['name', 'tone'], labels: ['staging'], created_by: 'key-42' });

    // production still on 1 (default label), staging on 2, version 2 directly.
    const prod = await call('GET', '/v1/templates/support.greeting');
    expect(prod.body).toMatchObject({ version: 1, label: 'production', split: [{ version: 1, weight: 100 }], template: 'Hello {{ name }}, welcome to {{product}}.' });
    expect((await call('GET', '/v1/templates/support.greeting?label=staging')).body).toMatchObject({ version: 2, label: 'staging' });
    expect((await call('GET', '/v1/templates/support.greeting?version=2')).body).toMatchObject({ version: 2, label: null, split: null });

    const versions = await call('GET', '/v1/templates/support.greeting/versions');
    expect(versions.body.data.map((v: any) => v.version)).toEqual([1, 2]);
    expect(versions.body).toMatchObject({ latest_version: 2, archived: false, labels: { production: [{ version: 1, weight: 100 }], staging: [{ version: 2, weight: 100 }] } });
    const newest = await call('GET', '/v1/templates/support.greeting/versions?order=desc&limit=1');
    expect(newest.body.data.map((v: any) => v.version)).toEqual([2]);
    expect(newest.body.has_more).toBe(true);
  });

  it('creates with the labels the body names instead of production', async () => {
    const res = await call('POST', '/v1/templates', { name: 'only-staging', type: 'text', template: 'x', labels: ['staging', 'canary'] });
    expect(res.body.labels).toEqual(['staging', 'canary']);
    const prod = await call('GET', '/v1/templates/only-staging');
    expect(prod.status).toBe(404);
    expect(prod.body.error).toMatchObject({ code: 'label_not_found', param: 'label' });
    expect((await call('GET', '/v1/templates/only-staging?label=canary')).body.version).toBe(1);
  });

  it('answers 404 for unknown templates, versions and labels, and 409 for a taken name', async () => {
    await call('POST', '/v1/templates', { name: 'known', type: 'text', template: 'x' });
    expect((await call('GET', '/v1/templates/unknown')).body.error).toMatchObject({ type: 'not_found_error', code: 'template_not_found' });
    expect((await call('GET', '/v1/templates/known?version=9')).body.error).toMatchObject({ code: 'version_not_found', param: 'version' });
    expect((await call('GET', '/v1/templates/known?label=nope')).status).toBe(404);
    expect((await call('POST', '/v1/templates/unknown/versions', { type: 'text', template: 'x' })).status).toBe(404);
    expect((await call('POST', '/v1/templates/unknown/render', { variables: {} })).status).toBe(404);
    expect((await call('PUT', '/v1/templates/known/labels/production', { version: 5 })).body.error).toMatchObject({ code: 'version_not_found', param: 'version' });
    const again = await call('POST', '/v1/templates', { name: 'known', type: 'text', template: 'y' });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ type: 'conflict_error', param: 'name' });
  });

  it('moves labels atomically, keeps their history, and rolls back by moving back', async () => {
    await call('POST', '/v1/templates', { name: 'rollback', type: 'text', template: 'v1 {{x}}' });
    await call('POST', '/v1/templates/rollback/versions', { type: 'text', template: 'v2 {{x}}' });
    await call('POST', '/v1/templates/rollback/versions', { type: 'text', template: 'v3 {{x}}' });

    const up = await call('PUT', '/v1/templates/rollback/labels/production', { version: 3 }, { 'x-promptmesh-actor': 'alice' });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ label: 'production', versions: [{ version: 3, weight: 100 }], previous: [{ version: 1, weight: 100 }], changed: true, updated_by: 'alice' });
    expect((await call('POST', '/v1/templates/rollback/render', { variables: { x: '!' } })).body.messages).toEqual([{ role: 'user', content: 'v3 !' }]);

    const back = await call('PUT', '/v1/templates/rollback/labels/production', { version: 1 }, { 'x-promptmesh-actor': 'bob' });
    expect(back.body.previous).toEqual([{ version: 3, weight: 100 }]);
    expect((await call('POST', '/v1/templates/rollback/render', { variables: { x: '!' } })).body.messages[0].content).toBe('v1 !');

    const same = await call('PUT', '/v1/templates/rollback/labels/production', { version: 1 });
    expect(same.body.changed).toBe(false);

    const history = await call('GET', '/v1/templates/rollback/labels/production/history');
    expect(history.status).toBe(200);
    expect(history.body.data.map((m: any) => [m.from?.[0]?.version ?? null, m.to[0].version, m.actor])).toEqual([
      [3, 1, 'bob'],
      [1, 3, 'alice'],
      [null, 1, 'anonymous'],
    ]);
    for (const move of history.body.data) expect(Number.isNaN(Date.parse(move.at))).toBe(false);
    expect((await call('GET', '/v1/templates/rollback/labels/never/history')).status).toBe(404);
  });

  it('splits a label across versions by weight, sticky per session', async () => {
    await call('POST', '/v1/templates', { name: 'canary', type: 'text', template: 'old' });
    await call('POST', '/v1/templates/canary/versions', { type: 'text', template: 'new' });
    const split = await call('PUT', '/v1/templates/canary/labels/production', {
      versions: [
        { version: 1, weight: 70 },
        { version: 2, weight: 30 },
      ],
    });
    expect(split.status).toBe(200);
    expect(split.body.versions).toEqual([
      { version: 1, weight: 70 },
      { version: 2, weight: 30 },
    ]);

    const seen = new Map<number, number>();
    for (let i = 0; i < 40; i++) {
      const session = `s-${i}`;
      const a = await call('POST', '/v1/templates/canary/render', { session_id: session });
      const b = await call('GET', `/v1/templates/canary?session_id=${session}`);
      expect(a.body.version).toBe(b.body.version);
      expect(a.body.split).toEqual(split.body.versions);
      expect(a.body.label).toBe('production');
      expect(a.body.messages[0].content).toBe(a.body.version === 1 ? 'old' : 'new');
      seen.set(a.body.version, (seen.get(a.body.version) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual([1, 2]);

    for (const [body, param] of [
      [{ versions: [{ version: 1, weight: 70 }, { version: 2, weight: 20 }] }, 'versions'],
      [{ versions: [{ version: 1, weight: 50 }, { version: 1, weight: 50 }] }, 'versions'],
      [{ versions: [{ version: 1, weight: 101 }] }, 'versions[0].weight'],
      [{ versions: [{ version: 1, weight: 50 }, { version: 9, weight: 50 }] }, 'versions[1].version'],
      [{ version: 1, versions: [{ version: 1, weight: 100 }] }, 'versions'],
      [{}, 'version'],
      [{ version: '1' }, 'version'],
    ] as const) {
      const res = await call('PUT', '/v1/templates/canary/labels/production', body);
      if (param === 'versions[1].version') {
        expect(res.status).toBe(404);
        expect(res.body.error.param).toBe(param);
      } else expect400(res, param);
    }
  });

  it('renders chat templates with every missing variable listed, no HTML escaping, nothing executed', async () => {
    await call('POST', '/v1/templates', {
      name: 'chatty',
      type: 'chat',
      template: [
        { role: 'system', content: 'You are {{persona}} for {{company}}.' },
        { role: 'user', content: '{{question}}' },
      ],
    });
    const missing = await call('POST', '/v1/templates/chatty/render', { variables: { persona: 'a bot' } });
    expect400(missing, 'variables');
    expect(missing.body.error.message).toBe('missing variables: company, question');
    expect(missing.body.error.code).toBe('missing_variables');

    const ok = await call('POST', '/v1/templates/chatty/render', {
      variables: { persona: '<b>Bot</b> & co', company: '{{persona}}', question: '${1+1} {{#if x}}' },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.messages).toEqual([
      { role: 'system', content: 'You are <b>Bot</b> & co for {{persona}}.' },
      { role: 'user', content: '${1+1} {{#if x}}' },
    ]);

    expect400(await call('POST', '/v1/templates/chatty/render', { variables: { persona: { a: 1 }, company: 'x', question: 'y' } }), 'variables.persona');
    expect400(await call('POST', '/v1/templates/chatty/render', { variables: { persona: [1], company: 'x', question: 'y' } }), 'variables.persona');
    expect400(await call('POST', '/v1/templates/chatty/render', { variables: 'persona' }), 'variables');
    expect400(await call('POST', '/v1/templates/chatty/render', { variables: {}, label: 'production', version: 1 }), 'version');
  });

  it('rejects bad input with a 400 naming the field, and huge bodies with a 413', async () => {
    const ok = { name: 'valid-name', type: 'text', template: 'x' };
    expect400(await call('POST', '/v1/templates', { ...ok, name: 'Bad Name' }), 'name');
    expect400(await call('POST', '/v1/templates', { ...ok, name: '-leading' }), 'name');
    expect400(await call('POST', '/v1/templates', { ...ok, name: 'a'.repeat(129) }), 'name');
    expect400(await call('POST', '/v1/templates', { ...ok, name: 'changes' }), 'name');
    expect400(await call('POST', '/v1/templates', { ...ok, name: 42 }), 'name');
    expect400(await call('POST', '/v1/templates', { type: 'text', template: 'x' }), 'name');
    expect400(await call('POST', '/v1/templates', { ...ok, type: 'html' }), 'type');
    expect400(await call('POST', '/v1/templates', { ...ok, template: 5 }), 'template');
    expect400(await call('POST', '/v1/templates', { ...ok, template: ['x'] }), 'template');
    expect400(await call('POST', '/v1/templates', { ...ok, type: 'chat', template: [{ role: 'robot', content: 'x' }] }), 'template[0].role');
    expect400(await call('POST', '/v1/templates', { ...ok, template: 'Hi {{#if x}}' }), 'template');
    expect400(await call('POST', '/v1/templates', { ...ok, template: 'x'.repeat(70_000) }), 'template');
    expect400(await call('POST', '/v1/templates', { ...ok, labels: ['Prod!'] }), 'labels[0]');
    expect400(await call('POST', '/v1/templates', { ...ok, labels: 'production' }), 'labels');
    expect400(await call('POST', '/v1/templates', { ...ok, description: 7 }), 'description');
    const unknown = await call('POST', '/v1/templates', { ...ok, temlpate: 'x' });
    expect400(unknown, 'temlpate');
    expect(unknown.body.error.message).toBe("'temlpate' is not a known field");

    const malformed = await call('POST', '/v1/templates', '{"name": "x", ');
    expect400(malformed, 'body');
    expect(malformed.body.error.code).toBe('invalid_json');

    const huge = await call('POST', '/v1/templates', { ...ok, template: 'x'.repeat(2_000_000) });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('payload_too_large');

    expect400(await call('GET', '/v1/templates/Bad%20Name'), 'name');
    expect400(await call('GET', '/v1/templates/known?version=abc'), 'version');
    expect400(await call('GET', '/v1/templates/known?version=0'), 'version');
    expect400(await call('GET', '/v1/templates/known?label=UPPER'), 'label');
    expect400(await call('GET', '/v1/templates/known?colour=red'), 'colour');
    expect400(await call('GET', '/v1/templates?limit=0'), 'limit');
    expect400(await call('GET', '/v1/templates?cursor=garbage'), 'cursor');
    expect400(await call('GET', '/v1/templates?cursor=eyJuIjoiYSJ9&offset=1'), 'offset');
    expect400(await call('GET', '/v1/templates/changes?since=-1'), 'since');
    expect400(await call('PUT', '/v1/templates/known/labels/Bad!', { version: 1 }), 'label');

    const bigVars = await call('POST', '/v1/templates/known/render', { variables: { v: 'x'.repeat(300_000) } });
    expect400(bigVars, 'variables');
  });

  it('paginates the listing by cursor and by offset, hiding archived templates unless asked', async () => {
    for (const n of ['page-a', 'page-b', 'page-c', 'page-d']) await call('POST', '/v1/templates', { name: n, type: 'text', template: n });
    const names: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : '';
      const page = await call('GET', `/v1/templates?limit=3${q}`);
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(3);
      names.push(...page.body.data.map((t: any) => t.name));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(names).toEqual([...names].sort());
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(['page-a', 'page-b', 'page-c', 'page-d']));

    const byOffset = await call('GET', `/v1/templates?limit=2&offset=${names.indexOf('page-b')}`);
    expect(byOffset.body.data.map((t: any) => t.name)).toEqual(['page-b', 'page-c']);

    expect((await call('DELETE', '/v1/templates/page-c')).status).toBe(200);
    const all = await call('GET', '/v1/templates?limit=200');
    expect(all.body.data.map((t: any) => t.name)).not.toContain('page-c');
    const withArchived = await call('GET', '/v1/templates?limit=200&include_archived=true');
    const c = withArchived.body.data.find((t: any) => t.name === 'page-c');
    expect(c).toMatchObject({ archived: true, latest_version: 1, labels: { production: [{ version: 1, weight: 100 }] } });
  });

  it('archives: stops serving, refuses writes, keeps versions and the name', async () => {
    await call('POST', '/v1/templates', { name: 'retired', type: 'text', template: 'bye {{x}}' });
    const archived = await call('DELETE', '/v1/templates/retired', undefined, { 'x-promptmesh-actor': 'carol' });
    expect(archived.status).toBe(200);
    expect(archived.body).toMatchObject({ name: 'retired', archived: true });
    expect((await call('DELETE', '/v1/templates/retired')).status).toBe(200); // idempotent

    const get = await call('GET', '/v1/templates/retired');
    expect(get.status).toBe(404);
    expect(get.body.error.code).toBe('template_archived');
    expect(get.body.error.message).toContain('archived');
    expect((await call('POST', '/v1/templates/retired/render', { variables: { x: 1 } })).body.error.code).toBe('template_archived');
    expect((await call('GET', '/v1/templates/retired?version=1')).status).toBe(404);
    expect((await call('POST', '/v1/templates/retired/versions', { type: 'text', template: 'x' })).status).toBe(409);
    expect((await call('PUT', '/v1/templates/retired/labels/production', { version: 1 })).status).toBe(409);
    expect((await call('POST', '/v1/templates', { name: 'retired', type: 'text', template: 'x' })).status).toBe(409);
    // Versions are never destroyed.
    const versions = await call('GET', '/v1/templates/retired/versions');
    expect(versions.body).toMatchObject({ archived: true, data: [{ version: 1, template: 'bye {{x}}' }] });
    expect((await call('DELETE', '/v1/templates/never-existed')).status).toBe(404);
  });

  it('answers health and readiness, and serves the same core in-process', async () => {
    expect((await call('GET', '/readyz')).body.checks['templates:postgres']).toBe('ok');
    const created = await svc.core.create({ name: 'in-process', type: 'text', template: 'Hi {{who}}' }, 'router');
    expect(created.created_by).toBe('router');
    expect((await call('POST', '/v1/templates/in-process/render', { variables: { who: 'there' } })).body.messages[0].content).toBe('Hi there');
    await expect(svc.core.render('in-process', {})).rejects.toMatchObject({ statusCode: 400, param: 'variables' });
    await expect(svc.core.create({ name: 'NO', type: 'text', template: 'x' })).rejects.toMatchObject({ statusCode: 400, param: 'name' });
  });

  it('answers 503, not 500, when PostgreSQL is unreachable', async () => {
    const port = await freePort();
    const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/none`, connectionTimeoutMillis: 2_000 });
    const core = new PgTemplatesCore({ pool, logger: createLogger('test', 'silent') });
    try {
      await expect(core.get('anything')).rejects.toMatchObject({ statusCode: 503, code: 'database_unavailable' });
      await expect(core.create({ name: 'x', type: 'text', template: 'y' })).rejects.toMatchObject({ statusCode: 503 });
      await expect(core.exportAll()).rejects.toMatchObject({ statusCode: 503 });
      // Bad input is still a 400: it is checked before the database is asked.
      await expect(core.create({ name: 'X!', type: 'text', template: 'y' })).rejects.toMatchObject({ statusCode: 400 });
    } finally {
      await pool.end();
    }
  });
});
