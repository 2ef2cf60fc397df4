/**
 * `npm run monitor -- [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--days 30]`: runs the online model monitoring job once
 * over the configured warehouse, prints each day's quality per model version, and ends with one JSON line.
 */
import { parseArgs } from 'node:util';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { runModelMonitoring } from './job.js';

const { values } = parseArgs({
  options: { from: { type: 'string' }, to: { type: 'string' }, days: { type: 'string' } },
});
const config = loadConfig();
const clickhouse = createClickHouse(config);
try {
  const days = await runModelMonitoring(clickhouse, {
    ...(values.from ? { from: values.from } : {}),
    ...(values.to ? { to: values.to } : {}),
    ...(values.days ? { days: Number(values.days) } : {}),
  });
  const f = (x: number) => x.toFixed(3);
  console.log('day         model                       customers  buyers  ROC-AUC  PR-AUC  P@0.4  R@0.4  P@0.7  R@0.7');
  for (const d of days) {
    console.log(
      `${d.day}  ${d.modelVersion.padEnd(26)} ${String(d.customers).padStart(9)} ${String(d.positives).padStart(7)}  ${f(d.rocAuc)}    ${f(d.prAuc)}   ${f(d.precisionAt04)}  ${f(d.recallAt04)}  ${f(d.precisionAt07)}  ${f(d.recallAt07)}`,
    );
  }
  if (days.length === 0)
    console.log('no day could be judged (no scores, no complete 7-day window, or a single outcome)');
  console.log(JSON.stringify({ monitor: 'model', days: days.length, table: 'model_monitoring', results: days }));
} finally {
  await clickhouse.close();
}
