/**
 * Per-test isolation on shared real services: each context gets its own topic prefix, consumer groups, Redis key
 * prefix and ClickHouse database from a random suffix, so test files run in parallel without seeing each other.
 */
import { inject } from 'vitest';
import { Pipeline, type PipelinePart } from '../../processors/pipeline.js';
import type { GeneratedSample } from '../../processors/producers/generate.js';
import { PlatformProducer, type PlatformEvent } from '../../processors/producers/platform-producer.js';
import { createClickHouse } from '../../processors/runtime/clickhouse.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics, type ProcessorMetrics } from '../../processors/runtime/metrics.js';
import type { Config } from '../../processors/runtime/config.js';
import { openScratchRun, type ScratchRun } from '../../processors/tools/scratch-run.js';
import { WarehouseSink } from '../../processors/warehouse-sink/processor.js';
import type { BehaviorEvent } from '../../schemas/generated/types.js';
import { mergeStory } from '../fixtures/events.js';

export type TestContext = Omit<ScratchRun, 'dispose'> & { readonly close: () => Promise<void> };

/**
 * Builds an isolated context on the suite's services (a scratch run named `t`, ignoring the shell's environment);
 * `topics` applies the catalog under the prefix, `warehouse` migrates a fresh database.
 */
export async function createTestContext(
  options: { topics?: boolean; warehouse?: boolean; env?: Record<string, string> } = {},
): Promise<TestContext> {
  const run = await openScratchRun('t', {
    endpoints: inject('endpoints'),
    topics: options.topics ?? false,
    warehouse: options.warehouse ?? false,
    ...(options.env ? { env: options.env } : {}),
    extraSubjects: ['compat-value', 'foreign-value'], // schema-registry.test.ts
  });
  const { dispose, ...context } = run;
  return { ...context, close: dispose };
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

/**
 * `promise`, or a rejection naming `what` once `ms` have passed: a step with no timeout of its own then says which step
 * it was, instead of the test's timeout saying only that the test took too long.
 */
export async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} did not finish in ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
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
    KAFKA_PARTITIONS: ctx.config.KAFKA_PARTITIONS.toString(),
    // The resolver's rounds decide its clusters: a child process must cut them as the context's instances do.
    IDENTITY_ROUND_MAX_RECORDS: ctx.config.IDENTITY_ROUND_MAX_RECORDS.toString(),
    IDENTITY_SCRIPT_MAX_IDENTITIES: ctx.config.IDENTITY_SCRIPT_MAX_IDENTITIES.toString(),
  };
}

/** The pipeline (all parts, or `parts`) on this context's services, through the one wiring production uses. */
export function contextPipeline(ctx: TestContext, parts?: readonly PipelinePart[]): Pipeline {
  return new Pipeline({
    config: ctx.config,
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
    clickhouse: ctx.clickhouse,
    ...(parts ? { parts } : {}),
  });
}

/** Publishes `events` to this context's raw topics with the platforms' producer; its counts. */
export async function publishEvents(
  ctx: TestContext,
  events: Iterable<PlatformEvent>,
): Promise<{ acknowledged: number; refused: number }> {
  const producer = await PlatformProducer.connect(ctx.config, {
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
  });
  try {
    return await producer.publishAll(events);
  } finally {
    await producer.disconnect();
  }
}

/** A generated sample's transactions, then its behavior events, as platform events. */
export function sampleEvents(sample: Pick<GeneratedSample, 'transactions' | 'behaviors'>): PlatformEvent[] {
  return [
    ...sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
    ...sample.behaviors.map((event) => ({ kind: 'behavior' as const, event })),
  ];
}

/**
 * Publishes `events`, then {@link mergeStory}: two customers published on their own after `events`, then the event that
 * merges them, each step once the pipeline has caught up. The second customer's id is then merged away.
 */
export async function publishWithMerge(
  ctx: TestContext,
  pipeline: Pipeline,
  events: readonly PlatformEvent[],
  salt: string,
): Promise<void> {
  const last = Math.max(...events.map(({ event }) => event.eventTimeMs));
  const story = mergeStory(salt, last);
  const behaviors = (list: BehaviorEvent[]) => list.map((event) => ({ kind: 'behavior' as const, event }));
  await publishEvents(ctx, [...events, ...behaviors(story.before)]);
  await pipeline.waitUntilCaughtUp(ctx.admin, 240_000);
  await publishEvents(ctx, behaviors(story.link));
  await pipeline.waitUntilCaughtUp(ctx.admin, 240_000);
}
