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
 * With no current model in MODEL_DIR (or with --train) it first trains one (`npm run train`) on the warehouse holding
 * only the events before --from, with reference dates ending 7 days before --from so no label looks past it; the
 * promotion gate then decides whether it replaces the current one.
 *
 * `npm run eval -- generated [--customers N] [--days N] [--transactions N] [--seed N]`: see {@link evaluateGenerated}.
 */
import { spawn } from 'node:child_process';
import { createReadStream, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import type { IntentScore, Transaction } from '../../schemas/generated/types.js';
import { DAY_MS } from '../features/definitions.js';
import { Pipeline } from '../pipeline.js';
import { openScratchRun } from '../tools/scratch-run.js';
import { generateSample } from '../producers/generate.js';
import { PlatformProducer, type PlatformEvent } from '../producers/platform-producer.js';
import { csvRecords, ONLINE_RETAIL_PLATFORM, onlineRetailTransactions } from '../producers/replay.js';
import type { Config } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { prAuc, quintileScores, rocAuc } from './metrics.js';
import { currentVersion } from './model.js';

const USAGE = `usage: npm run eval -- online-retail <file.csv.gz> --from YYYY-MM-DD --to YYYY-MM-DD --out <scores.csv> [--train]
       npm run eval -- generated [--customers 4000] [--days 300] [--transactions 36000] [--seed 7]`;

function positiveInt(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new AppError('USAGE', `--${name} must be a positive integer\n${USAGE}`);
  return n;
}
const HORIZON_MS = 7 * DAY_MS;

function day(value: string | undefined, name: string): number {
  const ms = value && /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : NaN;
  if (!Number.isFinite(ms)) throw new AppError('USAGE', `--${name} must be a date YYYY-MM-DD\n${USAGE}`);
  return ms;
}

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);

async function readTransactions(file: string): Promise<Transaction[]> {
  const input = createReadStream(file).pipe(file.endsWith('.gz') ? createGunzip() : new PassThrough());
  const out: Transaction[] = [];
  for await (const tx of onlineRetailTransactions(csvRecords(input))) out.push(tx);
  return out.sort((a, b) => a.eventTimeMs - b.eventTimeMs);
}

/** Purchases per customer (file CustomerID), from the file: what labels and baselines are computed from. */
function purchaseHistory(transactions: readonly Transaction[]) {
  const byCustomer = new Map<string, { t: number; amount: number }[]>();
  for (const tx of transactions) {
    if (tx.kind !== 'PURCHASE' || !tx.platformCustomerId || tx.totalMinor <= 0) continue; // non-cancelled invoices
    const list = byCustomer.get(tx.platformCustomerId) ?? [];
    list.push({ t: tx.eventTimeMs, amount: tx.totalMinor });
    byCustomer.set(tx.platformCustomerId, list);
  }
  return byCustomer;
}

export type EvaluationSummary = Readonly<Record<string, unknown>>;

