import { Construct } from 'constructs';
import { type Caller, PATHS, PUBLIC_PATH_PREFIXES, PUBLIC_SERVICE, SERVICE_NAMES, SERVICES, type ServiceName } from '../../contracts/index';
import {
  DestinationRule,
  DestinationRuleSpecTrafficPolicyTlsMode,
  Gateway,
  GatewaySpecServersTlsMinProtocolVersion,
  GatewaySpecServersTlsMode,
  VirtualService,
  type VirtualServiceSpecHttp,
} from '../../imports/networking.istio.io';
import { AuthorizationPolicy, AuthorizationPolicySpecAction, PeerAuthentication, PeerAuthenticationSpecMtlsMode } from '../../imports/security.istio.io';
import { MANAGED_BY, PART_OF, TRACK_LABEL } from './labels';
import type { PromptService } from './prompt-service';
import { checkDnsLabel, checkDuration, checkInt, durationSeconds } from './prop-checks';
import { DEFAULT_ROUTE_TIMEOUT_SECONDS } from './shutdown';

export type { Caller } from '../../contracts/index';

/**
 * The request path of DESIGN.md, from the services' contracts: the ingress gateway calls the
 * router, the router calls templates, context and llm. Nothing else calls anything.
 */
export const DEFAULT_CALLERS: Readonly<Record<ServiceName, readonly Caller[]>> = Object.fromEntries(
  SERVICE_NAMES.map((svc) => [svc, SERVICES[svc].callers]),
) as Record<ServiceName, readonly Caller[]>;

/**
 * Path prefixes the public ingress routes to the router (DESIGN.md "The public surface"): the
 * API and the console. Everything else (`/metrics`, `/healthz`, `/readyz`) is reached only
 * inside the mesh: the gateway has no route for it and the router's AuthorizationPolicy refuses
 * the gateway's identity on it. Defined in contracts: the router serves the same prefixes.
 */
export { PUBLIC_PATH_PREFIXES };

/**
 * The ingress gateway the Pulumi program's platform installs (istio `gateway` Helm chart,
 * release `istio-ingressgateway` in namespace `istio-ingress`; the chart names the
 * ServiceAccount after the release and labels the pods `istio: ingressgateway`).
 */
export const DEFAULT_INGRESS_GATEWAY = {
  namespace: 'istio-ingress',
  serviceAccount: 'istio-ingressgateway',
  selector: { istio: 'ingressgateway' },
} as const;

/**
 * The ingress gateway `istioctl install` (the `default` profile) makes, for clusters set up that
 * way: pass it as `ingressGateway`. Its identity is
 * `cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account`.
 */
export const ISTIOCTL_INGRESS_GATEWAY = {
  namespace: 'istio-system',
  serviceAccount: 'istio-ingressgateway-service-account',
  selector: { istio: 'ingressgateway' },
} as const;

