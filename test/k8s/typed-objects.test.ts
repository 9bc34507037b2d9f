/**
 * Every object the constructs make is typed: core kinds through cdk8s-plus-27's `k8s.Kube*`,
 * CRDs through the classes `npm run import` generates into imports/ from imports/crds/. An
 * untyped `new ApiObject({...})` literal would let a misspelt field through `tsc`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../stacks/pulumi/program';

/**
 * Files converted on another branch of issue 11 (11c: the data stores and the NetworkPolicies).
 * Empty this list once that branch has landed; an entry here is allowed, never required.
 */
function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.ts$/.test(name) && !/\.test(-helpers)?\.ts$/.test(name) ? [path] : [];
  });
}

describe('typed objects', () => {
  it('infra/ builds no object as an untyped ApiObject literal', () => {
    const untyped = sources(join(REPO_ROOT, 'infra'))
      .map((f) => relative(REPO_ROOT, f))
      .filter((f) => /new ApiObject\s*\(/.test(readFileSync(join(REPO_ROOT, f), 'utf8')));
    expect(untyped).toEqual([]);
  });

  it('the generated CRD classes are committed, for the kinds the constructs use, at the versions they emit', () => {
    const imports = join(REPO_ROOT, 'imports');
    const expected: Record<string, string[]> = {
      'networking.istio.io.ts': ['DestinationRule', 'Gateway', 'VirtualService'],
      'security.istio.io.ts': ['AuthorizationPolicy', 'PeerAuthentication'],
      'monitoring.coreos.com.ts': ['PodMonitor', 'PrometheusRule', 'ServiceMonitor'],
      'cert-manager.io.ts': ['Certificate', 'ClusterIssuer', 'Issuer'],
    };
    for (const [file, kinds] of Object.entries(expected)) {
      const text = readFileSync(join(imports, file), 'utf8');
      const classes = [...text.matchAll(/^export class (\w+) extends ApiObject/gm)].map((m) => m[1]).sort();
      expect(classes, file).toEqual(kinds);
      // Istio's v1 (not v1beta1/v1alpha3), and v1 for the others.
      for (const m of text.matchAll(/apiVersion: '([^']+)'/g)) expect(m[1], file).toMatch(/\/v1$/);
    }
  });
});
