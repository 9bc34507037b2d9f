/**
 * Virtual API keys and teams: the rows in PostgreSQL (the router's own tables) and the copy
 * every router keeps in memory, so the auth check stays a map lookup with no database or Redis
 * call per request (docs/keys.md).
 *
 * A change is written to PostgreSQL, applied to this replica's copy, then announced on Redis
 * pub/sub (`keyChangesChannel`); every other replica reloads that one key or team at once. A
 * periodic full reload, and one after each Redis reconnect, catch up on anything missed.
 */
import { createHash, hash as oneShotHash, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { keyChangesChannel } from '../../../contracts';
import type { Logger, RedisClient } from '../../kit';
import type { ApiKey, KeyBudget, Scope } from '../auth';

/** What a secret starts with, so secret scanners (and people) recognise a leaked one. */
export const SECRET_PREFIX = 'pm-';
/** Characters of the secret the API shows (`pm-` and 8 more): enough to recognise, useless to use. */
export const SHOWN_PREFIX_LENGTH = 11;
/** How long an old secret keeps working after a rotation, unless the call says otherwise. */
export const DEFAULT_ROTATION_GRACE_SECONDS = 86_400;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `n` characters from [0-9A-Za-z], uniform (bytes >= 248 are drawn again rather than biased). */
function base62(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248 && out.length < n) out += BASE62[b % 62];
    }
  }
  return out;
}

/** A new secret: `pm-` and 43 base62 characters (256 bits). */
export function newSecret(): string {
  return `${SECRET_PREFIX}${base62(43)}`;
}

