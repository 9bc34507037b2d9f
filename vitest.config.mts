import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'lib/**', 'dist/**', 'bench/**'],
    globalSetup: ['test/global-setup.ts', 'test/console/build.setup.ts'],
    pool: 'forks',
    maxWorkers: 3,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    reporters: ['default'],
    // Tests drop their scratch databases WITH (FORCE); a pg connection that is still closing
    // at that instant gets PostgreSQL's 57P01 "terminating connection due to administrator
    // command". That is the teardown working, not a failure of the code under test. Every
    // other unhandled error still fails the run.
    onUnhandledError(error) {
      const e = error as { code?: string; message?: string };
      if (e.code === '57P01' || /terminating connection due to administrator command/.test(e.message ?? '')) return false;
    },
  },
});
