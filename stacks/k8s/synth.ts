/** Synthesis of the PromptSystem chart into manifest files, shared by the CLI and the tests. */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'cdk8s';
import { stringify } from 'yaml';
import { SERVICE_NAMES } from '../../contracts/index';
import { PromptSystem, type ServiceImages } from '../../infra/k8s/index';
import { type EnvironmentName, ENVIRONMENTS, defaultImage, environmentProps } from './environments';

/** What to synthesize. */
export interface SynthOptions {
  /** The environment. */
  env: EnvironmentName;
  /** One image for all services, or per service. */
  images: string | ServiceImages;
}

/** Builds the chart for an environment and returns its objects, in apply order. */
export function synthesize(options: SynthOptions): any[] {
  const app = new App({ outdir: 'unused' });
  const chart = new PromptSystem(app, 'promptmesh', environmentProps(options.env, options.images));
  return sortForApply(chart.toJson());
}

/** Kinds in the order `kubectl apply -f dist/` should meet them (files sort by this prefix). */
const KIND_ORDER = [
  'Namespace',
  'ServiceAccount',
  'ConfigMap',
  'Service',
  'NetworkPolicy',
  'PeerAuthentication',
  'AuthorizationPolicy',
  'DestinationRule',
  'StatefulSet',
  'Job',
  'Deployment',
  'HorizontalPodAutoscaler',
  'PodDisruptionBudget',
  'Gateway',
  'VirtualService',
  'ServiceMonitor',
  'PrometheusRule',
  // Quiet hours: the Role before the CronJobs that use it; both long before the first run.
  'Role',
  'RoleBinding',
  'CronJob',
];

function rank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i < 0 ? KIND_ORDER.length : i;
}

/** Objects sorted by kind (apply order), then name; stable. */
export function sortForApply(objects: any[]): any[] {
  return [...objects].sort(
    (a, b) => rank(a.kind) - rank(b.kind) || String(a.kind).localeCompare(String(b.kind)) || String(a.metadata?.name).localeCompare(String(b.metadata?.name)),
  );
}

/** File name of a kind: `<order>-<kind>.yaml`, e.g. `00-namespace.yaml`. */
export function fileOf(kind: string): string {
  return `${String(rank(kind)).padStart(2, '0')}-${kind.toLowerCase()}.yaml`;
}

/** The summary of a synthesis: files written and objects per kind. */
export interface SynthSummary {
  /** Files written, relative to the output directory. */
  files: string[];
  /** Objects per kind. */
  kinds: Record<string, number>;
  /** All objects. */
  total: number;
}

/**
 * Writes one YAML file per kind into `outdir` (emptied of `.yaml` files first, so removed kinds
 * do not linger) and returns the summary.
 */
export function writeManifests(objects: any[], outdir: string): SynthSummary {
  mkdirSync(outdir, { recursive: true });
  for (const f of readdirSync(outdir)) if (f.endsWith('.yaml')) rmSync(join(outdir, f));
  const byFile = new Map<string, any[]>();
  const kinds: Record<string, number> = {};
  for (const o of sortForApply(objects)) {
    const file = fileOf(o.kind);
    byFile.set(file, [...(byFile.get(file) ?? []), o]);
    kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
  }
  const files = [...byFile.keys()].sort();
  for (const file of files) {
    const text = byFile.get(file)!.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
    writeFileSync(join(outdir, file), text);
  }
  return { files, kinds, total: objects.length };
}

/** Parsed command line of the CLI. */
export interface CliOptions extends SynthOptions {
  /** Where the files go. */
  outdir: string;
}

/**
 * Reads `--env`, `--image`, `--image-<service>` and `--outdir` (also `--flag=value`), with
 * `PROMPTMESH_ENV`, `PROMPTMESH_IMAGE` and `CDK8S_OUTDIR` from the environment as fallbacks.
 */
export function parseCli(argv: string[], env: Record<string, string | undefined>, version: string): CliOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(arg)}; usage: synth [--env dev|staging|prod] [--image REF] [--image-<service> REF] [--outdir DIR]`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new Error(`--${name} needs a value`);
    const known = ['env', 'image', 'outdir', ...SERVICE_NAMES.map((s) => `image-${s}`)];
    if (!known.includes(name)) throw new Error(`unknown flag --${name}; known: ${known.map((k) => `--${k}`).join(', ')}`);
    flags.set(name, value);
  }
  const envName = flags.get('env') ?? env.PROMPTMESH_ENV ?? 'prod';
  if (!(ENVIRONMENTS as readonly string[]).includes(envName)) {
    throw new Error(`--env must be one of ${ENVIRONMENTS.join(', ')}, got ${JSON.stringify(envName)}`);
  }
  const base = flags.get('image') ?? env.PROMPTMESH_IMAGE ?? defaultImage(version);
  const perService: Record<string, string> = {};
  for (const s of SERVICE_NAMES) {
    const v = flags.get(`image-${s}`);
    if (v) perService[s] = v;
  }
  const images: string | ServiceImages = Object.keys(perService).length > 0 ? { default: base, ...perService } : base;
  return { env: envName as EnvironmentName, images, outdir: flags.get('outdir') ?? env.CDK8S_OUTDIR ?? 'dist' };
}
