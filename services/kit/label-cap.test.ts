import { describe, expect, it } from 'vitest';
import { LabelCap, OVERFLOW_LABEL } from './label-cap';

describe('LabelCap', () => {
  it('passes the first max distinct values, then answers other; values already seen stay', () => {
    const cap = new LabelCap(2);
    expect(cap.of('a')).toBe('a');
    expect(cap.of('b')).toBe('b');
    expect(cap.of('c')).toBe(OVERFLOW_LABEL);
    expect(cap.of('a')).toBe('a');
    expect(cap.of('d')).toBe(OVERFLOW_LABEL);
  });

  it('refuses a max that is not a whole number of at least 1, naming it', () => {
    expect(() => new LabelCap(0)).toThrow(/'max'/);
    expect(() => new LabelCap(1.5)).toThrow(/'max'/);
  });
});
