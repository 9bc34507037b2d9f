/**
 * Class test: the names Object.prototype answers (`__proto__`, `constructor`, `prototype`,
 * `toString`, `hasOwnProperty`) through every field used as a key: labels, template names,
 * variable names, session ids, message and tool call ids, model and provider names, split
 * versions, and the keys of every free-form object. Each is either data like any other name or
 * refused with a 400 that names the field (and says the name is reserved where that is why);
 * never a 500, never "not valid JSON".
 *
 * Which string fields are keys is declared below; every string field the route schemas hold
 * must be listed as a key or as text, so a new field fails this test until someone decides.
 */
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLlmConfig, priceOf } from '../../services/llm/config';
import { resolveTargets } from '../../services/llm/routing';
import { BASE_BODIES, fillPath } from './cases';
import { fieldName, schemaFields, setDeep, type SchemaField } from './schema-fields';
import { startTargets, type Target, type Targets } from './targets';

const NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'] as const;

/**
 * String fields whose value names or indexes something (a template, label, session, message,
 * tool call, model, cursor): `<part> <field>`, the same for every route that has it.
 */
const KEY_FIELDS = new Set([
  'param name',
  'param label',
  'param id',
  'query label',
  'query session_id',
  'query cursor',
  'body name',
  'body label',
  'body labels[0]',
  'body session_id',
  'body model',
  'body prompt.name',
  'body prompt.label',
  'body messages[0].id',
  'body messages[0].tool_call_id',
  'body messages[0].tool_calls[0].id',
  'body messages[0].tool_calls[0].function.name',
  'body tool_choice',
  'body models[0]',
  'body team',
  'query team',
]);

/** String fields that are text or a closed choice (enum, pattern), never used as a key. */
const TEXT_FIELDS = new Set([
  'query order',
  'body type',
  'body template',
  'body description',
  'body messages[0].role',
  'body messages[0].content',
  'body messages[0].content[0].text',
  'body messages[0].content[0].type',
  'body messages[0].name',
  'body messages[0].refusal',
  'body messages[0].tool_calls[0].type',
  'body messages[0].tool_calls[0].function.arguments',
  // Claude's thinking of an assistant turn: text, its signature and redacted data are opaque values
  'body messages[0].reasoning_content',
  'body messages[0].thinking_blocks[0].type',
  'body messages[0].thinking_blocks[0].thinking',
  'body messages[0].thinking_blocks[0].signature',
  'body messages[0].thinking_blocks[0].data',
  'body stop',
  'body stop[0]',
  'body user',
  'body safety_identifier',
  'body prompt_cache_key',
  'body service_tier',
  'body reasoning_effort',
  'body verbosity',
  'body scopes[0]',
  'body budget.period',
  'body expires_at',
  'query group_by',
  'query interval',
  'query from',
  'query to',
  // embeddings: the texts to embed and the vector encoding
  'body input',
  'body input[0]',
  'body encoding_format',
  // Anthropic Messages: free text and enum-like types
  'body system',
  'body system[0].type',
  'body metadata.user_id',
  'body stop_sequences[0]',
  'body tool_choice.type',
  'body thinking.type',
]);

const classOf = (f: SchemaField) => `${f.part} ${fieldName(f.path)}`;

function getDeep(value: unknown, path: ReadonlyArray<string | number>): unknown {
  let node = value as any;
  for (const key of path) node = node === null || typeof node !== 'object' ? undefined : node[key];
  return node;
}

