/**
 * `npm run features -- <command>`: customer features computed point in time from the warehouse (as-of.ts).
 *
 *   as-of <time> [--customers id1,id2] [--out file.csv]   features of every customer with an event at or before <time>
 *   as-of --pairs <file.csv> [--out file.csv]              features of (customer_id, ref_ms) pairs from a CSV
 *   training-set --from <date> --to <date> [--step-days 1] [--horizon-days 7] [--ref-times random|midnight] --out <file.csv>
 *   cutpoints --as-of <time> [--publish]                   compute, print and store RFM cut points (Redis too)
 *   snapshot --day <date>                                  write the feat_customer_rfm snapshot of one UTC day
 *   backfill [--from <date>] [--to <date>] [--only sentiment|snapshots]   fill the history of the coupon, brand and
 *                                                          review features (backfill.ts); idempotent
 *
 * Every command takes --database <name> (default CLICKHOUSE_DATABASE). Times are ISO-8601 with a zone
 * (2011-09-01T12:00:00Z), a date (2011-09-01, UTC midnight) or epoch milliseconds. CSV goes to stdout or --out;
 * progress and summaries go to stderr.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ClickHouseClient } from '@clickhouse/client';
import { parse } from 'csv-parse';
import { Redis } from 'ioredis';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig, type Config } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import {
  aggregatesAsOf,
  computeCutPoints,
  customersWithEventsBefore,
  pairKey,
  purchaseTimes,
  randomRefMs,
  type AsOfRequest,
} from './as-of.js';
import { cutPointsKey, publishCutPoints } from './cutpoints.js';
import {
  cutPointsAt,
  cutPointsFromAggregates,
  formatInstant,
  loadStoredCutPoints,
  storeCutPoints,
} from './cutpoints-warehouse.js';
import {
  DAY_MS,
  DEFAULT_CUT_POINTS,
  FEATURE_NAMES,
  finalizeFeatures,
  type CustomerFeatures,
  type RfmCutPoints,
  type WindowAggregates,
} from './definitions.js';
import { backfillReviewSentiment, backfillSnapshots, type BackfillRange } from './backfill.js';
import { snapshotDay } from './snapshots.js';

const USAGE = `usage:
  npm run features -- as-of <time> [--customers id1,id2] [--out file.csv]
  npm run features -- as-of --pairs <file.csv (customer_id,ref_ms)> [--out file.csv]
  npm run features -- training-set --from <date> --to <date> [--step-days 1] [--horizon-days 7]
                                   [--ref-times random|midnight] --out <file.csv>
  npm run features -- cutpoints --as-of <time> [--publish]
  npm run features -- snapshot --day <date>
  npm run features -- backfill [--from <date>] [--to <date>] [--only sentiment|snapshots]
every command: [--database <name>]; a time is ISO-8601 with a zone, a date (UTC midnight) or epoch ms`;

/** Pairs per ClickHouse round trip: bounds the memory of both sides however many customers there are. */
const CHUNK_SIZE = 50_000;

const FEATURE_HEADER = ['customer_id', 'ref_ms', 'feature_time_ms', ...FEATURE_NAMES, 'top_category'];

/** A parsed command line: what to run, and on which database (default CLICKHOUSE_DATABASE). */
interface Command {
  readonly database: string | undefined;
  run(ch: ClickHouseClient, config: Config): Promise<void>;
}

// --- Arguments ---

const usage = (message: string) => new AppError('USAGE', `${message}\n${USAGE}`);

/**
 * Epoch ms from epoch digits, a date (UTC midnight) or an ISO-8601 time with a zone. A time without a zone is
 * refused: JavaScript would read it in the machine's zone, and a feature's reference time must not depend on that.
 */
function parseInstant(text: string, what: string): number {
  const value = text.trim();
  let ms = Number.NaN;
  if (/^\d+$/.test(value)) ms = Number(value);
  else if (/^\d{4}-\d{2}-\d{2}$/.test(value)) ms = Date.parse(`${value}T00:00:00Z`);
  else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/i.test(value)) ms = Date.parse(value);
  else if (/^\d{4}-\d{2}-\d{2}T/.test(value)) throw usage(`${what}: add a zone to "${value}" (Z for UTC)`);
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw usage(`${what}: expected an ISO-8601 time with a zone, a date or epoch ms, got "${text}"`);
  }
  return ms;
}