export async function evaluateOnlineRetail(
  file: string,
  fromMs: number,
  toMs: number,
  outFile: string,
  options: { train?: boolean; log?: (line: string) => void } = {},
): Promise<EvaluationSummary> {
  const log =
    options.log ??
    ((line: string) => {
      console.error(line);
    });
  const transactions = await readTransactions(file);
  const last = transactions.at(-1)?.eventTimeMs ?? 0;
  if (toMs + HORIZON_MS > last + DAY_MS) {
    throw new AppError('USAGE', `--to ${iso(toMs)}: labels need 7 days of data after it; the file ends ${iso(last)}`);
  }
  if (fromMs >= toMs) throw new AppError('USAGE', `--from must be before --to\n${USAGE}`);
  const run = await openScratchRun('eval', {
    warehouse: true,
    env: { SCORING_CLOCK: 'event', SCORING_RESCORE_EVERY_MS: String(DAY_MS), FEATURES_SNAPSHOT_PERIOD_DAYS: '0' },
  });
  const { config, kafka, admin, serde, topics, clickhouse } = run;
  const held = new Map<string, Map<number, number>>(); // global id → as-of day → score
  const pipeline = new Pipeline({
    config,
    kafka,
    serde,
    topics,
    clickhouse,
    onScores: (scores: readonly IntentScore[]) => {
      for (const s of scores) {
        if ((s.eventTimeMs + 1) % DAY_MS !== 0) continue; // only the midnight rescoring below is kept
        const m = held.get(s.customerId) ?? new Map<number, number>();
        m.set(s.eventTimeMs + 1, s.intentScore);
        held.set(s.customerId, m);
      }
    },
  });
  const started = Date.now();
  try {
    const producer = await PlatformProducer.connect(config, { kafka, serde, topics, validation: 'schema' });
    const publish = async (txs: readonly Transaction[]) => {
      await producer.publishAll(txs.map((event) => ({ kind: 'transaction' as const, event })));
    };
    await publish(transactions.filter((t) => t.eventTimeMs < fromMs));
    await pipeline.start();
    await pipeline.waitUntilCaughtUp(admin, 600_000);
    log(`history before ${iso(fromMs)} replayed (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    let modelVersion = await currentVersion(config.MODEL_DIR);
    if (!modelVersion || options.train) {
      log(`training on the warehouse (events before ${iso(fromMs)}); current model: ${modelVersion ?? 'none'}`);
      // Midnight reference times: this evaluation reads the scores held at 00:00, so that is the moment to learn.
      await runTraining(['--to', iso(fromMs - HORIZON_MS), '--ref-times', 'midnight'], config);
      await pipeline.models.check();
      modelVersion = pipeline.models.current?.version ?? null;
      if (!modelVersion) throw new Error('training promoted no model: see its report above');
    } else {
      await pipeline.models.check();
    }
    log(`model ${modelVersion}; scoring each day from ${iso(fromMs)} to ${iso(toMs)}`);

    for (let d = fromMs; d < toMs; d += DAY_MS) {
      const start = Math.max(d - DAY_MS, fromMs); // everything before --from went in with the history
      await publish(transactions.filter((t) => t.eventTimeMs >= start && t.eventTimeMs < d));
      await pipeline.waitUntilCaughtUp(admin, 300_000);
      // As of the last millisecond before d: what the system holds at 00:00 is computed from the events before d, and
      // it is the reference time training used for the label window [d, d + 7 days), so no window is skewed by a day.
      await pipeline.rescoreAsOf(d - 1);
    }
    await producer.disconnect();

    // Customer ids of the file → global ids of the pipeline.
    const history = purchaseHistory(transactions);
    const keys = [...history.keys()].map((c) => `${ONLINE_RETAIL_PLATFORM}:${c}`);
    const roots = await pipeline.graph.globalIdOf(keys);
    const rows: {
      customer: string;
      day: number;
      score: number;
      label: number;
      recency: number;
      f: number;
      m: number;
    }[] = [];
    const lines = ['customer_id,day,score'];
    for (let d = fromMs; d < toMs; d += DAY_MS) {
      for (const [customer, purchases] of history) {
        const before = purchases.filter((p) => p.t < d);
        if (before.length === 0) continue;
        const gid = roots.get(`${ONLINE_RETAIL_PLATFORM}:${customer}`);
        const score = gid ? held.get(gid)?.get(d) : undefined;
        if (score === undefined) throw new Error(`no score held for customer ${customer} at ${iso(d)}`);
        const label = purchases.some((p) => p.t >= d && p.t < d + HORIZON_MS) ? 1 : 0;
        const lastT = Math.max(...before.map((p) => p.t));
        const f = before.length;
        const m = before.reduce((n, p) => n + p.amount, 0);
        rows.push({ customer, day: d, score, label, recency: (d - lastT) / DAY_MS, f, m });
        lines.push(`${Number(customer)},${iso(d)},${score}`);
      }
    }
    writeFileSync(outFile, `${lines.join('\n')}\n`);
    // Baselines, per day: recency alone (more recent = higher), and R + F + M quintiles among that day's customers.
    const rfm: number[] = [];
    for (let d = fromMs; d < toMs; d += DAY_MS) {
      const today = rows.filter((r) => r.day === d);
      const r = quintileScores(today.map((x) => -x.recency));
      const f = quintileScores(today.map((x) => x.f));
      const m = quintileScores(today.map((x) => x.m));
      today.forEach((_, i) => rfm.push((r[i] ?? 0) + (f[i] ?? 0) + (m[i] ?? 0)));
    }
    const labels = rows.map((r) => r.label);
    const round = (x: number) => Number(x.toFixed(4));
    return {
      eval: 'online-retail',
      from: iso(fromMs),
      to: iso(toMs),
      modelVersion,
      rows: rows.length,
      customers: new Set(rows.map((r) => r.customer)).size,
      positives: labels.reduce((a, b) => a + b, 0),
      modelRocAuc: round(
        rocAuc(
          rows.map((r) => r.score),
          labels,
        ),
      ),
      modelPrAuc: round(
        prAuc(
          rows.map((r) => r.score),
          labels,
        ),
      ),
      recencyRocAuc: round(
        rocAuc(
          rows.map((r) => -r.recency),
          labels,
        ),
      ),
      recencyPrAuc: round(
        prAuc(
          rows.map((r) => -r.recency),
          labels,
        ),
      ),
      rfmRocAuc: round(rocAuc(rfm, labels)),
      rfmPrAuc: round(prAuc(rfm, labels)),
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await pipeline.stop().catch(() => undefined);
    await run.dispose();
  }
}

/**
 * `npm run train -- <args>` against the run's warehouse, asynchronously (a pipeline's consumers in this process must
 * keep their heartbeats while it trains). Its report goes to stderr; resolves with its final JSON line.
 */
async function runTraining(
  args: readonly string[],
  config: Config,
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['training/train.mjs', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      CLICKHOUSE_URL: config.CLICKHOUSE_URL,
      CLICKHOUSE_DATABASE: config.CLICKHOUSE_DATABASE,
      ...env,
    },
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    process.stderr.write(chunk);
  });
  const status = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (status !== 0) throw new Error(`training failed (exit ${String(status)})`);
  const last = stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as Record<string, unknown>;
  } catch {
    throw new Error(`training printed no JSON summary (last line: ${last.slice(0, 200)})`);
  }
}

export interface GeneratedEvaluationOptions {
  readonly seed: number;
  readonly customers: number;
  readonly days: number;
  readonly transactions: number;
  readonly log?: (line: string) => void;
}

/**
 * The seed's check on generated data: a sample of `customers` persons over `days` days goes through the real pipeline
 * (resolver, features, sink) into a scratch warehouse, and `npm run train` builds its point-in-time training set from
 * there and trains into a scratch model directory (the deployment's models are not touched). Returns the test-split
 * figures of both models.
 */
export async function evaluateGenerated(options: GeneratedEvaluationOptions): Promise<EvaluationSummary> {
  const log =
    options.log ??
    ((line: string) => {
      console.error(line);
    });
  const run = await openScratchRun('eval-generated', { warehouse: true, env: { FEATURES_SNAPSHOT_PERIOD_DAYS: '0' } });
  const { config, kafka, admin, serde, topics, clickhouse } = run;
  const modelsDir = await mkdtemp(join(tmpdir(), 'patternos-eval-models-'));
  const pipeline = new Pipeline({ config, kafka, serde, topics, clickhouse, scoring: false });
  const started = Date.now();
  let running = false;
  try {
    const sample = generateSample({
      seed: options.seed,
      customers: options.customers,
      days: options.days,
      targetTransactions: options.transactions,
      salt: config.IDENTITY_HASH_SALT.reveal(),
    });
    const events: PlatformEvent[] = [
      ...sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
      ...sample.behaviors.map((event) => ({ kind: 'behavior' as const, event })),
    ].sort((a, b) => a.event.eventTimeMs - b.event.eventTimeMs);
    log(`generated ${events.length} events (${sample.transactions.length} transactions), seed ${options.seed}`);
    running = true;
    await pipeline.start();
    const producer = await PlatformProducer.connect(config, { kafka, serde, topics });
    await producer.publishAll(events);
    await producer.disconnect();
    await pipeline.waitUntilCaughtUp(admin, 3_600_000);
    running = false;
    await pipeline.stop(); // the replay is done; training reads the warehouse only
    log(`replayed through the pipeline in ${((Date.now() - started) / 1000).toFixed(1)} s; training`);
    const report = await runTraining(['--step-days', '2', '--models-dir', modelsDir], config);
    const models = report['models'] as Record<string, { test: { roc_auc: number; pr_auc: number } }> | undefined;
    const figure = (name: string, key: 'roc_auc' | 'pr_auc') => {
      const v = models?.[name]?.test[key];
      return v === undefined ? null : Number(v.toFixed(4));
    };
    return {
      evaluation: 'generated',
      seed: options.seed,
      customers: options.customers,
      days: options.days,
      events: events.length,
      transactions: sample.transactions.length,
      selected: report['selected'] ?? null,
      lightgbmRocAuc: figure('lightgbm', 'roc_auc'),
      lightgbmPrAuc: figure('lightgbm', 'pr_auc'),
      xgboostRocAuc: figure('xgboost', 'roc_auc'),
      xgboostPrAuc: figure('xgboost', 'pr_auc'),
      targetRocAuc: 0.8,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    if (running) await pipeline.stop().catch(() => undefined);
    await rm(modelsDir, { recursive: true, force: true });
    await run.dispose();
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      out: { type: 'string' },
      train: { type: 'boolean' },
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
  const summary = await evaluateOnlineRetail(file, day(values.from, 'from'), day(values.to, 'to'), values.out, {
    train: values.train === true,
  });
  console.log(
    `model     ROC-AUC ${String(summary['modelRocAuc'])}  PR-AUC ${String(summary['modelPrAuc'])}  (${String(summary['modelVersion'])})`,
  );
  console.log(`recency   ROC-AUC ${String(summary['recencyRocAuc'])}  PR-AUC ${String(summary['recencyPrAuc'])}`);
  console.log(`rfm       ROC-AUC ${String(summary['rfmRocAuc'])}  PR-AUC ${String(summary['rfmPrAuc'])}`);
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
