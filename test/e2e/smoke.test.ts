/**
 * `npm run smoke` against a local all-in-one, as CI runs it, so the smoke test cannot rot:
 * the real command in a child process, its exit code and its PASS/FAIL lines.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEYS, startAllInOne, type Layout } from './support';
import { call } from './suite';

const ROOT = join(__dirname, '..', '..');

function smoke(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/smoke.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

describe('npm run smoke', () => {
  let layout: Layout;
  beforeAll(async () => {
    layout = await startAllInOne();
  }, 120_000);
  afterAll(async () => {
    await layout?.close();
  }, 60_000);

  it('passes every step against a healthy system and cleans up after itself', async () => {
    const { code, out } = await smoke(['--url', layout.url, '--key', KEYS.admin]);
    expect(out).not.toContain('FAIL');
    for (const step of ['models are listed', 'throwaway template is created', 'plain completion with the template', 'streaming completion', 'session completion over two turns', 'metrics endpoint', 'template is archived', 'session is deleted']) {
      expect(out).toContain(`PASS  ${step}`);
    }
    expect(code).toBe(0);
    // The throwaway template is archived: no active template is left.
    const list = await call(layout, 'GET', '/v1/templates');
    expect(list.body.data.filter((t: { name: string }) => t.name.startsWith('smoke-'))).toEqual([]);
  });

  it('fails (exit 1, FAIL lines) when a step fails', async () => {
    const { code, out } = await smoke(['--url', layout.url, '--key', KEYS.user]);
    expect(out).toContain('PASS  models are listed');
    expect(out).toMatch(/FAIL {2}throwaway template is created: POST \/v1\/templates answered 403/);
    expect(code).toBe(1);
  });

  it('rejects bad arguments with exit 2', async () => {
    const { code, out } = await smoke(['--url', 'not-a-url']);
    expect(code).toBe(2);
    expect(out).toContain('--url');
  });
});
