/**
 * Bad-input cases generated from route schemas: for every route, malformed and mistyped
 * bodies, unknown fields, huge and deeply nested values, bodies over the limit, bad path
 * parameters and bad query strings. Each case says what a correct answer looks like.
 */
import { ROUTE_SCOPES } from '../../services/router/route-scopes';
import type { RouteInfo } from './targets';

/** One request to send and what the answer must be. */
export interface BadCase {
  /** For the failure message. */
  label: string;
  method: string;
  /** Path and query, already encoded as it goes on the wire. */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /**
   * Statuses allowed. `undefined` means any status below 500 (robustness cases, where
   * accepting the input is as correct as refusing it).
   */
  expect?: number[];
  /** For 400s: the field the error must name (in `param` or in the message). */
  field?: string;
}

type Schema = Record<string, any>;

/** Valid values for path parameters (created by the suite before the sweep). */
export const PARAM_VALUES: Record<string, string> = { name: 'sweep-a', label: 'production', id: 'sweep-session' };

/** A valid body per route (`METHOD url`), so a mutation is the only thing wrong with it. */
export const BASE_BODIES: Record<string, unknown> = {
  'POST /v1/chat/completions': { model: 'echo', messages: [{ role: 'user', content: 'hi' }] },
  'POST /v1/embeddings': { model: 'echo', input: 'hi' },
  'POST /v1/responses': { model: 'echo', input: 'hi' },
  'POST /v1/messages': { model: 'echo', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
  'POST /v1/templates': { name: 'sweep-new', type: 'text', template: 'Hello {{x}}' },
  'POST /v1/templates/:name/versions': { type: 'text', template: 'Hi {{x}}' },
  'PUT /v1/templates/:name/labels/:label': { version: 1 },
  'POST /v1/templates/:name/render': { variables: { x: '1' } },
  'POST /v1/sessions/:id/messages': { messages: [{ role: 'user', content: 'hi' }] },
  'POST /v1/keys': { name: 'sweep-key', scopes: ['invoke'] },
  'PATCH /v1/keys/:id': { name: 'sweep-renamed' },
  'POST /v1/keys/:id/rotate': { grace_seconds: 60 },
  'PUT /v1/teams/:id': { name: 'Sweep team' },
};

/**
 * Input that passes the schema but not the service's own rules, per route: each must be
 * refused (`expect`) without a 5xx, naming `field` when it is a 400.
 */
export const SEMANTIC_CASES: Record<string, Array<{ label: string; body: unknown; expect: number[]; field?: string; needs?: string }>> = {
  'POST /v1/chat/completions': [
    { label: 'unknown model, streaming', body: { model: 'no-such-model', stream: true, messages: [{ role: 'user', content: 'hi' }] }, expect: [400, 404], field: 'model' },
    // With a session: a refused request must not leave the user's turn behind (the suite
    // compares the session before and after).
    { label: 'unknown model in a session', body: { model: 'no-such-model', session_id: 'sweep-session', messages: [{ role: 'user', content: 'hi' }] }, expect: [400, 404], field: 'model', needs: 'session_id' },
    { label: 'bad tool turn in a session', body: { model: 'echo', session_id: 'sweep-session', messages: [{ role: 'user', content: 'hi' }, { role: 'tool', content: 'x' }] }, expect: [400], field: 'tool_call_id', needs: 'session_id' },
    { label: 'missing prompt variable in a session', body: { prompt: { name: 'sweep-a' }, model: 'echo', session_id: 'sweep-session', messages: [{ role: 'user', content: 'hi' }] }, expect: [400], field: 'x', needs: 'session_id' },
    { label: 'prompt that does not exist', body: { prompt: { name: 'no-such-template' }, model: 'echo' }, expect: [404], field: 'prompt', needs: 'prompt' },
    { label: 'prompt missing its variable', body: { prompt: { name: 'sweep-a' }, model: 'echo' }, expect: [400], field: 'x', needs: 'prompt' },
    { label: 'prompt version that does not exist', body: { prompt: { name: 'sweep-a', version: 999 }, model: 'echo' }, expect: [404], field: 'version', needs: 'prompt' },
    { label: 'unknown model', body: { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }, expect: [400, 404], field: 'model' },
    { label: 'no model and no prompt', body: { messages: [{ role: 'user', content: 'hi' }] }, expect: [400], field: 'model' },
    { label: 'no messages at all', body: { model: 'echo' }, expect: [400], field: 'messages' },
    { label: 'empty messages', body: { model: 'echo', messages: [] }, expect: [400], field: 'messages' },
    { label: 'tool message without tool_call_id', body: { model: 'echo', messages: [{ role: 'tool', content: 'x' }] }, expect: [400], field: 'tool_call_id' },
    { label: 'user message without content', body: { model: 'echo', messages: [{ role: 'user' }] }, expect: [400], field: 'content' },
  ],
  'POST /v1/templates': [
    { label: 'unclosed placeholder', body: { name: 'sweep-bad', type: 'text', template: 'Hello {{x' }, expect: [400], field: 'template' },
    { label: 'chat template with a bad role', body: { name: 'sweep-bad', type: 'chat', template: [{ role: 'robot', content: 'x' }] }, expect: [400], field: 'role' },
    { label: 'text type with a message list', body: { name: 'sweep-bad', type: 'text', template: [{ role: 'user', content: 'x' }] }, expect: [400], field: 'template' },
    { label: 'name that exists', body: { name: 'sweep-a', type: 'text', template: 'x' }, expect: [409], field: 'name' },
    { label: 'name with capitals', body: { name: 'Sweep-Bad', type: 'text', template: 'x' }, expect: [400], field: 'name' },
  ],
  'PUT /v1/templates/:name/labels/:label': [
    { label: 'version that does not exist', body: { version: 999 }, expect: [400, 404, 409], field: 'version' },
    { label: 'neither version nor versions', body: {}, expect: [400], field: 'version' },
    { label: 'split that does not add up to 100', body: { versions: [{ version: 1, weight: 30 }] }, expect: [400], field: 'versions' },
  ],
  'POST /v1/templates/:name/render': [
    { label: 'missing variable', body: { variables: {} }, expect: [400], field: 'x' },
    { label: 'version that does not exist', body: { variables: { x: '1' }, version: 999 }, expect: [404], field: 'version' },
    { label: 'label that does not exist', body: { variables: { x: '1' }, label: 'nope' }, expect: [404], field: 'label' },
  ],
  'POST /v1/sessions/:id/messages': [
    { label: 'duplicate ids in one append', body: { messages: [{ id: 'm1', role: 'user', content: 'a' }, { id: 'm1', role: 'user', content: 'b' }] }, expect: [400], field: 'id' },
    { label: 'empty text parts', body: { messages: [{ role: 'user', content: [] }] }, expect: [400], field: 'content' },
  ],
};

export function fillPath(url: string, override: Record<string, string> = {}): string {
  return url.replace(/:([A-Za-z_]+)/g, (_m, p: string) => override[p] ?? encodeURIComponent(PARAM_VALUES[p] ?? 'x'));
}

function jsonTypes(value: unknown): string[] {
  if (value === null) return ['null'];
  if (Array.isArray(value)) return ['array'];
  if (typeof value === 'number') return Number.isInteger(value) ? ['integer', 'number'] : ['number'];
  return [typeof value];
}

/** The JSON types a schema allows, or undefined when it does not say. */
function allowedTypes(schema: Schema): string[] | undefined {
  if (schema.type) return Array.isArray(schema.type) ? schema.type : [schema.type];
  const alts = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (!alts) return undefined;
  const types = alts.map(allowedTypes);
  if (types.some((t) => t === undefined)) return undefined;
  return types.flat() as string[];
}

const CANDIDATES: unknown[] = [true, 12345, 'zz-wrong', { zz: 1 }, [1], null];

/** A value of a type the schema does not allow, or undefined when every type is allowed. */
export function wrongTypeFor(schema: Schema): unknown {
  const allowed = allowedTypes(schema);
  if (!allowed) return undefined;
  return CANDIDATES.find((c) => !jsonTypes(c).some((t) => allowed.includes(t) || (t === 'integer' && allowed.includes('number'))));
}

function setAt(base: unknown, path: Array<string | number>, value: unknown): unknown {
  const copy = structuredClone(base) as any;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key];
  node[path[path.length - 1]!] = value;
  return copy;
}

