/**
 * promptmesh's cdk8s constructs (`promptmesh/k8s`): the whole in-cluster topology as typed,
 * secure-by-default constructs. See docs/k8s.md.
 */
export * from './prompt-system';
export * from './prompt-service';
export * from './mesh';
export * from './network-policies';
export * from './redis';
export * from './postgres';
export * from './observability';
export * from './placement';
export * from './monitoring';
export * from './resources';
// Explicit, so it wins over any same-named type the data-store modules re-export.
export type { ContainerResources, ResourceQuantities } from './resources';
export { TRACK_LABEL, PART_OF } from './labels';
export * from './autoscaling';
export * from './shutdown';
export * from './service-monitoring';
export * from './service-workload';
export * from './security-context';
