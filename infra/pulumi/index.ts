/**
 * promptmesh's Pulumi components (`promptmesh/pulumi`): the cloud (Network, EksCluster, Images,
 * Database), the platform (Platform) and the app (PromptSystemDeployment).
 */
export * from './versions';
export * from './placement';
export * from './network';
export * from './eks-cluster';
export * from './platform';
export * from './images';
export * from './database';
export * from './prompt-system-deployment';
