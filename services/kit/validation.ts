/**
 * The one way input is checked against a schema, for routes and for the cores in-process
 * callers reach without a route: the same ajv settings and the same 400 naming the field.
 */
import Ajv, { type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import { validationError } from './errors';

/**
 * Bodies are validated strictly: wrong types are errors (no coercion), unknown fields are kept
 * so a schema with `additionalProperties: false` rejects them by name.
 */
export const bodyAjv = new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: true, strict: false });
/** Query strings and path parameters are coerced, since everything in a URL is a string. */
export const urlAjv = new Ajv({ allErrors: false, coerceTypes: 'array', removeAdditional: false, useDefaults: true, strict: false });
addFormats(bodyAjv);
addFormats(urlAjv);

/** A compiled body check: returns the value, typed, or throws the 400 naming the field. */
export type BodyCheck<T> = (value: unknown) => T;

/**
 * Compiles `schema` into a {@link BodyCheck} that answers exactly as a route with that body
 * schema does. For cores whose in-process callers skip the route (the route declares the same
 * schema, so HTTP callers are refused before the handler runs).
 */
export function compileBodyCheck<T>(schema: object): BodyCheck<T> {
  const validate = bodyAjv.compile(schema);
  return (value) => {
    if (!validate(value)) throw validationError((validate.errors ?? []) as ErrorObject[], 'body');
    return value as T;
  };
}
