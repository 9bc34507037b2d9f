import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../kit/config';
import { builtinConfig, costOf, loadLlmConfig } from './config';

const dir = mkdtempSync(join(tmpdir(), 'pm-llm-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string, ext = 'yaml'): string {
  const path = join(dir, `providers-${n++}.${ext}`);
  writeFileSync(path, text);
  return path;
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const GOOD = `
providers:
  - name: openai-main
    type: openai
    baseUrl: https://api.openai.com/v1/
    apiKeyEnv: PM_TEST_OPENAI_KEY
    limits: { rpm: 600, tpm: 200000, concurrency: 64 }
    prices: { gpt-4o-mini: { input: 0.15, output: 0.60 } }
  - name: anthropic-main
    type: anthropic
    baseUrl: https://api.anthropic.com
    timeoutMs: 10000
    models: [claude-haiku-4-5]
models:
  chat:
    - { provider: openai-main, model: gpt-4o-mini, weight: 70 }
    - { provider: anthropic-main, model: claude-haiku-4-5, weight: 30 }
routing: { strategy: weighted, fallback: true, retries: { attempts: 2, backoffMs: 100 } }
cache: { enabled: true, ttlSeconds: 600 }
`;

describe('providers file', () => {
  it('loads the documented example with defaults and the API key from its env var', () => {
    const c = loadLlmConfig(file(GOOD), { PM_TEST_OPENAI_KEY: 'sk-test' });
    expect(c.providers[0]).toMatchObject({
      name: 'openai-main',
      baseUrl: 'https://api.openai.com/v1',
      apiKey: 'sk-test',
      timeoutMs: 30000,
      connectTimeoutMs: 5000,
      firstByteTimeoutMs: 30000,
      limits: { rpm: 600, tpm: 200000, concurrency: 64 },
    });
    expect(c.providers[1]).toMatchObject({ timeoutMs: 10000, connectTimeoutMs: 5000, firstByteTimeoutMs: 10000 });
    expect(c.models.chat).toEqual([
      { provider: 'openai-main', model: 'gpt-4o-mini', weight: 70 },
      { provider: 'anthropic-main', model: 'claude-haiku-4-5', weight: 30 },
    ]);
    expect(c.routing).toMatchObject({ strategy: 'weighted', fallback: true, retries: { attempts: 2, backoffMs: 100, maxRetryAfterMs: 2000 } });
    expect(c.routing.breaker.failures).toBe(5);
    expect(c.cache).toEqual({ enabled: true, ttlSeconds: 600 });
  });

  it('reads JSON too', () => {
    const c = loadLlmConfig(file(JSON.stringify({ providers: [{ name: 'local', type: 'openai-compatible', baseUrl: 'http://127.0.0.1:8000/v1' }] }), 'json'), {});
    expect(c.providers[0]!.type).toBe('openai-compatible');
    expect(c.models).toEqual({});
  });

  it('has a built-in echo provider when no file is set', () => {
    const c = loadLlmConfig(undefined, {});
    expect(c).toEqual(builtinConfig());
    expect(c.providers.map((p) => p.type)).toEqual(['echo']);
    expect(Object.keys(c.models)).toEqual(['echo']);
  });

  it.each([
    ['providers: []', 'providers: must list at least one provider'],
    ['providers:\n  - { name: a, type: openai }', 'providers[0].baseUrl: is required'],
    ['providers:\n  - { name: a, type: gemini, baseUrl: "http://x" }', 'providers[0].type: must be one of'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "ftp://x" }', 'providers[0].baseUrl: must use http: or https:'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x", timeoutMs: -1 }', 'providers[0].timeoutMs: must be at least 1'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x", timeoutMs: "30s" }', 'providers[0].timeoutMs: must be a number'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x", limits: { rpm: 1.5 } }', 'providers[0].limits.rpm: must be a whole number'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x", limits: { rps: 1 } }', 'providers[0].limits.rps: is not a known field'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x", prices: { m: { input: 1 } } }', 'providers[0].prices.m.output: is required'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x" }\n  - { name: a, type: openai, baseUrl: "http://y" }', 'providers[1].name: duplicate'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x" }\nmodels:\n  chat: [{ provider: b, model: m }]', 'models.chat[0].provider: names no provider'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x" }\nmodels:\n  chat: [{ provider: a, model: m, weight: -2 }]', 'models.chat[0].weight: must be at least 0'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x" }\nrouting: { strategy: random }', 'routing.strategy: must be one of weighted, priority, least-latency, cheapest'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x" }\nrouting: { retries: { attempts: 99 } }', 'routing.retries.attempts: must be at least 0 and at most 10'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x" }\ncache: { ttlSeconds: 0 }', 'cache.ttlSeconds: must be at least 1'],
    ['providers:\n  - { name: a, type: openai, baseUrl: "http://x" }\ncahce: {}', 'cahce: is not a known field'],
    ['providers: [', 'is not valid YAML'],
  ])('rejects %j naming the file and the field', (text, expected) => {
    const path = file(text);
    const err = errorOf(() => loadLlmConfig(path, {}));
    expect(err.variable).toBe(path);
    expect(err.message).toContain(path);
    expect(err.message).toContain(expected);
  });

  it('names the missing API key variable, and never prints a key', () => {
    const path = file(GOOD);
    const err = errorOf(() => loadLlmConfig(path, {}));
    expect(err.variable).toBe('PM_TEST_OPENAI_KEY');
    expect(err.message).toContain('providers[0].apiKeyEnv');
    expect(err.message).toContain(path);
  });

  it('names PROVIDERS_FILE when the file cannot be read', () => {
    const err = errorOf(() => loadLlmConfig(join(dir, 'missing.yaml'), {}));
    expect(err.variable).toBe('PROVIDERS_FILE');
    expect(err.message).toContain('missing.yaml');
    expect(err.message).toContain('ENOENT');
  });

  it('prices usage per million tokens', () => {
    const c = loadLlmConfig(file(GOOD), { PM_TEST_OPENAI_KEY: 'k' });
    const usd = costOf(c.providers[0]!, 'gpt-4o-mini', { prompt_tokens: 1_000_000, completion_tokens: 500_000 });
    expect(usd).toBeCloseTo(0.15 + 0.3, 12);
    expect(costOf(c.providers[1]!, 'claude-haiku-4-5', { prompt_tokens: 10, completion_tokens: 10 })).toBe(0);
  });
});
