/**
 * The NetworkPolicy evaluator (test/support/network-policy.ts) on the examples of the Kubernetes
 * documentation (concepts/services-networking/network-policies), with the outcomes the page
 * states, and on the corner cases the API reference defines (empty vs absent fields, defaults).
 */
import { describe, expect, it } from 'vitest';
import { evaluate, inCidr, policyTypesOf, selectorMatches, type ClusterModel, type Endpoint, type NetworkPolicy, type Pod } from '../support/network-policy';

const pod = (name: string, namespace: string, labels: Record<string, string>, ip: string, ports: Pod['ports'] = []): Pod => ({
  kind: 'pod', name, namespace, labels, ip, ports,
});
const ext = (ip: string): Endpoint => ({ kind: 'external', name: ip, ip });
const policy = (name: string, spec: NetworkPolicy['spec'], namespace = 'default'): NetworkPolicy => ({ metadata: { name, namespace }, spec });
const model = (policies: NetworkPolicy[], namespaces: ClusterModel['namespaces'] = {}): ClusterModel => ({
  policies,
  namespaces: { default: {}, ...namespaces },
});
const ok = (m: ClusterModel, a: Endpoint, b: Endpoint, port: number, protocol: 'TCP' | 'UDP' | 'SCTP' = 'TCP') => evaluate(m, a, b, port, protocol).allowed;

