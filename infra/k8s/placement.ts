/**
 * Where pods run: the names the spot node groups carry, shared with the Pulumi program that
 * makes those node groups (`promptmesh/pulumi`), so both sides agree on one label and one taint.
 */

/** Node label every spot node carries: `promptmesh.io/capacity=spot` (on-demand nodes: `on-demand`). */
export const CAPACITY_LABEL = 'promptmesh.io/capacity';
/** Value of {@link CAPACITY_LABEL} on spot nodes. */
export const CAPACITY_SPOT = 'spot';
/** Value of {@link CAPACITY_LABEL} on on-demand nodes. */
export const CAPACITY_ON_DEMAND = 'on-demand';
/** Taint key of the spot node groups: `promptmesh.io/spot=true:NoSchedule`. */
export const SPOT_TAINT_KEY = 'promptmesh.io/spot';
/** Taint value of the spot node groups. */
export const SPOT_TAINT_VALUE = 'true';
/** Taint effect of the spot node groups. */
export const SPOT_TAINT_EFFECT = 'NoSchedule';

/** The capacity a workload is placed on. */
export type Capacity = 'spot' | 'on-demand';
/** Every {@link Capacity}. */
export const CAPACITIES: readonly Capacity[] = ['spot', 'on-demand'];

/** The scheduling fields of a pod spec for a capacity type. */
export interface PodPlacement {
  /** Node affinity. */
  readonly affinity?: Record<string, unknown>;
  /** Tolerations. */
  readonly tolerations?: Record<string, unknown>[];
}

/**
 * The pod-spec fields that place a workload on spot or on-demand nodes.
 *
 * - `spot`: tolerates the spot taint and prefers (does not require) spot nodes, so a spot
 *   shortage degrades to on-demand instead of leaving pods pending.
 * - `on-demand`: keeps off spot nodes (required anti-affinity on the label); the spot taint
 *   keeps it off them anyway, the affinity also covers spot nodes someone forgot to taint.
 */
export function placementFor(capacity: Capacity): PodPlacement {
  if (capacity === 'spot') {
    return {
      affinity: {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 100,
              preference: { matchExpressions: [{ key: CAPACITY_LABEL, operator: 'In', values: [CAPACITY_SPOT] }] },
            },
          ],
        },
      },
      tolerations: [{ key: SPOT_TAINT_KEY, operator: 'Equal', value: SPOT_TAINT_VALUE, effect: SPOT_TAINT_EFFECT }],
    };
  }
  return {
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: CAPACITY_LABEL, operator: 'NotIn', values: [CAPACITY_SPOT] }] }],
        },
      },
    },
  };
}
