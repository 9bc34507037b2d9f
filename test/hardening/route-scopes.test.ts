/**
 * Scopes and request targets (issue 9, items 1 and 11), on real processes over raw sockets.
 *
 * The class of item 1: what decides access must be the route that runs. Every route the router
 * registers, in both layouts (`SERVICE=all`, and the router alone reaching the others over
 * HTTP), is called with every credential (none, invoke only, admin only, both) under many
 * spellings of its path (percent-encoded letters and digits, `#`, `//`, `;`, dot segments,
 * trailing `/`, upper case, absolute form, an encoded `/`): each answer is what the route table
 * (ROUTE_SCOPES) says, a 400 naming the path for a target not in normal form, or a 404 when
 * the spelling names no route. The route table and the registered routes must match exactly,
 * and a route without a scope cannot be registered.
 *
 * The class of item 11: a header clients send on every request (`content-type:
 * application/json`) with no body must not change the answer of a route that takes no body.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../contracts';
import { requestTargetProblem } from '../../services/kit';
import { PUBLIC_ROUTES, ROUTE_SCOPES, guardRouteScopes, scopeOfRoute } from '../../services/router/route-scopes';
import type { Scope } from '../../services/router/auth';
import { rawRequest, type RawAnswer } from '../support/raw-http';
import { BASE_BODIES, PARAM_VALUES, fillPath } from './cases';
import { ADMIN_KEY, ADMIN_ONLY_KEY, INVOKE_ONLY_KEY, collectRoutes, startTargets, type RouteInfo, type Targets } from './targets';

/** The credentials every route is called with, and the scopes each carries. */
const CREDENTIALS: Array<{ name: string; key?: string; scopes: Scope[] }> = [
  { name: 'none', scopes: [] },
  { name: 'invoke only', key: INVOKE_ONLY_KEY, scopes: ['invoke'] },
  { name: 'admin only', key: ADMIN_ONLY_KEY, scopes: ['admin'] },
  { name: 'invoke and admin', key: ADMIN_KEY, scopes: ['invoke', 'admin'] },
];

/** What a spelling of a route's path must get: the route table's answer, a 400 naming the path, or a 404. */
type Expectation = 'table' | 'refused' | 'no route';

/** One spelling of a route's path. */
interface Spelling {
  label: string;
  target: string;
  expect: Expectation;
}

/** The spellings of `path` (a route's path in normal form, parameters filled in). */
function spellings(path: string, base: string): Spelling[] {
  const segments = path.split('/').slice(1);
  const last = segments[segments.length - 1]!;
  const head = `/${segments.slice(0, -1).join('/')}`;
  const rest = path.slice('/v1'.length);
  // The first letter of the last segment, percent-encoded: `/v1/templates/%65xport`.
  const letter = last.search(/[A-Za-z]/);
  const encodedLetter = `${head === '/' ? '' : head}/${last.slice(0, letter)}%${last.charCodeAt(letter).toString(16).toUpperCase()}${last.slice(letter + 1)}`;
  const out: Spelling[] = [
    { label: 'canonical', target: path, expect: 'table' },
    { label: 'trailing /', target: `${path}/`, expect: 'table' },
    { label: 'with a query string', target: `${path}?zz=1`, expect: 'table' },
    { label: 'percent-encoded letter', target: encodedLetter, expect: 'refused' },
    { label: 'percent-encoded letter, lower-case hex', target: encodedLetter.toLowerCase(), expect: 'refused' },
    { label: 'percent-encoded digit', target: `/v%31${rest}`, expect: 'refused' },
    { label: '# at the end', target: `${path}#`, expect: 'refused' },
    { label: '# before the last segment', target: `${head === '/' ? '' : head}/#/${last}`, expect: 'refused' },
    { label: '# in the query', target: `${path}?a=1#frag`, expect: 'refused' },
    { label: '//', target: `/v1/${rest}`, expect: 'refused' },
    { label: 'leading //', target: `/${path}`, expect: 'refused' },
    { label: '; at the end', target: `${path};x=1`, expect: 'refused' },
    { label: '; in a segment', target: `/v1;x${rest}`, expect: 'refused' },
    { label: '..', target: `${head === '/' ? '' : head}/zz/../${last}`, expect: 'refused' },
    { label: '.', target: `/v1/.${rest}`, expect: 'refused' },
    { label: 'encoded .', target: `/v1/%2E${rest}`, expect: 'refused' },
    { label: 'backslash', target: `/v1\\${rest.slice(1)}`, expect: 'refused' },
    { label: 'absolute form', target: `${base}${path}`, expect: 'refused' },
    { label: 'upper case', target: `/V1${rest}`, expect: 'no route' },
    { label: 'encoded /', target: `/v1%2F${rest.slice(1)}`, expect: 'no route' },
  ];
  // A reserved character escaped with lower-case hex inside a parameter stays a parameter.
  if (path.includes(`/${PARAM_VALUES.id}`)) out.push({ label: 'lower-case hex escape in a parameter', target: path.replace(`/${PARAM_VALUES.id}`, `/${PARAM_VALUES.id}%3ax`), expect: 'table' });
  return out;
}

