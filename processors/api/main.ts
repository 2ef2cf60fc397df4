/**
 * Entrypoint: `npm run start:api`. Serves the prediction API (POST /predict-intent, /predict-intent/batch,
 * /ad-decision; GET /health, /ready, /metrics, /openapi.json) on API_HOST:API_PORT until SIGTERM/SIGINT.
 */
import { topicCatalogOf } from '../../topics/catalog.js';
import { loadConfig } from '../runtime/config.js';
import { createKafka } from '../runtime/kafka.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics } from '../runtime/metrics.js';
import { EventSerde } from '../runtime/serde.js';
import { onShutdown } from '../runtime/shutdown.js';
import { ApiApp } from './app.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: 'prediction-api' });
const app = new ApiApp({
  config,
  kafka: createKafka(config, `${config.KAFKA_CLIENT_ID}-api`),
  serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL),
  topics: topicCatalogOf(config),
  log,
  metrics: createMetrics(true),
});
onShutdown(log, () => app.stop());
const url = await app.start();
log.info('listening', { url, model: app.models.current?.version ?? null, creatives: app.catalog.creatives.length });
