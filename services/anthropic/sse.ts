import type { AnthropicEvent } from './schemas';

/** One event in Anthropic's framing: `event: <type>` then `data: <json>`. */
export function anthropicSse(ev: AnthropicEvent): string {
  return `event: ${ev.event}\ndata: ${ev.data}\n\n`;
}

/** What {@link writeAnthropicSse} does besides writing the events. */
export interface WriteAnthropicSseOptions {
  /** The `error` event's data for a stream that failed (headers are out), or undefined to end it silently (the client is gone). */
  onError(err: unknown): unknown;
  /** Runs after the last event (the router stores the turn here). @default nothing */
  afterLast?(): Promise<void> | void;
}

/**
 * Writes a Messages stream. A failure ends it with an `error` event (and no `message_stop`),
 * as Anthropic's API does; the source iterator is always closed.
 */
export async function* writeAnthropicSse(events: AsyncIterable<AnthropicEvent>, options: WriteAnthropicSseOptions): AsyncGenerator<string> {
  const iterator = events[Symbol.asyncIterator]();
  const held: string[] = [];
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) break;
      // message_stop waits until the turn is stored, so a client that saw it finds the turn.
      if (next.value.event === 'message_stop') held.push(anthropicSse(next.value));
      else yield anthropicSse(next.value);
    }
  } catch (err) {
    const body = options.onError(err);
    if (body !== undefined) yield anthropicSse({ event: 'error', data: JSON.stringify(body) });
    return;
  } finally {
    await iterator.return?.();
  }
  await options.afterLast?.();
  yield* held;
}
