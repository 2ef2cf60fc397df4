/**
 * Entrypoint: `npm run start:warehouse-sink`. Runs until SIGTERM/SIGINT, then flushes and exits; exits with code 1
 * (after a shutdown of at most 10 s) when it can no longer make progress.
 */
import { topicCatalogOf } from '../../topics/catalog.js';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { createKafka } from '../runtime/kafka.js';
import { exitOnFatal, startOrExit } from '../runtime/liveness.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics, serveProcessorMetrics } from '../runtime/metrics.js';
import { EventSerde } from '../runtime/serde.js';
import { onShutdown } from '../runtime/shutdown.js';
import { PROCESSOR, WarehouseSink } from './processor.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: PROCESSOR });
const metrics = createMetrics(true);
const clickhouse = createClickHouse(config);
const server = await serveProcessorMetrics(metrics.registry, PROCESSOR, config.METRICS_PORT, log);
const close = async () => {
  await sink.stop();
  await clickhouse.close();
  server?.close();
};
const sink: WarehouseSink = new WarehouseSink({
  config,
  kafka: createKafka(config, `${config.KAFKA_CLIENT_ID}-${PROCESSOR}`),
  serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL),
  clickhouse,
  topics: topicCatalogOf(config),
  log,
  metrics,
  onFatal: exitOnFatal(log, close),
});
onShutdown(log, close);
await startOrExit(log, config.PROCESSOR_STEP_MAX_MS, () => sink.start());
log.info('started', { metrics: server ? server.address() : null });
