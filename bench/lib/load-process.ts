import { fork } from 'node:child_process';
import { join } from 'node:path';
import type { BodySpec } from './bodies';
import type { LoadOptions, LoadResult } from './load';

/** A load target as data (it crosses into the load generator's process). */
export interface LoadTargetSpec {
  url: string;
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body: BodySpec;
}

/** What the orchestrator sends the load generator process. */
export interface LoadRequest {
  target: LoadTargetSpec;
  options: LoadOptions;
}

/** What the load generator process answers. */
export type LoadReply = { ok: true; result: LoadResult; peakRssMb: number } | { ok: false; error: string };

/**
 * Runs one load run in a fresh load generator process (bench/lib/load-worker.ts, through tsx on
 * the orchestrator's own Node), so the generator never shares a process, a heap or an event loop
 * with the orchestrator or with the runs before it. Resolves with the result and the generator's
 * peak RSS (VmHWM) over the run.
 */
export function runLoadInChild(target: LoadTargetSpec, options: LoadOptions): Promise<{ result: LoadResult; peakRssMb: number }> {
  const child = fork(join(__dirname, 'load-worker.ts'), [], {
    // The generator's peak RSS counts against the bench's 150 MB too: with V8's default 16 MiB
    // semi-space it reached ~160 MB at ~12k req/s (direct); the image's 8 MiB keeps it below.
    execArgv: ['--max-semi-space-size=8', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  return new Promise((resolve, reject) => {
    let reply: LoadReply | undefined;
    child.once('message', (m: LoadReply) => {
      reply = m;
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!reply) return reject(new Error(`the load generator exited (${code ?? signal}) without a result`));
      if (!reply.ok) return reject(new Error(`the load generator failed: ${reply.error}`));
      resolve({ result: reply.result, peakRssMb: reply.peakRssMb });
    });
    child.send({ target, options } satisfies LoadRequest);
  });
}
