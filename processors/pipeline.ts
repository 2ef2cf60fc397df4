/**
 * The whole stream in one process: identity resolver → feature processor → scorer, plus the warehouse sink. Used by the demo,
 * the evaluation CLIs and the end-to-end tests; in production each runs as its own entrypoint (`npm run start:*`).
 * `parts` runs a subset, so a benchmark can give each part a process of its own, as a deployment does.
 */
import { readFileSync } from 'node:fs';
import type { ClickHouseClient } from '@clickhouse/client';
import { Redis } from 'ioredis';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type { IntentScore } from '../schemas/generated/types.js';
import type { TopicCatalog, TopicSpec } from '../topics/catalog.js';
import { CutPointsSource } from './features/cutpoints.js';
import { FeatureProcessor, PROCESSOR as FEATURES } from './features/processor.js';
import { FeatureStore } from './features/store.js';
import { IdentityGraph } from './identity/graph-store.js';
import { loadModel } from './identity/model.js';
import { IdentityResolver, PROCESSOR as IDENTITY } from './identity/processor.js';
import type { Config } from './runtime/config.js';
import { createIdempotentProducer } from './runtime/kafka.js';
import { createLogger } from './runtime/log.js';
import { createMetrics } from './runtime/metrics.js';
import type { EventSerde } from './runtime/serde.js';
import { ModelWatcher } from './scoring/model.js';
import { Scorer } from './scoring/scorer.js';
import { WarehouseSink } from './warehouse-sink/processor.js';

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
  /** Every score once it is in Redis, with the ids of the events behind it (evaluations and benchmarks listen here). */
  readonly onScores?: (scores: readonly IntentScore[], eventIds: readonly (readonly string[])[]) => void;
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
  readonly store: FeatureStore;
  private readonly resolver: IdentityResolver;
  private readonly sink: WarehouseSink;
  private readonly features: FeatureProcessor;
  private readonly cutPoints: CutPointsSource;
  readonly models: ModelWatcher;
  readonly scorer: Scorer;
  private readonly scoreProducer: Producer;
  private readonly parts: Set<PipelinePart>;

  constructor(private readonly deps: PipelineDeps) {
    const { config, kafka, serde, topics } = deps;
    this.parts = partsOf(deps);
    const log = (processor: string) => createLogger(config.LOG_LEVEL, { processor });
    this.redis = new Redis(config.REDIS_URL, { enableAutoPipelining: true });
    this.graph = IdentityGraph.open(this.redis, {
      prefix: config.TOPIC_PREFIX,
      maxClusterSize: config.IDENTITY_MAX_CLUSTER_SIZE,
    });
    this.resolver = new IdentityResolver({
      config,
      kafka,
      serde,
      graph: this.graph,
      model: loadModel(JSON.parse(readFileSync(config.IDENTITY_MODEL_PATH, 'utf8'))),
      topics,
      log: log(IDENTITY),
      metrics: createMetrics(),
    });
    this.sink = new WarehouseSink({
      config,
      kafka,
      serde,
      clickhouse: deps.clickhouse,
      topics,
      log: log('warehouse-sink'),
      metrics: createMetrics(),
    });
    this.store = new FeatureStore(this.redis, {
      prefix: config.TOPIC_PREFIX,
      stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
      featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
    });
    this.cutPoints = new CutPointsSource(this.redis, config.TOPIC_PREFIX, () => undefined);
    this.models = new ModelWatcher(config.MODEL_DIR);
    this.scoreProducer = createIdempotentProducer(kafka);
    this.scorer = new Scorer(
      {
        producer: this.scoreProducer,
        serde,
        topics,
        redis: this.redis,
        store: this.store,
        models: this.models,
        cutPoints: this.cutPoints.get,
        log: log('scorer'),
        metrics: createMetrics(),
        ...(deps.onScores ? { onScores: deps.onScores } : {}),
      },
      {
        prefix: config.TOPIC_PREFIX,
        scoresTtlSeconds: config.SCORES_TTL_SECONDS,
        rescoreEveryMs: config.SCORING_RESCORE_EVERY_MS,
        clock: config.SCORING_CLOCK,
      },
    );
    const scoring = deps.scoring ?? true;
    this.features = new FeatureProcessor({
      config,
      kafka,
      serde,
      store: this.store,
      topics,
      log: log(FEATURES),
      metrics: createMetrics(),
      cutPoints: this.cutPoints.get,
      ...(scoring ? { onUpdated: (updates) => this.scorer.onFeatureUpdates(updates) } : {}),
    });
  }

  async start(): Promise<void> {
    const { parts } = this;
    if (parts.has('features')) {
      await this.cutPoints.start(this.deps.config.FEATURES_CUTPOINTS_REFRESH_MS);
      await this.models.start(this.deps.config.MODEL_POLL_MS);
      await this.scoreProducer.connect();
    }
    await Promise.all([
      parts.has('identity') ? this.resolver.start() : undefined,
      parts.has('sink') ? this.sink.start() : undefined,
      parts.has('features') ? this.features.start() : undefined,
    ]);
  }

  async stop(): Promise<void> {
    const { parts } = this;
    await Promise.all([
      parts.has('identity') ? this.resolver.stop() : undefined,
      parts.has('sink') ? this.sink.stop() : undefined,
      parts.has('features') ? this.features.stop() : undefined,
    ]);
    if (parts.has('features')) {
      await this.scoreProducer.disconnect();
      await this.models.stop();
      this.cutPoints.stop();
    }
    this.redis.disconnect();
  }

  /** See {@link waitUntilCaughtUp}. */
  waitUntilCaughtUp(admin: Admin, timeoutMs = 300_000): Promise<void> {
    return waitUntilCaughtUp(admin, this.deps, timeoutMs);
  }
}

type LagScope = Pick<PipelineDeps, 'config' | 'topics' | 'parts' | 'warehouse'>;

/** Records the parts' consumer groups still have to read (wherever those parts run). */
async function pipelineLag(admin: Admin, scope: LagScope): Promise<number> {
  const { topics, config } = scope;
  const parts = partsOf(scope);
  const p = config.TOPIC_PREFIX;
  let lag = 0;
  if (parts.has('identity'))
    lag += await groupLag(admin, `${p}${IDENTITY}`, [topics.transactionsRaw, topics.clicksRaw]);
  if (parts.has('features')) {
    lag += await groupLag(admin, `${p}${FEATURES}`, [
      topics.customerTransactions,
      topics.customerClicks,
      topics.identityMerges,
    ]);
  }
  if (parts.has('sink')) {
    lag += await groupLag(admin, `${p}warehouse-sink`, [
      topics.transactionsRaw,
      topics.clicksRaw,
      topics.identityLinks,
      topics.identityMerges,
      topics.identityMergeRejections,
      topics.customerScores,
      ...topics.all.filter((t) => t.schema === 'deadLetter'),
    ]);
  }
  return lag;
}

/**
 * Waits until the parts have caught up. The resolver's outputs are the feature processor's inputs, so lag 0 is only
 * final when it holds twice in a row with nothing produced in between.
 */
export async function waitUntilCaughtUp(admin: Admin, scope: LagScope, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let zeros = 0;
  for (;;) {
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
