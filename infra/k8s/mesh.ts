import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { PATHS, SERVICE_NAMES, type ServiceName } from '../../contracts/index';
import { checkDnsLabel, MANAGED_BY, PART_OF, TRACK_LABEL } from './labels';
import type { PromptService } from './prompt-service';

/** Who may call a service: another service, or the Istio ingress gateway. */
export type Caller = ServiceName | 'ingress-gateway';

/**
 * The request path of DESIGN.md: the ingress gateway calls the router, the router calls
 * templates, context and llm. Nothing else calls anything.
 */
export const DEFAULT_CALLERS: Readonly<Record<ServiceName, readonly Caller[]>> = {
  router: ['ingress-gateway'],
  templates: ['router'],
  context: ['router'],
  llm: ['router'],
};

/** The Istio ingress gateway the router is exposed through. */
export interface IngressGatewayOptions {
  /**
   * Namespace the ingress gateway runs in.
   * @default 'istio-system'
   */
  readonly namespace?: string;
  /**
   * ServiceAccount of the ingress gateway pods (their mTLS identity).
   * @default 'istio-ingressgateway'
   */
  readonly serviceAccount?: string;
  /**
   * Labels of the ingress gateway pods (the Gateway's selector, and the NetworkPolicy's).
   * @default { istio: 'ingressgateway' }
   */
  readonly selector?: Record<string, string>;
}

/** The public entry: an Istio Gateway and a VirtualService that routes it to the router. */
export interface GatewayOptions {
  /**
   * Host names the gateway serves.
   * @default ['*']
   */
  readonly hosts?: string[];
  /**
   * Name of the TLS Secret (in the ingress gateway's namespace) for HTTPS on 443. When set,
   * port 80 only redirects to HTTPS.
   * @default none: plain HTTP on port 80
   */
  readonly tlsCredentialName?: string;
  /**
   * Name of the Gateway object.
   * @default 'promptmesh'
   */
  readonly name?: string;
}

/** Outlier detection of every DestinationRule. */
export interface OutlierDetectionOptions {
  /**
   * Consecutive 5xx answers that eject an endpoint.
   * @default 5
   */
  readonly consecutive5xxErrors?: number;
  /**
   * How often endpoints are evaluated (Istio duration).
   * @default '10s'
   */
  readonly interval?: string;
  /**
   * Minimum ejection time (Istio duration).
   * @default '30s'
   */
  readonly baseEjectionTime?: string;
  /**
   * Most endpoints that may be ejected at once, in percent.
   * @default 50
   */
  readonly maxEjectionPercent?: number;
}

/** Connection pool limits of every DestinationRule. */
export interface ConnectionPoolOptions {
  /**
   * TCP connections per destination host from one client proxy.
   * @default 1000
   */
  readonly maxConnections?: number;
  /**
   * Requests that may wait for a connection.
   * @default 1000
   */
  readonly http1MaxPendingRequests?: number;
  /**
   * Concurrent requests to the destination.
   * @default 2000
   */
  readonly http2MaxRequests?: number;
  /**
   * TCP connect timeout (Istio duration).
   * @default '2s'
   */
  readonly connectTimeout?: string;
}

