import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS, LLM_USAGE_EVENT, PATHS } from '../../contracts';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { toApiError } from '../kit/errors';
import type { CacheMode } from './cache';
import type { LlmCallOptions, LlmCore } from './core';
import { ANTHROPIC_BETA_HEADER, ANTHROPIC_BETA_PATTERN, MessagesRequestSchema, anthropicErrorBody, anthropicSse, type AnthropicEvent, type MessagesRequest } from '../anthropic';
import { ChatRequestSchema, EmbeddingsRequestSchema, ResponsesRequestSchema, type PassthroughRequest, SSE_HEADERS, chatResponseSchemas, checkMessages, embeddingsResponseSchemas, writeSse, type ChatRequest, type EmbeddingsRequest } from '../openai';

/**
 * The llm service's internal HTTP API: `POST /v1/chat/completions` (canonical OpenAI shape,
 * streaming as SSE), `POST /v1/embeddings`, `POST /v1/responses` (passed through),
 * `GET /v1/providers` and `GET /v1/models`.
 *
 * Request headers the router sets: `x-promptmesh-tenant` (whose cache entries to use),
 * `x-promptmesh-tenant-tpm` (that tenant's tokens-per-minute budget), `x-promptmesh-team` and
 * `x-promptmesh-team-tpm` (the key's team and its budget over all its keys), `x-promptmesh-cache`
 * (`force` or `off`), `x-promptmesh-usage: report` (on messages and responses: report the usage
 * and cost, see contracts). Response headers: `x-promptmesh-provider`, `x-promptmesh-model`,
 * `x-promptmesh-cache`, for plain answers `x-promptmesh-cost-usd`, and `x-promptmesh-usage` when asked.
 */

/** The cost header on non-streaming answers (USD). */
export const COST_HEADER = HEADERS.costUsd;

/** Most tokens per minute a tenant budget may name (the router's keys are held to the same). */
const MAX_TENANT_TPM = 10_000_000_000;

/** The request headers the router sets, as a route schema (a 400 names the header). */
const CALL_HEADERS_SCHEMA = {
  type: 'object',
  properties: {
    [HEADERS.tenant]: { type: 'string', minLength: 1, maxLength: 256 },
    [HEADERS.cache]: { type: 'string', enum: ['force', 'off', 'default'] },
    // A whole number of tokens per minute, 1 to MAX_TENANT_TPM, written plainly (no sign, no exponent).
    [HEADERS.tenantTpm]: { type: 'string', pattern: `^(?:[1-9][0-9]{0,9}|${MAX_TENANT_TPM})$` },
    // The key's team (cost metrics' `team` label) and the team's own budget over all its keys.
    [HEADERS.team]: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
    [HEADERS.teamTpm]: { type: 'string', pattern: `^(?:[1-9][0-9]{0,9}|${MAX_TENANT_TPM})$` },
    // The router asks for the call's usage and cost on /v1/messages and /v1/responses (its ledger).
    [HEADERS.usage]: { type: 'string', enum: ['report'] },
  },
  // A budget is a tenant's: without the tenant there is no one to hold to it.
  dependencies: { [HEADERS.tenantTpm]: [HEADERS.tenant], [HEADERS.teamTpm]: [HEADERS.team], [HEADERS.team]: [HEADERS.tenant] },
} as const;

/** The `/v1/messages` request headers: the call's, and the client's Anthropic betas. */
const MESSAGES_HEADERS_SCHEMA = {
  ...CALL_HEADERS_SCHEMA,
  properties: { ...CALL_HEADERS_SCHEMA.properties, [ANTHROPIC_BETA_HEADER]: { type: 'string', pattern: ANTHROPIC_BETA_PATTERN } },
} as const;

/** The call options the (schema-checked) headers ask for. */
function callOptions(request: FastifyRequest, signal: AbortSignal): LlmCallOptions {
  const headers = request.headers as Record<string, string | undefined>;
  const options: LlmCallOptions = { traceContext: request.traceContext, signal };
  const tenant = headers[HEADERS.tenant];
  const tpm = headers[HEADERS.tenantTpm];
  const cache = headers[HEADERS.cache] as CacheMode | undefined;
  if (tenant !== undefined) options.tenant = tenant;
  if (tpm !== undefined) options.tenantTpm = Number(tpm);
  const team = headers[HEADERS.team];
  const teamTpm = headers[HEADERS.teamTpm];
  if (team !== undefined) options.team = team;
  if (teamTpm !== undefined) options.teamTpm = Number(teamTpm);
  if (cache !== undefined) options.cache = cache;
  return options;
}

/** An AbortSignal that fires when the client closes the connection before the answer is done. */
function clientSignal(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('client closed the connection'));
  });
  request.raw.once('aborted', () => controller.abort(new Error('client aborted the request')));
  return controller.signal;
}

/** Whether the router asked for the call's usage and cost (`x-promptmesh-usage: report`). */
function reportsUsage(request: FastifyRequest): boolean {
  return request.headers[HEADERS.usage] === 'report';
}

/** The usage event llm adds for the router ({@link LLM_USAGE_EVENT}). */
function usageEvent(usage: unknown): string {
  return `event: ${LLM_USAGE_EVENT}\ndata: ${JSON.stringify(usage)}\n\n`;
}

/**
 * A Messages stream on the wire; a failure ends it with Anthropic's `error` event. With `usage`,
 * the call's usage and cost go out as a {@link LLM_USAGE_EVENT} event before `message_stop` (the
 * usage is known by then: the provider's stream has ended).
 */
