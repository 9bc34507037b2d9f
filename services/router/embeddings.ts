import type { FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS } from '../../contracts';
import type { EmbeddingsRequest } from '../openai';
import type { LlmClient } from './clients';

/**
 * The `POST /v1/embeddings` handler: the request goes to llm as it came (the schema has checked
 * it), with the key as tenant and its `tpm`; the answer comes back with the provider, model and
 * cache headers. Embeddings have no prompt or session: there is nothing else to do here.
 */
export function createEmbeddingsHandler(llm: LlmClient) {
  return async function embeddings(request: FastifyRequest<{ Body: EmbeddingsRequest }>, reply: FastifyReply) {
    const result = await llm.embed(request.body, {
      requestId: request.id,
      traceContext: request.traceContext,
      tenant: request.apiKey?.id,
      tenantTpm: request.apiKey?.tpm,
    });
    if (request.degraded) reply.header(HEADERS.degraded, request.degraded.join(','));
    return reply.header(HEADERS.provider, result.provider).header(HEADERS.model, result.model).header(HEADERS.cache, result.cache).send(result.response);
  };
}