/** Props of {@link Mesh}. */
export interface MeshProps {
  /** The services to route and authorize. The router must be among them when `gateway` is on. */
  readonly services: PromptService[];
  /**
   * Namespace of the mesh objects (PeerAuthentication applies to it as a whole).
   * @default 'promptmesh'
   */
  readonly namespace?: string;
  /**
   * Who may call which service; every caller that is a service must be among `services`.
   * @default DEFAULT_CALLERS (ingress gateway -> router -> templates, context, llm)
   */
  readonly callers?: Partial<Record<ServiceName, readonly Caller[]>>;
  /**
   * The public Gateway for the router, or `false` for none.
   * @default { hosts: ['*'] } (HTTP on 80)
   */
  readonly gateway?: GatewayOptions | false;
  /**
   * The Istio ingress gateway's namespace, identity and labels.
   * @default namespace 'istio-system', service account 'istio-ingressgateway', selector { istio: 'ingressgateway' }
   */
  readonly ingressGateway?: IngressGatewayOptions;
  /**
   * Namespace Prometheus runs in; a meshed Prometheus there may GET `/metrics`.
   * @default 'monitoring'
   */
  readonly monitoringNamespace?: string;
  /**
   * The mesh trust domain, the first part of every SPIFFE principal.
   * @default 'cluster.local'
   */
  readonly trustDomain?: string;
  /**
   * Route timeout per service (Istio duration). Completions stream for minutes, so router and
   * llm get long ones.
   * @default router 300s, llm 300s, templates 10s, context 5s
   */
  readonly timeouts?: Partial<Record<ServiceName, string>>;
  /**
   * Retry attempts per request, only where the request never reached the app
   * (connect-failure, refused-stream, unavailable), so a completion is never paid for twice.
   * @default 2
   */
  readonly retryAttempts?: number;
  /**
   * Outlier detection of every DestinationRule.
   * @default 5 consecutive 5xx, 10s interval, 30s ejection, at most 50% ejected
   */
  readonly outlierDetection?: OutlierDetectionOptions;
  /**
   * Connection pool limits of every DestinationRule.
   * @default 1000 connections, 1000 pending, 2000 concurrent requests, 2s connect timeout
   */
  readonly connectionPool?: ConnectionPoolOptions;
}

const DEFAULT_TIMEOUTS: Record<ServiceName, string> = { router: '300s', llm: '300s', templates: '10s', context: '5s' };
const DURATION = /^\d+(\.\d+)?(ms|s|m|h)$/;

