/**
 * The fields of every route, read from the route schemas: each string field (where text goes)
 * and each free-form object (whose keys the client chooses), in the body, the query string and
 * the path. The class tests for invalid text and reserved names sweep these, so a field added
 * to a schema is swept without touching them.
 */
import type { RouteInfo } from './targets';

type Schema = Record<string, any>;

/** Where a field sits in a request. */
export type FieldPart = 'body' | 'query' | 'param';

/** One field of one route. */
export interface SchemaField {
  /** `METHOD url`, as cases.ts keys routes. */
  route: string;
  part: FieldPart;
  /** The path into the body (array items as index 0), or the query/param name. */
  path: Array<string | number>;
  /** `string`: holds text; `object`: a free-form object, its keys chosen by the client. */
  kind: 'string' | 'object';
}

/** `messages[0].content`, as the services name fields in `param`. */
export function fieldName(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** `POST /v1/templates body template`: how the classification tables name a field. */
export function fieldKey(f: SchemaField): string {
  return `${f.route} ${f.part} ${fieldName(f.path)}`;
}

function types(schema: Schema): string[] {
  if (schema.type) return Array.isArray(schema.type) ? schema.type : [schema.type];
  return [];
}

function walk(schema: Schema | undefined, path: Array<string | number>, out: Array<Omit<SchemaField, 'route' | 'part'>>): void {
  if (!schema || typeof schema !== 'object') return;
  for (const alt of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])] as Schema[]) walk(alt, path, out);
  const t = types(schema);
  if (t.includes('string') && path.length > 0) out.push({ path, kind: 'string' });
  if (schema.properties) for (const [k, sub] of Object.entries(schema.properties as Record<string, Schema>)) walk(sub, [...path, k], out);
  else if (t.includes('object') && path.length > 0) out.push({ path, kind: 'object' });
  if (schema.items && !Array.isArray(schema.items)) walk(schema.items as Schema, [...path, 0], out);
}

/** Every string field and free-form object of a route (deduplicated). */
export function schemaFields(route: RouteInfo): SchemaField[] {
  const key = `${route.method} ${route.url}`;
  const out: SchemaField[] = [];
  const add = (part: FieldPart, schema: Schema | undefined) => {
    const found: Array<Omit<SchemaField, 'route' | 'part'>> = [];
    walk(schema, [], found);
    for (const f of found) out.push({ route: key, part, ...f });
  };
  const body = route.schema?.body as Schema | undefined;
  if (route.method === 'POST' || route.method === 'PUT' || route.method === 'PATCH') add('body', body);
  add('query', route.schema?.querystring as Schema | undefined);
  for (const m of route.url.matchAll(/:([A-Za-z_]+)/g)) out.push({ route: key, part: 'param', path: [m[1]!], kind: 'string' });
  const seen = new Set<string>();
  return out.filter((f) => {
    const k = `${fieldKey(f)} ${f.kind}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** A copy of `base` with `value` at `path`, creating objects and arrays on the way. */
export function setDeep(base: unknown, path: ReadonlyArray<string | number>, value: unknown): unknown {
  const root = structuredClone(base ?? {}) as any;
  let node = root;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    if (node[key] === null || typeof node[key] !== 'object') node[key] = typeof path[i + 1] === 'number' ? [{}] : {};
    node = node[key];
  });
  return root;
}