/** A valid body around a field, so the name under test is the only thing that may be wrong. */
function baseFor(f: SchemaField): unknown {
  const base = (BASE_BODIES[f.route] ?? {}) as Record<string, unknown>;
  if (f.path[0] === 'prompt') return { ...base, prompt: { name: 'sweep-a', variables: { x: '1' } } };
  if (f.path[0] === 'messages' && f.path[2] === 'tool_calls') {
    const call = { id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } };
    return { ...base, messages: [{ role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_1', content: 'r' }, { role: 'user', content: 'hi' }] };
  }
  return base;
}

interface Probe {
  label: string;
  method: string;
  path: string;
  body?: string;
  field: string;
  /** The name is `__proto__` as an object key: the answer must be the reserved-name 400. */
  reservedKey: boolean;
}

function probesFor(f: SchemaField): Probe[] {
  const [method, url] = f.route.split(' ') as [string, string];
  const name = fieldName(f.path);
  const out: Probe[] = [];
  for (const word of NAMES) {
    if (f.part === 'body') {
      const base = baseFor(f);
      // Built as text: JSON.stringify of an object literal would drop a __proto__ key. An object
      // that holds something already (the variables a template needs) keeps it.
      const existing = getDeep(base, f.path);
      const rest = existing && typeof existing === 'object' && Object.keys(existing).length > 0 ? `,${JSON.stringify(existing).slice(1)}` : '}';
      const value = f.kind === 'object' ? `{${JSON.stringify(word)}:"v"${rest}` : JSON.stringify(word);
      const body = JSON.stringify(setDeep(base, f.path, '__V__')).replace('"__V__"', value);
      out.push({ label: `${name} = ${word}`, method, path: fillPath(url), body, field: f.kind === 'object' ? `${name}.${word}` : name, reservedKey: f.kind === 'object' && word === '__proto__' });
    } else if (f.part === 'query') {
      out.push({ label: `query ${name} = ${word}`, method, path: `${fillPath(url)}?${name}=${word}`, field: name, reservedKey: false });
    } else {
      const hasBody = method !== 'GET' && method !== 'DELETE';
      out.push({ label: `param ${name} = ${word}`, method, path: fillPath(url, { [name]: word }), body: hasBody ? JSON.stringify(BASE_BODIES[f.route] ?? {}) : undefined, field: name, reservedKey: false });
    }
  }
  return out;
}

function judge(p: Probe, status: number, text: string): string | undefined {
  if (status >= 500) return `answered ${status}`;
  if (status < 400) return p.reservedKey ? `accepted a __proto__ key (${status})` : undefined;
  let error: { param?: string | null; message?: string; code?: string | null } | undefined;
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error;
  } catch {
    return 'error outside the error shape';
  }
  if (!error || typeof error.message !== 'string') return 'error outside the error shape';
  if (/not valid JSON/i.test(error.message)) return `"not valid JSON": ${error.message}`;
  // The Anthropic Messages route answers in Anthropic's error shape: type and message, no param or code.
  const anthropic = p.path.split('?')[0] === '/v1/messages';
  const reservedNamed = anthropic ? /reserved/.test(error.message) && error.message.includes(p.field) : error.code === 'reserved_name' && /reserved/.test(error.message) && error.param === p.field;
  if (p.reservedKey && !reservedNamed) return `not the reserved-name 400 for ${p.field}`;
  if (status === 400) {
    const leaf = p.field.split(/[.[\]]/).filter(Boolean).pop()!;
    if (!(String(error.param ?? '').includes(leaf) || error.message.includes(leaf))) return `400 does not name ${p.field}`;
  }
  return undefined;
}

let t: Targets;

async function call(target: Target, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const client = new Client(target.url);
  try {
    const res = await client.request({
      method: method as 'GET',
      path,
      headers: { ...target.headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.statusCode, body: parsed };
  } finally {
    await client.close();
  }
}

beforeAll(async () => {
  t = await startTargets();
  const created = await call(t.templates, 'POST', '/v1/templates', { name: 'sweep-a', type: 'text', template: 'Hello {{x}}' });
  expect(created.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe('reserved names through every key field', () => {
  it('every string field of every route is declared a key or text', () => {
    const undeclared = new Set<string>();
    for (const name of ['all', 'templates', 'context', 'llm'] as const) {
      for (const f of t[name].routes.flatMap(schemaFields)) {
        if (f.kind === 'string' && !KEY_FIELDS.has(classOf(f)) && !TEXT_FIELDS.has(classOf(f))) undeclared.add(`${f.route}: ${classOf(f)}`);
      }
    }
    expect([...undeclared], 'add each to KEY_FIELDS or TEXT_FIELDS in reserved-names.test.ts').toEqual([]);
  });

  for (const name of ['all', 'templates', 'context', 'llm', 'router'] as const) {
    it(`${name}: each name through each key field and free-form object key is data or a 400 naming the field`, async () => {
      const target = t[name];
      const fields = target.routes.flatMap(schemaFields).filter((f) => f.kind === 'object' || KEY_FIELDS.has(classOf(f)));
      const probes = fields.flatMap(probesFor);
      expect(probes.length).toBeGreaterThan(name === 'llm' ? 10 : 30);
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
          const problem = judge(p, res.statusCode, text);
          if (problem) failures.push(`${p.method} ${p.path.slice(0, 80)} [${p.label}]: ${problem}: ${text.slice(0, 200)}`);
        }
      } finally {
        await client.close();
      }
      expect(failures, `${failures.length} of ${probes.length} probes`).toEqual([]);
    }, 120_000);
  }
});

describe('reserved names as data, end to end (regressions)', () => {
  it('labels named like Object.prototype members resolve only when they exist, split or not', async () => {
    // (The sweep above may have created such labels on sweep-a: a template of its own.)
    expect((await call(t.all, 'POST', '/v1/templates', { name: 'proto-missing', type: 'text', template: 'Hi {{x}}' })).status).toBe(201);
    for (const target of [t.all, t.router]) {
      // 'constructor' was a 500: the label was looked up on a plain object.
      for (const label of ['constructor', 'prototype']) {
        let missing = await call(target, 'POST', '/v1/chat/completions', { model: 'echo', prompt: { name: 'proto-missing', label, variables: { x: '1' } } });
        for (let i = 0; i < 20 && missing.body.error?.param === 'prompt.name'; i++) {
          // The router's cache learns of the new template within a moment.
          await new Promise((r) => setTimeout(r, 250));
          missing = await call(target, 'POST', '/v1/chat/completions', { model: 'echo', prompt: { name: 'proto-missing', label, variables: { x: '1' } } });
        }
        expect(missing.status, `${target.name} ${label}`).toBe(404);
        expect(missing.body.error.param).toBe('prompt.label');
      }
    }
    const name = `proto-labels`;
    expect((await call(t.all, 'POST', '/v1/templates', { name, type: 'text', template: 'one {{constructor}}', labels: ['constructor'] })).status).toBe(201);
    expect((await call(t.all, 'POST', `/v1/templates/${name}/versions`, { type: 'text', template: 'two {{constructor}}', labels: ['prototype'] })).status).toBe(201);
    const split = await call(t.all, 'PUT', `/v1/templates/${name}/labels/constructor`, { versions: [{ version: 1, weight: 50 }, { version: 2, weight: 50 }] });
    expect(split.status).toBe(200);
    for (const target of [t.all, t.router]) {
      for (const [label, expected] of [['prototype', ['echo: two c']], ['constructor', ['echo: one c', 'echo: two c']]] as const) {
        const seen = new Set<string>();
        for (let i = 0; i < 12; i++) {
          const res = await call(target, 'POST', '/v1/chat/completions', { model: 'echo', session_id: `sticky-${i}`, prompt: { name, label, variables: { constructor: 'c' } } });
          // The router's cache learns of the new template within a moment.
          if (res.status === 404 && i === 0) {
            await new Promise((r) => setTimeout(r, 500));
            i--;
            continue;
          }
          expect(res.status, `${target.name} ${label}`).toBe(200);
          seen.add(res.body.choices[0].message.content);
        }
        expect([...seen].sort(), `${target.name} ${label}`).toEqual([...expected].map((e) => e.replace('echo: ', '')));
      }
    }
    const rendered = await call(t.templates, 'POST', `/v1/templates/${name}/render`, { label: 'prototype', variables: { constructor: 'c' } });
    expect(rendered.body.messages[0].content).toBe('two c');
  });

  it('variables named like Object.prototype members are ordinary variables; {{__proto__}} is refused at create, saying why', async () => {
    const name = 'proto-vars';
    const created = await call(t.all, 'POST', '/v1/templates', { name, type: 'text', template: '{{constructor}} {{toString}} {{hasOwnProperty}} {{prototype}}' });
    expect(created.status).toBe(201);
    const ok = await call(t.all, 'POST', `/v1/templates/${name}/render`, { variables: { constructor: 'a', toString: 'b', hasOwnProperty: 'c', prototype: 'd' } });
    expect(ok.body.messages[0].content).toBe('a b c d');
    const missing = await call(t.all, 'POST', `/v1/templates/${name}/render`, { variables: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toContain('constructor, hasOwnProperty, prototype, toString');
    for (const template of ['Hi {{__proto__}}', 'Hi {{ __proto__ }}']) {
      const refused = await call(t.all, 'POST', '/v1/templates', { name: 'proto-bad', type: 'text', template });
      expect(refused.status).toBe(400);
      expect(refused.body.error.param).toBe('template');
      expect(refused.body.error.message).toMatch(/'__proto__' is a reserved name/);
    }
    for (const [target, path, body, param] of [
      [t.all, `/v1/templates/${name}/render`, '{"variables":{"__proto__":"x"}}', 'variables.__proto__'],
      [t.router, '/v1/chat/completions', `{"model":"echo","prompt":{"name":"${name}","variables":{"__proto__":"x"}}}`, 'prompt.variables.__proto__'],
      [t.llm, '/v1/chat/completions', '{"model":"echo","messages":[{"role":"user","content":"hi"}],"__proto__":{"admin":true}}', '__proto__'],
    ] as const) {
      const res = await call(target, 'POST', path, body);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ param, code: 'reserved_name' });
      expect(res.body.error.message).toMatch(/reserved/);
    }
  });

  it('sessions and message ids named like Object.prototype members are separate sessions', async () => {
    for (const session of NAMES) {
      const res = await call(t.all, 'POST', '/v1/chat/completions', { model: 'echo', session_id: session, messages: [{ role: 'user', content: `in ${session}` }] });
      expect(res.status, session).toBe(200);
    }
    for (const session of NAMES) {
      const read = await call(t.all, 'GET', `/v1/sessions/${session}/messages`);
      expect(read.body.messages.map((m: { content: string }) => m.content), session).toEqual([`in ${session}`, `in ${session}`]);
    }
    const ids = NAMES.map((id) => ({ id, role: 'user', content: id }));
    expect((await call(t.context, 'POST', '/v1/sessions/proto-ids/messages', { messages: ids })).status).toBe(201);
    const again = await call(t.context, 'POST', '/v1/sessions/proto-ids/messages', { messages: ids });
    expect(again.body.duplicates).toEqual([...NAMES]);
  });

  it('model and provider names like Object.prototype members route as data', async () => {
    for (const target of [t.all, t.llm]) {
      for (const model of NAMES) {
        // 'constructor' was a 500: the model was looked up on the aliases object.
        const res = await call(target, 'POST', '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] });
        expect(res.status, `${target.name} ${model}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${target.name} ${model}`).toBeLessThan(500);
        expect(res.body.error.param ?? res.body.error.message).toContain('model');
      }
    }
    const echo = { type: 'echo', baseUrl: 'builtin:echo' };
    // Provider names start with a letter or digit: '__proto__' is refused, naming the field.
    expect(() => parseLlmConfig({ providers: [{ ...echo, name: '__proto__' }] }, 'test', {})).toThrow(/providers\[0\]\.name/);
    const providers = NAMES.filter((n) => n !== '__proto__');
    const config = parseLlmConfig(
      {
        // Fields read straight from YAML/JSON: own '__proto__' keys, as a parser makes them.
        providers: providers.map((name) => ({ ...echo, name, prices: JSON.parse(`{${NAMES.map((m) => `"${m}":{"input":1,"output":2}`).join(',')}}`) })),
        models: JSON.parse(`{${NAMES.map((alias, i) => `"${alias}":[{"provider":"${providers[i % providers.length]}","model":"echo"}]`).join(',')}}`),
      },
      'test',
      {},
    );
    const byName = new Map(config.providers.map((p) => [p.name, p]));
    NAMES.forEach((alias, i) => {
      expect(resolveTargets(config, byName, alias).map((c) => c.provider), alias).toEqual([providers[i % providers.length]]);
    });
    expect(Object.keys(config.models).sort()).toEqual([...NAMES].sort());
    for (const model of NAMES) expect(priceOf(config.providers[0]!, model), model).toEqual({ input: 1, output: 2 });
    expect(priceOf(config.providers[0]!, 'valueOf')).toBeUndefined();
    expect(resolveTargets(config, byName, 'valueOf')).toEqual([]);
    expect(Object.getPrototypeOf(config.models)).toBeNull();
  });
});
