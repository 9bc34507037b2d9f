import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, exceedsJsonDepth } from '../../services/kit';
import { deepJson } from './cases';

describe('exceedsJsonDepth (the body nesting cap)', () => {
  it('measures the nesting of objects and arrays', () => {
    expect(exceedsJsonDepth(deepJson(10), 10)).toBe(false);
    expect(exceedsJsonDepth(deepJson(11), 10)).toBe(true);
    expect(exceedsJsonDepth(`${'['.repeat(11)}${']'.repeat(11)}`, 10)).toBe(true);
    expect(exceedsJsonDepth(`[${'{"a":1},'.repeat(50)}1]`, 10)).toBe(false);
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    expect(exceedsJsonDepth(JSON.stringify({ a: '{'.repeat(500) }), 10)).toBe(false);
    expect(exceedsJsonDepth(JSON.stringify({ a: `\\"${'['.repeat(500)}` }), 10)).toBe(false);
    expect(exceedsJsonDepth(JSON.stringify({ a: '"' + '{'.repeat(500), b: deepJson(3) }), 10)).toBe(false);
  });

  it('leaves room for real bodies (tool schemas nest a few dozen levels at most)', () => {
    expect(MAX_JSON_DEPTH).toBeGreaterThanOrEqual(64);
    expect(exceedsJsonDepth(deepJson(MAX_JSON_DEPTH - 2), MAX_JSON_DEPTH)).toBe(false);
  });
});
