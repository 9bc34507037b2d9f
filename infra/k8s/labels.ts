/** The labels and naming rules every promptmesh object follows. */

/** `app.kubernetes.io/part-of` of every promptmesh object. */
export const PART_OF = 'promptmesh';
/** `app.kubernetes.io/managed-by` of every object the constructs make. */
export const MANAGED_BY = 'cdk8s';
/** Pod label naming the release track (`stable`, `canary`, `blue`, `green`, ...); DestinationRule subsets select on it. */
export const TRACK_LABEL = 'track';

// The checks moved to prop-checks.ts (one module for every construct's props); re-exported
// for the modules that import them from here.
export { checkDnsLabel, checkLabels } from './prop-checks';

/**
 * The version label value of an image reference: its tag, or the first 12 hex digits of its
 * digest, or `latest` when it has neither; cut to a valid label value.
 */
export function imageVersion(image: string): string {
  const at = image.indexOf('@');
  if (at >= 0) {
    const digest = image.slice(at + 1);
    const hex = digest.includes(':') ? digest.slice(digest.indexOf(':') + 1) : digest;
    return hex.slice(0, 12) || 'unknown';
  }
  const lastSlash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  const tag = colon > lastSlash ? image.slice(colon + 1) : 'latest';
  const cleaned = tag.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return cleaned || 'unknown';
}

/** A JSON string with object keys sorted, so equal values give equal strings (for checksums). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
