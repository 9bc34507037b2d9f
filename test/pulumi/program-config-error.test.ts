// A bad stack config stops the program before it creates anything, with the key in the message.
import { expect, it } from 'vitest';
import type { RegisteredResource } from './harness';
import { runStack, stackFileConfig } from './stacks';

it('fails `pulumi up` on a spot group with too few instance types, before registering any resource', async () => {
  const groups = structuredClone(stackFileConfig('dev')['promptmesh:nodeGroups']) as any[];
  groups[0].instanceTypes = ['m6i.large', 'm6a.large'];
  const error = await runStack('dev', { 'promptmesh:nodeGroups': groups }).then(() => undefined, (err: Error) => err);
  expect(error?.message).toMatch(/^promptmesh:nodeGroups\[0\]\.instanceTypes must list at least 4 types for a spot group \(got 2\)$/);
  const registered = (error as Error & { registered: RegisteredResource[] }).registered;
  expect(registered.map((r) => r.type)).toEqual(['pulumi:pulumi:Stack']);
});
