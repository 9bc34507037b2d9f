import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { HEADERS, PATHS } from '../../contracts';
import { ApiError, badRequest, toApiError } from '../kit/errors';
import type { CacheMode } from './cache';
import type { LlmCallOptions, LlmCore } from './core';
import { toolCallSchema, type ChatRequest } from './types';

/**
 * The llm service's internal HTTP API: `POST /v1/chat/completions` (canonical OpenAI shape,
 * streaming as SSE), `GET /v1/providers` and `GET /v1/models`.
 *
 * Request headers the router sets: `x-promptmesh-tenant` (whose cache entries to use),
 * `x-promptmesh-tenant-tpm` (that tenant's tokens-per-minute budget) and `x-promptmesh-cache`
 * (`force` or `off`). Response headers: `x-promptmesh-provider`,
 * `x-promptmesh-model`, `x-promptmesh-cache` and, for plain answers, `x-promptmesh-cost-usd`.
 */

/** The tenant header the router sets (cache entries are kept apart per tenant). */
export const TENANT_HEADER = HEADERS.tenant;
/** The cost header on non-streaming answers (USD). */
export const COST_HEADER = 'x-promptmesh-cost-usd';

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];
const stringOrStrings = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 16 }] };

/**
 * The body schema: the OpenAI fields promptmesh understands, type-checked; other top-level
 * fields are allowed (OpenAI extension fields) and passed on.
 */
export const chatRequestSchema = {
  type: 'object',
  required: ['model', 'messages'],
  additionalProperties: true,
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 256 },
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: 10_000,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { type: 'string', enum: ROLES },
          content: {
            anyOf: [
              { type: 'string' },
              { type: 'null' },
              { type: 'array', items: { type: 'object', required: ['type'], properties: { type: { type: 'string' }, text: { type: 'string' } } } },
            ],
          },
          name: { type: 'string' },
          tool_call_id: { type: 'string' },
          tool_calls: { type: 'array', items: toolCallSchema },
        },
      },
    },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', minimum: 0, maximum: 1 },
    max_tokens: { type: 'integer', minimum: 1 },
    max_completion_tokens: { type: 'integer', minimum: 1 },
    stream: { type: 'boolean' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
    stop: stringOrStrings,
    n: { type: 'integer', minimum: 1, maximum: 128 },
    presence_penalty: { type: 'number', minimum: -2, maximum: 2 },
    frequency_penalty: { type: 'number', minimum: -2, maximum: 2 },
    seed: { type: 'integer' },
    user: { type: 'string' },
    tools: { type: 'array' },
    tool_choice: { anyOf: [{ type: 'string' }, { type: 'object' }] },
    response_format: { type: 'object' },
    cache: { type: 'boolean' },
  },
} as const;

/** Content must be present for every role but assistant (which may carry tool calls instead). */
function checkMessages(body: ChatRequest): void {
  body.messages.forEach((m, i) => {
    if (m.role !== 'assistant' && (m.content === undefined || m.content === null)) {
      throw badRequest(`'messages[${i}].content' is required for role '${m.role}'`, `messages[${i}].content`);
    }
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') {
      throw badRequest(`'messages[${i}].tool_call_id' is required for role 'tool'`, `messages[${i}].tool_call_id`);
    }
  });
}

