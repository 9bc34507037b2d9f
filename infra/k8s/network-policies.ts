import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { SERVICE_NAMES, SERVICES, type ServiceName } from '../../contracts/index';
import { checkDnsLabel, checkLabels, MANAGED_BY, PART_OF } from './labels';
import { type Caller, DEFAULT_CALLERS, DEFAULT_INGRESS_GATEWAY, type IngressGatewayOptions } from './mesh';
import { ISTIO_MERGED_METRICS_PORT } from './monitoring';
import type { PromptService } from './prompt-service';

/** An in-namespace datastore (Redis, PostgreSQL) and who may reach it. */
export interface DatastoreAccess {
  /** Short name, used in the policy's name (`allow-<name>`). */
  readonly name: string;
  /** Labels selecting the datastore's pods. */
  readonly podLabels: Record<string, string>;
  /** Ports clients connect to. */
  readonly ports: number[];
  /** The services that connect to it. */
  readonly clients: ServiceName[];
  /**
   * Ports the datastore's pods use among themselves (Redis cluster bus, replication).
   * @default the client `ports` only
   */
  readonly peerPorts?: number[];
  /**
   * Port of its metrics exporter, open to the monitoring namespace (the only port Prometheus
   * may reach on these pods: it is what their ServiceMonitor scrapes).
   * @default none
   */
  readonly metricsPort?: number;
  /**
   * Other pods (by labels) that may connect, such as a cluster bootstrap Job; they also get the
   * matching egress.
   * @default none
   */
  readonly extraClients?: Record<string, string>[];
}

/** A destination outside the cluster (a managed database, ...). */
export interface ExternalEndpoint {
  /** Short name, used in the policy's name. */
  readonly name: string;
  /** CIDRs of the destination. */
  readonly cidrs: string[];
  /** TCP ports. */
  readonly ports: number[];
  /** The services that connect to it. */
  readonly clients: ServiceName[];
}

/** Egress to the LLM providers (HTTPS on the internet). */
export interface ProviderEgress {
  /**
   * Destination CIDRs.
   * @default ['0.0.0.0/0']
   */
  readonly cidrs?: string[];
  /**
   * Ranges carved out of `cidrs`: private networks and link-local (cloud metadata endpoints).
   * @default ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10']
   */
  readonly except?: string[];
  /**
   * TCP ports.
   * @default [443]
   */
  readonly ports?: number[];
  /**
   * The services that call providers.
   * @default the services whose contract says `providerEgress` (llm)
   */
  readonly clients?: ServiceName[];
}

