/**
 * Where pods run: the names the spot node groups carry, shared with the Pulumi program that
 * makes those node groups (`promptmesh/pulumi`), so both sides agree on one label and one taint;
 * and which service runs on which capacity in each environment, decided here for both the cdk8s
 * app (`stacks/k8s`) and the Pulumi program (`stacks/pulumi`).
 */
import { SERVICE_NAMES, SERVICES, type ServiceName } from '../../contracts/index';

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

/**
 * How the four services are placed:
 * - `request-path-on-demand`: router and llm (they hold the streams; a spot reclaim gives two
 *   minutes' notice, a stream may last five) on on-demand nodes, templates and context on spot
 *   (DESIGN.md: spot for the non-core services). Production.
 * - `all-spot`: every service on spot (dev, staging: cheap, interruptions are acceptable).
 * - `all-on-demand`: every service on on-demand nodes (clusters without spot nodes).
 */
export type PlacementPolicy = 'request-path-on-demand' | 'all-spot' | 'all-on-demand';
/** Every {@link PlacementPolicy}. */
export const PLACEMENT_POLICIES: readonly PlacementPolicy[] = ['request-path-on-demand', 'all-spot', 'all-on-demand'];

/** The services that carry the client's request end to end, streams included. */
export const REQUEST_PATH_SERVICES: readonly ServiceName[] = SERVICE_NAMES.filter((svc) => SERVICES[svc].requestPath);

/** The capacity of each service under a policy. */
export function serviceCapacities(policy: PlacementPolicy): Readonly<Record<ServiceName, Capacity>> {
  return Object.fromEntries(
    SERVICE_NAMES.map((svc) => {
      if (policy === 'all-spot') return [svc, CAPACITY_SPOT];
      if (policy === 'all-on-demand') return [svc, CAPACITY_ON_DEMAND];
      return [svc, REQUEST_PATH_SERVICES.includes(svc) ? CAPACITY_ON_DEMAND : CAPACITY_SPOT];
    }),
  ) as Record<ServiceName, Capacity>;
}

/**
 * The placement policy of an environment, by its name: `prod`/`production` keep the request
 * path on on-demand nodes, `dev` and `staging` run on spot, anything else (`local`, a name this
 * repository does not know) runs on-demand only, since it may have no spot nodes at all.
 * The one place both the cdk8s app and the Pulumi program take placement from.
 */
export function placementPolicyFor(environment: string): PlacementPolicy {
  if (environment === 'prod' || environment === 'production') return 'request-path-on-demand';
  if (environment === 'dev' || environment === 'staging') return 'all-spot';
  return 'all-on-demand';
}
