/**
 * `npm run identity:messy -- --out <file.csv> [--seed N] [--people N] [--broken-lines N]` writes the messy person-record
 * benchmark of messy-logic.ts as a FEBRL-format CSV (what `npm run identity:eval` reads) and prints what it holds.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AppError, describeError } from '../runtime/errors.js';
import { generateMessy, messyCsv } from './messy-logic.js';

const USAGE = 'usage: npm run identity:messy -- --out <file.csv> [--seed N] [--people N] [--broken-lines N]';

function count(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new AppError('USAGE', `--${name} must be a non-negative integer\n${USAGE}`);
  return n;
}

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      seed: { type: 'string' },
      people: { type: 'string' },
      'broken-lines': { type: 'string' },
    },
  });
  if (!values.out) throw new AppError('USAGE', USAGE);
  const dataset = generateMessy({
    seed: count(values.seed, 'seed', 1),
    people: count(values.people, 'people', 5_000),
    brokenLines: count(values['broken-lines'], 'broken-lines', 0),
  });
  writeFileSync(values.out, messyCsv(dataset));
  console.log(
    JSON.stringify({
      out: values.out,
      records: dataset.rows.length,
      people: dataset.people,
      households: dataset.households,
      largestCluster: dataset.largestCluster,
      brokenLines: dataset.brokenRows.size,
    }),
  );
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exit(main(process.argv.slice(2)));
  } catch (err) {
    console.error(describeError(err));
    process.exit(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
  }
}
