import type { ProviderConfig } from './types';

/**
 * Removes credentials from text that came from a provider (error bodies, error events) before it
 * reaches a client, a log line or a span. Some OpenAI-compatible upstreams and proxies echo the
 * request, `Authorization` header included, in their errors: without this the caller would be
 * handed our provider key.
 *
 * Two nets: every configured secret (each provider's API key and the values of its headers whose
 * name says they hold one) is replaced wherever it appears, raw or JSON/URL-encoded; and anything
 * shaped like a credential is replaced whoever it belongs to: `Bearer`/`Basic` values, the value
 * after an `authorization`, `x-api-key`, `api-key`, `api_key`, `token` or `secret` name, and the
 * key formats of the common providers (OpenAI/Anthropic `sk-...`, AWS access key ids, Google API
 * keys, GitHub and Hugging Face tokens, JWTs).
 */

/** What a scrubbed credential is replaced by. */
export const REDACTED = '[redacted]';

/** Secrets shorter than this are not matched verbatim (they would mangle ordinary words); the patterns still apply. */
export const MIN_SECRET_LENGTH = 8;

/** Header names whose values are credentials. */
const SECRET_HEADER = /auth|key|token|secret|password|credential|cookie/i;

const PATTERNS: Array<[RegExp, string]> = [
  // `Authorization: Bearer x`, `"authorization":"Basic x"`, `x-api-key=x`, `api_key: 'x'`, ...
  [
    /((?:proxy-)?authorization|x-api-key|x-goog-api-key|api[-_]?key|access[-_]?token|refresh[-_]?token|client[-_]?secret|secret|password|token)(\\?["']?\s*[:=]\s*\\?["']?)(?:(?:bearer|basic|token)\s+)?[^\s"'\\,;}&]+/gi,
    `$1$2${REDACTED}`,
  ],
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}/gi, `$1 ${REDACTED}`],
  [/\bsk-[A-Za-z0-9_-]{12,}/g, REDACTED],
  [/\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, REDACTED],
  [/\bAIza[0-9A-Za-z_-]{30,}/g, REDACTED],
  [/\bgh[pousr]_[A-Za-z0-9]{30,}/g, REDACTED],
  [/\bhf_[A-Za-z0-9]{30,}/g, REDACTED],
  [/\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, REDACTED],
];

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The credentials a provider is configured with. */
export function secretsOf(provider: ProviderConfig): string[] {
  const out: string[] = [];
  if (provider.apiKey) out.push(provider.apiKey);
  for (const [name, value] of Object.entries(provider.headers ?? {})) if (SECRET_HEADER.test(name)) out.push(value);
  return out;
}

/** Scrubs one set of configured secrets plus every credential-shaped string. */
export class SecretScrubber {
  private readonly verbatim: RegExp | undefined;

  constructor(secrets: Iterable<string>) {
    const forms = new Set<string>();
    for (const secret of secrets) {
      if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) continue;
      forms.add(secret);
      forms.add(JSON.stringify(secret).slice(1, -1));
      forms.add(encodeURIComponent(secret));
    }
    // Longest first, so a secret that contains another is replaced whole.
    const sorted = [...forms].sort((a, b) => b.length - a.length);
    this.verbatim = sorted.length > 0 ? new RegExp(sorted.map(escapeRegExp).join('|'), 'g') : undefined;
  }

  /** A scrubber for every provider's secrets. */
  static forProviders(providers: readonly ProviderConfig[]): SecretScrubber {
    return new SecretScrubber(providers.flatMap(secretsOf));
  }

  /** `text` without any configured secret or credential-shaped string. */
  scrub(text: string): string {
    let out = this.verbatim ? text.replace(this.verbatim, REDACTED) : text;
    for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
    return out;
  }
}
