/**
 * The OpenAI Embeddings API for the `openai` and `openai-compatible` adapters. OpenAI is asked
 * for base64 (a quarter of the bytes of JSON floats, what its own SDK asks for) and decoded here;
 * OpenAI-compatible servers are asked for floats, which all of them speak. Either way the answer
 * holds float arrays: llm encodes for the client.
 */
import { ProviderError, type CallOptions, type ProviderConfig } from '../../types';
import { base64ToFloats, embeddingInputs, type Embedding, type EmbeddingsRequest, type EmbeddingsResponse } from '../../../openai';
import { countTextTokens } from '../tokens';
import { errorFromText, parseJsonText, type ProviderTransport } from '../transport';

/** The body sent upstream: the request as it came, in the encoding we read. */
export function toEmbeddingsBody(request: EmbeddingsRequest, type: 'openai' | 'openai-compatible'): Record<string, unknown> {
  const body: Record<string, unknown> = { ...request, encoding_format: type === 'openai' ? 'base64' : 'float' };
  for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
  return body;
}


/** Normalises an embeddings answer; one without a vector per input is `malformed`. */
export function toEmbeddings(provider: ProviderConfig, request: EmbeddingsRequest, body: any): EmbeddingsResponse {
  if (!body || typeof body !== 'object' || !Array.isArray(body.data)) throw new ProviderError('malformed', `${provider.name}: embeddings response has no data`);
  const inputs = embeddingInputs(request.input);
  if (body.data.length !== inputs.length) {
    throw new ProviderError('malformed', `${provider.name}: embeddings response has ${body.data.length} vectors for ${inputs.length} inputs`);
  }
  const data: Embedding[] = body.data.map((d: any, i: number) => {
    let embedding: number[];
    if (typeof d?.embedding === 'string') {
      try {
        embedding = base64ToFloats(d.embedding);
      } catch {
        throw new ProviderError('malformed', `${provider.name}: embedding ${i} is not base64 float32`);
      }
    } else if (Array.isArray(d?.embedding) && d.embedding.every((x: unknown) => typeof x === 'number')) {
      embedding = d.embedding;
    } else {
      throw new ProviderError('malformed', `${provider.name}: embedding ${i} is neither a float list nor base64`);
    }
    return { object: 'embedding', index: typeof d.index === 'number' ? d.index : i, embedding };
  });
  data.sort((a, b) => a.index - b.index);
  let usage = body.usage;
  if (!usage || typeof usage.prompt_tokens !== 'number') {
    // Some servers send no usage: count it (token ids count one each).
    const prompt = inputs.reduce((n, i) => n + (typeof i === 'string' ? countTextTokens(i) : i.length), 0);
    usage = { prompt_tokens: prompt, total_tokens: prompt };
  } else if (typeof usage.total_tokens !== 'number') {
    usage = { ...usage, total_tokens: usage.prompt_tokens };
  }
  return { object: 'list', data, model: typeof body.model === 'string' ? body.model : request.model, usage };
}

/** One embeddings call through the adapter's transport. */
export async function embedVia(
  transport: ProviderTransport,
  type: 'openai' | 'openai-compatible',
  provider: ProviderConfig,
  request: EmbeddingsRequest,
  headers: Record<string, string>,
  call: CallOptions,
): Promise<EmbeddingsResponse> {
  const res = await transport.postForText(provider, '/embeddings', toEmbeddingsBody(request, type), { ...headers, accept: 'application/json' }, call);
  if (res.statusCode >= 400) throw errorFromText(provider, res);
  return toEmbeddings(provider, request, parseJsonText(provider, res));
}
