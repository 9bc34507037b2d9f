/**
 * Class test: text that is not valid Unicode (NUL, a lone high or low surrogate) through every
 * string field of every route of every layout, read from the route schemas (schema-fields.ts):
 * each is a 400 naming the field, and nothing is stored. Free-form objects get it as a value
 * and as a key; query values and path parameters get NUL (%00; a lone surrogate cannot be
 * percent-encoded as UTF-8). The templates core refuses it for in-process callers too.
 */
import { Client } from 'undici';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiError } from '../../services/kit';
import type { TemplatesCore } from '../../services/templates/types';
import { BASE_BODIES, fillPath } from './cases';
import { fieldName, schemaFields, setDeep, type SchemaField } from './schema-fields';
import { ADMIN_KEY_ID, startTargets, type Target, type Targets } from './targets';

const BAD: Array<[label: string, value: string]> = [
  ['NUL', 'a\u0000b'],
  ['lone high surrogate', 'a\ud800b'],
  ['lone low surrogate', '\udc00b'],
];

interface Probe {
  label: string;
  method: string;
  path: string;
  body?: string;
  /** The field the 400 must name in `param`. */
  param: string;
}

function probesFor(field: SchemaField): Probe[] {
  const [method, url] = field.route.split(' ') as [string, string];
  const name = fieldName(field.path);
  const out: Probe[] = [];
  if (field.part === 'body') {
    const base = BASE_BODIES[field.route] ?? {};
    const send = (label: string, value: unknown, param: string) => out.push({ label, method, path: fillPath(url), body: JSON.stringify(setDeep(base, field.path, value)), param });
    for (const [label, bad] of BAD) {
      if (field.kind === 'string') send(`${name}: ${label}`, bad, name);
      else send(`${name}: ${label} in a value`, { k: bad }, `${name}.k`);
    }
    if (field.kind === 'object') send(`${name}: NUL in a key`, { ['k\u0000']: 'v' }, `${name}.k\u0000`);
  } else if (field.part === 'query') {
    out.push({ label: `query ${name}: NUL`, method, path: `${fillPath(url)}?${name}=a%00b`, param: name });
  } else {
    const hasBody = method !== 'GET' && method !== 'DELETE';
    out.push({ label: `param ${name}: NUL`, method, path: fillPath(url, { [name]: 'a%00b' }), body: hasBody ? JSON.stringify(BASE_BODIES[field.route] ?? {}) : undefined, param: name });
  }
  return out;
}

let t: Targets;
let pool: pg.Pool;

async function stored(): Promise<{ versions: number; messages: number }> {
  const versions = Number((await pool.query('SELECT count(*)::int AS n FROM template_versions')).rows[0].n);
  let messages = 0;
  const client = new Client(t.context.url);
  try {
    for (const id of ['sweep-session', `${ADMIN_KEY_ID}:sweep-session`]) {
      const res = await client.request({ method: 'GET', path: `/v1/sessions/${encodeURIComponent(id)}/messages?max_messages=1000&max_tokens=100000000` });
      messages += ((await res.body.json()) as { total_messages: number }).total_messages;
    }
  } finally {
    await client.close();
  }
  return { versions, messages };
}

beforeAll(async () => {
  t = await startTargets();
  pool = new pg.Pool({ connectionString: t.db.url, max: 2 });
  const c = new Client(t.templates.url);
  const res = await c.request({ method: 'POST', path: '/v1/templates', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'sweep-a', type: 'text', template: 'Hello {{x}}' }) });
  expect(res.statusCode).toBe(201);
  await res.body.dump();
  await c.close();
}, 60_000);

afterAll(async () => {
  await pool?.end();
  await t?.close();
});

describe('invalid text through every string field is a 400 naming the field, and nothing is stored', () => {
  for (const name of ['all', 'templates', 'context', 'llm', 'router'] as const) {
    it(`${name}: every route, every string field`, async () => {
      const target: Target = t[name];
      const fields = target.routes.flatMap(schemaFields);
      const probes = fields.flatMap(probesFor);
      // The sweep found the fields where text goes (not trivially empty).
      expect(fields.filter((f) => f.kind === 'string' && f.part === 'body').length).toBeGreaterThan(name === 'llm' ? 5 : 8);
      const before = await stored();
      const failures: string[] = [];
      const client = new Client(target.url);
      try {
        for (const p of probes) {
          const res = await client.request({
            method: p.method as 'GET',
            path: p.path,
            headers: { ...target.headers, ...(p.body !== undefined ? { 'content-type': 'application/json' } : {}) },
            body: p.body,
          });
          const text = await res.body.text();
          let error: { param?: unknown; code?: unknown; message?: unknown } | undefined;
          try {
            error = (JSON.parse(text) as { error?: typeof error }).error;
          } catch {
            error = undefined;
          }
          // The Anthropic Messages route answers in Anthropic's error shape: the message names the field.
          const anthropic = p.path.split('?')[0] === '/v1/messages';
          const named = anthropic ? typeof error?.message === 'string' && error.message.includes(`'${String(p.param)}'`) : error?.param === p.param && error?.code === 'invalid_text';
          if (res.statusCode !== 400 || !named) {
            failures.push(`${p.method} ${p.path.slice(0, 80)} [${p.label}]: ${res.statusCode} ${text.slice(0, 200)}`);
          }
        }
      } finally {
        await client.close();
      }
      expect(failures, `${failures.length} of ${probes.length} probes`).toEqual([]);
      expect(await stored()).toEqual(before);
    }, 120_000);
  }

  it('the templates core refuses it for in-process callers too, naming the field', async () => {
    const core = t.all.proc.services.get('templates')!.core as TemplatesCore;
    const before = await stored();
    for (const [label, bad] of BAD) {
      const attempts: Array<[string, () => Promise<unknown>]> = [
        ['template', () => core.create({ name: 'core-bad', type: 'text', template: `x ${bad}` })],
        ['template[1].content', () => core.create({ name: 'core-bad', type: 'chat', template: [{ role: 'system', content: 'ok' }, { role: 'user', content: bad }] })],
        ['description', () => core.create({ name: 'core-bad', type: 'text', template: 'x', description: bad })],
        ['model', () => core.addVersion('sweep-a', { type: 'text', template: 'x', model: bad })],
      ];
      for (const [param, attempt] of attempts) {
        const err = (await attempt().then(
          () => undefined,
          (e: unknown) => e as ApiError,
        )) as ApiError | undefined;
        expect(err?.statusCode, `${param}: ${label}`).toBe(400);
        expect(err?.param, `${param}: ${label}`).toBe(param);
      }
    }
    expect(await stored()).toEqual(before);
  });
});
