// Prometheus from the Debian package (2.42 on bookworm; promtool comes with it), on loopback, scraping the prediction
// API and the processors' default metrics ports with the project's alert rules loaded. Its TSDB lives in the data dir.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_METRICS_PORTS } from '../../../runtime/metrics.js';
import type { LaunchSpec, ServiceContext, ServiceDefinition } from './common.js';
import { ensureAptBinary, httpGet } from './common.js';

const EXTERNAL_ENV = 'PROMETHEUS_URL';
const configFile = (ctx: ServiceContext): string => join(ctx.dataDir, 'prometheus.yml');

/** Where each PatternOS process serves /metrics on this machine (the entrypoints' defaults, API_PORT for the API). */
export function scrapeTargets(env: NodeJS.ProcessEnv): Record<string, string> {
  const port = (name: string, fallback: number) => Number(env[name]?.trim() || fallback);
  return {
    'patternos-api': `127.0.0.1:${port('API_PORT', 18_080)}`,
    'patternos-identity': `127.0.0.1:${DEFAULT_METRICS_PORTS['identity-resolver']}`,
    'patternos-features': `127.0.0.1:${DEFAULT_METRICS_PORTS['feature-processor']}`,
    'patternos-sink': `127.0.0.1:${DEFAULT_METRICS_PORTS['warehouse-sink']}`,
    'patternos-monitor': `127.0.0.1:${DEFAULT_METRICS_PORTS.monitor}`,
    'patternos-retrainer': `127.0.0.1:${DEFAULT_METRICS_PORTS.retrainer}`,
  };
}

/** prometheus.yml (JSON is valid YAML): 15 s scrapes of every target, the alert rules of the repository. */
export function prometheusConfig(rulesFile: string, targets: Record<string, string>): string {
  return JSON.stringify(
    {
      global: { scrape_interval: '15s', evaluation_interval: '15s' },
      rule_files: [rulesFile],
      scrape_configs: Object.entries(targets).map(([job, target]) => ({
        job_name: job,
        static_configs: [{ targets: [target] }],
      })),
    },
    null,
    2,
  );
}

export const prometheus: ServiceDefinition = {
  name: 'prometheus',
  externalEnv: EXTERNAL_ENV,
  endpoint: (config) => `http://127.0.0.1:${config.ports.prometheus}`,
  ports: ['prometheus'],
  persistence: 'series persist 15 days (TSDB in the data dir)',
  readyTimeoutMs: 60_000,

  async install(ctx) {
    const { installed } = await ensureAptBinary(['prometheus'], 'prometheus', ctx, EXTERNAL_ENV);
    return installed ? 'apt-get install prometheus' : '';
  },

  async prepare(ctx): Promise<LaunchSpec> {
    const { path } = await ensureAptBinary(['prometheus'], 'prometheus', ctx, EXTERNAL_ENV);
    const rules = join(ctx.config.projectRoot, 'processors', 'monitoring', 'prometheus', 'alerts.yml');
    await mkdir(join(ctx.dataDir, 'tsdb'), { recursive: true });
    await writeFile(configFile(ctx), prometheusConfig(rules, scrapeTargets(ctx.config.env)));
    return {
      command: path,
      args: [
        `--config.file=${configFile(ctx)}`,
        `--storage.tsdb.path=${join(ctx.dataDir, 'tsdb')}`,
        '--storage.tsdb.retention.time=15d',
        `--web.listen-address=127.0.0.1:${ctx.config.ports.prometheus}`,
      ],
    };
  },

  ownsProcess: (cmdline, ctx) => cmdline.includes(`--config.file=${configFile(ctx)}`),

  async probe(ctx) {
    return (await httpGet(`http://127.0.0.1:${ctx.config.ports.prometheus}/-/ready`))?.status === 200;
  },
};
