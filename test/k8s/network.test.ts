/**
 * The NetworkPolicies allow exactly the paths of the design: evaluated here the way a
 * policy-enforcing CNI reads them (a pod selected by a policy of a type is isolated for that
 * direction; traffic passes when some rule of some selecting policy admits it, on both ends).
 */
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, defaultChart } from './manifests';
import { synthesize } from '../../stacks/k8s/synth';

type Labels = Record<string, string>;
/** A pod (namespace and labels) or an address outside the cluster. */
type Endpoint = { ns: string; labels: Labels } | { ip: string };

function ipToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipToInt(ip) / size) === Math.floor(ipToInt(base) / size);
}

function selects(selector: { matchLabels?: Labels } | undefined, labels: Labels): boolean {
  return Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

function peerMatches(peer: any, policyNs: string, other: Endpoint): boolean {
  if ('ip' in other) {
    if (!peer.ipBlock) return false;
    return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((x: string) => inCidr(other.ip, x));
  }
  if (peer.ipBlock) return false;
  const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, { 'kubernetes.io/metadata.name': other.ns }) : other.ns === policyNs;
  const podOk = peer.podSelector ? selects(peer.podSelector, other.labels) : true;
  return nsOk && podOk;
}

function portMatches(rule: any, port: number): boolean {
  return !rule.ports || rule.ports.some((p: any) => p.port === port && (p.protocol ?? 'TCP') === 'TCP');
}

/** Whether TCP traffic from `src` to `dst:port` passes the policies in `objects`. */
function allowed(objects: any[], src: Endpoint, dst: Endpoint, port: number): boolean {
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  const side = (pod: Endpoint, type: 'Ingress' | 'Egress', other: Endpoint): boolean => {
    if ('ip' in pod) return true;
    const mine = policies.filter((p) => p.metadata.namespace === pod.ns && selects(p.spec.podSelector, pod.labels) && p.spec.policyTypes.includes(type));
    if (mine.length === 0) return true;
    const rules = mine.flatMap((p) => (type === 'Ingress' ? p.spec.ingress ?? [] : p.spec.egress ?? []).map((r: any) => ({ r, ns: p.metadata.namespace })));
    return rules.some(({ r, ns }) => {
      const peers = type === 'Ingress' ? r.from : r.to;
      return portMatches(r, port) && (!peers || peers.some((peer: any) => peerMatches(peer, ns, other)));
    });
  };
  return side(src, 'Egress', dst) && side(dst, 'Ingress', src);
}

function podOf(objects: any[], kind: string, name: string): Endpoint {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  const template = o.spec.template ?? o.spec.jobTemplate.spec.template;
  return { ns: o.metadata.namespace, labels: template.metadata.labels };
}

for (const [name, objects] of [
  ['default chart (Redis Cluster, in-cluster PostgreSQL)', defaultChart()],
  ['prod (external PostgreSQL)', synthesize({ env: 'prod', images: TEST_IMAGE })],
] as const) {
  describe(`network paths: ${name}`, () => {
    const svc = (s: string) => podOf(objects, 'Deployment', `${s}-stable`);
    const redis = podOf(objects, 'StatefulSet', 'redis');
    const gateway: Endpoint = { ns: 'istio-ingress', labels: { istio: 'ingressgateway' } };
    const istiod: Endpoint = { ns: 'istio-system', labels: { app: 'istiod' } };
    const dns: Endpoint = { ns: 'kube-system', labels: { 'k8s-app': 'kube-dns' } };
    const prometheus: Endpoint = { ns: 'monitoring', labels: { 'app.kubernetes.io/name': 'prometheus' } };
    const stranger: Endpoint = { ns: 'default', labels: { app: 'curl' } };
    const internet: Endpoint = { ip: '104.18.7.192' };
    const metadata: Endpoint = { ip: '169.254.169.254' };

    it('admits the request path and nothing around it', () => {
      expect(allowed(objects, gateway, svc('router'), 8080)).toBe(true);
      for (const s of ['templates', 'context', 'llm']) {
        expect(allowed(objects, svc('router'), svc(s), 8080), `router -> ${s}`).toBe(true);
        expect(allowed(objects, gateway, svc(s), 8080), `gateway -> ${s}`).toBe(false);
      }
      expect(allowed(objects, svc('llm'), svc('templates'), 8080)).toBe(false);
      expect(allowed(objects, svc('context'), svc('router'), 8080)).toBe(false);
      expect(allowed(objects, stranger, svc('router'), 8080)).toBe(false);
      expect(allowed(objects, svc('router'), svc('templates'), 9999)).toBe(false);
    });

    it('lets the services reach their datastores, and only those', () => {
      for (const s of ['router', 'templates', 'context', 'llm']) {
        expect(allowed(objects, svc(s), redis, 6379), `${s} -> redis`).toBe(true);
      }
      expect(allowed(objects, stranger, redis, 6379)).toBe(false);
      const postgresSet = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'postgres');
      if (postgresSet) {
        const postgres = podOf(objects, 'StatefulSet', 'postgres');
        expect(allowed(objects, svc('templates'), postgres, 5432)).toBe(true);
        for (const s of ['router', 'context', 'llm']) expect(allowed(objects, svc(s), postgres, 5432), `${s} -> postgres`).toBe(false);
      } else {
        const managed: Endpoint = { ip: '10.0.12.34' };
        expect(allowed(objects, svc('templates'), managed, 5432)).toBe(true);
        expect(allowed(objects, svc('context'), managed, 5432)).toBe(false);
      }
    });

    it('lets Redis Cluster pods gossip on the bus port and the bootstrap Job reach them', () => {
      const bus = objects.find((o) => o.kind === 'Job');
      if (!bus) return;
      expect(allowed(objects, redis, redis, 16379)).toBe(true);
      expect(allowed(objects, podOf(objects, 'Job', bus.metadata.name), redis, 6379)).toBe(true);
      expect(allowed(objects, svc('router'), redis, 16379)).toBe(false);
    });

    it('lets Prometheus scrape, every pod resolve names and reach istiod', () => {
      for (const s of ['router', 'templates', 'context', 'llm']) {
        expect(allowed(objects, prometheus, svc(s), 15020), `prometheus -> ${s}`).toBe(true);
        expect(allowed(objects, svc(s), dns, 53), `${s} -> dns`).toBe(true);
        expect(allowed(objects, svc(s), istiod, 15012), `${s} -> istiod`).toBe(true);
      }
      expect(allowed(objects, prometheus, redis, 9121)).toBe(true);
      expect(allowed(objects, stranger, svc('router'), 15020)).toBe(false);
    });

    it('lets only llm out to the providers, on 443, never to private or metadata addresses', () => {
      expect(allowed(objects, svc('llm'), internet, 443)).toBe(true);
      expect(allowed(objects, svc('llm'), internet, 80)).toBe(false);
      expect(allowed(objects, svc('llm'), metadata, 443)).toBe(false);
      expect(allowed(objects, svc('llm'), { ip: '10.1.2.3' }, 443)).toBe(false);
      for (const s of ['router', 'templates', 'context']) expect(allowed(objects, svc(s), internet, 443), `${s} -> internet`).toBe(false);
      expect(allowed(objects, redis, internet, 443)).toBe(false);
    });
  });
}
