import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, waitForRedis, type ApiError, type RedisClient } from '../../services/kit';
import { uniquePrefix } from './redis';
import type { ContextSettings } from '../../services/context/config';
import { countMessageTokens, type ContextMessageInput } from '../../services/context/messages';
import { RedisContextStore } from '../../services/context/store';

/** Where the shared core suite runs: a standalone Redis or a Redis Cluster. */
export interface CoreSuiteTarget {
  /** A new client to the target (standalone or cluster). */
  connect(): RedisClient;
  /** Deletes every key under `prefix` on the target. */
  cleanup(client: RedisClient, prefix: string): Promise<void>;
}

const BASE: ContextSettings = {
  ttlSeconds: 600,
  maxMessages: 1_000,
  defaultMaxTokens: 100_000,
  maxAppend: 100,
  maxContentChars: 65_536,
  dedupeWindow: 2_000,
};

function msgs(n: number, prefix: string, extra: Partial<ContextMessageInput> = {}): ContextMessageInput[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, role: i % 2 ? 'assistant' : 'user', content: `${prefix} message ${i}`, ...extra }));
}

/**
 * The behaviour of {@link RedisContextStore}, run unchanged against each target. `target` is
 * read lazily so a file can start its server in `beforeAll`.
 */
export function describeContextCore(label: string, target: () => CoreSuiteTarget): void {
  describe(`context core on ${label}`, () => {
    let client: RedisClient;
    const prefix = uniquePrefix('ctx');
    const store = (settings: Partial<ContextSettings> = {}) => new RedisContextStore({ redis: client, keyPrefix: prefix, settings: { ...BASE, ...settings } });
    let n = 0;
    const session = () => `s-${process.pid}-${++n}`;

    beforeAll(async () => {
      client = target().connect();
      expect(await waitForRedis(client, 15_000)).toBe(true);
    });
    afterEach(async () => {
      await target().cleanup(client, prefix);
    });
    afterAll(async () => {
      if (client) await closeRedis(client);
    });

    it('stores messages with ids and token counts and reads them back oldest first', async () => {
      const s = store();
      const id = session();
      const input: ContextMessageInput[] = [
        { id: 'm1', role: 'system', content: 'You are terse.' },
        { role: 'user', content: [{ type: 'text', text: 'Hello ' }, { type: 'text', text: 'there' }], name: 'ada' },
        { id: 'm3', role: 'assistant', content: 'Hi.' },
      ];
      const appended = await s.append(id, input);
      expect(appended.duplicates).toEqual([]);
      expect(appended.stored.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
      expect(appended.stored[0]!.id).toBe('m1');
      expect(appended.stored[1]!.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(appended.stored[1]!.name).toBe('ada');
      expect(appended.stored.map((m) => m.tokens)).toEqual(input.map((m) => countMessageTokens(m)));
      expect(appended.total_messages).toBe(3);
      expect(appended.total_tokens).toBe(input.reduce((a, m) => a + countMessageTokens(m), 0));

      const window = await s.read(id);
      expect(window.session_id).toBe(id);
      expect(window.messages).toEqual(appended.stored);
      expect(window.total_messages).toBe(3);
      expect(window.total_tokens).toBe(appended.total_tokens);
      expect(window.window_tokens).toBe(appended.total_tokens);
    });

    it('reads an unknown session as empty', async () => {
      const window = await store().read(session());
      expect(window).toMatchObject({ messages: [], total_messages: 0, total_tokens: 0, window_tokens: 0 });
    });

    it('windows by message count: the newest N, oldest first', async () => {
      const s = store();
      const id = session();
      await s.append(id, msgs(10, 'a'));
      const window = await s.read(id, { maxMessages: 4 });
      expect(window.messages.map((m) => m.id)).toEqual(['a-6', 'a-7', 'a-8', 'a-9']);
      // A window starts at a turn: three would begin with a-7, the reply of turn a-6.
      expect((await s.read(id, { maxMessages: 3 })).messages.map((m) => m.id)).toEqual(['a-8', 'a-9']);
      expect(window.total_messages).toBe(10);
      expect((await s.read(id, { maxMessages: 0 })).messages).toEqual([]);
      // Asking for more than the cap reads what is there.
      expect((await s.read(id, { maxMessages: 1_000_000 })).messages).toHaveLength(10);
      // The default is the cap.
      expect((await store({ maxMessages: 4, dedupeWindow: 10 }).read(id)).messages.map((m) => m.id)).toEqual(['a-6', 'a-7', 'a-8', 'a-9']);
    });

    it('windows long sessions exactly (the read walks back in chunks)', async () => {
      const s = store();
      const id = session();
      for (let b = 0; b < 5; b++) await s.append(id, msgs(20, `L${b}`));
      const all = (await s.read(id, { maxMessages: 1_000 })).messages.map((m) => m.id);
      expect(all).toHaveLength(100);
      for (const k of [1, 31, 32, 33, 64, 70, 99, 100]) {
        const w = await s.read(id, { maxMessages: k });
        // Even positions are user messages: a window that would start at a reply starts one later.
        expect(w.messages.map((m) => m.id)).toEqual(all.slice(100 - k + ((100 - k) % 2)));
      }
      // A budget that runs out in the third chunk.
      const full = await s.read(id, { maxMessages: 1_000 });
      const last76 = full.messages.slice(24);
      const budget = last76.reduce((a, m) => a + m.tokens, 0);
      const w = await s.read(id, { maxTokens: budget });
      expect(w.messages.map((m) => m.id)).toEqual(last76.map((m) => m.id));
      expect(w.window_tokens).toBe(budget);
    });

    it('windows by token budget: contiguous from the newest, never over budget', async () => {
      const s = store();
      const id = session();
      const big = 'lorem ipsum dolor sit amet '.repeat(40);
      const input: ContextMessageInput[] = [
        { id: 'old', role: 'user', content: 'short one' },
        { id: 'big', role: 'assistant', content: big },
        { id: 'x', role: 'user', content: 'next question please' },
        { id: 'y', role: 'assistant', content: 'an answer' },
      ];
      await s.append(id, input);
      const [tOld, tBig, tX, tY] = input.map((m) => countMessageTokens(m)) as [number, number, number, number];
      expect(tBig).toBeGreaterThan(100);

      let w = await s.read(id, { maxTokens: tX + tY });
      expect(w.messages.map((m) => m.id)).toEqual(['x', 'y']);
      expect(w.window_tokens).toBe(tX + tY);

      // One token short of the pair: only the newest fits, and a reply alone is no turn.
      w = await s.read(id, { maxTokens: tX + tY - 1 });
      expect(w.messages.map((m) => m.id)).toEqual([]);
      expect(w.window_tokens).toBe(0);

      // Enough for 'old' but not for 'big': the window stops at 'big' rather than skipping it.
      w = await s.read(id, { maxTokens: tX + tY + tOld + 5 });
      expect(w.messages.map((m) => m.id)).toEqual(['x', 'y']);

      w = await s.read(id, { maxTokens: tOld + tBig + tX + tY });
      expect(w.messages.map((m) => m.id)).toEqual(['old', 'big', 'x', 'y']);

      // Smaller than the newest message: nothing.
      expect((await s.read(id, { maxTokens: tY - 1 })).messages).toEqual([]);

      // Both bounds at once: whichever is tighter wins.
      expect((await s.read(id, { maxTokens: 1_000_000, maxMessages: 2 })).messages.map((m) => m.id)).toEqual(['x', 'y']);
      expect((await s.read(id, { maxTokens: tX + tY + tOld + tBig, maxMessages: 3 })).messages.map((m) => m.id)).toEqual(['x', 'y']);
      expect(w.total_tokens).toBe(tOld + tBig + tX + tY);
    });

    it('sets the TTL on every key of the session and refreshes it on read and on append', async () => {
      const s = store({ ttlSeconds: 100 });
      const id = session();
      await s.append(id, msgs(2, 't'));
      const keys = s.keys(id);
      for (const key of keys) {
        const pttl = await client.pttl(key);
        expect(pttl).toBeGreaterThan(90_000);
        expect(pttl).toBeLessThanOrEqual(100_000);
      }
      // Age the keys, then use the session: the TTL is back to the full value.
      for (const key of keys) await client.pexpire(key, 5_000);
      await s.read(id, { maxMessages: 1 });
      for (const key of keys) expect(await client.pttl(key)).toBeGreaterThan(90_000);

      for (const key of keys) await client.pexpire(key, 5_000);
      const again = await s.append(id, msgs(2, 't')); // all duplicates: still a use of the session
      expect(again.stored).toEqual([]);
      for (const key of keys) expect(await client.pttl(key)).toBeGreaterThan(90_000);

      // Reading an unknown session creates no keys.
      const unknown = session();
      await s.read(unknown);
      expect(await client.exists(...s.keys(unknown))).toBe(0);
    });

    it('keeps all keys of a session in one hash slot, under the key prefix', async () => {
      const s = store();
      const id = session();
      await s.append(id, msgs(1, 'k'));
      const keys = s.keys(id);
      expect(keys).toEqual([`${prefix}ctx:{${id}}:msgs`, `${prefix}ctx:{${id}}:ids`, `${prefix}ctx:{${id}}:meta`]);
      const slots = await Promise.all(keys.map((k) => client.call('CLUSTER', 'KEYSLOT', k).catch(() => 'n/a')));
      if (slots[0] !== 'n/a') expect(new Set(slots).size).toBe(1);
      expect(await client.exists(...keys)).toBe(3);
    });

    it('trims the oldest messages beyond the cap and keeps the token total right', async () => {
      const s = store({ maxMessages: 5, dedupeWindow: 5 });
      const id = session();
      const first = await s.append(id, msgs(3, 'c1'));
      expect(first.trimmed).toBe(0);
      const second = await s.append(id, msgs(4, 'c2'));
      expect(second.trimmed).toBe(2);
      expect(second.total_messages).toBe(5);
      const w = await s.read(id);
      expect(w.messages.map((m) => m.id)).toEqual(['c1-2', 'c2-0', 'c2-1', 'c2-2', 'c2-3']);
      expect(w.total_tokens).toBe(w.messages.reduce((a, m) => a + m.tokens, 0));
      expect(second.total_tokens).toBe(w.total_tokens);
      expect(await client.llen(s.keys(id)[0])).toBe(5);
      // The id memory is bounded too.
      expect(await client.zcard(s.keys(id)[1])).toBe(5);
    });

    it('is idempotent: a retried append with the same ids stores nothing twice', async () => {
      const s = store();
      const id = session();
      const batch = msgs(3, 'r');
      const first = await s.append(id, batch);
      expect(first.stored.map((m) => m.id)).toEqual(['r-0', 'r-1', 'r-2']);
      const retry = await s.append(id, batch);
      expect(retry.stored).toEqual([]);
      expect(retry.duplicates).toEqual(['r-0', 'r-1', 'r-2']);
      expect(retry.total_messages).toBe(3);
      // A partly new batch stores only the new part, in order.
      const more = await s.append(id, [...batch.slice(1), ...msgs(2, 'n')]);
      expect(more.stored.map((m) => m.id)).toEqual(['n-0', 'n-1']);
      expect(more.duplicates).toEqual(['r-1', 'r-2']);
      const w = await s.read(id);
      expect(w.messages.map((m) => m.id)).toEqual(['r-0', 'r-1', 'r-2', 'n-0', 'n-1']);
      expect(w.total_tokens).toBe(w.messages.reduce((a, m) => a + m.tokens, 0));
    });

    it('loses nothing and duplicates nothing with 60 concurrent writers on separate connections', async () => {
      const writers = 60;
      const perWriter = 4;
      const clients = Array.from({ length: 6 }, () => target().connect());
      try {
        for (const c of clients) expect(await waitForRedis(c, 15_000)).toBe(true);
        const stores = clients.map((c) => new RedisContextStore({ redis: c, keyPrefix: prefix, settings: BASE }));
        const id = session();
        // Every writer sends its batch twice at once (a client retry racing the original).
        const results = await Promise.all(
          Array.from({ length: writers * 2 }, (_, i) => stores[i % stores.length]!.append(id, msgs(perWriter, `w${i % writers}`))),
        );
        const storedTotal = results.reduce((a, r) => a + r.stored.length, 0);
        const dupTotal = results.reduce((a, r) => a + r.duplicates.length, 0);
        expect(storedTotal).toBe(writers * perWriter);
        expect(dupTotal).toBe(writers * perWriter);

        const w = await stores[0]!.read(id, { maxMessages: 10_000, maxTokens: 10_000_000 });
        expect(w.total_messages).toBe(writers * perWriter);
        const ids = w.messages.map((m) => m.id);
        expect(new Set(ids).size).toBe(writers * perWriter);
        // Each batch landed contiguously and in order (one script per append).
        for (let k = 0; k < writers; k++) {
          const at = ids.indexOf(`w${k}-0`);
          expect(ids.slice(at, at + perWriter)).toEqual(Array.from({ length: perWriter }, (_, i) => `w${k}-${i}`));
        }
        expect(w.total_tokens).toBe(w.messages.reduce((a, m) => a + m.tokens, 0));
      } finally {
        await Promise.all(clients.map((c) => closeRedis(c)));
      }
    });

    it('deletes a session with all its keys; deleting an unknown one is fine', async () => {
      const s = store();
      const id = session();
      await s.append(id, msgs(3, 'd'));
      await s.delete(id);
      expect(await client.exists(...s.keys(id))).toBe(0);
      expect((await s.read(id)).messages).toEqual([]);
      await expect(s.delete(id)).resolves.toBeUndefined();
      // After a delete the ids are forgotten too: the same messages can be stored again.
      expect((await s.append(id, msgs(3, 'd'))).stored).toHaveLength(3);
    });

    it('stores tool calls, tool results and content parts as given, and reads them back', async () => {
      const s = store();
      const id = session();
      const call = { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } };
      const input: ContextMessageInput[] = [
        { id: 't1', role: 'user', content: [{ type: 'text', text: 'Look:' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'low' } }] },
        { id: 't2', role: 'assistant', content: null, tool_calls: [call] },
        { id: 't3', role: 'tool', tool_call_id: 'call_1', content: '{"temp":3}' },
        { id: 't4', role: 'assistant', content: 'It is 3 degrees.' },
      ];
      await s.append(id, input);
      const window = await s.read(id);
      expect(window.messages.map(({ id: _id, tokens: _t, created_at: _c, ...m }) => m)).toEqual(input.map(({ id: _id, ...m }) => m));
      // The call and the image count: a tool call costs more than an empty message.
      expect(window.messages[1]!.tokens).toBeGreaterThan(countMessageTokens({ content: '' }));
      expect(window.messages[0]!.tokens).toBeGreaterThan(countMessageTokens({ content: 'Look:' }));
    });

    it('cuts a window only at a turn start, never between a tool call and its results', async () => {
      const s = store();
      const id = session();
      const call = (n: number) => ({ id: `call_${n}`, type: 'function', function: { name: 'f', arguments: '{}' } });
      // Turn 1: a question, two tool rounds, an answer. Turn 2: a question and an answer.
      const turns: ContextMessageInput[] = [
        { id: 'u1', role: 'user', content: 'q1' },
        { id: 'a1', role: 'assistant', content: null, tool_calls: [call(1), call(2)] },
        { id: 't1', role: 'tool', tool_call_id: 'call_1', content: 'r1' },
        { id: 't2', role: 'tool', tool_call_id: 'call_2', content: 'r2' },
        { id: 'a2', role: 'assistant', content: null, tool_calls: [call(3)] },
        { id: 't3', role: 'tool', tool_call_id: 'call_3', content: 'r3' },
        { id: 'a3', role: 'assistant', content: 'answer 1' },
        { id: 'u2', role: 'user', content: 'q2' },
        { id: 'a4', role: 'assistant', content: 'answer 2' },
      ];
      await s.append(id, turns);
      const ids = async (o: { maxMessages?: number; maxTokens?: number }) => (await s.read(id, o)).messages.map((m) => m.id);
      for (let n = 2; n < turns.length; n++) expect(await ids({ maxMessages: n }), `max_messages ${n}`).toEqual(['u2', 'a4']);
      expect(await ids({ maxMessages: turns.length })).toEqual(turns.map((m) => m.id));
      // By tokens: every budget between the last turn and the whole history gives the last turn.
      const all = await s.read(id);
      const lastTurn = all.messages.slice(-2).reduce((n, m) => n + m.tokens, 0);
      for (let budget = lastTurn; budget < all.window_tokens; budget += 3) {
        const w = await s.read(id, { maxTokens: budget });
        expect(w.messages.map((m) => m.id), `max_tokens ${budget}`).toEqual(['u2', 'a4']);
        expect(w.window_tokens).toBe(lastTurn);
      }
      expect(await ids({ maxTokens: lastTurn - 1 })).toEqual([]);
      // A cap that trimmed the stored history mid-turn: the window still starts at a turn.
      const capped = store({ maxMessages: 5, dedupeWindow: 10 });
      const id2 = session();
      await capped.append(id2, turns);
      expect((await capped.read(id2)).messages.map((m) => m.id)).toEqual(['u2', 'a4']);
    });

    it('rejects bad input with a 400 naming the field, before touching Redis', async () => {
      const s = store({ maxAppend: 2, maxContentChars: 10 });
      const cases: Array<[() => Promise<unknown>, string]> = [
        [() => s.read('bad id'), 'session_id'],
        [() => s.read('x{y}'), 'session_id'],
        [() => s.read('a'.repeat(201)), 'session_id'],
        [() => s.read('ok', { maxTokens: -1 }), 'max_tokens'],
        [() => s.read('ok', { maxMessages: 1.5 }), 'max_messages'],
        [() => s.append('ok', []), 'messages'],
        [() => s.append('ok', msgs(3, 'v')), 'messages'],
        [() => s.append('ok', [{ role: 'wizard', content: 'x' } as never]), 'messages[0].role'],
        [() => s.append('ok', [{ role: 'user', content: 'x' }, { role: 'user', content: 'x'.repeat(11) }]), 'messages[1].content'],
        [() => s.append('ok', [{ role: 'user', content: [{ type: 'text', text: 'x'.repeat(6) }, { type: 'text', text: 'y'.repeat(6) }] }]), 'messages[0].content'],
        [() => s.append('ok', [{ id: 'a', role: 'user', content: 'x' }, { id: 'a', role: 'user', content: 'y' }]), 'messages[1].id'],
        [() => s.append('ok', [{ role: 'tool', content: 'x' }]), 'messages[0].tool_call_id'],
        [() => s.append('ok', [{ role: 'user', content: 'x', tool_call_id: 'c' }]), 'messages[0].tool_call_id'],
        [() => s.append('ok', [{ role: 'user', content: 'x', tool_calls: [{ id: 'c', type: 'function' }] }]), 'messages[0].tool_calls'],
        [() => s.append('ok', [{ role: 'assistant', content: null }]), 'messages[0].content'],
        [() => s.append('ok', [{ role: 'assistant', content: null, tool_calls: [{ type: 'function' } as never] }]), 'messages[0].tool_calls[0].id'],
      ];
      for (const [call, param] of cases) {
        const err = (await call().then(
          () => undefined,
          (e: unknown) => e,
        )) as ApiError | undefined;
        expect(err, param).toBeDefined();
        expect(err!.statusCode, param).toBe(400);
        expect(err!.param, param).toBe(param);
        expect(err!.message).toContain(param);
      }
      expect(await client.exists(...s.keys('ok'))).toBe(0);
    });
  });
}
