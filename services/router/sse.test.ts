import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseSse } from './sse';

async function events(pieces: Array<Uint8Array | string>): Promise<string[]> {
  const out: string[] = [];
  for await (const d of parseSse(Readable.from(pieces, { objectMode: true }))) out.push(d);
  return out;
}

describe('the router SSE parser', () => {
  it('keeps a multi-byte character whole when the network splits it across chunks (every cut)', async () => {
    const text = 'é 名 😀 ü';
    const wire = Buffer.from(`data: ${JSON.stringify({ content: text })}\n\ndata: [DONE]\n\n`, 'utf8');
    for (let cut = 1; cut < wire.length; cut++) {
      const got = await events([wire.subarray(0, cut), wire.subarray(cut)]);
      expect(got.map((d) => (d === '[DONE]' ? d : (JSON.parse(d) as { content: string }).content)), `cut at byte ${cut}`).toEqual([text, '[DONE]']);
    }
    // One byte per chunk: every character of every width split into its bytes.
    const bytewise = await events([...wire].map((b) => Uint8Array.of(b)));
    expect(JSON.parse(bytewise[0]!)).toEqual({ content: text });
  });
});
