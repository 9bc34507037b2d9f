/**
 * ProviderConfig objects pointing at a fake provider, for tests of the adapters and of the llm
 * service: `fakeProviderConfig(fake, 'openai', { name: 'a' })`.
 */
import type { ProviderConfig, ProviderType } from '../../services/llm/types';
import type { FakeProvider } from './server';

/**
 * A provider of `type` served by `fake`: the OpenAI base URL is `${fake.url}/v1`, the Anthropic
 * one `fake.url`. Timeouts are short (the fake answers at once unless told otherwise).
 */
export function fakeProviderConfig(fake: FakeProvider, type: ProviderType, overrides: Partial<ProviderConfig> = {}): ProviderConfig {
  return {
    name: `fake-${type}`,
    type,
    baseUrl: type === 'anthropic' ? fake.url : `${fake.url}/v1`,
    timeoutMs: 10_000,
    connectTimeoutMs: 2_000,
    firstByteTimeoutMs: 5_000,
    ...overrides,
  };
}
