/**
 * `npx tsx processors/identity/offline-eval-cli.ts <file.csv> [<file2.csv> ...] [--model model.json]
 * [--max-candidates N] [--max-cluster-size N] [--errors N]`: trains the match model by EM on the input files themselves
 * (unsupervised; or uses `--model`), resolves the records incrementally in file order (file after file, each record
 * against the earlier ones only, as the stream would) and prints one JSON line: precision, recall, F1, blocking recall,
 * records per second and the resolver's counters.
 *
 * Ground truth comes from FEBRL's rec_id convention only: `rec-<N>-org` / `rec-<N>-dup-<k>`, the same N = the same
 * person, across all given files (FEBRL4: rec-N-org in 4a ↔ rec-N-dup-0 in 4b). The true_pairs files are not read.
 * Without such ids only the counters are printed. `--errors N` lists up to N missed and N false pairs on stderr.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { blockStats } from './blocking.js';
import { compareRecords, describeVector } from './compare.js';
import { loadModel, scorePair, trainEmWithReport, type MatchModel } from './model.js';
import { blockingRecall, pairwiseMetrics, resolveIncrementallyWithStats } from './resolve-offline.js';
import { readFebrlRecords } from './train-cli.js';
import type { IdentityRecord } from './types.js';

const USAGE =
  'usage: npx tsx processors/identity/offline-eval-cli.ts <file.csv> [<file2.csv> ...] [--model model.json] ' +
  '[--max-candidates N] [--max-cluster-size N] [--errors N]';
const FEBRL_ID = /^rec-(\d+)-(?:org|dup-\d+)$/;

/** True pairs from FEBRL rec ids (record key `<platform>:<rec_id>`); null when some id does not follow the rule. */
function febrlTruePairs(records: readonly IdentityRecord[]): [string, string][] | null {
  const byEntity = new Map<string, string[]>();
  for (const r of records) {
    const recId = r.key.slice(r.key.indexOf(':') + 1);
    const m = FEBRL_ID.exec(recId);
    if (!m?.[1]) return null;
    const list = byEntity.get(m[1]) ?? [];
    list.push(r.key);
    byEntity.set(m[1], list);
  }
  return [...byEntity.values()].flatMap(pairsWithin);
}

/** Every unordered pair of distinct entries. */
function pairsWithin(keys: readonly string[]): [string, string][] {
  return keys.flatMap((a, i) => keys.slice(i + 1).map((b): [string, string] => [a, b]));
}

function intOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new AppError('USAGE', `--${name} must be an integer >= 0\n${USAGE}`);
  return n;
}

const round = (x: number, digits = 4) => Number(x.toFixed(digits));

function printErrors(
  records: readonly IdentityRecord[],
  clusters: ReadonlyMap<string, string>,
  truePairs: readonly [string, string][],
  model: MatchModel,
  limit: number,
): void {
  const byKey = new Map(records.map((r) => [r.key, r]));
  const show = (kind: string, a: string, b: string) => {
    const ra = byKey.get(a);
    const rb = byKey.get(b);
    if (!ra || !rb) return;
    const score = scorePair(model, ra, rb);
    process.stderr.write(
      `${kind} ${a} ${b} weight=${score.weight.toFixed(2)} p=${score.probability.toExponential(2)} conflict=${score.conflict} ` +
        `${JSON.stringify(describeVector(compareRecords(ra, rb)))}\n  ${JSON.stringify(ra)}\n  ${JSON.stringify(rb)}\n`,
    );
  };
  let missed = 0;
  for (const [a, b] of truePairs) {
    if (clusters.get(a) === clusters.get(b)) continue;
    if (missed++ < limit) show('MISSED', a, b);
  }
  const truth = new Set(truePairs.map(([a, b]) => (a < b ? `${a} ${b}` : `${b} ${a}`)));
  const members = new Map<string, string[]>();
  for (const [key, cluster] of clusters) members.set(cluster, [...(members.get(cluster) ?? []), key]);
  let falsePairs = 0;
  for (const keys of members.values()) {
    for (const [a, b] of pairsWithin(keys)) {
      if (truth.has(a < b ? `${a} ${b}` : `${b} ${a}`)) continue;
      if (falsePairs++ < limit) show('FALSE', a, b);
    }
  }
  process.stderr.write(`missed ${missed}, false ${falsePairs}\n`);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        'max-candidates': { type: 'string' },
        'max-cluster-size': { type: 'string' },
        errors: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new AppError('USAGE', `${describeError(err)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new AppError('USAGE', `at least one file is required\n${USAGE}`);
  const records = await readFebrlRecords(positionals, loadConfig().IDENTITY_HASH_SALT.reveal());

  const trainStarted = performance.now();
  let model: MatchModel;
  let training: unknown = null;
  if (values.model) model = loadModel(await readFile(values.model, 'utf8'));
  else {
    const trained = trainEmWithReport(records);
    model = trained.model;
    training = trained.report;
  }
  const trainSeconds = (performance.now() - trainStarted) / 1000;

  const started = performance.now();
  const { clusters, stats } = resolveIncrementallyWithStats(records, model, {
    maxCandidates: intOption('max-candidates', values['max-candidates']),
    maxClusterSize: intOption('max-cluster-size', values['max-cluster-size']),
  });
  const seconds = (performance.now() - started) / 1000;

  const truePairs = febrlTruePairs(records);
  const metrics = truePairs ? pairwiseMetrics(clusters, truePairs) : null;
  const blocks = blockStats(records).find((s) => s.kind === 'all');
  console.log(
    JSON.stringify({
      files: positionals.map((p) => p.split(/[\\/]/).pop()),
      records: records.length,
      model: {
        version: model.version,
        prior: model.prior,
        threshold: model.threshold,
        trainSeconds: round(trainSeconds, 2),
      },
      training,
      ...(metrics && truePairs
        ? {
            precision: round(metrics.precision),
            recall: round(metrics.recall),
            f1: round(metrics.f1),
            truePairs: metrics.truePairs,
            predictedPairs: metrics.predictedPairs,
            truePositives: metrics.truePositives,
            blockingRecall: round(blockingRecall(records, truePairs)),
          }
        : {}),
      recordsPerSecond: Math.round(records.length / seconds),
      comparisonsPerRecord: round(stats.comparisons / Math.max(1, records.length), 2),
      stats,
      blocks,
    }),
  );
  const errors = intOption('errors', values.errors);
  if (errors && truePairs) printErrors(records, clusters, truePairs, model, errors);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(describeError(err));
    process.exitCode = err instanceof AppError && err.code === 'USAGE' ? 2 : 1;
  },
);
