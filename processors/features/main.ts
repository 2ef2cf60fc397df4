/**
 * Entrypoint: `npm run start:feature-processor`. Runs until SIGTERM/SIGINT, or exits non-zero when it can no longer
 * make progress. Hosts the feature processor with its scoring stage (FeatureApp: partition-owned state, intent scores
 * from the model `<MODEL_DIR>/current` names, reloaded when a new one is promoted) and the daily feature snapshots into
 * ClickHouse (driven by the warehouse's event time).
 */
import { topicCatalogOf } from '../../topics/catalog.js';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { createKafka } from '../runtime/kafka.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics, serveProcessorMetrics } from '../runtime/metrics.js';
import { EventSerde } from '../runtime/serde.js';
import { exitOnFatal, startOrExit } from '../runtime/liveness.js';
import { onShutdown } from '../runtime/shutdown.js';
import { FeatureApp } from './app.js';
import { DAY_MS } from './definitions.js';
import { PROCESSOR } from './processor.js';
import { FeatureSnapshotter } from './snapshots.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: PROCESSOR });
const metrics = createMetrics(true);
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
const server = await serveProcessorMetrics(metrics.registry, PROCESSOR, config.METRICS_PORT, log);
const close = async () => {
  await app.stop();
  await snapshotter?.stop();
  await clickhouse.close();
  server?.close();
};
const app: FeatureApp = new FeatureApp({
  config,
  kafka: createKafka(config, `${config.KAFKA_CLIENT_ID}-${PROCESSOR}`),
  serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL),
  topics: topicCatalogOf(config),
  log,
  metrics,
  onFatal: (error) => {
    exitOnFatal(log, close)({ reason: error.message, error, kind: 'crash' });
  },
});
onShutdown(log, close);
await startOrExit(log, config.PROCESSOR_STEP_MAX_MS, () => app.start());
snapshotter?.start();
if (!app.models.current)
  log.warn('no current model yet: features only until one is promoted', { dir: config.MODEL_DIR });
log.info('started', {
  cutPoints: app.cutPoints.get().source,
  model: app.models.current?.version ?? null,
  graceMs: config.FEATURES_LATE_GRACE_MS,
});
