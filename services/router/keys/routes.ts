/**
 * The keys, teams and spend routes of the router (docs/keys.md). Keys and teams need the
 * `admin` scope; `GET /v1/spend` needs `invoke`, and a key without `admin` sees only its own
 * rows. Scopes are in ROUTE_SCOPES (route-scopes.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { PATHS } from '../../../contracts';
import { ApiError, badRequest, conflict, notFound, unavailable } from '../../kit';
import { ApiKeyStore, type ApiKey, type KeyBudget, type Scope } from '../auth';
import type { Ledger } from './ledger';
import {
  MAX_HOURLY_SPAN_DAYS,
  createKeySchema,
  keyParamsSchema,
  listKeysQuerySchema,
  patchKeySchema,
  putTeamSchema,
  rotateKeySchema,
  spendQuerySchema,
  teamParamsSchema,
  type KeyBody,
  type SpendGroup,
  type SpendInterval,
} from './schemas';
import { DEFAULT_ROTATION_GRACE_SECONDS, UnknownTeamError, type KeyFields, type KeyRecord, type KeyRegistry, type KeysDb, type Team } from './store';

/** The paths of the keys, teams and spend routes (patterns as registered). */
export const KEYS_PATHS = {
  keys: PATHS.keys,
  key: `${PATHS.keys}/:id`,
  rotate: `${PATHS.keys}/:id/rotate`,
  teams: PATHS.teams,
  team: `${PATHS.teams}/:id`,
  spend: PATHS.spend,
} as const;

/** What the routes work with; undefined when virtual keys are off (auth off). */
export interface KeysRoutesOptions {
  db: KeysDb;
  registry: KeyRegistry;
  ledger: Ledger;
  pool: pg.Pool;
  /** The keys file, shown read-only. */
  fileKeys: ApiKeyStore | undefined;
}

const MICRO = 1_000_000;

function budgetIn(b: { usd: number; period: 'day' | 'month' } | null | undefined, field: string): KeyBudget | null | undefined {
  if (b === undefined || b === null) return b;
  const micro = Math.round(b.usd * MICRO);
  if (Math.abs(micro - b.usd * MICRO) > 1e-6 * Math.max(1, micro) || micro < 1) {
    throw badRequest(`'${field}.usd' must be a positive amount with at most 6 decimals (a microdollar), got ${b.usd}`, `${field}.usd`);
  }
  return { microUsd: micro, period: b.period };
}

const budgetOut = (b: KeyBudget | undefined) => (b ? { usd: b.microUsd / MICRO, period: b.period } : null);
const iso = (d: Date | undefined) => (d ? d.toISOString() : null);

function keyOut(k: KeyRecord) {
  return {
    object: 'api_key',
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    source: 'api',
    scopes: k.scopes,
    models: k.models ?? null,
    rpm: k.rpm ?? null,
    tpm: k.tpm ?? null,
    max_concurrent: k.maxConcurrent ?? null,
    budget: budgetOut(k.budget),
    team: k.team ?? null,
    expires_at: iso(k.expiresAt),
    previous_key_valid_until: k.previousValidUntil && k.previousValidUntil.getTime() > Date.now() ? k.previousValidUntil.toISOString() : null,
    created_at: k.createdAt.toISOString(),
    updated_at: k.updatedAt.toISOString(),
    revoked_at: iso(k.revokedAt),
  };
}

function fileKeyOut(k: ApiKey) {
  return {
    object: 'api_key',
    id: k.id,
    name: k.id,
    prefix: null,
    source: 'file',
    read_only: true,
    scopes: k.scopes,
    models: null,
    rpm: k.rpm ?? null,
    tpm: k.tpm ?? null,
    max_concurrent: null,
    budget: null,
    team: null,
    expires_at: null,
    previous_key_valid_until: null,
    created_at: null,
    updated_at: null,
    revoked_at: null,
  };
}

function teamOut(t: Team) {
  return {
    object: 'team',
    id: t.id,
    name: t.name,
    budget: budgetOut(t.budget),
    rpm: t.rpm ?? null,
    tpm: t.tpm ?? null,
    max_concurrent: t.maxConcurrent ?? null,
    created_at: t.createdAt.toISOString(),
    updated_at: t.updatedAt.toISOString(),
  };
}

