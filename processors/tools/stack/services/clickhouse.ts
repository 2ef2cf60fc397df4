// ClickHouse from the Debian package (18.16 on bookworm) or any newer clickhouse binary already on PATH. Debian's
// /etc/clickhouse-server/config.xml is reused; paths, ports and listen host are overridden on the command line.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LaunchSpec, ServiceContext, ServiceDefinition } from './common.js';
import { ensureAptBinary, exists, httpGet } from './common.js';

const EXTERNAL_ENV = 'CLICKHOUSE_URL';
const SYSTEM_CONFIG = '/etc/clickhouse-server/config.xml';

const dbDir = (ctx: ServiceContext): string => join(ctx.dataDir, 'db');

async function binary(ctx: ServiceContext): Promise<{ path: string; installed: boolean }> {
  // `clickhouse` is the single-binary distribution (run as `clickhouse server`), packaged installs add the -server name.
  return ensureAptBinary(['clickhouse-server', 'clickhouse'], 'clickhouse-server', ctx, EXTERNAL_ENV);
}

export const clickhouse: ServiceDefinition = {
  name: 'clickhouse',
  externalEnv: EXTERNAL_ENV,
  endpoint: (config) => `http://127.0.0.1:${config.ports.clickhouseHttp}`,
  ports: ['clickhouseHttp', 'clickhouseTcp', 'clickhouseInterserver'],
  persistence: 'tables persist (data dir)',
  readyTimeoutMs: 60_000,

  async install(ctx) {
    return (await binary(ctx)).installed ? 'apt-get install clickhouse-server' : '';
  },

  async prepare(ctx): Promise<LaunchSpec> {
    const { path } = await binary(ctx);
    const db = dbDir(ctx);
    for (const sub of ['tmp', 'user_files', 'format_schemas']) await mkdir(join(db, sub), { recursive: true });
    const { ports } = ctx.config;
    const args: string[] = [];
    if (path.endsWith('/clickhouse')) args.push('server');
    // Newer single-binary builds run on embedded defaults when there is no system config.
    if (await exists(SYSTEM_CONFIG)) args.push(`--config-file=${SYSTEM_CONFIG}`);
    args.push(
      '--',
      `--path=${db}/`,
      `--tmp_path=${db}/tmp/`,
      `--user_files_path=${db}/user_files/`,
      `--format_schema_path=${db}/format_schemas/`,
      // The server's own log goes to the same file as its stdout so one file tells the whole story.
      `--logger.log=${ctx.logFile}`,
      `--logger.errorlog=${join(ctx.dataDir, 'err')}`,
      // Debian's config logs at trace level, which would grow the log by megabytes per test run.
      '--logger.level=information',
      '--logger.console=0',
      `--http_port=${ports.clickhouseHttp}`,
      `--tcp_port=${ports.clickhouseTcp}`,
      `--interserver_http_port=${ports.clickhouseInterserver}`,
      // Replaces the config's ::1 and 127.0.0.1 entries: IPv4 loopback only.
      '--listen_host=127.0.0.1',
    );
    // 18.16 has no max_server_memory_usage setting, so memory is left to its defaults.
    // Newer releases fork a watchdog parent; a single process keeps the pid file and stop signals exact.
    return { command: path, args, env: { ...ctx.config.env, CLICKHOUSE_WATCHDOG_ENABLE: '0' } };
  },

  ownsProcess: (cmdline, ctx) => cmdline.includes(`--path=${dbDir(ctx)}/`),

  async probe(ctx) {
    const response = await httpGet(`http://127.0.0.1:${ctx.config.ports.clickhouseHttp}/ping`);
    return response?.status === 200 && response.body.startsWith('Ok.');
  },
};
