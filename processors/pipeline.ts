/**
 * The whole stream in one process: identity resolver → feature processor → scorer, plus the warehouse sink. Used by the demo,
 * the evaluation CLIs and the end-to-end tests; in production each runs as its own entrypoint (`npm run start:*`).
 * `parts` runs a subset, so a benchmark can give each part a process of its own, as a deployment does.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import type { TopicCatalog, TopicSpec } from '../topics/catalog.js';
import { FeatureApp } from './features/app.js';
import { PROCESSOR as FEATURES, type ScoresListener } from './features/processor.js';
import type { FeatureStore } from './features/store.js';
import type { IdentityGraph } from './identity/graph-store.js';
import { IdentityApp } from './identity/app.js';
import { PROCESSOR as IDENTITY } from './identity/processor.js';
import type { Config } from './runtime/config.js';
import { createLogger } from './runtime/log.js';
import { createMetrics } from './runtime/metrics.js';
import type { EventSerde } from './runtime/serde.js';
import type { ModelWatcher } from './scoring/model.js';
import { sinkInputs, WarehouseSink } from './warehouse-sink/processor.js';

/** The deployable parts: the identity resolver, the feature processor (with the scorer) and the warehouse sink. */
export type PipelinePart = 'identity' | 'features' | 'sink';
export const PIPELINE_PARTS: readonly PipelinePart[] = ['identity', 'features', 'sink'];

export interface PipelineDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  readonly clickhouse: ClickHouseClient;
  /** Score with the model `<MODEL_DIR>/current` names (features only while there is none). @default true */
  readonly scoring?: boolean;
  /** Run the warehouse sink too. @default true */
  readonly warehouse?: boolean;
  /** Which parts this process runs (the sink only when `warehouse` allows it too). @default all */
  readonly parts?: readonly PipelinePart[];
  /** Every score once its flush is done, and when it reached Redis (evaluations and benchmarks listen here). */
  readonly onScores?: ScoresListener;
  /** A part can no longer make progress (the pipeline also fails waitUntilCaughtUp with it). */
  readonly onFatal?: (error: Error) => void;
  /** The partitions the feature processor owns after each rebalance (benchmarks). */
  readonly onAssigned?: (partitions: readonly number[]) => void;
}

/** The parts `deps` asks for. */
function partsOf(deps: Pick<PipelineDeps, 'parts' | 'warehouse'>): Set<PipelinePart> {
  const parts = new Set(deps.parts ?? PIPELINE_PARTS);
  if (!(deps.warehouse ?? true)) parts.delete('sink');
  return parts;
}

export class Pipeline {
  readonly redis: Redis;
  readonly graph: IdentityGraph;
  readonly identity: IdentityApp;
  private readonly sink: WarehouseSink;
  readonly features: FeatureApp;
  private readonly parts: Set<PipelinePart>;
  private fatalError: Error | null = null;

  constructor(private readonly deps: PipelineDeps) {
    const { config, kafka, serde, topics } = deps;
    this.parts = partsOf(deps);
    const log = (processor: string) => createLogger(config.LOG_LEVEL, { processor });
    const fatal = (error: Error) => {
      this.fatalError ??= error;
      deps.onFatal?.(error);
    };
    this.identity = new IdentityApp({
      config,
      kafka,
      serde,
      topics,
      log: log(IDENTITY),
      metrics: createMetrics(),
      onFatal: (failure) => {
        fatal(new Error(`${IDENTITY}: ${failure.reason}`));
      },
    });
    this.redis = this.identity.redis;
    this.graph = this.identity.graph;
    this.sink = new WarehouseSink({
      config,
      kafka,
      serde,
      clickhouse: deps.clickhouse,
      topics,
      log: log('warehouse-sink'),
      metrics: createMetrics(),
      onFatal: (failure) => {
        fatal(new Error(`warehouse-sink: ${failure.reason}`));
      },
    });
    this.features = new FeatureApp({
      config,
      kafka,
      serde,
      topics,
      log: log(FEATURES),
      metrics: createMetrics(),
      scoring: deps.scoring ?? true,
      onFatal: (error) => {
        fatal(new Error(`${FEATURES}: ${error.message}`));
      },
      ...(deps.onScores ? { onScores: deps.onScores } : {}),
      ...(deps.onAssigned ? { onAssigned: deps.onAssigned } : {}),
    });
  }

