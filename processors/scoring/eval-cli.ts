/**
 * `npm run eval -- online-retail <file.csv.gz> --from <date> --to <date> --out <scores.csv>`
 *
 * Replays a UCI Online Retail file through the real pipeline (identity resolver → features → scorer, and the warehouse
 * sink) on fresh topics, a fresh Redis prefix and a fresh ClickHouse database, and writes, for each day d in
 * [from, to) and each customer with a purchase before d, the score the system held at 00:00 of d
 * (`customer_id,day,score`; customer_id is the file's CustomerID). Every event before --from is replayed first; then
 * day by day: the day's events, wait until every processor caught up, rescore everyone as of the next midnight.
 *
 * The label of (customer, d) is a non-cancelled invoice of the customer in [d, d + 7 days), read from the file itself.
 * ROC-AUC and PR-AUC are printed for the model and, from the same file and days, for a recency-only baseline and an
 * RFM-quintile baseline (R + F + M quintiles over the customers with a purchase before d), then one JSON line.
 *
 * With no current model in MODEL_DIR (or with --train) it first trains one (`npm run train -- --data-source
 * online-retail`) on the warehouse holding only the events before --from, with reference dates ending 7 days before
 * --from so no label looks past it; the promotion gate then decides whether it replaces the current one. Without
 * --train it refuses (exit 1, before any replay) a current model whose manifest does not say it was trained on Online
 * Retail, or whose training labels reach past --from (eval-model-check.ts).
 *
 * `npm run eval -- generated [--customers N] [--days N] [--transactions N] [--seed N]`: see {@link evaluateGenerated}.
 */
import { parseArgs } from 'node:util';
import { AppError, describeError } from '../runtime/errors.js';
import { evaluateGenerated, evaluateOnlineRetail } from './evaluate.js';
import { releaseOnInterrupt } from '../tools/interrupt.js';

const USAGE = `usage: npm run eval -- online-retail <file.csv.gz> --from YYYY-MM-DD --to YYYY-MM-DD --out <scores.csv> [--train [--validation-fraction F] [--test-fraction F]]
       npm run eval -- generated [--customers 4000] [--days 300] [--transactions 36000] [--seed 7]`;

function positiveInt(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new AppError('USAGE', `--${name} must be a positive integer\n${USAGE}`);
  return n;
}
function day(value: string | undefined, name: string): number {
  const ms = value && /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : NaN;
  if (!Number.isFinite(ms)) throw new AppError('USAGE', `--${name} must be a date YYYY-MM-DD\n${USAGE}`);
  return ms;
}

type Interval = { estimate: number; ci_low: number; ci_high: number } | null;
const interval = (i: Interval, sign = '') =>
  i
    ? `${sign && i.estimate >= 0 ? '+' : ''}${i.estimate.toFixed(4)} [${i.ci_low.toFixed(4)}, ${i.ci_high.toFixed(4)}]`
    : '(reference)';

/** The training run's candidates and baselines on its own test split (the days before --from), if it trained. */
function trainingComparison(training: unknown): string[] {
  const t = training as { selected?: string; comparison?: Record<string, Record<string, Interval>> } | null;
  if (!t?.comparison) return [];
  const lines = [
    `training's own test split (before --from), 95 % paired-bootstrap intervals, Δ = model − ${t.selected}:`,
  ];
  for (const [name, m] of Object.entries(t.comparison)) {
    lines.push(
      `  ${name.padEnd(19)} ROC-AUC ${interval(m['roc_auc'] ?? null)}  PR-AUC ${interval(m['pr_auc'] ?? null)}  ` +
        `Δ ROC-AUC ${interval(m['roc_auc_minus_reference'] ?? null, '+')}`,
    );
  }
  return lines;
}

