/**
 * A server-sent events parser that does not care where the network cut the bytes: a chunk may
 * end mid-line, mid-character (UTF-8) or between the `\r` and `\n` of a line break.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, when the server named the event (Anthropic does, OpenAI does not). */
  event: string | undefined;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

/**
 * Parses an SSE byte stream into events. Comments (`:` lines) and `id:`/`retry:` fields are
 * ignored; an event still pending when the stream ends is dispatched (lenient, so the consumer
 * decides whether the stream ended early).
 */
export async function* parseSse(body: AsyncIterable<Uint8Array | string>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let event: string | undefined;
  let data: string[] = [];

  const take = function* (line: string): Generator<SseEvent> {
    if (line === '') {
      if (data.length > 0) yield { event, data: data.join('\n') };
      event = undefined;
      data = [];
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* ' ' */) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
  };

  for await (const chunk of body) {
    buffer += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const lf = buffer.indexOf('\n', start);
      const cr = buffer.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        // a lone '\r' at the very end may be the first half of '\r\n': wait for more bytes
        if (cr === buffer.length - 1) break;
        end = cr;
        next = buffer.charCodeAt(cr + 1) === 10 ? cr + 2 : cr + 1;
      } else if (lf >= 0) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      yield* take(buffer.slice(start, end));
      start = next;
    }
    if (start > 0) buffer = buffer.slice(start);
  }
  buffer += decoder.decode();
  if (buffer.endsWith('\r')) buffer = buffer.slice(0, -1);
  if (buffer.length > 0) yield* take(buffer);
  if (data.length > 0) yield { event, data: data.join('\n') };
}

/** The event that ends every OpenAI stream. */
export const SSE_DONE = 'data: [DONE]\n\n';

/** One SSE event carrying `json` (already serialized). */
export function sseData(json: string): string {
  return `data: ${json}\n\n`;
}

/** The response headers of an event stream (`x-accel-buffering: no`: proxies must not hold events back). */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const;

/** What {@link writeSse} does besides writing the chunks. */
export interface WriteSseOptions {
  /**
   * The body of the event that ends a failed stream (the OpenAI error shape: headers are out,
   * so the failure goes into the stream), or undefined to end it silently (the client is gone).
   */
  onError(err: unknown): unknown;
  /** Runs after the last chunk, before `[DONE]` (the router stores the turn here). @default nothing */
  beforeDone?(): Promise<void> | void;
}

/**
 * Writes an OpenAI stream: each chunk as one event, then `[DONE]`. A failure ends the stream
 * with the event `onError` gives and no `[DONE]`, so a client can tell a broken stream from a
 * finished one. The source iterator is always closed, so the upstream call ends with the
 * response.
 */
export async function* writeSse(chunks: AsyncIterable<unknown>, options: WriteSseOptions): AsyncGenerator<string> {
  const iterator = chunks[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      yield sseData(JSON.stringify(next.value));
    }
  } catch (err) {
    const body = options.onError(err);
    if (body !== undefined) yield sseData(JSON.stringify(body));
    return;
  } finally {
    await iterator.return?.();
  }
  await options.beforeDone?.();
  yield SSE_DONE;
}
