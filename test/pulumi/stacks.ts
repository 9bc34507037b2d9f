/**
 * Loads a real Pulumi.<stack>.yaml, runs the program against the mocks with that config (plus
 * test values for the secrets, which no stack file holds) and checks the registered graph.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { promptmeshProgram, REPO_ROOT } from '../../stacks/pulumi/program';
import { runWithMocks, type MockRun } from './harness';

/** Test values of the secrets: each must only ever appear inside a secret. */
export const TEST_SECRETS = {
  adminApiKey: 'adm1n-key-for-tests-0123456789abcdef',
  providerApiKeys: { OPENAI_API_KEY: 'sk-test-openai-secret-value-0001', ANTHROPIC_API_KEY: 'sk-ant-test-secret-value-0002' },
};

/** The parsed `config:` map of a stack file (values as YAML gives them). */
export function stackFileConfig(stack: string): Record<string, unknown> {
  const doc = parse(readFileSync(join(REPO_ROOT, `Pulumi.${stack}.yaml`), 'utf8')) as { config: Record<string, unknown> };
  return doc.config;
}

/** The config the program gets for a stack: the file, plus secrets for what its providers need. */
export function stackConfig(stack: string): { config: Record<string, unknown>; secretKeys: string[] } {
  const config: Record<string, unknown> = { ...stackFileConfig(stack) };
  config['promptmesh:adminApiKey'] = TEST_SECRETS.adminApiKey;
  const app = config['promptmesh:app'] as { providers?: { providers: { apiKeyEnv?: string }[] } } | undefined;
  const names = (app?.providers?.providers ?? []).map((p) => p.apiKeyEnv).filter((n): n is string => !!n);
  if (names.length > 0) {
    config['promptmesh:providerApiKeys'] = Object.fromEntries(names.map((n) => [n, (TEST_SECRETS.providerApiKeys as Record<string, string>)[n]]));
  }
  return { config, secretKeys: ['promptmesh:adminApiKey', ...(names.length > 0 ? ['promptmesh:providerApiKeys'] : [])] };
}

/** Runs the program for a stack file. */
export async function runStack(stack: string, overrides: Record<string, unknown> = {}): Promise<MockRun> {
  const { config, secretKeys } = stackConfig(stack);
  return runWithMocks({
    stack,
    config: { ...config, ...overrides },
    secretKeys,
    program: async () => ({ ...(await promptmeshProgram()) }) as Record<string, unknown>,
  });
}