/** Props of {@link NetworkPolicies}. */
export interface NetworkPoliciesProps {
  /** The services whose paths are opened. */
  readonly services: PromptService[];
  /**
   * Namespace the policies apply to.
   * @default 'promptmesh'
   */
  readonly namespace?: string;
  /**
   * Who may call which service (the same map as the Mesh's).
   * @default DEFAULT_CALLERS
   */
  readonly callers?: Partial<Record<ServiceName, readonly Caller[]>>;
  /**
   * In-namespace datastores and their clients.
   * @default none
   */
  readonly datastores?: DatastoreAccess[];
  /**
   * Destinations outside the cluster (e.g. a managed PostgreSQL).
   * @default none
   */
  readonly externalEndpoints?: ExternalEndpoint[];
  /**
   * Egress to LLM providers, or `false` for none.
   * @default HTTPS (443) to public addresses, from llm
   */
  readonly providerEgress?: ProviderEgress | false;
  /**
   * The Istio ingress gateway (namespace and pod labels) that may reach the router.
   * @default DEFAULT_INGRESS_GATEWAY: namespace 'istio-ingress', selector { istio: 'ingressgateway' } (what the Pulumi platform installs, as Mesh assumes)
   */
  readonly ingressGateway?: IngressGatewayOptions;
  /**
   * Namespace of istiod, which every sidecar reaches on 15012 (xDS and certificates over mTLS).
   * Nothing in the namespace calls its other ports: 15017 is the webhook port the API server
   * calls, 15010 plaintext xDS, 15014 its own metrics. Sidecar mode needs no HBONE (15008)
   * between pods either: sidecars connect to each other on the application ports.
   * @default 'istio-system'
   */
  readonly istioNamespace?: string;
  /**
   * Namespace of Prometheus, which may scrape the metrics ports.
   * @default 'monitoring'
   */
  readonly monitoringNamespace?: string;
  /**
   * Namespace and labels of the cluster DNS.
   * @default namespace 'kube-system', labels { 'k8s-app': 'kube-dns' }
   */
  readonly dns?: { readonly namespace?: string; readonly podLabels?: Record<string, string> };
  /**
   * Extra egress for every pod, e.g. an OpenTelemetry collector: `{ namespace, ports }`.
   * @default none
   */
  readonly extraEgress?: { readonly namespace: string; readonly ports: number[] }[];
}

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function checkCidr(value: string, prop: string): string {
  const m = CIDR.exec(value);
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
    throw new Error(`'${prop}' must be an IPv4 CIDR such as "10.0.0.0/16", got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkPorts(ports: number[], prop: string): number[] {
  if (!Array.isArray(ports) || ports.length === 0) throw new Error(`'${prop}' must list at least one port`);
  ports.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`'${prop}[${i}]' must be a port from 1 to 65535, got ${JSON.stringify(p)}`);
  });
  return ports;
}

function checkClients(clients: ServiceName[], prop: string, known: Map<ServiceName, PromptService>): void {
  for (const c of clients) {
    if (!(SERVICE_NAMES as readonly string[]).includes(c)) throw new Error(`'${prop}' has ${JSON.stringify(c)}; allowed: ${SERVICE_NAMES.join(', ')}`);
    if (!known.has(c)) throw new Error(`'${prop}' names ${c}, which is not among 'services'`);
  }
}

/** The istiod port sidecars use: xDS and certificate signing over mTLS. */
export const ISTIOD_XDS_PORT = 15012;

const tcp = (ports: number[]): k8s.NetworkPolicyPort[] => ports.map((port) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) }));
const nsSelector = (namespace: string): k8s.LabelSelector => ({ matchLabels: { 'kubernetes.io/metadata.name': namespace } });
const pods = (labels: Readonly<Record<string, string>>): k8s.NetworkPolicyPeer => ({ podSelector: { matchLabels: { ...labels } } });

/**
 * Zero-trust networking for the namespace: a default deny of all ingress and egress, then one
 * policy per allowed path:
 * - every pod: DNS to kube-dns, istiod (15012: xDS and certificates);
 * - ingress gateway -> router; router -> templates, context, llm (or the `callers` given);
 * - services -> their datastores (and datastore pods among themselves);
 * - Prometheus -> the port each ServiceMonitor scrapes (the Istio agent's merged metrics on
 *   15020, or the app port with `metricsScraping: 'app'`; the exporters of the datastores);
 * - llm -> providers on 443 (public addresses only).
 */
export class NetworkPolicies extends Construct {
  /** Names of the NetworkPolicy objects made. */
  public readonly policyNames: readonly string[];

  constructor(scope: Construct, id: string, props: NetworkPoliciesProps) {
    super(scope, id);
    const namespace = checkDnsLabel(props.namespace ?? 'promptmesh', 'namespace');
    const byService = new Map<ServiceName, PromptService>();
    for (const svc of props.services ?? []) {
      if (byService.has(svc.service)) throw new Error(`'services' has the ${svc.service} service twice`);
      byService.set(svc.service, svc);
    }
    if (byService.size === 0) throw new Error(`'services' must list at least one PromptService`);
    const ingressNamespace = checkDnsLabel(props.ingressGateway?.namespace ?? DEFAULT_INGRESS_GATEWAY.namespace, 'ingressGateway.namespace');
    const ingressSelector = checkLabels(props.ingressGateway?.selector ?? { ...DEFAULT_INGRESS_GATEWAY.selector }, 'ingressGateway.selector');
    const istioNamespace = checkDnsLabel(props.istioNamespace ?? 'istio-system', 'istioNamespace');
    const monitoringNamespace = checkDnsLabel(props.monitoringNamespace ?? 'monitoring', 'monitoringNamespace');
    const dnsNamespace = checkDnsLabel(props.dns?.namespace ?? 'kube-system', 'dns.namespace');
    const dnsLabels = checkLabels(props.dns?.podLabels ?? { 'k8s-app': 'kube-dns' }, 'dns.podLabels');

    const callers: Record<string, readonly Caller[]> = {};
    for (const name of byService.keys()) {
      const list = props.callers?.[name] ?? DEFAULT_CALLERS[name];
      for (const c of list) {
        if (c !== 'ingress-gateway') checkClients([c], `callers.${name}`, byService);
      }
      callers[name] = list;
    }

    const names: string[] = [];
    const labels = { 'app.kubernetes.io/part-of': PART_OF, 'app.kubernetes.io/managed-by': MANAGED_BY };
    const policy = (name: string, spec: k8s.NetworkPolicySpec) => {
      if (names.includes(name)) throw new Error(`two NetworkPolicies are named ${name}; give the datastores/endpoints distinct names`);
      names.push(name);
      new k8s.KubeNetworkPolicy(this, name, { metadata: { name, namespace, labels }, spec });
    };

    policy('default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    policy('allow-dns', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: nsSelector(dnsNamespace), podSelector: { matchLabels: dnsLabels } }],
          ports: [
            { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
            { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
          ],
        },
      ],
    });
    policy('allow-istio-control-plane', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: nsSelector(istioNamespace), podSelector: { matchLabels: { app: 'istiod' } } }],
          ports: tcp([ISTIOD_XDS_PORT]),
        },
      ],
    });
    for (const [i, extra] of (props.extraEgress ?? []).entries()) {
      policy(`allow-egress-${checkDnsLabel(extra.namespace, `extraEgress[${i}].namespace`)}`, {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: nsSelector(extra.namespace) }], ports: tcp(checkPorts(extra.ports, `extraEgress[${i}].ports`)) }],
      });
    }

    // Datastores and external endpoints, checked before the service policies use them.
    const datastores = props.datastores ?? [];
    datastores.forEach((d, i) => {
      checkDnsLabel(d.name, `datastores[${i}].name`, 40);
      checkLabels(d.podLabels, `datastores[${i}].podLabels`);
      if (Object.keys(d.podLabels ?? {}).length === 0) throw new Error(`'datastores[${i}].podLabels' must not be empty (it would select every pod)`);
      checkPorts(d.ports, `datastores[${i}].ports`);
      if (d.peerPorts) checkPorts(d.peerPorts, `datastores[${i}].peerPorts`);
      if (d.metricsPort !== undefined) checkPorts([d.metricsPort], `datastores[${i}].metricsPort`);
      checkClients(d.clients, `datastores[${i}].clients`, byService);
    });
    const externals = props.externalEndpoints ?? [];
    externals.forEach((e, i) => {
      checkDnsLabel(e.name, `externalEndpoints[${i}].name`, 40);
      if (!Array.isArray(e.cidrs) || e.cidrs.length === 0) throw new Error(`'externalEndpoints[${i}].cidrs' must list at least one CIDR`);
      e.cidrs.forEach((c, j) => checkCidr(c, `externalEndpoints[${i}].cidrs[${j}]`));
      checkPorts(e.ports, `externalEndpoints[${i}].ports`);
      checkClients(e.clients, `externalEndpoints[${i}].clients`, byService);
    });
    let provider: { cidrs: string[]; except: string[]; ports: number[]; clients: ServiceName[] } | undefined;
    if (props.providerEgress !== false) {
      const p = props.providerEgress ?? {};
      provider = {
        cidrs: (p.cidrs ?? ['0.0.0.0/0']).map((c, j) => checkCidr(c, `providerEgress.cidrs[${j}]`)),
        except: (p.except ?? ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10']).map((c, j) =>
          checkCidr(c, `providerEgress.except[${j}]`),
        ),
        ports: checkPorts(p.ports ?? [443], 'providerEgress.ports'),
        clients: p.clients ?? SERVICE_NAMES.filter((svc) => SERVICES[svc].providerEgress),
      };
      if (p.clients) checkClients(p.clients, 'providerEgress.clients', byService);
    }

    for (const svc of byService.values()) {
      const from: k8s.NetworkPolicyPeer[] = callers[svc.service]!.map((c) =>
        c === 'ingress-gateway'
          ? { namespaceSelector: nsSelector(ingressNamespace), podSelector: { matchLabels: ingressSelector } }
          : pods(byService.get(c)!.selectorLabels),
      );
      const ingress: k8s.NetworkPolicyIngressRule[] = [];
      if (from.length > 0) ingress.push({ from, ports: tcp([svc.port]) });
      // Prometheus reaches the one port its ServiceMonitor scrapes; /metrics on the app port stays closed
      // unless the service is scraped there.
      ingress.push({
        from: [{ namespaceSelector: nsSelector(monitoringNamespace) }],
        ports: tcp([svc.metricsScraping === 'app' ? svc.port : ISTIO_MERGED_METRICS_PORT]),
      });

      const egress: k8s.NetworkPolicyEgressRule[] = [];
      const callees = [...byService.values()].filter((other) => callers[other.service]!.includes(svc.service));
      if (callees.length > 0) {
        egress.push({ to: callees.map((o) => pods(o.selectorLabels)), ports: tcp([svc.port]) });
      }
      for (const d of datastores.filter((d) => d.clients.includes(svc.service))) {
        egress.push({ to: [pods(d.podLabels)], ports: tcp(d.ports) });
      }
      for (const e of externals.filter((e) => e.clients.includes(svc.service))) {
        egress.push({ to: e.cidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: tcp(e.ports) });
      }
      if (provider && provider.clients.includes(svc.service)) {
        egress.push({
          to: provider.cidrs.map((cidr) => ({
            ipBlock: { cidr, except: provider!.except.filter((x) => cidrContains(cidr, x)) },
          })),
          ports: tcp(provider.ports),
        });
      }
      policy(`allow-${svc.name}`, {
        podSelector: { matchLabels: { ...svc.selectorLabels } },
        policyTypes: egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'],
        ingress,
        ...(egress.length > 0 ? { egress } : {}),
      });
    }

    for (const d of datastores) {
      const peerPorts = d.peerPorts ?? d.ports;
      const self = pods(d.podLabels);
      const clients = [...d.clients.map((c) => pods(byService.get(c)!.selectorLabels)), ...(d.extraClients ?? []).map((l) => pods(l))];
      const ingress: k8s.NetworkPolicyIngressRule[] = [
        { from: clients, ports: tcp(d.ports) },
        { from: [self], ports: tcp([...new Set([...d.ports, ...peerPorts])]) },
      ];
      if (d.metricsPort !== undefined) {
        ingress.push({ from: [{ namespaceSelector: nsSelector(monitoringNamespace) }], ports: tcp([d.metricsPort]) });
      }
      policy(`allow-${d.name}`, {
        podSelector: { matchLabels: { ...d.podLabels } },
        policyTypes: ['Ingress', 'Egress'],
        ingress,
        egress: [{ to: [self], ports: tcp([...new Set([...d.ports, ...peerPorts])]) }],
      });
      (d.extraClients ?? []).forEach((l, i) => {
        policy(`allow-${d.name}-client-${i}`, {
          podSelector: { matchLabels: { ...l } },
          policyTypes: ['Egress'],
          egress: [{ to: [self], ports: tcp(d.ports) }],
        });
      });
    }
    this.policyNames = names;
  }
}

function toInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** Whether CIDR `inner` lies within CIDR `outer` (NetworkPolicy rejects `except` outside `cidr`). */
function cidrContains(outer: string, inner: string): boolean {
  const [oIp, oBits] = outer.split('/') as [string, string];
  const [iIp, iBits] = inner.split('/') as [string, string];
  if (Number(iBits) < Number(oBits)) return false;
  const size = 2 ** (32 - Number(oBits));
  const start = Math.floor(toInt(oIp) / size) * size;
  const ip = toInt(iIp);
  return ip >= start && ip < start + size && !(Number(iBits) === Number(oBits) && ip === start);
}