  get store(): FeatureStore {
    return this.features.store;
  }

  get models(): ModelWatcher {
    return this.features.models;
  }

  /** Why the feature processor stopped making progress, or null. */
  get fatal(): Error | null {
    return this.fatalError;
  }

  /** Rescores, as of `asOfMs`, every customer whose score is older (see FeatureProcessor.rescoreAsOf). */
  rescoreAsOf(asOfMs: number, olderThanMs?: number): Promise<number> {
    return this.features.processor.rescoreAsOf(asOfMs, olderThanMs);
  }

  async start(): Promise<void> {
    const { parts } = this;
    await Promise.all([
      parts.has('identity') ? this.identity.start() : undefined,
      parts.has('sink') ? this.sink.start() : undefined,
      parts.has('features') ? this.features.start() : undefined,
    ]);
  }

  async stop(): Promise<void> {
    const { parts } = this;
    await Promise.all([
      parts.has('identity') ? this.identity.stop() : undefined,
      parts.has('sink') ? this.sink.stop() : undefined,
      parts.has('features') ? this.features.stop() : undefined,
    ]);
    if (!parts.has('identity')) this.redis.disconnect();
  }

  /** See {@link waitUntilCaughtUp}. */
  async waitUntilCaughtUp(admin: Admin, timeoutMs = 300_000): Promise<void> {
    await waitUntilCaughtUp(admin, this.deps, timeoutMs, () => this.fatalError);
  }
}
type LagScope = Pick<PipelineDeps, 'config' | 'topics' | 'parts' | 'warehouse'>;

/** Each part's consumer group and input topics (what its lag is measured on). */
export function partInputs(
  topics: TopicCatalog,
  prefix: string,
): Record<PipelinePart, { group: string; specs: TopicSpec[] }> {
  return {
    identity: { group: `${prefix}${IDENTITY}`, specs: [topics.transactionsRaw, topics.clicksRaw] },
    features: {
      group: `${prefix}${FEATURES}`,
      specs: [
        topics.customerTransactions,
        topics.customerClicks,
        topics.identityMerges,
        topics.featureHandoff,
        topics.customerErasures,
      ],
    },
    sink: { group: `${prefix}warehouse-sink`, specs: sinkInputs(topics) },
  };
}

/** Records the parts' consumer groups still have to read (wherever those parts run). */
async function pipelineLag(admin: Admin, scope: LagScope): Promise<number> {
  const inputs = partInputs(scope.topics, scope.config.TOPIC_PREFIX);
  let lag = 0;
  for (const part of partsOf(scope)) lag += await groupLag(admin, inputs[part].group, inputs[part].specs);
  return lag;
}

/**
 * Waits until the parts have caught up. The resolver's outputs are the feature processor's inputs, so lag 0 is only
 * final when it holds twice in a row with nothing produced in between.
 */
export async function waitUntilCaughtUp(
  admin: Admin,
  scope: LagScope,
  timeoutMs = 300_000,
  fatal: () => Error | null = () => null,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let zeros = 0;
  for (;;) {
    const failure = fatal();
    if (failure) throw new Error(`a processor stopped making progress: ${failure.message}`);
    const lag = await pipelineLag(admin, scope);
    zeros = lag === 0 ? zeros + 1 : 0;
    if (zeros >= 2) return;
    if (Date.now() > deadline) throw new Error(`the processors did not catch up: ${lag} records behind`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Records a consumer group still has to read on `specs` (a partition never committed counts from its start). */
export async function groupLag(admin: Admin, groupId: string, specs: readonly TopicSpec[]): Promise<number> {
  const committed = await admin.fetchOffsets({ groupId, topics: specs.map((s) => s.name) });
  let lag = 0;
  for (const spec of specs) {
    const ends = await admin.fetchTopicOffsets(spec.name);
    const mine = committed.find((c) => c.topic === spec.name)?.partitions ?? [];
    for (const end of ends) {
      const at = Number(mine.find((p) => p.partition === end.partition)?.offset ?? -1);
      lag += Number(end.high) - (at < 0 ? Number(end.low) : at);
    }
  }
  return lag;
}
