/**
 * Entrypoint: `npm run start:feature-processor`. Runs until SIGTERM/SIGINT. Hosts three parts that share the feature
 * state: the feature processor (Redis features), the scorer (intent scores after every update and as time passes,
 * from the model `<MODEL_DIR>/current` names, reloaded when a new one is promoted) and the daily feature snapshots
 * into ClickHouse (driven by the warehouse's event time).
 */
import { Redis } from 'ioredis';
import { topicCatalog } from '../../topics/catalog.js';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { createIdempotentProducer, createKafka } from '../runtime/kafka.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics, serveMetrics } from '../runtime/metrics.js';
import { EventSerde } from '../runtime/serde.js';
import { onShutdown } from '../runtime/shutdown.js';
import { ModelWatcher } from '../scoring/model.js';
import { Scorer } from '../scoring/scorer.js';
import { DAY_MS } from './definitions.js';
import { CutPointsSource } from './cutpoints.js';
import { FeatureProcessor, PROCESSOR } from './processor.js';
import { FeatureSnapshotter } from './snapshots.js';
import { FeatureStore } from './store.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: PROCESSOR });
const metrics = createMetrics(true);
const redis = new Redis(config.REDIS_URL, { enableAutoPipelining: true });
const kafka = createKafka(config, `${config.KAFKA_CLIENT_ID}-${PROCESSOR}`);
const serde = EventSerde.forUrl(config.SCHEMA_REGISTRY_URL);
const topics = topicCatalog({ prefix: config.TOPIC_PREFIX, replicationFactor: config.KAFKA_REPLICATION_FACTOR });
const cutPoints = new CutPointsSource(redis, config.TOPIC_PREFIX, (err) => {
  log.warn('cut points refresh failed', { error: String(err) });
});
await cutPoints.start(config.FEATURES_CUTPOINTS_REFRESH_MS);
const store = new FeatureStore(redis, {
  prefix: config.TOPIC_PREFIX,
  stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
  featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
});
const models = new ModelWatcher(
  config.MODEL_DIR,
  (from, to) => {
    log.info('model loaded', { from, to });
  },
  (err) => {
    log.error('model load failed; keeping the current one', { error: String(err) });
  },
);
await models.start(config.MODEL_POLL_MS);
if (!models.current) log.warn('no current model yet: features only until one is promoted', { dir: config.MODEL_DIR });
const scoreProducer = createIdempotentProducer(kafka);
await scoreProducer.connect();
const scorer = new Scorer(
  { producer: scoreProducer, serde, topics, redis, store, models, cutPoints: cutPoints.get, log, metrics },
  {
    prefix: config.TOPIC_PREFIX,
    scoresTtlSeconds: config.SCORES_TTL_SECONDS,
    rescoreEveryMs: config.SCORING_RESCORE_EVERY_MS,
    clock: config.SCORING_CLOCK,
  },
);
const processor = new FeatureProcessor({
  config,
  kafka,
  serde,
  store,
  topics,
  log,
  metrics,
  cutPoints: cutPoints.get,
  onUpdated: (updates) => scorer.onFeatureUpdates(updates),
});
// Live, nothing else moves time for customers without events: look for due rescoring once a minute.
const rescoreTimer =
  config.SCORING_CLOCK === 'wall'
    ? setInterval(() => {
        scorer.rescoreDue().catch((err: unknown) => {
          log.warn('rescoring failed, will retry', { error: String(err) });
        });
      }, 60_000)
    : undefined;
const clickhouse = createClickHouse(config);
const snapshotter =
  config.FEATURES_SNAPSHOT_PERIOD_DAYS > 0
    ? new FeatureSnapshotter({
        clickhouse,
        graceMs: config.FEATURES_LATE_GRACE_MS,
        periodMs: config.FEATURES_SNAPSHOT_PERIOD_DAYS * DAY_MS,
        log,
      })
    : undefined;
const server = config.METRICS_PORT > 0 ? await serveMetrics(metrics.registry, config.METRICS_PORT) : undefined;
onShutdown(log, async () => {
  clearInterval(rescoreTimer);
  await processor.stop();
  await snapshotter?.stop();
  await scoreProducer.disconnect();
  await models.stop();
  cutPoints.stop();
  await clickhouse.close();
  redis.disconnect();
  server?.close();
});
await processor.start();
snapshotter?.start();
log.info('started', {
  cutPoints: cutPoints.get().source,
  model: models.current?.version ?? null,
  graceMs: config.FEATURES_LATE_GRACE_MS,
});
