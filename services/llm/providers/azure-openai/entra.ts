/**
 * Microsoft Entra ID tokens through AKS workload identity, without the Azure SDK: the workload
 * identity webhook mounts a projected service-account token (`AZURE_FEDERATED_TOKEN_FILE`) and
 * sets `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_AUTHORITY_HOST`; that token is exchanged
 * for an access token with the client-credentials grant and a JWT client assertion. Tokens are
 * cached until five minutes before they expire; the file is read again on every exchange
 * because the kubelet rotates it.
 */
import { readFile } from 'node:fs/promises';
import { ProviderError } from '../../types';

/** The scope of Azure OpenAI (Cognitive Services) access tokens. */
export const COGNITIVE_SERVICES_SCOPE = 'https://cognitiveservices.azure.com/.default';

/** Tokens are renewed this long before they expire, so no call carries one about to lapse. */
const RENEW_BEFORE_MS = 5 * 60_000;

/** The environment a workload identity token exchange reads. */
export interface WorkloadIdentityEnv {
  AZURE_CLIENT_ID?: string;
  AZURE_TENANT_ID?: string;
  AZURE_FEDERATED_TOKEN_FILE?: string;
  AZURE_AUTHORITY_HOST?: string;
}

/** Fetches and caches Entra ID access tokens for one scope. */
export class WorkloadIdentityCredential {
  private cached?: { token: string; renewAt: number };
  private pending?: Promise<string>;

  constructor(
    private readonly env: WorkloadIdentityEnv = process.env,
    private readonly scope = COGNITIVE_SERVICES_SCOPE,
  ) {}

  /** A valid access token; concurrent callers share one exchange. */
  async token(providerName: string, signal?: AbortSignal): Promise<string> {
    if (this.cached && Date.now() < this.cached.renewAt) return this.cached.token;
    this.pending ??= this.exchange(providerName, signal).finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async exchange(providerName: string, signal?: AbortSignal): Promise<string> {
    const { AZURE_CLIENT_ID: clientId, AZURE_TENANT_ID: tenantId, AZURE_FEDERATED_TOKEN_FILE: file } = this.env;
    if (!clientId || !tenantId || !file) {
      throw new ProviderError('auth', `${providerName}: auth 'entra' needs AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE (AKS workload identity)`);
    }
    let assertion: string;
    try {
      assertion = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new ProviderError('auth', `${providerName}: cannot read AZURE_FEDERATED_TOKEN_FILE (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const authority = (this.env.AZURE_AUTHORITY_HOST ?? 'https://login.microsoftonline.com/').replace(/\/*$/, '/');
    const form = new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      scope: this.scope,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    });
    let res: Response;
    try {
      res = await fetch(`${authority}${encodeURIComponent(tenantId)}/oauth2/v2.0/token`, { method: 'POST', body: form, signal: signal ?? AbortSignal.timeout(10_000) });
    } catch {
      throw new ProviderError('connection', `${providerName}: Entra ID token endpoint unreachable`);
    }
    const body = (await res.json().catch(() => undefined)) as { access_token?: unknown; expires_in?: unknown; error?: unknown } | undefined;
    if (!res.ok || typeof body?.access_token !== 'string') {
      // 5xx from Entra is worth a retry; a refused assertion is not.
      const kind = res.status >= 500 ? 'server' : 'auth';
      throw new ProviderError(kind, `${providerName}: Entra ID token exchange failed (HTTP ${res.status}${typeof body?.error === 'string' ? `: ${body.error}` : ''})`, res.status);
    }
    const expiresInMs = (typeof body.expires_in === 'number' ? body.expires_in : Number(body.expires_in ?? 3600)) * 1000;
    this.cached = { token: body.access_token, renewAt: Date.now() + Math.max(0, expiresInMs - RENEW_BEFORE_MS) };
    return body.access_token;
  }
}
