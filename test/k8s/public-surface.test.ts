/**
 * The public surface (DESIGN.md): the ingress reaches the router on `/v1/` and `/console/` only,
 * at two layers that each hold alone: the gateway's VirtualService has no route for anything
 * else, and the router's AuthorizationPolicy admits the gateway's identity on those paths only.
 * Both are evaluated here with Istio's matching rules over the synthesized objects.
 */
import { Testing } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { DEFAULT_INGRESS_GATEWAY, ISTIOCTL_INGRESS_GATEWAY, PUBLIC_PATH_PREFIXES, PromptSystem } from '../../infra/k8s/index';
import { PLATFORM_NAMESPACES, RELEASE_NAMES } from '../../infra/pulumi/platform';
import { allOutputs, TEST_IMAGE } from './manifests';

const PUBLIC = ['/v1/chat/completions', '/v1/models', '/v1/embeddings', '/v1/messages', '/v1/keys/abc', '/console/', '/console/prompts/x'];
const PRIVATE = ['/metrics', '/healthz', '/readyz', '/', '/v1', '/v2/chat/completions', '/console', '/stats/prometheus', '/metrics/v1/'];

/** Istio `StringMatch` on a URI. */
function uriMatches(match: any, path: string): boolean {
  if (match.exact !== undefined) return path === match.exact;
  if (match.prefix !== undefined) return path.startsWith(match.prefix);
  if (match.regex !== undefined) return new RegExp(`^${match.regex}$`).test(path);
  return true;
}

/** Whether the gateway VirtualService routes `path` anywhere (a route with no match takes everything). */
function gatewayRoutes(vs: any, path: string): boolean {
  return vs.spec.http.some((h: any) => !h.match || h.match.some((m: any) => !m.uri || uriMatches(m.uri, path)));
}

/** Istio AuthorizationPolicy path matching: exact, `prefix*`, `*suffix`, `*`. */
function authzPathMatches(pattern: string, path: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return path.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return path.endsWith(pattern.slice(1));
  return path === pattern;
}

/** Whether an ALLOW policy admits a request from `principal` (no namespace attribute) to `path` on `port`. */
function admits(policy: any, principal: string, path: string, port: number): boolean {
  return policy.spec.rules.some((rule: any) => {
    const fromOk = !rule.from || rule.from.some((f: any) => (f.source.principals ?? []).includes(principal));
    const toOk =
      !rule.to ||
      rule.to.some((t: any) => {
        const op = t.operation;
        return (!op.ports || op.ports.includes(String(port))) && (!op.paths || op.paths.some((p: string) => authzPathMatches(p, path)));
      });
    return fromOk && toOk;
  });
}

describe('the public surface', () => {
  for (const [name, objects] of allOutputs()) {
    describe(name, () => {
      const gatewayVs = objects.find((o) => o.kind === 'VirtualService' && o.spec.gateways);
      const routerAuthz = objects.find((o) => o.kind === 'AuthorizationPolicy' && o.metadata.name === 'router');
      const principal = `cluster.local/ns/${DEFAULT_INGRESS_GATEWAY.namespace}/sa/${DEFAULT_INGRESS_GATEWAY.serviceAccount}`;

      it('routes /v1/ and /console/ from the gateway to the router, nothing else', () => {
        expect(gatewayVs.spec.http.map((h: any) => h.match)).toEqual(PUBLIC_PATH_PREFIXES.map((prefix) => [{ uri: { prefix } }]));
        for (const path of PUBLIC) expect(gatewayRoutes(gatewayVs, path), path).toBe(true);
        for (const path of PRIVATE) expect(gatewayRoutes(gatewayVs, path), path).toBe(false);
      });

      it("admits the gateway's identity on the public paths only", () => {
        for (const path of PUBLIC) expect(admits(routerAuthz, principal, path, 8080), path).toBe(true);
        for (const path of PRIVATE) expect(admits(routerAuthz, principal, path, 8080), path).toBe(false);
        // No rule lets the gateway through without a path restriction.
        for (const rule of routerAuthz.spec.rules.filter((r: any) => r.from?.some((f: any) => f.source.principals?.includes(principal)))) {
          for (const t of rule.to) expect(t.operation.paths).toEqual(['/v1/*', '/console/*']);
        }
        // The other services never admit the gateway.
        for (const a of objects.filter((o) => o.kind === 'AuthorizationPolicy' && o.metadata.name !== 'router')) {
          expect(admits(a, principal, '/v1/chat/completions', 8080), a.metadata.name).toBe(false);
        }
      });

      it('keeps metrics scrapes working under STRICT mTLS: Prometheus scrapes the agent port, outside the Service clients call', () => {
        const monitors = objects.filter((o) => o.kind === 'ServiceMonitor' && ['router', 'templates', 'context', 'llm'].includes(o.metadata.name));
        expect(monitors).toHaveLength(4);
        for (const m of monitors) expect(m.spec.endpoints[0]).toMatchObject({ port: 'http-metrics', path: '/stats/prometheus' });
        const router = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'router');
        expect(router.spec.ports.map((p: any) => p.port)).toEqual([8080]);
      });
    });
  }

  it('names the gateway the platform installs by default, and the istioctl one as an option', () => {
    expect(DEFAULT_INGRESS_GATEWAY.namespace).toBe(PLATFORM_NAMESPACES.istioIngress);
    // The istio gateway chart names its ServiceAccount after the release.
    expect(DEFAULT_INGRESS_GATEWAY.serviceAccount).toBe(RELEASE_NAMES.istioGateway);
    const objects = Testing.synth(new PromptSystem(Testing.app(), 'p', { images: TEST_IMAGE, ingressGateway: ISTIOCTL_INGRESS_GATEWAY }));
    const authz = objects.find((o) => o.kind === 'AuthorizationPolicy' && o.metadata.name === 'router');
    expect(authz.spec.rules[0].from[0].source.principals).toEqual(['cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account']);
  });
});
