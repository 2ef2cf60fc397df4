/**
 * A throwaway run for evaluations and benchmarks: the local stack (or the configured endpoints), fresh topics under a
 * random prefix, optionally a fresh migrated ClickHouse database, and `dispose()` that removes all of it, Redis keys
 * under the prefix included. Nothing of a scratch run outlives it.
 */
import { randomBytes } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import { migrate } from '../clickhouse/migrate.js';
import { ensureStack } from '../test/stack/stack.js';
import { applyTopics } from '../topics/apply.js';
import { topicCatalog, type TopicCatalog } from '../topics/catalog.js';
import { deleteKeysByPattern } from './runtime/bench-tools.js';
import { createClickHouse } from './runtime/clickhouse.js';
import { loadConfig, type Config } from './runtime/config.js';
import { createKafka } from './runtime/kafka.js';
import { EventSerde } from './runtime/serde.js';

export interface ScratchRun {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  /** Bound to the run's own database (migrated) when `warehouse` was asked for, else to CLICKHOUSE_DATABASE. */
  readonly clickhouse: ClickHouseClient;
  dispose(): Promise<void>;
}

/**
 * Opens a scratch run named `name` (a topic prefix `<TOPIC_PREFIX><name>-<id>.`, a database `<name>_<id>`); `env`
 * overrides settings for the run (scoring clock, grace, …).
 */
export async function openScratchRun(
  name: string,
  options: { warehouse?: boolean; env?: Record<string, string> } = {},
): Promise<ScratchRun> {
  const endpoints = await ensureStack({ log: () => undefined });
  const id = randomBytes(4).toString('hex');
  const base = loadConfig();
  const config = loadConfig({
    ...process.env,
    KAFKA_BROKERS: process.env['KAFKA_BROKERS'] ?? endpoints.kafkaBrokers.join(','),
    SCHEMA_REGISTRY_URL: process.env['SCHEMA_REGISTRY_URL'] ?? endpoints.schemaRegistryUrl,
    REDIS_URL: process.env['REDIS_URL'] ?? endpoints.redisUrl,
    CLICKHOUSE_URL: process.env['CLICKHOUSE_URL'] ?? endpoints.clickhouseUrl,
    ...(options.warehouse ? { CLICKHOUSE_DATABASE: `${name.replace(/\W/g, '_')}_${id}` } : {}),
    TOPIC_PREFIX: `${base.TOPIC_PREFIX}${name}-${id}.`,
    LOG_LEVEL: 'warn',
    ...options.env,
  });
  const kafka = createKafka(config);
  const admin = kafka.admin();
  await admin.connect();
  const serde = EventSerde.forUrl(config.SCHEMA_REGISTRY_URL);
  const topics = topicCatalog({ prefix: config.TOPIC_PREFIX });
  await applyTopics(admin, topics.all, { serde });
  if (options.warehouse) await migrate(createClickHouse(config, { database: null }), config.CLICKHOUSE_DATABASE);
  const clickhouse = createClickHouse(config);
  return {
    config,
    kafka,
    admin,
    serde,
    topics,
    clickhouse,
    async dispose() {
      await admin.deleteTopics({ topics: topics.all.map((t) => t.name) }).catch(() => undefined);
      await admin.disconnect();
      if (options.warehouse) {
        await clickhouse
          .command({ query: `DROP DATABASE IF EXISTS ${config.CLICKHOUSE_DATABASE}` })
          .catch(() => undefined);
      }
      await clickhouse.close();
      const redis = new Redis(config.REDIS_URL);
      await deleteKeysByPattern(redis, `${config.TOPIC_PREFIX}*`);
      redis.disconnect();
    },
  };
}