function paramOf(path: Array<string | number>): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** Deeply nested JSON text (`{"a":{"a":...}}`), built as text so building it cannot overflow. */
export function deepJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

interface Mutation {
  label: string;
  body: unknown;
  field: string;
}

/** Field-level mutations of a valid base body, walking objects and the first item of arrays. */
function mutations(schema: Schema, base: unknown, path: Array<string | number>, out: Mutation[]): void {
  const props = schema.properties as Record<string, Schema> | undefined;
  if (!props || typeof base !== 'object' || base === null || Array.isArray(base)) return;
  for (const [key, sub] of Object.entries(props)) {
    const at = [...path, key];
    const field = paramOf(at);
    const wrong = wrongTypeFor(sub);
    if (wrong !== undefined) out.push({ label: `${field}: wrong type ${JSON.stringify(wrong)}`, body: setAt(base, at, wrong), field });
    if (Array.isArray(sub.enum)) out.push({ label: `${field}: not in enum`, body: setAt(base, at, 'zz-not-allowed'), field });
    if (typeof sub.minimum === 'number') out.push({ label: `${field}: below minimum`, body: setAt(base, at, sub.minimum - 1), field });
    if (typeof sub.maximum === 'number' && sub.maximum < Number.MAX_SAFE_INTEGER) {
      out.push({ label: `${field}: above maximum`, body: setAt(base, at, sub.maximum + 1), field });
    }
    if (typeof sub.maxLength === 'number' && sub.maxLength <= 100_000) {
      out.push({ label: `${field}: over maxLength`, body: setAt(base, at, 'x'.repeat(sub.maxLength + 1)), field });
    }
    if (typeof sub.pattern === 'string') out.push({ label: `${field}: breaks pattern`, body: setAt(base, at, '../Bad Name\u0000'), field });
    if (typeof sub.maxItems === 'number' && sub.maxItems <= 20_000) {
      out.push({ label: `${field}: over maxItems`, body: setAt(base, at, Array.from({ length: sub.maxItems + 1 }, () => 'x')), field });
    }
    if (typeof sub.maxProperties === 'number' && sub.maxProperties <= 20_000) {
      const many = Object.fromEntries(Array.from({ length: sub.maxProperties + 1 }, (_, i) => [`k${i}`, 'v']));
      out.push({ label: `${field}: over maxProperties`, body: setAt(base, at, many), field });
    }
    const value = (base as Record<string, unknown>)[key];
    if (sub.properties && value && typeof value === 'object' && !Array.isArray(value)) mutations(sub, base, at, out);
    if (sub.items?.properties && Array.isArray(value) && value.length > 0) {
      const item = value[0];
      const itemSchema = sub.items as Schema;
      // Walk the item's fields with the whole body as base.
      const inner: Mutation[] = [];
      mutations(itemSchema, item, [], inner);
      for (const m of inner) {
        const itemPath = [...at, 0];
        out.push({ label: `${paramOf(itemPath)}.${m.label}`, body: setAt(base, itemPath, m.body), field: `${paramOf(itemPath)}.${m.field}` });
      }
      if (itemSchema.additionalProperties === false) {
        out.push({ label: `${field}[0]: unknown field`, body: setAt(base, [...at, 0], { ...(item as object), zz_unknown: 1 }), field: 'zz_unknown' });
      }
    }
  }
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** The cases for one route of a process whose body limit is `bodyLimit` bytes. */
export function casesFor(route: RouteInfo, bodyLimit: number): BadCase[] {
  const key = `${route.method} ${route.url}`;
  // DELETE with valid parameters would archive the template or drop the session the other
  // cases use: point those at names nobody uses.
  const path = fillPath(route.url, route.method === 'DELETE' ? { name: 'sweep-unused', id: 'sweep-unused' } : {});
  const out: BadCase[] = [];
  const hasBody = route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH';
  const schema = route.schema?.body as Schema | undefined;

  if (hasBody) {
    const base = BASE_BODIES[key] ?? {};
    const send = (label: string, body: string | Buffer, expect?: number[], field?: string, headers: Record<string, string> = JSON_HEADERS): void => {
      out.push({ label, method: route.method, path, headers, body, expect, field });
    };
    send('malformed JSON', '{"model": "echo", "messages": [', [400], 'body');
    send('trailing garbage', `${JSON.stringify(base)} x`, [400], 'body');
    send('empty body', '', [400], 'body');
    send('wrong content-type', JSON.stringify(base), [415], undefined, { 'content-type': 'text/plain' });
    send('form content-type', 'a=1&b=2', [415], undefined, { 'content-type': 'application/x-www-form-urlencoded' });
    send('JSON array', '[]', [400]);
    send('JSON string', '"hello"', [400]);
    send('JSON number', '42', [400]);
    send('JSON null', 'null', [400]);
    send('JSON true', 'true', [400]);
    send('__proto__ pollution', `{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}`, [400]);
    send('body over the limit', JSON.stringify({ ...(base as object), pad: 'x'.repeat(bodyLimit + 1024) }), [413]);
    send('deeply nested unknown field', `{"zz_deep": ${deepJson(20_000)}}`, [400], 'body');
    send('deeply nested array', `${'['.repeat(50_000)}${']'.repeat(50_000)}`, [400], 'body');
    for (const sc of (SEMANTIC_CASES[key] ?? []).filter((c) => !c.needs || schema?.properties?.[c.needs])) send(`semantic: ${sc.label}`, JSON.stringify(sc.body), sc.expect, sc.field);
    // Every other method on the same path is refused in the error shape (one the path has no route for).
    const taken = new Set(ROUTE_SCOPES.filter((r) => r.url === route.url).map((r) => r.method as string));
    const other = ['PATCH', 'PUT', 'DELETE', 'POST'].find((m) => m !== route.method && !taken.has(m))!;
    out.push({ label: 'method not allowed', method: other, path, headers: JSON_HEADERS, body: '{}', expect: [404, 405] });
    send('huge string in an unknown field', JSON.stringify({ ...(base as object), zz_huge: 'x'.repeat(Math.floor(bodyLimit * 0.8)) }));
    if (schema) {
      if (schema.additionalProperties === false) {
        send('unknown field', JSON.stringify({ ...(base as object), zz_unknown: 1 }), [400], 'zz_unknown');
      }
      const muts: Mutation[] = [];
      mutations(schema, base, [], muts);
      for (const m of muts) send(m.label, JSON.stringify(m.body), [400], m.field);
      // Free-form objects and strings: deep and huge values must not crash anything.
      for (const [prop, sub] of Object.entries((schema.properties ?? {}) as Record<string, Schema>)) {
        const types = allowedTypes(sub) ?? [];
        const stripped = JSON.stringify({ ...(base as object), [prop]: '__V__' });
        if (types.includes('object')) send(`${prop}: deeply nested`, stripped.replace('"__V__"', deepJson(20_000)), [400], 'body');
        if (types.includes('string') && sub.maxLength === undefined) {
          send(`${prop}: huge string`, stripped.replace('"__V__"', JSON.stringify('y'.repeat(Math.floor(bodyLimit * 0.8)))));
        }
        if (types.includes('array')) send(`${prop}: huge array`, stripped.replace('"__V__"', `[${Array(100_000).fill('1').join(',')}]`));
      }
    }
  }

  // Path parameters.
  const params = [...route.url.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]!);
  for (const p of params) {
    const bad: Array<[string, string, number[] | undefined]> = [
      ['over-long', 'a'.repeat(600), [400, 404, 414]],
      ['long', 'a'.repeat(300), undefined],
      ['unicode', encodeURIComponent('ünï😀名'), undefined],
      ['bad percent-encoding', '%E0%A4%A', [400, 404]],
      ['bad percent-escape', '%zz', [400, 404]],
      ['dot-dot', '..', undefined],
      ['encoded dot-dot', '%2e%2e', undefined],
      ['encoded slash', 'a%2Fb', undefined],
      ['NUL', 'a%00b', undefined],
      ['braces', '%7Bx%7D', undefined],
    ];
    for (const [label, value, expect] of bad) {
      const body = hasBody ? JSON.stringify(BASE_BODIES[key] ?? {}) : undefined;
      out.push({ label: `param ${p}: ${label}`, method: route.method, path: fillPath(route.url, { [p]: value }), headers: hasBody ? JSON_HEADERS : {}, body, expect });
    }
  }

  // Query strings.
  const query = route.schema?.querystring as Schema | undefined;
  const qs = (q: string) => `${path}?${q}`;
  out.push({ label: 'bad percent-encoding in the query', method: route.method, path: qs('a=%E0%A4%A&b=%zz'), headers: hasBody ? JSON_HEADERS : {}, body: hasBody ? JSON.stringify(BASE_BODIES[key] ?? {}) : undefined });
  if (route.method === 'GET' && query?.properties) {
    for (const [prop, sub] of Object.entries(query.properties as Record<string, Schema>)) {
      const types = allowedTypes(sub) ?? [];
      if (types.includes('integer') || types.includes('number')) {
        for (const v of ['-1', 'NaN', 'abc', '1e400', '99999999999999999999999', '1.5', '', '0x10', 'Infinity']) {
          // An empty value or a value inside the bounds may be accepted.
          // ajv's coercion reads hexadecimal ('0x10' is 16), as Number() does.
          const mayPass = v === '' || v === '0x10' || (v === '-1' && typeof sub.minimum === 'number' && sub.minimum <= -1) || (v === '1.5' && types.includes('number'));
          out.push({ label: `query ${prop}=${v}`, method: 'GET', path: qs(`${prop}=${encodeURIComponent(v)}`), expect: mayPass ? undefined : [400], field: mayPass ? undefined : prop });
        }
        out.push({ label: `query ${prop} twice`, method: 'GET', path: qs(`${prop}=1&${prop}=2`) });
      }
      if (types.includes('boolean')) out.push({ label: `query ${prop}=maybe`, method: 'GET', path: qs(`${prop}=maybe`), expect: [400], field: prop });
      if (Array.isArray(sub.enum)) out.push({ label: `query ${prop} not in enum`, method: 'GET', path: qs(`${prop}=zz`), expect: [400], field: prop });
      if (typeof sub.pattern === 'string') out.push({ label: `query ${prop} breaks pattern`, method: 'GET', path: qs(`${prop}=${encodeURIComponent('../Bad Name')}`), expect: [400], field: prop });
      if (typeof sub.maxLength === 'number') out.push({ label: `query ${prop} too long`, method: 'GET', path: qs(`${prop}=${'q'.repeat(sub.maxLength + 1)}`), expect: [400], field: prop });
    }
    if (query.additionalProperties === false) out.push({ label: 'unknown query parameter', method: 'GET', path: qs('zz_unknown=1'), expect: [400], field: 'zz_unknown' });
  }
  out.push({ label: 'huge query string', method: route.method, path: qs(`q=${'z'.repeat(60_000)}`), headers: hasBody ? JSON_HEADERS : {}, body: hasBody ? JSON.stringify(BASE_BODIES[key] ?? {}) : undefined });
  return out;
}
