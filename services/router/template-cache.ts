import { Gauge } from 'prom-client';
import { METRICS, templateChangesChannel } from '../../contracts';
import { badRequest, closeRedis, notFound, waitForRedis, type Logger, type RedisClient } from '../kit';
import { compileTemplate, pickVersion, type CompiledTemplate, type SplitEntry } from '../kit/template-syntax';
import { DEFAULT_LABEL, type TemplateChange, type TemplateVersion } from '../templates/types';
import type { CallMeta, TemplatesClient } from './clients';

/**
 * How long a name found missing is answered 404 from memory. A change notice for the name
 * (e.g. it was just created) clears it at once.
 */
const MISSING_TTL_MS = 2_000;


/** A version, parsed once, as the cache holds it. */
export interface CachedVersion {
  name: string;
  version: number;
  /** The model the prompt was written for, or null. */
  model: string | null;
  compiled: CompiledTemplate;
}

interface CachedTemplate {
  name: string;
  /** A Map, not an object: the label is client input, and a plain object answers 'constructor'. */
  labels: Map<string, SplitEntry[]>;
  versions: Map<number, CachedVersion>;
}

/** Options of {@link TemplateCache}. */
export interface TemplateCacheOptions {
  client: TemplatesClient;
  logger: Logger;
  /**
   * A Redis connection the cache may put into subscriber mode for change notices; the cache
   * owns and closes it. Undefined: no push, only the periodic reconcile (and in-process notices).
   */
  subscriber?: RedisClient;
  /** The key prefix whose change channel to subscribe to. @default 'pm:' */
  keyPrefix?: string;
  /** How often the change feed is read as a safety net. @default 5000 */
  reconcileIntervalMs?: number;
  /** Where to register `promptmesh_template_cache_age_seconds`. */
  registry?: import('prom-client').Registry;
  /**
   * In-process change notices (the templates core's `onChange` in `SERVICE=all`); returns an
   * unsubscribe function.
   */
  onChange?: (listener: (change: TemplateChange) => void) => () => void;
}

/**
 * The router's in-memory copy of the active templates: warmed up from the bulk export, kept
 * fresh by the change notices on Redis pub/sub (and in-process ones in `SERVICE=all`), and
 * reconciled through the change feed every few seconds as a safety net. Lookups on the request
 * path never leave the process unless the template is not cached at all (then it is fetched
 * once). When the templates service is down the cache keeps serving what it has.
 */
export class TemplateCache {
  private readonly entries = new Map<string, CachedTemplate>();
  /** Names recently found missing, until when (ms): repeated requests for them do not reach the templates service. */
  private readonly missing = new Map<string, number>();
  private seq = -1;
  private lastSyncMs = 0;
  private warm = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly refreshing = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private reconciling: Promise<void> | undefined;
  private unsubscribeLocal: (() => void) | undefined;
  private closed = false;
  private readonly gauge: Gauge | undefined;

  constructor(private readonly options: TemplateCacheOptions) {
    if (options.registry) {
      const ageSeconds = () => this.ageSeconds();
      this.gauge = new Gauge({
        name: METRICS.templateCacheAge,
        help: 'Seconds since the router template cache last synchronised with the templates service (warm-up or reconcile).',
        registers: [options.registry],
        collect() {
          this.set(ageSeconds());
        },
      });
    }
  }

  /** Seconds since the last successful sync; +Inf before the first. */
  ageSeconds(): number {
    return this.lastSyncMs === 0 ? Number.POSITIVE_INFINITY : (Date.now() - this.lastSyncMs) / 1000;
  }

  /** Whether the warm-up has succeeded at least once. */
  get isWarm(): boolean {
    return this.warm;
  }

