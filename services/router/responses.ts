import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS } from '../../contracts';
import type { PassthroughRequest } from '../openai';
import { callOptions, checkModelAllowed, refuseUnmeteredBudget } from './billing';
import type { LlmClient } from './clients';

/**
 * The `POST /v1/responses` handler: the OpenAI Responses API, passed on to llm (which routes it
 * to a provider that speaks it) and its answer passed back as it came, JSON or event stream.
 * The client leaving stops the upstream call. The key's `models` list applies. The router
 * cannot count the cost of a passed-through answer (its usage is inside the provider's body), so
 * a key or team with a budget is refused here rather than let spend past it uncounted.
 */
export function createResponsesHandler(llm: LlmClient) {
  return async function responses(request: FastifyRequest<{ Body: PassthroughRequest }>, reply: FastifyReply) {
    const model = (request.body as { model?: unknown }).model;
    if (typeof model === 'string') checkModelAllowed(request, model);
    refuseUnmeteredBudget(request, 'Responses API');
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    reply.raw.once('close', onClose);
    const result = await llm.responses(request.body, {
      ...callOptions(request, { requestId: request.id, traceContext: request.traceContext }, request.apiKey?.id),
      signal: abort.signal,
    });
    if (request.degraded) reply.header(HEADERS.degraded, request.degraded.join(','));
    return reply
      .code(result.status)
      .headers(result.headers)
      .header(HEADERS.provider, result.provider)
      .header(HEADERS.model, result.model)
      .send(Readable.from(result.body, { objectMode: false }));
  };
}
