import type pg from 'pg';
import { ApiError, badRequest, conflict, notFound, unavailable } from '../kit/errors';
import type { Logger } from '../kit/logger';
import { compileTemplate, pickVersion, renderCompiled, type SplitEntry } from '../kit/template-syntax';
import {
  DEFAULT_LABEL,
  type ChangeFeed,
  type ChangeKind,
  type CreateInput,
  type LabelMove,
  type LabelState,
  type LabelTarget,
  type ListOptions,
  type RenderResult,
  type ResolveOptions,
  type ResolvedTemplate,
  type TemplateChange,
  type TemplateList,
  type TemplatesCore,
  type TemplatesExport,
  type TemplateSummary,
  type TemplateVersion,
  type Variables,
  type VersionInput,
  type VersionList,
} from './types';
import {
  LIMITS,
  asBadRequest,
  checkLabel,
  checkLabelTarget,
  checkTemplateName,
  checkCreateInput,
  checkRenderVariables,
  checkVersionInput,
  checkVersionNumber,
  type CheckedVersion,
} from './validation';

/**
 * Taken (per transaction) right before a change is recorded and held until commit, so sequence
 * numbers are handed out in commit order: a feed reader that has seen seq N can never later
 * find a smaller seq appear. Writes are rare; the lock covers only the tail of a transaction.
 */
const CHANGE_LOCK_KEY = '7920098186948716'; // "pm-chg" as a number, arbitrary

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300']);

/** Database unreachable -> 503; our own errors pass through; anything else stays a 500. */
function mapDbError(err: unknown): never {
  if (err instanceof ApiError) throw err;
  const e = err as { code?: string; message?: string };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (CONNECTION_ERROR_CODES.has(code) || code.startsWith('08') || /timeout exceeded when trying to connect|Connection terminated/i.test(e?.message ?? '')) {
    throw unavailable('the templates database is unavailable; try again shortly', 'database_unavailable');
  }
  throw err;
}

/** A `template_versions` row as pg returns it: the API shape without the name, with a Date. */
type VersionRow = Omit<TemplateVersion, 'name' | 'created_at'> & { created_at: Date };

const VERSION_COLUMNS = 'v.version, v.type, v.template, v.variables, v.description, v.model, v.created_at, v.created_by';

function toVersion(name: string, row: VersionRow): TemplateVersion {
  return {
    name,
    version: row.version,
    type: row.type,
    template: row.template,
    variables: row.variables,
    description: row.description,
    model: row.model,
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
  };
}

interface PendingChange {
  name: string;
  kind: ChangeKind;
  version?: number;
  label?: string;
}

function encodeCursor(name: string): string {
  return Buffer.from(JSON.stringify({ n: name })).toString('base64url');
}

function decodeCursor(cursor: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { n?: unknown };
    if (typeof parsed.n === 'string') return parsed.n;
  } catch {
    // fall through
  }
  throw badRequest(`'cursor' is not a cursor this API returned`, 'cursor');
}

/** jsonb sorts object keys; answer with `{ version, weight }` in that order. */
function normSplit(split: SplitEntry[]): SplitEntry[] {
  return split.map((e) => ({ version: e.version, weight: e.weight }));
}

function normLabels(labels: Record<string, SplitEntry[]>): Record<string, SplitEntry[]> {
  const out: Record<string, SplitEntry[]> = {};
  for (const [label, split] of Object.entries(labels)) out[label] = normSplit(split);
  return out;
}

function sameSplit(a: SplitEntry[] | null, b: SplitEntry[]): boolean {
  return a !== null && a.length === b.length && a.every((e, i) => e.version === b[i]!.version && e.weight === b[i]!.weight);
}

/** What the core needs: a pool, a logger, and where committed changes go. */
export interface PgTemplatesCoreOptions {
  pool: pg.Pool;
  logger: Logger;
  /** Called once per committed change, in sequence order (e.g. to publish on Redis). */
  onCommitted?: (change: TemplateChange) => void;
}

/** The templates core on PostgreSQL. See {@link TemplatesCore} for the contract. */
export class PgTemplatesCore implements TemplatesCore {
  private readonly pool: pg.Pool;
  private readonly logger: Logger;
  private readonly listeners = new Set<(change: TemplateChange) => void>();
  private readonly onCommitted: ((change: TemplateChange) => void) | undefined;

