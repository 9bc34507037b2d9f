// A secret key set without --secret is refused by the program itself (the engine says which
// keys are secrets), before anything is created.
import { expect, it } from 'vitest';
import { promptmeshProgram } from '../../stacks/pulumi/program';
import { runWithMocks, type RegisteredResource } from './harness';
import { stackConfig } from './stacks';

it('refuses promptmesh:adminApiKey stored in plain text', async () => {
  const { config, secretKeys } = stackConfig('dev');
  const error = await runWithMocks({
    stack: 'dev',
    config,
    secretKeys: secretKeys.filter((k) => k !== 'promptmesh:adminApiKey'),
    program: async () => ({ ...(await promptmeshProgram()) }) as Record<string, unknown>,
  }).then(() => undefined, (err: Error) => err);
  expect(error?.message).toMatch(/^promptmesh:adminApiKey must be a secret; set it with: pulumi config set --secret promptmesh:adminApiKey/);
  expect((error as Error & { registered: RegisteredResource[] }).registered.map((r) => r.type)).toEqual(['pulumi:pulumi:Stack']);
});