describe('NetworkPolicy evaluator: the documentation examples', () => {
  // "The NetworkPolicy resource": test-network-policy.
  const testNetworkPolicy = policy('test-network-policy', {
    podSelector: { matchLabels: { role: 'db' } },
    policyTypes: ['Ingress', 'Egress'],
    ingress: [
      {
        from: [
          { ipBlock: { cidr: '172.17.0.0/16', except: ['172.17.1.0/24'] } },
          { namespaceSelector: { matchLabels: { project: 'myproject' } } },
          { podSelector: { matchLabels: { role: 'frontend' } } },
        ],
        ports: [{ protocol: 'TCP', port: 6379 }],
      },
    ],
    egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/24' } }], ports: [{ protocol: 'TCP', port: 5978 }] }],
  });
  const m = model([testNetworkPolicy], { myproject: { project: 'myproject' }, other: {} });
  const db = pod('db', 'default', { role: 'db' }, '10.244.0.5');
  const frontend = pod('frontend', 'default', { role: 'frontend' }, '10.244.0.6');
  const frontendElsewhere = pod('frontend-other-ns', 'other', { role: 'frontend' }, '10.244.0.7');
  const anyInProject = pod('anything', 'myproject', { app: 'x' }, '10.244.0.8');
  const backend = pod('backend', 'default', { role: 'backend' }, '10.244.0.9');

  it('test-network-policy: role=db takes 6379 from role=frontend here, from namespace project=myproject, and from 172.17.0.0/16 minus 172.17.1.0/24', () => {
    expect(ok(m, frontend, db, 6379)).toBe(true);
    expect(ok(m, anyInProject, db, 6379)).toBe(true);
    expect(ok(m, ext('172.17.0.200'), db, 6379)).toBe(true);
    expect(ok(m, ext('172.17.2.1'), db, 6379)).toBe(true);
    expect(ok(m, ext('172.17.255.255'), db, 6379)).toBe(true);
    expect(ok(m, ext('172.17.1.9'), db, 6379)).toBe(false);
    expect(ok(m, ext('172.18.0.1'), db, 6379)).toBe(false);
    // A podSelector alone means this namespace only.
    expect(ok(m, frontendElsewhere, db, 6379)).toBe(false);
    expect(ok(m, backend, db, 6379)).toBe(false);
    // Only that port, only TCP.
    expect(ok(m, frontend, db, 6380)).toBe(false);
    expect(ok(m, frontend, db, 6379, 'UDP')).toBe(false);
  });

  it('test-network-policy: role=db reaches only 10.0.0.0/24 on 5978; other pods are not isolated', () => {
    expect(ok(m, db, ext('10.0.0.77'), 5978)).toBe(true);
    expect(ok(m, db, ext('10.0.1.77'), 5978)).toBe(false);
    expect(ok(m, db, ext('10.0.0.77'), 443)).toBe(false);
    expect(ok(m, db, frontend, 80)).toBe(false);
    // frontend is selected by no policy: everything in and out.
    expect(ok(m, backend, frontend, 80)).toBe(true);
    expect(ok(m, frontend, ext('8.8.8.8'), 53, 'UDP')).toBe(true);
    const v = evaluate(m, frontend, db, 6379);
    expect(v.egress.isolated).toBe(false);
    expect(v.ingress).toEqual({ isolated: true, allowed: true, by: ['test-network-policy'] });
  });

  it('namespaceSelector and podSelector in one peer is AND; in two peers it is OR', () => {
    const namespaces = { alice: { user: 'alice' }, bob: { user: 'bob' } };
    const and = model([policy('and', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { user: 'alice' } }, podSelector: { matchLabels: { role: 'client' } } }] }] })], namespaces);
    const or = model([policy('or', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { user: 'alice' } } }, { podSelector: { matchLabels: { role: 'client' } } }] }] })], namespaces);
    const target = pod('target', 'default', { app: 't' }, '10.244.1.1');
    const aliceClient = pod('alice-client', 'alice', { role: 'client' }, '10.244.1.2');
    const aliceOther = pod('alice-other', 'alice', { role: 'server' }, '10.244.1.3');
    const bobClient = pod('bob-client', 'bob', { role: 'client' }, '10.244.1.4');
    const localClient = pod('local-client', 'default', { role: 'client' }, '10.244.1.5');
    expect([aliceClient, aliceOther, bobClient, localClient].map((p) => ok(and, p, target, 80))).toEqual([true, false, false, false]);
    expect([aliceClient, aliceOther, bobClient, localClient].map((p) => ok(or, p, target, 80))).toEqual([true, true, false, true]);
  });

  it('default deny ingress isolates ingress only; allow-all-ingress (ingress: [{}]) admits everything in', () => {
    const target = pod('t', 'default', { app: 't' }, '10.244.2.1');
    const peer = pod('p', 'default', { app: 'p' }, '10.244.2.2');
    const deny = model([policy('default-deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] })]);
    expect(ok(deny, peer, target, 80)).toBe(false);
    expect(ok(deny, ext('1.2.3.4'), target, 80)).toBe(false);
    expect(ok(deny, target, ext('1.2.3.4'), 443)).toBe(true);
    // The node still reaches its pods (kubelet probes).
    expect(ok(deny, { kind: 'host', name: 'node' }, target, 8080)).toBe(true);
    const allowAll = model([...deny.policies, policy('allow-all-ingress', { podSelector: {}, ingress: [{}], policyTypes: ['Ingress'] })]);
    expect(ok(allowAll, peer, target, 80)).toBe(true);
    expect(ok(allowAll, ext('1.2.3.4'), target, 9999, 'UDP')).toBe(true);
  });

  it('default deny egress isolates egress only; allow-all-egress (egress: [{}]) admits everything out; default deny all does both', () => {
    const a = pod('a', 'default', { app: 'a' }, '10.244.3.1');
    const b = pod('b', 'default', { app: 'b' }, '10.244.3.2');
    const denyEgress = model([policy('default-deny-egress', { podSelector: {}, policyTypes: ['Egress'] })]);
    expect(ok(denyEgress, a, b, 80)).toBe(false);
    expect(ok(denyEgress, a, ext('1.1.1.1'), 53, 'UDP')).toBe(false);
    expect(ok(denyEgress, ext('1.1.1.1'), a, 80)).toBe(true);
    const allowEgress = model([...denyEgress.policies, policy('allow-all-egress', { podSelector: {}, egress: [{}], policyTypes: ['Egress'] })]);
    expect(ok(allowEgress, a, ext('1.1.1.1'), 53, 'UDP')).toBe(true);
    const denyAll = model([policy('default-deny-all', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]);
    expect(ok(denyAll, a, b, 80)).toBe(false);
    expect(ok(denyAll, ext('1.1.1.1'), a, 80)).toBe(false);
    expect(ok(denyAll, a, ext('1.1.1.1'), 80)).toBe(false);
  });

  it('a port range (port..endPort) admits its ends and nothing outside', () => {
    const m2 = model([
      policy('multi-port-egress', {
        podSelector: { matchLabels: { role: 'db' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/24' } }], ports: [{ protocol: 'TCP', port: 32000, endPort: 32768 }] }],
      }),
    ]);
    const dbPod = pod('db', 'default', { role: 'db' }, '10.244.4.1');
    expect([31999, 32000, 32500, 32768, 32769].map((p) => ok(m2, dbPod, ext('10.0.0.9'), p))).toEqual([false, true, true, true, false]);
  });

  it('targets a namespace by its name through the kubernetes.io/metadata.name label the API server sets', () => {
    const m3 = model([policy('from-prod', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'prod' } } }] }] })], { prod: {}, dev: {} });
    const target = pod('t', 'default', {}, '10.244.5.1');
    expect(ok(m3, pod('p', 'prod', {}, '10.244.5.2'), target, 80)).toBe(true);
    expect(ok(m3, pod('d', 'dev', {}, '10.244.5.3'), target, 80)).toBe(false);
  });
});