/** Turns a body into the stored fields, checking what the schema cannot. */
function fieldsOf(body: KeyBody): KeyFields {
  const f: KeyFields = {};
  if (body.name !== undefined) f.name = body.name;
  if (body.scopes !== undefined) f.scopes = body.scopes;
  if (body.models !== undefined) f.models = body.models;
  if (body.rpm !== undefined) f.rpm = body.rpm;
  if (body.tpm !== undefined) f.tpm = body.tpm;
  if (body.max_concurrent !== undefined) f.maxConcurrent = body.max_concurrent;
  if (body.budget !== undefined) f.budget = budgetIn(body.budget, 'budget');
  if (body.team !== undefined) f.team = body.team;
  if (body.expires_at !== undefined) {
    if (body.expires_at === null) f.expiresAt = null;
    else {
      const at = new Date(body.expires_at);
      if (Number.isNaN(at.getTime())) throw badRequest(`'expires_at' must be an RFC 3339 date-time`, 'expires_at');
      if (at.getTime() <= Date.now()) throw badRequest(`'expires_at' must be in the future, got ${body.expires_at}`, 'expires_at');
      f.expiresAt = at;
    }
  }
  return f;
}

function teamProblem(err: unknown): unknown {
  return err instanceof UnknownTeamError ? badRequest(err.message, 'team', 'unknown_team') : err;
}

function readOnly(id: string): ApiError {
  return new ApiError({ status: 409, type: 'conflict_error', message: `API key '${id}' comes from API_KEYS_FILE and is read-only through the API: change the file instead`, param: 'id', code: 'key_read_only' });
}

/** `from`/`to` of the spend query: a date (a whole UTC day) or an RFC 3339 date-time. */
function instant(raw: string | undefined, field: 'from' | 'to', fallback: Date): Date {
  if (raw === undefined) return fallback;
  const date = /^\d{4}-\d{2}-\d{2}$/.test(raw);
  const dateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(raw);
  const at = new Date(date ? `${raw}T00:00:00Z` : raw);
  if ((!date && !dateTime) || Number.isNaN(at.getTime()) || (date && at.toISOString().slice(0, 10) !== raw)) {
    throw badRequest(`query '${field}' must be a date (YYYY-MM-DD) or an RFC 3339 date-time, got ${JSON.stringify(raw)}`, field);
  }
  // A date as `to` means through the end of that day.
  return date && field === 'to' ? new Date(at.getTime() + 86_400_000) : at;
}