async function* anthropicStream(events: AsyncIterable<AnthropicEvent>, signal: AbortSignal, usage?: () => unknown): AsyncGenerator<string> {
  try {
    for await (const ev of events) {
      if (usage && ev.event === 'message_stop') {
        const u = usage();
        if (u !== undefined) yield usageEvent(u);
      }
      yield anthropicSse(ev);
    }
  } catch (err) {
    if (!signal.aborted) yield anthropicSse({ event: 'error', data: JSON.stringify(anthropicErrorBody(err).body) });
  }
}

/** The llm routes as a Fastify plugin over a core. */
export function llmRoutes(core: LlmCore): FastifyPluginAsync {
  return async (app) => {
    const typed = app.withTypeProvider<TypeBoxTypeProvider>();
    typed.post(PATHS.chatCompletions, { schema: { headers: CALL_HEADERS_SCHEMA, body: ChatRequestSchema, response: chatResponseSchemas } }, async (request, reply) => {
      const body = request.body as ChatRequest;
      checkMessages(body.messages);
      const signal = clientSignal(request, reply);
      const options = callOptions(request, signal);
      if (body.stream !== true) {
        const result = await core.complete(body, options);
        return reply
          .header(HEADERS.provider, result.provider)
          .header(HEADERS.model, result.model)
          .header(HEADERS.cache, result.cache)
          .header(COST_HEADER, String(result.costUsd))
          .send(result.completion);
      }
      const result = await core.stream(body, options);
      const events = writeSse(result.chunks, {
        // A client that went away reads nothing more.
        onError: (err) => (signal.aborted ? undefined : toApiError(err).toBody()),
      });
      return reply
        .headers(SSE_HEADERS)
        .header(HEADERS.provider, result.provider)
        .header(HEADERS.model, result.model)
        .header(HEADERS.cache, result.cache)
        // A stream is written as it comes, past the response schema (which types only JSON answers).
        .send(Readable.from(events, { objectMode: false }) as never);
    });

    typed.post(PATHS.embeddings, { schema: { headers: CALL_HEADERS_SCHEMA, body: EmbeddingsRequestSchema, response: embeddingsResponseSchemas } }, async (request, reply) => {
      const body = request.body as EmbeddingsRequest;
      const result = await core.embed(body, callOptions(request, clientSignal(request, reply)));
      return reply
        .header(HEADERS.provider, result.provider)
        .header(HEADERS.model, result.model)
        .header(HEADERS.cache, result.cache)
        .header(COST_HEADER, String(result.costUsd))
        .send(result.response);
    });

    typed.post(PATHS.responses, { schema: { headers: CALL_HEADERS_SCHEMA, body: ResponsesRequestSchema } }, async (request, reply) => {
      const signal = clientSignal(request, reply);
      const result = await core.responses(request.body as PassthroughRequest, callOptions(request, signal));
      reply.code(result.status).headers(result.headers).header(HEADERS.provider, result.provider).header(HEADERS.model, result.model).header(HEADERS.cache, 'skip');
      if (!reportsUsage(request)) return reply.send(Readable.from(result.body, { objectMode: false }) as never);
      if (!/^text\/event-stream/i.test(result.headers['content-type'] ?? '')) {
        // A JSON answer is read whole (its usage is at its end), so the usage goes in a header.
        const pieces: Uint8Array[] = [];
        for await (const piece of result.body) pieces.push(piece);
        const usage = result.usage();
        if (usage) reply.header(HEADERS.usage, JSON.stringify(usage));
        return reply.send(Buffer.concat(pieces));
      }
      async function* withUsage(): AsyncGenerator<Uint8Array | string> {
        yield* result.body;
        const usage = result.usage();
        if (usage) yield usageEvent(usage);
      }
      return reply.send(Readable.from(withUsage(), { objectMode: false }) as never);
    });

    // Anthropic's Messages API (the router's /v1/messages in the mesh); errors in Anthropic's shape.
    typed.post(
      PATHS.messages,
      {
        schema: { headers: MESSAGES_HEADERS_SCHEMA, body: MessagesRequestSchema },
        errorHandler: (err, request, reply) => {
          const { status, body, error } = anthropicErrorBody(err);
          if (status >= 500) request.log.error({ err }, 'request failed');
          if (reply.sent || reply.raw.headersSent) return;
          void reply.code(status).headers(error.headers).send(body);
        },
      },
      async (request, reply) => {
        const body = request.body as MessagesRequest;
        const signal = clientSignal(request, reply);
        const beta = (request.headers as Record<string, string | undefined>)[ANTHROPIC_BETA_HEADER];
        const result = await core.messages(body, { ...callOptions(request, signal), ...(beta ? { anthropicBeta: beta } : {}) });
        reply.header(HEADERS.provider, result.provider).header(HEADERS.model, result.model).header(HEADERS.cache, result.cache).header(HEADERS.passthrough, String(result.passthrough));
        const report = reportsUsage(request);
        if (result.message) {
          const usage = report ? result.usage() : undefined;
          if (usage) reply.header(HEADERS.usage, JSON.stringify(usage));
          return reply.header(COST_HEADER, String(result.costUsd ?? 0)).send(result.message);
        }
        const events = anthropicStream(result.events!, signal, report ? result.usage : undefined);
        return reply.headers(SSE_HEADERS).send(Readable.from(events, { objectMode: false }) as never);
      },
    );

    app.get(PATHS.providers, async () => ({ object: 'list', data: core.providers(), aliases: core.aliases() }));
    app.get(PATHS.models, async () => ({ object: 'list', data: core.models() }));
  };
}
