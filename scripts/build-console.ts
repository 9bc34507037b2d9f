/**
 * Builds the console (sources in console/) into `<outDir>` (build/console/ for `npm run build`):
 * `assets/main-<HASH>.js` and `.css` bundled and minified by esbuild, and an `index.html` that
 * names them. No inline script or style anywhere, so the router's strict Content-Security-Policy
 * holds. Used by scripts/build.ts and by the console's tests (which build once before they run).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(__dirname, '..');

/** The default output: what the image copies (build/) and the router serves in dev and tests. */
export const CONSOLE_BUILD_DIR = join(root, 'build', 'console');

/** Bundles the console into `outDir` (emptied first); returns the asset names it wrote. */
export async function buildConsole(outDir: string = CONSOLE_BUILD_DIR): Promise<{ js: string; css: string }> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const result = await build({
    entryPoints: [join(root, 'console/src/main.tsx')],
    outdir: join(outDir, 'assets'),
    entryNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome120', 'firefox120', 'safari17'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: false,
    metafile: true,
    legalComments: 'linked',
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => relative(join(outDir, 'assets'), resolve(root, p)));
  const js = outputs.find((o) => o.endsWith('.js'));
  const css = outputs.find((o) => o.endsWith('.css'));
  if (!js || !css) throw new Error(`console build produced no ${js ? 'CSS' : 'JS'} bundle`);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>promptmesh console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/${basename(css)}">
<script type="module" src="assets/${basename(js)}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The promptmesh console needs JavaScript.</noscript>
</body>
</html>
`;
  writeFileSync(join(outDir, 'index.html'), html);
  return { js: basename(js), css: basename(css) };
}

if (require.main === module) {
  buildConsole().then(
    (out) => process.stdout.write(`console: build/console/assets/${out.js}, ${out.css}\n`),
    (err: unknown) => {
      process.stderr.write(`console build failed: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
