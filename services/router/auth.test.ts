import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, createLogger } from '../kit';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../../test/support/redis';
import { waitFor } from '../../test/support/net';
import { ApiKeyStore, bearerToken, hashApiKey, parseApiKeys } from './auth';
import { KeyRateLimiter } from './key-rate-limit';

const sha = hashApiKey('secret-one');

function capture() {
  const lines: string[] = [];
  const logger = createLogger('test', 'debug', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  return { logger, lines };
}

describe('parseApiKeys', () => {
  it('reads YAML and JSON', () => {
    const yaml = parseApiKeys(`keys:\n  - { id: a, sha256: ${sha}, scopes: [invoke, admin], rpm: 10, tpm: 50000 }\n`, 'keys.yaml');
    expect(yaml).toEqual([{ id: 'a', sha256: sha, scopes: ['invoke', 'admin'], rpm: 10, tpm: 50000 }]);
    const json = parseApiKeys(JSON.stringify({ keys: [{ id: 'b', sha256: sha.toUpperCase(), scopes: ['invoke'] }] }), 'keys.json');
    expect(json).toEqual([{ id: 'b', sha256: sha, scopes: ['invoke'] }]);
  });

  it.each([
    ['nope: 1', `'nope' is not a known field`],
    ['keys: 3', `'keys' must be a list`],
    [`keys: [{ id: a, sha256: abc, scopes: [invoke] }]`, `'keys[0].sha256'`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [root] }]`, `'keys[0].scopes[0]' must be one of invoke, admin`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [] }]`, `'keys[0].scopes'`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [invoke], rpm: 0 }]`, `'keys[0].rpm'`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [invoke], tpm: 0 }]`, `'keys[0].tpm'`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [invoke], tpm: 1.5 }]`, `'keys[0].tpm'`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [invoke], tpm: '100' }]`, `'keys[0].tpm'`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [invoke] }, { id: a, sha256: ${hashApiKey('x')}, scopes: [invoke] }]`, `'keys[1].id' duplicates`],
    [`keys: [{ id: 'a b', sha256: ${sha}, scopes: [invoke] }]`, `'keys[0].id'`],
    [`keys: [{ id: a, sha256: ${sha}, scopes: [invoke], extra: 1 }]`, `'keys[0].extra' is not a known field`],
    ['keys: [unclosed', 'is not valid YAML or JSON'],
  ])('rejects %s naming the field', (text, message) => {
    let caught: unknown;
    try {
      parseApiKeys(text, 'keys.yaml');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toContain('keys.yaml');
    expect((caught as Error).message).toContain(message);
  });

  it('reads bearer tokens', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer  abc ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('ApiKeyStore', () => {
  let dir: string;
  let store: ApiKeyStore | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pm-keys-'));
  });
  afterEach(() => store?.close());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('verifies keys by hash and scope', () => {
    const file = join(dir, 'verify.yaml');
    writeFileSync(file, `keys:\n  - { id: app, sha256: ${sha}, scopes: [invoke] }\n  - { id: ops, sha256: ${hashApiKey('secret-two')}, scopes: [admin] }\n`);
    store = ApiKeyStore.open(file, createLogger('t', 'silent'));
    expect(store.verify('secret-one')?.id).toBe('app');
    expect(store.verify('secret-two')?.id).toBe('ops');
    expect(store.verify('secret-three')).toBeUndefined();
    expect(ApiKeyStore.allows(store.verify('secret-one')!, 'invoke')).toBe(true);
    expect(ApiKeyStore.allows(store.verify('secret-one')!, 'admin')).toBe(false);
  });

  it('is a ConfigError naming the file when the file is broken or missing at start', () => {
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, `keys:\n  - { id: app, sha256: nothex, scopes: [invoke] }\n`);
    expect(() => ApiKeyStore.open(file, createLogger('t', 'silent'))).toThrow(/broken\.yaml.*keys\[0\]\.sha256/);
    expect(() => ApiKeyStore.open(join(dir, 'missing.yaml'), createLogger('t', 'silent'))).toThrow(ConfigError);
  });

  it('reloads when the file changes (also when replaced by rename) and keeps the old keys when the new file is broken', async () => {
    const file = join(dir, 'reload.yaml');
    writeFileSync(file, `keys:\n  - { id: first, sha256: ${sha}, scopes: [invoke] }\n`);
    const { logger, lines } = capture();
    store = ApiKeyStore.open(file, logger, { pollIntervalMs: 200 });
    expect(store.verify('secret-two')).toBeUndefined();

    writeFileSync(file, `keys:\n  - { id: second, sha256: ${hashApiKey('secret-two')}, scopes: [invoke] }\n`);
    await waitFor(() => store!.verify('secret-two')?.id === 'second', 10_000, 'the changed file to be loaded');
    expect(store.verify('secret-one')).toBeUndefined();

    // An editor-style replace: write a temp file and rename it over the original.
    const tmp = join(dir, 'reload.yaml.tmp');
    writeFileSync(tmp, `keys:\n  - { id: third, sha256: ${hashApiKey('secret-three')}, scopes: [admin] }\n`);
    renameSync(tmp, file);
    await waitFor(() => store!.verify('secret-three')?.id === 'third', 10_000, 'the replaced file to be loaded');

    writeFileSync(file, `keys:\n  - { id: third, sha256: ${hashApiKey('secret-three')}, scopes: [superuser] }\n`);
    await waitFor(() => lines.some((l) => l.includes('keys[0].scopes[0]')), 10_000, 'the reload error to be logged');
    const logged = JSON.parse(lines.find((l) => l.includes('keys[0].scopes[0]'))!);
    expect(logged.level).toBe('error');
    expect(logged.msg).toContain('reload.yaml');
    expect(store.verify('secret-three')?.id).toBe('third');
  });

  it('refuses every key once the file is deleted, with an error log, and takes the keys back when it returns', async () => {
    const file = join(dir, 'deleted.yaml');
    const text = `keys:\n  - { id: app, sha256: ${sha}, scopes: [invoke] }\n`;
    writeFileSync(file, text);
    const { logger, lines } = capture();
    store = ApiKeyStore.open(file, logger, { pollIntervalMs: 200 });
    expect(store.verify('secret-one')?.id).toBe('app');
    unlinkSync(file);
    await waitFor(() => store!.verify('secret-one') === undefined, 10_000, 'the deleted file to revoke the key');
    expect(store.size).toBe(0);
    expect(store.missing).toBe(true);
    const logged = lines.map((l) => JSON.parse(l) as { level: string; msg: string }).find((l) => l.msg.includes('cannot be read'));
    expect(logged?.level).toBe('error');
    expect(logged?.msg).toMatch(/ENOENT.*refusing every key/);
    writeFileSync(file, text);
    await waitFor(() => store!.verify('secret-one')?.id === 'app', 10_000, 'the restored file to be loaded');
    expect(store.missing).toBe(false);
  });

  // The class: every way a keys file can stop being readable while running revokes every key
  // (fail closed); none of them may leave the last keys in force.
  const goneWays: Array<[string, (file: string) => void]> = [
    ['deleted', (file) => unlinkSync(file)],
    ['renamed away', (file) => renameSync(file, `${file}.old`)],
    ['replaced by a folder', (file) => (unlinkSync(file), mkdirSync(file))],
    ['replaced by a dangling symlink', (file) => (unlinkSync(file), symlinkSync(join(dir, 'nowhere', 'keys.yaml'), file))],
    // root reads a file whatever its mode, so this way only exists for other users.
    ...(process.getuid?.() === 0 ? [] : [['made unreadable', (file: string) => chmodSync(file, 0o000)] as [string, (file: string) => void]]),
  ];
  it.each(goneWays)('refuses every key when the file is %s', async (_label, makeGone) => {
    const sub = mkdtempSync(join(dir, 'gone-'));
    const file = join(sub, 'keys.yaml');
    writeFileSync(file, `keys:\n  - { id: app, sha256: ${sha}, scopes: [invoke, admin] }\n`);
    store = ApiKeyStore.open(file, createLogger('t', 'silent'), { pollIntervalMs: 100 });
    expect(store.verify('secret-one')?.id).toBe('app');
    makeGone(file);
    await waitFor(() => store!.verify('secret-one') === undefined, 10_000, 'the key to be refused');
    expect(store.size).toBe(0);
  });
});

describe('KeyRateLimiter', () => {
  const prefix = uniquePrefix('router-rpm');
  const a = new Redis(TEST_REDIS_URL);
  const b = new Redis(TEST_REDIS_URL);
  afterAll(async () => {
    await deletePrefix(prefix);
    a.disconnect();
    b.disconnect();
  });

  it('holds one budget across two limiters (replicas) sharing Redis', async () => {
    const one = new KeyRateLimiter(a, prefix);
    const two = new KeyRateLimiter(b, prefix);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? one : two).take('k1', 6)));
    expect(results.filter((r) => r.allowed)).toHaveLength(6);
    const refused = results.filter((r) => !r.allowed);
    expect(refused).toHaveLength(4);
    for (const r of refused) {
      expect(r.retryAfterMs).toBeGreaterThan(0);
      expect(r.retryAfterMs).toBeLessThanOrEqual(10_000);
    }
    // Another key has its own budget.
    expect((await one.take('k2', 6)).allowed).toBe(true);
  });

  it('lets requests through again once the interval passed', async () => {
    const limiter = new KeyRateLimiter(a, prefix, 1_000); // 2 per second
    expect((await limiter.take('k3', 2)).allowed).toBe(true);
    expect((await limiter.take('k3', 2)).allowed).toBe(true);
    const refused = await limiter.take('k3', 2);
    expect(refused.allowed).toBe(false);
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 50));
    expect((await limiter.take('k3', 2)).allowed).toBe(true);
  });
});
