/**
 * The spot placement constants of the cdk8s constructs (`infra/k8s/placement.ts`), in the shape
 * node groups take them. Both sides read the same constants, so the node groups' label and taint
 * always match the workloads' affinity and toleration.
 */
import { CAPACITY_LABEL, CAPACITY_ON_DEMAND, CAPACITY_SPOT, SPOT_TAINT_EFFECT, SPOT_TAINT_KEY, SPOT_TAINT_VALUE } from '../k8s/placement';

// Which service runs on which capacity per environment is decided once, beside the label and
// taint: the Pulumi program (stacks/pulumi/app.ts) passes placementPolicyFor(environment).
export { placementPolicyFor, serviceCapacities, REQUEST_PATH_SERVICES, type PlacementPolicy } from '../k8s/placement';

/** The label on spot nodes (`promptmesh.io/capacity=spot`). */
export const SPOT_NODE_LABEL = { key: CAPACITY_LABEL, value: CAPACITY_SPOT } as const;

/** The value of the same label on on-demand nodes. */
export const ON_DEMAND_LABEL_VALUE = CAPACITY_ON_DEMAND;

/** The taint on spot nodes (`promptmesh.io/spot=true:NoSchedule`). */
export const SPOT_NODE_TAINT = { key: SPOT_TAINT_KEY, value: SPOT_TAINT_VALUE, effect: SPOT_TAINT_EFFECT } as const;
