import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, countJsonBrackets, exceedsJsonDepth } from '../../services/kit';
import { deepJson } from './cases';

describe('the body nesting cap', () => {
  it('measures the nesting of objects and arrays, a top-level object being depth 1', () => {
    expect(exceedsJsonDepth(JSON.parse(deepJson(10)), 10)).toBe(false);
    expect(exceedsJsonDepth(JSON.parse(deepJson(11)), 10)).toBe(true);
    expect(exceedsJsonDepth(JSON.parse(`${'['.repeat(11)}${']'.repeat(11)}`), 10)).toBe(true);
    expect(exceedsJsonDepth(JSON.parse(`[${'{"a":1},'.repeat(500)}1]`), 10)).toBe(false);
    expect(exceedsJsonDepth('text', 0)).toBe(false);
  });

  it('walks values far deeper than the stack allows', () => {
    const text = deepJson(200_000);
    expect(countJsonBrackets(text)).toBe(200_000);
    expect(exceedsJsonDepth(JSON.parse(text), MAX_JSON_DEPTH)).toBe(true);
  });

  it('counts brackets as an upper bound (strings included), so ordinary bodies are never walked', () => {
    expect(countJsonBrackets(JSON.stringify({ a: '{['.repeat(5), b: [{}] }))).toBe(13);
    const chat = JSON.stringify({ model: 'm', messages: Array.from({ length: 20 }, () => ({ role: 'user', content: 'hi' })) });
    expect(countJsonBrackets(chat)).toBeLessThanOrEqual(MAX_JSON_DEPTH);
  });

  it('leaves room for real bodies (tool schemas nest a few dozen levels at most)', () => {
    expect(MAX_JSON_DEPTH).toBeGreaterThanOrEqual(64);
    expect(exceedsJsonDepth(JSON.parse(deepJson(MAX_JSON_DEPTH)), MAX_JSON_DEPTH)).toBe(false);
  });
});
