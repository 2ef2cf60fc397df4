// `npm run stack -- up | status | down | reset`: argument parsing and printing around ./stack.ts.
import { resetStack, stackStatus, stopStack, upStack } from './stack.js';
import type { ServiceStopResult, StackEndpoints } from './stack.js';

const USAGE = `usage: npm run stack -- <command>

  up      install on first use, start what is not running, wait until ready, print endpoints
  status  show each service: state, endpoint, pid
  down    stop the services this stack started (data kept)
  reset   down, then delete all service data (downloads kept)

Env: KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL, CLICKHOUSE_URL use your own instance instead (nothing is started
for it); STACK_DIR moves the data root (default .stack); STACK_*_PORT overrides ports.`;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;
const log = (line: string): void => {
  console.log(`  ${line}`);
};

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function printEndpoints(endpoints: StackEndpoints): void {
  console.log('\nEndpoints (export these to point other tools at the stack):');
  console.log(`  KAFKA_BROKERS=${endpoints.kafkaBrokers.join(',')}`);
  console.log(`  SCHEMA_REGISTRY_URL=${endpoints.schemaRegistryUrl}`);
  console.log(`  REDIS_URL=${endpoints.redisUrl}`);
  console.log(`  CLICKHOUSE_URL=${endpoints.clickhouseUrl}`);
}

async function up(): Promise<void> {
  console.log('stack up');
  const result = await upStack({ log });
  const rows = [['service', 'outcome', 'install', 'start', 'ready', 'pid', 'endpoint']];
  for (const s of result.services) {
    const timed = s.outcome !== 'external';
    rows.push([
      s.name,
      s.outcome,
      timed ? seconds(s.installMs) : '-',
      timed ? seconds(s.startMs) : '-',
      timed ? seconds(s.readyMs) : '-',
      s.pid === undefined ? '-' : String(s.pid),
      s.endpoint,
    ]);
  }
  console.log(`\n${table(rows)}`);
  printEndpoints(result.endpoints);
  console.log(`\nstack up in ${seconds(result.totalMs)}`);
}

async function status(): Promise<void> {
  const rows = [['service', 'state', 'pid', 'endpoint', 'data']];
  for (const s of await stackStatus()) {
    rows.push([s.name, s.state, s.pid === undefined ? '-' : String(s.pid), s.endpoint, s.persistence ?? 'not managed']);
  }
  console.log(table(rows));
}

function printStopped(results: ServiceStopResult[]): void {
  const rows = [['service', 'outcome', 'pid', 'took']];
  for (const r of results) {
    rows.push([r.name, r.outcome, r.pid === undefined ? '-' : String(r.pid), r.ms ? seconds(r.ms) : '-']);
  }
  console.log(`\n${table(rows)}`);
}

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? '';
  if (argv.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  switch (command) {
    case 'up':
      await up();
      return 0;
    case 'status':
      await status();
      return 0;
    case 'down':
      console.log('stack down');
      printStopped(await stopStack({ log }));
      return 0;
    case 'reset':
      console.log('stack reset');
      printStopped(await resetStack({ log }));
      return 0;
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  },
);
