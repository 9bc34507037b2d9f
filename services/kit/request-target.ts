/**
 * Request targets in normal form (docs/hardening.md, "Request targets").
 *
 * Fastify routes on a decoded, cleaned-up path: it cuts at `#` and `;`, decodes `%65` to `e`,
 * folds a trailing `/`. Anything that reasons about the raw target (a proxy in front, a log
 * filter, an access rule) can then see a different route than the one that runs. So a target
 * has exactly one spelling here, and every other spelling is a 400 before any route runs:
 *
 * - it is a path starting with `/` (no absolute form, no `*`);
 * - no `#` anywhere (clients never send fragments; a server that cuts there routes elsewhere);
 * - no `;` in the path (the router would cut the path there);
 * - no empty segment (`//`) and no dot segment (`.`, `..`);
 * - no percent-encoded unreserved character (`%65` for `e`, `%2E` for `.`): they are sent as
 *   themselves (RFC 3986, 6.2.2.2); reserved and other characters stay encoded;
 * - no malformed escape (`%zz`, a lone `%`) and no character outside RFC 3986's path set.
 *
 * Accepted as they are: a trailing `/` (the router folds it onto the same route, so it cannot
 * reach another one), lower-case hex digits in escapes (`%2f` is `%2F`, RFC 3986, 2.1), and the
 * case of the path's letters (routes are case-sensitive: `/V1/models` is a 404, never another
 * route). The query string is left to the routes' query schemas, except for `#`.
 */

// RFC 3986 pchar without `%` (checked separately) and `;` (refused): unreserved, sub-delims
// except `;`, `:`, `@`, and `/` between segments.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,=:@/%]*$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
const ESCAPE = /%(.{0,2})/g;

/** Why `target` (the raw request target, `request.url`) is not in normal form, or undefined. */
export function requestTargetProblem(target: string): string | undefined {
  if (!target.startsWith('/')) return 'it must be a path starting with "/"';
  if (target.includes('#')) return 'it holds a "#" (fragments are never sent to a server)';
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  if (path.includes(';')) return 'it holds a ";" in the path';
  if (!PATH_CHARS.test(path)) return 'it holds a character that must be percent-encoded';
  if (path.includes('//')) return 'it holds an empty segment ("//")';
  // Every request runs this: the common target (no dot segment, no escape) allocates nothing.
  const dots = path.includes('/.');
  if (!dots && !path.includes('%')) return undefined;
  if (dots) {
    for (const segment of path.split('/')) {
      if (segment === '.' || segment === '..') return `it holds a dot segment ("${segment}")`;
    }
  }
  for (const [escape, hex] of path.matchAll(ESCAPE)) {
    if (!/^[0-9A-Fa-f]{2}$/.test(hex!)) return `it holds a malformed percent-escape ("${escape}")`;
    const char = String.fromCharCode(parseInt(hex!, 16));
    if (UNRESERVED.test(char)) return `it percent-encodes "${char}" as "${escape}"; send "${char}" as it is`;
  }
  return undefined;
}
