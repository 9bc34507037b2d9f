import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';

/** One Bedrock model the llm service may invoke. */
export interface BedrockModel {
  /** The region of the Bedrock runtime the provider calls (its `region`). */
  region: string;
  /**
   * A foundation model ID (`anthropic.claude-3-5-haiku-20241022-v1:0`), a cross-region inference
   * profile ID (`us.anthropic.claude-sonnet-4-20250514-v1:0`, `global.` ...), or a full ARN
   * (provisioned throughput, application inference profile).
   */
  modelId: string;
}

/** Arguments of {@link BedrockAccess}. */
export interface BedrockAccessArgs {
  /** The models the providers file routes to; the role may invoke these and nothing else. */
  models: BedrockModel[];
  /** Makes the IRSA role of the service account (normally `EksCluster.serviceAccountRole`). */
  serviceAccountRole: (roleName: string, namespace: string, serviceAccount: string, policy: pulumi.Input<string>) => aws.iam.Role;
  /** The app's namespace. */
  namespace: string;
  /**
   * The llm service's ServiceAccount.
   * @default 'llm'
   */
  serviceAccount?: string;
  /** The account that owns the inference profiles (they have account-scoped ARNs). */
  accountId: pulumi.Input<string>;
  /**
   * The AWS partition.
   * @default 'aws'
   */
  partition?: string;
}

/** Geography prefixes of Bedrock's system-defined cross-region inference profiles. */
const PROFILE_PREFIX = /^(us|eu|apac|us-gov|jp|au|ca|global)\./;

/**
 * The IAM policy letting the llm service invoke exactly `models` (Converse and ConverseStream are
 * `bedrock:InvokeModel` and `bedrock:InvokeModelWithResponseStream`): each foundation model in
 * its region; for an inference profile the profile, plus its foundation model in whichever
 * region the profile routes to, only when reached through that profile.
 */
export function bedrockInvokePolicy(models: BedrockModel[], accountId: string, partition = 'aws'): Record<string, unknown> {
  const actions = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];
  const direct = new Set<string>();
  const profiles = new Set<string>();
  const routed = new Set<string>();
  for (const { region, modelId } of models) {
    if (modelId.startsWith('arn:')) direct.add(modelId);
    else if (PROFILE_PREFIX.test(modelId)) {
      profiles.add(`arn:${partition}:bedrock:${region}:${accountId}:inference-profile/${modelId}`);
      routed.add(`arn:${partition}:bedrock:*::foundation-model/${modelId.replace(PROFILE_PREFIX, '')}`);
    } else direct.add(`arn:${partition}:bedrock:${region}::foundation-model/${modelId}`);
  }
  const statements: Record<string, unknown>[] = [];
  const invokable = [...direct, ...profiles].sort();
  if (invokable.length > 0) statements.push({ Sid: 'InvokeConfiguredModels', Effect: 'Allow', Action: actions, Resource: invokable });
  if (routed.size > 0) {
    statements.push({
      Sid: 'InvokeThroughInferenceProfiles',
      Effect: 'Allow',
      Action: actions,
      Resource: [...routed].sort(),
      Condition: { StringLike: { 'bedrock:InferenceProfileArn': [...profiles].sort() } },
    });
  }
  return { Version: '2012-10-17', Statement: statements };
}

/**
 * The llm service's access to Amazon Bedrock through IRSA: an IAM role only the llm
 * ServiceAccount can assume (its web identity token), allowed to invoke the configured Bedrock
 * models and nothing else. Annotate the ServiceAccount with {@link BedrockAccess.roleArn}
 * (`eks.amazonaws.com/role-arn`); the AWS SDK's default credential chain then picks it up.
 *
 * @example
 * const bedrock = new BedrockAccess('bedrock', {
 *   models: [{ region: 'us-east-1', modelId: 'anthropic.claude-3-5-haiku-20241022-v1:0' }],
 *   serviceAccountRole: eks.serviceAccountRole,
 *   namespace: 'promptmesh',
 *   accountId: aws.getCallerIdentityOutput().accountId,
 * });
 */
export class BedrockAccess extends pulumi.ComponentResource {
  /** The role's ARN, for the ServiceAccount's `eks.amazonaws.com/role-arn` annotation. */
  public readonly roleArn: pulumi.Output<string>;

  constructor(name: string, args: BedrockAccessArgs, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:aws:BedrockAccess', name, {}, opts);
    if (args.models.length === 0) throw new Error(`BedrockAccess ${name}: 'models' must list at least one model (an empty policy grants nothing)`);
    args.models.forEach((m, i) => {
      if (!/^[a-z]{2}(-gov)?-[a-z]+-\d$/.test(m.region)) throw new Error(`BedrockAccess ${name}: 'models[${i}].region' must be an AWS region (got ${m.region})`);
      if (!/^(arn:[\w-]+:bedrock:[\w-]*:\d*:[\w/.:-]+|[\w.-]+(:\d+)?(:[\w.-]+)?)$/.test(m.modelId) || m.modelId.includes('*')) {
        throw new Error(`BedrockAccess ${name}: 'models[${i}].modelId' must be a model ID, inference profile ID or ARN without wildcards (got ${m.modelId})`);
      }
    });
    const serviceAccount = args.serviceAccount ?? 'llm';
    const policy = pulumi.output(args.accountId).apply((account) => JSON.stringify(bedrockInvokePolicy(args.models, account, args.partition)));
    const role = args.serviceAccountRole(`${name}-llm`, args.namespace, serviceAccount, policy);
    this.roleArn = role.arn;
    this.registerOutputs({ roleArn: this.roleArn });
  }
}
