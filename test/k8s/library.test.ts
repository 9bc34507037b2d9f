/**
 * Library use, end to end: `npm run build`, `npm pack`, install the tarball into a scratch
 * consumer project, run the example of docs/k8s.md there (importing `promptmesh/k8s`), and
 * validate what it synthesizes. Also starts the image bundle (build/service.js) for real.
 *
 * The consumer gets the tarball unpacked as node_modules/promptmesh (what `npm install` does
 * with it) and only the peer dependencies (cdk8s, constructs, cdk8s-plus-27) plus `yaml`,
 * linked from this repository: no network, and proof that `promptmesh/k8s` loads nothing else
 * (no Pulumi, no AWS SDK, no service code).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { freePort, waitFor } from '../support/net';
import { validateManifests } from '../support/k8s-validate';

const root = resolve(__dirname, '../..');
const LINKED = ['cdk8s', 'constructs', 'cdk8s-plus-27', 'yaml'];

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}

function exampleIn(file: string): string {
  const doc = readFileSync(join(root, file), 'utf8');
  const m = /<!-- library-example -->\s*```ts\n([\s\S]*?)```/.exec(doc);
  if (!m) throw new Error(`${file} has no <!-- library-example --> ts block`);
  return m[1]!;
}

function docsExample(): string {
  return exampleIn('docs/k8s.md');
}

it('the README shows the same library example as docs/k8s.md (the one run below)', () => {
  expect(exampleIn('README.md')).toBe(docsExample());
});

describe('library use of promptmesh/k8s from the packed tarball', () => {
  let work: string;
  let tarball: string;

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'pm-k8s-lib-'));
    run('npm', ['run', 'build', '--silent'], root);
    const out = run('npm', ['pack', '--json', '--pack-destination', work], root);
    tarball = join(work, (JSON.parse(out) as Array<{ filename: string }>)[0]!.filename);
  }, 240_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('packs the library and its declarations, without service or test code', () => {
    const files = run('tar', ['-tzf', tarball], work).split('\n').filter(Boolean);
    expect(files).toContain('package/lib/infra/k8s/index.js');
    expect(files).toContain('package/lib/infra/k8s/index.d.ts');
    expect(files).toContain('package/lib/infra/k8s/prompt-service.d.ts');
    expect(files).toContain('package/lib/contracts/index.js');
    expect(files.filter((f) => f.startsWith('package/lib/services/') || f.includes('.test.') || f.startsWith('package/test/'))).toEqual([]);
    const pkg = JSON.parse(run('tar', ['-xzOf', tarball, 'package/package.json'], work));
    expect(pkg.exports['./k8s']).toEqual({ types: './lib/infra/k8s/index.d.ts', default: './lib/infra/k8s/index.js' });
    expect(Object.keys(pkg.peerDependencies).sort()).toEqual(['cdk8s', 'cdk8s-plus-27', 'constructs']);
  });

  it('runs the docs example in a scratch consumer: it type-checks, synthesizes, and every object validates', () => {
    const consumer = join(work, 'consumer');
    const modules = join(consumer, 'node_modules');
    mkdirSync(join(modules, 'promptmesh'), { recursive: true });
    run('tar', ['-xzf', tarball, '-C', join(modules, 'promptmesh'), '--strip-components=1'], consumer);
    for (const dep of LINKED) symlinkSync(join(root, 'node_modules', dep), join(modules, dep), 'dir');
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '0.0.0' }));
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, outDir: 'out', types: [], skipLibCheck: false },
        include: ['index.ts'],
      }),
    );
    writeFileSync(join(consumer, 'index.ts'), docsExample());

    // Type-check against the package's own declarations (skipLibCheck off: they must be sound).
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', consumer], consumer);
    const stdout = run(process.execPath, [join(consumer, 'out/index.js')], consumer);
    expect(stdout).toBe('');

    const files = readdirSync(join(consumer, 'dist')).sort();
    expect(files).toEqual(['my-llm.k8s.yaml', 'promptmesh.k8s.yaml']);
    const objects = files.flatMap((f) =>
      parseAllDocuments(readFileSync(join(consumer, 'dist', f), 'utf8'))
        .map((d) => d.toJS())
        .filter(Boolean),
    );
    expect(validateManifests(objects)).toEqual([]);
    const kinds = new Set(objects.map((o: any) => o.kind));
    for (const kind of ['Namespace', 'Deployment', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'VirtualService', 'NetworkPolicy', 'ServiceMonitor']) {
      expect(kinds.has(kind), kind).toBe(true);
    }
    const canary = objects.find((o: any) => o.kind === 'Deployment' && o.metadata.name === 'llm-canary');
    expect(canary.metadata.namespace).toBe('ai');
    expect(canary.spec.template.spec.containers[0].image).toBe('ghcr.io/promptmesh/promptmesh:0.2.0-rc.1');
  });

  it('builds an image bundle that starts a service and refuses bad configuration by name', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [join(root, 'build/service.js')], {
      cwd: work,
      env: { PATH: process.env.PATH, SERVICE: 'context', PORT: String(port), HOST: '127.0.0.1', REDIS_URL: 'redis://127.0.0.1:6379', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let status = 0;
      await waitFor(
        async () => {
          status = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0);
          return status === 200;
        },
        30_000,
        'the bundled context service to answer /healthz',
      );
      expect(status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }

    let failure: any;
    try {
      execFileSync(process.execPath, [join(root, 'build/service.js')], {
        cwd: work,
        env: { PATH: process.env.PATH, SERVICE: 'router' },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 30_000,
      });
    } catch (err) {
      failure = err;
    }
    expect(failure?.status).toBe(1);
    expect(failure.stderr).toMatch(/TEMPLATES_URL/);
  }, 60_000);
});
