// The image's entry point sizes V8's heap from the container's memory limit: the real script
// (scripts/image-entrypoint.sh, shipped as build/entrypoint.sh) runs node on a `service.js`
// beside it that reports what V8 got. The limit comes from the synthesized prod chart.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Testing } from 'cdk8s';
import { afterAll, describe, expect, it } from 'vitest';
import { MEMORY_LIMIT_ENV, PromptSystem } from '../../infra/k8s';
import { environmentProps } from '../../stacks/k8s/environments';
import { REPO_ROOT } from '../../stacks/pulumi/program';

const dir = mkdtempSync(join(tmpdir(), 'promptmesh-heap-'));
copyFileSync(join(REPO_ROOT, 'scripts/image-entrypoint.sh'), join(dir, 'entrypoint.sh'));
writeFileSync(join(dir, 'service.js'), `process.stdout.write(JSON.stringify({ heapMiB: require('v8').getHeapStatistics().heap_size_limit / 1048576, args: process.argv.slice(2) }));\n`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the entry point as the image does (the image's NODE_OPTIONS, Node 24 first on PATH). */
function start(env: Record<string, string>, args: string[] = []) {
  return spawnSync('/bin/sh', [join(dir, 'entrypoint.sh'), ...args], {
    encoding: 'utf8',
    env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, NODE_OPTIONS: '--max-semi-space-size=8', ...env },
  });
}

function heapMiB(limitMiB: number): number {
  const r = start({ [MEMORY_LIMIT_ENV]: String(limitMiB) });
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { heapMiB: number }).heapMiB;
}

describe('image entry point: V8 heap from the memory limit', () => {
  it('gives the whole heap 75% of the limit the prod chart sets, far above the old fixed 112 MiB old space', () => {
    const chart = new PromptSystem(Testing.app(), 'p', environmentProps('prod', 'ghcr.io/promptmesh/promptmesh:1.0.0'));
    const router = Testing.synth(chart).find((o) => o.kind === 'Deployment' && o.metadata.name === 'router-stable');
    const container = router.spec.template.spec.containers[0];
    expect(container.env.find((e: any) => e.name === MEMORY_LIMIT_ENV).valueFrom.resourceFieldRef).toEqual({
      containerName: container.name,
      resource: 'limits.memory',
      divisor: '1Mi',
    });
    const limit = /^(\d+)Mi$/.exec(container.resources.limits.memory)![1]!;
    expect(Number(limit)).toBe(768);
    // The resourceFieldRef delivers the limit in MiB: 768.
    expect(heapMiB(768)).toBe(576);
    expect(heapMiB(768)).toBeGreaterThan(112 + 24);
  });

  it('scales with the limit and keeps a floor for tiny containers', () => {
    expect(heapMiB(256)).toBe(192);
    expect(heapMiB(2048)).toBe(1536);
    expect(heapMiB(128)).toBe(96);
    expect(heapMiB(100)).toBe(64 + 24);
  });

  it('passes arguments through and refuses a limit that is not a number of MiB, naming the variable', () => {
    const r = start({ [MEMORY_LIMIT_ENV]: '768Mi' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('MEMORY_LIMIT_MIB must be a whole number of MiB');
    const ok = start({ [MEMORY_LIMIT_ENV]: '512' }, ['--flag']);
    expect(JSON.parse(ok.stdout).args).toEqual(['--flag']);
  });

  it('is what npm run build ships as build/entrypoint.sh', () => {
    const build = readFileSync(join(REPO_ROOT, 'scripts/build.ts'), 'utf8');
    expect(build).toContain("cpSync(join(root, 'scripts/image-entrypoint.sh'), join(staging, 'entrypoint.sh'))");
    expect(build).toContain("swapIn(staging, join(root, 'build'))");
  });
});
