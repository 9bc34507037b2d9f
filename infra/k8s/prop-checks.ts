/**
 * The prop checks of the promptmesh constructs, in one place and one style: each throws an
 * `Error` whose message starts with the prop in quotes and says what is allowed, e.g.
 * `'minReplicas' must be an integer from 1 to 1000, got 0`. Constructs call them before they
 * create anything, so a bad prop never leaves half a chart behind.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DURATION = /^\d+(\.\d+)?(ms|s|m|h)$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const IMAGE = /^[a-z0-9][a-z0-9._\-/:@]*$/i;

/** Throws naming `prop` unless `value` is a DNS-1123 label of at most `max` characters. */
export function checkDnsLabel(value: unknown, prop: string, max = 63): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max || !DNS_LABEL.test(value)) {
    throw new Error(
      `'${prop}' must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most ${max} characters), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Throws naming `prop` unless `value` can be a Kubernetes object name (DNS-1123 subdomain). */
export function checkDnsSubdomain(value: unknown, prop: string): string {
  if (typeof value !== 'string' || value.length > 253 || !DNS_SUBDOMAIN.test(value)) {
    throw new Error(`'${prop}' must be a Kubernetes object name (lowercase letters, digits, '-' and '.'), got ${JSON.stringify(value)}`);
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

/** `value` (or `fallback` when undefined), unless it is not an integer from `min` to `max`. */
export function checkInt(value: number | undefined, fallback: number, prop: string, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new Error(`'${prop}' must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return v;
}

/** Throws naming `prop` unless `value` is a duration such as `10s`, `500ms`, `5m` (Istio, Prometheus). */
export function checkDuration(value: string, prop: string): string {
  if (typeof value !== 'string' || !DURATION.test(value)) {
    throw new Error(`'${prop}' must be a duration such as "10s" or "500ms", got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Seconds of a duration that {@link checkDuration} accepted. */
export function durationSeconds(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (!m) throw new Error(`not a duration: ${JSON.stringify(value)}`);
  const factor = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * factor;
}

/** Throws naming `prop` unless `value` is one of `allowed`. */
export function checkOneOf<T extends string>(value: unknown, allowed: readonly T[], prop: string): T {
  if (!(allowed as readonly unknown[]).includes(value)) {
    throw new Error(`'${prop}' must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Throws naming `prop` unless `image` looks like an image reference. */
export function checkImage(image: unknown, prop: string): string {
  if (typeof image !== 'string' || !IMAGE.test(image) || image.length > 512) {
    throw new Error(`'${prop}' must be an image reference such as "ghcr.io/promptmesh/promptmesh:0.1.0", got ${JSON.stringify(image)}`);
  }
  return image;
}

/** Throws naming `prop` unless `name` is a valid environment variable name. */
export function checkEnvName(name: unknown, prop: string): string {
  if (typeof name !== 'string' || !ENV_NAME.test(name)) {
    throw new Error(`'${prop}' has an invalid environment variable name ${JSON.stringify(name)} (letters, digits and _ only)`);
  }
  return name;
}

/** Throws naming `prop` unless the file's key is a file name and its mount path absolute. */
export function checkMountedFile(f: { key: string; mountPath: string }, prop: string): void {
  if (typeof f.key !== 'string' || !/^[-._a-zA-Z0-9]+$/.test(f.key)) {
    throw new Error(`'${prop}.key' must be a file name (letters, digits, '-', '_', '.'), got ${JSON.stringify(f.key)}`);
  }
  if (typeof f.mountPath !== 'string' || !f.mountPath.startsWith('/') || f.mountPath.includes('..')) {
    throw new Error(`'${prop}.mountPath' must be an absolute path, got ${JSON.stringify(f.mountPath)}`);
  }
}

/**
 * Throws naming `prop` unless `value` is a five-field cron schedule (minute hour day-of-month
 * month day-of-week; numbers, `*`, ranges, lists and steps), as a CronJob takes it.
 */
export function checkCronSchedule(value: unknown, prop: string): string {
  const field = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;
  const parts = typeof value === 'string' ? value.trim().split(/\s+/) : [];
  if (parts.length !== 5 || !parts.every((p) => field.test(p))) {
    throw new Error(`'${prop}' must be a cron schedule with five fields such as "0 22 * * *", got ${JSON.stringify(value)}`);
  }
  return value as string;
}

/** Throws naming `prop` unless `value` is an IPv4 CIDR such as `10.0.0.0/8`. */
export function checkCidr(value: unknown, prop: string): string {
  const m = typeof value === 'string' ? /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value) : null;
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
    throw new Error(`'${prop}' must be an IPv4 CIDR such as "10.0.0.0/8", got ${JSON.stringify(value)}`);
  }
  return value as string;
}
