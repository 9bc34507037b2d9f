/**
 * ProviderConfig objects pointing at a fake provider, for tests of the adapters and of the llm
 * service: `fakeProviderConfig(fake, 'openai', { name: 'a' })`.
 */
import type { ProviderConfig, ProviderType } from '../../services/llm/types';
import type { FakeProvider } from './server';

/**
 * A provider of `type` served by `fake`: the OpenAI base URL is `${fake.url}/v1`, every other
 * type's (Anthropic, Azure OpenAI, Bedrock, Vertex) is `fake.url`. Cloud types get their
 * settings (`azure`, `bedrock`, `vertex`) from `overrides`. Timeouts are short (the fake answers
 * at once unless told otherwise).
 */
export function fakeProviderConfig(fake: FakeProvider, type: ProviderType, overrides: Partial<ProviderConfig> = {}): ProviderConfig {
  return {
    name: `fake-${type}`,
    type,
    baseUrl: type === 'openai' || type === 'openai-compatible' ? `${fake.url}/v1` : fake.url,
    timeoutMs: 10_000,
    connectTimeoutMs: 2_000,
    firstByteTimeoutMs: 5_000,
    ...overrides,
  };
}
