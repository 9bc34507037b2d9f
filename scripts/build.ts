/**
 * `npm run build`:
 * 1. `tsc -p tsconfig.build.json`: JS and `.d.ts` of contracts/ and infra/ into lib/ (what the
 *    package's `exports` point at: promptmesh/k8s, promptmesh/pulumi, promptmesh/contracts);
 * 2. an esbuild bundle of services/main.ts into build/service.js for the images
 *    (`node build/service.js`, `SERVICE=router|templates|context|llm|all`), with the templates
 *    service's SQL migrations beside it in build/migrations/ and the image's entry point
 *    (scripts/image-entrypoint.sh, which sizes V8's heap from the memory limit) as
 *    build/entrypoint.sh (copy build/ into the image);
 * 3. the console (console/, served by the router at /console/) into build/console/.
 * Fails when the library output would contain service code.
 *
 * `npm run build -- --bundle-only` makes the image bundle alone (what an image build needs).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { buildConsole } from './build-console';
import { O200K_RANKS_FILE, packageRanks, ranksForJson } from '../services/kit/o200k';

const root = resolve(__dirname, '..');

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--bundle-only');
  if (unknown.length > 0) throw new Error(`unknown argument ${unknown[0]}; usage: npm run build [-- --bundle-only]`);
  const bundleOnly = args.includes('--bundle-only');
  rmSync(join(root, 'build'), { recursive: true, force: true });

  let libFiles: string[] = [];
  if (!bundleOnly) {
    rmSync(join(root, 'lib'), { recursive: true, force: true });
    const tsc = require.resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
    libFiles = walk(join(root, 'lib')).map((f) => f.slice(root.length + 1));
    const leaked = libFiles.filter((f) => f.startsWith('lib/services/') || f.startsWith('lib/test/') || /\.test\./.test(f));
    if (leaked.length > 0) {
      throw new Error(`the library output must not contain service or test code, found: ${leaked.slice(0, 5).join(', ')}`);
    }
    for (const entry of ['lib/infra/k8s/index.js', 'lib/infra/k8s/index.d.ts', 'lib/contracts/index.js', 'lib/contracts/index.d.ts']) {
      if (!libFiles.includes(entry)) throw new Error(`build did not produce ${entry}`);
    }
  }

  await build({
    entryPoints: [join(root, 'services/main.ts')],
    outfile: join(root, 'build/service.js'),
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    sourcemap: true,
    // With --enable-source-maps (NODE_OPTIONS; the image leaves it off) the map is parsed into the process: stack
    // traces need the mappings, not the 7 MB of embedded sources (~25 MB of RSS less).
    sourcesContent: false,
    // Whitespace and syntax only: V8 keeps the whole bundle source in every process's heap, and
    // without comments it is pure ASCII (one byte per character instead of two): ~15 MB less
    // heap per process. Names stay, so profiles and stack traces (with the source map) read as
    // the sources do.
    minifyWhitespace: true,
    minifySyntax: true,
    minifyIdentifiers: false,
    legalComments: 'linked',
    // Optional native add-ons some dependencies try to load; absent in the image by design.
    external: ['pg-native', 'bufferutil', 'utf-8-validate'],
    logLevel: 'warning',
  });

  // The templates service reads its SQL migrations from `migrations/` beside its code
  // (`__dirname` of the bundle is build/).
  const migrations = join(root, 'services/templates/migrations');
  if (!existsSync(migrations)) throw new Error('services/templates/migrations is missing: the bundle needs it');
  cpSync(migrations, join(root, 'build/migrations'), { recursive: true });
  cpSync(join(root, 'scripts/image-entrypoint.sh'), join(root, 'build/entrypoint.sh'));
  // The tokenizer's merge ranks as JSON beside the bundle, where services/kit/o200k.ts reads them
  // (less peak memory than parsing gpt-tokenizer's array literal; that file says why).
  writeFileSync(join(root, 'build', O200K_RANKS_FILE), JSON.stringify(ranksForJson(packageRanks())));

  // The router serves the console from console/ beside the bundle (services/router/console.ts).
  const consoleAssets = await buildConsole(join(root, 'build/console'));

  const size = statSync(join(root, 'build/service.js')).size;
  process.stdout.write(
    `build: ${bundleOnly ? 'bundle only' : `lib/ ${libFiles.length} files (contracts, infra)`}, build/service.js ${(size / 1024 / 1024).toFixed(1)} MiB, build/console/assets/${consoleAssets.js}, ${Date.now() - started} ms\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`build failed: ${(err as Error).message}\n`);
  process.exit(1);
});
