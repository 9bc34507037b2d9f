/**
 * Validates Kubernetes manifests offline against the Kubernetes 1.34+ schemas
 * (`kubernetes-models` 5.x), the Istio CRD schemas with the v1 APIs (`@kubernetes-models/istio`
 * 3.x) and the prometheus-operator CRD schemas (`@kubernetes-models/prometheus-operator` 6.x, the
 * same `@kubernetes-models/base` major: mixed majors do not find each other's schemas), unknown
 * fields included: a misspelt field is a problem, as it is for `kubectl apply --validate=strict`.
 * cert-manager objects are validated against the CRD files in `imports/crds/` by the generated
 * classes' types instead (`tsc`), since no model package ships them.
 *
 * The model packages are ESM only; Node 24 loads them with `require()` (no top-level await in
 * them), which keeps this validator synchronous for its many callers.
 *
 * The schemas in those packages come as validator functions (compiled ahead of time, or compiled
 * by ajv at first use) that ignore properties they do not know. To catch unknown fields, the
 * object is handed to the validator behind a Proxy that records, per object node, which
 * properties the validator read and whether it enumerated the keys. A generated validator reads
 * every property its schema declares (`data.x === undefined || validate(data.x)`), enumerates
 * the keys only where the schema allows arbitrary ones (`additionalProperties`: labels, resource
 * maps, ...) and reads nothing of an object whose schema is free-form
 * (`x-kubernetes-preserve-unknown-fields`, `type: object` without properties). So, per node:
 * keys enumerated -> any key is allowed; nothing read -> free-form, any key is allowed;
 * otherwise every own key the validator did not read is unknown to the schema.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** One object node seen by a validator: which keys it read and whether it enumerated them. */
interface Seen {
  read: Set<string>;
  enumerated: boolean;
}

/** The package that holds the model classes of an API group. */
function modelPackage(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  if (group.endsWith('.istio.io')) return '@kubernetes-models/istio';
  if (group === 'monitoring.coreos.com') return '@kubernetes-models/prometheus-operator';
  return 'kubernetes-models';
}

/**
 * The file of the version index module (one class per kind) of an apiVersion. The packages'
 * `exports` offer only the `import` condition, so `require('kubernetes-models/apps/v1')` is
 * refused; the file itself, by absolute path, loads (Node 24 requires ESM without top-level await).
 */
function modelModule(apiVersion: string): string | undefined {
  const pkg = modelPackage(apiVersion);
  for (const dir of require.resolve.paths(pkg) ?? []) {
    const file = join(dir, pkg, apiVersion, 'index.js');
    if (existsSync(file)) return file;
  }
  return undefined;
}

type ModelClass = { prototype: { validate(): void }; apiVersion: string; kind: string };

const modelCache = new Map<string, ModelClass | undefined>();

/** The model class for an apiVersion and kind, or undefined when the schemas do not know it. */
function findModel(apiVersion: string, kind: string): ModelClass | undefined {
  const key = `${apiVersion}|${kind}`;
  if (modelCache.has(key)) return modelCache.get(key);
  let found: ModelClass | undefined;
  try {
    const file = modelModule(apiVersion);
    const mod = (file ? require(file) : {}) as Record<string, unknown>;
    const candidate = mod[kind] as ModelClass | undefined;
    if (
      candidate &&
      typeof (candidate as unknown) === 'function' &&
      candidate.apiVersion === apiVersion &&
      candidate.kind === kind &&
      typeof candidate.prototype.validate === 'function'
    ) {
      found = candidate;
    }
  } catch {
    found = undefined;
  }
  modelCache.set(key, found);
  return found;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Wraps `root` so that every object node the validator touches records its reads. `proto`
 * supplies the symbol-keyed members the model's `validate()` looks up on `this` (the schema id
 * of the older @kubernetes-models/base).
 */
