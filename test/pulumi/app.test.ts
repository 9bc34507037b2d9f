// What the program hands the chart and the router: checked against the router's own parser.
import { describe, expect, it } from 'vitest';
import { parseLlmConfig } from '../../services/llm/config';
import { hashApiKey, parseApiKeys } from '../../services/router/auth';
import { apiKeysFile, APP_SECRETS, promptSystemProps } from '../../stacks/pulumi/app';
import { parseStackConfig } from '../../stacks/pulumi/config';
import { stackConfig } from './stacks';

const flat = (stack: string) => Object.fromEntries(Object.entries(stackConfig(stack).config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
const images = { router: 'r@sha256:1', templates: 't@sha256:2', context: 'c@sha256:3', llm: 'l@sha256:4' };

describe('the API keys file', () => {
  it('is what the router parses: the admin key (hashed) with both scopes, then the extra hashes', () => {
    const extra = [{ id: 'ci', sha256: hashApiKey('ci-key-0123456789abcdef0123'), scopes: ['invoke' as const], rpm: 60 }];
    const keys = parseApiKeys(apiKeysFile('the-admin-key-0123456789abcdef', extra), 'api-keys.yaml');
    expect(keys).toEqual([
      { id: 'admin', sha256: hashApiKey('the-admin-key-0123456789abcdef'), scopes: ['invoke', 'admin'] },
      { id: 'ci', sha256: extra[0].sha256, scopes: ['invoke'], rpm: 60 },
    ]);
  });

  it('refuses extra entries the router would refuse', () => {
    const bad = (apiKeyHashes: unknown) => {
      const config = flat('dev');
      const app = JSON.parse(config['promptmesh:app']);
      config['promptmesh:app'] = JSON.stringify({ ...app, apiKeyHashes });
      return () => parseStackConfig(config, 'dev');
    };
    const h = hashApiKey('x'.repeat(30));
    expect(bad([{ id: 'admin', sha256: h, scopes: ['invoke'] }])).toThrow(/^promptmesh:app\.apiKeyHashes\[0\]\.id must not be 'admin'/);
    expect(bad([{ id: 'a', sha256: h, scopes: ['invoke'] }, { id: 'a', sha256: hashApiKey('y'), scopes: ['invoke'] }])).toThrow(/^promptmesh:app\.apiKeyHashes\[1\]\.id repeats 'a'/);
    expect(bad([{ id: 'a', sha256: h, scopes: ['invoke'] }, { id: 'b', sha256: h, scopes: ['invoke'] }])).toThrow(/^promptmesh:app\.apiKeyHashes\[1\]\.sha256 is the same key/);
  });
});

describe('the providers files of the stack files', () => {
  it.each(['dev', 'staging', 'prod'])('Pulumi.%s.yaml: the llm service accepts it with the keys the program provides', (stack) => {
    const cfg = parseStackConfig(flat(stack), stack);
    const env = Object.fromEntries(cfg.secrets.providerKeyNames.map((n) => [n, 'a-key']));
    const parsed = parseLlmConfig(structuredClone(cfg.app.providers), 'providers.yaml', env);
    expect(parsed.providers.length).toBe((cfg.app.providers!.providers as unknown[]).length);
  });
});

describe('the chart props', () => {
  it('reference the Secrets the program creates, per database mode', () => {
    const cfg = parseStackConfig(flat('dev'), 'dev');
    const inCluster = promptSystemProps(cfg.app, { images, postgres: 'in-cluster', environment: 'dev', withTracing: true });
    expect(inCluster.postgres).toEqual({ mode: 'in-cluster', passwordSecret: APP_SECRETS.postgresPassword });
    expect(inCluster.redis).toEqual({ mode: 'standalone', passwordSecret: APP_SECRETS.redis });
    expect(inCluster.apiKeys).toEqual(APP_SECRETS.apiKeys);
    expect(inCluster.providerKeysSecret).toBe(APP_SECRETS.providerKeys);
    const external = promptSystemProps(cfg.app, { images, postgres: 'external', vpcCidr: '10.40.0.0/16', environment: 'dev', withTracing: false });
    expect(external.postgres).toEqual({ mode: 'external', databaseUrlSecret: APP_SECRETS.databaseUrl });
    expect(external.externalPostgresCidrs).toEqual(['10.40.0.0/16']);
    expect(external.otlpEndpoint).toBeUndefined();
  });

  it('serve HTTPS only when the stack names a TLS Secret', () => {
    const local = parseStackConfig(flat('local'), 'local');
    const base = { images, postgres: 'external' as const, environment: 'x', withTracing: true };
    // The program gives aws stacks { credentialName, hosts } from promptmesh:tls; local stays HTTP.
    expect(promptSystemProps({ ...local.app, tls: { credentialName: 'promptmesh-tls', hosts: ['api.promptmesh.example.com'] } }, base).gateway)
      .toEqual({ hosts: ['api.promptmesh.example.com'], tlsCredentialName: 'promptmesh-tls' });
    expect(promptSystemProps(local.app, base).gateway).toEqual({ hosts: ['*'] });
  });
});
