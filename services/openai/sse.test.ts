// The SSE parser must give the same events wherever the network splits the bytes.
import { describe, expect, it } from 'vitest';
import { parseSse, type SseEvent } from './sse';

const encoder = new TextEncoder();

async function parseChunks(chunks: Uint8Array[]): Promise<SseEvent[]> {
  async function* source() {
    for (const c of chunks) yield c;
  }
  const out: SseEvent[] = [];
  for await (const ev of parseSse(source())) out.push(ev);
  return out;
}

const SAMPLE =
  ': a comment\r\n' +
  'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n' +
  'data: {"text":"héllo wörld 🚀"}\n\n' +
  'id: 7\nretry: 100\ndata: line one\ndata:line two\n\n' +
  'event: ping\rdata: {}\r\r' +
  'data: [DONE]\n\n';

const EXPECTED: SseEvent[] = [
  { event: 'message_start', data: '{"type":"message_start"}' },
  { event: undefined, data: '{"text":"héllo wörld 🚀"}' },
  { event: undefined, data: 'line one\nline two' },
  { event: 'ping', data: '{}' },
  { event: undefined, data: '[DONE]' },
];

describe('parseSse', () => {
  it('parses LF, CRLF and CR line endings, comments, multi-line data and named events', async () => {
    expect(await parseChunks([encoder.encode(SAMPLE)])).toEqual(EXPECTED);
  });

  it('gives the same events for every two-way split of the bytes (mid-line, mid-CRLF, mid-UTF-8)', async () => {
    const bytes = encoder.encode(SAMPLE);
    for (let i = 1; i < bytes.length; i++) {
      expect(await parseChunks([bytes.slice(0, i), bytes.slice(i)])).toEqual(EXPECTED);
    }
  });

  it('gives the same events when fed one byte at a time', async () => {
    const bytes = encoder.encode(SAMPLE);
    expect(await parseChunks(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(EXPECTED);
  });

  it('dispatches an event left pending when the stream ends without a blank line', async () => {
    expect(await parseChunks([encoder.encode('data: {"a":1}\n\ndata: tail')])).toEqual([
      { event: undefined, data: '{"a":1}' },
      { event: undefined, data: 'tail' },
    ]);
  });
});