describe('NetworkPolicy evaluator: the API reference corner cases', () => {
  const a = pod('a', 'default', { app: 'a' }, '10.244.6.1', [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }]);
  const b = pod('b', 'default', { app: 'b' }, '10.244.6.2');

  it('policyTypes defaults to Ingress, plus Egress when the policy has egress rules', () => {
    const ingressOnly = policy('i', { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } } }] }] });
    const withEgress = policy('e', { podSelector: {}, egress: [{ to: [{ podSelector: { matchLabels: { app: 'a' } } }] }] });
    expect(policyTypesOf(ingressOnly)).toEqual(['Ingress']);
    expect(policyTypesOf(withEgress)).toEqual(['Ingress', 'Egress']);
    expect(ok(model([ingressOnly]), a, ext('1.1.1.1'), 443)).toBe(true);
    expect(ok(model([withEgress]), a, ext('1.1.1.1'), 443)).toBe(false);
    // withEgress also isolates ingress, with no ingress rule: nothing comes in.
    expect(ok(model([withEgress]), b, a, 8080)).toBe(false);
  });

  it('absent or empty from/to/ports admit all; an empty podSelector selects every pod of the namespace', () => {
    for (const rule of [{}, { from: [] }, { ports: [] }, { from: [], ports: [] }]) {
      expect(ok(model([policy('p', { podSelector: {}, policyTypes: ['Ingress'], ingress: [rule] })]), b, a, 1234), JSON.stringify(rule)).toBe(true);
    }
    // No rule at all is different: isolated, nothing admitted.
    expect(ok(model([policy('p', { podSelector: {}, policyTypes: ['Ingress'], ingress: [] })]), b, a, 1234)).toBe(false);
    // A peer with an empty podSelector: every pod of the policy's namespace, none elsewhere.
    const samens = model([policy('p', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: {} }] }] })], { other: {} });
    expect(ok(samens, b, a, 1)).toBe(true);
    expect(ok(samens, pod('x', 'other', {}, '10.244.6.9'), a, 1)).toBe(false);
    // An empty namespaceSelector: every pod of every namespace, but nothing outside the cluster.
    const allns = model([policy('p', { podSelector: {}, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: {} }] }] })], { other: {} });
    expect(ok(allns, pod('x', 'other', {}, '10.244.6.9'), a, 1)).toBe(true);
    expect(ok(allns, ext('1.2.3.4'), a, 1)).toBe(false);
  });

  it('policies are additive: a pod selected by several is admitted by any of them, on both ends', () => {
    const m = model([
      policy('deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
      policy('b-out', { podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Egress'], egress: [{ to: [{ podSelector: { matchLabels: { app: 'a' } } }] }] }),
    ]);
    // b's egress admits it, a's ingress does not.
    const v = evaluate(m, b, a, 8080);
    expect(v.egress).toEqual({ isolated: true, allowed: true, by: ['b-out'] });
    expect(v.ingress.allowed).toBe(false);
    expect(v.allowed).toBe(false);
    const m2 = model([...m.policies, policy('a-in', { podSelector: { matchLabels: { app: 'a' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'b' } } }] }] })]);
    expect(ok(m2, b, a, 8080)).toBe(true);
    expect(ok(m2, a, b, 8080)).toBe(false);
  });

  it('named ports resolve against the destination pod, with their protocol', () => {
    const m = model([policy('p', { podSelector: { matchLabels: { app: 'a' } }, policyTypes: ['Ingress'], ingress: [{ ports: [{ port: 'http' }, { port: 'dns', protocol: 'UDP' }] }] })]);
    expect(ok(m, b, a, 8080)).toBe(true);
    expect(ok(m, b, a, 8081)).toBe(false);
    expect(ok(m, b, a, 53, 'UDP')).toBe(true);
    expect(ok(m, b, a, 53, 'TCP')).toBe(false);
    // Egress to a named port: the destination's port; an address outside the cluster has none.
    const out = model([policy('o', { podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] })]);
    expect(ok(out, b, a, 8080)).toBe(true);
    expect(ok(out, b, ext('1.2.3.4'), 8080)).toBe(false);
  });

  it('the pod namespace scopes policies: a policy elsewhere does not isolate these pods', () => {
    const m = model([policy('deny', { podSelector: {}, policyTypes: ['Ingress'] }, 'other')], { other: {} });
    expect(ok(m, b, a, 80)).toBe(true);
  });

  it('ipBlock matches pod addresses unless told otherwise (implementation-defined in Kubernetes)', () => {
    const p = policy('cidr', { podSelector: { matchLabels: { app: 'b' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.244.0.0/16' } }] }] });
    expect(ok({ ...model([p]) }, b, a, 80)).toBe(true);
    expect(ok({ ...model([p]), ipBlockMatchesPods: false }, b, a, 80)).toBe(false);
  });

  it('selectors: matchExpressions In, NotIn, Exists, DoesNotExist; CIDR arithmetic', () => {
    const labels = { env: 'prod', tier: 'web' };
    expect(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'staging'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['x'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { env: 'prod' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] }, labels)).toBe(false);
    expect(selectorMatches({}, labels)).toBe(true);
    expect(inCidr('0.0.0.1', '0.0.0.0/0')).toBe(true);
    expect(inCidr('192.168.1.1', '192.168.0.0/24')).toBe(false);
    expect(inCidr('192.168.0.255', '192.168.0.0/24')).toBe(true);
    expect(() => inCidr('1.2.3', '0.0.0.0/0')).toThrow(/not an IPv4 address/);
  });
});
