/**
 * `npm run generate -- [--seed N] [--customers N] [--out DIR] [--produce]`: generates the synthetic multi-platform
 * data set (processors/producers/generate.ts) and writes `transactions.jsonl`, `behaviors.jsonl` and
 * `ground_truth.csv` to DIR (default out/generated), then prints its counts. With `--produce` it also publishes every
 * event through the platform producer library, merged in event-time order, with full validation.
 *
 * Email and phone hashes use IDENTITY_HASH_SALT from the environment (loadConfig), so a generated file matches what
 * the processors of the same deployment compute.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadConfig } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { generateSample, summarizeSample, type GeneratedSample } from './generate.js';
import { PlatformProducer, type PlatformEvent } from './platform-producer.js';

const USAGE = 'usage: npm run generate -- [--seed N] [--customers N] [--out DIR] [--produce]';

function intOption(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min)
    throw new AppError('USAGE', `--${name} must be an integer >= ${min}\n${USAGE}`);
  return n;
}

function jsonl(events: readonly unknown[]): string {
  return events.map((e) => JSON.stringify(e)).join('\n') + (events.length > 0 ? '\n' : '');
}

function groundTruthCsv(sample: GeneratedSample): string {
  // Platform ids, customer ids and person ids never contain commas or quotes, so no quoting is needed.
  const rows = sample.groundTruth.map((r) => `${r.platform},${r.platformCustomerId},${r.personId}`);
  return ['platform,platform_customer_id,person_id', ...rows].join('\n') + '\n';
}

/** Transactions and behaviors merged by event time (a transaction after the PURCHASE click of the same instant). */
function* inEventTimeOrder(sample: GeneratedSample): Generator<PlatformEvent> {
  let t = 0;
  let b = 0;
  const { transactions, behaviors } = sample;
  while (t < transactions.length || b < behaviors.length) {
    const tx = transactions[t];
    const ev = behaviors[b];
    if (tx && (!ev || tx.eventTimeMs < ev.eventTimeMs)) {
      yield { kind: 'transaction', event: tx };
      t++;
    } else if (ev) {
      yield { kind: 'behavior', event: ev };
      b++;
    }
  }
}

async function produce(sample: GeneratedSample): Promise<number> {
  const producer = await PlatformProducer.connect(loadConfig());
  const total = sample.transactions.length + sample.behaviors.length;
  const bar = new cliProgress.SingleBar(
    { format: 'producing [{bar}] {percentage}% | {value}/{total} events | ETA {eta_formatted}', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  bar.start(total, 0);
  let counts;
  try {
    counts = await producer.publishAll(inEventTimeOrder(sample), {
      onAcknowledged: () => {
        bar.increment();
      },
      onRefused: (item, err) => {
        bar.increment();
        // Generated events are valid by construction: a refusal is a bug worth seeing immediately.
        process.stderr.write(`\n${item.event.eventId}: ${describeError(err)}\n`);
      },
    });
  } finally {
    bar.stop();
    await producer.disconnect();
  }
  const { acknowledged: sent, refused: failed } = counts;
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `produced ${sent} events (${failed} refused) in ${seconds.toFixed(1)} s (${Math.round(sent / Math.max(seconds, 0.001))} events/s)`,
  );
  return failed > 0 ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        seed: { type: 'string' },
        customers: { type: 'string' },
        out: { type: 'string', default: join('out', 'generated') },
        produce: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new AppError('USAGE', `${describeError(err)}\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const config = loadConfig();
  const seed = intOption('seed', values.seed, 0);
  const customers = intOption('customers', values.customers, 1);
  const started = Date.now();
  const sample = generateSample({
    salt: config.IDENTITY_HASH_SALT.reveal(),
    ...(seed === undefined ? {} : { seed }),
    // Keep the default transaction density (~3.1 per person) when the population is scaled.
    ...(customers === undefined ? {} : { customers, targetTransactions: Math.round((customers * 3891) / 1247) }),
  });

  const out = values.out;
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'transactions.jsonl'), jsonl(sample.transactions));
  await writeFile(join(out, 'behaviors.jsonl'), jsonl(sample.behaviors));
  await writeFile(join(out, 'ground_truth.csv'), groundTruthCsv(sample));

  const s = summarizeSample(sample);
  const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());
  console.log(`seed                 ${seed ?? 42}`);
  console.log(`persons              ${s.persons}`);
  console.log(`accounts             ${s.accounts}`);
  console.log(`platforms            ${s.platforms}`);
  console.log(`cross-platform share ${(s.crossPlatformShare * 100).toFixed(1)}% of persons`);
  console.log(`transactions         ${s.transactions} (${s.purchases} purchases, ${s.returns} returns)`);
  console.log(`behavior events      ${s.behaviorEvents}`);
  console.log(`event time           ${iso(s.firstEventTimeMs)} .. ${iso(s.lastEventTimeMs)}`);
  console.log(`written to           ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  return values.produce ? produce(sample) : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(describeError(err));
    process.exit(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
  },
);
