/**
 * What every JSON request body is checked for after it parsed, before any route sees it: the
 * nesting cap, object keys that would reach an object's prototype, and text that is not valid
 * Unicode. Checking here, once, covers every route of every service, present and future.
 */
import { badRequest, type ApiError } from './errors';

/** How deeply a JSON request body may nest objects and arrays. */
export const MAX_JSON_DEPTH = 128;

/**
 * Object keys no request may use. `__proto__` as a key is an own property after `JSON.parse`
 * but becomes the prototype when code copies it with assignment (`Object.assign`, merges), and
 * a `{"constructor": {"prototype": ...}}` pair is what prototype-pollution gadgets walk. Such
 * a key is refused with a 400 that names it, rather than accepted and mishandled later.
 */
export const RESERVED_KEYS = ['__proto__'] as const;

/**
 * Why `text` cannot be accepted as text, or undefined when it can: it holds NUL (U+0000, which
 * PostgreSQL cannot store and C-based tools cut at) or an unpaired UTF-16 surrogate (which has no
 * UTF-8 encoding, so it would be silently replaced on the way to a provider or a database).
 */
export function invalidTextReason(text: string): string | undefined {
  const at = text.search(INVALID_TEXT);
  if (at < 0) return undefined;
  const code = text.charCodeAt(at);
  if (code === 0) return 'contains a NUL character (U+0000), which text may not hold';
  const hex = code.toString(16);
  return `contains an unpaired UTF-16 surrogate (\\u${hex}); text must be valid Unicode`;
}

// Without the `u` flag the regex works on UTF-16 code units: NUL, a high surrogate not followed
// by a low one, or a low surrogate not preceded by a high one.
// eslint-disable-next-line no-control-regex
const INVALID_TEXT = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** How many `{` and `[` a JSON text holds (an upper bound of its nesting, counted natively). */
export function countJsonBrackets(text: string): number {
  let n = 0;
  for (const open of ['{', '[']) {
    for (let i = text.indexOf(open); i !== -1; i = text.indexOf(open, i + 1)) n++;
  }
  return n;
}

/**
 * Whether a parsed JSON value nests objects and arrays deeper than `max` (a top-level object
 * is depth 1). Walks with an explicit stack, so a deep value cannot overflow it.
 */
export function exceedsJsonDepth(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

function childParam(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return parent ? `${parent}.${key}` : key;
}

/**
 * The first problem of a parsed body as a 400 naming the field (dotted path, `messages[0].content`),
 * or undefined when there is none: nesting deeper than `maxDepth` (`param: "body"`, code
 * `too_deep`), a reserved key (code `reserved_name`), invalid text in a value or a key (code
 * `invalid_text`). Walks with an explicit stack, so a deep value cannot overflow it.
 */
export function checkJsonValue(value: unknown, maxDepth = MAX_JSON_DEPTH): ApiError | undefined {
  if (exceedsJsonDepth(value, maxDepth)) {
    return badRequest(`request body is nested deeper than ${maxDepth} levels`, 'body', 'too_deep');
  }
  const stack: Array<[unknown, string]> = [[value, '']];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (typeof node === 'string') {
      const reason = invalidTextReason(node);
      if (reason) return badRequest(`'${path || 'body'}' ${reason}`, path || 'body', 'invalid_text');
      continue;
    }
    if (node === null || typeof node !== 'object') continue;
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) stack.push([node[i], childParam(path, i)]);
      continue;
    }
    const keys = Object.keys(node);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      const param = childParam(path, key);
      const reason = invalidTextReason(key);
      if (reason) return badRequest(`the field name '${param}' ${reason}`, param, 'invalid_text');
      const child = (node as Record<string, unknown>)[key];
      if ((RESERVED_KEYS as readonly string[]).includes(key)) {
        return badRequest(`'${param}': "${key}" is a reserved name and cannot be a field or key in a request`, param, 'reserved_name');
      }
      if (key === 'constructor' && child !== null && typeof child === 'object' && Object.hasOwn(child, 'prototype')) {
        const at = childParam(param, 'prototype');
        return badRequest(`'${at}': "constructor.prototype" is a reserved path and cannot appear in a request`, at, 'reserved_name');
      }
      stack.push([child, param]);
    }
  }
  return undefined;
}

/**
 * Whether a JSON text needs {@link checkJsonValue} at all. Text that is neither deep, nor holds a
 * `\u` escape (the only way NUL or a lone surrogate can be written in valid JSON), nor spells a
 * reserved key skips the walk: the common request costs a few native substring searches.
 */
export function jsonTextNeedsCheck(text: string, maxDepth = MAX_JSON_DEPTH): boolean {
  return text.includes('\\u') || text.includes('__proto__') || text.includes('constructor') || countJsonBrackets(text) > maxDepth;
}
