import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS } from '../../contracts';
import type { PassthroughRequest } from '../openai';
import type { LlmClient } from './clients';

/**
 * The `POST /v1/responses` handler: the OpenAI Responses API, passed on to llm (which routes it
 * to a provider that speaks it) and its answer passed back as it came, JSON or event stream.
 * The client leaving stops the upstream call.
 */
export function createResponsesHandler(llm: LlmClient) {
  return async function responses(request: FastifyRequest<{ Body: PassthroughRequest }>, reply: FastifyReply) {
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort();
    };
    reply.raw.once('close', onClose);
    const result = await llm.responses(request.body, {
      requestId: request.id,
      traceContext: request.traceContext,
      tenant: request.apiKey?.id,
      tenantTpm: request.apiKey?.tpm,
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