/** The Istio ingress gateway the router is exposed through. */
export interface IngressGatewayOptions {
  /**
   * Namespace the ingress gateway runs in.
   * @default 'istio-ingress' (DEFAULT_INGRESS_GATEWAY: what the Pulumi platform installs)
   */
  readonly namespace?: string;
  /**
   * ServiceAccount of the ingress gateway pods (their mTLS identity: the router admits
   * `<trustDomain>/ns/<namespace>/sa/<serviceAccount>` on the public paths only). An
   * `istioctl install` names it `istio-ingressgateway-service-account` in `istio-system`
   * (ISTIOCTL_INGRESS_GATEWAY).
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

/**
 * Outlier detection of every DestinationRule: which failures eject one pod from the others'
 * load balancing. The services answer 502, 503 and 504 themselves when something behind them
 * fails (llm when a provider is down, templates when PostgreSQL is), and every pod sees the
 * same outage: counting those answers would eject healthy pods. So by default only failures of
 * the pod itself count, the gateway errors the client's proxy sees locally (connect failures,
 * resets, timeouts): `splitExternalLocalOriginErrors` on, `consecutiveLocalOriginFailures`.
 */
export interface OutlierDetectionOptions {
  /**
   * Consecutive locally originated failures (connect failure, reset, timeout) that eject an endpoint.
   * @default 5
   */
  readonly consecutiveLocalOriginFailures?: number;
  /**
   * Consecutive 502/503/504 answers that eject an endpoint, 0 for off. Off by default: the
   * services answer these for a failing dependency (a provider outage), not for themselves.
   * @default 0
   */
  readonly consecutiveGatewayErrors?: number;
  /**
   * Consecutive 5xx answers that eject an endpoint, 0 for off (Istio's own default is 5, which
   * ejects healthy llm pods during a provider outage).
   * @default 0
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
   * @default DEFAULT_INGRESS_GATEWAY: namespace 'istio-ingress', service account 'istio-ingressgateway', selector { istio: 'ingressgateway' }
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
   * llm get long ones. Each must be at most the service's `shutdownTimeoutSeconds`, or a
   * rollout would cut requests the route still allows (checked).
   * @default router 300s, llm 300s, templates 10s, context 5s (DEFAULT_ROUTE_TIMEOUT_SECONDS)
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
   * @default 5 consecutive local-origin failures (no status codes), 10s interval, 30s ejection, at most 50% ejected
   */
  readonly outlierDetection?: OutlierDetectionOptions;
  /**
   * Connection pool limits of every DestinationRule.
   * @default 1000 connections, 1000 pending, 2000 concurrent requests, 2s connect timeout
   */
  readonly connectionPool?: ConnectionPoolOptions;
}

const DEFAULT_TIMEOUTS = Object.fromEntries(
  Object.entries(DEFAULT_ROUTE_TIMEOUT_SECONDS).map(([svc, seconds]) => [svc, `${seconds}s`]),
) as Record<ServiceName, string>;

/**
 * The Istio side of the prompt system:
 * - PeerAuthentication `STRICT` for the whole namespace;
 * - per service a DestinationRule (one subset per release track, ISTIO_MUTUAL, outlier detection,
 *   connection pool) and a VirtualService (weights per track, retries, timeout);
 * - per service an AuthorizationPolicy that admits only its callers (by mTLS identity), plus
 *   `GET /metrics` from the monitoring namespace for a meshed Prometheus; the ingress gateway's
 *   identity only on the public paths (PUBLIC_PATH_PREFIXES);
 * - the Gateway for the router and the VirtualService that binds it, routing only the public
 *   paths (anything else gets Istio's 404 at the gateway).
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
  /** The ingress gateway's mTLS identity, e.g. `cluster.local/ns/istio-ingress/sa/istio-ingressgateway`. */
  public readonly ingressGatewayPrincipal: string;
  /** The ingress gateway's namespace, identity and labels, after defaults. */
  public readonly ingressGateway: Required<IngressGatewayOptions>;

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
      namespace: checkDnsLabel(props.ingressGateway?.namespace ?? DEFAULT_INGRESS_GATEWAY.namespace, 'ingressGateway.namespace'),
      serviceAccount: checkDnsLabel(props.ingressGateway?.serviceAccount ?? DEFAULT_INGRESS_GATEWAY.serviceAccount, 'ingressGateway.serviceAccount', 253),
      selector: props.ingressGateway?.selector ?? { ...DEFAULT_INGRESS_GATEWAY.selector },
    };
    this.ingressGatewayPrincipal = `${props.trustDomain ?? 'cluster.local'}/ns/${ingress.namespace}/sa/${ingress.serviceAccount}`;
    this.ingressGateway = { ...ingress, selector: { ...ingress.selector } };
    const monitoringNamespace = checkDnsLabel(props.monitoringNamespace ?? 'monitoring', 'monitoringNamespace');
    const trustDomain = props.trustDomain ?? 'cluster.local';
    const retryAttempts = checkInt(props.retryAttempts, 2, 'retryAttempts', 0, 10);
    const od = props.outlierDetection ?? {};
    const outlierDetection = {
      splitExternalLocalOriginErrors: true,
      consecutiveLocalOriginFailures: checkInt(od.consecutiveLocalOriginFailures, 5, 'outlierDetection.consecutiveLocalOriginFailures', 1, 1000),
      consecutiveGatewayErrors: checkInt(od.consecutiveGatewayErrors, 0, 'outlierDetection.consecutiveGatewayErrors', 0, 1000),
      consecutive5XxErrors: checkInt(od.consecutive5xxErrors, 0, 'outlierDetection.consecutive5xxErrors', 0, 1000),
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

    new PeerAuthentication(this, 'PeerAuthentication', {
      metadata: meta('default'),
      spec: { mtls: { mode: PeerAuthenticationSpecMtlsMode.STRICT } },
    });

    const principal = (caller: Caller): string =>
      caller === 'ingress-gateway'
        ? this.ingressGatewayPrincipal
        : `${trustDomain}/ns/${this.namespace}/sa/${byService.get(caller)!.serviceAccountName}`;

    const timeouts = { ...DEFAULT_TIMEOUTS, ...(props.timeouts ?? {}) };
    for (const [svcName, t] of Object.entries(timeouts)) checkDuration(t, `timeouts.${svcName}`);
    for (const svc of byService.values()) {
      const routeSeconds = durationSeconds(timeouts[svc.service]);
      if (routeSeconds > svc.shutdownTimeoutSeconds) {
        throw new Error(
          `'timeouts.${svc.service}' (${timeouts[svc.service]}) is longer than ${svc.name}'s shutdownTimeoutSeconds (${svc.shutdownTimeoutSeconds}): a rollout would cut requests the route still allows; raise shutdownTimeoutSeconds or lower the timeout`,
        );
      }
    }

    const routeFor = (svc: PromptService) =>
      svc.tracks.map((track) => ({
        destination: { host: svc.host, subset: track, port: { number: svc.port } },
        weight: svc.trafficWeights[track]!,
      }));
    const retries = retryAttempts > 0 ? { attempts: retryAttempts, retryOn: 'connect-failure,refused-stream,unavailable' } : { attempts: 0 };
    const port = (svc: PromptService) => [String(svc.port)];

    for (const svc of byService.values()) {
      new DestinationRule(this, `DestinationRule-${svc.service}`, {
        metadata: meta(svc.name),
        spec: {
          host: svc.host,
          trafficPolicy: {
            tls: { mode: DestinationRuleSpecTrafficPolicyTlsMode.ISTIO_UNDERSCORE_MUTUAL },
            connectionPool,
            outlierDetection,
          },
          subsets: svc.tracks.map((track) => ({ name: track, labels: { [TRACK_LABEL]: track } })),
        },
      });
      new VirtualService(this, `VirtualService-${svc.service}`, {
        metadata: meta(svc.name),
        spec: {
          hosts: [svc.host],
          http: [{ name: 'tracks', route: routeFor(svc), timeout: timeouts[svc.service], retries }],
        },
      });
      const list = callers[svc.service]!;
      const meshCallers = list.filter((c) => c !== 'ingress-gateway');
      const rules = [];
      if (meshCallers.length > 0) {
        rules.push({ from: [{ source: { principals: meshCallers.map(principal) } }], to: [{ operation: { ports: port(svc) } }] });
      }
      if (list.includes('ingress-gateway')) {
        // The internet's way in: the public paths only, never /metrics, /healthz or /readyz.
        rules.push({
          from: [{ source: { principals: [principal('ingress-gateway')] } }],
          to: [{ operation: { ports: port(svc), paths: PUBLIC_PATH_PREFIXES.map((p) => `${p}*`) } }],
        });
      }
      rules.push({
        from: [{ source: { namespaces: [monitoringNamespace] } }],
        to: [{ operation: { methods: ['GET'], paths: [PATHS.metrics], ports: port(svc) } }],
      });
      new AuthorizationPolicy(this, `AuthorizationPolicy-${svc.service}`, {
        metadata: meta(svc.name),
        spec: {
          selector: { matchLabels: { ...svc.selectorLabels } },
          action: AuthorizationPolicySpecAction.ALLOW,
          rules,
        },
      });
    }

    if (props.gateway !== false) {
      const router = byService.get(PUBLIC_SERVICE);
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
      new Gateway(this, 'Gateway', {
        metadata: meta(gatewayName),
        spec: {
          selector: { ...ingress.selector },
          servers:
            tls !== undefined
              ? [
                  {
                    port: { number: 443, name: 'https', protocol: 'HTTPS' },
                    hosts,
                    tls: {
                      mode: GatewaySpecServersTlsMode.SIMPLE,
                      credentialName: tls,
                      minProtocolVersion: GatewaySpecServersTlsMinProtocolVersion.TLSV1_UNDERSCORE_2,
                    },
                  },
                  { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts, tls: { httpsRedirect: true } },
                ]
              : [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts }],
        },
      });
      // One route per public prefix; a request matching none gets the gateway's 404.
      const publicRoutes: VirtualServiceSpecHttp[] = PUBLIC_PATH_PREFIXES.map((prefix) => ({
        name: prefix.replace(/\//g, '') || 'root',
        match: [{ uri: { prefix } }],
        route: routeFor(router),
        timeout: timeouts.router,
        retries,
      }));
      new VirtualService(this, 'VirtualService-gateway', {
        metadata: meta(`${router.name}-gateway`),
        spec: {
          hosts,
          gateways: [`${this.namespace}/${gatewayName}`],
          http: publicRoutes,
        },
      });
    }
  }
}
