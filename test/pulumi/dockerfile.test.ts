// The Dockerfile's shape: what the image build relies on, checked on the real file.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RUN_AS_USER } from '../../infra/k8s/prompt-service';
import { REPO_ROOT } from '../../stacks/pulumi/program';

const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const instructions = dockerfile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const stages = dockerfile.split(/^FROM /m).slice(1);

describe('Dockerfile', () => {
  it('is multi-stage: npm ci and npm run build in the first stage, only the bundle in the runtime stage', () => {
    expect(stages).toHaveLength(2);
    expect(stages[0]).toMatch(/npm ci\b/);
    expect(stages[0]).toMatch(/npm run build/);
    const runtime = stages[1];
    expect(runtime).not.toMatch(/npm (ci|install)/);
    const copies = runtime.split('\n').filter((l) => l.startsWith('COPY'));
    expect(copies).toEqual(['COPY --from=build --chown=0:0 /src/build/ ./build/']);
  });

  it('pins the base image to an exact tag (no latest) in one place', () => {
    const arg = instructions.find((l) => l.startsWith('ARG NODE_IMAGE='))!;
    expect(arg).toMatch(/^ARG NODE_IMAGE=node:\d+\.\d+-[a-z]+-slim$/);
    for (const from of instructions.filter((l) => l.startsWith('FROM '))) expect(from).toMatch(/^FROM \$\{NODE_IMAGE\} AS \w+$/);
  });

  it('runs as a numeric non-root user, the uid the Deployments use', () => {
    const user = instructions.filter((l) => l.startsWith('USER '));
    expect(user).toEqual([`USER ${DEFAULT_RUN_AS_USER}:${DEFAULT_RUN_AS_USER}`]);
    expect(instructions.at(-1)).toBe('ENTRYPOINT ["/bin/sh", "build/entrypoint.sh"]');
  });

  it('sizes the heap from the memory limit, not a fixed --max-old-space-size', () => {
    expect(dockerfile).not.toMatch(/--max-old-space-size=\d/);
    expect(dockerfile).toMatch(/NODE_OPTIONS="--max-semi-space-size=8"/);
  });

  it('keeps secrets, VCS data and local builds out of the context', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['.git', 'node_modules', 'build', 'lib', 'Pulumi.*.yaml']) expect(ignored).toContain(p);
  });
});
