/**
 * An evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), written from the
 * API reference and the concepts page, so the synthesized policies can be checked flow by flow
 * without a cluster:
 *
 * - A policy applies to the pods its `podSelector` selects in its own namespace (`{}`: all).
 * - A pod selected by no policy of a type (Ingress, Egress) is not isolated in that direction.
 *   `policyTypes` defaults to Ingress, plus Egress when the policy has egress rules.
 * - A pod isolated in a direction admits a connection when some rule of some policy selecting it
 *   admits it (the union); a connection between two pods needs the source's egress and the
 *   destination's ingress. Replies of an admitted connection always pass.
 * - A rule admits when its ports admit (absent or empty: every port) and its peers admit (absent
 *   or empty `from`/`to`: every peer). A peer is a `podSelector` (pods of the policy's namespace),
 *   a `namespaceSelector` (every pod of the selected namespaces), both in one peer (AND: those
 *   pods in those namespaces), or an `ipBlock` (cidr minus `except`).
 * - A port is a number, a range (`port`..`endPort`) or a name, resolved against the destination
 *   pod's container ports (a name matches nothing outside the cluster); `protocol` defaults to TCP.
 * - Connections from a pod's own node (kubelet probes) are always admitted.
 *
 * Whether an `ipBlock` also matches pod IPs is left to the implementation by Kubernetes; with
 * `ipBlockMatchesPods` (default true: vpc-cni and Calico match pod IPs) the evaluator takes the
 * stricter reading for denials, and a matrix can be run both ways.
 */

/** A label selector (`matchLabels` AND every `matchExpressions` entry). Empty selects everything. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** `NetworkPolicyPeer`. */
export interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

/** `NetworkPolicyPort`. */
export interface PolicyPort {
  protocol?: Protocol;
  port?: number | string;
  endPort?: number;
}

/** `NetworkPolicy`, as synthesized. */
export interface NetworkPolicy {
  metadata: { name: string; namespace?: string };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: ('Ingress' | 'Egress')[];
    ingress?: { from?: PolicyPeer[]; ports?: PolicyPort[] }[];
    egress?: { to?: PolicyPeer[]; ports?: PolicyPort[] }[];
  };
}

/** Transport protocol of a flow. */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

/** A pod: where it runs, its labels, its address and its container ports. */
export interface Pod {
  kind: 'pod';
  /** A readable name for messages. */
  name: string;
  namespace: string;
  labels: Record<string, string>;
  ip: string;
  ports: { name?: string; containerPort: number; protocol?: Protocol }[];
}

/** An address outside the pod network (the internet, a managed database, the metadata service). */
export interface External {
  kind: 'external';
  name: string;
  ip: string;
}

/** The node a pod runs on (kubelet probes). */
export interface Host {
  kind: 'host';
  name: string;
}

/** Either end of a flow. */
export type Endpoint = Pod | External | Host;

/** What the evaluator knows about the cluster. */
export interface ClusterModel {
  /** Namespace labels by name; `kubernetes.io/metadata.name` is added as the API server does. */
  namespaces: Record<string, Record<string, string>>;
  policies: NetworkPolicy[];
  /**
   * Whether `ipBlock` peers match pod IPs too.
   * @default true
   */
  ipBlockMatchesPods?: boolean;
}

/** The verdict on one flow, with the policies that decided each side. */
export interface Verdict {
  allowed: boolean;
  /** Egress of the source: `unrestricted` (no policy isolates it), or allowed/denied with the admitting policies. */
  egress: { isolated: boolean; allowed: boolean; by: string[] };
  ingress: { isolated: boolean; allowed: boolean; by: string[] };
}

export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new Error(`unknown selector operator ${JSON.stringify((e as { operator: string }).operator)}`);
    }
  }
  return true;
}

function ipv4(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return parts.reduce((a, o) => a * 256 + o, 0);
}

/** Whether `ip` lies in `cidr` (IPv4). */
export function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (base === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - bits);
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(base) / size);
}

function namespaceLabels(model: ClusterModel, ns: string): Record<string, string> {
  return { ...(model.namespaces[ns] ?? {}), 'kubernetes.io/metadata.name': ns };
}

