/**
 * Google Application Default Credentials, the two forms a pod uses, without the Google SDK:
 * GKE workload identity (the metadata server, `GCE_METADATA_HOST` overriding its address, as the
 * Google libraries allow), or a service-account key file named by
 * `GOOGLE_APPLICATION_CREDENTIALS` (a JWT signed with its key, exchanged at its `token_uri`).
 * Tokens are cached until five minutes before they expire.
 */
import { createSign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ProviderError } from '../../types';

/** The scope Vertex AI tokens need. */
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const RENEW_BEFORE_MS = 5 * 60_000;

/** The environment ADC reads. */
export interface AdcEnv {
  GOOGLE_APPLICATION_CREDENTIALS?: string;
  GCE_METADATA_HOST?: string;
}

/** Fetches and caches Google access tokens. */
export class ApplicationDefaultCredentials {
  private cached?: { token: string; renewAt: number };
  private pending?: Promise<string>;

  constructor(private readonly env: AdcEnv = process.env) {}

  /** A valid access token; concurrent callers share one fetch. */
  async token(providerName: string, signal?: AbortSignal): Promise<string> {
    if (this.cached && Date.now() < this.cached.renewAt) return this.cached.token;
    this.pending ??= this.fetchToken(providerName, signal).finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetchToken(providerName: string, signal?: AbortSignal): Promise<string> {
    const file = this.env.GOOGLE_APPLICATION_CREDENTIALS;
    const answer = file ? await this.fromKeyFile(providerName, file, signal) : await this.fromMetadataServer(providerName, signal);
    this.cached = { token: answer.token, renewAt: Date.now() + Math.max(0, answer.expiresInMs - RENEW_BEFORE_MS) };
    return answer.token;
  }

  private async fromMetadataServer(providerName: string, signal?: AbortSignal): Promise<{ token: string; expiresInMs: number }> {
    const host = this.env.GCE_METADATA_HOST ?? 'metadata.google.internal';
    const url = `http://${host}/computeMetadata/v1/instance/service-accounts/default/token`;
    return this.exchange(providerName, 'metadata server', () => fetch(url, { headers: { 'metadata-flavor': 'Google' }, signal: signal ?? AbortSignal.timeout(10_000) }));
  }

  private async fromKeyFile(providerName: string, file: string, signal?: AbortSignal): Promise<{ token: string; expiresInMs: number }> {
    let key: { type?: string; client_email?: string; private_key?: string; token_uri?: string };
    try {
      key = JSON.parse(await readFile(file, 'utf8')) as typeof key;
    } catch (err) {
      throw new ProviderError('auth', `${providerName}: cannot read GOOGLE_APPLICATION_CREDENTIALS (${(err as NodeJS.ErrnoException).code ?? 'not JSON'})`);
    }
    if (key.type !== 'service_account' || !key.client_email || !key.private_key) {
      throw new ProviderError('auth', `${providerName}: GOOGLE_APPLICATION_CREDENTIALS must be a service account key (type '${String(key.type)}' is not supported; use workload identity instead)`);
    }
    const tokenUri = key.token_uri ?? 'https://oauth2.googleapis.com/token';
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const unsigned = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: key.client_email, scope: CLOUD_PLATFORM_SCOPE, aud: tokenUri, iat: now, exp: now + 3600 })}`;
    let signature: string;
    try {
      signature = createSign('RSA-SHA256').update(unsigned).sign(key.private_key, 'base64url');
    } catch {
      throw new ProviderError('auth', `${providerName}: the service account key in GOOGLE_APPLICATION_CREDENTIALS cannot sign`);
    }
    const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: `${unsigned}.${signature}` });
    return this.exchange(providerName, 'token endpoint', () => fetch(tokenUri, { method: 'POST', body, signal: signal ?? AbortSignal.timeout(10_000) }));
  }

  private async exchange(providerName: string, what: string, call: () => Promise<Response>): Promise<{ token: string; expiresInMs: number }> {
    let res: Response;
    try {
      res = await call();
    } catch {
      throw new ProviderError('connection', `${providerName}: Google ${what} unreachable`);
    }
    const body = (await res.json().catch(() => undefined)) as { access_token?: unknown; expires_in?: unknown } | undefined;
    if (!res.ok || typeof body?.access_token !== 'string') {
      throw new ProviderError(res.status >= 500 ? 'server' : 'auth', `${providerName}: Google ${what} gave no access token (HTTP ${res.status})`, res.status);
    }
    const seconds = typeof body.expires_in === 'number' ? body.expires_in : 3600;
    return { token: body.access_token, expiresInMs: seconds * 1000 };
  }
}
