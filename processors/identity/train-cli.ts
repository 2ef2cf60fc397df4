/**
 * `npm run identity:train -- --out <model.json> <file.csv> [<file2.csv> ...]` trains the identity match model by EM
 * (processors/identity/model.ts, unsupervised: the files' ids are never read as labels) on FEBRL-format person files,
 * writes the model JSON and prints the m/u table.
 *
 * `npm run identity:train -- --out processors/identity/model.json --generated [--seed N] [--customers N]` trains on
 * the synthetic sample of processors/producers/generate.ts instead: that is how the committed default model is made.
 *
 * FEBRL files become records exactly as the replay maps them (febrlEvents in processors/producers/replay.ts, platform
 * = file name, hashes salted with IDENTITY_HASH_SALT from the environment), so the model sees what the processor sees.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { generateSample } from '../producers/generate.js';
import { febrlEvents, platformFromFileName } from '../producers/replay.js';
import { loadConfig } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { ATTRIBUTES, LEVELS } from './compare.js';
import { readFebrlFile } from './febrl-file.js';
import { trainEmWithReport, type MatchModel } from './model.js';
import { mergeRecord, toIdentityRecord } from './record.js';
import type { IdentityRecord } from './types.js';

const USAGE =
  'usage: npm run identity:train -- --out <model.json> <file.csv> [<file2.csv> ...]\n' +
  '       npm run identity:train -- --out <model.json> --generated [--seed N] [--customers N]';

/** Event times of replayed FEBRL records start here (as in replay-cli), so age groups do not depend on the clock. */
export const FEBRL_BASE_TIME_MS = Date.parse('2026-01-01T00:00:00Z');

/** FEBRL-format files → identity records in file order, file after file (platform = file name). */
export async function readFebrlRecords(paths: readonly string[], salt: string): Promise<IdentityRecord[]> {
  const records: IdentityRecord[] = [];
  for (const path of paths) {
    // Line by line: a bad line is reported with its number and the rest of the file still trains the model.
    const rows = await readFebrlFile(path, (bad) => {
      console.error(`${bad.file}:${bad.line}: skipped: ${bad.reason}`);
    });
    const platform = platformFromFileName(path);
    for (const event of febrlEvents(rows, platform, { salt, baseTimeMs: FEBRL_BASE_TIME_MS })) {
      if (event.identity && event.platformCustomerId !== null) {
        records.push(toIdentityRecord(platform, event.platformCustomerId, event.identity));
      }
    }
  }
  return records;
}

/**
 * The platform identities of a generated sample, each merged over its events in event-time order (latest non-null
 * value per field wins, as in the processor), in order of first appearance. The ground truth is not used.
 */
export function generatedRecords(salt: string, options: { seed?: number; customers?: number } = {}): IdentityRecord[] {
  const sample = generateSample({ salt, ...options });
  const events = [...sample.behaviors, ...sample.transactions].sort(
    (a, b) => a.eventTimeMs - b.eventTimeMs || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0),
  );
  const byKey = new Map<string, IdentityRecord>();
  for (const event of events) {
    if (!event.identity || event.platformCustomerId === null) continue;
    const next = toIdentityRecord(event.platform, event.platformCustomerId, event.identity);
    byKey.set(next.key, mergeRecord(byKey.get(next.key), next));
  }
  return [...byKey.values()];
}

/** The m/u table as aligned text: one line per attribute level with m, u and the weight log2(m/u). */
export function formatModel(model: MatchModel): string {
  const lines = [
    `version ${model.version}  prior ${model.prior.toExponential(3)}  threshold ${model.threshold}`,
    `${'attribute'.padEnd(18)} ${'level'.padEnd(30)} ${'m'.padStart(9)} ${'u'.padStart(9)} ${'log2(m/u)'.padStart(9)}`,
  ];
  for (const attr of ATTRIBUTES) {
    const params = model.attributes[attr];
    LEVELS[attr].forEach((level, l) => {
      const m = params?.m[l] ?? Number.NaN;
      const u = params?.u[l] ?? Number.NaN;
      lines.push(
        `${attr.padEnd(18)} ${level.padEnd(30)} ${m.toFixed(6).padStart(9)} ${u.toFixed(6).padStart(9)} ${Math.log2(
          m / u,
        )
          .toFixed(2)
          .padStart(9)}`,
      );
    });
  }
  return lines.join('\n');
}

/** The model as JSON laid out the way prettier formats it (one line per m or u), so a retrained file stays clean. */
export function modelJson(model: MatchModel): string {
  // One line per m or u while it fits prettier's 120 columns, else the numbers on a line of their own, as prettier does.
  const line = (key: string, xs: readonly number[], comma: string) => {
    const numbers = xs.map((x) => JSON.stringify(x)).join(', ');
    const flat = `      "${key}": [${numbers}]${comma}`;
    return flat.length <= 120 ? flat : `      "${key}": [\n        ${numbers}\n      ]${comma}`;
  };
  const attributes = Object.entries(model.attributes).map(
    ([name, { m, u }]) => `    ${JSON.stringify(name)}: {\n${line('m', m, ',')}\n${line('u', u, '')}\n    }`,
  );
  return [
    '{',
    `  "version": ${JSON.stringify(model.version)},`,
    `  "prior": ${JSON.stringify(model.prior)},`,
    `  "threshold": ${JSON.stringify(model.threshold)},`,
    '  "attributes": {',
    attributes.join(',\n'),
    model.termFrequencies ? '  },' : '  }',
    // Term-frequency tables (one value per line, as prettier lays out a JSON object written expanded).
    ...(model.termFrequencies
      ? [`  "termFrequencies": ${JSON.stringify(model.termFrequencies, null, 2).replace(/\n/g, '\n  ')}`]
      : []),
    '}',
    '',
  ].join('\n');
}

function intOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new AppError('USAGE', `--${name} must be an integer >= 1\n${USAGE}`);
  return n;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string' },
        generated: { type: 'boolean', default: false },
        seed: { type: 'string' },
        customers: { type: 'string' },
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
  if (!values.out) throw new AppError('USAGE', `--out is required\n${USAGE}`);
  if (values.generated === positionals.length > 0) {
    throw new AppError('USAGE', `give either FEBRL files or --generated\n${USAGE}`);
  }
  const salt = loadConfig().IDENTITY_HASH_SALT.reveal();
  const records = values.generated
    ? generatedRecords(salt, {
        seed: intOption('seed', values.seed),
        customers: intOption('customers', values.customers),
      })
    : await readFebrlRecords(positionals, salt);

  const started = performance.now();
  const { model, report } = trainEmWithReport(records);
  const seconds = (performance.now() - started) / 1000;
  await writeFile(values.out, modelJson(model));
  console.log(formatModel(model));
  console.log(JSON.stringify({ ...report, seconds: Number(seconds.toFixed(2)), out: values.out }));
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(describeError(err));
      process.exitCode = err instanceof AppError && err.code === 'USAGE' ? 2 : 1;
    },
  );
}
