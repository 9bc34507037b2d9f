import { describe, expect, it } from 'vitest';
import { REDACTED, SecretScrubber, secretsOf } from './secret-scrubber';
import type { ProviderConfig } from './types';

const provider: ProviderConfig = {
  name: 'p',
  type: 'openai-compatible',
  baseUrl: 'http://x',
  timeoutMs: 1,
  connectTimeoutMs: 1,
  firstByteTimeoutMs: 1,
  apiKey: 'plainConfiguredKey123',
  headers: { 'x-proxy-token': 'proxyHeaderValue456', 'anthropic-version': '2023-06-01' },
};

describe('SecretScrubber', () => {
  const scrubber = SecretScrubber.forProviders([provider]);

  it('knows the configured secrets: the API key and secret-named headers, not the others', () => {
    expect(secretsOf(provider)).toEqual(['plainConfiguredKey123', 'proxyHeaderValue456']);
  });

  it.each([
    ['the key anywhere', 'bad key plainConfiguredKey123 given'],
    ['the key JSON-escaped inside JSON', JSON.stringify({ echoed: JSON.stringify({ k: 'plainConfiguredKey123' }) })],
    ['the key URL-encoded', `url=${encodeURIComponent('plainConfiguredKey123')}`],
    ['a secret header value', 'proxy said proxyHeaderValue456'],
    ['an echoed Authorization header (JSON)', '{"authorization":"Bearer someoneElsesToken999"}'],
    ['an echoed Authorization header (HTTP)', 'Authorization: Basic dXNlcjpwYXNzd29yZA=='],
    ['an x-api-key header', "x-api-key: 'anotherKeyValue'"],
    ['an api_key field', 'api_key=zzzzzzzzzzzz&x=1'],
    ['an OpenAI key', 'Incorrect API key provided: sk-proj-abcdefghijklmnop1234'],
    ['an Anthropic key', 'key sk-ant-api03-abcdefghijklmnopqrstuv'],
    ['an AWS access key id', 'AKIAIOSFODNN7EXAMPLE is not allowed'],
    ['a Google API key', 'AIzaSyA-1234567890abcdefghijklmnopqrstu'],
    ['a JWT', 'token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'],
  ])('scrubs %s', (_what, text) => {
    const out = scrubber.scrub(text);
    expect(out).toContain(REDACTED);
    for (const secret of ['plainConfiguredKey123', 'proxyHeaderValue456', 'someoneElsesToken999', 'dXNlcjpwYXNzd29yZA', 'anotherKeyValue', 'zzzzzzzzzzzz', 'abcdefghijklmnop', 'IOSFODNN7EXAMPLE', '1234567890abcdefghij', 'dozjgNryP4J3']) {
      expect(out).not.toContain(secret);
    }
  });

  it('leaves ordinary provider messages alone', () => {
    for (const text of [
      "max_tokens: 100000 is too large for model 'gpt-4o'",
      'The server had an error while processing your request.',
      'Rate limit reached for requests: 600 rpm, anthropic-version 2023-06-01',
      'Number of request tokens has exceeded your per-minute rate limit',
    ]) {
      expect(scrubber.scrub(text)).toBe(text);
    }
  });

  it('ignores configured secrets too short to match safely (the patterns still apply)', () => {
    expect(new SecretScrubber(['short']).scrub('a short word')).toBe('a short word');
  });
});
