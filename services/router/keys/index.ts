/**
 * The router's virtual keys, teams and spend ledger, opened together (docs/keys.md): a
 * PostgreSQL pool with the router's own migrations, the in-memory key registry kept fresh over
 * Redis pub/sub, the ledger, and the budget gauges.
 */
import { join } from 'node:path';
import pg from 'pg';
import { Gauge } from 'prom-client';
import { ENV, METRICS } from '../../../contracts';
import { ConfigError, closeRedis, createRedis, redactUrl, type RedisClient, type ServiceContext } from '../../kit';
import { KEY_LABEL_CAP, TEAM_LABEL_CAP } from '../../kit/label-cap';
import { migrate } from '../../templates/migrate';
import type { ApiKeyStore } from '../auth';
import { Ledger } from './ledger';
import { KeyRegistry, KeysDb } from './store';

export { Ledger, BudgetRefusal, RateRefusal, periodEnd, periodIds, type Admission, type CallUsage, type Lease, type RateScope } from './ledger';
export { KeyRegistry, KeysDb, newSecret, SECRET_PREFIX, type KeyRecord, type Team } from './store';

/** The router's migrations (`router-migrations/` beside this module; build/router-migrations in the bundle). */
export const ROUTER_MIGRATIONS_DIR = join(__dirname, 'router-migrations');
/** Where the router records its applied migrations, apart from the templates service's. */
export const ROUTER_MIGRATIONS_TABLE = 'promptmesh_router_schema_migrations';
/** The advisory lock the router's migrations run under ("pm-keys"), so replicas starting at once apply each once. */
export const ROUTER_MIGRATION_LOCK_KEY = 0x706d2d6b657973n;

/** The opened parts (see the module comment). */
export interface VirtualKeys {
  db: KeysDb;
  registry: KeyRegistry;
  ledger: Ledger;
  pool: pg.Pool;
  /** `SELECT 1`: PostgreSQL reachable (a degradation, not readiness: keys are in memory). */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** Options of {@link openKeys}. */
export interface OpenKeysOptions {
  /** The router's Redis client for commands (budgets, announcements). */
  redis: RedisClient;
  fileKeys: ApiKeyStore | undefined;
  refreshIntervalMs?: number;
  flushIntervalMs?: number;
}

/**
 * Connects to PostgreSQL (a ConfigError naming DATABASE_URL when it cannot), applies the
 * router's migrations, loads the keys and starts listening for changes.
 */
export async function openKeys(ctx: ServiceContext, options: OpenKeysOptions): Promise<VirtualKeys> {
  const { config, logger } = ctx;
  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: 5,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'promptmesh-router',
  });
  pool.on('error', (err) => logger.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
  // A connection the server drops while it is checked out but between queries (awaiting Redis,
  // say) emits 'error' on the client, where the pool no longer listens: without a listener of
  // its own that is an uncaught exception. The query in flight, or the next one, fails anyway.
  pool.on('connect', (client) => client.on('error', (err) => logger.warn({ err: err.message }, 'PostgreSQL connection failed')));
  const subscriber = createRedis(config, 'router-keys');
  subscriber.on('error', () => undefined);
  let registry: KeyRegistry | undefined;
  let ledger: Ledger | undefined;
  try {
    await pool.query('SELECT 1').catch((err: Error & { code?: string }) => {
      throw new ConfigError(ENV.databaseUrl, `cannot connect to ${redactUrl(config.databaseUrl)} (the router keeps its API keys and spend there): ${err.message || err.code || 'connection failed'}`);
    });
    const applied = await migrate(pool, { dir: ROUTER_MIGRATIONS_DIR, table: ROUTER_MIGRATIONS_TABLE, lockKey: ROUTER_MIGRATION_LOCK_KEY });
    if (applied.length > 0) logger.info({ applied }, 'router migrations applied');
    const db = new KeysDb(pool);
    registry = new KeyRegistry({ db, logger, subscriber, publisher: options.redis, keyPrefix: config.redisKeyPrefix, refreshIntervalMs: options.refreshIntervalMs });
    await registry.start();
    ledger = new Ledger({ redis: options.redis, pool, keyPrefix: config.redisKeyPrefix, logger, flushIntervalMs: options.flushIntervalMs });
    registerBudgetGauges(ctx, registry, ledger);
    const opened: VirtualKeys = {
      db,
      registry,
      ledger,
      pool,
      check: async () => {
        await pool.query('SELECT 1');
      },
      async close() {
        registry!.close();
        await ledger!.close();
        await closeRedis(subscriber);
        await pool.end();
      },
    };
    return opened;
  } catch (err) {
    registry?.close();
    await ledger?.close().catch(() => undefined);
    await closeRedis(subscriber);
    await pool.end().catch(() => undefined);
    throw err;
  }
}

/**
 * `promptmesh_budget_spent_usd` and `promptmesh_budget_limit_usd` {budget, id, period}: each
 * budgeted key's and team's current-period spend (read from Redis when scraped, one MGET) and
 * budget, so a rule can warn at 80%. Bounded like the cost labels: the first KEY_LABEL_CAP keys
 * and TEAM_LABEL_CAP teams with a budget.
 */
function registerBudgetGauges(ctx: ServiceContext, registry: KeyRegistry, ledger: Ledger): void {
  const registryOf = ctx.metrics.registry;
  const labelNames = ['budget', 'id', 'period'] as const;
  type Row = { labels: { budget: 'key' | 'team'; id: string; period: 'day' | 'month' }; spentUsd: number; limitUsd: number };
  // Both gauges come from one read per scrape: the limit gauge (collected first, registered
  // first) reads, the spent gauge takes that read.
  let pending: Promise<Row[]> | undefined;
  async function read(): Promise<Row[]> {
    const scopes: Array<{ kind: 'key' | 'team'; id: string; period: 'day' | 'month'; microUsd: number }> = [];
    let keys = 0;
    for (const k of registry.keys()) {
      if (!k.budget || keys++ >= KEY_LABEL_CAP) continue;
      scopes.push({ kind: 'key', id: k.id, period: k.budget.period, microUsd: k.budget.microUsd });
    }
    let teams = 0;
    for (const t of registry.teams()) {
      if (!t.budget || teams++ >= TEAM_LABEL_CAP) continue;
      scopes.push({ kind: 'team', id: t.id, period: t.budget.period, microUsd: t.budget.microUsd });
    }
    let spent: number[];
    try {
      spent = await ledger.spent(scopes);
    } catch {
      return [];
    }
    return scopes.map((s, i) => ({ labels: { budget: s.kind, id: s.id, period: s.period }, spentUsd: spent[i]! / 1e6, limitUsd: s.microUsd / 1e6 }));
  }
  new Gauge({
    name: METRICS.budgetLimitUsd,
    help: 'Budget per period in USD, per key and team that has one.',
    labelNames,
    registers: [registryOf],
    async collect() {
      pending = read();
      const rows = await pending;
      this.reset();
      for (const r of rows) this.set(r.labels, r.limitUsd);
    },
  });
  new Gauge({
    name: METRICS.budgetSpentUsd,
    help: 'USD spent in the current budget period (UTC day or month), per key and team that has a budget.',
    labelNames,
    registers: [registryOf],
    async collect() {
      const rows = await (pending ?? read());
      pending = undefined;
      this.reset();
      for (const r of rows) this.set(r.labels, r.spentUsd);
    },
  });
}