const GROUP_SQL: Record<SpendGroup, string> = {
  key: 'key_id',
  team: 'team',
  model: 'model',
  prompt: 'prompt',
  day: `to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
};

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE']);

/** Whether `err` says PostgreSQL could not be reached (connection classes 08, 57P, 53; network errors; pool timeouts). */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (!e || err instanceof ApiError) return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (NETWORK_CODES.has(code) || /^(08|53|57P)/.test(code)) return true;
  return typeof e.message === 'string' && /timeout exceeded when trying to connect|Connection terminated|connection timeout|not currently accepting connections|terminating connection/i.test(e.message);
}

/** Registers the routes (see the module comment); `options` undefined answers 404 on each. */
export function keysRoutes(options: KeysRoutesOptions | undefined) {
  return async (app: FastifyInstance) => {
    // PostgreSQL away is a dependency outage (503), not a server error; the rest goes to the kit's handler.
    app.setErrorHandler(async (err) => {
      throw isDatabaseUnavailable(err) ? unavailable(`PostgreSQL did not answer (${(err as Error).message}); keys in use keep working, changes and spend wait for it`, 'database_unavailable') : err;
    });
    const on = (): KeysRoutesOptions => {
      if (!options) throw notFound('virtual keys are off: they need authentication (set API_KEYS_FILE; the admin key that creates keys comes from it)', 'keys_disabled');
      return options;
    };
    const fileKey = (id: string) => options?.fileKeys?.list().find((k) => k.id === id);

    app.post<{ Body: KeyBody }>(KEYS_PATHS.keys, { schema: { body: createKeySchema } }, async (request, reply) => {
      const { db, registry } = on();
      // The schema requires both.
      const fields = fieldsOf(request.body) as KeyFields & { name: string; scopes: Scope[] };
      const { record, secret } = await db.createKey(fields).catch((err: unknown) => {
        throw teamProblem(err);
      });
      await registry.changed({ kind: 'key', id: record.id });
      return reply.code(201).send({ ...keyOut(record), key: secret });
    });

    app.get<{ Querystring: { include_revoked?: boolean; team?: string } }>(KEYS_PATHS.keys, { schema: { querystring: listKeysQuerySchema } }, async (request) => {
      const { db, fileKeys } = on();
      const { include_revoked: includeRevoked = false, team } = request.query;
      const stored = (await db.listKeys(includeRevoked)).filter((k) => team === undefined || k.team === team).map(keyOut);
      const fromFile = team === undefined ? (fileKeys?.list() ?? []).map(fileKeyOut) : [];
      return { object: 'list', data: [...fromFile, ...stored] };
    });

    app.get<{ Params: { id: string } }>(KEYS_PATHS.key, { schema: { params: keyParamsSchema } }, async (request) => {
      const { db } = on();
      const file = fileKey(request.params.id);
      if (file) return fileKeyOut(file);
      const record = await db.getKey(request.params.id);
      if (!record) throw notFound(`API key '${request.params.id}' does not exist`, 'key_not_found', 'id');
      return keyOut(record);
    });

    app.patch<{ Params: { id: string }; Body: KeyBody }>(KEYS_PATHS.key, { schema: { params: keyParamsSchema, body: patchKeySchema } }, async (request) => {
      const { db, registry } = on();
      if (fileKey(request.params.id)) throw readOnly(request.params.id);
      const record = await db.patchKey(request.params.id, fieldsOf(request.body)).catch((err: unknown) => {
        throw teamProblem(err);
      });
      if (!record) throw await missingOrRevoked(db, request.params.id);
      await registry.changed({ kind: 'key', id: record.id });
      return keyOut(record);
    });

    app.post<{ Params: { id: string }; Body: { grace_seconds?: number } | undefined }>(
      KEYS_PATHS.rotate,
      {
        schema: { params: keyParamsSchema, body: rotateKeySchema },
        // The body is optional (a request without one rotates with the default grace); an
        // empty body sent as JSON is still a 400, like everywhere.
        preValidation: async (request) => {
          if (request.body === undefined) request.body = {};
        },
      },
      async (request) => {
        const { db, registry } = on();
        if (fileKey(request.params.id)) throw readOnly(request.params.id);
        const grace = request.body?.grace_seconds ?? DEFAULT_ROTATION_GRACE_SECONDS;
        const rotated = await db.rotateKey(request.params.id, grace);
        if (!rotated) throw await missingOrRevoked(db, request.params.id);
        await registry.changed({ kind: 'key', id: rotated.record.id });
        return { ...keyOut(rotated.record), key: rotated.secret };
      },
    );

    app.delete<{ Params: { id: string } }>(KEYS_PATHS.key, { schema: { params: keyParamsSchema } }, async (request) => {
      const { db, registry } = on();
      if (fileKey(request.params.id)) throw readOnly(request.params.id);
      const record = await db.revokeKey(request.params.id);
      if (!record) throw notFound(`API key '${request.params.id}' does not exist`, 'key_not_found', 'id');
      await registry.changed({ kind: 'key', id: record.id });
      return keyOut(record);
    });

    app.put<{ Params: { id: string }; Body: { name: string } & Omit<KeyBody, 'name'> }>(
      KEYS_PATHS.team,
      { schema: { params: teamParamsSchema, body: putTeamSchema } },
      async (request, reply) => {
        const { db, registry } = on();
        const b = request.body;
        const { team, created } = await db.putTeam(request.params.id, {
          name: b.name,
          budget: budgetIn(b.budget, 'budget'),
          rpm: b.rpm,
          tpm: b.tpm,
          maxConcurrent: b.max_concurrent,
        });
        await registry.changed({ kind: 'team', id: team.id });
        return reply.code(created ? 201 : 200).send(teamOut(team));
      },
    );

    app.get<{ Params: { id: string } }>(KEYS_PATHS.team, { schema: { params: teamParamsSchema } }, async (request) => {
      const team = await on().db.getTeam(request.params.id);
      if (!team) throw notFound(`team '${request.params.id}' does not exist`, 'team_not_found', 'id');
      return teamOut(team);
    });

    app.get(KEYS_PATHS.teams, async () => ({ object: 'list', data: (await on().db.listTeams()).map(teamOut) }));

    type SpendQuery = { group_by?: SpendGroup; interval?: SpendInterval; from?: string; to?: string };
    app.get<{ Querystring: SpendQuery }>(KEYS_PATHS.spend, { schema: { querystring: spendQuerySchema } }, async (request: FastifyRequest<{ Querystring: SpendQuery }>) => {
      const { pool, ledger } = on();
      const q = request.query;
      const group = q.group_by ?? 'key';
      const now = new Date();
      const to = instant(q.to, 'to', now);
      const from = instant(q.from, 'from', new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)));
      if (from.getTime() >= to.getTime()) throw badRequest(`query 'from' must be before 'to'`, 'from');
      if (to.getTime() - from.getTime() > 400 * 86_400_000) throw badRequest(`query 'from' to 'to' may span at most 400 days`, 'from');
      if (q.interval === 'hour' && to.getTime() - from.getTime() > MAX_HOURLY_SPAN_DAYS * 86_400_000) {
        throw badRequest(`query 'interval' hour may cover at most ${MAX_HOURLY_SPAN_DAYS} days from 'from' to 'to'; use day`, 'interval');
      }
      // This replica's own calls are in PostgreSQL before the answer; other replicas write theirs
      // within their flush interval (docs/keys.md).
      await ledger.flush().catch(() => undefined);
      const key = request.apiKey;
      const own = key !== undefined && !ApiKeyStore.allows(key, 'admin');
      const params: unknown[] = [from, to];
      if (own) params.push(key.id);
      const column = GROUP_SQL[group];
      // Buckets are UTC whatever the session's time zone (date_trunc with a zone, PostgreSQL 12+).
      const bucket = q.interval ? `date_trunc('${q.interval}', at, 'UTC')` : undefined;
      const { rows } = await pool.query<{ g: string | null; b?: Date; micro: string; input: string; cached: string; output: string; requests: string }>(
        `SELECT ${column} AS g, ${bucket ? `${bucket} AS b,` : ''} sum(micro_usd)::text AS micro, sum(input_tokens)::text AS input, sum(cached_input_tokens)::text AS cached,
                sum(output_tokens)::text AS output, count(*)::text AS requests
           FROM promptmesh_spend WHERE at >= $1 AND at < $2 ${own ? 'AND key_id = $3' : ''}
          GROUP BY ${bucket ? '1, 2 ORDER BY 2, sum(micro_usd) DESC, 1' : '1 ORDER BY sum(micro_usd) DESC, 1'}`,
        params,
      );
      return {
        object: 'list',
        group_by: group,
        ...(q.interval ? { interval: q.interval } : {}),
        from: from.toISOString(),
        to: to.toISOString(),
        data: rows.map((r) => ({
          [group]: r.g,
          ...(r.b ? { start: r.b.toISOString() } : {}),
          usd: Number(r.micro) / MICRO,
          micro_usd: Number(r.micro),
          input_tokens: Number(r.input),
          cached_input_tokens: Number(r.cached),
          output_tokens: Number(r.output),
          requests: Number(r.requests),
        })),
      };
    });
  };
}

async function missingOrRevoked(db: KeysDb, id: string): Promise<ApiError> {
  const record = await db.getKey(id);
  if (!record) return notFound(`API key '${id}' does not exist`, 'key_not_found', 'id');
  return conflict(`API key '${id}' was revoked at ${record.revokedAt!.toISOString()}; a revoked key cannot change`, 'id');
}
