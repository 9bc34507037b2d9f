import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS } from '../../contracts';
import type { Logger } from '../kit';
import type { PassthroughRequest } from '../openai';
import { markDegraded } from './auth-hook';
import { watchClient } from './client-gone';
import { callOptions, callUsage, checkModelAllowed, settleSpend, takeLease } from './billing';
import type { LlmClient } from './clients';
import type { Ledger } from './keys/ledger';

/**
 * The `POST /v1/responses` handler: the OpenAI Responses API, passed on to llm (which routes it
 * to a provider that speaks it) and its answer passed back as it came, JSON or event stream.
 * The client leaving stops the upstream call. The key's `models` list applies. The call is
 * counted in the spend ledger like chat's, once its body was passed on to the end (the usage is
 * in the JSON answer, or in a stream's `response.completed` event): a body that broke off, or a
 * client that left, settles with what llm reported, or releases the budget lease.
 */
export function createResponsesHandler(llm: LlmClient, ledger: Ledger | undefined, logger: Logger) {
  return async function responses(request: FastifyRequest<{ Body: PassthroughRequest }>, reply: FastifyReply) {
    const model = (request.body as { model?: unknown }).model;
    if (typeof model === 'string') checkModelAllowed(request, model);
    const client = watchClient(reply);
    const lease = takeLease(request);
    let result: Awaited<ReturnType<LlmClient['responses']>>;
    try {
      result = await llm.responses(request.body, {
        ...callOptions(request, { requestId: request.id, traceContext: request.traceContext }, request.apiKey?.id, lease),
        signal: client.signal,
      });
    } catch (err) {
      settleSpend(ledger, logger, request, lease, undefined);
      throw err;
    }
    const answered = result;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      const usage = answered.usage();
      settleSpend(ledger, logger, request, lease, usage !== undefined ? callUsage(usage, answered, undefined) : undefined);
    };
    // A client gone before the first piece was read never runs the generator: settle here.
    reply.raw.once('close', finish);
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        yield* answered.body;
      } finally {
        client.release();
        finish();
      }
    }
    markDegraded(reply, request.degraded ?? []);
    return reply
      .code(result.status)
      .headers(result.headers)
      .header(HEADERS.provider, result.provider)
      .header(HEADERS.model, result.model)
      .send(Readable.from(body(), { objectMode: false }));
  };
}