  /** How many templates are cached. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Subscribes to change notices, then warms up (a failed warm-up is retried by the reconcile
   * loop, so the router starts even while the templates service is down).
   */
  async start(): Promise<void> {
    const { subscriber, onChange } = this.options;
    if (onChange) this.unsubscribeLocal = onChange((change) => this.onNotice(change));
    if (subscriber) {
      const channel = templateChangesChannel(this.options.keyPrefix);
      subscriber.on('message', (ch: string, message: string) => {
        if (ch !== channel) return;
        try {
          this.onNotice(JSON.parse(message) as TemplateChange);
        } catch {
          this.options.logger.warn({ channel }, 'template cache: ignoring a malformed change notice');
        }
      });
      // Subscribe on every (re)connect: the client queues nothing while disconnected, and
      // what was published meanwhile is caught up at once rather than at the next reconcile.
      const subscribe = () =>
        subscriber.subscribe(channel).catch((err: Error) => {
          this.options.logger.warn({ err: err.message }, 'template cache: cannot subscribe to change notices yet; relying on the reconcile loop');
        });
      subscriber.on('ready', () => {
        if (this.closed) return;
        void subscribe();
        if (this.warm) void this.reconcile();
      });
      subscriber.on('error', () => undefined);
      if (await waitForRedis(subscriber, 2_000)) await subscribe();
    }
    await this.warmUp().catch((err: Error) => {
      this.options.logger.warn({ err: err.message }, 'template cache: warm-up failed; will retry');
    });
    const interval = this.options.reconcileIntervalMs ?? 5_000;
    this.timer = setInterval(() => void this.reconcile(), interval);
    this.timer.unref();
  }

  /** Loads everything from the bulk export, replacing the cache. */
  async warmUp(): Promise<void> {
    const exported = await this.options.client.exportAll();
    const fresh = new Map<string, CachedTemplate>();
    for (const t of exported.templates) {
      const versions = new Map<number, CachedVersion>();
      for (const v of t.versions) versions.set(v.version, toCached(v));
      fresh.set(t.name, { name: t.name, labels: new Map(Object.entries(t.labels)), versions });
    }
    this.entries.clear();
    for (const [name, entry] of fresh) this.entries.set(name, entry);
    this.seq = exported.seq;
    this.warm = true;
    this.lastSyncMs = Date.now();
  }

  /**
   * Reads the change feed since the last sequence seen and refreshes what changed (a full
   * warm-up when not warm yet or when the feed says it was reset). Never throws.
   */
  reconcile(): Promise<void> {
    if (this.reconciling) return this.reconciling;
    this.reconciling = (async () => {
      try {
        if (!this.warm) {
          await this.warmUp();
          return;
        }
        for (let pages = 0; pages < 100; pages++) {
          const feed = await this.options.client.changesSince(this.seq);
          if (feed.reset) {
            await this.warmUp();
            return;
          }
          const names = new Set(feed.changes.map((c) => c.name));
          await Promise.all([...names].map((name) => this.refresh(name)));
          const last = feed.changes.length > 0 ? feed.changes[feed.changes.length - 1]!.seq : feed.seq;
          this.seq = Math.max(this.seq, feed.has_more ? last : Math.max(last, feed.seq));
          if (!feed.has_more) break;
        }
        this.lastSyncMs = Date.now();
      } catch (err) {
        this.options.logger.warn({ err: (err as Error).message }, 'template cache: reconcile failed; serving cached templates');
      } finally {
        this.reconciling = undefined;
      }
    })();
    return this.reconciling;
  }

  private onNotice(change: TemplateChange): void {
    if (this.closed || typeof change?.name !== 'string') return;
    this.missing.delete(change.name);
    void this.refresh(change.name).catch((err: Error) => {
      this.options.logger.warn({ err: err.message, template: change.name }, 'template cache: refresh after a change notice failed; the reconcile loop retries');
    });
  }

  /**
   * Re-reads one template (its labels and the versions they point at). Refreshes of one name
   * run one at a time; a notice during a refresh runs one more after it, so the last state wins.
   */
  refresh(name: string): Promise<void> {
    const running = this.refreshing.get(name);
    if (running) {
      this.dirty.add(name);
      return running;
    }
    const run = (async () => {
      try {
        do {
          this.dirty.delete(name);
          await this.load(name);
        } while (this.dirty.has(name));
      } finally {
        this.refreshing.delete(name);
      }
    })();
    this.refreshing.set(name, run);
    return run;
  }

