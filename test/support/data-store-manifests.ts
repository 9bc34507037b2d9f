/** Assertions the data-store construct tests share (restricted pods, workloads). */
import { expect } from 'vitest';

const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'];

/** Every object that runs pods. */
export function workloads(objects: any[]): any[] {
  return objects.filter((o) => WORKLOAD_KINDS.includes(o.kind));
}

/** The pod spec of every workload. */
export function podSpecs(objects: any[]): any[] {
  return workloads(objects).map((w) => w.spec.template.spec);
}

/**
 * Asserts the Pod Security Standard `restricted` profile, and more: every container non-root
 * with a numeric uid, read-only root filesystem, no privilege escalation, all capabilities
 * dropped, RuntimeDefault seccomp, requests and limits for CPU and memory.
 */
export function expectRestricted(spec: any): void {
  const pod = spec.securityContext ?? {};
  expect(pod.runAsNonRoot).toBe(true);
  expect(typeof pod.runAsUser).toBe('number');
  expect(pod.runAsUser).toBeGreaterThan(0);
  expect(typeof pod.runAsGroup).toBe('number');
  expect(pod.seccompProfile).toEqual({ type: 'RuntimeDefault' });
  expect(spec.hostNetwork ?? false).toBe(false);
  expect(spec.hostPID ?? false).toBe(false);
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    expect(sc.allowPrivilegeEscalation, `${c.name} allowPrivilegeEscalation`).toBe(false);
    expect(sc.capabilities?.drop, `${c.name} capabilities`).toEqual(['ALL']);
    expect(sc.capabilities?.add, `${c.name} capabilities.add`).toBeUndefined();
    expect(sc.readOnlyRootFilesystem, `${c.name} readOnlyRootFilesystem`).toBe(true);
    expect(sc.runAsNonRoot ?? pod.runAsNonRoot, `${c.name} runAsNonRoot`).toBe(true);
    expect(sc.seccompProfile ?? pod.seccompProfile, `${c.name} seccomp`).toEqual({ type: 'RuntimeDefault' });
    expect(sc.privileged ?? false, `${c.name} privileged`).toBe(false);
    for (const r of ['cpu', 'memory']) {
      expect(c.resources?.requests?.[r], `${c.name} requests.${r}`).toBeDefined();
      expect(c.resources?.limits?.[r], `${c.name} limits.${r}`).toBeDefined();
    }
  }
}

/**
 * Resolves a container's env list the way the kubelet does: `valueFrom.secretKeyRef` from the
 * given Secrets, then `$(NAME)` references to variables defined earlier in the list.
 */
export function resolveEnv(
  env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>,
  secrets: Record<string, Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      const value = secrets[name]?.[key];
      if (value === undefined) throw new Error(`env ${e.name}: Secret ${name} has no key ${key}`);
      out[e.name] = value;
    } else {
      out[e.name] = (e.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, ref: string) => out[ref] ?? whole);
    }
  }
  return out;
}