  constructor(options: PgTemplatesCoreOptions) {
    this.pool = options.pool;
    this.logger = options.logger;
    this.onCommitted = options.onCommitted;
  }

  onChange(listener: (change: TemplateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Runs `work` in a transaction, records its changes in commit order, then announces them. */
  private async write<T>(work: (client: pg.PoolClient, changes: PendingChange[]) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      mapDbError(err);
    }
    const pending: PendingChange[] = [];
    let recorded: TemplateChange[] = [];
    let result: T;
    let broken = false;
    try {
      await client.query('BEGIN');
      result = await work(client, pending);
      if (pending.length > 0) {
        await client.query('SELECT pg_advisory_xact_lock($1)', [CHANGE_LOCK_KEY]);
        const { rows } = await client.query<{ seq: string; name: string; kind: ChangeKind; version: number | null; label: string | null; at: Date }>(
          `INSERT INTO template_changes (name, kind, version, label)
           SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[])
           RETURNING seq, name, kind, version, label, at`,
          [pending.map((c) => c.name), pending.map((c) => c.kind), pending.map((c) => c.version ?? null), pending.map((c) => c.label ?? null)],
        );
        recorded = rows.map((r) => toChange(r)).sort((a, b) => a.seq - b.seq);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      client.release(broken ? true : undefined);
      mapDbError(err);
    }
    client.release();
    for (const change of recorded) this.announce(change);
    return result;
  }

  private announce(change: TemplateChange): void {
    try {
      this.onCommitted?.(change);
    } catch (err) {
      this.logger.warn({ err, seq: change.seq }, 'publishing a template change failed');
    }
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.logger.warn({ err, seq: change.seq }, 'a template change listener failed');
      }
    }
  }

