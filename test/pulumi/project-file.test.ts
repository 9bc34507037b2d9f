// Pulumi.yaml and the stack files as the Pulumi CLI reads them.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SECRET_KEYS } from '../../stacks/pulumi/config';
import { REPO_ROOT } from '../../stacks/pulumi/program';

const project = parse(readFileSync(join(REPO_ROOT, 'Pulumi.yaml'), 'utf8'));

describe('Pulumi.yaml', () => {
  it('runs the program on nodejs with TypeScript loaded by tsx', () => {
    expect(project.name).toBe('promptmesh');
    expect(project.runtime).toEqual({ name: 'nodejs', options: { typescript: false, nodeargs: '--import tsx', packagemanager: 'npm' } });
    expect(project.main).toBe('stacks/pulumi/');
  });

  it('points main at a module that exports the program function, loaded the way Pulumi loads it', () => {
    // Pulumi's nodejs host require()s the `main` folder (with a trailing slash) in a node started with `nodeargs`.
    const script = `const m = require(${JSON.stringify(join(REPO_ROOT, project.main))}); if (typeof m !== 'function' || m.name !== 'promptmeshProgram') { console.error(typeof m); process.exit(2); }`;
    const run = spawnSync(process.execPath, [...project.runtime.options.nodeargs.split(' '), '-e', script], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});

describe('stack files', () => {
  const files = readdirSync(REPO_ROOT).filter((f) => /^Pulumi\.[a-z0-9-]+\.yaml$/.test(f));

  it('exist for dev, staging, prod and local', () => {
    expect(files.sort()).toEqual(['Pulumi.dev.yaml', 'Pulumi.local.yaml', 'Pulumi.prod.yaml', 'Pulumi.staging.yaml']);
  });

  // `pulumi config set --secret` writes ciphertext (`secure:`) into the stack file; that is the
  // only form a secret may take in it. The files as shipped hold none at all.
  it.each(files)('%s holds no plain secret', (file) => {
    const config = parse(readFileSync(join(REPO_ROOT, file), 'utf8')).config as Record<string, unknown>;
    for (const key of SECRET_KEYS) {
      const value = config[`promptmesh:${key}`];
      if (value === undefined) continue;
      const encrypted = (v: unknown): boolean => typeof v === 'object' && v !== null && (Object.keys(v).join() === 'secure' || Object.values(v).every(encrypted));
      expect(encrypted(value), `promptmesh:${key} in ${file} must be set with --secret`).toBe(true);
    }
    const plain = JSON.stringify(config, (_k, v) => (v && typeof v === 'object' && 'secure' in v ? '<encrypted>' : v));
    expect(plain).not.toMatch(/sk-[A-Za-z0-9-]{8,}|"apiKey"|password/i);
  });
});
