/**
 * `npm run replay -- <online-retail|febrl> <file> [--platform NAME] [--speed X] [--limit N] [--base-time ISO]`:
 * streams a real dataset file (gzip when the name ends in .gz), maps it with processors/producers/replay.ts and
 * publishes the events in event-time order through the platform producer library with schema-only validation, so the
 * data's anomalies reach the processors and are dead-lettered there with a reason instead of vanishing here.
 *
 * - online-retail: one Transaction per invoice, streamed (the file is never held in memory).
 * - febrl: one IDENTIFY per record; `--platform` defaults to the file name (dataset4a.csv → dataset4a); event times
 *   are `--base-time` (default 2026-01-01T00:00:00Z, fixed so a re-run produces identical events) + record index.
 * - `--speed X` replays X times faster than real time using the gaps between event times (60 = a minute per second);
 *   without it events go out as fast as the broker acknowledges them.
 * - `--limit N` stops after N events.
 * - The file is read line by line (csv-lines.ts): a bad line (stray quote, wrong number of columns, not UTF-8, an
 *   unreadable Quantity, UnitPrice or InvoiceDate) is printed on stderr as `file:line: skipped: reason` and the rest of
 *   the file still runs; the summary counts lines, records, blank and bad lines.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import cliProgress from 'cli-progress';
import { loadConfig } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { PlatformProducer, type PlatformEvent } from './platform-producer.js';
import { CsvLineReader, type BadLine, type CsvLineCounts, type CsvRecord } from './csv-lines.js';
import { febrlEvents, onlineRetailFile, platformFromFileName } from './replay.js';

const USAGE =
  'usage: npm run replay -- <online-retail|febrl> <file> [--platform NAME] [--speed X] [--limit N] [--base-time ISO]';
const DEFAULT_FEBRL_BASE_TIME = '2026-01-01T00:00:00Z';
const PLATFORM_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

type Item = PlatformEvent;

interface Options {
  readonly dataset: 'online-retail' | 'febrl';
  readonly file: string;
  readonly platform: string | undefined;
  readonly speed: number | undefined;
  readonly limit: number | undefined;
  readonly baseTimeMs: number;
}

function usage(message: string): AppError {
  return new AppError('USAGE', `${message}\n${USAGE}`);
}

function parseOptions(argv: string[]): Options | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        platform: { type: 'string' },
        speed: { type: 'string' },
        limit: { type: 'string' },
        'base-time': { type: 'string', default: DEFAULT_FEBRL_BASE_TIME },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw usage(describeError(err));
  }
  const { values, positionals } = parsed;
  if (values.help) return null;
  const [dataset, file, ...extra] = positionals;
  if ((dataset !== 'online-retail' && dataset !== 'febrl') || !file || extra.length > 0) {
    throw usage('expected a dataset (online-retail or febrl) and one file');
  }
  const speed = values.speed === undefined ? undefined : Number(values.speed);
  if (speed !== undefined && !(speed > 0 && Number.isFinite(speed))) throw usage('--speed must be a positive number');
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw usage('--limit must be an integer > 0');
  if (values.platform !== undefined && !PLATFORM_PATTERN.test(values.platform)) {
    throw usage(`--platform must match ${PLATFORM_PATTERN.source}`);
  }
  if (values.platform !== undefined && dataset === 'online-retail') {
    throw usage('--platform applies to febrl only (Online Retail is always platform online-retail)');
  }
  const baseTimeMs = Date.parse(values['base-time']);
  if (Number.isNaN(baseTimeMs)) throw usage('--base-time must be an ISO date-time');
  return { dataset, file, platform: values.platform, speed, limit, baseTimeMs };
}

/** The file as a byte stream, gunzipped when the name ends in .gz; `onBytes` sees the compressed bytes read. */
function openFile(file: string, onBytes: (n: number) => void): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length);
      callback(null, chunk);
    },
  });
  const raw = createReadStream(file).on('error', (err) => counter.destroy(err));
  const counted = raw.pipe(counter);
  if (!file.toLowerCase().endsWith('.gz')) return counted;
  const gunzip = createGunzip();
  counter.on('error', (err) => gunzip.destroy(err));
  return counted.pipe(gunzip);
}

/** Bad lines: printed on stderr as they are found (`file:line: skipped: reason`), counted by the reader. */
function printBadLine(bad: BadLine): void {
  process.stderr.write(`\n${bad.file}:${bad.line}: skipped: ${bad.reason}\n`);
}

