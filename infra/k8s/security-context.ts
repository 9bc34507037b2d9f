/**
 * The one restricted security context of promptmesh's pods (Pod Security Standard `restricted`,
 * which the namespace enforces): non-root numeric user, RuntimeDefault seccomp, no privilege
 * escalation, every capability dropped, read-only root filesystem.
 */
import { k8s } from 'cdk8s-plus-27';

/** Pod-level restricted security context; volumes are group-owned by `gid`. */
export function restrictedPodSecurityContext(uid: number, gid: number = uid): k8s.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    fsGroup: gid,
    // Only chown a volume whose root is not already ours: a large volume would slow every start.
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Container-level restricted security context; the root filesystem is read-only. */
export function restrictedContainerSecurityContext(uid?: number, gid?: number): k8s.SecurityContext {
  return {
    runAsNonRoot: true,
    ...(uid === undefined ? {} : { runAsUser: uid }),
    ...(gid === undefined ? {} : { runAsGroup: gid }),
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}
