// The Bedrock adapter's default credential chain as IRSA feeds it on EKS: the web identity
// token file and role the EKS webhook sets, exchanged at STS (the fake's, through
// AWS_ENDPOINT_URL_STS) for temporary credentials that then sign the Converse calls.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeProviderConfig } from '../../../../test/fake-provider/provider-config';
import { startFakeProvider, type FakeProvider } from '../../../../test/fake-provider/server';
import type { ProviderAdapter } from '../../types';
import { createBedrockAdapter } from '.';

let fake: FakeProvider;
let adapter: ProviderAdapter;
const saved = { ...process.env };

beforeAll(async () => {
  fake = await startFakeProvider();
  const dir = mkdtempSync(join(tmpdir(), 'pm-irsa-'));
  writeFileSync(join(dir, 'token'), 'eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig');
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete process.env[k];
  Object.assign(process.env, {
    AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/eks-bedrock-llm',
    AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token'),
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_STS: fake.url,
    AWS_CONFIG_FILE: join(dir, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  adapter = createBedrockAdapter();
});
afterAll(async () => {
  process.env = saved;
  await adapter.close?.();
  await fake.close();
});

describe('bedrock adapter with IRSA', () => {
  it('signs with the temporary credentials STS gave for the web identity token, fetched once', async () => {
    const provider = fakeProviderConfig(fake, 'bedrock', { bedrock: { region: 'us-east-1' } });
    const req = { model: 'anthropic.claude-3-5-haiku-20241022-v1:0', messages: [{ role: 'user' as const, content: 'hi' }] };
    expect((await adapter.complete(provider, req, {})).choices[0].message.content).toBe('echo: hi');
    await adapter.complete(provider, req, {});
    const sts = fake.requests.filter((r) => r.path === '/');
    expect(sts).toHaveLength(1);
    const form = new URLSearchParams(String(sts[0].body));
    expect(form.get('RoleArn')).toBe('arn:aws:iam::123456789012:role/eks-bedrock-llm');
    expect(form.get('WebIdentityToken')).toBe('eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.sig');
    const calls = fake.requests.filter((r) => r.path.endsWith('/converse'));
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(String(c.headers.authorization)).toMatch(/^AWS4-HMAC-SHA256 Credential=ASIAFAKE[0-9A-Z]{12}\/\d{8}\/us-east-1\/bedrock\//);
      expect(String(c.headers['x-amz-security-token'])).toMatch(/^fake-session-/);
    }
  });
});
