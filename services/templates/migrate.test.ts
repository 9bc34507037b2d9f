import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg';
import { MIGRATIONS_TABLE, loadMigrations, migrate } from './migrate';
import { startTemplates, type RunningTemplates } from '../../test/support/templates-service';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function scratch(label: string): Promise<{ db: TestDatabase; pool: pg.Pool }> {
  const db = await createTestDatabase(label);
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  // Dropping the database terminates connections that are still closing; that is expected.
  pool.on('error', () => undefined);
  cleanups.push(async () => {
    await pool.end();
    await db.drop();
  });
  return { db, pool };
}

async function tables(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
  return rows.map((r) => r.tablename);
}

describe('migrations', () => {
  it('apply on a fresh database, are recorded, and re-run as a no-op', async () => {
    const { pool } = await scratch('mig_fresh');
    const all = await loadMigrations();
    expect(all.map((m) => m.id)).toContain('001_init');
    expect(await migrate(pool)).toEqual(all.map((m) => m.id));
    expect(await tables(pool)).toEqual(
      [MIGRATIONS_TABLE, 'template_changes', 'template_label_history', 'template_labels', 'template_versions', 'templates'].sort(),
    );
    const recorded = await pool.query(`SELECT id, checksum FROM ${MIGRATIONS_TABLE} ORDER BY id`);
    expect(recorded.rows).toEqual(all.map((m) => ({ id: m.id, checksum: m.checksum })));

    expect(await migrate(pool)).toEqual([]);
    expect((await pool.query(`SELECT count(*)::int AS n FROM ${MIGRATIONS_TABLE}`)).rows[0].n).toBe(all.length);
  });

  it('lets concurrent starters apply each migration exactly once', async () => {
    const { db } = await scratch('mig_race');
    // Separate pools, as separate pods would have.
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: db.url, max: 1 }));
    // Dropping the database terminates connections that are still closing; that is expected.
    for (const p of pools) p.on('error', () => undefined);
    cleanups.push(async () => {
      await Promise.all(pools.map((p) => p.end()));
    });
    const results = await Promise.all(pools.map((p) => migrate(p)));
    const applied = results.flat();
    expect(applied.filter((id) => id === '001_init')).toHaveLength(1);
    expect((await pools[0]!.query(`SELECT count(*)::int AS n FROM ${MIGRATIONS_TABLE}`)).rows[0].n).toBe((await loadMigrations()).length);
  });

  it('lets two services start together on one fresh database', async () => {
    const db = await createTestDatabase('mig_services');
    const started = await Promise.all([startTemplates({ db, label: 'mig_a' }), startTemplates({ db, label: 'mig_b' })]);
    cleanups.push(async () => {
      await started[0].close({ keepDatabase: true });
      await started[1].close();
    });
    const [a, b]: RunningTemplates[] = started;
    await a!.core.create({ name: 'shared', type: 'text', template: 'x' });
    expect((await b!.core.get('shared')).version).toBe(1);
  });

  it('applies new migrations after old ones and refuses an edited one', async () => {
    const { pool } = await scratch('mig_edit');
    const dir = await mkdtemp(join(tmpdir(), 'pm-mig-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, '001_a.sql'), 'CREATE TABLE a (x int);');
    expect(await migrate(pool, { dir })).toEqual(['001_a']);
    await writeFile(join(dir, '002_b.sql'), 'CREATE TABLE b (x int);');
    expect(await migrate(pool, { dir })).toEqual(['002_b']);
    await writeFile(join(dir, '001_a.sql'), 'CREATE TABLE a (x bigint);');
    await expect(migrate(pool, { dir })).rejects.toThrow(/001_a\.sql changed after it was applied/);
    // A failing migration rolls back and is not recorded.
    await writeFile(join(dir, '001_a.sql'), 'CREATE TABLE a (x int);');
    await writeFile(join(dir, '003_bad.sql'), 'CREATE TABLE c (x int); SELECT no_such_function();');
    await expect(migrate(pool, { dir })).rejects.toThrow(/003_bad\.sql failed/);
    expect(await tables(pool)).not.toContain('c');
    // The advisory lock was released: a later run still gets it.
    await rm(join(dir, '003_bad.sql'));
    expect(await migrate(pool, { dir })).toEqual([]);
  });

  it('makes versions immutable in the database itself', async () => {
    const { pool } = await scratch('mig_immutable');
    await migrate(pool);
    await pool.query("INSERT INTO templates (name, latest_version, created_by) VALUES ('t', 1, 'me')");
    await pool.query(`INSERT INTO template_versions (template_id, version, type, template, variables, created_by)
                      SELECT id, 1, 'text', '"x"'::jsonb, '{}', 'me' FROM templates`);
    await expect(pool.query("UPDATE template_versions SET template = '\"y\"'::jsonb")).rejects.toThrow(/immutable/);
    await expect(pool.query('DELETE FROM template_versions')).rejects.toThrow(/immutable/);
  });
});
