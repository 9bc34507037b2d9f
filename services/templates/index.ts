/**
 * The templates service: the system of record for prompt templates, on PostgreSQL.
 *
 * `createTemplatesService(ctx, peers)` runs the migrations (under an advisory lock), builds the
 * core, and returns the service instance: its core for in-process callers (the router in
 * `SERVICE=all`), its HTTP routes, a `SELECT 1` readiness check, and `close()`.
 * Every committed change is published on Redis (`templateChangesChannel(prefix)`); see
 * docs/templates.md for the message format and how a cache stays fresh.
 */
import pg from 'pg';
import { Counter } from 'prom-client';
import type { ServiceName } from '../../contracts';
import { ENV, templateChangesChannel } from '../../contracts';
import { ConfigError, redactUrl } from '../kit/config';
import { closeRedis, createRedis, redisConnected, waitForRedis, type RedisClient } from '../kit/redis';
import type { ServiceContext, ServiceInstance } from '../kit/service';
import { PgTemplatesCore } from './core';
import { migrate } from './migrate';
import { templatesRoutes } from './routes';
import type { TemplateChange, TemplatesCore } from './types';

export * from './types';
export { LIMITS } from './validation';
export { migrate, loadMigrations, MIGRATIONS_DIR, MIGRATIONS_TABLE } from './migrate';
export { PgTemplatesCore } from './core';

/** Tuning of the templates service; the defaults suit a pod. */
export interface TemplatesServiceOptions {
  /**
   * Most PostgreSQL connections this process holds.
   * @default 10
   */
  poolSize?: number;
  /**
   * Where the SQL migrations are read from.
   * @default the `migrations` folder beside this module
   */
  migrationsDir?: string;
  /**
   * Whether to publish changes on Redis (tests of the database alone turn it off).
   * @default true
   */
  publish?: boolean;
}

/** How long a failed publish waits for the client to reconnect before one retry. */
const PUBLISH_RETRY_WAIT_MS = 2_000;

/**
 * Publishes changes on Redis pub/sub, one at a time in sequence order. A failed publish is
 * logged and counted, never an error for the write that caused it: subscribers reconcile
 * through the change feed.
 *
 * The client queues nothing while it reconnects (a dropped connection, or a Redis Cluster client
 * re-reading the topology), so a publish in that moment fails at once; it waits up to
 * {@link PUBLISH_RETRY_WAIT_MS} for the client to be ready and retries once, so a blip does not
 * cost the routers a push. During a real outage (the retry failed too) later publishes fail
 * fast until one succeeds again.
 */
class ChangePublisher {
  private queue: Promise<void> = Promise.resolve();
  private down = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly channel: string,
    private readonly ctx: ServiceContext,
    private readonly failures: Counter<string>,
  ) {}

  publish(change: TemplateChange): void {
    const message = JSON.stringify(change);
    this.queue = this.queue.then(async () => {
      try {
        try {
          await this.redis.publish(this.channel, message);
        } catch (err) {
          if (this.down || !(await waitForRedis(this.redis, PUBLISH_RETRY_WAIT_MS))) throw err;
          await this.redis.publish(this.channel, message);
        }
        this.down = false;
      } catch (err) {
        this.down = true;
        this.failures.inc();
        this.ctx.logger.warn({ err: (err as Error).message, seq: change.seq, name: change.name }, 'could not publish a template change on Redis; subscribers will catch up from the change feed');
      }
    });
  }

  /** Resolves when every queued message was published (or failed). */
  drain(): Promise<void> {
    return this.queue;
  }
}

/** Builds the templates service (see the module comment). */
export async function createTemplatesService(
  ctx: ServiceContext,
  _peers: ReadonlyMap<ServiceName, ServiceInstance> = new Map(),
  options: TemplatesServiceOptions = {},
): Promise<ServiceInstance<TemplatesCore>> {
  const pool = new pg.Pool({
    connectionString: ctx.config.databaseUrl,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'promptmesh-templates',
  });
  // An idle connection dropped by the server must not crash the process.
  pool.on('error', (err) => ctx.logger.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
  // A connection the server drops while it is checked out but between queries (awaiting Redis,
  // say) emits 'error' on the client, where the pool no longer listens: without a listener of
  // its own that is an uncaught exception. The query in flight, or the next one, fails anyway.
  pool.on('connect', (client) => client.on('error', (err) => ctx.logger.warn({ err: err.message }, 'PostgreSQL connection failed')));

  let redis: RedisClient | undefined;
  try {
    // A database that cannot be reached at start (wrong host, port, name or credentials) stops
    // the process with a message naming DATABASE_URL.
    await pool.query('SELECT 1').catch((err: Error & { code?: string }) => {
      throw new ConfigError(ENV.databaseUrl, `cannot connect to ${redactUrl(ctx.config.databaseUrl)}: ${err.message || err.code || 'connection failed'}`);
    });
    const applied = await migrate(pool, { dir: options.migrationsDir });
    if (applied.length > 0) ctx.logger.info({ applied }, 'templates migrations applied');

    let publisher: ChangePublisher | undefined;
    if (options.publish !== false) {
      redis = createRedis(ctx.config, 'templates');
      redis.on('error', (err: Error) => ctx.logger.debug({ err: err.message }, 'templates Redis client error'));
      // Give Redis a moment so the first changes are published; start anyway when it is down.
      if (!(await waitForRedis(redis, 2_000))) ctx.logger.warn('Redis is not reachable: template changes will not be pushed until it is (the change feed still works)');
      const failures = new Counter({
        name: 'promptmesh_template_publish_failures_total',
        help: 'Template changes that could not be published on Redis (subscribers catch up from the change feed).',
        registers: [ctx.metrics.registry],
      });
      publisher = new ChangePublisher(redis, templateChangesChannel(ctx.config.redisKeyPrefix), ctx, failures);
    }

    const core = new PgTemplatesCore({ pool, logger: ctx.logger, onCommitted: publisher ? (c) => publisher.publish(c) : undefined });
    return {
      name: 'templates',
      core,
      routes: templatesRoutes(core),
      readiness: {
        postgres: async () => {
          await pool.query('SELECT 1');
        },
      },
      // Without Redis changes reach routers through the change feed instead of at once.
      degradations: redis ? { redis: redisConnected(redis) } : {},
      async close() {
        await publisher?.drain();
        if (redis) await closeRedis(redis);
        await pool.end();
      },
    };
  } catch (err) {
    if (redis) await closeRedis(redis);
    await pool.end().catch(() => undefined);
    throw err;
  }
}