  private async read<R extends pg.QueryResultRow>(query: pg.QueryConfig | string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await (typeof query === 'string' ? this.pool.query<R>(query, values) : this.pool.query<R>(query));
    } catch (err) {
      mapDbError(err);
    }
  }

  private async insertVersion(client: pg.PoolClient, templateId: string, version: number, v: CheckedVersion, actor: string): Promise<VersionRow> {
    const { rows } = await client.query<VersionRow>(
      `INSERT INTO template_versions AS v (template_id, version, type, template, variables, description, model, created_by)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8)
       RETURNING ${VERSION_COLUMNS}`,
      [templateId, version, v.type, JSON.stringify(v.template), v.compiled.variables, v.description, v.model, actor],
    );
    return rows[0]!;
  }

  /** Points a label at a split and records the move; returns the previous split (null if new). */
  private async setLabel(
    client: pg.PoolClient,
    templateId: string,
    label: string,
    split: SplitEntry[],
    actor: string,
  ): Promise<{ previous: SplitEntry[] | null; changed: boolean; updated_at: Date; updated_by: string }> {
    const current = await client.query<{ split: SplitEntry[]; updated_at: Date; updated_by: string }>(
      'SELECT split, updated_at, updated_by FROM template_labels WHERE template_id = $1 AND label = $2',
      [templateId, label],
    );
    const previous = current.rows[0] ? normSplit(current.rows[0].split) : null;
    if (sameSplit(previous, split)) {
      return { previous, changed: false, updated_at: current.rows[0]!.updated_at, updated_by: current.rows[0]!.updated_by };
    }
    const { rows } = await client.query<{ updated_at: Date }>(
      `INSERT INTO template_labels (template_id, label, split, updated_by) VALUES ($1, $2, $3::jsonb, $4)
       ON CONFLICT (template_id, label) DO UPDATE SET split = EXCLUDED.split, updated_by = EXCLUDED.updated_by, updated_at = now()
       RETURNING updated_at`,
      [templateId, label, JSON.stringify(split), actor],
    );
    await client.query('INSERT INTO template_label_history (template_id, label, from_split, to_split, actor) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5)', [
      templateId,
      label,
      previous === null ? null : JSON.stringify(previous),
      JSON.stringify(split),
      actor,
    ]);
    return { previous, changed: true, updated_at: rows[0]!.updated_at, updated_by: actor };
  }

  async create(input: CreateInput, actor = 'anonymous'): Promise<TemplateVersion & { labels: string[] }> {
    const v = checkCreateInput(input);
    const name = v.name;
    const labels = v.labels ?? [DEFAULT_LABEL];
    return this.write(async (client, changes) => {
      const inserted = await client.query<{ id: string }>(
        'INSERT INTO templates (name, latest_version, created_by) VALUES ($1, 1, $2) ON CONFLICT (name) DO NOTHING RETURNING id',
        [name, actor],
      );
      if (inserted.rowCount === 0) {
        const existing = await client.query<{ archived_at: Date | null }>('SELECT archived_at FROM templates WHERE name = $1', [name]);
        const archived = existing.rows[0]?.archived_at != null;
        throw conflict(
          archived
            ? `template '${name}' already exists and is archived; names are never reused, choose another`
            : `template '${name}' already exists; add a version with POST /v1/templates/${name}/versions`,
          'name',
        );
      }
      const id = inserted.rows[0]!.id;
      const row = await this.insertVersion(client, id, 1, v, actor);
      changes.push({ name, kind: 'created', version: 1 });
      for (const label of labels) {
        await this.setLabel(client, id, label, [{ version: 1, weight: 100 }], actor);
        changes.push({ name, kind: 'label', label, version: 1 });
      }
      return { ...toVersion(name, row), labels };
    });
  }

  async addVersion(name: string, input: VersionInput, actor = 'anonymous'): Promise<TemplateVersion & { labels: string[] }> {
    checkTemplateName(name);
    const v = checkVersionInput(input);
    const labels = v.labels ?? [];
    return this.write(async (client, changes) => {
      // The row lock taken by this UPDATE serialises writers of one template: numbers are
      // handed out one by one, and a rolled-back writer gives its number back.
      const bumped = await client.query<{ id: string; latest_version: number }>(
        'UPDATE templates SET latest_version = latest_version + 1, updated_at = now() WHERE name = $1 AND archived_at IS NULL RETURNING id, latest_version',
        [name],
      );
      if (bumped.rowCount === 0) await this.explainMissing(client, name, 'add a version to');
      const { id, latest_version: version } = bumped.rows[0]!;
      const row = await this.insertVersion(client, id, version, v, actor);
      changes.push({ name, kind: 'version', version });
      for (const label of labels) {
        const moved = await this.setLabel(client, id, label, [{ version, weight: 100 }], actor);
        if (moved.changed) changes.push({ name, kind: 'label', label, version });
      }
      return { ...toVersion(name, row), labels };
    });
  }

  /** Throws the right error for a template that is missing or archived. */
  private async explainMissing(client: pg.PoolClient | pg.Pool, name: string, action: string): Promise<never> {
    const { rows } = await client.query<{ archived_at: Date | null }>('SELECT archived_at FROM templates WHERE name = $1', [name]);
    if (rows.length === 0) throw notFound(`template '${name}' does not exist`, 'template_not_found', 'name');
    throw conflict(`template '${name}' is archived; cannot ${action} it`, 'name');
  }

  async get(name: string, options: ResolveOptions = {}): Promise<ResolvedTemplate> {
    checkTemplateName(name);
    if (options.version !== undefined && options.label !== undefined) {
      throw badRequest(`give either 'label' or 'version', not both`, 'version');
    }
    if (options.version !== undefined) {
      const version = checkVersionNumber(options.version);
      const { rows } = await this.read<{ archived_at: Date | null } & Partial<VersionRow>>({
        name: 'templates-get-version',
        text: `SELECT t.archived_at, ${VERSION_COLUMNS} FROM templates t
               LEFT JOIN template_versions v ON v.template_id = t.id AND v.version = $2
               WHERE t.name = $1`,
        values: [name, version],
      });
      const row = this.servable(name, rows[0]);
      if (row.version == null) throw notFound(`template '${name}' has no version ${version}`, 'version_not_found', 'version');
      return { ...toVersion(name, row as VersionRow), label: null, split: null };
    }
    const label = checkLabel(options.label ?? DEFAULT_LABEL);
    const { rows } = await this.read<{ archived_at: Date | null; split: SplitEntry[] | null } & Partial<VersionRow>>({
      name: 'templates-get-label',
      text: `SELECT t.archived_at, l.split, ${VERSION_COLUMNS} FROM templates t
             LEFT JOIN template_labels l ON l.template_id = t.id AND l.label = $2
             LEFT JOIN template_versions v ON v.template_id = t.id
               AND v.version IN (SELECT (e ->> 'version')::int FROM jsonb_array_elements(l.split) e)
             WHERE t.name = $1`,
      values: [name, label],
    });
    const first = this.servable(name, rows[0]);
    const split = first.split ? normSplit(first.split) : null;
    if (!split) throw notFound(`template '${name}' has no label '${label}'`, 'label_not_found', 'label');
    const picked = pickVersion(split, options.stickyKey);
    const row = rows.find((r) => r.version === picked);
    if (!row) throw new Error(`label '${label}' of '${name}' points at missing version ${picked}`);
    return { ...toVersion(name, row as VersionRow), label, split };
  }

  private servable<R extends { archived_at: Date | null }>(name: string, row: R | undefined): R {
    if (!row) throw notFound(`template '${name}' does not exist`, 'template_not_found', 'name');
    if (row.archived_at) throw notFound(`template '${name}' is archived and no longer served`, 'template_archived', 'name');
    return row;
  }

  async render(name: string, variables: Variables | undefined, options: ResolveOptions = {}): Promise<RenderResult> {
    const vars = checkRenderVariables(variables);
    const resolved = await this.get(name, options);
    let messages;
    try {
      messages = renderCompiled(compileTemplate(resolved.type, resolved.template), vars, { maxChars: LIMITS.renderedChars });
    } catch (err) {
      asBadRequest(err);
    }
    return { name, version: resolved.version, label: resolved.label, split: resolved.split, messages };
  }

  async list(options: ListOptions = {}): Promise<TemplateList> {
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.pageSize) throw badRequest(`'limit' must be a whole number from 1 to ${LIMITS.pageSize}`, 'limit');
    if (options.cursor !== undefined && options.offset !== undefined) throw badRequest(`give either 'cursor' or 'offset', not both`, 'offset');
    const offset = options.offset ?? 0;
    if (!Number.isInteger(offset) || offset < 0 || offset > 1_000_000) throw badRequest(`'offset' must be a whole number from 0 to 1000000`, 'offset');
    const after = options.cursor !== undefined ? decodeCursor(options.cursor) : null;
    const { rows } = await this.read<{
      name: string;
      latest_version: number;
      archived_at: Date | null;
      created_at: Date;
      updated_at: Date;
      description: string | null;
      labels: Record<string, SplitEntry[]>;
    }>(
      `SELECT t.name, t.latest_version, t.archived_at, t.created_at, t.updated_at, v.description,
              COALESCE((SELECT jsonb_object_agg(l.label, l.split) FROM template_labels l WHERE l.template_id = t.id), '{}'::jsonb) AS labels
       FROM templates t
       JOIN template_versions v ON v.template_id = t.id AND v.version = t.latest_version
       WHERE ($1::boolean OR t.archived_at IS NULL) AND ($2::text IS NULL OR t.name COLLATE "C" > $2::text COLLATE "C")
       ORDER BY t.name COLLATE "C"
       LIMIT $3 OFFSET $4`,
      [options.includeArchived === true, after, limit + 1, offset],
    );
    const hasMore = rows.length > limit;
    const data: TemplateSummary[] = rows.slice(0, limit).map((r) => ({
      name: r.name,
      latest_version: r.latest_version,
      description: r.description,
      labels: normLabels(r.labels),
      archived: r.archived_at !== null,
      created_at: r.created_at.toISOString(),
      updated_at: r.updated_at.toISOString(),
    }));
    return { data, has_more: hasMore, next_cursor: hasMore ? encodeCursor(data[data.length - 1]!.name) : null };
  }

  private async templateHead(name: string): Promise<{ id: string; archived: boolean; latest_version: number; labels: Record<string, SplitEntry[]> }> {
    checkTemplateName(name);
    const { rows } = await this.read<{ id: string; archived_at: Date | null; latest_version: number; labels: Record<string, SplitEntry[]> }>(
      `SELECT t.id, t.archived_at, t.latest_version,
              COALESCE((SELECT jsonb_object_agg(l.label, l.split) FROM template_labels l WHERE l.template_id = t.id), '{}'::jsonb) AS labels
       FROM templates t WHERE t.name = $1`,
      [name],
    );
    const row = rows[0];
    if (!row) throw notFound(`template '${name}' does not exist`, 'template_not_found', 'name');
    return { id: row.id, archived: row.archived_at !== null, latest_version: row.latest_version, labels: normLabels(row.labels) };
  }

  async versions(name: string, options: { limit?: number; after?: number; order?: 'asc' | 'desc' } = {}): Promise<VersionList> {
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.pageSize) throw badRequest(`'limit' must be a whole number from 1 to ${LIMITS.pageSize}`, 'limit');
    const order = options.order ?? 'asc';
    if (order !== 'asc' && order !== 'desc') throw badRequest(`'order' must be "asc" or "desc"`, 'order');
    const after = options.after === undefined ? null : checkVersionNumber(options.after, 'after');
    const head = await this.templateHead(name);
    const { rows } = await this.read<VersionRow>(
      `SELECT ${VERSION_COLUMNS} FROM template_versions v
       WHERE v.template_id = $1 AND ($2::int IS NULL OR ${order === 'asc' ? 'v.version > $2' : 'v.version < $2'})
       ORDER BY v.version ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT $3`,
      [head.id, after, limit + 1],
    );
    return {
      name,
      archived: head.archived,
      latest_version: head.latest_version,
      labels: head.labels,
      data: rows.slice(0, limit).map((r) => toVersion(name, r)),
      has_more: rows.length > limit,
    };
  }

  async moveLabel(name: string, label: string, target: LabelTarget, actor = 'anonymous'): Promise<LabelState> {
    checkTemplateName(name);
    checkLabel(label);
    const split = checkLabelTarget(target);
    return this.write(async (client, changes) => {
      const { rows } = await client.query<{ id: string; latest_version: number; archived_at: Date | null }>(
        'SELECT id, latest_version, archived_at FROM templates WHERE name = $1 FOR UPDATE',
        [name],
      );
      const t = rows[0];
      if (!t) throw notFound(`template '${name}' does not exist`, 'template_not_found', 'name');
      if (t.archived_at) throw conflict(`template '${name}' is archived; cannot move its labels`, 'name');
      // Versions are numbered 1..latest without gaps, so existence is a range check.
      split.forEach((e, i) => {
        if (e.version > t.latest_version) {
          const param = 'version' in target && target.version !== undefined ? 'version' : `versions[${i}].version`;
          throw notFound(`template '${name}' has no version ${e.version} (latest is ${t.latest_version})`, 'version_not_found', param);
        }
      });
      const moved = await this.setLabel(client, t.id, label, split, actor);
      if (moved.changed) changes.push({ name, kind: 'label', label, ...(split.length === 1 ? { version: split[0]!.version } : {}) });
      return {
        name,
        label,
        versions: split,
        previous: moved.previous,
        changed: moved.changed,
        updated_at: moved.updated_at.toISOString(),
        updated_by: moved.updated_by,
      };
    });
  }

  async labelHistory(name: string, label: string, options: { limit?: number } = {}): Promise<{ name: string; label: string; data: LabelMove[] }> {
    checkLabel(label);
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.pageSize) throw badRequest(`'limit' must be a whole number from 1 to ${LIMITS.pageSize}`, 'limit');
    const head = await this.templateHead(name);
    const { rows } = await this.read<{ from_split: SplitEntry[] | null; to_split: SplitEntry[]; actor: string; at: Date }>(
      'SELECT from_split, to_split, actor, at FROM template_label_history WHERE template_id = $1 AND label = $2 ORDER BY id DESC LIMIT $3',
      [head.id, label, limit],
    );
    if (rows.length === 0) throw notFound(`template '${name}' has no label '${label}'`, 'label_not_found', 'label');
    return { name, label, data: rows.map((r) => ({ from: r.from_split && normSplit(r.from_split), to: normSplit(r.to_split), actor: r.actor, at: r.at.toISOString() })) };
  }

  async archive(name: string, actor = 'anonymous'): Promise<{ name: string; archived: true; archived_at: string }> {
    checkTemplateName(name);
    return this.write(async (client, changes) => {
      const { rows } = await client.query<{ id: string; archived_at: Date | null }>('SELECT id, archived_at FROM templates WHERE name = $1 FOR UPDATE', [name]);
      const row = rows[0];
      if (!row) throw notFound(`template '${name}' does not exist`, 'template_not_found', 'name');
      // Archiving twice is not an error (DELETE is idempotent) and is not a new change.
      if (row.archived_at) return { name, archived: true as const, archived_at: row.archived_at.toISOString() };
      const updated = await client.query<{ archived_at: Date }>(
        'UPDATE templates SET archived_at = now(), archived_by = $2, updated_at = now() WHERE id = $1 RETURNING archived_at',
        [row.id, actor],
      );
      changes.push({ name, kind: 'archived' });
      const archivedAt = updated.rows[0]!.archived_at;
      return { name, archived: true as const, archived_at: archivedAt.toISOString() };
    });
  }

  async changesSince(since: number, limit = 100): Promise<ChangeFeed> {
    if (!Number.isSafeInteger(since) || since < 0) throw badRequest(`'since' must be a whole number of at least 0`, 'since');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badRequest(`'limit' must be a whole number from 1 to 1000`, 'limit');
    const latest = await this.read<{ seq: string }>('SELECT COALESCE(MAX(seq), 0) AS seq FROM template_changes');
    const { rows } = await this.read<{ seq: string; name: string; kind: ChangeKind; version: number | null; label: string | null; at: Date }>(
      'SELECT seq, name, kind, version, label, at FROM template_changes WHERE seq > $1 ORDER BY seq LIMIT $2',
      [since, limit + 1],
    );
    const changes = rows.slice(0, limit).map((r) => toChange(r));
    const seq = Math.max(Number(latest.rows[0]!.seq), changes.length > 0 ? changes[changes.length - 1]!.seq : 0);
    return { seq, changes, has_more: rows.length > limit, reset: since > seq };
  }

  async exportAll(): Promise<TemplatesExport> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      mapDbError(err);
    }
    try {
      // One snapshot: the templates and the seq they are current as of agree.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const seq = await client.query<{ seq: string }>('SELECT COALESCE(MAX(seq), 0) AS seq FROM template_changes');
      const templates = await client.query<{ id: string; name: string; latest_version: number; labels: Record<string, SplitEntry[]> }>(
        `SELECT t.id, t.name, t.latest_version,
                COALESCE((SELECT jsonb_object_agg(l.label, l.split) FROM template_labels l WHERE l.template_id = t.id), '{}'::jsonb) AS labels
         FROM templates t WHERE t.archived_at IS NULL ORDER BY t.name COLLATE "C"`,
      );
      const versions = await client.query<VersionRow & { template_id: string }>(
        `SELECT v.template_id, ${VERSION_COLUMNS} FROM template_versions v
         JOIN templates t ON t.id = v.template_id AND t.archived_at IS NULL
         WHERE EXISTS (SELECT 1 FROM template_labels l, jsonb_array_elements(l.split) e
                       WHERE l.template_id = v.template_id AND (e ->> 'version')::int = v.version)
         ORDER BY v.template_id, v.version`,
      );
      await client.query('COMMIT');
      const byTemplate = new Map<string, VersionRow[]>();
      for (const row of versions.rows) {
        const list = byTemplate.get(row.template_id) ?? [];
        list.push(row);
        byTemplate.set(row.template_id, list);
      }
      return {
        seq: Number(seq.rows[0]!.seq),
        templates: templates.rows.map((t) => ({
          name: t.name,
          latest_version: t.latest_version,
          labels: normLabels(t.labels),
          versions: (byTemplate.get(t.id) ?? []).map((r) => toVersion(t.name, r)),
        })),
      };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      mapDbError(err);
    } finally {
      client.release();
    }
  }
}

function toChange(r: { seq: string; name: string; kind: ChangeKind; version: number | null; label: string | null; at: Date }): TemplateChange {
  return {
    seq: Number(r.seq),
    name: r.name,
    kind: r.kind,
    ...(r.version !== null ? { version: r.version } : {}),
    ...(r.label !== null ? { label: r.label } : {}),
    at: r.at.toISOString(),
  };
}
