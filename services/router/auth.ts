import { createHash, hash as oneShotHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ENV } from '../../contracts';
import { ConfigError, type Logger } from '../kit';

/** What a key may do: `invoke` completions and models; `admin` template writes and admin reads. */
export const SCOPES = ['invoke', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** One API key as the keys file declares it. The key itself is never stored, only its SHA-256. */
export interface ApiKey {
  /** Names the key in logs, metrics and the `x-promptmesh-actor` header; unique. */
  id: string;
  /** Lower-case hex SHA-256 of the key as clients send it. */
  sha256: string;
  /** What the key may do. */
  scopes: readonly Scope[];
  /** Requests per minute, held across replicas in Redis. @default unlimited */
  rpm?: number;
  /**
   * Tokens per minute (prompt and completion), held across replicas in Redis: each request's
   * estimate is reserved before the provider call and settled against the real usage after it.
   * @default unlimited
   */
  tpm?: number;
  /**
   * Where the key comes from: `file` (`API_KEYS_FILE`, read-only through the API) or `api`
   * (created with `POST /v1/keys`, stored hashed in PostgreSQL). @default 'file'
   */
  source?: 'file' | 'api';
  /** The models the key may ask for (model names or aliases as clients send them). @default any */
  models?: ReadonlySet<string>;
  /** Requests in flight at once, across replicas. @default unlimited */
  maxConcurrent?: number;
  /** USD per day or month, counted in integer microdollars. @default none */
  budget?: KeyBudget;
  /** The team whose budget and limits the key also counts against. @default none */
  team?: string;
}

/** A spending limit: `microUsd` per calendar `period` (UTC). */
export interface KeyBudget {
  /** The budget in microdollars (USD x 1e6), so every sum is exact. */
  microUsd: number;
  period: 'day' | 'month';
}

interface CompiledKey extends ApiKey {
  digest: Buffer;
  scopeSet: ReadonlySet<Scope>;
}

const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** The hex SHA-256 of a key: what goes into the keys file as `sha256`. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Parses the keys file (YAML or JSON; JSON is YAML): `keys: [{ id, sha256, scopes, rpm?, tpm? }]`.
 * Throws a {@link ConfigError} naming the file and the field for the first problem.
 */
export function parseApiKeys(text: string, file: string): ApiKey[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(file, `is not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(file, `must be an object with a 'keys' list`);
  }
  const unknown = Object.keys(doc).filter((k) => k !== 'keys');
  if (unknown.length > 0) throw new ConfigError(file, `'${unknown[0]}' is not a known field (expected 'keys')`);
  const keys = (doc as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw new ConfigError(file, `'keys' must be a list`);
  const ids = new Set<string>();
  const hashes = new Set<string>();
  return keys.map((raw: unknown, i): ApiKey => {
    const at = `keys[${i}]`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(file, `'${at}' must be an object`);
    const entry = raw as Record<string, unknown>;
    for (const field of Object.keys(entry)) {
      if (!['id', 'sha256', 'scopes', 'rpm', 'tpm'].includes(field)) throw new ConfigError(file, `'${at}.${field}' is not a known field`);
    }
    const { id, sha256, scopes, rpm, tpm } = entry;
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      throw new ConfigError(file, `'${at}.id' must be 1-64 letters, digits, '.', '_' or '-'`);
    }
    if (ids.has(id)) throw new ConfigError(file, `'${at}.id' duplicates id '${id}'`);
    ids.add(id);
    if (typeof sha256 !== 'string' || !SHA256_PATTERN.test(sha256.toLowerCase())) {
      throw new ConfigError(file, `'${at}.sha256' must be 64 hex digits (the SHA-256 of the key, e.g. from: printf %s "$KEY" | sha256sum)`);
    }
    if (hashes.has(sha256.toLowerCase())) throw new ConfigError(file, `'${at}.sha256' is the same key as another entry`);
    hashes.add(sha256.toLowerCase());
    if (!Array.isArray(scopes) || scopes.length === 0) throw new ConfigError(file, `'${at}.scopes' must be a non-empty list of ${SCOPES.join(', ')}`);
    scopes.forEach((s, j) => {
      if (!(SCOPES as readonly unknown[]).includes(s)) throw new ConfigError(file, `'${at}.scopes[${j}]' must be one of ${SCOPES.join(', ')}, got ${JSON.stringify(s)}`);
    });
    if (rpm !== undefined && (typeof rpm !== 'number' || !Number.isInteger(rpm) || rpm < 1 || rpm > 1_000_000)) {
      throw new ConfigError(file, `'${at}.rpm' must be a whole number between 1 and 1000000`);
    }
    if (tpm !== undefined && (typeof tpm !== 'number' || !Number.isInteger(tpm) || tpm < 1 || tpm > 10_000_000_000)) {
      throw new ConfigError(file, `'${at}.tpm' must be a whole number between 1 and 10000000000`);
    }
    return {
      id,
      sha256: sha256.toLowerCase(),
      scopes: scopes as Scope[],
      ...(rpm !== undefined ? { rpm: rpm as number } : {}),
      ...(tpm !== undefined ? { tpm: tpm as number } : {}),
    };
  });
}

function compile(keys: ApiKey[]): CompiledKey[] {
  return keys.map((k) => ({ ...k, digest: Buffer.from(k.sha256, 'hex'), scopeSet: new Set(k.scopes) }));
}

/** Options of {@link ApiKeyStore}. */
export interface ApiKeyStoreOptions {
  /** Period of the stat-based fallback that notices changes fs.watch missed. @default 2000 */
  pollIntervalMs?: number;
}

/**
 * The API keys, loaded from `API_KEYS_FILE` and reloaded when the file changes (fs.watch on
 * its folder, so editors that replace the file are seen, plus a periodic stat as a fallback).
 * A broken file at start is a {@link ConfigError}; a broken file on reload keeps the previous
 * keys and logs an error naming the file and the field; a file that disappears (or can no
 * longer be read) while running means no keys at all, with an error log, until it is back.
 */
export class ApiKeyStore {
  private keys: CompiledKey[];
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private signature: string;
  private debounce: NodeJS.Timeout | undefined;
  private unreadable = false;
  /** How many times the keys were (re)loaded successfully, including the first load. */
  loads = 1;

  private constructor(
    readonly file: string,
    private readonly logger: Logger,
    keys: ApiKey[],
    signature: string,
  ) {
    this.keys = compile(keys);
    this.signature = signature;
  }

  /** Loads the file (throwing a ConfigError when it is broken) and starts watching it. */
  static open(file: string, logger: Logger, options: ApiKeyStoreOptions = {}): ApiKeyStore {
    const path = resolve(file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(ENV.apiKeysFile, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const store = new ApiKeyStore(path, logger, parseApiKeys(text, file), fileSignature(path));
    store.startWatching(options.pollIntervalMs ?? 2_000);
    logger.info({ file, keys: store.keys.length }, 'API keys loaded');
    return store;
  }

  /** The keys currently loaded (for the keys API, which shows them read-only). */
  list(): readonly ApiKey[] {
    return this.keys;
  }

  /** The number of keys currently loaded. */
  get size(): number {
    return this.keys.length;
  }

  /**
   * The key whose SHA-256 matches `presented`, compared in constant time against every key
   * (no early exit), or undefined.
   */
  verify(presented: string): ApiKey | undefined {
    // The one-shot hash is several times cheaper than a Hash object on the hot path.
    const digest = oneShotHash('sha256', presented, 'buffer');
    let found: CompiledKey | undefined;
    for (const key of this.keys) {
      if (timingSafeEqual(key.digest, digest) && !found) found = key;
    }
    return found;
  }

  /** Whether `key` has `scope`. */
  static allows(key: ApiKey, scope: Scope): boolean {
    return (key as CompiledKey).scopeSet?.has(scope) ?? key.scopes.includes(scope);
  }

  /** Whether the file could not be read at the last look (every key is refused until it can). */
  get missing(): boolean {
    return this.unreadable;
  }

  /**
   * Re-reads the file now. A file that cannot be read (deleted, unmounted, no permission) means
   * no keys: fail closed, so deleting the file revokes every key. A file that reads but is
   * broken keeps the previous keys (an editor mid-save must not lock everybody out). Returns
   * whether it loaded.
   */
  reload(): boolean {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      this.keys = [];
      this.unreadable = true;
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.logger.error({ file: this.file, error: code }, `API keys file cannot be read (${code}): refusing every key until it is back`);
      return false;
    }
    try {
      this.keys = compile(parseApiKeys(text, this.file));
      this.loads++;
      if (this.unreadable) this.logger.info({ file: this.file }, 'API keys file is back');
      this.unreadable = false;
      this.logger.info({ file: this.file, keys: this.keys.length }, 'API keys reloaded');
      return true;
    } catch (err) {
      this.logger.error({ file: this.file, error: (err as Error).message }, `API keys file not reloaded, keeping the previous keys: ${(err as Error).message}`);
      return false;
    }
  }

  private check(): void {
    const signature = fileSignature(this.file);
    if (signature === this.signature) return;
    this.signature = signature;
    this.reload();
  }

  private startWatching(pollIntervalMs: number): void {
    try {
      const name = basename(this.file);
      this.watcher = watch(dirname(this.file), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== name) return;
        // Editors write in several steps; look once things settled.
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.check(), 50);
        this.debounce.unref();
      });
      this.watcher.on('error', () => undefined);
    } catch {
      // The periodic stat below still notices changes.
    }
    this.poller = setInterval(() => this.check(), pollIntervalMs);
    this.poller.unref();
  }

  /** Stops watching the file. */
  close(): void {
    this.watcher?.close();
    clearInterval(this.poller);
    clearTimeout(this.debounce);
  }
}

function fileSignature(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/** Reads the bearer token of an Authorization header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}
