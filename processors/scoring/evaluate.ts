/**
 * The evaluations behind `npm run eval` (processors/scoring/eval-cli.ts) and `npm run experiment -- campaign`: Online
 * Retail replayed day by day through the real pipeline with the scores held at 00:00, and the seed's check on
 * generated data. See eval-cli.ts for what each measures.
 */
import { spawn } from 'node:child_process';
import { createReadStream, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { IntentScore, Transaction } from '../../schemas/generated/types.js';
import { DAY_MS } from '../features/definitions.js';
import { Pipeline } from '../pipeline.js';
import { openScratchRun } from '../tools/scratch-run.js';
import { generateSample } from '../producers/generate.js';
import { PlatformProducer, type PlatformEvent } from '../producers/platform-producer.js';
import { csvRecords, ONLINE_RETAIL_PLATFORM, onlineRetailTransactions } from '../producers/replay.js';
import { loadConfig, type Config } from '../runtime/config.js';
import { AppError } from '../runtime/errors.js';
import { prAuc, quintileScores, rocAuc } from './metrics.js';
import { currentVersion } from './model.js';
import { checkModelForOnlineRetail, ONLINE_RETAIL_DATASET } from './eval-model-check.js';
import { logisticFromManifest, logisticScore } from './eval-baselines.js';

export const HORIZON_MS = 7 * DAY_MS;

export const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export async function readTransactions(file: string): Promise<Transaction[]> {
  const input = createReadStream(file).pipe(file.endsWith('.gz') ? createGunzip() : new PassThrough());
  const out: Transaction[] = [];
  for await (const tx of onlineRetailTransactions(csvRecords(input))) out.push(tx);
  return out.sort((a, b) => a.eventTimeMs - b.eventTimeMs);
}

/** Purchases per customer (file CustomerID), from the file: what labels and baselines are computed from. */
export function purchaseHistory(transactions: readonly Transaction[]) {
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
  options: {
    train?: boolean;
    log?: (line: string) => void;
    /** Model registry of the run (default MODEL_DIR): a scratch one keeps the deployment's models untouched. */
    modelsDir?: string;
    /** More `npm run train` arguments when it trains (e.g. a coarser --step-days). */
    trainArgs?: readonly string[];
  } = {},
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
  if (fromMs >= toMs) throw new AppError('USAGE', '--from must be before --to');
  // Before minutes of replay: a current model trained on other data (the demo's generated sample, a deployment's
  // warehouse) or on these very days would make the figures meaningless.
  const modelDir = options.modelsDir ?? loadConfig(process.env).MODEL_DIR;
  const existing = options.train ? null : await currentVersion(modelDir);
  if (existing) await checkModelForOnlineRetail(modelDir, existing, fromMs);
  const run = await openScratchRun('eval', {
    warehouse: true,
    env: {
      SCORING_CLOCK: 'event',
      SCORING_RESCORE_EVERY_MS: String(DAY_MS),
      FEATURES_SNAPSHOT_PERIOD_DAYS: '0',
      ...(options.modelsDir ? { MODEL_DIR: options.modelsDir } : {}),
    },
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
    let training: Record<string, unknown> | null = null;
    if (!modelVersion || options.train) {
      log(`training on the warehouse (events before ${iso(fromMs)}); current model: ${modelVersion ?? 'none'}`);
      // Midnight reference times: this evaluation reads the scores held at 00:00, so that is the moment to learn.
      training = await runTraining(
        [
          '--to',
          iso(fromMs - HORIZON_MS),
          '--ref-times',
          'midnight',
          '--data-source',
          ONLINE_RETAIL_DATASET,
          ...(options.trainArgs ?? []),
        ],
        config,
        options.modelsDir ? { MODEL_DIR: options.modelsDir } : {},
      );
      await pipeline.models.check();
      modelVersion = pipeline.models.current?.version ?? null;
      if (!modelVersion) {
        throw new Error(`training promoted no model: ${String(training['reason'])} (its report is above)`);
      }
      // The gate may have kept an older current model: it must pass the same check as without --train.
      if (training['promoted'] !== true) {
        log(`the new model was not promoted (${String(training['reason'])}); evaluating the current ${modelVersion}`);
        await checkModelForOnlineRetail(config.MODEL_DIR, modelVersion, fromMs);
      }
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
      gid: string;
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
        if (!gid || score === undefined) throw new Error(`no score held for customer ${customer} at ${iso(d)}`);
        const label = purchases.some((p) => p.t >= d && p.t < d + HORIZON_MS) ? 1 : 0;
        const lastT = Math.max(...before.map((p) => p.t));
        const f = before.length;
        const m = before.reduce((n, p) => n + p.amount, 0);
        rows.push({ customer, gid, day: d, score, label, recency: (d - lastT) / DAY_MS, f, m });
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
    const heldOut = await heldOutComparison(config, modelVersion, fromMs, toMs, rows, rfm, log);
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
      // The model's own training run's logistic regression on these days, and everything with paired intervals.
      logisticRocAuc: heldOut ? round(heldOut.logisticRocAuc) : null,
      logisticPrAuc: heldOut ? round(heldOut.logisticPrAuc) : null,
      heldOut: heldOut?.comparison ?? null,
      // The training run of this evaluation, if it trained: its candidates and baselines on its own test split.
      training: training
        ? {
            version: training['version'],
            promoted: training['promoted'],
            reason: training['reason'],
            selected: training['selected'],
            comparison: training['comparison'],
          }
        : null,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await pipeline.stop().catch(() => undefined);
    await run.dispose();
  }
}

/**
 * The held-out days with the logistic-regression baseline of the model's own training run (its manifest), applied to
 * the point-in-time features of the same customers at the same 00:00 (`npm run features -- training-set` on the run's
 * warehouse, which by now holds every event before --to), then every score of the rows compared with paired
 * customer-bootstrap intervals (`npm run train -- compare`). Null, with a log line, for a model trained before the
 * baseline existed.
 */
async function heldOutComparison(
  config: Config,
  modelVersion: string,
  fromMs: number,
  toMs: number,
  rows: readonly { gid: string; customer: string; day: number; score: number; label: number; recency: number }[],
  rfm: readonly number[],
  log: (line: string) => void,
): Promise<{ logisticRocAuc: number; logisticPrAuc: number; comparison: Record<string, unknown> } | null> {
  const manifest: unknown = JSON.parse(
    await readFile(join(config.MODEL_DIR, modelVersion, 'feature-manifest.json'), 'utf8'),
  );
  const logistic = logisticFromManifest(manifest);
  if (!logistic) {
    log(`model ${modelVersion} has no logistic-regression baseline in its manifest (trained before it existed)`);
    return null;
  }
  const work = await mkdtemp(join(tmpdir(), 'patternos-eval-baselines-'));
  try {
    const featuresCsv = join(work, 'features.csv');
    log(`point-in-time features of the held-out days for the logistic-regression baseline`);
    await runQuiet(
      'npm',
      ['run', '-s', 'features', '--', 'training-set', '--from', iso(fromMs), '--to', iso(toMs)].concat([
        '--ref-times',
        'midnight',
        '--out',
        featuresCsv,
      ]),
      { CLICKHOUSE_URL: config.CLICKHOUSE_URL, CLICKHOUSE_DATABASE: config.CLICKHOUSE_DATABASE },
    );
    const [header = '', ...lines] = (await readFile(featuresCsv, 'utf8')).trimEnd().split('\n');
    const column = new Map(header.split(',').map((name, i) => [name, i]));
    const at = (name: string) => {
      const i = column.get(name);
      if (i === undefined) throw new Error(`the training set has no column ${name}`);
      return i;
    };
    const [idCol, refCol] = [at('customer_id'), at('ref_ms')];
    const wanted = new Set([...logistic.features.filter((f) => column.has(f)), 'recency_days']);
    const indexes = new Map([...wanted].map((f) => [f, at(f)]));
    const byRow = new Map<string, number>();
    for (const line of lines) {
      const cells = line.split(',');
      const value = (f: string) => Number(cells[indexes.get(f) ?? -1]);
      byRow.set(`${cells[idCol] ?? ''}@${cells[refCol] ?? ''}`, logisticScore(logistic, value));
    }
    const scores = rows.map((r) => {
      const p = byRow.get(`${r.gid}@${r.day}`);
      if (p === undefined) throw new Error(`no point-in-time features for customer ${r.customer} at ${iso(r.day)}`);
      return p;
    });
    const scoresCsv = join(work, 'scores.csv');
    await writeFile(
      scoresCsv,
      ['customer,label,model,logistic_regression,rfm_quintiles,recency']
        .concat(rows.map((r, i) => `${r.customer},${r.label},${r.score},${scores[i]},${rfm[i]},${-r.recency}`))
        .join('\n') + '\n',
    );
    const comparison = await runTraining(['compare', scoresCsv, '--reference', 'model'], config);
    const labels = rows.map((r) => r.label);
    return { logisticRocAuc: rocAuc(scores, labels), logisticPrAuc: prAuc(scores, labels), comparison };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A command whose output goes to stderr (progress); rejects unless it exits 0. */
async function runQuiet(command: string, args: readonly string[], env: Record<string, string>): Promise<void> {
  const child = spawn(command, args, {
    stdio: ['ignore', process.stderr, process.stderr],
    env: { ...process.env, ...env },
  });
  const status = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (status !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${String(status)})`);
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