/** A UTC midnight (see parseInstant). */
function parseDay(text: string, what: string): number {
  const ms = parseInstant(text, what);
  if (ms % DAY_MS !== 0) throw usage(`${what}: must be a UTC midnight (a date like 2011-09-01), got "${text}"`);
  return ms;
}

function parsePositiveInt(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1)
    throw usage(`${what}: expected a whole number >= 1, got "${text}"`);
  return Number(text);
}

function required(value: string | undefined, what: string): string {
  if (value === undefined || value.trim() === '') throw usage(`${what} is required`);
  return value;
}

/** parseArgs with the options of one command plus --database; unknown options and stray words are usage errors. */
function parseCommand<const O extends Record<string, { type: 'string' | 'boolean' }>>(
  args: readonly string[],
  options: O,
  positionals: number,
) {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...options, database: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw usage(describeError(err));
  }
  if (parsed.positionals.length > positionals) {
    throw usage(`unexpected argument ${JSON.stringify(parsed.positionals[positionals])}`);
  }
  return parsed;
}

// --- CSV output ---

const csvCell = (value: string | number) => {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

/**
 * CSV rows to stdout or a file. A file is written as `<file>.partial` and renamed when complete, so a failed run never
 * leaves a truncated file that looks finished.
 */
class CsvOut {
  rows = 0;
  private readonly file: WriteStream | undefined;
  private readonly stream: NodeJS.WritableStream;

  constructor(private readonly path: string | undefined) {
    this.file = path === undefined ? undefined : createWriteStream(`${path}.partial`);
    this.stream = this.file ?? process.stdout;
  }

  async row(cells: readonly (string | number)[]): Promise<void> {
    await this.line(cells);
    this.rows++;
  }

  /** Writes one line; waits for the stream to drain when its buffer is full, so memory stays bounded. */
  async line(cells: readonly (string | number)[]): Promise<void> {
    if (!this.stream.write(`${cells.map(csvCell).join(',')}\n`)) await once(this.stream, 'drain');
  }

  async close(): Promise<void> {
    const { file, path } = this;
    if (file === undefined || path === undefined) return;
    await new Promise<void>((resolve, reject) => {
      file.once('error', reject);
      file.end(resolve);
    });
    await rename(`${path}.partial`, path);
  }

  async abort(): Promise<void> {
    if (this.file === undefined || this.path === undefined) return;
    this.file.destroy();
    await rm(`${this.path}.partial`, { force: true });
  }
}

/** Runs `write` on a CsvOut, closing it on success and removing the partial file on failure. */
async function withCsv(path: string | undefined, header: readonly string[], write: (out: CsvOut) => Promise<void>) {
  const out = new CsvOut(path);
  try {
    await out.line(header);
    await write(out);
  } catch (err) {
    await out.abort();
    throw err;
  }
  await out.close();
  return out.rows;
}

/** A feature row; `refMs` is the row's reference time, which a training row states as r rather than r − 1 ms. */
const featureCells = (customerId: string, f: CustomerFeatures, refMs = f.refMs): (string | number)[] => [
  customerId,
  refMs,
  f.featureTimeMs,
  ...FEATURE_NAMES.map((name) => f.values[name]),
  f.topCategory,
];

// --- Commands ---

function asOfCommand(args: readonly string[]): Command {
  const { values, positionals } = parseCommand(
    args,
    { customers: { type: 'string' }, pairs: { type: 'string' }, out: { type: 'string' } },
    1,
  );
  const [timeText] = positionals;
  const { pairs, customers, out } = values;
  if (pairs !== undefined) {
    if (timeText !== undefined || customers !== undefined) {
      throw usage('--pairs carries its own reference times: give neither <time> nor --customers with it');
    }
    return { database: values.database, run: async (ch) => writeAsOf(ch, await readPairs(pairs), out) };
  }
  const refMs = parseInstant(required(timeText, '<time>'), '<time>');
  const ids = customers === undefined ? undefined : splitIds(customers);
  return {
    database: values.database,
    run: async (ch) => {
      const list = ids ?? (await customersWithEventsBefore(ch, refMs));
      await writeAsOf(
        ch,
        list.map((customerId) => ({ customerId, refMs })),
        out,
      );
    },
  };
}

async function writeAsOf(ch: ClickHouseClient, requests: readonly AsOfRequest[], outPath: string | undefined) {
  const stored = await loadStoredCutPoints(ch);
  const sources = new Set<string>();
  const rows = await withCsv(outPath, FEATURE_HEADER, async (out) => {
    for (let i = 0; i < requests.length; i += CHUNK_SIZE) {
      const chunk = requests.slice(i, i + CHUNK_SIZE);
      const aggregates = await aggregatesAsOf(ch, chunk, { chunkSize: CHUNK_SIZE });
      for (const { customerId, refMs } of chunk) {
        const agg = aggregates.get(pairKey(customerId, refMs));
        if (!agg) continue;
        const cuts = cutPointsAt(stored, refMs); // what was current then: never cut points from the future
        sources.add(cuts.source);
        await out.row(featureCells(customerId, finalizeFeatures(agg, cuts)));
      }
    }
  });
  const missing = requests.length - rows;
  console.error(
    `features: ${rows} rows${outPath ? ` to ${outPath}` : ''}` +
      (missing > 0 ? `; ${missing} requested pairs have no event at or before their time (no row)` : '') +
      `; RFM cut points: ${[...sources].join(' | ') || 'none needed'}`,
  );
}

function splitIds(text: string): string[] {
  const ids = text
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  if (ids.length === 0) throw usage('--customers: expected comma-separated customer ids');
  return ids;
}

/** (customer_id, ref_ms) pairs from a CSV with that header; ref_ms in any form parseInstant accepts. */
async function readPairs(path: string): Promise<AsOfRequest[]> {
  const parser = createReadStream(path).pipe(parse({ columns: true, trim: true, skip_empty_lines: true, bom: true }));
  const pairs: AsOfRequest[] = [];
  let line = 1;
  for await (const record of parser as AsyncIterable<Record<string, string | undefined>>) {
    line++;
    const customerId = record['customer_id'];
    const ref = record['ref_ms'];
    if (customerId === undefined || ref === undefined) {
      throw usage(`--pairs ${path}: the header must name the columns customer_id and ref_ms`);
    }
    if (customerId === '') throw usage(`--pairs ${path} line ${line}: empty customer_id`);
    pairs.push({ customerId, refMs: parseInstant(ref, `--pairs ${path} line ${line} ref_ms`) });
  }
  return pairs;
}

/**
 * One row per (customer, reference time): for every UTC midnight d in [from, to) stepping step-days, the customers are
 * the identified ones with any event before d (whom the scorer scores). The reference time r of a row is
 * - `midnight`: d itself, for everyone;
 * - `random` (default): d plus a per-customer offset within the day (a hash of customer and day, so reruns agree).
 *   Live scores are taken at any time of day, right after events; a model that only saw midnights never learns what
 *   the hours before a purchase look like.
 * Features are as of r − 1 ms (so "before r" and "t ≤ ref" agree), label = 1 when the customer has a PURCHASE with
 * r ≤ t < r + horizon, and the RFM cut points are those as of d − 1 ms (the population's, never later than any row's
 * reference). The ref_ms column holds r (what training/ splits and purges on: labels look at [ref_ms, ref_ms +
 * horizon)). One day at a time, so memory does not grow with the range.
 */
function trainingSetCommand(args: readonly string[]): Command {
  const { values } = parseCommand(
    args,
    {
      from: { type: 'string' },
      to: { type: 'string' },
      'step-days': { type: 'string' },
      'horizon-days': { type: 'string' },
      'ref-times': { type: 'string' },
      out: { type: 'string' },
    },
    0,
  );
  const fromMs = parseDay(required(values.from, '--from'), '--from');
  const toMs = parseDay(required(values.to, '--to'), '--to');
  if (toMs <= fromMs) throw usage('--to must be after --from');
  const stepMs = parsePositiveInt(values['step-days'], 1, '--step-days') * DAY_MS;
  const horizonMs = parsePositiveInt(values['horizon-days'], 7, '--horizon-days') * DAY_MS;
  const outPath = required(values.out, '--out');
  const refTimes = values['ref-times'] ?? 'random';
  if (refTimes !== 'random' && refTimes !== 'midnight') {
    throw usage(`--ref-times: random or midnight, got "${refTimes}"`);
  }
  return {
    database: values.database,
    run: (ch) => writeTrainingSet(ch, { fromMs, toMs, stepMs, horizonMs, outPath, refTimes }),
  };
}

async function writeTrainingSet(
  ch: ClickHouseClient,
  {
    fromMs,
    toMs,
    stepMs,
    horizonMs,
    outPath,
    refTimes,
  }: Record<'fromMs' | 'toMs' | 'stepMs' | 'horizonMs', number> & {
    outPath: string;
    refTimes: 'random' | 'midnight';
  },
): Promise<void> {
  let positives = 0;
  const rows = await withCsv(outPath, [...FEATURE_HEADER, 'label'], async (out) => {
    for (let d = fromMs; d < toMs; d += stepMs) {
      // Everyone the scorer would score: identified customers with any event before d (browsers too: their research
      // before a first purchase is intent). An anonymous key is one guest order or session that cannot buy again
      // under that key, so it would only add trivial negatives (and nobody could target it).
      const population = (await customersWithEventsBefore(ch, d - 1)).filter((c) => !c.startsWith('anon:'));
      const refOf = (customerId: string) => (refTimes === 'random' ? randomRefMs(customerId, d) : d);
      const lastLabelMs = (refTimes === 'random' ? d + DAY_MS : d) + horizonMs - 1;
      const purchases = await purchaseTimes(ch, d, lastLabelMs);
      const requests = population.map((customerId) => ({ customerId, refMs: refOf(customerId) - 1 }));
      const cuts = await pointInTimeCutPoints(
        ch,
        d - 1,
        population.map((customerId) => ({ customerId, refMs: d - 1 })),
      );
      let labelled = 0;
      for (let i = 0; i < requests.length; i += CHUNK_SIZE) {
        const chunk = requests.slice(i, i + CHUNK_SIZE);
        const aggregates =
          refTimes === 'midnight' && cuts.aggregates
            ? cuts.aggregates
            : await aggregatesAsOf(ch, chunk, { chunkSize: CHUNK_SIZE });
        for (const { customerId, refMs } of chunk) {
          const agg = aggregates.get(pairKey(customerId, refMs));
          if (!agg) continue; // merged away between the two queries: no longer a customer of its own
          const r = refMs + 1;
          const label = (purchases.get(customerId) ?? []).some((t) => t >= r && t < r + horizonMs) ? 1 : 0;
          labelled += label;
          await out.row([...featureCells(customerId, finalizeFeatures(agg, cuts.cutPoints), r), label]);
        }
      }
      positives += labelled;
      console.error(
        `${formatInstant(d)}: ${population.length} customers (${refTimes} reference times), ${labelled} positive; ${cuts.cutPoints.source}`,
      );
    }
  });
  console.error(`training set: ${rows} rows, ${positives} positive, to ${outPath}`);
}

/**
 * Cut points as of `refMs` for a training reference time. When the whole population fits one round trip its
 * aggregates are computed here and handed back for reuse (it contains every customer the cut points are taken over);
 * otherwise computeCutPoints reads its own. Falls back to DEFAULT_CUT_POINTS before the first purchase in 90 days.
 */
async function pointInTimeCutPoints(
  ch: ClickHouseClient,
  refMs: number,
  population: readonly AsOfRequest[],
): Promise<{ cutPoints: RfmCutPoints; aggregates?: Map<string, WindowAggregates> }> {
  if (population.length <= CHUNK_SIZE) {
    const aggregates = await aggregatesAsOf(ch, population, { chunkSize: CHUNK_SIZE });
    const cuts = cutPointsFromAggregates(aggregates.values(), `clickhouse as of ${formatInstant(refMs)}`);
    return { cutPoints: cuts ?? DEFAULT_CUT_POINTS, aggregates };
  }
  try {
    return { cutPoints: await computeCutPoints(ch, refMs, { chunkSize: CHUNK_SIZE }) };
  } catch (err) {
    if (err instanceof AppError && err.code === 'USAGE') return { cutPoints: DEFAULT_CUT_POINTS };
    throw err;
  }
}

function cutPointsCommand(args: readonly string[]): Command {
  const { values } = parseCommand(args, { 'as-of': { type: 'string' }, publish: { type: 'boolean' } }, 0);
  const asOfMs = parseInstant(required(values['as-of'], '--as-of'), '--as-of');
  const publish = values.publish ?? false;
  return { database: values.database, run: (ch, config) => writeCutPoints(ch, config, asOfMs, publish) };
}

async function writeCutPoints(ch: ClickHouseClient, config: Config, asOfMs: number, publish: boolean): Promise<void> {
  const cuts = await computeCutPoints(ch, asOfMs, { chunkSize: CHUNK_SIZE });
  console.log(JSON.stringify(cuts, null, 2));
  await storeCutPoints(ch, asOfMs, cuts);
  console.error(`stored in feat_rfm_cutpoints as of ${formatInstant(asOfMs)}`);
  if (publish) {
    const redis = new Redis(config.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 3 });
    try {
      await redis.connect();
      await publishCutPoints(redis, config.TOPIC_PREFIX, cuts);
    } finally {
      redis.disconnect();
    }
    console.error(`published to Redis key ${cutPointsKey(config.TOPIC_PREFIX)}`);
  }
}

