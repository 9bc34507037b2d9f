import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GptEncoding } from 'gpt-tokenizer/GptEncoding';
import { countTokens, encode } from 'gpt-tokenizer/encoding/o200k_base';
import { afterAll, describe, expect, it } from 'vitest';
import { O200K_RANKS_FILE, loadRanks, o200k, packageRanks, ranksForJson } from './o200k';

describe('o200k tokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'o200k-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the ranks the build writes as JSON, equal to the package module', () => {
    writeFileSync(join(dir, O200K_RANKS_FILE), JSON.stringify(ranksForJson(packageRanks())));
    const fromJson = loadRanks(dir);
    expect(fromJson).toEqual(packageRanks());
    // Ranks that are not valid UTF-8 stay byte arrays through JSON.
    expect(fromJson.some((r) => Array.isArray(r))).toBe(true);
  });

  it('counts and encodes from the JSON ranks exactly as gpt-tokenizer does', () => {
    const fromJson = GptEncoding.getEncodingApi('o200k_base', () => loadRanks(dir));
    for (const text of ['Hello, world!', 'naïve café 東京 🚀', '    indented\n\tcode();', 'a'.repeat(500), '\u00ff\u0100 bytes']) {
      expect(fromJson.encode(text)).toEqual(encode(text));
      expect(fromJson.countTokens(text)).toBe(countTokens(text));
    }
  });

  it('falls back to the package without the JSON, and keeps one instance per process', () => {
    expect(loadRanks(join(dir, 'missing'))).toBe(packageRanks());
    expect(o200k()).toBe(o200k());
    expect(o200k().countTokens('Hello, world!')).toBe(countTokens('Hello, world!'));
  });

  it('refuses ranks with holes, which JSON would turn into nulls', () => {
    const holey: Array<string | number[]> = ['a'];
    holey[2] = 'c';
    expect(() => ranksForJson(holey)).toThrow(/hole at 1/);
  });
});