function callOptions(request: FastifyRequest, signal: AbortSignal): LlmCallOptions {
  const tenantRaw = request.headers[TENANT_HEADER];
  const tenant = Array.isArray(tenantRaw) ? tenantRaw[0] : tenantRaw;
  if (tenant !== undefined && (tenant.length === 0 || tenant.length > 256)) throw badRequest(`header '${TENANT_HEADER}' must be 1-256 characters`, TENANT_HEADER);
  const cacheRaw = request.headers[HEADERS.cache];
  const cacheHeader = (Array.isArray(cacheRaw) ? cacheRaw[0] : cacheRaw)?.toLowerCase();
  let cache: CacheMode | undefined;
  if (cacheHeader !== undefined) {
    if (cacheHeader !== 'force' && cacheHeader !== 'off' && cacheHeader !== 'default') {
      throw badRequest(`header '${HEADERS.cache}' must be force, off or default`, HEADERS.cache);
    }
    cache = cacheHeader;
  }
  const tpmRaw = request.headers[HEADERS.tenantTpm];
  const tpmHeader = Array.isArray(tpmRaw) ? tpmRaw[0] : tpmRaw;
  let tenantTpm: number | undefined;
  if (tpmHeader !== undefined) {
    tenantTpm = /^[1-9][0-9]{0,10}$/.test(tpmHeader) ? Number(tpmHeader) : NaN;
    if (!Number.isInteger(tenantTpm) || tenantTpm > 10_000_000_000) throw badRequest(`header '${HEADERS.tenantTpm}' must be a whole number of tokens per minute (1-10000000000)`, HEADERS.tenantTpm);
    if (tenant === undefined) throw badRequest(`header '${HEADERS.tenantTpm}' needs '${TENANT_HEADER}' (whose budget it is)`, HEADERS.tenantTpm);
  }
  const teamRaw = request.headers[HEADERS.team];
  const team = Array.isArray(teamRaw) ? teamRaw[0] : teamRaw;
  if (team !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(team)) throw badRequest(`header '${HEADERS.team}' must be 1-64 letters, digits, '.', '_' or '-'`, HEADERS.team);
  const teamTpmRaw = request.headers[HEADERS.teamTpm];
  const teamTpmHeader = Array.isArray(teamTpmRaw) ? teamTpmRaw[0] : teamTpmRaw;
  let teamTpm: number | undefined;
  if (teamTpmHeader !== undefined) {
    teamTpm = /^[1-9][0-9]{0,10}$/.test(teamTpmHeader) ? Number(teamTpmHeader) : NaN;
    if (!Number.isInteger(teamTpm) || teamTpm > 10_000_000_000) throw badRequest(`header '${HEADERS.teamTpm}' must be a whole number of tokens per minute (1-10000000000)`, HEADERS.teamTpm);
    if (team === undefined) throw badRequest(`header '${HEADERS.teamTpm}' needs '${HEADERS.team}' (whose budget it is)`, HEADERS.teamTpm);
  }
  const options: LlmCallOptions = { traceContext: request.traceContext, signal };
  if (tenant !== undefined) options.tenant = tenant;
  if (team !== undefined) options.team = team;
  if (teamTpm !== undefined) options.teamTpm = teamTpm;
  if (tenantTpm !== undefined) options.tenantTpm = tenantTpm;
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

function sse(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/** The llm routes as a Fastify plugin over a core. */
export function llmRoutes(core: LlmCore): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: ChatRequest }>(PATHS.chatCompletions, { schema: { body: chatRequestSchema } }, async (request, reply) => {
      const body = request.body;
      checkMessages(body);
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
      const iterator = result.chunks[Symbol.asyncIterator]();
      async function* events(): AsyncGenerator<string> {
        try {
          for (;;) {
            const next = await iterator.next();
            if (next.done) break;
            yield sse(next.value);
          }
          yield 'data: [DONE]\n\n';
        } catch (err) {
          // Headers are out: the failure goes into the stream, and no [DONE] follows.
          const apiError = err instanceof ApiError ? err : toApiError(err);
          if (!signal.aborted) yield sse(apiError.toBody());
        } finally {
          await iterator.return?.();
        }
      }
      return reply
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-accel-buffering', 'no')
        .header(HEADERS.provider, result.provider)
        .header(HEADERS.model, result.model)
        .header(HEADERS.cache, result.cache)
        .send(Readable.from(events(), { objectMode: false }));
    });

    app.get(PATHS.providers, async () => ({ object: 'list', data: core.providers(), aliases: core.aliases() }));
    app.get(PATHS.models, async () => ({ object: 'list', data: core.models() }));
  };
}