function snapshotCommand(args: readonly string[]): Command {
  const { values } = parseCommand(args, { day: { type: 'string' } }, 0);
  const dayStartMs = parseDay(required(values.day, '--day'), '--day');
  return { database: values.database, run: (ch) => writeSnapshot(ch, dayStartMs) };
}

async function writeSnapshot(ch: ClickHouseClient, dayStartMs: number): Promise<void> {
  const cuts = cutPointsAt(await loadStoredCutPoints(ch), dayStartMs + DAY_MS - 1);
  const result = await snapshotDay(ch, dayStartMs, cuts, { chunkSize: CHUNK_SIZE });
  console.log(JSON.stringify({ ...result, cutPoints: cuts.source }));
}

/** See backfill.ts: stored review scores, then the snapshot days, within [--from, --to) when given. */
function backfillCommand(args: readonly string[]): Command {
  const { values } = parseCommand(
    args,
    { from: { type: 'string' }, to: { type: 'string' }, only: { type: 'string' } },
    0,
  );
  const range: BackfillRange = {
    ...(values.from === undefined ? {} : { fromMs: parseDay(values.from, '--from') }),
    ...(values.to === undefined ? {} : { toMs: parseDay(values.to, '--to') }),
  };
  if (range.fromMs !== undefined && range.toMs !== undefined && range.toMs <= range.fromMs) {
    throw usage('--to must be after --from');
  }
  const only = values.only;
  if (only !== undefined && only !== 'sentiment' && only !== 'snapshots') {
    throw usage(`--only: sentiment or snapshots, got "${only}"`);
  }
  return {
    database: values.database,
    run: async (ch) => {
      const sentiment = only === 'snapshots' ? null : await backfillReviewSentiment(ch, range);
      if (sentiment) console.error(`review scores: ${sentiment.reviews} reviews, ${sentiment.rescored} rescored`);
      const snapshots =
        only === 'sentiment'
          ? null
          : await backfillSnapshots(ch, range, {
              chunkSize: CHUNK_SIZE,
              onDay: (r) => {
                console.error(`snapshot ${r.snapshotDate}: ${r.customers} customers`);
              },
            });
      console.log(
        JSON.stringify({
          sentiment,
          snapshots: snapshots && {
            days: snapshots.length,
            rows: snapshots.reduce((n, r) => n + r.customers, 0),
          },
        }),
      );
    },
  };
}

const COMMANDS: Readonly<Record<string, (args: readonly string[]) => Command>> = {
  'as-of': asOfCommand,
  'training-set': trainingSetCommand,
  cutpoints: cutPointsCommand,
  snapshot: snapshotCommand,
  backfill: backfillCommand,
};

async function main(argv: readonly string[]): Promise<void> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return;
  }
  const parse = COMMANDS[name];
  if (!parse) throw usage(`unknown command ${JSON.stringify(name)}`);
  const command = parse(args); // bad arguments fail here, before any configuration or connection
  const config = loadConfig();
  const ch = createClickHouse(config, command.database === undefined ? {} : { database: command.database });
  try {
    await command.run(ch, config);
  } finally {
    await ch.close();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const code = err instanceof AppError ? err.code : 'ERROR';
  console.error(`features failed [${code}]: ${err instanceof AppError ? err.message : describeError(err)}`);
  process.exitCode = err instanceof AppError && err.code === 'USAGE' ? 2 : 1;
});
