/**
 * `npm run hostile -- [--raw N] [--files N] [--api N]`: runs the hostile-input corpus (processors/tools/hostile.ts)
 * through every door of the configured stack on a scratch run (its own topics, keys and database, removed afterwards)
 * and prints, per door, records sent, processed, refused by reason, lost, misjudged, crashes and hangs, then one JSON
 * line. Exits 1 when anything was lost, misjudged, altered, crashed or hung.
 */
import { parseArgs } from 'node:util';
import { AppError, describeError } from '../runtime/errors.js';
import { DEFAULT_SIZES, formatReport, runHostile } from './hostile.js';
import { releaseOnInterrupt } from './interrupt.js';

const USAGE = 'usage: npm run hostile -- [--raw N] [--files N] [--api N]';

function count(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new AppError('USAGE', `--${name} must be an integer >= 0\n${USAGE}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  releaseOnInterrupt(); // an interrupted run removes its scratch topics, keys and database
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        raw: { type: 'string' },
        files: { type: 'string' },
        api: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new AppError('USAGE', `${describeError(err)}\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const sizes = {
    raw: count(values.raw, DEFAULT_SIZES.raw, 'raw'),
    files: count(values.files, DEFAULT_SIZES.files, 'files'),
    api: count(values.api, DEFAULT_SIZES.api, 'api'),
  };
  const report = await runHostile({
    sizes,
    log: (line) => {
      console.error(line);
    },
  });
  for (const line of formatReport(report)) console.log(line);
  console.log(JSON.stringify({ seconds: report.seconds, problems: report.problems.length, doors: report.doors }));
  return report.problems.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(describeError(err));
    process.exit(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
  },
);
