/**
 * The Vertex adapter: Gemini through `generateContent` and `streamGenerateContent` (SSE,
 * `alt=sse`), hosted either on Vertex AI (`project` and `location` set; a bearer token from
 * Application Default Credentials, adc.ts: GKE workload identity or a service-account key) or on
 * the Gemini API (`apiKeyEnv` set; the key in `x-goog-api-key`). Embeddings: Vertex AI
 * `predict` (text-embedding and gemini-embedding models), Gemini API `batchEmbedContents`.
 * Translation in translate.ts.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../../openai';
import { parseSse } from '../../../openai';
import { ProviderError, type CallOptions, type ProviderAdapter, type ProviderConfig } from '../../types';
import type { EmbeddingsRequest, EmbeddingsResponse } from '../../../openai';
import { countTextTokens } from '../tokens';
import { refuse } from '../translation';
import { ProviderTransport, errorFromResponse, requireEventStream, readJson, transportError, upstreamText, type ProviderResponse } from '../transport';
import { ApplicationDefaultCredentials } from './adc';
import { isVertexAi, geminiToChunks, geminiToCompletion, toGenerateContentBody } from './translate';

/** Options of {@link createVertexAdapter}. */
export interface VertexAdapterOptions {
  /** The transport (pools) to use. @default a transport of its own */
  transport?: ProviderTransport;
  /** Where Vertex AI tokens come from. @default ADC from `process.env` */
  credentials?: ApplicationDefaultCredentials;
}

/**
 * The path of a model method: Vertex AI's publisher model path or the Gemini API's, at the API
 * versions Google's own SDK (`@google/genai`) uses: v1beta1 and v1.
 */
export function methodPath(provider: ProviderConfig, model: string, method: string): string {
  const m = encodeURIComponent(model);
  const v = provider.vertex;
  if (v?.project) return `/v1beta1/projects/${encodeURIComponent(v.project)}/locations/${encodeURIComponent(v.location ?? 'us-central1')}/publishers/google/models/${m}:${method}`;
  return `/v1/models/${m}:${method}`;
}

/** Creates a Vertex (Gemini) adapter. */
export function createVertexAdapter(options: VertexAdapterOptions = {}): ProviderAdapter {
  const transport = options.transport ?? new ProviderTransport();
  const credentials = options.credentials ?? new ApplicationDefaultCredentials();

  const authHeaders = async (provider: ProviderConfig, signal?: AbortSignal): Promise<Record<string, string>> => {
    if (isVertexAi(provider)) return { authorization: `Bearer ${await credentials.token(provider.name, signal)}` };
    if (!provider.apiKey) throw new ProviderError('auth', `${provider.name}: the Gemini API needs apiKeyEnv (or set project for Vertex AI)`);
    return { 'x-goog-api-key': provider.apiKey };
  };

  const post = async (provider: ProviderConfig, path: string, body: unknown, accept: string, call: CallOptions): Promise<ProviderResponse> => {
    const res = await transport.post(provider, path, body, { ...(await authHeaders(provider, call.signal)), accept }, call);
    if (res.statusCode >= 400) throw await errorFromResponse(provider, res);
    return res;
  };

  return {
    type: 'vertex',
    async complete(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<ChatCompletion> {
      const res = await post(provider, methodPath(provider, request.model, 'generateContent'), toGenerateContentBody(request, provider), 'application/json', call);
      return geminiToCompletion(provider, request, await readJson(provider, res, call.signal));
    },
    async stream(provider: ProviderConfig, request: ChatRequest, call: CallOptions): Promise<AsyncIterable<ChatCompletionChunk>> {
      const res = await post(provider, `${methodPath(provider, request.model, 'streamGenerateContent')}?alt=sse`, toGenerateContentBody(request, provider), 'text/event-stream', call);
      await requireEventStream(provider, res);
      const events = (async function* () {
        for await (const ev of parseSse(res.body)) {
          try {
            yield JSON.parse(ev.data) as unknown;
          } catch {
            throw new ProviderError('malformed', `${provider.name}: stream event is not valid JSON`);
          }
        }
      })();
      return (async function* () {
        let finished = false;
        try {
          yield* geminiToChunks(provider, request, events, (text) => upstreamText(provider, text));
          finished = true;
        } catch (err) {
          throw transportError(provider, err, call.signal);
        } finally {
          if (!finished) res.body.destroy();
        }
      })();
    },
    async embed(provider: ProviderConfig, request: EmbeddingsRequest, call: CallOptions): Promise<EmbeddingsResponse> {
      const inputs = typeof request.input === 'string' ? [request.input] : request.input;
      if (!inputs.every((x): x is string => typeof x === 'string')) throw refuse('input', 'Gemini embedding models take text, not token arrays');
      const dims = request.dimensions !== undefined ? { outputDimensionality: request.dimensions } : {};
      if (isVertexAi(provider)) {
        const res = await post(provider, methodPath(provider, request.model, 'predict'), { instances: inputs.map((content) => ({ content })), ...(request.dimensions !== undefined ? { parameters: dims } : {}) }, 'application/json', call);
        const body = await readJson(provider, res, call.signal);
        const predictions: any[] = Array.isArray(body?.predictions) ? body.predictions : [];
        if (predictions.length !== inputs.length || !predictions.every((p) => Array.isArray(p?.embeddings?.values))) throw new ProviderError('malformed', `${provider.name}: predict answer has no embeddings`);
        const tokens = predictions.reduce((n, p, i) => n + (typeof p.embeddings.statistics?.token_count === 'number' ? p.embeddings.statistics.token_count : countTextTokens(inputs[i]!)), 0);
        return { object: 'list', data: predictions.map((p, index) => ({ object: 'embedding', index, embedding: p.embeddings.values as number[] })), model: request.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
      }
      const res = await post(provider, methodPath(provider, request.model, 'batchEmbedContents'), { requests: inputs.map((text) => ({ model: `models/${request.model}`, content: { parts: [{ text }] }, ...dims })) }, 'application/json', call);
      const body = await readJson(provider, res, call.signal);
      const embeddings: any[] = Array.isArray(body?.embeddings) ? body.embeddings : [];
      if (embeddings.length !== inputs.length || !embeddings.every((e) => Array.isArray(e?.values))) throw new ProviderError('malformed', `${provider.name}: batchEmbedContents answer has no embeddings`);
      // The Gemini API reports no token count: count it as the prices are per token.
      const tokens = inputs.reduce((n, t) => n + countTextTokens(t), 0);
      return { object: 'list', data: embeddings.map((e, index) => ({ object: 'embedding', index, embedding: e.values as number[] })), model: request.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
    },
    close: () => transport.close(),
  };
}

/** The shared Vertex adapter (ADC from the environment). */
export const vertexAdapter: ProviderAdapter = createVertexAdapter();