/** The held-out days: model, the training run's logistic regression, RFM quintiles and recency on the same rows. */
function heldOutComparison(heldOut: unknown): string[] {
  const h = heldOut as { models?: Record<string, Record<string, Interval>> } | null;
  if (!h?.models) return [];
  const lines = ['held-out days, 95 % paired-bootstrap intervals over customers, Δ = baseline − model:'];
  for (const [name, m] of Object.entries(h.models)) {
    lines.push(
      `  ${name.padEnd(19)} ROC-AUC ${interval(m['roc_auc'] ?? null)}  PR-AUC ${interval(m['pr_auc'] ?? null)}  ` +
        `Δ ROC-AUC ${interval(m['roc_auc_minus_reference'] ?? null, '+')}  Δ PR-AUC ${interval(m['pr_auc_minus_reference'] ?? null, '+')}`,
    );
  }
  return lines;
}

async function main(argv: string[]): Promise<number> {
  releaseOnInterrupt(); // an interrupted run removes its scratch topics, keys and database
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      out: { type: 'string' },
      train: { type: 'boolean' },
      'validation-fraction': { type: 'string' },
      'test-fraction': { type: 'string' },
      seed: { type: 'string' },
      customers: { type: 'string' },
      days: { type: 'string' },
      transactions: { type: 'string' },
    },
    allowPositionals: true,
  });
  const [dataset, file] = positionals;
  if (dataset === 'generated') {
    const summary = await evaluateGenerated({
      seed: positiveInt(values.seed, 7, 'seed'),
      customers: positiveInt(values.customers, 4_000, 'customers'),
      days: positiveInt(values.days, 300, 'days'),
      transactions: positiveInt(values.transactions, 36_000, 'transactions'),
    });
    console.log(
      `lightgbm  test ROC-AUC ${String(summary['lightgbmRocAuc'])}  PR-AUC ${String(summary['lightgbmPrAuc'])}`,
    );
    console.log(
      `xgboost   test ROC-AUC ${String(summary['xgboostRocAuc'])}  PR-AUC ${String(summary['xgboostPrAuc'])}`,
    );
    console.log(JSON.stringify(summary));
    return 0;
  }
  if (dataset !== 'online-retail' || !file || !values.out) throw new AppError('USAGE', USAGE);
  // The training's split fractions (`npm run train` checks them): the newest part of the history that the model
  // does not fit on, as validation (early stopping, shape, calibration) and as the gate's test period.
  const trainArgs: string[] = [];
  for (const name of ['validation-fraction', 'test-fraction'] as const) {
    const value = values[name];
    if (value === undefined) continue;
    if (values.train !== true) throw new AppError('USAGE', `--${name} applies to --train only\n${USAGE}`);
    const f = Number(value);
    if (!(f > 0 && f < 1)) throw new AppError('USAGE', `--${name} must be a number in (0, 1)\n${USAGE}`);
    trainArgs.push(`--${name}`, value);
  }
  const summary = await evaluateOnlineRetail(file, day(values.from, 'from'), day(values.to, 'to'), values.out, {
    train: values.train === true,
    trainArgs,
  });
  console.log(
    `model     ROC-AUC ${String(summary['modelRocAuc'])}  PR-AUC ${String(summary['modelPrAuc'])}  (${String(summary['modelVersion'])})`,
  );
  console.log(`recency   ROC-AUC ${String(summary['recencyRocAuc'])}  PR-AUC ${String(summary['recencyPrAuc'])}`);
  console.log(`rfm       ROC-AUC ${String(summary['rfmRocAuc'])}  PR-AUC ${String(summary['rfmPrAuc'])}`);
  console.log(`logistic  ROC-AUC ${String(summary['logisticRocAuc'])}  PR-AUC ${String(summary['logisticPrAuc'])}`);
  for (const line of heldOutComparison(summary['heldOut'])) console.log(line);
  for (const line of trainingComparison(summary['training'])) console.log(line);
  console.log(`wrote ${String(summary['rows'])} rows to ${values.out}`);
  console.log(JSON.stringify(summary));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(describeError(err));
    process.exit(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
  },
);
