/**
 * The request bodies the benchmark sends, described as data so a scenario can cross a process
 * boundary (the load generator runs in its own process, bench/lib/load-worker.ts) and be
 * turned back into the `(i) => body` function the load generator calls.
 */

/** How many turns each session of the full prompt path is used for before a new one replaces it. */
export const SESSION_TURNS = 8;

/** How many sessions the full prompt path rotates through at once. */
export const SESSIONS = 512;

/** A body family: what the i-th request of a run sends. */
export type BodySpec =
  /** A plain completion: one user message that differs per request (never a cache hit). */
  | { kind: 'plain'; model: string }
  /**
   * The full prompt path: a template with variables, a session (history read and the new turn
   * appended) and temperature 0.7 (a response-cache miss). `run` keeps runs from continuing
   * each other's sessions.
   */
  | { kind: 'full'; model: string; prompt: string; run: string }
  /** The same body every time (the cache-hit scenario). */
  | { kind: 'fixed'; body: string }
  /**
   * An embeddings request as a RAG indexer sends it: a batch of `texts` passages of a document
   * (~80 tokens each), new in every request (a response-cache miss), vectors as floats. `run`
   * keeps runs from repeating each other's texts.
   */
  | { kind: 'embeddings'; model: string; run: string; texts: number };

/** How many passages each embeddings request carries. */
export const EMBEDDINGS_BATCH = 8;

/** The body of a passage (~60 words); each passage starts with what makes it unique. */
const PASSAGE_TEXT =
  'The gateway routes each request to a provider by weight, retries failures that are safe to retry with backoff, ' +
  'opens a circuit when a provider keeps failing, and records the tokens and the cost of every call so that teams ' +
  'can see what their applications spend, per model and per key, before the invoice arrives at the end of the month.';

function userMessage(i: number) {
  return [{ role: 'user', content: `Say something about number ${i}.` }];
}

/** The function that makes the i-th body of `spec`. */
export function bodyOf(spec: BodySpec): (i: number) => string {
  switch (spec.kind) {
    case 'plain':
      return (i) => JSON.stringify({ model: spec.model, messages: userMessage(i) });
    case 'full':
      // A steady workload: SESSIONS sessions in turn, each used for SESSION_TURNS turns and then
      // replaced by a new one, so the history read stays 0..SESSION_TURNS-1 turns throughout the
      // run (sessions that grew without bound would make each run slower than the one before).
      return (i) =>
        JSON.stringify({
          model: spec.model,
          temperature: 0.7,
          prompt: { name: spec.prompt, variables: { topic: `topic ${i % 97}` } },
          session_id: `bench-${spec.run}-${i % SESSIONS}-${Math.floor(i / (SESSIONS * SESSION_TURNS))}`,
          messages: userMessage(i),
        });
    case 'fixed':
      return () => spec.body;
    case 'embeddings':
      return (i) =>
        JSON.stringify({
          model: spec.model,
          input: Array.from({ length: spec.texts }, (_, k) => `Passage ${k} of document ${spec.run}-${i}. ${PASSAGE_TEXT}`),
          encoding_format: 'float',
        });
  }
}
