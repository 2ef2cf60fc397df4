/**
 * The one wiring of the feature processor with its scoring stage: the entrypoint (main.ts), the in-process pipeline
 * (demo, evaluations, end-to-end tests), the integration tests and the benchmarks all build it here, so every figure
 * describes what production runs.
 */
import { Redis } from 'ioredis';
import type { Kafka } from 'kafkajs';
import type { TopicCatalog } from '../../topics/catalog.js';
import type { Config } from '../runtime/config.js';
import { reportRedisConnection } from '../runtime/outage.js';
import type { Logger } from '../runtime/log.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { watchModels, type ModelWatcher } from '../scoring/model.js';
import { Scorer } from '../scoring/scorer.js';
import { CutPointsSource } from './cutpoints.js';
import { FeatureProcessor, type FlushTiming, type ScoresListener } from './processor.js';
import { FeatureStore } from './store.js';

export interface FeatureAppDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  readonly log: Logger;
  readonly metrics: ProcessorMetrics;
  /** Score with the model `<MODEL_DIR>/current` names (features only while there is none). @default true */
  readonly scoring?: boolean;
  readonly onScores?: ScoresListener;
  readonly onFlushed?: (timing: FlushTiming) => void;
  readonly onAssigned?: (partitions: readonly number[]) => void;
  /** The processor cannot make progress; entrypoints exit non-zero. */
  readonly onFatal?: (error: Error) => void;
  readonly groupId?: string;
}

export class FeatureApp {
  readonly redis: Redis;
  /** The lazy restore's reads, apart from the flushes' writes (FeatureStoreOptions.reader). */
  private readonly reader: Redis;
  readonly store: FeatureStore;
  readonly cutPoints: CutPointsSource;
  readonly models: ModelWatcher;
  readonly scorer: Scorer;
  readonly processor: FeatureProcessor;

  constructor(private readonly deps: FeatureAppDeps) {
    const { config, log, metrics } = deps;
    // Explicit pipelines carry the flush; auto-pipelining batches the few other commands (loads, epochs, rescoring).
    this.redis = new Redis(config.REDIS_URL, { enableAutoPipelining: true, maxRetriesPerRequest: 3 });
    reportRedisConnection(this.redis, log);
    this.reader = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
    reportRedisConnection(this.reader, log);
    this.store = new FeatureStore(this.redis, {
      prefix: config.TOPIC_PREFIX,
      reader: this.reader,
      stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
      featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
      scoresTtlSeconds: config.SCORES_TTL_SECONDS,
    });
    this.cutPoints = new CutPointsSource(this.redis, config.TOPIC_PREFIX, (err) => {
      log.warn('cut points refresh failed', { error: String(err) });
    });
    this.models = watchModels(config.MODEL_DIR, log);
    this.scorer = new Scorer(this.models, metrics);
    this.processor = new FeatureProcessor({
      config,
      kafka: deps.kafka,
      serde: deps.serde,
      store: this.store,
      topics: deps.topics,
      log,
      metrics,
      cutPoints: this.cutPoints.get,
      ...((deps.scoring ?? true) ? { scorer: this.scorer } : {}),
      ...(deps.onScores ? { onScores: deps.onScores } : {}),
      ...(deps.onFlushed ? { onFlushed: deps.onFlushed } : {}),
      ...(deps.onAssigned ? { onAssigned: deps.onAssigned } : {}),
      ...(deps.onFatal ? { onFatal: deps.onFatal } : {}),
      ...(deps.groupId ? { groupId: deps.groupId } : {}),
    });
  }

  async start(): Promise<void> {
    const { config } = this.deps;
    await this.cutPoints.start(config.FEATURES_CUTPOINTS_REFRESH_MS);
    if (this.deps.scoring ?? true) await this.models.start(config.MODEL_POLL_MS);
    await this.processor.start();
  }

  async stop(): Promise<void> {
    await this.processor.stop();
    await this.models.stop();
    this.cutPoints.stop();
    this.redis.disconnect();
    this.reader.disconnect();
  }
}
