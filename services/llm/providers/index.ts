/**
 * The provider adapter registry: one adapter per provider type, one line each. Adding a
 * provider type touches its folder and one line here.
 *
 * Adapters are loaded lazily, per configured provider type ({@link loadAdapters}, called when the
 * providers file has been read): a process whose providers are all `openai` never evaluates the
 * AWS SDK behind `bedrock` nor the Azure and Vertex credential code (docs/llm.md, "Memory").
 */
import { PROVIDER_TYPES, type ProviderAdapter, type ProviderType } from '../types';

/**
 * How each adapter is loaded: a dynamic import, type-checked like a static one. The esbuild
 * bundle keeps the modules but evaluates one only when its loader runs.
 */
const ADAPTER_LOADERS: Readonly<Record<ProviderType, () => Promise<ProviderAdapter>>> = {
  // One line per provider type: type: async () => (await import('./<folder>/index.js')).<adapter>,
  openai: async () => (await import('./openai/index.js')).openaiAdapter,
  anthropic: async () => (await import('./anthropic/index.js')).anthropicAdapter,
  'openai-compatible': async () => (await import('./openai-compatible/index.js')).openaiCompatibleAdapter,
  echo: async () => (await import('./echo/index.js')).echoAdapter,
  'azure-openai': async () => (await import('./azure-openai/index.js')).azureOpenAIAdapter,
  bedrock: async () => (await import('./bedrock/index.js')).bedrockAdapter,
  vertex: async () => (await import('./vertex/index.js')).vertexAdapter,
};

/** The adapters loaded so far, by type. */
const loaded = new Map<ProviderType, ProviderAdapter>();

function knownType(type: ProviderType): void {
  if (!Object.hasOwn(ADAPTER_LOADERS, type)) throw new Error(`no adapter for provider type '${String(type)}' (known: ${PROVIDER_TYPES.join(', ')})`);
}

/**
 * Loads the adapters of these provider types (each once; loading a loaded one again does
 * nothing), so {@link getAdapter} can hand them out. Throws for a type no adapter serves.
 */
export async function loadAdapters(types: Iterable<ProviderType>): Promise<void> {
  const wanted = [...new Set(types)];
  for (const type of wanted) knownType(type);
  await Promise.all(
    wanted
      .filter((type) => !loaded.has(type))
      .map(async (type) => {
        loaded.set(type, await ADAPTER_LOADERS[type]());
      }),
  );
}

/**
 * The adapter for a provider type, loaded by {@link loadAdapters} before; throws for a type no
 * adapter serves and for one not loaded yet.
 */
export function getAdapter(type: ProviderType): ProviderAdapter {
  knownType(type);
  const adapter = loaded.get(type);
  if (!adapter) throw new Error(`the adapter for provider type '${type}' is not loaded: loadAdapters() it first`);
  return adapter;
}

/** Closes the loaded adapters' connection pools (the adapters stay usable; pools reopen on demand). */
export async function closeAdapters(): Promise<void> {
  await Promise.all([...loaded.values()].map((a) => a.close?.()));
}

export { ProviderTransport, retryAfterMs, kindOfStatus } from './transport';
