import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import {
  CertificateSpecPrivateKeyAlgorithm, CertificateSpecPrivateKeyRotationPolicy, toJson_CertificateSpec, toJson_ClusterIssuerSpec,
} from '../../imports/cert-manager.io';
import { CERT_MANAGER_CHART } from './versions';
import type { Toleration } from './platform';

/** The ACME directories of Let's Encrypt. */
export const ACME_SERVERS = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const;

/** Arguments of {@link GatewayTls}. */
export interface GatewayTlsArgs {
  /** The Kubernetes provider of the target cluster. */
  provider: k8s.Provider;
  /**
   * Makes the IRSA role of cert-manager's service account (normally `EksCluster.serviceAccountRole`).
   */
  serviceAccountRole: (roleName: string, namespace: string, serviceAccount: string, policy: pulumi.Input<string>) => aws.iam.Role;
  /** The AWS region (cert-manager's Route 53 client). */
  region: string;
  /** The Route 53 hosted zone that holds `hosts`: the only zone cert-manager may write to. */
  hostedZoneId: string;
  /** The host names the certificate covers and the gateway serves (`api.example.com`, `*.example.com`). */
  hosts: string[];
  /** The contact address of the ACME account (expiry notices). */
  acmeEmail: string;
  /**
   * `staging` issues untrusted certificates without Let's Encrypt's tight rate limits (try a new
   * stack with it first); `production` issues trusted ones.
   * @default 'production'
   */
  acmeServer?: keyof typeof ACME_SERVERS;
  /**
   * The TLS Secret the certificate is written to; the app's Gateway names it as `credentialName`.
   * @default 'promptmesh-tls'
   */
  credentialName?: string;
  /**
   * The ingress gateway's namespace: Istio reads `credentialName` from there.
   * @default 'istio-ingress'
   */
  gatewayNamespace?: string;
  /**
   * The ingress load balancer's DNS name: a CNAME per host is created in the zone pointing at it.
   * @default undefined (point the hosts at the load balancer yourself)
   */
  loadBalancerHostname?: pulumi.Input<string>;
  /**
   * Tolerations of cert-manager's pods, so they may run on the system node group.
   * @default [{ key: 'CriticalAddonsOnly', operator: 'Exists' }]
   */
  tolerations?: Toleration[];
  /**
   * What must exist first (nodes, add-ons, and the gateway's namespace).
   * @default []
   */
  dependsOn?: pulumi.Resource[];
}

/** cert-manager's namespace and service account (the IRSA role trusts exactly this one). */
export const CERT_MANAGER = { namespace: 'cert-manager', serviceAccount: 'cert-manager', release: 'cert-manager' } as const;

const HOST_PATTERN = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/;

/**
 * The IAM policy cert-manager's DNS-01 solver needs, and no more: TXT records named
 * `_acme-challenge.<host>` in ONE hosted zone, reading the change status, and finding the zone.
 * (`route53:GetChange` has no zone in its ARN, `ListHostedZonesByName` no resource at all.)
 */
export function dns01Policy(hostedZoneId: string, hosts: string[]): Record<string, unknown> {
  const challengeNames = [...new Set(hosts.map((h) => `_acme-challenge.${h.replace(/^\*\./, '')}`))];
  return {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: 'route53:GetChange', Resource: 'arn:aws:route53:::change/*' },
      {
        Effect: 'Allow',
        Action: 'route53:ChangeResourceRecordSets',
        Resource: `arn:aws:route53:::hostedzone/${hostedZoneId}`,
        Condition: {
          'ForAllValues:StringEquals': {
            'route53:ChangeResourceRecordSetsNormalizedRecordNames': challengeNames,
            'route53:ChangeResourceRecordSetsRecordTypes': ['TXT'],
          },
        },
      },
      { Effect: 'Allow', Action: 'route53:ListResourceRecordSets', Resource: `arn:aws:route53:::hostedzone/${hostedZoneId}` },
      { Effect: 'Allow', Action: 'route53:ListHostedZonesByName', Resource: '*' },
    ],
  };
}

/**
 * HTTPS at the ingress gateway: cert-manager (pinned Helm release, its own IRSA role limited to
 * the challenge TXT records of one hosted zone) gets a certificate from Let's Encrypt through an
 * ACME DNS-01 challenge on Route 53 and keeps it renewed in the TLS Secret the app's Gateway
 * names; a CNAME per host points at the load balancer. The Gateway (cdk8s `Mesh`) serves 443
 * with that Secret and redirects port 80 to HTTPS.
 */
export class GatewayTls extends pulumi.ComponentResource {
  /** The cert-manager release (its CRDs must exist before the issuer and certificate). */
  public readonly certManager: k8s.helm.v3.Release;
  /** cert-manager's IRSA role. */
  public readonly role: aws.iam.Role;
  /** The ACME ClusterIssuer. */
  public readonly issuer: k8s.apiextensions.CustomResource;
  /** The gateway's Certificate. */
  public readonly certificate: k8s.apiextensions.CustomResource;
  /** The TLS Secret's name (in the gateway namespace). */
  public readonly credentialName: string;
  /** The DNS records pointing the hosts at the load balancer. */
  public readonly records: aws.route53.Record[];

