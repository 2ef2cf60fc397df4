/**
 * Entrypoint: `npm run start:monitor`. Runs the online model monitoring job every MONITOR_EVERY_MS and serves
 * model_auc, cross_platform_customer_ratio and high_intent_users on /metrics (127.0.0.1:18094 unless METRICS_PORT).
 */
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics, serveProcessorMetrics } from '../runtime/metrics.js';
import { onShutdown } from '../runtime/shutdown.js';
import { MonitorApp } from './app.js';

const config = loadConfig();
const log = createLogger(config.LOG_LEVEL, { processor: 'monitor' });
const metrics = createMetrics(true);
const clickhouse = createClickHouse(config);
const server = await serveProcessorMetrics(metrics.registry, 'monitor', config.METRICS_PORT, log);
const app = new MonitorApp({ clickhouse, registry: metrics.registry, log });
onShutdown(log, async () => {
  await app.stop();
  await clickhouse.close();
  server?.close();
});
app.start(config.MONITOR_EVERY_MS);
log.info('started', { everyMs: config.MONITOR_EVERY_MS, metrics: server?.address() ?? null });
