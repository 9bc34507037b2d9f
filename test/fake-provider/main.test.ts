// The fake provider's command line, as the benchmark and people start it.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/net';

function start(args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', 'test/fake-provider/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('tsx test/fake-provider/main.ts', () => {
  it('listens on --port, checks --api-key, honours --record 0, and exits cleanly on SIGTERM', async () => {
    const port = await freePort();
    const child = start(['--port', String(port), '--api-key', 'sk-cli', '--record', '0']);
    try {
      const [line] = (await once(child.stdout!, 'data')) as [Buffer];
      expect(line.toString()).toContain(`http://127.0.0.1:${port}`);
      const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'cli' }] });
      const denied = await request(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body });
      expect(denied.statusCode).toBe(401);
      await denied.body.dump();
      const ok = await request(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-cli' }, body });
      expect(await ok.body.json()).toMatchObject({ choices: [{ message: { content: 'echo: cli' } }] });
      const recorded = await request(`http://127.0.0.1:${port}/_fake/requests`);
      expect(await recorded.body.json()).toEqual({ data: [] });
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });

  it('refuses a bad argument with a message naming it', async () => {
    const child = start(['--port', 'abc']);
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const [code] = await once(child, 'exit');
    expect(code).toBe(1);
    expect(stderr).toContain("--port must be an integer >= 0, got 'abc'");
  });
});
