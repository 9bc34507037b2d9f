import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, checkJsonValue, invalidTextReason, jsonTextNeedsCheck } from './json-input';

describe('invalidTextReason', () => {
  it('accepts valid Unicode, surrogate pairs included', () => {
    for (const text of ['', 'plain', 'ünï 名', '😀 pair', '\u{10FFFF}', 'tab\tand\nnewline', '\uFFFD']) expect(invalidTextReason(text)).toBeUndefined();
  });

  it('names NUL and each kind of unpaired surrogate', () => {
    expect(invalidTextReason('a\u0000b')).toMatch(/NUL/);
    expect(invalidTextReason('a\uD800b')).toMatch(/unpaired UTF-16 surrogate \(\\ud800\)/);
    expect(invalidTextReason('end\uD83D')).toMatch(/\\ud83d/);
    expect(invalidTextReason('\uDC00start')).toMatch(/\\udc00/);
    // Two high surrogates in a row: the first is unpaired.
    expect(invalidTextReason('\uD83D\uD83D\uDE00')).toMatch(/\\ud83d/);
    // Reversed pair.
    expect(invalidTextReason('\uDE00\uD83D')).toMatch(/\\ude00/);
  });
});

describe('checkJsonValue', () => {
  const parse = (text: string) => checkJsonValue(JSON.parse(text));

  it('names the field of invalid text, in values and in keys', () => {
    expect(parse('{"messages":[{"role":"user","content":"a\\u0000"}]}')?.toBody().error).toMatchObject({ param: 'messages[0].content', code: 'invalid_text' });
    expect(parse('{"template":"\\ud800"}')?.toBody().error).toMatchObject({ param: 'template', code: 'invalid_text' });
    expect(parse('{"variables":{"x\\udc00":"1"}}')?.toBody().error).toMatchObject({ param: 'variables.x\udc00', code: 'invalid_text' });
    expect(parse('"\\u0000"')?.toBody().error).toMatchObject({ param: 'body' });
    expect(parse('{"a":"\\ud83d\\ude00"}')).toBeUndefined();
  });

  it('refuses __proto__ keys anywhere, saying the name is reserved, however they are spelled', () => {
    for (const text of ['{"__proto__":{"x":1}}', '{"prompt":{"variables":{"__proto__":"v"}}}', '{"a":[{"\\u005f_proto__":1}]}']) {
      const err = parse(text)!.toBody().error;
      expect(err.code).toBe('reserved_name');
      expect(err.message).toMatch(/reserved/);
      expect(err.param).toMatch(/__proto__$/);
    }
    expect(parse('{"metadata":{"constructor":{"prototype":{"x":1}}}}')!.toBody().error).toMatchObject({ param: 'metadata.constructor.prototype', code: 'reserved_name' });
  });

  it('accepts the other names Object.prototype answers as ordinary keys', () => {
    expect(parse('{"variables":{"constructor":"c","toString":"t","hasOwnProperty":"h","prototype":"p","valueOf":"v"}}')).toBeUndefined();
    expect(parse('{"constructor":{"name":"x"}}')).toBeUndefined();
  });

  it('keeps the nesting cap', () => {
    expect(checkJsonValue(JSON.parse(`${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}`))?.toBody().error).toMatchObject({ param: 'body', code: 'too_deep' });
  });

  it('lets plain bodies skip the walk', () => {
    expect(jsonTextNeedsCheck(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi ünï 😀' }] }))).toBe(false);
    for (const text of ['{"a":"\\u0000"}', '{"__proto__":1}', '{"constructor":{}}', `${'['.repeat(200)}${']'.repeat(200)}`]) expect(jsonTextNeedsCheck(text)).toBe(true);
  });
});
