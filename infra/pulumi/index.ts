/**
 * promptmesh's Pulumi components (`promptmesh/pulumi`): the cloud (Network, EksCluster, Images,
 * Database, BedrockAccess), the platform (Platform, GatewayTls), the image cache (RegistryCache) and the app (PromptSystemDeployment).
 */
export * from './versions';
export * from './placement';
export * from './network';
export * from './eks-cluster';
export * from './platform';
export * from './gateway-tls';
export * from './bedrock-access';
export * from './registry-cache';
export * from './images';
export * from './database';
export * from './prompt-system-deployment';
