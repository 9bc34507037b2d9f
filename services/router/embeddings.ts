import type { FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS } from '../../contracts';
import type { Logger } from '../kit';
import type { EmbeddingsRequest } from '../openai';
import { markDegraded } from './auth-hook';
import { callOptions, callUsage, checkModelAllowed, settleSpend, takeLease } from './billing';
import type { LlmClient } from './clients';
import type { Ledger } from './keys/ledger';

/**
 * The `POST /v1/embeddings` handler: the key's `models` list is checked, the request goes to llm
 * as it came (the schema has checked it) with the key and team as tenant and their token
 * budgets, and the answered call is counted in the spend ledger like a chat completion. The
 * answer comes back with the provider, model and cache headers. Embeddings have no prompt or
 * session: there is nothing else to do here.
 */
export function createEmbeddingsHandler(llm: LlmClient, ledger: Ledger | undefined, logger: Logger) {
  return async function embeddings(request: FastifyRequest<{ Body: EmbeddingsRequest }>, reply: FastifyReply) {
    checkModelAllowed(request, request.body.model);
    const lease = takeLease(request);
    let result;
    try {
      result = await llm.embed(request.body, callOptions(request, { requestId: request.id, traceContext: request.traceContext }, request.apiKey?.id, lease));
    } catch (err) {
      settleSpend(ledger, logger, request, lease, undefined);
      throw err;
    }
    settleSpend(ledger, logger, request, lease, callUsage(result.response.usage, result, undefined));
    markDegraded(reply, request.degraded ?? []);
    return reply.header(HEADERS.provider, result.provider).header(HEADERS.model, result.model).header(HEADERS.cache, result.cache).send(result.response);
  };
}
