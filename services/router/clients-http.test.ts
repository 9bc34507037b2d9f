/**
 * The mesh llm client's reading of llm's usage event on a passed-through Responses stream: the
 * event is taken off wherever the network splits the bytes, and nothing else is touched.
 */
import { describe, expect, it } from 'vitest';
import { LLM_USAGE_EVENT } from '../../contracts';
import { withoutUsageEvent } from './clients-http';

const provider = [
  'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1"}}\n\n',
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"héllo, event: wörld"}\n\n',
  'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":9,"output_tokens":7}}}\n\n',
].join('');
const usage = { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16, cost_usd: 0.000074, cost_micro_usd: 74 };
const fromLlm = Buffer.from(`${provider}event: ${LLM_USAGE_EVENT}\ndata: ${JSON.stringify(usage)}\n\n`);

async function* pieces(bytes: Buffer, at: number[]): AsyncGenerator<Uint8Array> {
  let from = 0;
  for (const cut of [...at, bytes.length]) {
    if (cut > from) yield new Uint8Array(bytes.subarray(from, cut));
    from = cut;
  }
}

async function read(body: AsyncIterable<Uint8Array>): Promise<{ text: string; found: unknown; calls: number }> {
  let found: unknown;
  let calls = 0;
  const out: Buffer[] = [];
  for await (const piece of withoutUsageEvent(body, (u) => ((found = u), calls++))) out.push(Buffer.from(piece));
  return { text: Buffer.concat(out).toString('utf8'), found, calls };
}

describe('withoutUsageEvent', () => {
  it('takes the usage event off, split anywhere (each single cut and byte by byte)', async () => {
    for (let cut = 0; cut <= fromLlm.length; cut++) {
      const r = await read(pieces(fromLlm, [cut]));
      expect(r.text, `cut at ${cut}`).toBe(provider);
      expect(r.found, `cut at ${cut}`).toEqual(usage);
    }
    const bytewise = await read(pieces(fromLlm, Array.from({ length: fromLlm.length }, (_, i) => i)));
    expect(bytewise).toEqual({ text: provider, found: usage, calls: 1 });
  });

  it('passes a stream without the event through unchanged, reporting no usage', async () => {
    const r = await read(pieces(Buffer.from(provider), [5, 40, 41, 200]));
    expect(r).toEqual({ text: provider, found: undefined, calls: 0 });
  });

  it('reports no usage for an unreadable event, and still keeps it from the client', async () => {
    const r = await read(pieces(Buffer.from(`${provider}event: ${LLM_USAGE_EVENT}\ndata: {not json\n\n`), [100]));
    expect(r).toEqual({ text: provider, found: undefined, calls: 1 });
  });
});
