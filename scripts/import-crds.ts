/**
 * `npm run import`: regenerates the typed CRD classes in `imports/` from the CRD files kept in
 * `imports/crds/`, offline (`cdk8s import` of a local file needs no network).
 *
 * Each CRD file holds upstream CustomResourceDefinitions verbatim (the header comment names the
 * release they come from). Only the API version the constructs emit is imported: the served
 * older versions (Istio's v1alpha3/v1beta1) would add a second set of classes nobody should use.
 *
 * To move to a newer release: replace the CRD documents in the file with the release's own
 * (keep the header up to date), run `npm run import`, then `npm run check` and the k8s tests.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

const root = resolve(__dirname, '..');
const crdDir = join(root, 'imports', 'crds');

/**
 * The CRD files and the one version imported from each CRD. `cdk8s import` names the module
 * after the API group: imports/networking.istio.io.ts, security.istio.io.ts,
 * monitoring.coreos.com.ts, cert-manager.io.ts.
 */
const FILES: ReadonlyArray<{ readonly file: string; readonly version: string }> = [
  { file: 'istio-networking.yaml', version: 'v1' },
  { file: 'istio-security.yaml', version: 'v1' },
  { file: 'prometheus-operator.yaml', version: 'v1' },
  { file: 'cert-manager.yaml', version: 'v1' },
];

interface Crd {
  kind: string;
  metadata: { name: string };
  spec: { versions: Array<{ name: string }> };
}

function main(): void {
  const known = new Set(FILES.map((m) => m.file));
  const stray = readdirSync(crdDir).filter((f) => f.endsWith('.yaml') && !known.has(f));
  if (stray.length > 0) throw new Error(`imports/crds/${stray[0]} is not listed in scripts/import-crds.ts FILES`);

  const work = mkdtempSync(join(tmpdir(), 'promptmesh-import-'));
  try {
    for (const { file, version } of FILES) {
      const docs = parseAllDocuments(readFileSync(join(crdDir, file), 'utf8'))
        .map((d) => d.toJS() as Crd | null)
        .filter((d): d is Crd => d !== null);
      const filtered = docs.map((crd) => {
        if (crd.kind !== 'CustomResourceDefinition') throw new Error(`${file}: ${crd.kind} is not a CustomResourceDefinition`);
        const versions = crd.spec.versions.filter((v) => v.name === version);
        if (versions.length !== 1) throw new Error(`${file}: ${crd.metadata.name} has no version ${version}`);
        return { ...crd, spec: { ...crd.spec, versions } };
      });
      const tmp = join(work, file);
      writeFileSync(tmp, filtered.map((d) => stringify(d)).join('---\n'));
      execFileSync(
        process.execPath,
        [join(root, 'node_modules', 'cdk8s-cli', 'bin', 'cdk8s'), 'import', tmp, '--output', join(root, 'imports'), '--no-save', '--no-check-upgrade', '--language', 'typescript'],
        { cwd: root, stdio: 'inherit' },
      );
      console.log(`${file}: ${filtered.map((d) => `${d.metadata.name}/${version}`).join(', ')}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