function track(root: Record<string, unknown>, proto: object): { proxy: object; seen: WeakMap<object, Seen> } {
  const seen = new WeakMap<object, Seen>();
  const proxies = new WeakMap<object, object>();
  const wrap = (target: object, isRoot: boolean): object => {
    const existing = proxies.get(target);
    if (existing) return existing;
    const record: Seen = { read: new Set(), enumerated: false };
    seen.set(target, record);
    const proxy = new Proxy(target, {
      get(t, prop, receiver) {
        if (typeof prop === 'symbol') {
          if (isRoot && !(prop in t)) return (proto as Record<symbol, unknown>)[prop];
          return Reflect.get(t, prop, receiver);
        }
        record.read.add(prop);
        const value = Reflect.get(t, prop);
        if (typeof value === 'object' && value !== null) return wrap(value, false);
        return value;
      },
      has(t, prop) {
        if (typeof prop === 'string') record.read.add(prop);
        return Reflect.has(t, prop);
      },
      ownKeys(t) {
        record.enumerated = true;
        return Reflect.ownKeys(t);
      },
    });
    proxies.set(target, proxy);
    return proxy;
  };
  return { proxy: wrap(root, true), seen };
}

/** Lists the keys of visited object nodes that the validator did not know. */
function unknownFields(node: unknown, path: string, seen: WeakMap<object, Seen>, out: string[]): void {
  if (Array.isArray(node)) {
    node.forEach((item, i) => unknownFields(item, `${path}/${i}`, seen, out));
    return;
  }
  if (!isPlainObject(node)) return;
  const record = seen.get(node);
  // Never visited: inside a free-form value, or under a key already reported.
  if (!record) return;
  if (record.enumerated || record.read.size === 0) {
    // Map or free-form object: its keys are data, but its values may still be typed objects.
    for (const [key, value] of Object.entries(node)) unknownFields(value, `${path}/${key}`, seen, out);
    return;
  }
  for (const [key, value] of Object.entries(node)) {
    if (!record.read.has(key)) {
      out.push(`${path}/${key}: unknown field "${key}"`);
    } else {
      unknownFields(value, `${path}/${key}`, seen, out);
    }
  }
}

interface SchemaError {
  instancePath?: string;
  dataPath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

function describeError(err: SchemaError): string {
  const where = err.instancePath ?? err.dataPath ?? '';
  let message = err.message;
  if (!message) {
    if (err.keyword === 'required') message = `must have required property '${String(err.params?.missingProperty)}'`;
    else if (err.keyword === 'type') message = `must be ${String(err.params?.type)}`;
    else if (err.keyword === 'enum') message = `must be one of ${JSON.stringify(err.params?.allowedValues)}`;
    else if (err.keyword === 'format') message = `must match format "${String(err.params?.format)}"`;
    else message = `${err.keyword ?? 'schema'} ${JSON.stringify(err.params ?? {})}`;
  }
  return `${where || '/'}: ${message}`;
}

/**
 * Validates one manifest; returns its problems (empty when valid), each prefixed with
 * `Kind namespace/name`.
 */
export function validateManifest(object: unknown): string[] {
  if (!isPlainObject(object)) return [`manifest is not an object: ${JSON.stringify(object)}`];
  const { apiVersion, kind } = object;
  const metadata = isPlainObject(object.metadata) ? object.metadata : {};
  const label = `${String(kind)} ${metadata.namespace ? `${String(metadata.namespace)}/` : ''}${String(metadata.name)}`;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    return [`${label}: apiVersion and kind must be strings`];
  }
  const model = findModel(apiVersion, kind);
  if (!model) {
    return [`${label}: unknown apiVersion/kind ${apiVersion} ${kind} (not in the Kubernetes 1.34+, Istio or prometheus-operator schemas)`];
  }
  const problems: string[] = [];
  if (typeof metadata.name !== 'string' || metadata.name === '') problems.push(`${label}: /metadata/name is required`);
  const { proxy, seen } = track(object, model.prototype);
  try {
    model.prototype.validate.call(proxy);
  } catch (err) {
    const errors = (err as { errors?: SchemaError[] }).errors;
    if (Array.isArray(errors) && errors.length > 0) {
      for (const e of errors) problems.push(`${label}: ${describeError(e)}`);
    } else {
      problems.push(`${label}: ${(err as Error).message}`);
    }
  }
  const unknown: string[] = [];
  unknownFields(object, '', seen, unknown);
  for (const u of unknown) problems.push(`${label}: ${u}`);
  return [...new Set(problems)];
}

/**
 * Validates every object against the Kubernetes 1.34+, Istio and prometheus-operator schemas,
 * unknown fields included. Returns the list of problems, empty when every object is valid.
 */
export function validateManifests(objects: unknown[]): string[] {
  return objects.flatMap((o) => validateManifest(o));
}