  constructor(name: string, args: GatewayTlsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('promptmesh:k8s:GatewayTls', name, {}, opts);
    if (!/^Z[A-Z0-9]{1,31}$/.test(args.hostedZoneId ?? '')) throw new Error(`GatewayTls ${name}: 'hostedZoneId' must be a Route 53 hosted zone id like Z0123456789ABCDEFGHIJ (got ${JSON.stringify(args.hostedZoneId)})`);
    if (!Array.isArray(args.hosts) || args.hosts.length === 0) throw new Error(`GatewayTls ${name}: 'hosts' must list at least one host name`);
    args.hosts.forEach((h, i) => {
      if (typeof h !== 'string' || !HOST_PATTERN.test(h)) throw new Error(`GatewayTls ${name}: 'hosts[${i}]' must be a DNS name like api.example.com or *.example.com (got ${JSON.stringify(h)})`);
    });
    if (typeof args.acmeEmail !== 'string' || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(args.acmeEmail)) throw new Error(`GatewayTls ${name}: 'acmeEmail' must be an email address (got ${JSON.stringify(args.acmeEmail)})`);
    const server = args.acmeServer ?? 'production';
    if (!(server in ACME_SERVERS)) throw new Error(`GatewayTls ${name}: 'acmeServer' must be production or staging (got ${JSON.stringify(server)})`);
    this.credentialName = args.credentialName ?? 'promptmesh-tls';
    const gatewayNamespace = args.gatewayNamespace ?? 'istio-ingress';
    const tolerations = args.tolerations ?? [{ key: 'CriticalAddonsOnly', operator: 'Exists' }];
    const k8sOpts = { parent: this, provider: args.provider };

    this.role = args.serviceAccountRole('cert-manager', CERT_MANAGER.namespace, CERT_MANAGER.serviceAccount, JSON.stringify(dns01Policy(args.hostedZoneId, args.hosts)));

    const c = CERT_MANAGER_CHART;
    this.certManager = new k8s.helm.v3.Release(`${name}-cert-manager`, {
      name: CERT_MANAGER.release,
      chart: c.chart,
      version: c.version,
      repositoryOpts: { repo: c.repo },
      namespace: CERT_MANAGER.namespace,
      createNamespace: true,
      values: {
        crds: { enabled: true, keep: true },
        serviceAccount: { create: true, name: CERT_MANAGER.serviceAccount, annotations: { 'eks.amazonaws.com/role-arn': this.role.arn } },
        tolerations,
        webhook: { tolerations },
        cainjector: { tolerations },
        startupapicheck: { tolerations },
        // Ask public resolvers whether the challenge record is visible, not the VPC resolver
        // (which may answer for a private zone of the same name).
        extraArgs: ['--dns01-recursive-nameservers-only', '--dns01-recursive-nameservers=1.1.1.1:53,8.8.8.8:53'],
        prometheus: { enabled: true, servicemonitor: { enabled: false } },
      },
      cleanupOnFail: true,
      timeout: 600,
    }, { ...k8sOpts, dependsOn: args.dependsOn });

    this.issuer = new k8s.apiextensions.CustomResource(`${name}-issuer`, {
      apiVersion: 'cert-manager.io/v1',
      kind: 'ClusterIssuer',
      metadata: { name: `letsencrypt-${server}` },
      // Built through the typed CRD classes in imports/ (cert-manager's schema): a misspelt field fails tsc.
      spec: toJson_ClusterIssuerSpec({
        acme: {
          server: ACME_SERVERS[server],
          email: args.acmeEmail,
          privateKeySecretRef: { name: `letsencrypt-${server}-account` },
          // No credentials here: the solver uses cert-manager's IRSA role (ambient credentials).
          solvers: [{ dns01: { route53: { region: args.region, hostedZoneId: args.hostedZoneId } } }],
        },
      }),
    }, { ...k8sOpts, dependsOn: [this.certManager] });

    this.certificate = new k8s.apiextensions.CustomResource(`${name}-certificate`, {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: this.credentialName, namespace: gatewayNamespace },
      spec: toJson_CertificateSpec({
        secretName: this.credentialName,
        dnsNames: args.hosts,
        issuerRef: { group: 'cert-manager.io', kind: 'ClusterIssuer', name: `letsencrypt-${server}` },
        privateKey: { algorithm: CertificateSpecPrivateKeyAlgorithm.ECDSA, size: 256, rotationPolicy: CertificateSpecPrivateKeyRotationPolicy.ALWAYS },
        duration: '2160h',
        renewBefore: '720h',
      }),
    }, { ...k8sOpts, dependsOn: [this.issuer, ...(args.dependsOn ?? [])] });

    this.records = args.loadBalancerHostname === undefined ? [] : args.hosts.map((host) => new aws.route53.Record(`${name}-${host.replace(/^\*\./, 'wildcard.')}`, {
      zoneId: args.hostedZoneId,
      name: host,
      type: 'CNAME',
      ttl: 300,
      records: [args.loadBalancerHostname!],
    }, { parent: this }));

    this.registerOutputs({ credentialName: this.credentialName });
  }
}
