/**
 * Per-test isolation on shared real services: each context gets its own topic prefix, consumer groups, Redis key
 * prefix and ClickHouse database from a random suffix, so test files run in parallel without seeing each other.
 */
import { randomBytes } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Admin, Kafka } from 'kafkajs';
import { inject } from 'vitest';
import { migrate } from '../../clickhouse/migrate.js';
import { createClickHouse } from '../../processors/runtime/clickhouse.js';
import { loadConfig, type Config } from '../../processors/runtime/config.js';
import { createKafka } from '../../processors/runtime/kafka.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics, type ProcessorMetrics } from '../../processors/runtime/metrics.js';
import { WarehouseSink } from '../../processors/warehouse-sink/processor.js';
import { EventSerde } from '../../processors/runtime/serde.js';
import { applyTopics } from '../../topics/apply.js';
import { topicCatalog, type TopicCatalog } from '../../topics/catalog.js';

export interface TestContext {
  readonly id: string;
  readonly config: Config;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  /** Client bound to this context's own database (already migrated when `warehouse` was requested). */
  readonly clickhouse: ClickHouseClient;
  close(): Promise<void>;
}

/** Builds an isolated context; `topics` applies the catalog under the prefix, `warehouse` migrates a fresh database. */
export async function createTestContext(
  options: { topics?: boolean; warehouse?: boolean; env?: Record<string, string> } = {},
): Promise<TestContext> {
  const endpoints = inject('endpoints');
  const id = randomBytes(4).toString('hex');
  const config = loadConfig({
    KAFKA_BROKERS: endpoints.kafkaBrokers.join(','),
    SCHEMA_REGISTRY_URL: endpoints.schemaRegistryUrl,
    REDIS_URL: endpoints.redisUrl,
    CLICKHOUSE_URL: endpoints.clickhouseUrl,
    CLICKHOUSE_DATABASE: `t_${id}`,
    TOPIC_PREFIX: `t-${id}.`,
    KAFKA_CLIENT_ID: `test-${id}`,
    LOG_LEVEL: 'warn',
    ...options.env,
  });
  const kafka = createKafka(config);
  const admin = kafka.admin();
  await admin.connect();
  const serde = EventSerde.forUrl(config.SCHEMA_REGISTRY_URL);
  const topics = topicCatalog({ prefix: config.TOPIC_PREFIX });
  if (options.topics) await applyTopics(admin, topics.all, { serde });
  const clickhouse = createClickHouse(config);
  if (options.warehouse) await migrate(createClickHouse(config, { database: null }), config.CLICKHOUSE_DATABASE);
  return {
    id,
    config,
    kafka,
    admin,
    serde,
    topics,
    clickhouse,
    async close() {
      if (options.topics) await admin.deleteTopics({ topics: topics.all.map((t) => t.name) }).catch(() => undefined);
      await deleteSubjects(config.SCHEMA_REGISTRY_URL, [
        ...topics.all.map((t) => `${t.name}-value`),
        ...['compat-value', 'foreign-value'].map((s) => `${config.TOPIC_PREFIX}${s}`), // schema-registry.test.ts
      ]);
      await admin.disconnect();
      if (options.warehouse) {
        await clickhouse
          .command({ query: `DROP DATABASE IF EXISTS ${config.CLICKHOUSE_DATABASE}` })
          .catch(() => undefined);
      }
      await clickhouse.close();
    },
  };
}

/**
 * Starts a warehouse sink on this context's topics and database; the caller stops it. `config` swaps endpoints (a
 * proxied ClickHouse, say); `groupId` defaults to the sink's own.
 */
export async function startWarehouseSink(
  ctx: TestContext,
  options: { config?: Config; groupId?: string } = {},
): Promise<{ sink: WarehouseSink; metrics: ProcessorMetrics }> {
  const config = options.config ?? ctx.config;
  const metrics = createMetrics();
  const sink = new WarehouseSink({
    config,
    kafka: ctx.kafka,
    serde: ctx.serde,
    clickhouse: config === ctx.config ? ctx.clickhouse : createClickHouse(config),
    topics: ctx.topics,
    log: createLogger('warn', { test: 'warehouse-sink' }),
    metrics,
    ...(options.groupId ? { groupId: options.groupId } : {}),
  });
  await sink.start();
  return { sink, metrics };
}

/** Polls `probe` until it returns a value `done` accepts, or fails with the last value after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 60_000, intervalMs = 250, what = 'condition' } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Deletes the registry subjects this context may have created (soft, then permanent, as the Confluent API requires):
 * the local registry keeps its data across runs. By name, because listing endpoints page at 1,000 subjects.
 */
async function deleteSubjects(registryUrl: string, subjects: readonly string[]): Promise<void> {
  for (const subject of subjects) {
    const url = `${registryUrl}/subjects/${encodeURIComponent(subject)}`;
    const soft = await fetch(url, { method: 'DELETE' }).catch(() => undefined);
    if (soft?.ok) await fetch(`${url}?permanent=true`, { method: 'DELETE' }).catch(() => undefined);
  }
}

/** The environment a separate process needs to join this context. */
export function envOf(ctx: TestContext): Record<string, string> {
  return {
    KAFKA_BROKERS: ctx.config.KAFKA_BROKERS.join(','),
    SCHEMA_REGISTRY_URL: ctx.config.SCHEMA_REGISTRY_URL,
    REDIS_URL: ctx.config.REDIS_URL,
    CLICKHOUSE_URL: ctx.config.CLICKHOUSE_URL,
    CLICKHOUSE_DATABASE: ctx.config.CLICKHOUSE_DATABASE,
    TOPIC_PREFIX: ctx.config.TOPIC_PREFIX,
    FEATURES_LATE_GRACE_MS: ctx.config.FEATURES_LATE_GRACE_MS.toString(),
    IDENTITY_HASH_SALT: ctx.config.IDENTITY_HASH_SALT.reveal(),
    KAFKA_SESSION_TIMEOUT_MS: ctx.config.KAFKA_SESSION_TIMEOUT_MS.toString(),
  };
}
