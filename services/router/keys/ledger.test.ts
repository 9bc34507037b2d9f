/**
 * The ledger on real Redis and PostgreSQL, two instances standing for two router replicas:
 * the overshoot bound of a budget under concurrent calls, exact totals, idempotent flushes,
 * concurrency leases, the one-script admission (rpm with budgets and leases), and totals
 * reloaded after Redis lost its data. Then blocks (large limits admitted locally, docs/keys.md
 * "Performance"): when they form and that their calls run no ADMIT script (counted with MONITOR),
 * exact spend and the overshoot bound under load on three replicas, for a key and for a team of
 * two keys, max_concurrent across replicas and idle blocks given back, and the block retired by
 * changed limits, a reconnect, and a Redis that lost its data.
 */
import net from 'node:net';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../kit/logger';
import { migrate } from '../../templates/migrate';
import { createTestDatabase, type TestDatabase } from '../../../test/support/pg';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../../test/support/redis';
import { ROUTER_MIGRATIONS_DIR, ROUTER_MIGRATIONS_TABLE, ROUTER_MIGRATION_LOCK_KEY } from './index';
import { BudgetRefusal, LEASE_MS, Ledger, RateRefusal, periodIds, type BudgetScope, type CallUsage } from './ledger';

const usage = (microUsd: number): CallUsage => ({ provider: 'p', model: 'm', microUsd, inputTokens: 10, cachedInputTokens: 0, outputTokens: 5, cacheHit: false });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ledger', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  const redises: Redis[] = [];
  const sockets: net.Socket[] = [];
  const prefixes: string[] = [];
  const logger = createLogger('test', 'silent');

  beforeAll(async () => {
    db = await createTestDatabase('ledger');
    pool = new pg.Pool({ connectionString: db.url, max: 6 });
    await migrate(pool, { dir: ROUTER_MIGRATIONS_DIR, table: ROUTER_MIGRATIONS_TABLE, lockKey: ROUTER_MIGRATION_LOCK_KEY });
  });
  afterAll(async () => {
    for (const r of redises) r.disconnect();
    for (const s of sockets) s.destroy();
    for (const p of prefixes) await deletePrefix(p);
    await pool?.end();
    await db?.drop();
  });

  function replicas(n: number, label: string): { ledgers: Ledger[]; prefix: string; clients: Redis[] } {
    const prefix = uniquePrefix(label);
    prefixes.push(prefix);
    const clients: Redis[] = [];
    const ledgers = Array.from({ length: n }, () => {
      const redis = new Redis(TEST_REDIS_URL);
      redises.push(redis);
      clients.push(redis);
      return new Ledger({ redis, pool, keyPrefix: prefix, logger, flushIntervalMs: 60_000 });
    });
    return { ledgers, prefix, clients };
  }

  async function spentInPg(keyId: string): Promise<number> {
    const { rows } = await pool.query('SELECT COALESCE(sum(micro_usd), 0)::bigint AS m FROM promptmesh_spend WHERE key_id = $1', [keyId]);
    return Number(rows[0].m);
  }

  /**
   * One caller spending a budget: admits a call, holds it for `holdMs()` and settles it at
   * `cost`, until it is refused, which must be over the budget ('budget' or 'committed').
   * Counts what it did into `tally`; the refusals are kept for the test to look at.
   */
  async function spendUntilRefused(
    ledger: Ledger,
    call: { keyId: string; team?: string; scopes: BudgetScope[]; cost: number; holdMs: () => number },
    tally: { admitted: number; refusals: BudgetRefusal[] },
  ): Promise<void> {
    for (;;) {
      let lease;
      try {
        lease = await ledger.admit(call.keyId, call.scopes);
      } catch (err) {
        expect(err).toBeInstanceOf(BudgetRefusal);
        expect(['budget', 'committed']).toContain((err as BudgetRefusal).reason);
        tally.refusals.push(err as BudgetRefusal);
        return;
      }
      tally.admitted++;
      await sleep(call.holdMs());
      await ledger.settle(lease, call.keyId, call.team, usage(call.cost));
    }
  }

  it('overshoots a budget by at most one call per replica under concurrent load', async () => {
    const { ledgers } = replicas(3, 'ledger-bound');
    const keyId = 'k-bound';
    const scopes: BudgetScope[] = [{ kind: 'key', id: keyId, budget: { microUsd: 10_000, period: 'day' } }];
    const cost = 700;
    const tally = { admitted: 0, refusals: [] as BudgetRefusal[] };
    // 8 concurrent callers per replica, each call taking a few milliseconds.
    const call = { keyId, scopes, cost, holdMs: () => 2 + Math.random() * 5 };
    await Promise.all(ledgers.flatMap((l) => Array.from({ length: 8 }, () => spendUntilRefused(l, call, tally))));
    for (const l of ledgers) await l.flush();
    const spent = await spentInPg(keyId);
    expect(tally.refusals).toHaveLength(24);
    expect(spent).toBeGreaterThanOrEqual(10_000);
    expect(spent).toBeLessThanOrEqual(10_000 + ledgers.length * cost);
    expect(await ledgers[0]!.spent([{ kind: 'key', id: keyId, period: 'day' }])).toEqual([spent]);
  });

  it('charges the calls no limit checked in one script per key and team, exactly', async () => {
    const { ledgers, prefix } = replicas(1, 'ledger-unchecked');
    const ledger = ledgers[0]!;
    await ledger.ensureSeeded();
    const watch = await watchScripts(prefix);
    // 30 calls of a key and team with no budget or concurrency limit, settled together.
    await Promise.all(Array.from({ length: 30 }, (_, i) => ledger.settle(undefined, 'k-unchecked', 'team-unchecked', usage(10 + i))));
    await watch.sync();
    watch.stop();
    expect(watch.counts.charge).toBe(1);
    const total = Array.from({ length: 30 }, (_, i) => 10 + i).reduce((a, b) => a + b, 0);
    expect(await ledger.spent([{ kind: 'key', id: 'k-unchecked', period: 'day' }, { kind: 'team', id: 'team-unchecked', period: 'month' }])).toEqual([total, total]);
    await ledger.flush();
    expect(await spentInPg('k-unchecked')).toBe(total);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM promptmesh_spend WHERE key_id = $1', ['k-unchecked']);
    expect(rows[0].n).toBe(30);
  });

  it('counts each call once in PostgreSQL, whatever the flushes', async () => {
    const { ledgers } = replicas(2, 'ledger-once');
    await ledgers[0]!.ensureSeeded();
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => ledgers[i % 2]!.settle(undefined, 'k-once', 'team-once', usage(i + 1))),
    );
    await Promise.all([ledgers[0]!.flush(), ledgers[0]!.flush(), ledgers[1]!.flush()]);
    expect(await spentInPg('k-once')).toBe((40 * 41) / 2);
    const [key, team] = await ledgers[1]!.spent([
      { kind: 'key', id: 'k-once', period: 'month' },
      { kind: 'team', id: 'team-once', period: 'day' },
    ]);
    expect(key).toBe((40 * 41) / 2);
    expect(team).toBe((40 * 41) / 2);
  });

  it('max concurrent: a lease per call, refused at the limit, free again once settled', async () => {
    const { ledgers } = replicas(2, 'ledger-conc');
    const scopes: BudgetScope[] = [{ kind: 'key', id: 'k-conc', maxConcurrent: 2 }];
    const a = await ledgers[0]!.admit('k-conc', scopes);
    const b = await ledgers[1]!.admit('k-conc', scopes);
    await expect(ledgers[0]!.admit('k-conc', scopes)).rejects.toMatchObject({ reason: 'concurrency' });
    await ledgers[1]!.settle(b, 'k-conc', undefined, undefined);
    const c = await ledgers[0]!.admit('k-conc', scopes);
    expect(c).toBeDefined();
    await ledgers[0]!.settle(a, 'k-conc', undefined, usage(5));
    await ledgers[0]!.settle(c, 'k-conc', undefined, usage(5));
  });

  it('admits a request in one script: key and team rpm with the budget and concurrency lease; a refusal takes nothing', async () => {
    const { ledgers, prefix } = replicas(2, 'ledger-admit');
    const [one, two] = ledgers as [Ledger, Ledger];
    const raw = new Redis(TEST_REDIS_URL);
    redises.push(raw);
    const inflight = (kind: 'k' | 't', id: string) => raw.zcard(`${prefix}budget:{budget}:inflight:${kind}:${id}`);
    const scopes: BudgetScope[] = [
      { kind: 'key', id: 'k-adm', maxConcurrent: 1, budget: { microUsd: 1_000_000, period: 'day' } },
      { kind: 'team', id: 'team-adm', maxConcurrent: 10 },
    ];
    const rates = [
      { kind: 'key' as const, id: 'k-adm', rpm: 3 },
      { kind: 'team' as const, id: 'team-adm', rpm: 1000 },
    ];
    // One round trip, both replicas: the first takes the lease and a request of each rpm.
    const first = await one.admitRequest('k-adm', scopes, rates);
    expect(first.degraded).toEqual([]);
    expect(first.lease).toBeDefined();
    expect([await inflight('k', 'k-adm'), await inflight('t', 'team-adm')]).toEqual([1, 1]);
    expect(Number(await raw.exists(`${prefix}budget:{budget}:rpm:k:k-adm`, `${prefix}budget:{budget}:rpm:t:team-adm`))).toBe(2);
    // At max_concurrent on the other replica: refused, and neither rpm is taken by the refusal.
    const tatBefore = await raw.get(`${prefix}budget:{budget}:rpm:k:k-adm`);
    await expect(two.admitRequest('k-adm', scopes, rates)).rejects.toMatchObject({ reason: 'concurrency' });
    expect(await raw.get(`${prefix}budget:{budget}:rpm:k:k-adm`)).toBe(tatBefore);
    await one.settle(first.lease, 'k-adm', 'team-adm', usage(7));
    expect([await inflight('k', 'k-adm'), await inflight('t', 'team-adm')]).toEqual([0, 0]);
    // Routes that are not billed take only the rpm (no lease); the key's 3 per minute run out.
    expect(await two.admitRequest('k-adm', [], rates)).toEqual({ lease: undefined, degraded: [] });
    const second = await two.admitRequest('k-adm', scopes, rates);
    expect(second.lease).toBeDefined();
    const teamTat = await raw.get(`${prefix}budget:{budget}:rpm:t:team-adm`);
    const refusal = await one.admitRequest('k-adm', scopes, rates).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(RateRefusal);
    expect(refusal).toMatchObject({ scope: { kind: 'key', id: 'k-adm', rpm: 3 } });
    expect((refusal as RateRefusal).retryAfterMs).toBeGreaterThan(0);
    // The refused request took no lease, and the team's rpm is untouched by it.
    expect([await inflight('k', 'k-adm'), await inflight('t', 'team-adm')]).toEqual([1, 1]);
    expect(await raw.get(`${prefix}budget:{budget}:rpm:t:team-adm`)).toBe(teamTat);
    await two.settle(second.lease, 'k-adm', 'team-adm', usage(3));
    expect(await one.spent([{ kind: 'key', id: 'k-adm', period: 'day' }])).toEqual([10]);
  });

  it('reloads the totals from PostgreSQL when Redis lost them, and adds calls counted before that as they reach PostgreSQL', async () => {
    const { ledgers, prefix } = replicas(2, 'ledger-seed');
    const [one, two] = ledgers as [Ledger, Ledger];
    await one.ensureSeeded();
    for (let i = 0; i < 5; i++) await one.settle(undefined, 'k-seed', 'team-seed', usage(100));
    await one.flush();
    // Counted in Redis, not yet in PostgreSQL.
    for (let i = 0; i < 3; i++) await two.settle(undefined, 'k-seed', 'team-seed', usage(10));
    // Redis loses everything of this prefix (a restart without persistence).
    await deletePrefix(prefix);
    // A charge on an unseeded Redis counts nothing there; the seed comes from PostgreSQL, after
    // the replica wrote its own buffered rows (this one included).
    await one.settle(undefined, 'k-seed', 'team-seed', usage(1));
    await one.ensureSeeded();
    const read = () => one.spent([{ kind: 'key', id: 'k-seed', period: 'day' }, { kind: 'team', id: 'team-seed', period: 'month' }]);
    expect(await read()).toEqual([501, 501]);
    // The rows the other replica counted before the loss are added as they reach PostgreSQL,
    // exactly once however often it flushes.
    await two.flush();
    await two.flush();
    await one.flush();
    expect(await read()).toEqual([531, 531]);
    expect(await spentInPg('k-seed')).toBe(531);
    const day = periodIds(new Date()).day;
    const raw = new Redis(TEST_REDIS_URL);
    redises.push(raw);
    expect(Number(await raw.get(`${prefix}budget:{budget}:spent:k:k-seed:${day}`))).toBe(531);
  });

  /**
   * Watches the ledger's scripts on `prefix` as Redis runs them (MONITOR on a socket of its own;
   * ioredis's monitor() can take monitor lines that arrive with its OK for replies and fail on a
   * busy server): `admit` is the per-call ADMIT script, `block` the BLOCK script. `sync()`
   * resolves once the monitor has seen everything sent before it; `stop()` ends the watch.
   */
  async function watchScripts(prefix: string) {
    const raw = new Redis(TEST_REDIS_URL);
    redises.push(raw);
    const url = new URL(TEST_REDIS_URL);
    const socket = net.connect(Number(url.port || 6379), url.hostname);
    sockets.push(socket);
    const counts = { admit: 0, block: 0, charge: 0 };
    const markers = new Map<string, () => void>();
    let started!: () => void;
    const monitoring = new Promise<void>((resolve) => (started = resolve));
    const onLine = (line: string) => {
      if (line === '+OK') return started();
      // `+<time> [<db> <client>] "<command>" "<arg>" ...`
      const args = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
      const cmd = String(args[0]).toLowerCase();
      if (cmd === 'get' && markers.has(String(args[1]))) {
        markers.get(String(args[1]))!();
        return;
      }
      if (cmd !== 'evalsha' && cmd !== 'eval') return;
      const numKeys = Number(args[2]);
      const keys = args.slice(3, 3 + numKeys);
      const argv = args.slice(3 + numKeys);
      if (!keys.some((k) => k.startsWith(prefix))) return;
      // ADMIT and BLOCK both start with the lease time; a block's id starts with 'b'.
      if (argv[0] === String(LEASE_MS)) {
        if (String(argv[1]).startsWith('b')) counts.block++;
        else counts.admit++;
      }
      // CHARGE: member, cost, n, dayTtl, monthTtl, replacement, leaseMs, largest.
      if (argv.length === 8 && argv[6] === String(LEASE_MS)) counts.charge++;
    };
    let rest = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\r\n');
      rest = lines.pop()!;
      for (const line of lines) onLine(line);
    });
    socket.write('MONITOR\r\n');
    await monitoring;
    let n = 0;
    const sync = async () => {
      const marker = `${prefix}marker:${n++}`;
      const seen = new Promise<void>((resolve) => markers.set(marker, resolve));
      await raw.get(marker);
      await seen;
    };
    await sync();
    return { counts, sync, stop: () => socket.destroy() };
  }

  /** The members of a scope's in-flight set (leases `<id>|<est>`, blocks `<id>|<slots>s|<amount>`). */
  async function inflightMembers(prefix: string, kind: 'k' | 't', id: string): Promise<string[]> {
    const raw = new Redis(TEST_REDIS_URL);
    try {
      return await raw.zrange(`${prefix}budget:{budget}:inflight:${kind}:${id}`, 0, -1);
    } finally {
      raw.disconnect();
    }
  }
  const blockMembers = (members: string[]) => members.filter((m) => /\|\d+s\|\d+$/.test(m));

  /**
   * Makes the key's estimate known (one charged call of `cost` outside any lease, as the first
   * exact call of a key leaves it), so the replicas' first admissions can take blocks.
   */
  async function knownEstimate(ledger: Ledger, keyId: string, team: string | undefined, cost: number): Promise<void> {
    await ledger.ensureSeeded();
    await ledger.settle(undefined, keyId, team, usage(cost));
  }

  describe('blocks (large limits admitted locally)', () => {
    it('admits the calls of a large budget from a block once the estimate is known: its member is in Redis, and the calls run no ADMIT script', async () => {
      const { ledgers, prefix } = replicas(1, 'blk-form');
      const ledger = ledgers[0]!;
      const keyId = 'k-form';
      const scopes: BudgetScope[] = [{ kind: 'key', id: keyId, budget: { microUsd: 10_000_000, period: 'day' } }];
      // The first call goes the exact way; no block is granted without an estimate.
      const first = await ledger.admit(keyId, scopes);
      await ledger.settle(first, keyId, undefined, usage(500));
      expect(blockMembers(await inflightMembers(prefix, 'k', keyId))).toEqual([]);
      // No block is asked for again for a second after one was refused; then the next call takes one.
      await sleep(1_100);
      const second = await ledger.admit(keyId, scopes);
      const [member] = blockMembers(await inflightMembers(prefix, 'k', keyId));
      // 64 estimates of 500: less than 1/64 of the budget and a quarter of what is left of it.
      expect(member).toMatch(/\|0s\|32000$/);
      const watch = await watchScripts(prefix);
      const leases = await Promise.all(Array.from({ length: 30 }, () => ledger.admit(keyId, scopes)));
      await watch.sync();
      watch.stop();
      expect(leases.every((l) => l !== undefined)).toBe(true);
      expect(watch.counts.admit).toBe(0);
      await Promise.all([second, ...leases].map((l) => ledger.settle(l, keyId, undefined, usage(500))));
      // The block shrank by the 30 costs charged from it (under a new member name).
      const [shrunk] = blockMembers(await inflightMembers(prefix, 'k', keyId));
      expect(shrunk).toMatch(/\|0s\|17000$/);
      expect(shrunk).not.toBe(member);
      await ledger.close();
      expect(await spentInPg(keyId)).toBe(32 * 500);
      expect(await ledger.spent([{ kind: 'key', id: keyId, period: 'day' }])).toEqual([32 * 500]);
      expect(await inflightMembers(prefix, 'k', keyId)).toEqual([]);
    });

    it('spends a budget exactly under concurrent load on three replicas with blocks: PostgreSQL holds every cost, the overshoot is at most one call per replica, nothing stays reserved', async () => {
      const { ledgers, prefix } = replicas(3, 'blk-load');
      const keyId = 'k-load';
      const budget = 200_000;
      const cost = 500;
      const scopes: BudgetScope[] = [{ kind: 'key', id: keyId, budget: { microUsd: budget, period: 'day' } }];
      await knownEstimate(ledgers[0]!, keyId, undefined, cost);
      const watch = await watchScripts(prefix);
      const tally = { admitted: 0, refusals: [] as BudgetRefusal[] };
      let sawBlock = false;
      const call = { keyId, scopes, cost, holdMs: () => 1 + Math.random() * 3 };
      const poll = setInterval(() => {
        void inflightMembers(prefix, 'k', keyId).then((m) => (sawBlock ||= blockMembers(m).length > 0));
      }, 20);
      try {
        await Promise.all(ledgers.flatMap((l) => Array.from({ length: 8 }, () => spendUntilRefused(l, call, tally))));
      } finally {
        clearInterval(poll);
      }
      const { admitted } = tally;
      await watch.sync();
      watch.stop();
      for (const l of ledgers) await l.close();
      expect(tally.refusals).toHaveLength(24);
      expect(sawBlock).toBe(true);
      // Most calls were admitted from blocks, without the ADMIT script.
      expect(watch.counts.block).toBeGreaterThan(0);
      expect(watch.counts.admit).toBeLessThan(admitted / 2);
      const spent = await spentInPg(keyId);
      expect(spent).toBe(cost + admitted * cost);
      expect(spent).toBeGreaterThanOrEqual(budget);
      expect(spent).toBeLessThanOrEqual(budget + ledgers.length * cost);
      expect(await ledgers[0]!.spent([{ kind: 'key', id: keyId, period: 'day' }])).toEqual([spent]);
      expect(await inflightMembers(prefix, 'k', keyId)).toEqual([]);
    });

    it('max_concurrent with blocks: never more calls in flight than the limit across replicas, and an idle block gives its slots back so another replica can use them all', async () => {
      const { ledgers, prefix } = replicas(2, 'blk-conc');
      const [one, two] = ledgers as [Ledger, Ledger];
      const keyId = 'k-bconc';
      const limit = 64;
      const scopes: BudgetScope[] = [{ kind: 'key', id: keyId, maxConcurrent: limit }];
      // Calls cost something: the key's estimate is known, as it is for any key in use.
      await knownEstimate(one, keyId, undefined, 500);
      let inFlight = 0;
      let most = 0;
      let admitted = 0;
      const run = async (workers: number, ms: number) => {
        const until = Date.now() + ms;
        const worker = async (ledger: Ledger) => {
          while (Date.now() < until) {
            let lease;
            try {
              lease = await ledger.admit(keyId, scopes);
            } catch (err) {
              expect(err).toBeInstanceOf(BudgetRefusal);
              expect((err as BudgetRefusal).reason).toBe('concurrency');
              await sleep(1);
              continue;
            }
            admitted++;
            most = Math.max(most, ++inFlight);
            await sleep(2 + Math.random() * 4);
            inFlight--;
            await ledger.settle(lease, keyId, undefined, usage(500));
          }
        };
        await Promise.all(ledgers.flatMap((l) => Array.from({ length: workers }, () => worker(l))));
      };
      // Light load (a block's 4 slots hold each replica's calls): the calls run no ADMIT script
      // beyond the first few.
      const watch = await watchScripts(prefix);
      await run(3, 300);
      await watch.sync();
      watch.stop();
      expect(watch.counts.block).toBeGreaterThan(0);
      expect(watch.counts.admit).toBeLessThan(admitted / 4);
      // Saturated (96 callers for 64 slots): exact calls and blocks together never pass the limit.
      await run(48, 500);
      expect(most).toBeLessThanOrEqual(limit);
      expect(most).toBeGreaterThan(limit / 2);
      // One call on the first replica leaves it a block holding slots.
      const lease = await one.admit(keyId, scopes);
      await one.settle(lease, keyId, undefined, usage(500));
      // Idle for a second: every block is given back.
      await sleep(1_600);
      expect(await inflightMembers(prefix, 'k', keyId)).toEqual([]);
      // The second replica can hold the whole limit, and not one more.
      const held = [];
      for (let i = 0; i < limit; i++) held.push(await two.admit(keyId, scopes));
      await expect(two.admit(keyId, scopes)).rejects.toMatchObject({ reason: 'concurrency' });
      await expect(one.admit(keyId, scopes)).rejects.toMatchObject({ reason: 'concurrency' });
      await Promise.all(held.map((l) => two.settle(l, keyId, undefined, undefined)));
      for (const l of ledgers) await l.close();
      expect(await inflightMembers(prefix, 'k', keyId)).toEqual([]);
    });

    it('retires a block when the limits change: it shrinks to its call in flight, and its member leaves Redis once that call is settled', async () => {
      const { ledgers, prefix } = replicas(1, 'blk-sig');
      const ledger = ledgers[0]!;
      const keyId = 'k-sig';
      const before: BudgetScope[] = [{ kind: 'key', id: keyId, budget: { microUsd: 10_000_000, period: 'day' }, maxConcurrent: 64 }];
      const after: BudgetScope[] = [{ kind: 'key', id: keyId, budget: { microUsd: 10_000_000, period: 'day' }, maxConcurrent: 65 }];
      await knownEstimate(ledger, keyId, undefined, 500);
      // The first call takes the block (and goes to Redis); the second is admitted from it.
      await ledger.settle(await ledger.admit(keyId, before), keyId, undefined, usage(500));
      const [granted] = blockMembers(await inflightMembers(prefix, 'k', keyId));
      expect(granted).toMatch(/\|4s\|32000$/);
      const oldId = granted!.split(/[.|]/)[0]!;
      const held = await ledger.admit(keyId, before);
      // A new max_concurrent: the old block admits no more; it keeps one slot and one estimate
      // for its call in flight.
      const other = await ledger.admit(keyId, after);
      await sleep(20);
      const members = await inflightMembers(prefix, 'k', keyId);
      expect(members.filter((m) => m.startsWith(`${oldId}.`))).toEqual([expect.stringMatching(/\|1s\|500$/)]);
      await ledger.settle(held, keyId, undefined, usage(500));
      expect((await inflightMembers(prefix, 'k', keyId)).filter((m) => m.startsWith(oldId))).toEqual([]);
      // The new limits took a block of their own.
      expect(blockMembers(await inflightMembers(prefix, 'k', keyId))).toEqual([expect.stringMatching(/\|4s\|\d+$/)]);
      await ledger.settle(other, keyId, undefined, usage(500));
      await ledger.close();
      expect(await spentInPg(keyId)).toBe(4 * 500);
      expect(await inflightMembers(prefix, 'k', keyId)).toEqual([]);
    });

    it('retires the blocks of a Redis that lost its data, even once another replica reloaded it; the totals reload from PostgreSQL and stay exact', async () => {
      const { ledgers, prefix } = replicas(2, 'blk-lost');
      const [one, two] = ledgers as [Ledger, Ledger];
      const keyId = 'k-lost';
      const scopes: BudgetScope[] = [{ kind: 'key', id: keyId, budget: { microUsd: 10_000_000, period: 'day' } }];
      await knownEstimate(one, keyId, undefined, 500);
      let calls = 1;
      const call = async (ledger: Ledger, cost = 500) => {
        await ledger.settle(await ledger.admit(keyId, scopes), keyId, undefined, usage(cost));
        calls++;
      };
      // Each replica takes a block and admits calls from it.
      for (const l of ledgers) for (let i = 0; i < 4; i++) await call(l);
      expect(blockMembers(await inflightMembers(prefix, 'k', keyId))).toHaveLength(2);
      await one.flush();
      await two.flush();
      // Redis loses everything of this prefix, the blocks' members and the epoch with it.
      await deletePrefix(prefix);
      // The second replica's next charge finds no epoch: its block retires, and it reloads the
      // totals from PostgreSQL.
      await call(two);
      await two.ensureSeeded();
      // The first replica's next charge is counted under the new epoch, but its block's member
      // is gone: the block holds nothing in Redis any more and must admit no more calls.
      await call(one);
      const a = await one.admit(keyId, scopes);
      const b = await two.admit(keyId, scopes);
      // Both calls are checked in Redis (each holds a lease there), none from a lost block.
      const leases = (await inflightMembers(prefix, 'k', keyId)).filter((m) => !/s\|/.test(m));
      expect(leases).toHaveLength(2);
      await one.settle(a, keyId, undefined, usage(500));
      await two.settle(b, keyId, undefined, usage(500));
      calls += 2;
      await one.close();
      await two.close();
      expect(await spentInPg(keyId)).toBe(calls * 500);
      expect(await one.spent([{ kind: 'key', id: keyId, period: 'day' }])).toEqual([calls * 500]);
      expect(await inflightMembers(prefix, 'k', keyId)).toEqual([]);
    });

    it('retires a block when its Redis connection comes back (Redis may have lost the block): its member is given back and the next call is checked in Redis', async () => {
      const { ledgers, prefix, clients } = replicas(1, 'blk-reconnect');
      const ledger = ledgers[0]!;
      const keyId = 'k-reconnect';
      const scopes: BudgetScope[] = [{ kind: 'key', id: keyId, budget: { microUsd: 10_000_000, period: 'day' } }];
      await knownEstimate(ledger, keyId, undefined, 500);
      await ledger.settle(await ledger.admit(keyId, scopes), keyId, undefined, usage(500));
      expect(blockMembers(await inflightMembers(prefix, 'k', keyId))).toHaveLength(1);
      // The server drops the ledger's connection; the client reconnects.
      const client = clients[0]!;
      const id = Number(await client.client('ID'));
      const ready = new Promise<void>((resolve) => client.once('ready', () => resolve()));
      const raw = new Redis(TEST_REDIS_URL);
      redises.push(raw);
      await raw.client('KILL', 'ID', String(id));
      await ready;
      await sleep(20);
      expect(await inflightMembers(prefix, 'k', keyId)).toEqual([]);
      // The next call holds a lease in Redis (the old block admits no more).
      const lease = await ledger.admit(keyId, scopes);
      expect((await inflightMembers(prefix, 'k', keyId)).filter((m) => !/s\|/.test(m))).toHaveLength(1);
      await ledger.settle(lease, keyId, undefined, usage(500));
      await ledger.close();
      expect(await spentInPg(keyId)).toBe(3 * 500);
    });

    it('team budget: the blocks of two keys on three replicas never let the team pass its budget by more than one call per replica', async () => {
      const { ledgers, prefix } = replicas(3, 'blk-team');
      const team = 'team-blk';
      const budget = 200_000;
      const cost = 500;
      const keys = ['k-team-a', 'k-team-b'];
      const scopesOf = (keyId: string): BudgetScope[] => [
        { kind: 'key', id: keyId, budget: { microUsd: 10_000_000, period: 'day' } },
        { kind: 'team', id: team, budget: { microUsd: budget, period: 'day' } },
      ];
      for (const k of keys) await knownEstimate(ledgers[0]!, k, team, cost);
      const watch = await watchScripts(prefix);
      const tally = { admitted: 0, refusals: [] as BudgetRefusal[] };
      const callOf = (keyId: string) => ({ keyId, team, scopes: scopesOf(keyId), cost, holdMs: () => 1 + Math.random() * 3 });
      await Promise.all(ledgers.flatMap((l) => keys.flatMap((k) => Array.from({ length: 4 }, () => spendUntilRefused(l, callOf(k), tally)))));
      await watch.sync();
      watch.stop();
      for (const l of ledgers) await l.close();
      const { admitted } = tally;
      expect(tally.refusals).toHaveLength(24);
      for (const r of tally.refusals) expect(r.scope).toMatchObject({ kind: 'team', id: team });
      expect(watch.counts.block).toBeGreaterThan(0);
      expect(watch.counts.admit).toBeLessThan(admitted / 2);
      const { rows } = await pool.query('SELECT COALESCE(sum(micro_usd), 0)::bigint AS m FROM promptmesh_spend WHERE team = $1', [team]);
      const spent = Number(rows[0].m);
      expect(spent).toBe((2 + admitted) * cost);
      expect(spent).toBeGreaterThanOrEqual(budget);
      expect(spent).toBeLessThanOrEqual(budget + ledgers.length * cost);
      expect(await ledgers[0]!.spent([{ kind: 'team', id: team, period: 'day' }])).toEqual([spent]);
      expect(await inflightMembers(prefix, 't', team)).toEqual([]);
      for (const k of keys) expect(await inflightMembers(prefix, 'k', k)).toEqual([]);
    });
  });
});
