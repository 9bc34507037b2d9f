import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** The Redis server tests use (see .ci/run and DEVELOPERS.md). */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix of a test's own: `pmtest:<label>:<random>:`. */
export function uniquePrefix(label = 't'): string {
  return `pmtest:${label}:${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key under `prefix` on the test server. */
export async function deletePrefix(prefix: string, url = TEST_REDIS_URL): Promise<number> {
  // No retries: a Redis that is gone (a test's own server, already stopped) fails the call
  // instead of leaving a client reconnecting, and unheard, in the background.
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined);
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}
