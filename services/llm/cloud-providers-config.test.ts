// The providers file's cloud provider types (azure-openai, bedrock, vertex): their settings,
// defaults and endpoints, and every bad value refused naming the field.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../kit/config';
import { parseLlmConfig } from './config';

const parse = (provider: Record<string, unknown>, env: Record<string, string> = {}) => parseLlmConfig({ providers: [{ name: 'p', ...provider }] }, 'providers.yaml', env).providers[0]!;

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('cloud provider types in the providers file', () => {
  it('reads azure-openai: deployments, api-version default, auth from apiKeyEnv or entra', () => {
    const keyed = parse({ type: 'azure-openai', baseUrl: 'https://res.openai.azure.com/', apiKeyEnv: 'AZ_KEY', deployments: { 'gpt-4o': 'prod-4o' } }, { AZ_KEY: 'k' });
    expect(keyed).toMatchObject({ type: 'azure-openai', baseUrl: 'https://res.openai.azure.com', apiKey: 'k', azure: { deployments: { 'gpt-4o': 'prod-4o' }, apiVersion: '2024-10-21', auth: 'api-key' } });
    const entra = parse({ type: 'azure-openai', baseUrl: 'https://res.openai.azure.com', apiVersion: '2025-04-01-preview' });
    expect(entra.azure).toMatchObject({ auth: 'entra', apiVersion: '2025-04-01-preview' });
  });

  it('reads bedrock: region picks the endpoint, baseUrl overrides it, no key', () => {
    expect(parse({ type: 'bedrock', region: 'eu-central-1' })).toMatchObject({ baseUrl: 'https://bedrock-runtime.eu-central-1.amazonaws.com', bedrock: { region: 'eu-central-1' } });
    expect(parse({ type: 'bedrock', region: 'us-east-1', baseUrl: 'https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com', accountId: '123456789012' })).toMatchObject({
      baseUrl: 'https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com',
      bedrock: { region: 'us-east-1', accountId: '123456789012' },
    });
  });

  it('reads vertex: Vertex AI by project and location, or the Gemini API by key', () => {
    expect(parse({ type: 'vertex', project: 'my-proj-1', location: 'europe-west4' })).toMatchObject({ baseUrl: 'https://europe-west4-aiplatform.googleapis.com', vertex: { project: 'my-proj-1', location: 'europe-west4' } });
    expect(parse({ type: 'vertex', project: 'my-proj-1', location: 'global' }).baseUrl).toBe('https://aiplatform.googleapis.com');
    expect(parse({ type: 'vertex', project: 'my-proj-1' }).vertex).toEqual({ project: 'my-proj-1', location: 'us-central1' });
    expect(parse({ type: 'vertex', apiKeyEnv: 'GEMINI_KEY' }, { GEMINI_KEY: 'g' })).toMatchObject({ baseUrl: 'https://generativelanguage.googleapis.com', apiKey: 'g', vertex: {} });
  });

  it.each([
    [{ type: 'azure-openai', apiKeyEnv: 'K' }, 'providers[0].baseUrl: is required'],
    [{ type: 'azure-openai', baseUrl: 'https://x', apiKeyEnv: 'K', apiVersion: 'latest' }, 'providers[0].apiVersion: must look like'],
    [{ type: 'azure-openai', baseUrl: 'https://x', auth: 'api-key' }, 'providers[0].apiKeyEnv: is required when auth is'],
    [{ type: 'azure-openai', baseUrl: 'https://x', auth: 'entra', apiKeyEnv: 'K' }, 'providers[0].apiKeyEnv: must not be set when auth is'],
    [{ type: 'azure-openai', baseUrl: 'https://x', auth: 'msi' }, 'providers[0].auth: must be one of'],
    [{ type: 'azure-openai', baseUrl: 'https://x', apiKeyEnv: 'K', deployments: { a: 'has space' } }, 'providers[0].deployments.a: must be an Azure deployment name'],
    [{ type: 'bedrock' }, 'providers[0].region: is required'],
    [{ type: 'bedrock', region: 'mars-1' }, 'providers[0].region: must be an AWS region'],
    [{ type: 'bedrock', region: 'us-east-1', apiKeyEnv: 'K' }, 'providers[0].apiKeyEnv: is not used by bedrock'],
    [{ type: 'bedrock', region: 'us-east-1', accountId: '12' }, 'providers[0].accountId: must be a 12-digit'],
    [{ type: 'vertex' }, 'providers[0].project: is required for Vertex AI'],
    [{ type: 'vertex', location: 'us-central1', apiKeyEnv: 'K' }, 'providers[0].project: is required with location'],
    [{ type: 'vertex', project: 'my-proj-1', apiKeyEnv: 'K' }, 'providers[0].apiKeyEnv: must not be set with project'],
    [{ type: 'vertex', project: 'X' }, 'providers[0].project: must be a Google Cloud project ID'],
    [{ type: 'openai', baseUrl: 'https://x', region: 'us-east-1' }, "providers[0].region: is only for providers of type 'bedrock'"],
    [{ type: 'bedrock', region: 'us-east-1', deployments: {} }, "providers[0].deployments: is only for providers of type 'azure-openai'"],
  ])('refuses %j naming the field', (provider, expected) => {
    const err = errorOf(() => parse(provider, { K: 'k' }));
    expect(err.message).toContain('providers.yaml');
    expect(err.message).toContain(expected);
  });
});
