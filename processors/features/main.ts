/** Entrypoint: `npm run start:feature-processor`. Runs until SIGTERM/SIGINT. */
import { Redis } from 'ioredis';
import { topicCatalog } from '../../topics/catalog.js';
import { loadConfig } from '../runtime/config.js';
import { createKafka } from '../runtime/kafka.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics, serveMetrics } from '../runtime/metrics.js';
import { EventSerde } from '../runtime/serde.js';
import { onShutdown } from '../runtime/shutdown.js';
import { CutPointsSource } from './cutpoints.js';
import { FeatureProcessor, PROCESSOR } from './processor.js';
import { FeatureStore } from './store.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: PROCESSOR });
const metrics = createMetrics(true);
const redis = new Redis(config.REDIS_URL, { enableAutoPipelining: true });
const cutPoints = new CutPointsSource(redis, config.TOPIC_PREFIX, (err) => {
  log.warn('cut points refresh failed', { error: String(err) });
});
await cutPoints.start(config.FEATURES_CUTPOINTS_REFRESH_MS);
const processor = new FeatureProcessor({
  config,
  kafka: createKafka(config, `${config.KAFKA_CLIENT_ID}-${PROCESSOR}`),
  serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL),
  store: new FeatureStore(redis, {
    prefix: config.TOPIC_PREFIX,
    stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
    featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
  }),
  topics: topicCatalog({ prefix: config.TOPIC_PREFIX, replicationFactor: config.KAFKA_REPLICATION_FACTOR }),
  log,
  metrics,
  cutPoints: cutPoints.get,
});
const server = config.METRICS_PORT > 0 ? await serveMetrics(metrics.registry, config.METRICS_PORT) : undefined;
onShutdown(log, async () => {
  await processor.stop();
  cutPoints.stop();
  redis.disconnect();
  server?.close();
});
await processor.start();
log.info('started', { cutPoints: cutPoints.get().source, graceMs: config.FEATURES_LATE_GRACE_MS });
