import type { BreakerConfig } from './config';

/** The state of a circuit; the metric `promptmesh_circuit_state` encodes it as 0, 1, 2. */
export type CircuitState = 'closed' | 'half-open' | 'open';

/** The metric value of each state. */
export const CIRCUIT_STATE_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** Permission for one call, returned by {@link CircuitBreaker.tryAcquire}; report its outcome once. */
export interface BreakerPermit {
  /** True when this call is a half-open probe: its outcome closes or re-opens the circuit. */
  readonly probe: boolean;
  /** When the call was let through (the breaker's clock). */
  readonly startedAt?: number;
}

/** What `GET /v1/providers` shows of a circuit. */
export interface CircuitSnapshot {
  state: CircuitState;
  consecutiveFailures: number;
  /** Failure share over the recent window (0..1), or null before `minRequests` calls. */
  failureRate: number | null;
  /** When the circuit last opened (ISO time), or null. */
  openedAt: string | null;
  /** While open: milliseconds until probes are let through. */
  retryInMs: number | null;
  /** How many times the circuit has opened since start. */
  opens: number;
  /** Calls let through while closed that have not ended yet. */
  inFlight: number;
}

/**
 * A circuit breaker for one provider (per process).
 *
 * - closed: calls pass; the circuit opens after `failures` consecutive failures, or when the
 *   failure share over the last `windowSize` calls reaches `failureRate` (once `minRequests`
 *   calls are in the window).
 * - open: calls are refused at once (the router skips the provider without waiting) until
 *   `cooldownMs` has passed; then the circuit is half-open.
 * - half-open: up to `halfOpenProbes` calls at a time go through; a successful probe closes the
 *   circuit, a failed one opens it again for another cool-down.
 *
 * With `slowCallMs` set, calls still outstanding after that long count as failing while they
 * hang: once `failures` of them are outstanding, the next call opens the circuit at once instead
 * of waiting for their timeouts (a provider that accepts connections and never answers).
 *
 * Outcomes of calls that started before the circuit opened are ignored, so a burst of late
 * failures does not extend the cool-down, and late successes do not close it.
 */
export class CircuitBreaker {
  private state_: CircuitState = 'closed';
  private consecutive = 0;
  private readonly window: boolean[] = [];
  private openedAtMs = 0;
  private probesInFlight = 0;
  private opens = 0;
  /** Calls let through while closed, not ended yet; cleared when the circuit opens. */
  private readonly inFlight = new Set<BreakerPermit>();

  constructor(
    private readonly config: BreakerConfig,
    /** Called on every state change (metrics, logs). */
    private readonly onChange: (state: CircuitState) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {}

  /** The current state (an open circuit whose cool-down has passed reads as half-open). */
  get state(): CircuitState {
    if (this.state_ === 'open' && this.now() - this.openedAtMs >= this.config.cooldownMs) this.transition('half-open');
    return this.state_;
  }

  /** Asks to make a call: a permit, or null when the circuit refuses (open, or probes busy). */
  tryAcquire(): BreakerPermit | null {
    const state = this.state;
    const now = this.now();
    if (state === 'closed') {
      if (this.config.slowCallMs !== undefined && this.hanging(now) >= this.config.failures) {
        this.open();
        return null;
      }
      const permit = { probe: false, startedAt: now };
      this.inFlight.add(permit);
      return permit;
    }
    if (state === 'half-open' && this.probesInFlight < this.config.halfOpenProbes) {
      this.probesInFlight++;
      return { probe: true, startedAt: now };
    }
    return null;
  }

  /** The call succeeded. */
  success(permit: BreakerPermit): void {
    if (permit.probe) {
      this.probesInFlight = Math.max(0, this.probesInFlight - 1);
      if (this.state_ === 'half-open') this.close();
      return;
    }
    if (!this.inFlight.delete(permit) || this.state_ !== 'closed') return;
    this.consecutive = 0;
    this.record(false);
  }

  /** The call failed in a way that counts against the provider (5xx, timeout, reset, ...). */
  failure(permit: BreakerPermit): void {
    if (permit.probe) {
      this.probesInFlight = Math.max(0, this.probesInFlight - 1);
      if (this.state_ === 'half-open') this.open();
      return;
    }
    if (!this.inFlight.delete(permit) || this.state_ !== 'closed') return;
    this.consecutive++;
    this.record(true);
    if (this.consecutive >= this.config.failures) return this.open();
    const rate = this.failureRate();
    if (rate !== null && rate >= this.config.failureRate) this.open();
  }

  /** The call ended without saying anything about the provider (client left, bad request). */
  release(permit: BreakerPermit): void {
    if (permit.probe) this.probesInFlight = Math.max(0, this.probesInFlight - 1);
    else this.inFlight.delete(permit);
  }

  snapshot(): CircuitSnapshot {
    const state = this.state;
    return {
      state,
      consecutiveFailures: this.consecutive,
      failureRate: this.failureRate(),
      openedAt: this.openedAtMs ? new Date(this.openedAtMs).toISOString() : null,
      retryInMs: state === 'open' ? Math.max(0, this.openedAtMs + this.config.cooldownMs - this.now()) : null,
      opens: this.opens,
      inFlight: this.inFlight.size,
    };
  }

  /** Calls outstanding for `slowCallMs` or longer. */
  private hanging(now: number): number {
    let n = 0;
    for (const p of this.inFlight) if (now - (p.startedAt ?? now) >= this.config.slowCallMs!) n++;
    return n;
  }

  private failureRate(): number | null {
    if (this.window.length < this.config.minRequests) return null;
    return this.window.filter(Boolean).length / this.window.length;
  }

  private record(failed: boolean): void {
    this.window.push(failed);
    if (this.window.length > this.config.windowSize) this.window.shift();
  }

  private open(): void {
    this.inFlight.clear();
    this.openedAtMs = this.now();
    this.opens++;
    this.transition('open');
  }

  private close(): void {
    this.consecutive = 0;
    this.window.length = 0;
    this.transition('closed');
  }

  private transition(state: CircuitState): void {
    if (state === this.state_) {
      if (state === 'open') this.onChange(state);
      return;
    }
    this.state_ = state;
    this.onChange(state);
  }
}
