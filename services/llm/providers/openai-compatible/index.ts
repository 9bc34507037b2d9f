/**
 * The `openai-compatible` adapter: servers that speak the OpenAI Chat Completions API (vLLM,
 * Ollama, TGI, LM Studio, ...). The OpenAI adapter in this flavour: the API key is optional,
 * missing usage is counted locally, and `max_completion_tokens` is sent as `max_tokens`.
 * `baseUrl` is the server's OpenAI root, e.g. `http://vllm:8000/v1` or `http://ollama:11434/v1`.
 */
import type { ProviderAdapter } from '../../types';
import { createOpenAIAdapter } from '../openai';

/** The shared OpenAI-compatible adapter. */
export const openaiCompatibleAdapter: ProviderAdapter = createOpenAIAdapter({ type: 'openai-compatible' });