/** The path a route is called on: parameters filled, DELETE pointed at names nobody uses. */
function pathOf(route: RouteInfo): string {
  return fillPath(route.url, route.method === 'DELETE' ? { name: 'scope-unused', id: 'scope-unused' } : {});
}

/** What is wrong with `answer` for `route` called with `credential` under `spelling`, or undefined. */
function judge(scope: Scope | 'public', credential: (typeof CREDENTIALS)[number], spelling: Spelling, answer: RawAnswer): string | undefined {
  let body: { error?: { param?: unknown; code?: unknown } } | undefined;
  try {
    body = JSON.parse(answer.body) as typeof body;
  } catch {
    body = undefined;
  }
  const said = `${answer.status} ${answer.body.slice(0, 160)}`;
  if (answer.status >= 500) return `answered ${said}`;
  if (spelling.expect === 'refused') {
    // The Anthropic Messages route answers in Anthropic's error shape (no param or code): its message names the path.
    const anthropicNamed = (body as { type?: unknown } | undefined)?.type === 'error' && /request path .* is not in normal form/.test(String((body?.error as { message?: unknown } | undefined)?.message ?? ''));
    if (answer.status !== 400 || (!anthropicNamed && (body?.error?.param !== 'path' || body.error.code !== 'invalid_path'))) return `expected a 400 naming the path, got ${said}`;
    return undefined;
  }
  if (spelling.expect === 'no route') return answer.status === 404 ? undefined : `expected 404 (no route), got ${said}`;
  if (scope === 'public') return answer.status === 401 || answer.status === 403 ? `a public route answered ${said}` : undefined;
  if (!credential.key) return answer.status === 401 ? undefined : `expected 401 without a key, got ${said}`;
  if (!credential.scopes.includes(scope)) return answer.status === 403 ? undefined : `expected 403 (route needs '${scope}'), got ${said}`;
  return answer.status === 401 || answer.status === 403 ? `a key with '${scope}' was refused: ${said}` : undefined;
}

