/**
 * The whole stream in one process: identity resolver → feature processor, plus the warehouse sink. Used by the demo,
 * the evaluation CLIs and the end-to-end tests; in production each runs as its own entrypoint (`npm run start:*`).
 */
import { readFileSync } from 'node:fs';
import type { ClickHouseClient } from '@clickhouse/client';
import { Redis } from 'ioredis';
import type { Admin, Kafka } from 'kafkajs';
import type { TopicCatalog, TopicSpec } from '../topics/catalog.js';
import { CutPointsSource } from './features/cutpoints.js';
import { FeatureProcessor, PROCESSOR as FEATURES, type FeatureUpdate } from './features/processor.js';
import { FeatureStore } from './features/store.js';
import { IdentityGraph } from './identity/graph-store.js';
import { loadModel } from './identity/model.js';
import { IdentityResolver, PROCESSOR as IDENTITY } from './identity/processor.js';
import type { Config } from './runtime/config.js';
import { createLogger } from './runtime/log.js';
import { createMetrics } from './runtime/metrics.js';
import type { EventSerde } from './runtime/serde.js';
import { WarehouseSink } from './warehouse-sink/processor.js';

export interface PipelineDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  readonly clickhouse: ClickHouseClient;
  /** Called with every feature update before its offsets commit (the scorer's hook). */
  readonly onFeatures?: (updates: readonly FeatureUpdate[]) => Promise<void>;
}

export class Pipeline {
  readonly redis: Redis;
  readonly graph: IdentityGraph;
  readonly store: FeatureStore;
  private readonly resolver: IdentityResolver;
  private readonly sink: WarehouseSink;
  private readonly features: FeatureProcessor;
  private readonly cutPoints: CutPointsSource;

  constructor(private readonly deps: PipelineDeps) {
    const { config, kafka, serde, topics } = deps;
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
    this.features = new FeatureProcessor({
      config,
      kafka,
      serde,
      store: this.store,
      topics,
      log: log(FEATURES),
      metrics: createMetrics(),
      cutPoints: this.cutPoints.get,
      ...(deps.onFeatures ? { onUpdated: deps.onFeatures } : {}),
    });
  }

  async start(): Promise<void> {
    await this.cutPoints.start(this.deps.config.FEATURES_CUTPOINTS_REFRESH_MS);
    await Promise.all([this.resolver.start(), this.sink.start(), this.features.start()]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.resolver.stop(), this.sink.stop(), this.features.stop()]);
    this.cutPoints.stop();
    this.redis.disconnect();
  }

  /** Records each processor group still has to read; 0 when everything published so far is processed. */
  async lag(admin: Admin): Promise<number> {
    const { topics, config } = this.deps;
    const p = config.TOPIC_PREFIX;
    return (
      (await groupLag(admin, `${p}${IDENTITY}`, [topics.transactionsRaw, topics.clicksRaw])) +
      (await groupLag(admin, `${p}${FEATURES}`, [
        topics.customerTransactions,
        topics.customerClicks,
        topics.identityMerges,
      ])) +
      (await groupLag(admin, `${p}warehouse-sink`, [
        topics.transactionsRaw,
        topics.clicksRaw,
        topics.identityLinks,
        topics.identityMerges,
        topics.identityMergeRejections,
        ...topics.all.filter((t) => t.schema === 'deadLetter'),
      ]))
    );
  }

  /**
   * Waits until every processor has caught up. The resolver's outputs are the feature processor's inputs, so lag 0 is
   * only final when it holds twice in a row with nothing produced in between.
   */
  async waitUntilCaughtUp(admin: Admin, timeoutMs = 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let zeros = 0;
    for (;;) {
      const lag = await this.lag(admin);
      zeros = lag === 0 ? zeros + 1 : 0;
      if (zeros >= 2) return;
      if (Date.now() > deadline) throw new Error(`the processors did not catch up: ${lag} records behind`);
      await new Promise((r) => setTimeout(r, 500));
    }
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
