import type { FastifyPluginAsync } from 'fastify';
import { PATHS } from '../../contracts';
import type { ContextSettings } from './config';
import { appendBodySchema, checkSessionId, type ContextMessageInput } from './messages';
import type { ContextCore } from './store';

interface SessionParams {
  id: string;
}

interface ReadQuery {
  max_tokens?: number;
  max_messages?: number;
}

/**
 * The context service's HTTP API (DESIGN.md, "context"):
 * - `GET /v1/sessions/{id}/messages?max_tokens=&max_messages=` -> 200 window
 * - `POST /v1/sessions/{id}/messages` `{ messages }` -> 201 when something was stored, 200 when
 *   every message was a duplicate
 * - `DELETE /v1/sessions/{id}` -> 204
 *
 * The core validates the session id, the read bounds and the messages, so in-process callers
 * get the same 400s as HTTP callers.
 */
export function contextRoutes(core: ContextCore, settings: ContextSettings): FastifyPluginAsync {
  const messagesPath = `${PATHS.sessions}/:id/messages`;
  return async (app) => {
    app.get<{ Params: SessionParams; Querystring: ReadQuery }>(
      messagesPath,
      {
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              max_tokens: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
              max_messages: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
            },
          },
        },
      },
      async (request) => {
        const { max_tokens: maxTokens, max_messages: maxMessages } = request.query;
        return core.read(request.params.id, { maxTokens, maxMessages });
      },
    );

    // The route schema refuses a malformed body before the handler; the core runs the same
    // schema (and what a schema cannot say) for in-process callers too.
    app.post<{ Params: SessionParams; Body: { messages: ContextMessageInput[] } }>(messagesPath, { schema: { body: appendBodySchema(settings) } }, async (request, reply) => {
      checkSessionId(request.params.id);
      const result = await core.append(request.params.id, request.body.messages);
      return reply.code(result.stored.length > 0 ? 201 : 200).send(result);
    });

    app.delete<{ Params: SessionParams }>(`${PATHS.sessions}/:id`, async (request, reply) => {
      await core.delete(request.params.id);
      return reply.code(204).send();
    });
  };
}