/** The policy types a policy has, with the API server's default. */
export function policyTypesOf(policy: NetworkPolicy): ('Ingress' | 'Egress')[] {
  if (policy.spec.policyTypes && policy.spec.policyTypes.length > 0) return policy.spec.policyTypes;
  return (policy.spec.egress ?? []).length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

function peerMatches(model: ClusterModel, peer: PolicyPeer, policyNamespace: string, other: Endpoint): boolean {
  if (!peer.ipBlock && !peer.podSelector && !peer.namespaceSelector) {
    throw new Error('a NetworkPolicyPeer must set podSelector, namespaceSelector or ipBlock');
  }
  if (peer.ipBlock) {
    if (peer.podSelector || peer.namespaceSelector) throw new Error('a NetworkPolicyPeer with ipBlock may set nothing else');
    if (other.kind === 'host') return false;
    if (other.kind === 'pod' && model.ipBlockMatchesPods === false) return false;
    return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((x) => inCidr(other.ip, x));
  }
  if (other.kind !== 'pod') return false;
  const nsOk = peer.namespaceSelector
    ? selectorMatches(peer.namespaceSelector, namespaceLabels(model, other.namespace))
    : other.namespace === policyNamespace;
  const podOk = peer.podSelector ? selectorMatches(peer.podSelector, other.labels) : true;
  return nsOk && podOk;
}

function portMatches(ports: PolicyPort[] | undefined, port: number, protocol: Protocol, destination: Endpoint): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'string') {
      if (p.endPort !== undefined) throw new Error('endPort needs a numeric port');
      if (destination.kind !== 'pod') return false;
      return destination.ports.some((c) => c.name === p.port && (c.protocol ?? 'TCP') === protocol && c.containerPort === port);
    }
    return p.endPort === undefined ? p.port === port : p.port <= port && port <= p.endPort;
  });
}

function side(
  model: ClusterModel,
  type: 'Ingress' | 'Egress',
  pod: Endpoint,
  other: Endpoint,
  port: number,
  protocol: Protocol,
  destination: Endpoint,
): { isolated: boolean; allowed: boolean; by: string[] } {
  if (pod.kind !== 'pod') return { isolated: false, allowed: true, by: [] };
  const selecting = model.policies.filter(
    (p) => (p.metadata.namespace ?? 'default') === pod.namespace && selectorMatches(p.spec.podSelector, pod.labels) && policyTypesOf(p).includes(type),
  );
  if (selecting.length === 0) return { isolated: false, allowed: true, by: [] };
  // The node a pod runs on always reaches it (kubelet probes).
  if (type === 'Ingress' && other.kind === 'host') return { isolated: true, allowed: true, by: ['(node)'] };
  const by = selecting
    .filter((p) => {
      const rules = type === 'Ingress' ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })) : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
      return rules.some(
        (r) =>
          portMatches(r.ports, port, protocol, destination) &&
          (!r.peers || r.peers.length === 0 || r.peers.some((peer) => peerMatches(model, peer, pod.namespace, other))),
      );
    })
    .map((p) => p.metadata.name);
  return { isolated: true, allowed: by.length > 0, by };
}

/** Whether a new connection from `source` to `destination:port` is admitted. */
export function evaluate(model: ClusterModel, source: Endpoint, destination: Endpoint, port: number, protocol: Protocol = 'TCP'): Verdict {
  const egress = side(model, 'Egress', source, destination, port, protocol, destination);
  const ingress = side(model, 'Ingress', destination, source, port, protocol, destination);
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}

/** One line about a verdict, for assertion messages. */
export function explain(source: Endpoint, destination: Endpoint, port: number, protocol: Protocol, v: Verdict): string {
  const s = (x: Verdict['egress']) => (!x.isolated ? 'not isolated' : x.allowed ? `allowed by ${x.by.join(', ')}` : 'denied');
  return `${source.name} -> ${destination.name}:${port}/${protocol}: egress ${s(v.egress)}; ingress ${s(v.ingress)}`;
}

const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob'];

/**
 * The pods of synthesized workloads (one per workload: every replica has the same labels and
 * ports), each given an address from `podCidr` in order.
 */
export function podsOf(objects: any[], podCidr = '10.0.0.0/16'): Pod[] {
  const [base] = podCidr.split('/');
  let next = ipv4(base!) + 10;
  const ip = () => {
    const n = next++;
    return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
  };
  return objects
    .filter((o) => WORKLOAD_KINDS.includes(o.kind))
    .map((o) => {
      const template = o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template : o.spec.template;
      const containers = [...(template.spec.initContainers ?? []), ...template.spec.containers];
      return {
        kind: 'pod' as const,
        name: `${o.kind}/${o.metadata.name}`,
        namespace: o.metadata.namespace ?? 'default',
        labels: { ...(template.metadata?.labels ?? {}) },
        ip: ip(),
        ports: containers.flatMap((c: any) => (c.ports ?? []).map((p: any) => ({ name: p.name, containerPort: p.containerPort, protocol: p.protocol ?? 'TCP' }))),
      };
    });
}

/** The model of synthesized objects: their NetworkPolicies and Namespaces, plus `extraNamespaces`. */
export function modelOf(objects: any[], extraNamespaces: Record<string, Record<string, string>> = {}, ipBlockMatchesPods = true): ClusterModel {
  const namespaces: Record<string, Record<string, string>> = { ...extraNamespaces };
  for (const ns of objects.filter((o) => o.kind === 'Namespace')) namespaces[ns.metadata.name] = { ...(ns.metadata.labels ?? {}) };
  return { namespaces, policies: objects.filter((o) => o.kind === 'NetworkPolicy'), ipBlockMatchesPods };
}
