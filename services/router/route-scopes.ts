/**
 * Which scope each router route needs, keyed by method and route pattern (docs/router.md,
 * "Scopes"). The scope is read from the route Fastify matched, never from the raw URL: any
 * spelling of a path that reaches a route needs that route's scope, whatever the URL looked like.
 *
 * Every route the router registers must be listed here: {@link guardRouteScopes} refuses to
 * register one that is not (the process does not start), and a request that somehow reaches an
 * unlisted route is refused (fail closed).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PATHS } from '../../contracts';
import type { Scope } from './auth';
import { CONSOLE_PATH } from './console';
import { STATS_PATHS } from './stats';

/** One row of the route table. */
export interface RouteScope {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** The route pattern as registered (`/v1/templates/:name`). */
  url: string;
  scope: Scope;
}

const T = PATHS.templates;
const S = PATHS.sessions;
const K = PATHS.keys;

/**
 * The router's routes and their scopes. Reading templates (get, list, versions, render) needs
 * `invoke`; writes, label moves, archive, label history, the export and change feed, and every
 * sessions call need `admin`. Keys and teams need `admin`; spend needs `invoke` (own rows only
 * without `admin`).
 */
export const ROUTE_SCOPES: readonly RouteScope[] = [
  { method: 'POST', url: PATHS.chatCompletions, scope: 'invoke' },
  { method: 'POST', url: PATHS.embeddings, scope: 'invoke' },
  { method: 'POST', url: PATHS.responses, scope: 'invoke' },
  { method: 'POST', url: PATHS.messages, scope: 'invoke' },
  { method: 'GET', url: PATHS.models, scope: 'invoke' },
  { method: 'GET', url: PATHS.providers, scope: 'admin' },
  { method: 'POST', url: T, scope: 'admin' },
  { method: 'GET', url: T, scope: 'invoke' },
  { method: 'GET', url: PATHS.templateChanges, scope: 'admin' },
  { method: 'GET', url: `${T}/export`, scope: 'admin' },
  { method: 'GET', url: `${T}/:name`, scope: 'invoke' },
  { method: 'DELETE', url: `${T}/:name`, scope: 'admin' },
  { method: 'POST', url: `${T}/:name/versions`, scope: 'admin' },
  { method: 'GET', url: `${T}/:name/versions`, scope: 'invoke' },
  { method: 'PUT', url: `${T}/:name/labels/:label`, scope: 'admin' },
  { method: 'GET', url: `${T}/:name/labels/:label/history`, scope: 'admin' },
  { method: 'POST', url: `${T}/:name/render`, scope: 'invoke' },
  { method: 'GET', url: `${S}/:id/messages`, scope: 'admin' },
  { method: 'POST', url: `${S}/:id/messages`, scope: 'admin' },
  { method: 'DELETE', url: `${S}/:id`, scope: 'admin' },
  { method: 'GET', url: STATS_PATHS.prompt, scope: 'admin' },
  { method: 'GET', url: STATS_PATHS.providers, scope: 'admin' },
  { method: 'POST', url: K, scope: 'admin' },
  { method: 'GET', url: K, scope: 'admin' },
  { method: 'GET', url: `${K}/:id`, scope: 'admin' },
  { method: 'PATCH', url: `${K}/:id`, scope: 'admin' },
  { method: 'DELETE', url: `${K}/:id`, scope: 'admin' },
  { method: 'POST', url: `${K}/:id/rotate`, scope: 'admin' },
  { method: 'GET', url: PATHS.teams, scope: 'admin' },
  { method: 'GET', url: `${PATHS.teams}/:id`, scope: 'admin' },
  { method: 'PUT', url: `${PATHS.teams}/:id`, scope: 'admin' },
  // A key without admin sees only its own spend (keys/routes.ts).
  { method: 'GET', url: PATHS.spend, scope: 'invoke' },
];

/**
 * Routes that need no key: the console's static assets (services/router/console.ts). They hold
 * no data; everything the console shows comes from the API routes above, with a key.
 */
export const PUBLIC_ROUTES: ReadonlyArray<{ method: 'GET'; url: string }> = [
  { method: 'GET', url: CONSOLE_PATH.slice(0, -1) },
  { method: 'GET', url: `${CONSOLE_PATH}*` },
];

const PUBLIC = new Set(PUBLIC_ROUTES.map((r) => `${r.method} ${r.url}`));

/** Whether `request` matched one of {@link PUBLIC_ROUTES} (HEAD is GET). */
export function isPublicRoute(request: FastifyRequest): boolean {
  const url = request.routeOptions.url;
  if (url === undefined) return false;
  return PUBLIC.has(`${request.method === 'HEAD' ? 'GET' : request.method} ${url}`);
}

// url -> method -> scope, so a request costs two map lookups and no string building.
const TABLE = new Map<string, Map<string, Scope>>();
for (const row of ROUTE_SCOPES) {
  let byMethod = TABLE.get(row.url);
  if (!byMethod) TABLE.set(row.url, (byMethod = new Map()));
  byMethod.set(row.method, row.scope);
}

/** The scope `method` on the route pattern `url` needs, or undefined when the table lacks it. HEAD is GET. */
export function scopeOfRoute(method: string, url: string | undefined): Scope | undefined {
  if (url === undefined) return undefined;
  return TABLE.get(url)?.get(method === 'HEAD' ? 'GET' : method);
}

/** The scope of the route `request` matched (see {@link scopeOfRoute}). */
export function scopeOfRequest(request: FastifyRequest): Scope | undefined {
  return scopeOfRoute(request.method, request.routeOptions.url);
}

/**
 * Makes `app` (and the plugins registered inside it) refuse to register a route that
 * {@link ROUTE_SCOPES} does not list, naming it, so a new route cannot ship without a scope.
 */
export function guardRouteScopes(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      if (scopeOfRoute(method, route.url) === undefined && !PUBLIC.has(`${method === 'HEAD' ? 'GET' : method} ${route.url}`)) {
        throw new Error(`router route ${method} ${route.url} has no scope: add it to ROUTE_SCOPES (services/router/route-scopes.ts)`);
      }
    }
  });
}
