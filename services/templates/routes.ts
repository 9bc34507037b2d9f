import type { FastifyPluginAsync } from 'fastify';
import { PATHS, HEADERS } from '../../contracts';
import { TEMPLATE_LABEL_PATTERN, TEMPLATE_NAME_PATTERN } from '../kit/template-syntax';
import type { CreateInput, LabelTarget, TemplatesCore, Variables, VersionInput } from './types';
import { CREATE_BODY_SCHEMA, LABEL_BODY_SCHEMA, LIMITS, VERSION_BODY_SCHEMA, actorFrom } from './validation';

const nameParam = { type: 'string', pattern: TEMPLATE_NAME_PATTERN } as const;
const labelString = { type: 'string', pattern: TEMPLATE_LABEL_PATTERN } as const;

const resolveQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { label: labelString, version: { type: 'integer', minimum: 1 }, session_id: { type: 'string', maxLength: 256 } },
} as const;

const renderBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    variables: { type: 'object', maxProperties: LIMITS.variables },
    label: labelString,
    version: { type: 'integer', minimum: 1 },
    session_id: { type: 'string', maxLength: 256 },
  },
} as const;

/** The templates HTTP API (DESIGN.md, "templates"): thin routes over the core. */
export function templatesRoutes(core: TemplatesCore): FastifyPluginAsync {
  return async (app) => {
    const base = PATHS.templates;

    app.post<{ Body: CreateInput }>(base, { schema: { body: CREATE_BODY_SCHEMA } }, async (request, reply) => {
      const created = await core.create(request.body, actorFrom(request.headers[HEADERS.actor]));
      return reply.code(201).send(created);
    });

    app.get<{ Querystring: { limit?: number; cursor?: string; offset?: number; include_archived?: boolean } }>(
      base,
      {
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              limit: { type: 'integer', minimum: 1, maximum: LIMITS.pageSize },
              cursor: { type: 'string', maxLength: 1024 },
              offset: { type: 'integer', minimum: 0, maximum: 1_000_000 },
              include_archived: { type: 'boolean' },
            },
          },
        },
      },
      async (request) => {
        const q = request.query;
        return core.list({ limit: q.limit, cursor: q.cursor, offset: q.offset, includeArchived: q.include_archived });
      },
    );

    app.get<{ Querystring: { since?: number; limit?: number } }>(
      PATHS.templateChanges,
      {
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { since: { type: 'integer', minimum: 0 }, limit: { type: 'integer', minimum: 1, maximum: 1000 } },
          },
        },
      },
      async (request) => core.changesSince(request.query.since ?? 0, request.query.limit ?? 100),
    );

    app.get(`${base}/export`, async () => core.exportAll());

    app.get<{ Params: { name: string }; Querystring: { label?: string; version?: number; session_id?: string } }>(
      `${base}/:name`,
      { schema: { params: { type: 'object', properties: { name: nameParam } }, querystring: resolveQuery } },
      async (request) => {
        const q = request.query;
        return core.get(request.params.name, { label: q.label, version: q.version, stickyKey: q.session_id });
      },
    );

    app.delete<{ Params: { name: string } }>(
      `${base}/:name`,
      { schema: { params: { type: 'object', properties: { name: nameParam } } } },
      async (request) => core.archive(request.params.name, actorFrom(request.headers[HEADERS.actor])),
    );

    app.post<{ Params: { name: string }; Body: VersionInput }>(
      `${base}/:name/versions`,
      { schema: { params: { type: 'object', properties: { name: nameParam } }, body: VERSION_BODY_SCHEMA } },
      async (request, reply) => {
        const created = await core.addVersion(request.params.name, request.body, actorFrom(request.headers[HEADERS.actor]));
        return reply.code(201).send(created);
      },
    );

    app.get<{ Params: { name: string }; Querystring: { limit?: number; after?: number; order?: 'asc' | 'desc' } }>(
      `${base}/:name/versions`,
      {
        schema: {
          params: { type: 'object', properties: { name: nameParam } },
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              limit: { type: 'integer', minimum: 1, maximum: LIMITS.pageSize },
              after: { type: 'integer', minimum: 1 },
              order: { type: 'string', enum: ['asc', 'desc'] },
            },
          },
        },
      },
      async (request) => core.versions(request.params.name, request.query),
    );

    app.put<{ Params: { name: string; label: string }; Body: LabelTarget }>(
      `${base}/:name/labels/:label`,
      { schema: { params: { type: 'object', properties: { name: nameParam, label: labelString } }, body: LABEL_BODY_SCHEMA } },
      async (request) => core.moveLabel(request.params.name, request.params.label, request.body, actorFrom(request.headers[HEADERS.actor])),
    );

    app.get<{ Params: { name: string; label: string }; Querystring: { limit?: number } }>(
      `${base}/:name/labels/:label/history`,
      {
        schema: {
          params: { type: 'object', properties: { name: nameParam, label: labelString } },
          querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: LIMITS.pageSize } } },
        },
      },
      async (request) => core.labelHistory(request.params.name, request.params.label, { limit: request.query.limit }),
    );

    app.post<{ Params: { name: string }; Body: { variables?: Variables; label?: string; version?: number; session_id?: string } }>(
      `${base}/:name/render`,
      { schema: { params: { type: 'object', properties: { name: nameParam } }, body: renderBody } },
      async (request) => {
        const b = request.body;
        return core.render(request.params.name, b.variables, { label: b.label, version: b.version, stickyKey: b.session_id });
      },
    );
  };
}
