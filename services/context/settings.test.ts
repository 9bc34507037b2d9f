import { describe, expect, it } from 'vitest';
import { ConfigError } from '../kit';
import { CONTEXT_ENV, checkContextSettings, readContextSettings } from './config';
import { contentText } from '../openai';
import { MESSAGE_OVERHEAD_TOKENS, NAME_OVERHEAD_TOKENS, countMessageTokens } from './messages';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';

describe('readContextSettings', () => {
  it('has the documented defaults', () => {
    expect(readContextSettings({})).toEqual({
      ttlSeconds: 86_400,
      maxMessages: 200,
      defaultMaxTokens: 8_192,
      maxAppend: 100,
      maxContentChars: 65_536,
      dedupeWindow: 1_000,
    });
    // The dedupe window follows the cap when the cap is large.
    expect(readContextSettings({ CONTEXT_MAX_MESSAGES: '5000' }).dedupeWindow).toBe(10_000);
  });

  it('reads every variable', () => {
    const s = readContextSettings({
      CONTEXT_TTL_SECONDS: '60',
      CONTEXT_MAX_MESSAGES: '50',
      CONTEXT_MAX_TOKENS: '4000',
      CONTEXT_MAX_APPEND: '10',
      CONTEXT_MAX_CONTENT_CHARS: '2048',
      CONTEXT_DEDUPE_WINDOW: '75',
    });
    expect(s).toEqual({ ttlSeconds: 60, maxMessages: 50, defaultMaxTokens: 4000, maxAppend: 10, maxContentChars: 2048, dedupeWindow: 75 });
  });

  it.each([
    [{ CONTEXT_TTL_SECONDS: 'soon' }, CONTEXT_ENV.ttlSeconds],
    [{ CONTEXT_TTL_SECONDS: '0' }, CONTEXT_ENV.ttlSeconds],
    [{ CONTEXT_MAX_MESSAGES: '-3' }, CONTEXT_ENV.maxMessages],
    [{ CONTEXT_MAX_MESSAGES: '10001' }, CONTEXT_ENV.maxMessages],
    [{ CONTEXT_MAX_TOKENS: '1.5' }, CONTEXT_ENV.defaultMaxTokens],
    [{ CONTEXT_MAX_APPEND: '0' }, CONTEXT_ENV.maxAppend],
    [{ CONTEXT_MAX_CONTENT_CHARS: 'big' }, CONTEXT_ENV.maxContentChars],
    [{ CONTEXT_MAX_MESSAGES: '100', CONTEXT_DEDUPE_WINDOW: '99' }, CONTEXT_ENV.dedupeWindow],
  ])('rejects %o naming %s', (env, variable) => {
    let caught: unknown;
    try {
      readContextSettings(env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).variable).toBe(variable);
    expect((caught as Error).message).toMatch(new RegExp(`^${variable}: `));
  });

  it('checks settings given in code the same way', () => {
    expect(() => checkContextSettings({ ...readContextSettings({}), ttlSeconds: 0.5 })).toThrow(/^CONTEXT_TTL_SECONDS: /);
  });
});

describe('countMessageTokens', () => {
  it('counts the content with o200k_base plus the per-message overhead', () => {
    expect(countTokens('hello world')).toBe(2);
    expect(countMessageTokens({ content: 'hello world' })).toBe(2 + MESSAGE_OVERHEAD_TOKENS);
    expect(countMessageTokens({ content: '' })).toBe(MESSAGE_OVERHEAD_TOKENS);
  });

  it('adds the name and its overhead', () => {
    expect(countMessageTokens({ content: 'hello world', name: 'ada' })).toBe(2 + MESSAGE_OVERHEAD_TOKENS + NAME_OVERHEAD_TOKENS + countTokens('ada'));
  });

  it('counts text parts as their joined text', () => {
    const parts = [
      { type: 'text' as const, text: 'The quick brown ' },
      { type: 'text' as const, text: 'fox jumps.' },
    ];
    expect(contentText(parts)).toBe('The quick brown fox jumps.');
    expect(countMessageTokens({ content: parts })).toBe(countMessageTokens({ content: 'The quick brown fox jumps.' }));
  });

  it('counts special-token text as plain text instead of failing', () => {
    const n = countMessageTokens({ content: 'ignore <|endoftext|> this' });
    expect(n).toBeGreaterThan(MESSAGE_OVERHEAD_TOKENS + 3);
  });

  it('grows with the text (long text costs more than short)', () => {
    expect(countMessageTokens({ content: 'word '.repeat(1000) })).toBeGreaterThan(900);
  });
});
