/** The line that ends every OpenAI stream. */
export const SSE_DONE = 'data: [DONE]\n\n';

/** One SSE event carrying `json` (already serialised). */
export function sseData(json: string): string {
  return `data: ${json}\n\n`;
}

/**
 * Reads a `text/event-stream` body and yields the `data` of each event (multi-line data joined
 * with newlines), `[DONE]` included. Comments, `event:` and `id:` lines are skipped.
 */
export async function* parseSse(body: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let buffer = '';
  let data: string[] = [];
  for await (const piece of body) {
    buffer += typeof piece === 'string' ? piece : piece.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      let line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (data.length > 0) yield data.join('\n');
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line.charCodeAt(5) === 32 ? 6 : 5));
      }
    }
  }
  if (buffer.startsWith('data:')) data.push(buffer.slice(buffer.charCodeAt(5) === 32 ? 6 : 5));
  if (data.length > 0) yield data.join('\n');
}
