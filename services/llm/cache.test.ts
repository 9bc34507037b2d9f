import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../kit/logger';
import { closeRedis, createRedis, waitForRedis } from '../kit/redis';
import { freePort } from '../../test/support/net';
import { TEST_REDIS_URL, deletePrefix, uniquePrefix } from '../../test/support/redis';
import { ChunkAssembler, ResponseCache, sortedKeysJson, completionToChunks, isCacheable } from './cache';
import type { ChatCompletion, ChatRequest } from '../openai';

const logger = createLogger('test', 'silent');
const prefix = uniquePrefix('llm-cache');
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) await closeRedis(c);
  await deletePrefix(prefix);
});

const request: ChatRequest = { model: 'chat', messages: [{ role: 'user', content: 'hi' }], temperature: 0 };
const completion: ChatCompletion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1700000000,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there, this answer is longer than one piece of thirty-two characters.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 9, completion_tokens: 15, total_tokens: 24 },
};

describe('cache keys', () => {
  const cache = new ResponseCache(undefined, 'p:', 60, logger);

  it('is canonical: key order and non-answer fields do not matter', () => {
    expect(sortedKeysJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}');
    const reordered = { temperature: 0, messages: [{ content: 'hi', role: 'user' }], model: 'chat' } as ChatRequest;
    expect(cache.key(reordered, 't1')).toBe(cache.key(request, 't1'));
    expect(cache.key({ ...request, stream: true, user: 'u', stream_options: { include_usage: true } }, 't1')).toBe(cache.key(request, 't1'));
  });

  it('differs per tenant and per answer-changing parameter', () => {
    const base = cache.key(request, 't1');
    expect(cache.key(request, 't2')).not.toBe(base);
    expect(cache.key(request, undefined)).not.toBe(base);
    expect(cache.key({ ...request, max_tokens: 5 }, 't1')).not.toBe(base);
    expect(cache.key({ ...request, model: 'other' }, 't1')).not.toBe(base);
    expect(cache.key({ ...request, messages: [{ role: 'user', content: 'hi!' }] }, 't1')).not.toBe(base);
    expect(base.startsWith('p:llm:cache:')).toBe(true);
    expect(base).not.toContain('t1');
  });

  it('caches deterministic requests unless told otherwise', () => {
    expect(isCacheable(request, 'default')).toBe(true);
    expect(isCacheable({ ...request, temperature: 0.7 }, 'default')).toBe(false);
    expect(isCacheable({ ...request, temperature: undefined }, 'default')).toBe(false);
    expect(isCacheable({ ...request, temperature: 0.7 }, 'force')).toBe(true);
    expect(isCacheable(request, 'off')).toBe(false);
  });
});

describe('ResponseCache (real Redis)', () => {
  it('stores with the TTL and reads back', async () => {
    const redis = createRedis({ redisUrl: TEST_REDIS_URL, redisClusterNodes: undefined }, 'test') as Redis;
    clients.push(redis);
    await waitForRedis(redis);
    const cache = new ResponseCache(redis, prefix, 120, logger);
    const key = cache.key(request, 'tenant');
    expect(await cache.get(key)).toBeNull();
    expect(await cache.set(key, { completion, provider: 'a', model: 'gpt-4o-mini' })).toBe(true);
    expect(await cache.get(key)).toEqual({ completion, provider: 'a', model: 'gpt-4o-mini' });
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it('answers "could not ask" instead of throwing while Redis is down', async () => {
    const port = await freePort();
    const redis = createRedis({ redisUrl: `redis://127.0.0.1:${port}`, redisClusterNodes: undefined }, 'test') as Redis;
    redis.on('error', () => undefined);
    clients.push(redis);
    const cache = new ResponseCache(redis, prefix, 60, logger);
    const key = cache.key(request, undefined);
    expect(await cache.get(key)).toBeUndefined();
    expect(await cache.set(key, { completion, provider: 'a', model: 'm' })).toBe(false);
  });
});

describe('stream replay', () => {
  it('turns a completion into chunks that assemble back into it', () => {
    const chunks = [...completionToChunks(completion, { includeUsage: true })];
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.length).toBeGreaterThan(4);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: completion.usage });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    const assembler = new ChunkAssembler();
    for (const c of chunks) assembler.add(c);
    expect(assembler.completion()).toEqual(completion);
    expect([...completionToChunks(completion, { includeUsage: false })].some((c) => c.usage)).toBe(false);
  });

  it('keeps reasoning and signed thinking blocks both ways (a cached thinking answer replays with them)', () => {
    const thinking = {
      ...completion,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant' as const,
            content: 'the answer',
            reasoning_content: 'first this, then that',
            thinking_blocks: [
              { type: 'thinking' as const, thinking: 'first this, then that', signature: 'sig-1' },
              { type: 'redacted_thinking' as const, data: 'ZW5jcnlwdGVk' },
            ],
          },
          finish_reason: 'stop' as const,
        },
      ],
    };
    const chunks = [...completionToChunks(thinking, { includeUsage: true })];
    // Reasoning before the content, as providers stream it; the blocks whole, in one delta.
    expect(chunks[1]!.choices[0]!.delta).toEqual({ reasoning_content: 'first this, then that' });
    expect(chunks[2]!.choices[0]!.delta).toEqual({ thinking_blocks: thinking.choices[0]!.message.thinking_blocks });
    const assembler = new ChunkAssembler();
    for (const c of chunks) assembler.add(c);
    expect(assembler.completion()).toEqual(thinking);
  });

  it('does not assemble a stream that never finished', () => {
    const assembler = new ChunkAssembler();
    const chunks = [...completionToChunks(completion, { includeUsage: false })];
    for (const c of chunks.slice(0, -1)) assembler.add(c);
    expect(assembler.completion()).toBeUndefined();
  });
});
