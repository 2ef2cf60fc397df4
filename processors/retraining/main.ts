/**
 * Entrypoint: `npm run start:retrainer`. Retrains on RETRAIN_SCHEDULE and when the model-AUC alert fires for the served
 * model (Prometheus polled every RETRAIN_ALERT_POLL_MS, or Alertmanager's webhook on POST /alerts); serves /metrics,
 * /status and /alerts on 127.0.0.1:18095 unless METRICS_PORT. See README "Retraining".
 */
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics, DEFAULT_METRICS_PORTS } from '../runtime/metrics.js';
import { onShutdown } from '../runtime/shutdown.js';
import { RetrainerApp } from './app.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: 'retrainer' });
const metrics = createMetrics(true);
const clickhouse = createClickHouse(config);
const app = new RetrainerApp({ config, clickhouse, registry: metrics.registry, log });
const port = config.METRICS_PORT ?? DEFAULT_METRICS_PORTS.retrainer;
let url: string | null = null;
if (port !== 0) {
  try {
    url = await app.listen(port);
  } catch (err) {
    // The schedule and the Prometheus poll still work; only the webhook and /metrics are missing.
    log.warn('HTTP endpoint not served: set METRICS_PORT to a free port (0: off)', { port, error: String(err) });
  }
}
onShutdown(log, async () => {
  await app.stop();
  await clickhouse.close();
});
app.start();
await app.refreshMetrics();
log.info('started', {
  url,
  schedule: config.RETRAIN_SCHEDULE,
  alertPollMs: config.RETRAIN_ALERT_POLL_MS,
  prometheus: config.PROMETHEUS_URL,
  modelDir: config.MODEL_DIR,
});
