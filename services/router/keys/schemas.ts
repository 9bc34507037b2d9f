/**
 * JSON Schemas of the keys, teams and spend routes (docs/keys.md). Bodies are validated
 * strictly (no coercion; unknown fields are a 400 naming them); what a schema cannot say
 * (a date in the past, a team that does not exist) is checked in the routes.
 */
import { SCOPES } from '../auth';

/** Key and team ids as the API accepts them in paths and bodies. */
export const ID_PATTERN = '^[A-Za-z0-9._-]{1,64}$';
/** Team ids: lower case, so `Team-A` and `team-a` are never two teams. */
export const TEAM_ID_PATTERN = '^[a-z0-9][a-z0-9._-]{0,63}$';
/** The largest budget accepted, in USD per period. */
export const MAX_BUDGET_USD = 1_000_000_000;
/** The longest rotation grace accepted, in seconds (30 days). */
export const MAX_GRACE_SECONDS = 30 * 86_400;

const name = { type: 'string', minLength: 1, maxLength: 128 };
const rpm = { type: ['integer', 'null'], minimum: 1, maximum: 1_000_000 };
const tpm = { type: ['integer', 'null'], minimum: 1, maximum: 10_000_000_000 };
const maxConcurrent = { type: ['integer', 'null'], minimum: 1, maximum: 100_000 };
const budget = {
  type: ['object', 'null'],
  additionalProperties: false,
  required: ['usd', 'period'],
  properties: {
    // Down to a microdollar; checked in the route too (multipleOf on floats is unreliable).
    usd: { type: 'number', exclusiveMinimum: 0, maximum: MAX_BUDGET_USD },
    period: { type: 'string', enum: ['day', 'month'] },
  },
};
const scopes = { type: 'array', minItems: 1, maxItems: SCOPES.length, uniqueItems: true, items: { type: 'string', enum: [...SCOPES] } };
const models = { type: ['array', 'null'], minItems: 1, maxItems: 256, uniqueItems: true, items: { type: 'string', minLength: 1, maxLength: 256 } };
const expiresAt = { type: ['string', 'null'], format: 'date-time' };
const team = { type: ['string', 'null'], pattern: TEAM_ID_PATTERN };

/** `POST /v1/keys`. */
export const createKeySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'scopes'],
  properties: { name, scopes, models, rpm, tpm, max_concurrent: maxConcurrent, budget, expires_at: expiresAt, team },
} as const;

/** `PATCH /v1/keys/{id}`: any field of a create; null clears an optional one. */
export const patchKeySchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: createKeySchema.properties,
} as const;

/** `POST /v1/keys/{id}/rotate` (the body may be left out). */
export const rotateKeySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { grace_seconds: { type: 'integer', minimum: 0, maximum: MAX_GRACE_SECONDS } },
} as const;

/** `PUT /v1/teams/{id}`. */
export const putTeamSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name, budget, rpm, tpm, max_concurrent: maxConcurrent },
} as const;

/** Path parameters. */
export const keyParamsSchema = { type: 'object', properties: { id: { type: 'string', pattern: ID_PATTERN } } } as const;
export const teamParamsSchema = { type: 'object', properties: { id: { type: 'string', pattern: TEAM_ID_PATTERN } } } as const;

/** `GET /v1/keys` query. */
export const listKeysQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { include_revoked: { type: 'boolean' }, team: { type: 'string', pattern: TEAM_ID_PATTERN } },
} as const;

/** The ways `GET /v1/spend` groups rows. */
export const SPEND_GROUPS = ['key', 'team', 'model', 'prompt', 'day'] as const;
export type SpendGroup = (typeof SPEND_GROUPS)[number];

/** The time buckets `GET /v1/spend?interval=` splits rows into (UTC hours or days). */
export const SPEND_INTERVALS = ['hour', 'day'] as const;
export type SpendInterval = (typeof SPEND_INTERVALS)[number];
/** The longest range `interval=hour` may span, in days (31 days: 744 buckets per group at most). */
export const MAX_HOURLY_SPAN_DAYS = 31;

/** `GET /v1/spend` query. */
export const spendQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    group_by: { type: 'string', enum: [...SPEND_GROUPS] },
    // Series for charts: each row also names the bucket it falls in (`start`).
    interval: { type: 'string', enum: [...SPEND_INTERVALS] },
    // Dates (whole UTC days) or date-times; checked in the route.
    from: { type: 'string', minLength: 10, maxLength: 40 },
    to: { type: 'string', minLength: 10, maxLength: 40 },
  },
} as const;

/** The body of a key or team request as the schema lets it through. */
export interface KeyBody {
  name?: string;
  scopes?: Array<(typeof SCOPES)[number]>;
  models?: string[] | null;
  rpm?: number | null;
  tpm?: number | null;
  max_concurrent?: number | null;
  budget?: { usd: number; period: 'day' | 'month' } | null;
  expires_at?: string | null;
  team?: string | null;
}
