import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';

/** Where the versioned SQL migrations live (copied beside the code in builds). */
export const MIGRATIONS_DIR = join(__dirname, 'migrations');

/** The table that records applied migrations. */
export const MIGRATIONS_TABLE = 'promptmesh_schema_migrations';

/**
 * The advisory lock key migrations run under, so that pods starting together apply each
 * migration once: the others wait, then find it recorded. (An arbitrary constant: "pm-tmpl".)
 */
export const MIGRATION_LOCK_KEY = 0x706d2d746d706cn;

/** One migration file: `NNN_name.sql`. */
export interface Migration {
  id: string;
  sql: string;
  checksum: string;
}

/** Reads `NNN_name.sql` files in order. */
export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{3,}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(join(dir, file), 'utf8');
      return { id: file.replace(/\.sql$/, ''), sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

/** Where {@link migrate} reads migrations from and records them. */
export interface MigrateOptions {
  /** The folder of `NNN_name.sql` files. @default {@link MIGRATIONS_DIR} */
  dir?: string;
  /** The migrations themselves (tests). @default read from `dir` */
  migrations?: Migration[];
  /**
   * The table applied migrations are recorded in: one per owner (the router's own is
   * `promptmesh_router_schema_migrations`), so two services' `001_` files never collide.
   * @default {@link MIGRATIONS_TABLE}
   */
  table?: string;
  /** The advisory lock the run holds, one per owner. @default {@link MIGRATION_LOCK_KEY} */
  lockKey?: bigint;
}

/**
 * Applies the migrations not yet recorded, each in its own transaction, under a session
 * advisory lock. Refuses to start when an applied migration's file has changed since (a
 * migration is history: add a new one instead). Returns the ids applied by this call.
 */
export async function migrate(pool: pg.Pool, options: MigrateOptions = {}): Promise<string[]> {
  const migrations = options.migrations ?? (await loadMigrations(options.dir));
  const table = options.table ?? MIGRATIONS_TABLE;
  const lockKey = (options.lockKey ?? MIGRATION_LOCK_KEY).toString();
  const client = await pool.connect();
  const applied: string[] = [];
  let broken = false;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [lockKey]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${table} (id text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const { rows } = await client.query<{ id: string; checksum: string }>(`SELECT id, checksum FROM ${table}`);
      const done = new Map(rows.map((r) => [r.id, r.checksum]));
      for (const m of migrations) {
        const recorded = done.get(m.id);
        if (recorded !== undefined) {
          if (recorded !== m.checksum) {
            throw new Error(`migration ${m.id}.sql changed after it was applied (checksum differs); add a new migration instead`);
          }
          continue;
        }
        try {
          await client.query('BEGIN');
          await client.query(m.sql);
          await client.query(`INSERT INTO ${table} (id, checksum) VALUES ($1, $2)`, [m.id, m.checksum]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new Error(`migration ${m.id}.sql failed: ${(err as Error).message}`, { cause: err });
        }
        applied.push(m.id);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [lockKey]).catch(() => {
        broken = true;
      });
    }
  } finally {
    // A connection whose unlock failed may still hold the lock: destroy it rather than reuse it.
    client.release(broken ? true : undefined);
  }
  return applied;
}
