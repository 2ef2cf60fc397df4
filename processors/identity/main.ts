/**
 * Entrypoint: `npm run start:identity-resolver`. Runs until SIGTERM/SIGINT; exits with code 1 (after a shutdown of at
 * most 10 s) when it can no longer make progress, so its supervisor restarts it instead of it idling.
 */
import { topicCatalogOf } from '../../topics/catalog.js';
import { loadConfig } from '../runtime/config.js';
import { createKafka } from '../runtime/kafka.js';
import { exitOnFatal, startOrExit } from '../runtime/liveness.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics, serveProcessorMetrics } from '../runtime/metrics.js';
import { EventSerde } from '../runtime/serde.js';
import { onShutdown } from '../runtime/shutdown.js';
import { IdentityApp } from './app.js';
import { PROCESSOR } from './processor.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: PROCESSOR });
const metrics = createMetrics(true);
const server = await serveProcessorMetrics(metrics.registry, PROCESSOR, config.METRICS_PORT, log);
const close = async () => {
  await app.stop();
  server?.close();
};
const app: IdentityApp = new IdentityApp({
  config,
  kafka: createKafka(config, `${config.KAFKA_CLIENT_ID}-${PROCESSOR}`),
  serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL),
  topics: topicCatalogOf(config),
  log,
  metrics,
  onFatal: exitOnFatal(log, close),
});
onShutdown(log, close);
// A graph sealed with another IDENTITY_PII_KEY, or written before sealing, or a Redis that never answers: exit 1.
await startOrExit(log, config.PROCESSOR_STEP_MAX_MS, () => app.start());
log.info('started', { model: config.IDENTITY_MODEL_PATH });