function onlineRetailItems(
  file: string,
  onBytes: (n: number) => void,
): { items: AsyncGenerator<Item>; counts: CsvLineCounts } {
  const { transactions, counts } = onlineRetailFile(openFile(file, onBytes), { file, onBadLine: printBadLine });
  async function* items(): AsyncGenerator<Item> {
    for await (const tx of transactions) yield { kind: 'transaction', event: tx };
  }
  return { items: items(), counts };
}

async function febrlItems(options: Options): Promise<{ items: Item[]; counts: CsvLineCounts }> {
  const reader = new CsvLineReader({ file: options.file, trim: true, onBadLine: printBadLine });
  const records: CsvRecord[] = [];
  for await (const record of reader.records(openFile(options.file, () => undefined))) records.push(record);
  const platform = options.platform ?? platformFromFileName(options.file);
  const events = febrlEvents(records, platform, {
    salt: loadConfig().IDENTITY_HASH_SALT.reveal(),
    baseTimeMs: options.baseTimeMs,
  });
  return { items: events.map((event) => ({ kind: 'behavior', event })), counts: reader.counts };
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const config = loadConfig();
  const fileBytes = (await stat(options.file)).size;

  // Progress: bytes read for the streamed Online Retail file (the event count is unknown until the end), events for
  // FEBRL (read whole: at most a few thousand records).
  const bar = new cliProgress.SingleBar(
    {
      format: `replaying ${options.dataset} [{bar}] {percentage}% | {events} events | {rate} events/s | ETA {eta_formatted}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let bytesRead = 0;
  let items: AsyncIterable<Item> | Iterable<Item>;
  let total: number;
  let lines: CsvLineCounts;
  if (options.dataset === 'online-retail') {
    ({ items, counts: lines } = onlineRetailItems(options.file, (n) => {
      bytesRead += n;
    }));
    total = fileBytes;
  } else {
    const read = await febrlItems(options);
    const limited = options.limit === undefined ? read.items : read.items.slice(0, options.limit);
    items = limited;
    lines = read.counts;
    total = limited.length;
  }

  const producer = await PlatformProducer.connect(config, { validation: 'schema' });
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(130);
    stopping = true; // finish what is in flight, then print the summary
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  let events = 0;
  let firstEventMs: number | null = null;
  let lastEventMs: number | null = null;
  const started = Date.now();
  const progress = () => {
    const seconds = Math.max((Date.now() - started) / 1000, 0.001);
    const payload = { events, rate: Math.round(events / seconds) };
    bar.update(options.dataset === 'online-retail' ? bytesRead : events, payload);
  };
  const { limit, speed } = options;
  /** The input, paced to `--speed` and cut at `--limit` or Ctrl-C. */
  async function* paced(): AsyncGenerator<Item> {
    for await (const item of items) {
      if (stopping || (limit !== undefined && events >= limit)) return;
      const eventMs = item.event.eventTimeMs;
      firstEventMs ??= eventMs;
      if (speed !== undefined) {
        // Keep wall-clock gaps = event-time gaps / speed, measured from the first event (no drift accumulates).
        const dueMs = started + (eventMs - firstEventMs) / speed;
        const waitMs = dueMs - Date.now();
        if (waitMs > 0) await sleep(waitMs);
      }
      lastEventMs = Math.max(lastEventMs ?? eventMs, eventMs);
      events++;
      if (events % 200 === 0) progress();
      yield item;
    }
  }
  bar.start(total, 0, { events: 0, rate: 0 });
  let counts;
  try {
    counts = await producer.publishAll(paced(), {
      // Schema-only validation refuses only what Avro cannot carry at all; report it and go on.
      onRefused: (item, err) => {
        process.stderr.write(`\n${item.event.eventId}: ${describeError(err)}\n`);
      },
    });
    progress();
  } finally {
    bar.stop();
    await producer.disconnect();
  }
  const { acknowledged, refused } = counts;

  const seconds = (Date.now() - started) / 1000;
  const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
  console.log(
    `events      ${events} (${acknowledged} acknowledged, ${refused} refused)${stopping ? ' — interrupted' : ''}`,
  );
  console.log(
    `lines       ${lines.lines} (${lines.records} records, ${lines.blank} blank, ${lines.bad} bad: skipped, reported above)`,
  );
  console.log(`event time  ${iso(firstEventMs)} .. ${iso(lastEventMs)}`);
  console.log(`seconds     ${seconds.toFixed(1)}`);
  console.log(`events/s    ${Math.round(events / Math.max(seconds, 0.001))}`);
  return refused > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(describeError(err));
    process.exit(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
  },
);
