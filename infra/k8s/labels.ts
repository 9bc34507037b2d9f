/** The labels and naming rules every promptmesh object follows. */

/** `app.kubernetes.io/part-of` of every promptmesh object. */
export const PART_OF = 'promptmesh';
/** `app.kubernetes.io/managed-by` of every object the constructs make. */
export const MANAGED_BY = 'cdk8s';
/** Pod label naming the release track (`stable`, `canary`, `blue`, `green`, ...); DestinationRule subsets select on it. */
export const TRACK_LABEL = 'track';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Throws naming `prop` unless `value` is a DNS-1123 label of at most `max` characters. */
export function checkDnsLabel(value: unknown, prop: string, max = 63): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || !DNS_LABEL.test(value)) {
    throw new Error(
      `'${prop}' must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${max} characters), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Throws naming `prop` unless every key and value is a valid Kubernetes label. */
export function checkLabels(labels: Record<string, string>, prop: string): Record<string, string> {
  for (const [key, value] of Object.entries(labels)) {
    const name = key.includes('/') ? key.slice(key.lastIndexOf('/') + 1) : key;
    if (!name || name.length > 63 || !LABEL_VALUE.test(name) || key.length > 316) {
      throw new Error(`'${prop}' has an invalid label key ${JSON.stringify(key)}`);
    }
    if (typeof value !== 'string' || value.length > 63 || !LABEL_VALUE.test(value)) {
      throw new Error(`'${prop}' has an invalid value for label ${JSON.stringify(key)}: ${JSON.stringify(value)}`);
    }
  }
  return labels;
}

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
