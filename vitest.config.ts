import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs pure code with no services; `integration` runs against real Kafka, schema registry, Redis
// and ClickHouse resolved once per run by test/global-setup.ts (env endpoints, else Docker, else the local stack).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 }, // pure tests first: a broken contract fails fast, before services start
          include: ['processors/**/*.test.ts', 'topics/**/*.test.ts', 'schemas/**/*.test.ts', 'test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          sequence: { groupOrder: 1 },
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // 2 cores and one broker: a few files at a time keeps rebalances and JVM GC from starving each other.
          maxWorkers: 3,
        },
      },
    ],
  },
});
