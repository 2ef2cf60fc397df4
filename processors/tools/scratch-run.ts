/**
 * An isolated, throwaway run on shared services: its own topic prefix (so its own consumer groups and Redis keys),
 * its own ClickHouse database and a random suffix for both. Evaluations, benchmarks and integration tests use it, so
 * they run beside each other and beside a real deployment without seeing one another; `dispose()` removes the topics,
 * their registry subjects, the database and the Redis keys under the prefix. Nothing of a scratch run outlives it.
 */
import { randomBytes } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import { migrate } from '../../clickhouse/migrate.js';
import { ensureStack, type StackEndpoints } from './stack/stack.js';
import { applyTopics } from '../../topics/apply.js';
import { topicCatalogOf, type TopicCatalog } from '../../topics/catalog.js';
import { deleteKeysByPattern } from './bench-tools.js';
import { hold } from './interrupt.js';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig, type Config } from '../runtime/config.js';
import { createKafka } from '../runtime/kafka.js';
import { EventSerde } from '../runtime/serde.js';

export interface ScratchRun {
  /** The random suffix of the prefix and database. */
  readonly id: string;
  readonly config: Config;
  /** The settings `config` was loaded from: another process loading them joins the same run. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  /** Bound to the run's own database (created and migrated when `warehouse` was asked for). */
  readonly clickhouse: ClickHouseClient;
  readonly dispose: () => Promise<void>;
}

export interface ScratchRunOptions {
  /** Apply the topic catalog under the prefix. @default true */
  readonly topics?: boolean;
  /** Create and migrate the run's database (and drop it on dispose). @default false */
  readonly warehouse?: boolean;
  /**
   * Use these endpoints and nothing from the process environment (tests: the suite's services, whatever the shell
   * holds). Default: the configured endpoints, else the local stack (started if needed), plus the environment.
   */
  readonly endpoints?: StackEndpoints;
  /** Settings for the run (scoring clock, grace, …); they win over everything else. */
  readonly env?: Record<string, string>;
  /** Registry subjects outside the catalog the run registers (under its prefix), to delete on dispose. */
  readonly extraSubjects?: readonly string[];
}

/** Opens a scratch run named `name`: topic prefix `<TOPIC_PREFIX><name>-<id>.`, database `<name>_<id>`. */
export async function openScratchRun(name: string, options: ScratchRunOptions = {}): Promise<ScratchRun> {
  const id = randomBytes(4).toString('hex');
  const inherited = options.endpoints ? {} : process.env;
  const endpoints = options.endpoints ?? (await ensureStack({ log: () => undefined }));
  const base = loadConfig(inherited);
  const env = {
    ...inherited,
    KAFKA_BROKERS: inherited['KAFKA_BROKERS'] ?? endpoints.kafkaBrokers.join(','),
    SCHEMA_REGISTRY_URL: inherited['SCHEMA_REGISTRY_URL'] ?? endpoints.schemaRegistryUrl,
    REDIS_URL: inherited['REDIS_URL'] ?? endpoints.redisUrl,
    CLICKHOUSE_URL: inherited['CLICKHOUSE_URL'] ?? endpoints.clickhouseUrl,
    CLICKHOUSE_DATABASE: `${name.replace(/\W/g, '_')}_${id}`,
    TOPIC_PREFIX: `${base.TOPIC_PREFIX}${name}-${id}.`,
    KAFKA_CLIENT_ID: `${base.KAFKA_CLIENT_ID}-${name}-${id}`,
    LOG_LEVEL: 'warn',
    ...options.env,
  };
  const config = loadConfig(env);
  const kafka = createKafka(config);
  const admin = kafka.admin();
  const serde = EventSerde.forUrl(config.SCHEMA_REGISTRY_URL);
  const topics = topicCatalogOf(config);
  const applied = options.topics ?? true;
  const clickhouse = createClickHouse(config);
  const remove = async () => {
    if (applied) {
      const names = topics.all.map((t) => t.name);
      // A deletion that timed out under load once left all of a run's topics behind, silently: wait longer, and say so.
      await admin.deleteTopics({ topics: names, timeout: 30_000 }).catch((err: unknown) => {
        if ((err as { type?: unknown }).type === 'UNKNOWN_TOPIC_OR_PARTITION') return; // never created (a failed open)
        console.error(
          `scratch run ${name}-${id}: could not delete its ${names.length} topics (${config.TOPIC_PREFIX}*): ` +
            (err instanceof Error ? err.message : String(err)),
        );
      });
    }
    await deleteSubjects(config.SCHEMA_REGISTRY_URL, [
      ...topics.all.map((t) => `${t.name}-value`),
      ...(options.extraSubjects ?? []).map((s) => `${config.TOPIC_PREFIX}${s}`),
    ]);
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
  };
  // Released on an interrupt too (interrupt.ts), and at most once however often dispose is called.
  let disposed: Promise<void> | undefined;
  const unhold = hold(`scratch run ${name}-${id}`, () => dispose());
  const dispose = () => {
    unhold();
    disposed ??= remove();
    return disposed;
  };
  // Held from before anything is created, so an interrupt or a failure while the run is opened leaves nothing either.
  try {
    await admin.connect();
    if (applied) await applyTopics(admin, topics.all, { serde });
    if (options.warehouse) await migrate(createClickHouse(config, { database: null }), config.CLICKHOUSE_DATABASE);
  } catch (err) {
    await dispose().catch(() => undefined);
    throw err;
  }
  return { id, config, env, kafka, admin, serde, topics, clickhouse, dispose };
}

/** Soft then permanent delete (the registry keeps soft-deleted subjects); a missing subject is fine. */
async function deleteSubjects(registryUrl: string, subjects: readonly string[]): Promise<void> {
  for (const subject of subjects) {
    const url = `${registryUrl}/subjects/${encodeURIComponent(subject)}`;
    const soft = await fetch(url, { method: 'DELETE' }).catch(() => undefined);
    if (soft?.ok) await fetch(`${url}?permanent=true`, { method: 'DELETE' }).catch(() => undefined);
  }
}
