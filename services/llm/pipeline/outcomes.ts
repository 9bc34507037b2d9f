import { ApiError } from '../../kit/errors';
import { ProviderError } from '../types';
import type { LlmCall } from './stage';

/** Why a candidate could not even be tried. */
export type Unavailability =
  | { kind: 'open'; provider: string; retryInMs: number }
  | { kind: 'limited'; provider: string; retryAfterMs: number; reason: string };

/** Why one attempt on one provider did not answer; routing sums these up when nobody did. */
export type AttemptOutcome = (Unavailability | { kind: 'failed'; provider: string; error: ProviderError }) & {
  /** The error the attempt ended with (so an outcome is recorded once, by the first stage that catches it). */
  cause: Error;
};

/** The candidate cannot be tried now: its circuit is open or one of its limits is reached. */
export class CandidateUnavailable extends Error {
  readonly outcome: AttemptOutcome;
  constructor(why: Unavailability) {
    super(why.kind === 'open' ? `${why.provider}: circuit open` : `${why.provider}: ${why.reason}`);
    this.name = 'CandidateUnavailable';
    this.outcome = { ...why, cause: this };
  }
}

/** The caller went away (its signal aborted); 499 in the access log, nobody reads the body. */
export class ClientGone extends ApiError {
  constructor() {
    super({ status: 499, type: 'client_closed_request', message: 'the client went away before the answer was ready', code: 'client_closed' });
  }
}

/**
 * Adds the outcome of a failed attempt to the call's journal, unless a stage further in did
 * already. Returns false for errors that are no attempt outcome (an ApiError, the client leaving).
 */
export function recordOutcome(call: LlmCall, err: unknown, provider: string): boolean {
  let outcome: AttemptOutcome;
  if (err instanceof CandidateUnavailable) outcome = err.outcome;
  else if (err instanceof ProviderError) outcome = { kind: 'failed', provider, error: err, cause: err };
  else return false;
  if (!call.outcomes.some((o) => o.cause === err)) call.outcomes.push(outcome);
  return true;
}
