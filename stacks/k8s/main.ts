/**
 * The cdk8s app: `npm run synth` (or `npx cdk8s synth --no-check-upgrade`) writes the whole
 * in-cluster topology of an environment into `dist/`, one file per kind, offline.
 *
 *   npm run synth -- --env dev --image registry.example.com/promptmesh:1.2.3
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCli, synthesize, writeManifests } from './synth';

function main(): void {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const options = parseCli(process.argv.slice(2), process.env, pkg.version);
  const objects = synthesize(options);
  const summary = writeManifests(objects, options.outdir);
  const images = typeof options.images === 'string' ? options.images : JSON.stringify(options.images);
  const lines = [
    `promptmesh: synthesized environment ${options.env} (images ${images}) into ${options.outdir}/`,
    ...summary.files.map((f) => `  ${f}`),
    `${summary.total} objects: ${Object.entries(summary.kinds)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`promptmesh synth: ${(err as Error).message}\n`);
  process.exit(1);
}
