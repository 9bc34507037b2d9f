/**
 * The provider adapter registry: one adapter per provider type, one line each. Adding a
 * provider type touches its folder and one line here.
 */
import { PROVIDER_TYPES, type ProviderAdapter, type ProviderType } from '../types';
import { anthropicAdapter } from './anthropic';
import { azureOpenAIAdapter } from './azure-openai';
import { bedrockAdapter } from './bedrock';
import { echoAdapter } from './echo';
import { openaiAdapter } from './openai';
import { openaiCompatibleAdapter } from './openai-compatible';
import { vertexAdapter } from './vertex';

const ADAPTERS: Record<ProviderType, ProviderAdapter> = {
  openai: openaiAdapter,
  anthropic: anthropicAdapter,
  'openai-compatible': openaiCompatibleAdapter,
  echo: echoAdapter,
  'azure-openai': azureOpenAIAdapter,
  bedrock: bedrockAdapter,
  vertex: vertexAdapter,
};

/** The adapter for a provider type; throws for a type no adapter serves. */
export function getAdapter(type: ProviderType): ProviderAdapter {
  const adapter = ADAPTERS[type];
  if (!adapter) throw new Error(`no adapter for provider type '${String(type)}' (known: ${PROVIDER_TYPES.join(', ')})`);
  return adapter;
}

/** Closes every adapter's connection pools (the adapters stay usable; pools reopen on demand). */
export async function closeAdapters(): Promise<void> {
  await Promise.all(Object.values(ADAPTERS).map((a) => a.close?.()));
}

export { ProviderTransport, retryAfterMs, kindOfStatus } from './transport';
export { createOpenAIAdapter } from './openai';
export { createAnthropicAdapter } from './anthropic';
export { createAzureOpenAIAdapter } from './azure-openai';
export { createBedrockAdapter } from './bedrock';
export { createVertexAdapter } from './vertex';
