import { createRedis } from '../kit';
import { TEST_REDIS_URL, deletePrefix } from '../../test/support/redis';
import { describeContextCore } from '../../test/support/context-core-suite';

describeContextCore('standalone Redis', () => ({
  connect: () => createRedis({ redisUrl: TEST_REDIS_URL, redisClusterNodes: undefined }, 'context-test'),
  cleanup: async (_client, prefix) => {
    await deletePrefix(prefix);
  },
}));
