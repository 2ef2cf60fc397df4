/**
 * `npm run retrain -- [--months 6] [--step-days 1] [--timeout-ms N] [--database <name>]`: one retraining now, as the
 * retrainer runs it (trigger "manual"): the last months of the warehouse, `npm run train`, its promotion gate, the
 * outcome recorded in MODEL_DIR/retrain-status.json. Training progress goes to stderr; stdout is a summary whose last
 * line is one JSON object (the run). `npm run retrain -- status` prints that file.
 *
 * Exit 0 when the gate decided (promoted or kept), 1 when the run failed or another one holds the lock, 2 on bad
 * arguments.
 */
import { parseArgs } from 'node:util';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { createLogger } from '../runtime/log.js';
import { currentVersion, readStatus, retrain, RetrainBusyError } from './job.js';

const USAGE = `usage:
  npm run retrain -- [--months N] [--step-days N] [--timeout-ms N] [--database <name>]
  npm run retrain -- status`;

function positiveInt(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    console.error(`${flag} must be a positive whole number, got "${text}"\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      months: { type: 'string' },
      'step-days': { type: 'string' },
      'timeout-ms': { type: 'string' },
      database: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
} catch (err) {
  console.error(`${String(err)}\n${USAGE}`);
  process.exit(2);
}
const { values, positionals } = parsed;
if (positionals.length > 1 || (positionals[0] !== undefined && positionals[0] !== 'status')) {
  console.error(USAGE);
  process.exit(2);
}
const months = positiveInt(values.months, '--months');
const stepDays = positiveInt(values['step-days'], '--step-days');
const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
const config = loadConfig(values.database ? { ...process.env, CLICKHOUSE_DATABASE: values.database } : process.env);

if (positionals[0] === 'status') {
  const status = await readStatus(config.MODEL_DIR);
  const current = await currentVersion(config.MODEL_DIR);
  const last = status.last_run;
  console.log(`current model: ${current ?? '(none)'}`);
  console.log(
    last
      ? `last retraining: ${last.outcome} (${last.trigger}) at ${new Date(last.finished_ms).toISOString()}: ${last.reason}`
      : 'no retraining recorded yet',
  );
  console.log(JSON.stringify({ current, ...status }));
  process.exit(0);
}

const log = createLogger(config.LOG_LEVEL, { processor: 'retrain' });
const clickhouse = createClickHouse(config);
try {
  log.info('retraining started', { trigger: 'manual', database: config.CLICKHOUSE_DATABASE });
  const run = await retrain({
    config,
    clickhouse,
    trigger: 'manual',
    progress: (line) => process.stderr.write(`${line}\n`),
    ...(months ? { months } : {}),
    ...(stepDays ? { stepDays } : {}),
    ...(timeoutMs ? { timeoutMs } : {}),
  });
  const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(4));
  console.log(`retraining ${run.outcome}: ${run.reason}`);
  if (run.window) console.log(`reference dates ${run.window.from} (inclusive) to ${run.window.to} (exclusive)`);
  console.log(
    `new model ${run.version ?? '-'}: ROC-AUC ${f(run.candidate?.roc_auc)}, PR-AUC ${f(run.candidate?.pr_auc)}; ` +
      `gated against ${run.baseline?.version ?? '(none)'}: ROC-AUC ${f(run.baseline?.roc_auc)}, PR-AUC ${f(run.baseline?.pr_auc)}`,
  );
  console.log(`current model: ${run.previous ?? '(none)'} → ${run.current ?? '(none)'}`);
  const fields = { ...run, duration_s: (run.finished_ms - run.started_ms) / 1000 };
  if (run.outcome === 'failed') log.error('retraining finished', fields);
  else log.info('retraining finished', fields);
  console.log(JSON.stringify(run));
  process.exitCode = run.outcome === 'failed' ? 1 : 0;
} catch (err) {
  if (!(err instanceof RetrainBusyError)) throw err;
  console.error(`retrain: ${err.message}`);
  process.exitCode = 1;
} finally {
  await clickhouse.close();
}
