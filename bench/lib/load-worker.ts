/**
 * The load generator as its own process: started by {@link runLoadInChild} (bench/lib/
 * load-process.ts) for one run, it receives the run over IPC, runs it and sends back the
 * result with its own peak RSS, then exits. A process per run means no run inherits the load
 * generator's heap, JIT state or connections from the one before.
 */
import { readFileSync } from 'node:fs';
import { bodyOf } from './bodies';
import { runLoad } from './load';
import type { LoadRequest, LoadReply } from './load-process';

function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

process.once('message', (message: LoadRequest) => {
  const { target, options } = message;
  runLoad({ url: target.url, path: target.path, method: target.method, headers: target.headers, body: bodyOf(target.body) }, options)
    .then((result) => ({ ok: true as const, result, peakRssMb: peakRssMb() }))
    .catch((err: unknown) => ({ ok: false as const, error: (err as Error).stack ?? String(err) }))
    .then((reply: LoadReply) => process.send!(reply, () => process.disconnect()));
});