  private async load(name: string): Promise<void> {
    const head = await this.options.client.head(name);
    if (!head || head.archived) {
      this.entries.delete(name);
      if (this.missing.size > 10_000) this.missing.clear();
      this.missing.set(name, Date.now() + MISSING_TTL_MS);
      return;
    }
    this.missing.delete(name);
    const previous = this.entries.get(name);
    const versions = new Map<number, CachedVersion>(previous?.versions);
    for (const v of head.data) if (!versions.has(v.version)) versions.set(v.version, toCached(v));
    const wanted = new Set<number>();
    for (const split of Object.values(head.labels)) for (const arm of split) wanted.add(arm.version);
    await Promise.all(
      [...wanted]
        .filter((v) => !versions.has(v))
        .map(async (v) => {
          const loaded = await this.options.client.version(name, v);
          if (loaded) versions.set(v, toCached(loaded));
        }),
    );
    this.entries.set(name, { name, labels: new Map(Object.entries(head.labels)), versions });
  }

  /**
   * Resolves a prompt to one version: `version` exactly, else `label` (default `production`),
   * a split label picked by `stickyKey`. A template (or an exact version) not in the cache is
   * fetched once. Throws a 404 naming `prompt.name`, `prompt.label` or `prompt.version`.
   */
  // `meta` carries the request's trace to a version fetched on demand (a cache miss).
  async resolve(name: string, options: { label?: string; version?: number; stickyKey?: string; meta?: CallMeta }): Promise<CachedVersion> {
    let entry = this.entries.get(name);
    if (!entry) {
      const until = this.missing.get(name);
      if (until !== undefined && until > Date.now()) throw notFound(`prompt template '${name}' does not exist or is archived`, 'template_not_found', 'prompt.name');
      await this.refresh(name);
      entry = this.entries.get(name);
      if (!entry) throw notFound(`prompt template '${name}' does not exist or is archived`, 'template_not_found', 'prompt.name');
    }
    if (options.version !== undefined) {
      let found = entry.versions.get(options.version);
      if (!found) {
        const loaded = await this.options.client.version(name, options.version, options.meta);
        if (!loaded) throw notFound(`prompt template '${name}' has no version ${options.version}`, 'version_not_found', 'prompt.version');
        found = toCached(loaded);
        entry.versions.set(found.version, found);
      }
      return found;
    }
    const label = options.label ?? DEFAULT_LABEL;
    const split = entry.labels.get(label);
    if (!split || split.length === 0) throw notFound(`prompt template '${name}' has no label '${label}'`, 'label_not_found', 'prompt.label');
    const version = pickVersion(split, options.stickyKey);
    let found = entry.versions.get(version);
    if (!found) {
      const loaded = await this.options.client.version(name, version, options.meta);
      if (!loaded) throw notFound(`prompt template '${name}' label '${label}' points at missing version ${version}`, 'version_not_found', 'prompt.label');
      found = toCached(loaded);
      entry.versions.set(found.version, found);
    }
    return found;
  }

  /** Stops the reconcile loop and the subscription. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.unsubscribeLocal?.();
    if (this.options.subscriber) await closeRedis(this.options.subscriber);
    if (this.gauge && this.options.registry) this.options.registry.removeSingleMetric(METRICS.templateCacheAge);
  }
}

function toCached(v: TemplateVersion): CachedVersion {
  try {
    return { name: v.name, version: v.version, model: v.model ?? null, compiled: compileTemplate(v.type, v.template) };
  } catch (err) {
    // Stored templates were checked when written; this only guards against a schema drift.
    throw badRequest(`stored template '${v.name}' version ${v.version} cannot be compiled: ${(err as Error).message}`, 'prompt.name');
  }
}
