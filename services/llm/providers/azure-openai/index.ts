/**
 * The Azure OpenAI adapter. The wire format is OpenAI's (the OpenAI adapter's body, answer and
 * stream handling are reused); what differs is where a call goes and how it authenticates:
 * `{baseUrl}/openai/deployments/{deployment}/chat/completions?api-version=...` (and
 * `/embeddings`), the deployment looked up from `azure.deployments` by model (else the model
 * name itself), and either the `api-key` header or an Entra ID bearer token obtained through
 * AKS workload identity (entra.ts). The Responses API goes to `{baseUrl}/openai/v1/responses`
 * (Azure's v1 API, which takes the deployment name as `model` and no `api-version`).
 */
import { toEmbeddings } from '../openai/embeddings';
import { responsesVia } from '../openai/responses';
import { ProviderError, type CallOptions, type PassthroughResponse, type ProviderAdapter, type ProviderConfig } from '../../types';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../../openai';
import type { EmbeddingsRequest, EmbeddingsResponse } from '../../../openai';
import { openaiChunks, toOpenAICompletion, toOpenAIBody } from '../openai';
import { ProviderTransport, errorFromResponse, requireEventStream, readJson } from '../transport';
import { WorkloadIdentityCredential } from './entra';

/** Options of {@link createAzureOpenAIAdapter}. */
export interface AzureOpenAIAdapterOptions {
  /** The transport (pools) to use. @default a transport of its own */
  transport?: ProviderTransport;
  /** Where Entra ID tokens come from. @default workload identity from `process.env` */
  credential?: WorkloadIdentityCredential;
}

/** The deployment that serves a model: the configured one, else the model name itself. */
export function deploymentOf(provider: ProviderConfig, model: string): string {
  const deployments = provider.azure?.deployments;
  return deployments && Object.hasOwn(deployments, model) ? deployments[model]! : model;
}

/** The path of a deployment operation, below the resource's base URL. */
export function deploymentPath(provider: ProviderConfig, model: string, operation: 'chat/completions' | 'embeddings'): string {
  const apiVersion = provider.azure?.apiVersion ?? '2024-10-21';
  // A baseUrl given as https://x.openai.azure.com/openai is accepted as well.
  const prefix = /\/openai$/.test(provider.baseUrl) ? '' : '/openai';
  return `${prefix}/deployments/${encodeURIComponent(deploymentOf(provider, model))}/${operation}?api-version=${encodeURIComponent(apiVersion)}`;
}

/** Creates an Azure OpenAI adapter. */
export function createAzureOpenAIAdapter(options: AzureOpenAIAdapterOptions = {}): ProviderAdapter {
  const transport = options.transport ?? new ProviderTransport();
  const credential = options.credential ?? new WorkloadIdentityCredential();

  const authHeaders = async (provider: ProviderConfig, signal?: AbortSignal): Promise<Record<string, string>> => {
    if ((provider.azure?.auth ?? 'api-key') === 'entra') return { authorization: `Bearer ${await credential.token(provider.name, signal)}` };
    if (!provider.apiKey) throw new ProviderError('auth', `${provider.name}: no API key (apiKeyEnv) and auth is not 'entra'`);
    return { 'api-key': provider.apiKey };
  };

  return {
    type: 'azure-openai',
    async complete(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<ChatCompletion> {
      const headers = { ...(await authHeaders(provider, call.signal)), accept: 'application/json' };
      const res = await transport.post(provider, deploymentPath(provider, request.model, 'chat/completions'), toOpenAIBody(request, 'openai', false), headers, call);
      if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
      return toOpenAICompletion(provider, request, await readJson(provider, res, call.signal));
    },
    async stream(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
      const headers = { ...(await authHeaders(provider, call.signal)), accept: 'text/event-stream' };
      const res = await transport.post(provider, deploymentPath(provider, request.model, 'chat/completions'), toOpenAIBody(request, 'openai', true), headers, call);
      if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
      await requireEventStream(provider, res);
      return openaiChunks(provider, request, res, call.signal);
    },
    async embed(provider: ProviderConfig, request: EmbeddingsRequest, call: CallOptions): Promise<EmbeddingsResponse> {
      const headers = { ...(await authHeaders(provider, call.signal)), accept: 'application/json' };
      // Always floats upstream: the llm service encodes base64 itself when the client asks.
      const body: Record<string, unknown> = { input: request.input, encoding_format: 'float' };
      if (request.dimensions !== undefined) body.dimensions = request.dimensions;
      if (request.user !== undefined) body.user = request.user;
      const res = await transport.post(provider, deploymentPath(provider, request.model, 'embeddings'), body, headers, call);
      if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
      return toEmbeddings(provider, request, await readJson(provider, res, call.signal));
    },
    async responses(provider: ProviderConfig, body: Record<string, unknown>, call: CallOptions & { stream: boolean }): Promise<PassthroughResponse> {
      const model = typeof body.model === 'string' ? deploymentOf(provider, body.model) : body.model;
      const prefix = /\/openai$/.test(provider.baseUrl) ? '' : '/openai';
      return responsesVia(transport, provider, { ...body, model }, await authHeaders(provider, call.signal), call, `${prefix}/v1/responses`);
    },
    close: () => transport.close(),
  };
}


/** The shared Azure OpenAI adapter. */
export const azureOpenAIAdapter: ProviderAdapter = createAzureOpenAIAdapter();
