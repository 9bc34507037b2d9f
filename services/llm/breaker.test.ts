import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitState } from './breaker';
import { DEFAULT_ROUTING } from './config';

function make(overrides: Partial<typeof DEFAULT_ROUTING.breaker> = {}) {
  let now = 1_000_000;
  const changes: CircuitState[] = [];
  const b = new CircuitBreaker({ ...DEFAULT_ROUTING.breaker, ...overrides }, (s) => changes.push(s), () => now);
  return { b, changes, advance: (ms: number) => (now += ms) };
}

function fail(b: CircuitBreaker, times = 1) {
  for (let i = 0; i < times; i++) b.failure(b.tryAcquire()!);
}

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures, refuses at once while open', () => {
    const { b, changes } = make({ failures: 3 });
    fail(b, 2);
    b.success(b.tryAcquire()!);
    fail(b, 2);
    expect(b.state).toBe('closed');
    fail(b, 1);
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBeNull();
    expect(changes).toEqual(['open']);
    expect(b.snapshot()).toMatchObject({ state: 'open', opens: 1 });
  });

  it('opens on the failure rate over the window', () => {
    const { b } = make({ failures: 100, windowSize: 10, minRequests: 10, failureRate: 0.5 });
    for (let i = 0; i < 9; i++) {
      if (i % 2) fail(b);
      else b.success(b.tryAcquire()!);
    }
    expect(b.state).toBe('closed'); // 4 of 9, and below minRequests
    fail(b);
    expect(b.state).toBe('open'); // 5 of 10
  });

  it('half-opens after the cool-down, lets one probe through, closes on success', () => {
    const { b, advance, changes } = make({ failures: 2, cooldownMs: 1000 });
    fail(b, 2);
    advance(999);
    expect(b.state).toBe('open');
    expect(b.snapshot().retryInMs).toBe(1);
    advance(1);
    expect(b.state).toBe('half-open');
    const probe = b.tryAcquire();
    expect(probe?.probe).toBe(true);
    expect(b.tryAcquire()).toBeNull(); // one probe at a time
    b.success(probe!);
    expect(b.state).toBe('closed');
    expect(changes).toEqual(['open', 'half-open', 'closed']);
  });

  it('re-opens for another cool-down when the probe fails', () => {
    const { b, advance } = make({ failures: 1, cooldownMs: 500 });
    fail(b);
    advance(500);
    const probe = b.tryAcquire()!;
    b.failure(probe);
    expect(b.state).toBe('open');
    advance(499);
    expect(b.tryAcquire()).toBeNull();
    advance(1);
    expect(b.tryAcquire()?.probe).toBe(true);
  });

  it('frees the probe slot when a probe ends without a verdict', () => {
    const { b, advance } = make({ failures: 1, cooldownMs: 10 });
    fail(b);
    advance(10);
    b.release(b.tryAcquire()!);
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()?.probe).toBe(true);
  });

  it('ignores late results of calls that started before it opened', () => {
    const { b } = make({ failures: 2 });
    const early = [b.tryAcquire()!, b.tryAcquire()!, b.tryAcquire()!];
    b.failure(early[0]!);
    b.failure(early[1]!);
    const opened = b.snapshot();
    b.failure(early[2]!);
    b.success(b.tryAcquire() ?? { probe: false });
    expect(b.snapshot()).toEqual(opened);
  });
});

describe('CircuitBreaker slow calls (opt-in)', () => {
  it('opens once `failures` calls hang longer than slowCallMs, before they time out', () => {
    const { b, advance } = make({ failures: 3, slowCallMs: 100 });
    const hanging = [b.tryAcquire()!, b.tryAcquire()!, b.tryAcquire()!];
    advance(99);
    expect(b.tryAcquire()).not.toBeNull(); // not slow yet
    advance(1);
    expect(b.tryAcquire()).toBeNull();
    expect(b.state).toBe('open');
    // Their timeouts, arriving later, neither extend nor count.
    for (const p of hanging) b.failure(p);
    expect(b.snapshot()).toMatchObject({ opens: 1, inFlight: 0 });
  });

  it('does nothing without slowCallMs, and forgets calls that ended', () => {
    const { b, advance } = make({ failures: 2 });
    b.tryAcquire();
    b.tryAcquire();
    advance(60_000);
    expect(b.tryAcquire()).not.toBeNull();

    const slow = make({ failures: 2, slowCallMs: 10 });
    const p1 = slow.b.tryAcquire()!;
    const p2 = slow.b.tryAcquire()!;
    slow.b.success(p1);
    slow.b.release(p2);
    slow.advance(1_000);
    expect(slow.b.tryAcquire()).not.toBeNull();
    expect(slow.b.state).toBe('closed');
  });
});
