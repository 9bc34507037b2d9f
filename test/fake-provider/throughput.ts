/**
 * Measures how fast the fake provider answers, and what the adapters add on top of a bare
 * undici client. The fake runs in its own process (as in the benchmark); the load comes from
 * this one.
 *
 *   tsx test/fake-provider/throughput.ts [--requests 20000] [--concurrency 64]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Pool } from 'undici';
import { freePort, waitFor } from '../support/net';
import { createAnthropicAdapter } from '../../services/llm/providers/anthropic';
import { createOpenAIAdapter } from '../../services/llm/providers/openai';
import type { ProviderConfig } from '../../services/llm/types';
import type { ChatRequest } from '../../services/openai';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function run(label: string, total: number, concurrency: number, call: () => Promise<void>): Promise<void> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) {
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
  console.log(`${label.padEnd(34)} ${Math.round(total / seconds).toString().padStart(7)} req/s   p50 ${q(0.5)} ms   p99 ${q(0.99)} ms`);
}

async function main(): Promise<void> {
  const total = arg('requests', 20_000);
  const concurrency = arg('concurrency', 64);
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fake-provider/main.ts', '--port', String(port), '--record', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/v1/models`)).ok, 20_000, 'the fake provider');
    const body: ChatRequest = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say something short about load testing.' }] };
    const text = JSON.stringify(body);
    const pool = new Pool(url, { connections: concurrency, pipelining: 1 });
    const openai = createOpenAIAdapter();
    const anthropic = createAnthropicAdapter();
    const provider = (type: 'openai' | 'anthropic'): ProviderConfig => ({
      name: `fake-${type}`,
      type,
      apiKey: 'k',
      baseUrl: type === 'openai' ? `${url}/v1` : url,
      timeoutMs: 30_000,
      connectTimeoutMs: 5_000,
      firstByteTimeoutMs: 30_000,
    });
    const raw = async (stream: boolean) => {
      const res = await pool.request({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, body: stream ? text.replace(/}$/, ',"stream":true}') : text });
      await res.body.text();
    };
    console.log(`fake provider throughput: ${total} requests, concurrency ${concurrency}, ${process.platform} node ${process.version}`);
    await run('warm-up', 2_000, concurrency, () => raw(false));
    await run('bare undici -> fake (plain)', total, concurrency, () => raw(false));
    await run('bare undici -> fake (stream)', total, concurrency, () => raw(true));
    await run('openai adapter -> fake (plain)', total, concurrency, async () => void (await openai.complete(provider('openai'), body, {})));
    await run('openai adapter -> fake (stream)', total, concurrency, async () => {
      for await (const _ of await openai.stream(provider('openai'), body, {})) void _;
    });
    await run('anthropic adapter -> fake (plain)', total, concurrency, async () => void (await anthropic.complete(provider('anthropic'), body, {})));
    await run('anthropic adapter -> fake (stream)', total, concurrency, async () => {
      for await (const _ of await anthropic.stream(provider('anthropic'), body, {})) void _;
    });
    await Promise.all([pool.close(), openai.close?.(), anthropic.close?.()]);
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
