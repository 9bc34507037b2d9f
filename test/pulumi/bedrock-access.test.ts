// Bedrock providers in an AWS stack: the llm ServiceAccount gets an IRSA role that may invoke
// the configured Bedrock models and nothing else (Pulumi.staging.yaml plus two bedrock
// providers, against the mocks; one stack per file: mocks are per process).
import { beforeAll, describe, expect, it } from 'vitest';
import { BedrockAccess, bedrockInvokePolicy } from '../../infra/pulumi';
import { bedrockModels } from '../../stacks/pulumi/app';
import { ofType, unwrapSecrets, type MockRun } from './harness';
import { appliedManifests } from './aws-stack-suite';
import { runStack, stackFileConfig } from './stacks';

const ACCOUNT = '123456789012';
const app = stackFileConfig('staging')['promptmesh:app'] as { providers: { providers: unknown[]; models: Record<string, unknown[]> } };
const providers = {
  ...app.providers,
  providers: [
    ...app.providers.providers,
    { name: 'bedrock-us', type: 'bedrock', region: 'us-east-1', models: ['amazon.titan-embed-text-v2:0'] },
    { name: 'bedrock-eu', type: 'bedrock', region: 'eu-west-1', prices: { 'eu.anthropic.claude-sonnet-4-20250514-v1:0': { input: 3, output: 15 } } },
  ],
  models: {
    ...app.providers.models,
    claude: [
      { provider: 'bedrock-us', model: 'anthropic.claude-3-5-haiku-20241022-v1:0' },
      { provider: 'bedrock-eu', model: 'eu.anthropic.claude-sonnet-4-20250514-v1:0' },
    ],
  },
};

let run: MockRun;
beforeAll(async () => {
  run = await runStack('staging', { 'promptmesh:app': { ...app, providers } });
}, 120_000);

describe('Bedrock access on AWS', () => {
  it('lists the configured Bedrock models from the providers file, per region', () => {
    expect(bedrockModels(providers)).toEqual([
      { region: 'us-east-1', modelId: 'anthropic.claude-3-5-haiku-20241022-v1:0' },
      { region: 'us-east-1', modelId: 'amazon.titan-embed-text-v2:0' },
      { region: 'eu-west-1', modelId: 'eu.anthropic.claude-sonnet-4-20250514-v1:0' },
    ]);
    expect(bedrockModels(app.providers)).toEqual([]);
  });

  it('grants InvokeModel and InvokeModelWithResponseStream on those models only, profiles routed by condition', () => {
    const policies = ofType(run, 'aws:iam/rolePolicy:RolePolicy').filter((p) => p.name.endsWith('bedrock-llm'));
    expect(policies).toHaveLength(1);
    const doc = JSON.parse(unwrapSecrets(policies[0]!.inputs.policy));
    expect(doc.Statement).toEqual([
      {
        Sid: 'InvokeConfiguredModels',
        Effect: 'Allow',
        Action: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        Resource: [
          `arn:aws:bedrock:eu-west-1:${ACCOUNT}:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0`,
          'arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0',
          'arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0',
        ],
      },
      {
        Sid: 'InvokeThroughInferenceProfiles',
        Effect: 'Allow',
        Action: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        Resource: ['arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0'],
        Condition: { StringLike: { 'bedrock:InferenceProfileArn': [`arn:aws:bedrock:eu-west-1:${ACCOUNT}:inference-profile/eu.anthropic.claude-sonnet-4-20250514-v1:0`] } },
      },
    ]);
    // Nothing broader anywhere: no wildcard actions or model wildcards in any policy of the stack.
    for (const p of ofType(run, 'aws:iam/rolePolicy:RolePolicy')) {
      for (const st of JSON.parse(unwrapSecrets(p.inputs.policy)).Statement as { Action: string | string[]; Resource: string | string[] }[]) {
        const actions = [st.Action].flat();
        if (actions.some((a) => a.startsWith('bedrock:'))) expect([st.Resource].flat().every((r) => r.includes('foundation-model/') || r.includes('inference-profile/'))).toBe(true);
        expect(actions).not.toContain('bedrock:*');
      }
    }
  });

  it('lets only the llm ServiceAccount assume the role, and annotates that ServiceAccount with it', () => {
    const role = ofType(run, 'aws:iam/role:Role').find((r) => r.name.endsWith('bedrock-llm'))!;
    const trust = JSON.parse(unwrapSecrets(role.inputs.assumeRolePolicy));
    expect(trust.Statement).toHaveLength(1);
    expect(trust.Statement[0].Action).toBe('sts:AssumeRoleWithWebIdentity');
    const condition = trust.Statement[0].Condition.StringEquals as Record<string, string>;
    expect(Object.entries(condition).find(([k]) => k.endsWith(':sub'))?.[1]).toBe(`system:serviceaccount:${(app as unknown as { namespace: string }).namespace ?? 'promptmesh'}:llm`);
    const accounts = appliedManifests(run).filter((o) => o.kind === 'ServiceAccount');
    const llm = accounts.find((o) => o.metadata.name === 'llm');
    expect(llm.metadata.annotations).toEqual({ 'eks.amazonaws.com/role-arn': expect.stringContaining('bedrock-llm') });
    for (const other of accounts.filter((o) => o.metadata.name !== 'llm')) expect(other.metadata.annotations?.['eks.amazonaws.com/role-arn']).toBeUndefined();
  });

  it('refuses no models, bad regions and wildcard model IDs, naming the argument', () => {
    const role = () => {
      throw new Error('not reached');
    };
    expect(() => new BedrockAccess('x', { models: [], serviceAccountRole: role, namespace: 'n', accountId: ACCOUNT })).toThrow(/'models' must list at least one model/);
    expect(() => new BedrockAccess('x', { models: [{ region: 'nowhere', modelId: 'm' }], serviceAccountRole: role, namespace: 'n', accountId: ACCOUNT })).toThrow(/'models\[0\].region'/);
    expect(() => new BedrockAccess('x', { models: [{ region: 'us-east-1', modelId: 'anthropic.*' }], serviceAccountRole: role, namespace: 'n', accountId: ACCOUNT })).toThrow(/'models\[0\].modelId'/);
    // A full ARN (provisioned throughput) is granted as it is.
    expect(bedrockInvokePolicy([{ region: 'us-east-1', modelId: `arn:aws:bedrock:us-east-1:${ACCOUNT}:provisioned-model/abc` }], ACCOUNT).Statement).toEqual([
      expect.objectContaining({ Resource: [`arn:aws:bedrock:us-east-1:${ACCOUNT}:provisioned-model/abc`] }),
    ]);
  });
});