function checkDuration(value: string, prop: string): string {
  if (typeof value !== 'string' || !DURATION.test(value)) {
    throw new Error(`'${prop}' must be a duration such as "10s" or "500ms", got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkInt(value: number | undefined, fallback: number, prop: string, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new Error(`'${prop}' must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return v;
}

/**
 * The Istio side of the prompt system:
 * - PeerAuthentication `STRICT` for the whole namespace;
 * - per service a DestinationRule (one subset per release track, ISTIO_MUTUAL, outlier detection,
 *   connection pool) and a VirtualService (weights per track, retries, timeout);
 * - per service an AuthorizationPolicy that admits only its callers (by mTLS identity), plus
 *   `GET /metrics` from the monitoring namespace for a meshed Prometheus;
 * - the Gateway for the router and the VirtualService that binds it.
 *
 * Metrics scraping under STRICT mTLS goes through the Istio agent's merged metrics on port
 * 15020 (see `PromptService` `metricsScraping`), which the sidecar does not intercept, so no
 * PERMISSIVE port is needed.
 */
export class Mesh extends Construct {
  /** Namespace of the mesh objects. */
  public readonly namespace: string;
  /** The callers of each service, after defaults. */
  public readonly callers: Readonly<Record<string, readonly Caller[]>>;
  /** Name of the Gateway, or undefined without one. */
  public readonly gatewayName?: string;

  constructor(scope: Construct, id: string, props: MeshProps) {
    super(scope, id);
    this.namespace = checkDnsLabel(props.namespace ?? 'promptmesh', 'namespace');
    const services = props.services;
    if (!Array.isArray(services) || services.length === 0) {
      throw new Error(`'services' must list at least one PromptService`);
    }
    const byService = new Map<ServiceName, PromptService>();
    for (const svc of services) {
      if (byService.has(svc.service)) throw new Error(`'services' has the ${svc.service} service twice`);
      if (svc.namespace !== this.namespace) {
        throw new Error(`'services': ${svc.name} is in namespace ${svc.namespace}, the mesh in ${this.namespace}; they must match`);
      }
      byService.set(svc.service, svc);
    }
    const ingress = {
      namespace: checkDnsLabel(props.ingressGateway?.namespace ?? 'istio-system', 'ingressGateway.namespace'),
      serviceAccount: props.ingressGateway?.serviceAccount ?? 'istio-ingressgateway',
      selector: props.ingressGateway?.selector ?? { istio: 'ingressgateway' },
    };
    const monitoringNamespace = checkDnsLabel(props.monitoringNamespace ?? 'monitoring', 'monitoringNamespace');
    const trustDomain = props.trustDomain ?? 'cluster.local';
    const retryAttempts = checkInt(props.retryAttempts, 2, 'retryAttempts', 0, 10);
    const od = props.outlierDetection ?? {};
    const outlierDetection = {
      consecutive5xxErrors: checkInt(od.consecutive5xxErrors, 5, 'outlierDetection.consecutive5xxErrors', 1, 1000),
      interval: checkDuration(od.interval ?? '10s', 'outlierDetection.interval'),
      baseEjectionTime: checkDuration(od.baseEjectionTime ?? '30s', 'outlierDetection.baseEjectionTime'),
      maxEjectionPercent: checkInt(od.maxEjectionPercent, 50, 'outlierDetection.maxEjectionPercent', 0, 100),
    };
    const cp = props.connectionPool ?? {};
    const connectionPool = {
      tcp: {
        maxConnections: checkInt(cp.maxConnections, 1000, 'connectionPool.maxConnections', 1, 1_000_000),
        connectTimeout: checkDuration(cp.connectTimeout ?? '2s', 'connectionPool.connectTimeout'),
      },
      http: {
        http1MaxPendingRequests: checkInt(cp.http1MaxPendingRequests, 1000, 'connectionPool.http1MaxPendingRequests', 1, 1_000_000),
        http2MaxRequests: checkInt(cp.http2MaxRequests, 2000, 'connectionPool.http2MaxRequests', 1, 1_000_000),
      },
    };

    const callers: Record<string, readonly Caller[]> = {};
    for (const [svcName, svc] of byService) {
      const list = props.callers?.[svcName] ?? DEFAULT_CALLERS[svcName];
      for (const caller of list) {
        if (caller !== 'ingress-gateway' && !(SERVICE_NAMES as readonly string[]).includes(caller)) {
          throw new Error(`'callers.${svcName}' has ${JSON.stringify(caller)}; allowed: ingress-gateway, ${SERVICE_NAMES.join(', ')}`);
        }
        if (caller !== 'ingress-gateway' && !byService.has(caller)) {
          throw new Error(`'callers.${svcName}' names ${caller}, which is not among 'services'`);
        }
      }
      callers[svc.service] = list;
    }
    this.callers = callers;
    for (const key of Object.keys(props.callers ?? {})) {
      if (!byService.has(key as ServiceName)) throw new Error(`'callers.${key}' names a service that is not among 'services'`);
    }

    const labels = { 'app.kubernetes.io/part-of': PART_OF, 'app.kubernetes.io/managed-by': MANAGED_BY };
    const meta = (name: string) => ({ name, namespace: this.namespace, labels });

    new ApiObject(this, 'PeerAuthentication', {
      apiVersion: 'security.istio.io/v1beta1',
      kind: 'PeerAuthentication',
      metadata: meta('default'),
      spec: { mtls: { mode: 'STRICT' } },
    });

    const principal = (caller: Caller): string =>
      caller === 'ingress-gateway'
        ? `${trustDomain}/ns/${ingress.namespace}/sa/${ingress.serviceAccount}`
        : `${trustDomain}/ns/${this.namespace}/sa/${byService.get(caller)!.serviceAccountName}`;

    const timeouts = { ...DEFAULT_TIMEOUTS, ...(props.timeouts ?? {}) };
    for (const [svcName, t] of Object.entries(timeouts)) checkDuration(t, `timeouts.${svcName}`);

    const routeFor = (svc: PromptService) =>
      svc.tracks.map((track) => ({
        destination: { host: svc.host, subset: track, port: { number: svc.port } },
        weight: svc.trafficWeights[track]!,
      }));
    const retries = retryAttempts > 0 ? { attempts: retryAttempts, retryOn: 'connect-failure,refused-stream,unavailable' } : { attempts: 0 };

    for (const svc of byService.values()) {
      new ApiObject(this, `DestinationRule-${svc.service}`, {
        apiVersion: 'networking.istio.io/v1beta1',
        kind: 'DestinationRule',
        metadata: meta(svc.name),
        spec: {
          host: svc.host,
          trafficPolicy: {
            tls: { mode: 'ISTIO_MUTUAL' },
            connectionPool,
            outlierDetection,
          },
          subsets: svc.tracks.map((track) => ({ name: track, labels: { [TRACK_LABEL]: track } })),
        },
      });
      new ApiObject(this, `VirtualService-${svc.service}`, {
        apiVersion: 'networking.istio.io/v1beta1',
        kind: 'VirtualService',
        metadata: meta(svc.name),
        spec: {
          hosts: [svc.host],
          http: [{ name: 'tracks', route: routeFor(svc), timeout: timeouts[svc.service], retries }],
        },
      });
      new ApiObject(this, `AuthorizationPolicy-${svc.service}`, {
        apiVersion: 'security.istio.io/v1beta1',
        kind: 'AuthorizationPolicy',
        metadata: meta(svc.name),
        spec: {
          selector: { matchLabels: { ...svc.selectorLabels } },
          action: 'ALLOW',
          rules: [
            {
              from: [{ source: { principals: callers[svc.service]!.map(principal) } }],
              to: [{ operation: { ports: [String(svc.port)] } }],
            },
            {
              from: [{ source: { namespaces: [monitoringNamespace] } }],
              to: [{ operation: { methods: ['GET'], paths: [PATHS.metrics], ports: [String(svc.port)] } }],
            },
          ],
        },
      });
    }

    if (props.gateway !== false) {
      const router = byService.get('router');
      if (!router) throw new Error(`'gateway' needs the router among 'services' (or set 'gateway' to false)`);
      const gw = props.gateway ?? {};
      const gatewayName = checkDnsLabel(gw.name ?? 'promptmesh', 'gateway.name');
      const hosts = gw.hosts ?? ['*'];
      if (!Array.isArray(hosts) || hosts.length === 0) throw new Error(`'gateway.hosts' must list at least one host`);
      for (const [i, h] of hosts.entries()) {
        if (typeof h !== 'string' || !/^(\*|(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$/.test(h)) {
          throw new Error(`'gateway.hosts[${i}]' must be a host name such as "api.example.com", "*.example.com" or "*", got ${JSON.stringify(h)}`);
        }
      }
      const tls = gw.tlsCredentialName;
      if (tls !== undefined) checkDnsLabel(tls, 'gateway.tlsCredentialName', 253);
      this.gatewayName = gatewayName;
      new ApiObject(this, 'Gateway', {
        apiVersion: 'networking.istio.io/v1beta1',
        kind: 'Gateway',
        metadata: meta(gatewayName),
        spec: {
          selector: { ...ingress.selector },
          servers:
            tls !== undefined
              ? [
                  {
                    port: { number: 443, name: 'https', protocol: 'HTTPS' },
                    hosts,
                    tls: { mode: 'SIMPLE', credentialName: tls, minProtocolVersion: 'TLSV1_2' },
                  },
                  { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts, tls: { httpsRedirect: true } },
                ]
              : [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts }],
        },
      });
      new ApiObject(this, 'VirtualService-gateway', {
        apiVersion: 'networking.istio.io/v1beta1',
        kind: 'VirtualService',
        metadata: meta(`${router.name}-gateway`),
        spec: {
          hosts,
          gateways: [`${this.namespace}/${gatewayName}`],
          http: [{ name: 'tracks', route: routeFor(router), timeout: timeouts.router, retries }],
        },
      });
    }
  }
}
