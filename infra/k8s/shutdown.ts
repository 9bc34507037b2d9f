/**
 * How long a request may last, and how long a stopping pod waits for it: the three numbers a
 * rollout must agree on, so that it never cuts a stream the mesh still allows.
 *
 * 1. The route timeout Istio allows per service (the VirtualService `timeout`): completions
 *    stream for minutes, so router and llm allow {@link LONGEST_STREAM_SECONDS}.
 * 2. The service's `SHUTDOWN_TIMEOUT_MS`: after SIGTERM, in-flight requests get this long. It must
 *    cover the route timeout, or a rollout cuts the longest allowed stream.
 * 3. The pod's `terminationGracePeriodSeconds`: the preStop drain, then the shutdown timeout,
 *    then a margin for the process to exit; Kubernetes SIGKILLs the pod after it.
 */
import type { ServiceName } from '../../contracts/index';

/** The longest stream the mesh lets a client hold open, in seconds (router and llm route timeout). */
export const LONGEST_STREAM_SECONDS = 300;

/** Route timeout per service in seconds (Mesh's `timeouts` default, as Istio durations there). */
export const DEFAULT_ROUTE_TIMEOUT_SECONDS: Readonly<Record<ServiceName, number>> = {
  router: LONGEST_STREAM_SECONDS,
  llm: LONGEST_STREAM_SECONDS,
  templates: 10,
  context: 5,
};

/** Seconds between the end of the shutdown timeout and SIGKILL: the process closes its clients and exits. */
export const EXIT_MARGIN_SECONDS = 5;

/** Seconds the preStop hook keeps a pod serving while endpoints and proxies stop routing to it. */
export const DEFAULT_DRAIN_SECONDS = 5;

/** The termination grace period a pod needs: drain, then shutdown, then the exit margin. */
export function terminationGracePeriodSeconds(drainSeconds: number, shutdownTimeoutSeconds: number): number {
  return drainSeconds + shutdownTimeoutSeconds + EXIT_MARGIN_SECONDS;
}
