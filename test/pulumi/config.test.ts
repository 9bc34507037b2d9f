// The stack configuration's checks: every real stack file parses; every wrong or missing key
// fails with a message that names it.
import { describe, expect, it } from 'vitest';
import { parseStackConfig } from '../../stacks/pulumi/config';
import { stackConfig } from './stacks';

/** A stack's config as the engine hands it over: every value a string, objects as JSON. */
function flat(stack: string): Record<string, string> {
  const { config } = stackConfig(stack);
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
}

function withChange(stack: string, change: (c: Record<string, any>) => void): Record<string, string> {
  const parsed = Object.fromEntries(Object.entries(flat(stack)).map(([k, v]) => {
    try { return [k, JSON.parse(v)]; } catch { return [k, v]; }
  }));
  change(parsed);
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
}

describe('stack config', () => {
  it.each(['dev', 'staging', 'prod', 'local'])('accepts Pulumi.%s.yaml', (stack) => {
    const cfg = parseStackConfig(flat(stack), stack);
    expect(cfg.environment).toBe(stack);
    expect(cfg.mode).toBe(stack === 'local' ? 'local' : 'aws');
  });

  it('reads what the files say: NAT, database, Redis mode and endpoint per environment', () => {
    const dev = parseStackConfig(flat('dev'), 'dev');
    const prod = parseStackConfig(flat('prod'), 'prod');
    if (dev.mode !== 'aws' || prod.mode !== 'aws') throw new Error('aws stacks expected');
    expect([dev.aws.natGateways, dev.aws.database, dev.app.redis, dev.aws.privateEndpoint]).toEqual(['single', 'in-cluster', 'standalone', false]);
    expect([prod.aws.natGateways, prod.aws.database, prod.app.redis, prod.aws.privateEndpoint]).toEqual(['perZone', 'rds', 'cluster', true]);
    expect(prod.aws.rds).toMatchObject({ multiAz: true, protect: true });
    expect(prod.secrets.providerKeyNames.sort()).toEqual(['ANTHROPIC_API_KEY', 'OPENAI_API_KEY']);
  });

  const cases: Array<[string, string, (c: Record<string, any>) => void, RegExp]> = [
    ['a spot group with 3 instance types', 'dev', (c) => { c['promptmesh:nodeGroups'][0].instanceTypes = ['m6i.large', 'm6a.large', 'm7i.large']; },
      /^promptmesh:nodeGroups\[0\]\.instanceTypes must list at least 4 types/],
    ['a spot group of mixed sizes', 'dev', (c) => { c['promptmesh:nodeGroups'][0].instanceTypes = ['m6i.large', 'm6a.large', 'm7i.large', 'c6i.xlarge']; },
      /^promptmesh:nodeGroups\[0\]\.instanceTypes must all be one size .*got m\.large, c\.xlarge/],
    ['a system group of mixed sizes', 'prod', (c) => { c['promptmesh:systemNodeGroup'].instanceTypes = ['m6i.large', 'm6i.xlarge']; },
      /^promptmesh:systemNodeGroup\.instanceTypes must all be one size/],
    ['the second group misnamed', 'prod', (c) => { c['promptmesh:nodeGroups'][1].name = 'Spot_Compute'; }, /^promptmesh:nodeGroups\[1\]\.name must be lowercase/],
    ['an unknown capacity', 'dev', (c) => { c['promptmesh:nodeGroups'][1].capacity = 'reserved'; }, /^promptmesh:nodeGroups\[1\]\.capacity must be 'spot' or 'on-demand'/],
    ['maxSize below minSize', 'dev', (c) => { c['promptmesh:nodeGroups'][0].maxSize = 0; }, /^promptmesh:nodeGroups\[0\]\.maxSize must be/],
    ['an unknown field in a group', 'dev', (c) => { c['promptmesh:nodeGroups'][0].instanceType = 'm6i.large'; }, /^promptmesh:nodeGroups\[0\]\.instanceType is not a known setting/],
    ['no on-demand group', 'dev', (c) => { c['promptmesh:nodeGroups'] = [c['promptmesh:nodeGroups'][0]]; }, /^promptmesh:nodeGroups must include an on-demand group/],
    ['no spot group', 'dev', (c) => { c['promptmesh:nodeGroups'] = [c['promptmesh:nodeGroups'][1]]; }, /^promptmesh:nodeGroups must include a spot group/],
    ['a missing systemNodeGroup', 'dev', (c) => { delete c['promptmesh:systemNodeGroup']; }, /^promptmesh:systemNodeGroup is required/],
    ['a system group of zero nodes', 'dev', (c) => { c['promptmesh:systemNodeGroup'].minSize = 0; }, /^promptmesh:systemNodeGroup\.minSize must be at least 1/],
    ['a misspelt key', 'dev', (c) => { c['promptmesh:nodeGroup'] = c['promptmesh:nodeGroups']; }, /^promptmesh:nodeGroup is not a known setting \(did you mean promptmesh:nodeGroups\?\)/],
    ['a missing region', 'dev', (c) => { delete c['aws:region']; }, /^aws:region is required in aws mode/],
    ['two zones', 'dev', (c) => { c['promptmesh:availabilityZones'] = ['eu-west-1a', 'eu-west-1b']; }, /^promptmesh:availabilityZones must list at least 3 zones/],
    ['a zone of another region', 'dev', (c) => { c['promptmesh:availabilityZones'][2] = 'us-east-1c'; }, /^promptmesh:availabilityZones\[2\] must be a zone of eu-west-1/],
    ['a wrong natGateways', 'dev', (c) => { c['promptmesh:natGateways'] = 'two'; }, /^promptmesh:natGateways must be one of single, perZone/],
    ['a missing database', 'dev', (c) => { delete c['promptmesh:database']; }, /^promptmesh:database is required: one of in-cluster, rds/],
    ['rds settings without rds', 'dev', (c) => { c['promptmesh:rds'] = { multiAz: true }; }, /^promptmesh:rds only applies when promptmesh:database is rds/],
    ['a wrong instance class', 'prod', (c) => { c['promptmesh:rds'].instanceClass = 'm6g.large'; }, /^promptmesh:rds\.instanceClass must be an RDS instance class/],
    ['a Kubernetes version the add-ons are not pinned for', 'dev', (c) => { c['promptmesh:kubernetesVersion'] = '1.33'; }, /^promptmesh:kubernetesVersion is 1\.33 but infra\/versions\.ts pins EKS add-ons and the autoscaler only for 1\.35, 1\.36/],
    ['no TLS in an aws stack', 'staging', (c) => { delete c['promptmesh:tls']; }, /^promptmesh:tls is required in aws mode: every cloud environment serves HTTPS only/],
    ['TLS without a hosted zone', 'dev', (c) => { delete c['promptmesh:tls'].hostedZoneId; }, /^promptmesh:tls\.hostedZoneId is required: the Route 53 hosted zone/],
    ['TLS with a malformed hosted zone', 'prod', (c) => { c['promptmesh:tls'].hostedZoneId = 'example.com'; }, /^promptmesh:tls\.hostedZoneId must be a Route 53 hosted zone id/],
    ['TLS without an ACME address', 'prod', (c) => { delete c['promptmesh:tls'].acmeEmail; }, /^promptmesh:tls\.acmeEmail is required/],
    ['a bad TLS host', 'prod', (c) => { c['promptmesh:tls'].hosts = ['API.example.com']; }, /^promptmesh:tls\.hosts\[0\] must be a DNS name/],
    ['an unknown ACME server', 'dev', (c) => { c['promptmesh:tls'].acmeServer = 'zerossl'; }, /^promptmesh:tls\.acmeServer must be production or staging/],
    ['app.tls in an aws stack', 'prod', (c) => { c['promptmesh:app'].tls = { credentialName: 'x', hosts: ['a.example.com'] }; }, /^promptmesh:app\.tls is for local mode/],
    ['a Docker Hub credential that is no pull-through-cache secret', 'prod', (c) => { c['promptmesh:dockerHubCredentialArn'] = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:dockerhub'; },
      /^promptmesh:dockerHubCredentialArn must be the ARN of a Secrets Manager secret named ecr-pullthroughcache\//],
    ['a privateEndpoint that is no boolean', 'dev', (c) => { c['promptmesh:privateEndpoint'] = 'yes'; }, /^promptmesh:privateEndpoint must be true or false/],
    ['a wrong mode', 'dev', (c) => { c['promptmesh:mode'] = 'gcp'; }, /^promptmesh:mode must be one of aws, local/],
    ['a missing admin API key', 'dev', (c) => { delete c['promptmesh:adminApiKey']; }, /^promptmesh:adminApiKey is required/],
    ['a short admin API key', 'dev', (c) => { c['promptmesh:adminApiKey'] = 'short'; }, /^promptmesh:adminApiKey must be at least 24 characters/],
    ['a provider key the providers file needs but config lacks', 'prod', (c) => { delete c['promptmesh:providerApiKeys'].ANTHROPIC_API_KEY; },
      /^promptmesh:providerApiKeys\.ANTHROPIC_API_KEY is missing: provider app\.providers\.providers\[1\] \(anthropic-main\)/],
    ['an API key inside the providers file', 'dev', (c) => { c['promptmesh:app'].providers.providers[0].apiKey = 'sk-123'; },
      /^promptmesh:app\.providers\.providers\[0\]\.apiKey must not be set: keys are secrets/],
    ['an unknown service', 'dev', (c) => { c['promptmesh:app'].services.gateway = { minReplicas: 1 }; }, /^promptmesh:app\.services\.gateway is not a service/],
    ['replicas out of order', 'dev', (c) => { c['promptmesh:app'].services.router = { minReplicas: 4, maxReplicas: 2 }; }, /^promptmesh:app\.services\.router\.maxReplicas must be >= minReplicas/],
    ['a wrong Redis mode', 'dev', (c) => { c['promptmesh:app'].redis = 'sentinel'; }, /^promptmesh:app\.redis must be standalone or cluster/],
    ['a bad API key hash', 'dev', (c) => { c['promptmesh:app'].apiKeyHashes = [{ id: 'ci', sha256: 'abc', scopes: ['invoke'] }]; }, /^promptmesh:app\.apiKeyHashes\[0\]\.sha256 must be the hex SHA-256/],
    ['TLS without hosts', 'prod', (c) => { c['promptmesh:tls'].hosts = []; }, /^promptmesh:tls\.hosts must list host names/],
    ['local TLS without hosts', 'local', (c) => { c['promptmesh:app'].tls = { credentialName: 'promptmesh-tls', hosts: [] }; }, /^promptmesh:app\.tls\.hosts must list host names/],
    ['an AWS key in local mode', 'local', (c) => { c['promptmesh:natGateways'] = 'single'; }, /^promptmesh:natGateways is an AWS setting; remove it in local mode/],
    ['a local key in aws mode', 'dev', (c) => { c['promptmesh:image'] = 'promptmesh:dev'; }, /^promptmesh:image is a local-mode setting/],
    ['a local stack without an image', 'local', (c) => { delete c['promptmesh:image']; }, /^promptmesh:image is required/],
    ['rds in local mode', 'local', (c) => { c['promptmesh:database'] = 'rds'; }, /^promptmesh:database must be in-cluster in local mode/],
  ];
  it.each(cases)('rejects %s, naming the key', (_what, stack, change, message) => {
    expect(() => parseStackConfig(withChange(stack, change), stack)).toThrow(message);
  });

  it('rejects a secret key stored in plain text', () => {
    const isSecret = (key: string) => key !== 'promptmesh:adminApiKey';
    expect(() => parseStackConfig(flat('dev'), 'dev', isSecret)).toThrow(/^promptmesh:adminApiKey must be a secret; set it with: pulumi config set --secret/);
  });

  it('never puts a secret value into an error message', () => {
    const change = (c: Record<string, any>) => { c['promptmesh:providerApiKeys'] = { 'openai key': 'sk-live-do-not-print' }; };
    let message = '';
    try { parseStackConfig(withChange('dev', change), 'dev'); } catch (e) { message = (e as Error).message; }
    expect(message).toMatch(/^promptmesh:providerApiKeys\.openai key must be an environment variable name/);
    expect(message).not.toContain('sk-live-do-not-print');
  });
});

describe('Kubernetes support dates', () => {
  it('refuses a pinned minor once EKS standard support for it has ended', () => {
    const c = withChange('dev', (x) => { x['promptmesh:kubernetesVersion'] = '1.35'; });
    expect(() => parseStackConfig(c, 'dev', () => true, '2027-03-27')).not.toThrow();
    expect(() => parseStackConfig(c, 'dev', () => true, '2027-03-28')).toThrow(/^promptmesh:kubernetesVersion is 1\.35, past EKS standard support since 2027-03-27/);
  });

  it('refuses a minor that left the table (1.34 left EKS standard support on 2026-12-02)', () => {
    const c = withChange('dev', (x) => { x['promptmesh:kubernetesVersion'] = '1.34'; });
    expect(() => parseStackConfig(c, 'dev', () => true)).toThrow(/promptmesh:kubernetesVersion/);
  });
});