/** A new key id (`key_` and 16 base62 characters): what spend rows and metrics name. */
export function newKeyId(): string {
  return `key_${base62(16)}`;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** A team as stored. */
export interface Team {
  id: string;
  name: string;
  budget?: KeyBudget;
  rpm?: number;
  tpm?: number;
  maxConcurrent?: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A virtual key as stored (never the secret). */
export interface KeyRecord {
  id: string;
  name: string;
  prefix: string;
  sha256: string;
  previousSha256?: string;
  previousValidUntil?: Date;
  scopes: Scope[];
  models?: string[];
  rpm?: number;
  tpm?: number;
  maxConcurrent?: number;
  budget?: KeyBudget;
  team?: string;
  expiresAt?: Date;
  createdAt: Date;
  updatedAt: Date;
  revokedAt?: Date;
}

/** The fields a create or patch may set (undefined: leave as is; null: clear). */
export interface KeyFields {
  name?: string;
  scopes?: Scope[];
  models?: string[] | null;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrent?: number | null;
  budget?: KeyBudget | null;
  team?: string | null;
  expiresAt?: Date | null;
}

/** The fields of a team (undefined or null: none). */
export interface TeamFields {
  name: string;
  budget?: KeyBudget | null;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrent?: number | null;
}

interface KeyRow {
  id: string;
  name: string;
  prefix: string;
  sha256: string;
  previous_sha256: string | null;
  previous_valid_until: Date | null;
  scopes: string[];
  models: string[] | null;
  rpm: number | null;
  tpm: string | null;
  max_concurrent: number | null;
  budget_micro_usd: string | null;
  budget_period: 'day' | 'month' | null;
  team: string | null;
  expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
  revoked_at: Date | null;
}

interface TeamRow {
  id: string;
  name: string;
  budget_micro_usd: string | null;
  budget_period: 'day' | 'month' | null;
  rpm: number | null;
  tpm: string | null;
  max_concurrent: number | null;
  created_at: Date;
  updated_at: Date;
}

const budgetOf = (micro: string | null, period: 'day' | 'month' | null): KeyBudget | undefined =>
  micro !== null && period !== null ? { microUsd: Number(micro), period } : undefined;

function keyFromRow(r: KeyRow): KeyRecord {
  const k: KeyRecord = { id: r.id, name: r.name, prefix: r.prefix, sha256: r.sha256, scopes: r.scopes as Scope[], createdAt: r.created_at, updatedAt: r.updated_at };
  if (r.previous_sha256 !== null) k.previousSha256 = r.previous_sha256;
  if (r.previous_valid_until !== null) k.previousValidUntil = r.previous_valid_until;
  if (r.models !== null) k.models = r.models;
  if (r.rpm !== null) k.rpm = r.rpm;
  if (r.tpm !== null) k.tpm = Number(r.tpm);
  if (r.max_concurrent !== null) k.maxConcurrent = r.max_concurrent;
  const budget = budgetOf(r.budget_micro_usd, r.budget_period);
  if (budget) k.budget = budget;
  if (r.team !== null) k.team = r.team;
  if (r.expires_at !== null) k.expiresAt = r.expires_at;
  if (r.revoked_at !== null) k.revokedAt = r.revoked_at;
  return k;
}

function teamFromRow(r: TeamRow): Team {
  const t: Team = { id: r.id, name: r.name, createdAt: r.created_at, updatedAt: r.updated_at };
  const budget = budgetOf(r.budget_micro_usd, r.budget_period);
  if (budget) t.budget = budget;
  if (r.rpm !== null) t.rpm = r.rpm;
  if (r.tpm !== null) t.tpm = Number(r.tpm);
  if (r.max_concurrent !== null) t.maxConcurrent = r.max_concurrent;
  return t;
}

/** Thrown when a key's team does not exist (the API answers a 400 naming `team`). */
export class UnknownTeamError extends Error {
  constructor(readonly team: string) {
    super(`team '${team}' does not exist: create it first with PUT /v1/teams/${team}`);
  }
}

/** The keys and teams tables (services/router/keys/router-migrations). */
export class KeysDb {
  constructor(private readonly pool: pg.Pool) {}

  async listKeys(includeRevoked: boolean): Promise<KeyRecord[]> {
    const { rows } = await this.pool.query<KeyRow>(`SELECT * FROM promptmesh_keys ${includeRevoked ? '' : 'WHERE revoked_at IS NULL'} ORDER BY created_at, id`);
    return rows.map(keyFromRow);
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    const { rows } = await this.pool.query<KeyRow>('SELECT * FROM promptmesh_keys WHERE id = $1', [id]);
    return rows[0] ? keyFromRow(rows[0]) : undefined;
  }

  /** Creates a key; returns it with its secret (the only time the secret exists outside the client). */
  async createKey(fields: KeyFields & { name: string; scopes: Scope[] }): Promise<{ record: KeyRecord; secret: string }> {
    const secret = newSecret();
    const id = newKeyId();
    try {
      const { rows } = await this.pool.query<KeyRow>(
        `INSERT INTO promptmesh_keys (id, name, prefix, sha256, scopes, models, rpm, tpm, max_concurrent, budget_micro_usd, budget_period, team, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
        [
          id,
          fields.name,
          secret.slice(0, SHOWN_PREFIX_LENGTH),
          sha256Hex(secret),
          fields.scopes,
          fields.models ?? null,
          fields.rpm ?? null,
          fields.tpm ?? null,
          fields.maxConcurrent ?? null,
          fields.budget?.microUsd ?? null,
          fields.budget?.period ?? null,
          fields.team ?? null,
          fields.expiresAt ?? null,
        ],
      );
      return { record: keyFromRow(rows[0]!), secret };
    } catch (err) {
      throw teamError(err, fields.team);
    }
  }

  /** Applies `fields` to a key that is not revoked; undefined when there is no such key. */
  async patchKey(id: string, fields: KeyFields): Promise<KeyRecord | undefined> {
    const sets: string[] = [];
    const values: unknown[] = [id];
    const set = (column: string, value: unknown) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    if (fields.name !== undefined) set('name', fields.name);
    if (fields.scopes !== undefined) set('scopes', fields.scopes);
    if (fields.models !== undefined) set('models', fields.models);
    if (fields.rpm !== undefined) set('rpm', fields.rpm);
    if (fields.tpm !== undefined) set('tpm', fields.tpm);
    if (fields.maxConcurrent !== undefined) set('max_concurrent', fields.maxConcurrent);
    if (fields.budget !== undefined) {
      set('budget_micro_usd', fields.budget?.microUsd ?? null);
      set('budget_period', fields.budget?.period ?? null);
    }
    if (fields.team !== undefined) set('team', fields.team);
    if (fields.expiresAt !== undefined) set('expires_at', fields.expiresAt);
    sets.push('updated_at = now()');
    try {
      const { rows } = await this.pool.query<KeyRow>(`UPDATE promptmesh_keys SET ${sets.join(', ')} WHERE id = $1 AND revoked_at IS NULL RETURNING *`, values);
      return rows[0] ? keyFromRow(rows[0]) : undefined;
    } catch (err) {
      throw teamError(err, fields.team ?? undefined);
    }
  }

  /**
   * A new secret for a key that is not revoked; the current one keeps working until
   * `graceSeconds` from now (0: not at all). The secret before that is dropped.
   */
  async rotateKey(id: string, graceSeconds: number): Promise<{ record: KeyRecord; secret: string } | undefined> {
    const secret = newSecret();
    const { rows } = await this.pool.query<KeyRow>(
      `UPDATE promptmesh_keys SET previous_sha256 = CASE WHEN $4::int > 0 THEN sha256 END,
              previous_valid_until = CASE WHEN $4::int > 0 THEN now() + make_interval(secs => $4::int) END,
              sha256 = $2, prefix = $3, updated_at = now()
       WHERE id = $1 AND revoked_at IS NULL RETURNING *`,
      [id, sha256Hex(secret), secret.slice(0, SHOWN_PREFIX_LENGTH), graceSeconds],
    );
    return rows[0] ? { record: keyFromRow(rows[0]), secret } : undefined;
  }

  /** Revokes a key (kept for the spend ledger); undefined when there is no such key. */
  async revokeKey(id: string): Promise<KeyRecord | undefined> {
    const { rows } = await this.pool.query<KeyRow>(
      `UPDATE promptmesh_keys SET revoked_at = COALESCE(revoked_at, now()), previous_sha256 = NULL, previous_valid_until = NULL, updated_at = now()
       WHERE id = $1 RETURNING *`,
      [id],
    );
    return rows[0] ? keyFromRow(rows[0]) : undefined;
  }

  async listTeams(): Promise<Team[]> {
    const { rows } = await this.pool.query<TeamRow>('SELECT * FROM promptmesh_teams ORDER BY id');
    return rows.map(teamFromRow);
  }

  async getTeam(id: string): Promise<Team | undefined> {
    const { rows } = await this.pool.query<TeamRow>('SELECT * FROM promptmesh_teams WHERE id = $1', [id]);
    return rows[0] ? teamFromRow(rows[0]) : undefined;
  }

  /** Creates or replaces a team; `created` says which. */
  async putTeam(id: string, fields: TeamFields): Promise<{ team: Team; created: boolean }> {
    const { rows } = await this.pool.query<TeamRow & { inserted: boolean }>(
      `INSERT INTO promptmesh_teams (id, name, budget_micro_usd, budget_period, rpm, tpm, max_concurrent)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, budget_micro_usd = EXCLUDED.budget_micro_usd, budget_period = EXCLUDED.budget_period,
         rpm = EXCLUDED.rpm, tpm = EXCLUDED.tpm, max_concurrent = EXCLUDED.max_concurrent, updated_at = now()
       RETURNING *, (xmax = 0) AS inserted`,
      [id, fields.name, fields.budget?.microUsd ?? null, fields.budget?.period ?? null, fields.rpm ?? null, fields.tpm ?? null, fields.maxConcurrent ?? null],
    );
    return { team: teamFromRow(rows[0]!), created: rows[0]!.inserted };
  }
}

function teamError(err: unknown, team: string | null | undefined): unknown {
  if ((err as { code?: string }).code === '23503' && team) return new UnknownTeamError(team);
  return err;
}

/** A key as the auth hook sees it, with what the lookup needs. */
interface LiveKey extends ApiKey {
  scopeSet: ReadonlySet<Scope>;
  /** Epoch ms after which the key is expired; Infinity when it never expires. */
  expiresAtMs: number;
}

/** Why a presented secret was refused (the auth hook's 401 message). */
export type KeyRefusal = 'expired' | 'rotated';

/** Options of {@link KeyRegistry}. */
export interface KeyRegistryOptions {
  db: KeysDb;
  logger: Logger;
  /** Receives the change announcements (a client of its own: subscribers can do nothing else). */
  subscriber: RedisClient;
  /** Announces changes. */
  publisher: RedisClient;
  keyPrefix: string;
  /** How often everything is reloaded from PostgreSQL, besides the announcements. @default 30000 */
  refreshIntervalMs?: number;
}

/** A change announcement on {@link keyChangesChannel}. */
interface KeyChange {
  kind: 'key' | 'team';
  id: string;
}

/**
 * This replica's copy of the virtual keys and teams (see the module comment). `verify` is a
 * SHA-256 and a map lookup.
 */
export class KeyRegistry {
  /** sha256 hex -> key, with the deadline of a rotated-out secret. */
  private byHash = new Map<string, { key: LiveKey; validUntilMs: number }>();
  /** key id -> the hashes it is reachable by (to drop them on a change). */
  private hashesOf = new Map<string, string[]>();
  private teamMap = new Map<string, Team>();
  private timer: NodeJS.Timeout | undefined;
  private readonly channel: string;
  private closed = false;
  /** Loads, for tests and logs. */
  fullLoads = 0;

  constructor(private readonly options: KeyRegistryOptions) {
    this.channel = keyChangesChannel(options.keyPrefix);
  }

  /** Loads everything, subscribes, starts the periodic reload. Throws when PostgreSQL cannot be read. */
  async start(): Promise<void> {
    await this.loadAll();
    const { subscriber, logger } = this.options;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return;
      let change: KeyChange;
      try {
        change = JSON.parse(message) as KeyChange;
      } catch {
        return;
      }
      void this.reload(change).catch((err: unknown) => logger.warn({ err: (err as Error).message, change }, 'could not reload a changed key; the periodic reload will'));
    });
    // After a reconnect announcements may have been missed: reload everything.
    let first = true;
    subscriber.on('ready', () => {
      if (first) {
        first = false;
        return;
      }
      void this.loadAll().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not reload the keys after a Redis reconnect'));
    });
    await subscriber.subscribe(this.channel).catch((err: unknown) => {
      logger.warn({ err: (err as Error).message }, 'Redis unreachable: key changes of other replicas arrive with the periodic reload until it is back');
    });
    this.timer = setInterval(() => {
      void this.loadAll().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'periodic key reload failed; keeping the keys loaded before'));
    }, this.options.refreshIntervalMs ?? 30_000);
    this.timer.unref();
  }

  /** The virtual key `secret` is, or why it is refused, or undefined when it is none of them. */
  verify(secret: string): ApiKey | KeyRefusal | undefined {
    const entry = this.byHash.get(oneShotHash('sha256', secret, 'hex'));
    if (!entry) return undefined;
    const now = Date.now();
    if (now >= entry.validUntilMs) return 'rotated';
    if (now >= entry.key.expiresAtMs) return 'expired';
    return entry.key;
  }

  /** A team by id (for its budget and limits), or undefined. */
  team(id: string): Team | undefined {
    return this.teamMap.get(id);
  }

  /** Every team loaded (for the budget gauges). */
  teams(): Iterable<Team> {
    return this.teamMap.values();
  }

  /** Every live key loaded (for the budget gauges). */
  *keys(): Iterable<ApiKey> {
    const seen = new Set<string>();
    for (const { key } of this.byHash.values()) {
      if (seen.has(key.id)) continue;
      seen.add(key.id);
      yield key;
    }
  }

  /** Applies a change this replica made, then tells the others. */
  async changed(change: KeyChange): Promise<void> {
    await this.reload(change);
    try {
      await this.options.publisher.publish(this.channel, JSON.stringify(change));
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message, change }, 'could not announce a key change on Redis; other replicas pick it up with their periodic reload');
    }
  }

  private async reload(change: KeyChange): Promise<void> {
    if (change.kind === 'team') {
      const team = await this.options.db.getTeam(change.id);
      if (team) this.teamMap.set(team.id, team);
      else this.teamMap.delete(change.id);
      return;
    }
    const record = await this.options.db.getKey(change.id);
    this.drop(change.id);
    if (record && !record.revokedAt) this.add(record, this.byHash, this.hashesOf);
  }

  /** Reloads every key and team, swapping the maps at once. */
  async loadAll(): Promise<void> {
    if (this.closed) return;
    const [records, teams] = await Promise.all([this.options.db.listKeys(false), this.options.db.listTeams()]);
    const byHash = new Map<string, { key: LiveKey; validUntilMs: number }>();
    const hashesOf = new Map<string, string[]>();
    for (const r of records) this.add(r, byHash, hashesOf);
    this.byHash = byHash;
    this.hashesOf = hashesOf;
    this.teamMap = new Map(teams.map((t) => [t.id, t]));
    this.fullLoads++;
  }

  private drop(id: string): void {
    for (const h of this.hashesOf.get(id) ?? []) this.byHash.delete(h);
    this.hashesOf.delete(id);
  }

  private add(r: KeyRecord, byHash: Map<string, { key: LiveKey; validUntilMs: number }>, hashesOf: Map<string, string[]>): void {
    const key: LiveKey = {
      id: r.id,
      sha256: r.sha256,
      scopes: r.scopes,
      scopeSet: new Set(r.scopes),
      source: 'api',
      expiresAtMs: r.expiresAt ? r.expiresAt.getTime() : Infinity,
    };
    if (r.rpm !== undefined) key.rpm = r.rpm;
    if (r.tpm !== undefined) key.tpm = r.tpm;
    if (r.models !== undefined) key.models = new Set(r.models);
    if (r.maxConcurrent !== undefined) key.maxConcurrent = r.maxConcurrent;
    if (r.budget !== undefined) key.budget = r.budget;
    if (r.team !== undefined) key.team = r.team;
    byHash.set(r.sha256, { key, validUntilMs: Infinity });
    const hashes = [r.sha256];
    if (r.previousSha256 && r.previousValidUntil) {
      byHash.set(r.previousSha256, { key, validUntilMs: r.previousValidUntil.getTime() });
      hashes.push(r.previousSha256);
    }
    hashesOf.set(r.id, hashes);
  }

  /** Stops the periodic reload (the Redis clients are the caller's). */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}
