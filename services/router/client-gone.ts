/**
 * The one way the router's answer routes learn that their client left: an AbortSignal that
 * fires when the connection closes before the answer was written, handed to llm so the call
 * stops upstream too.
 */
import type { FastifyReply } from 'fastify';

/** What {@link watchClient} gives a route. */
export interface ClientWatch {
  /** Aborted when the client closed the connection before the answer was written. */
  signal: AbortSignal;
  /** Stops watching (a streamed body that notices the close itself takes over from here). */
  release(): void;
}

/** Watches `reply`'s connection for a client that leaves before the answer is written. */
export function watchClient(reply: FastifyReply): ClientWatch {
  const abort = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) abort.abort();
  };
  reply.raw.once('close', onClose);
  return { signal: abort.signal, release: () => reply.raw.off('close', onClose) };
}
