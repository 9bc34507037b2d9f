import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { parseCli } from '../../stacks/k8s/synth';
import { validateManifests } from '../support/k8s-validate';

const root = resolve(__dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'pm-synth-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function readDir(dir: string): { files: string[]; objects: any[] } {
  const files = readdirSync(dir).sort();
  const objects = files.flatMap((f) =>
    parseAllDocuments(readFileSync(join(dir, f), 'utf8'))
      .map((d) => d.toJS())
      .filter(Boolean),
  );
  return { files, objects };
}

describe('npm run synth', () => {
  it('writes one valid file per kind, in apply order, and prints the summary', () => {
    const outdir = join(work, 'dev');
    const stdout = execFileSync('npm', ['run', 'synth', '--silent', '--', '--env', 'dev', '--image', 'registry.example.com/pm:7', '--outdir', outdir], {
      cwd: root,
      encoding: 'utf8',
    });
    const { files, objects } = readDir(outdir);
    expect(files[0]).toBe('00-namespace.yaml');
    expect(files.every((f) => /^\d\d-[a-z]+\.yaml$/.test(f))).toBe(true);
    for (const f of files) expect(stdout).toContain(f);
    expect(stdout).toMatch(/synthesized environment dev \(images registry\.example\.com\/pm:7\)/);
    expect(stdout).toMatch(new RegExp(`${objects.length} objects: Namespace 1, .*Deployment 4`));
    expect(validateManifests(objects)).toEqual([]);
    // Each file holds exactly its kind.
    for (const f of files) {
      const docs = parseAllDocuments(readFileSync(join(outdir, f), 'utf8')).map((d) => d.toJS());
      expect(new Set(docs.map((o) => `${f.slice(0, 3)}${String(o.kind).toLowerCase()}.yaml`))).toEqual(new Set([f]));
    }
    const images = new Set(objects.filter((o) => o.kind === 'Deployment').map((d) => d.spec.template.spec.containers[0].image));
    expect([...images]).toEqual(['registry.example.com/pm:7']);
  });

  it('works through the cdk8s CLI (cdk8s.yaml) as well', () => {
    const outdir = join(work, 'cli');
    execFileSync('npx', ['cdk8s', 'synth', '--no-check-upgrade', '--output', outdir], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, PROMPTMESH_ENV: 'staging' },
    });
    const { files, objects } = readDir(outdir);
    expect(files).toContain('10-deployment.yaml');
    expect(objects.filter((o) => o.kind === 'Deployment').map((d) => d.metadata.name)).toContain('router-canary');
  });

  it('fails with a message naming the bad flag', () => {
    let failure: any;
    try {
      execFileSync('npm', ['run', 'synth', '--silent', '--', '--env', 'qa', '--outdir', join(work, 'bad')], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      failure = err;
    }
    expect(failure?.status).toBe(1);
    expect(failure.stderr).toMatch(/--env must be one of dev, staging, prod, got "qa"/);
  });
});

describe('parseCli', () => {
  it('reads flags, environment fallbacks and per-service images', () => {
    expect(parseCli([], {}, '1.2.3')).toEqual({ env: 'prod', images: 'ghcr.io/promptmesh/promptmesh:1.2.3', outdir: 'dist' });
    expect(parseCli(['--env=staging', '--image-llm', 'r/llm:2'], { PROMPTMESH_IMAGE: 'r/pm:1', CDK8S_OUTDIR: '/o' }, '1.2.3')).toEqual({
      env: 'staging',
      images: { default: 'r/pm:1', llm: 'r/llm:2' },
      outdir: '/o',
    });
    expect(parseCli([], { PROMPTMESH_ENV: 'dev' }, '1').env).toBe('dev');
    expect(() => parseCli(['--imgae', 'x'], {}, '1')).toThrow(/unknown flag --imgae/);
    expect(() => parseCli(['--image'], {}, '1')).toThrow(/--image needs a value/);
    expect(() => parseCli(['dev'], {}, '1')).toThrow(/unexpected argument "dev"/);
  });
});