/** Runs `work` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

let t: Targets;

beforeAll(async () => {
  t = await startTargets();
  // A template and a label history for the label-history route to find.
  const created = await rawRequest(t.templates.url, 'POST', PATHS.templates, { 'content-type': 'application/json' }, JSON.stringify({ name: PARAM_VALUES.name, type: 'text', template: 'Hello {{x}}', labels: ['production'] }));
  expect(created.status).toBe(201);
}, 120_000);

afterAll(async () => {
  await t?.close();
});

describe('the route table', () => {
  it('refuses to register a route without a scope, naming it', async () => {
    const app = Fastify({ logger: false });
    guardRouteScopes(app);
    app.get(PATHS.models, async () => ({}));
    expect(() => app.get('/v1/brand-new', async () => ({}))).toThrow(/GET \/v1\/brand-new has no scope: add it to ROUTE_SCOPES/);
    expect(() => app.post(PATHS.models, async () => ({}))).toThrow(/POST \/v1\/models has no scope/);
    await app.close();
  });

  it('lists exactly the routes the router registers, in both layouts', async () => {
    const table = [...ROUTE_SCOPES, ...PUBLIC_ROUTES].map((r) => `${r.method} ${r.url}`).sort();
    for (const name of ['all', 'router'] as const) {
      const routes = await collectRoutes(t[name].proc.services.get('router')!.routes);
      expect(routes.map((r) => `${r.method} ${r.url}`).sort(), name).toEqual(table);
    }
    expect(scopeOfRoute('HEAD', PATHS.templates)).toBe('invoke');
    expect(scopeOfRoute('GET', '/v1/unlisted')).toBeUndefined();
  });
});

describe('every route x every credential x every spelling answers as the route table says', () => {
  for (const name of ['all', 'router'] as const) {
    it(`${name}`, async () => {
      const target = t[name];
      const routes = await collectRoutes(target.proc.services.get('router')!.routes);
      const kit: Array<RouteInfo & { public: true }> = [PATHS.healthz, PATHS.readyz, PATHS.metrics].map((url) => ({ method: 'GET', url, schema: undefined, public: true }));
      const calls: Array<{ route: RouteInfo; scope: Scope | 'public'; credential: (typeof CREDENTIALS)[number]; spelling: Spelling }> = [];
      for (const route of [...routes, ...kit]) {
        const scope = 'public' in route ? 'public' : scopeOfRoute(route.method, route.url);
        expect(scope, `${route.method} ${route.url}`).toBeDefined();
        for (const spelling of spellings(pathOf(route), target.url)) {
          // The kit's routes live outside /v1: only the spellings that apply to any path.
          if ('public' in route && !['canonical', 'trailing /', '# at the end', 'leading //', '; at the end', 'absolute form'].includes(spelling.label)) continue;
          for (const credential of CREDENTIALS) calls.push({ route, scope: scope!, credential, spelling });
        }
      }
      expect(calls.length).toBeGreaterThan(1000);
      const failures: string[] = [];
      await inParallel(calls, 8, async ({ route, scope, credential, spelling }) => {
        const hasBody = route.method === 'POST' || route.method === 'PUT';
        const headers: Record<string, string> = credential.key ? { authorization: `Bearer ${credential.key}` } : {};
        if (hasBody) headers['content-type'] = 'application/json';
        const body = hasBody ? JSON.stringify(BASE_BODIES[`${route.method} ${route.url}`] ?? {}) : undefined;
        const answer = await rawRequest(target.url, route.method, spelling.target, headers, body);
        const problem = judge(scope, credential, spelling, answer);
        if (problem) failures.push(`${route.method} ${spelling.target} (${spelling.label}, key: ${credential.name}): ${problem}`);
      });
      expect(failures.slice(0, 30)).toEqual([]);
    }, 300_000);
  }

  // The services behind the router check targets the same way (no auth there: the mesh's
  // AuthorizationPolicy guards them).
  for (const name of ['templates', 'context', 'llm'] as const) {
    it(`${name} alone refuses targets not in normal form`, async () => {
      const target = t[name];
      const failures: string[] = [];
      for (const route of target.routes) {
        for (const spelling of spellings(pathOf(route), target.url).filter((s) => s.expect === 'refused')) {
          const answer = await rawRequest(target.url, route.method, spelling.target, {});
          const problem = judge('public', CREDENTIALS[0]!, spelling, answer);
          if (problem) failures.push(`${route.method} ${spelling.target} (${spelling.label}): ${problem}`);
        }
      }
      expect(failures.slice(0, 30)).toEqual([]);
    }, 120_000);
  }
});

describe('issue 9, item 1: the reported bypasses, with an invoke-only key', () => {
  const invoke = { authorization: `Bearer ${INVOKE_ONLY_KEY}` };
  const admin = { authorization: `Bearer ${ADMIN_KEY}` };
  for (const name of ['all', 'router'] as const) {
    it(`${name}: POST /v1/templates/#/render with a template body creates nothing`, async () => {
      const url = t[name].url;
      const template = JSON.stringify({ name: `fragment-${name}`, type: 'text', template: 'pwned' });
      const answer = await rawRequest(url, 'POST', '/v1/templates/#/render', { ...invoke, 'content-type': 'application/json' }, template);
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body).error).toMatchObject({ param: 'path', code: 'invalid_path' });
      expect((await rawRequest(url, 'GET', `/v1/templates/fragment-${name}`, admin)).status).toBe(404);
      // The same write, spelled plainly, is refused by scope.
      expect((await rawRequest(url, 'POST', '/v1/templates/', { ...invoke, 'content-type': 'application/json' }, template)).status).toBe(403);
    });

    it(`${name}: the export, change feed and label history are refused however they are spelled`, async () => {
      const url = t[name].url;
      for (const target of ['/v1/templates/%65xport', '/v1/templates/%65xport/', `/v1/templates/${PARAM_VALUES.name}/labels/production/history#`, '/v1/templates/ch%61nges?since=0']) {
        const answer = await rawRequest(url, 'GET', target, invoke);
        expect(answer.status, target).toBe(400);
        expect(JSON.parse(answer.body).error.param, target).toBe('path');
      }
      for (const target of ['/v1/templates/export', '/v1/templates/export/', '/v1/templates/changes?since=0', `/v1/templates/${PARAM_VALUES.name}/labels/production/history`, `/v1/templates/${PARAM_VALUES.name}/labels/production/history/`]) {
        expect((await rawRequest(url, 'GET', target, invoke)).status, target).toBe(403);
        expect((await rawRequest(url, 'GET', target, admin)).status, target).toBe(200);
      }
    });
  }

  it('decides normal form as documented', () => {
    for (const ok of ['/v1/models', '/v1/templates/a-b.c_d', '/v1/templates/', '/v1/sessions/k%3As/messages', '/v1/sessions/k%3as/messages', '/v1/templates?limit=1&cursor=a;b', "/v1/x/!$&'()*+,=:@"]) {
      expect(requestTargetProblem(ok), ok).toBeUndefined();
    }
    for (const [bad, reason] of [
      ['/v1/templates/%65xport', 'percent-encodes "e"'],
      ['/v1/templates/a%2eb', 'percent-encodes "."'],
      ['/v1/templates/a%7e', 'percent-encodes "~"'],
      ['/v1/templates/#/render', '"#"'],
      ['/v1/templates?x=1#', '"#"'],
      ['/v1//templates', 'empty segment'],
      ['/v1/templates;x', '";"'],
      ['/v1/templates/../models', 'dot segment'],
      ['/v1/./models', 'dot segment'],
      ['/v1/templates/%zz', 'malformed percent-escape'],
      ['/v1/templates/%4', 'malformed percent-escape'],
      ['/v1/templates/a b', 'must be percent-encoded'],
      ['/v1/templates/é', 'must be percent-encoded'],
      ['/v1/templates/{x}', 'must be percent-encoded'],
      ['http://h/v1/models', 'starting with "/"'],
      ['*', 'starting with "/"'],
    ]) {
      expect(requestTargetProblem(bad!), bad).toContain(reason);
    }
  });
});

describe('issue 9, item 11: an empty body with content-type: application/json is no body', () => {
  // The ways clients send "no body" with the JSON content type.
  const EMPTY: Array<[string, Record<string, string>, string]> = [
    ['content-type json, content-length 0', { 'content-type': 'application/json', 'content-length': '0' }, ''],
    ['content-type json with charset, content-length 0', { 'content-type': 'application/json; charset=utf-8', 'content-length': '0' }, ''],
    ['content-type json, an empty chunked body', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, '0\r\n\r\n'],
  ];
  for (const name of ['all', 'router', 'templates', 'context', 'llm'] as const) {
    it(`${name}: every route without a body schema answers as it does without the header`, async () => {
      const target = t[name];
      const auth: Record<string, string> = name === 'all' || name === 'router' ? { authorization: `Bearer ${ADMIN_KEY}` } : {};
      const kit: RouteInfo[] = [PATHS.healthz, PATHS.metrics].map((url) => ({ method: 'GET', url, schema: undefined }));
      const bodiless = [...target.routes, ...kit].filter((r) => !r.schema?.body);
      expect(bodiless.some((r) => r.method === 'DELETE') || name === 'llm').toBe(true);
      const failures: string[] = [];
      for (const route of bodiless) {
        const path = pathOf(route);
        const plain = await rawRequest(target.url, route.method, path, auth);
        for (const [label, headers, body] of EMPTY) {
          const answer = await rawRequest(target.url, route.method, path, { ...auth, ...headers }, body);
          if (answer.status !== plain.status) failures.push(`${route.method} ${path} (${label}): ${answer.status} ${answer.body.slice(0, 160)}, without the header ${plain.status}`);
        }
      }
      expect(failures).toEqual([]);
    }, 120_000);
  }

  it('a route that declares a body still says it is missing, naming the body', async () => {
    const answer = await rawRequest(t.all.url, 'POST', PATHS.templates, { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json', 'content-length': '0' }, '');
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error).toMatchObject({ param: 'body', message: 'request body is empty; send a JSON object' });
  });
});
