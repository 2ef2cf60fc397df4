/**
 * `npm run experiment -- <command>`: the A/B experiments declared in EXPERIMENTS_PATH.
 *
 *   list                                   every declared experiment, what it applies to, and whether it runs now
 *   validate [file]                        checks a declaration file (default EXPERIMENTS_PATH), naming every problem
 *   report <name> [--as-of <time>]         exposures, conversions, rate, lift (95 % CI), p-value, winner or the sample
 *          [--database <name>]             still needed, from the warehouse; the last line is one JSON object
 *   campaign online-retail <file>          the seed's campaign check: top scores held at 00:00 of --from against a random
 *          --from <day> [--size 5000]      group of the same size, 7- and 14-day purchase rates, lift (95 % CI); one
 *          [--seed 1] [--step-days 7]      JSON line last (processors/experiments/campaign.ts)
 *
 * Exit 0 on success, 1 on a failure, 2 on bad arguments or an unknown experiment.
 */
import { parseArgs } from 'node:util';
import { createClickHouse } from '../runtime/clickhouse.js';
import { loadConfig } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { formatCampaign, onlineRetailCampaign } from './campaign.js';
import { activeWindow, isActive } from './definitions.js';
import { loadExperiments } from './load.js';
import { experimentReport } from './report.js';
import { formatReport } from './report-logic.js';

const USAGE = `usage:
  npm run experiment -- list
  npm run experiment -- validate [file]
  npm run experiment -- report <name> [--as-of <ISO-8601 time with zone | date | epoch ms>] [--database <name>]
  npm run experiment -- campaign online-retail <file.csv.gz> --from YYYY-MM-DD [--size 5000] [--seed 1] [--step-days 7]`;

const usage = (message: string) => new AppError('USAGE', `${message}\n${USAGE}`);

function parseInstant(text: string): number {
  const value = text.trim();
  let ms = Number.NaN;
  if (/^\d+$/.test(value)) ms = Number(value);
  else if (/^\d{4}-\d{2}-\d{2}$/.test(value)) ms = Date.parse(`${value}T00:00:00Z`);
  else if (/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:?\d{2})$/i.test(value)) ms = Date.parse(value);
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw usage(`--as-of: expected an ISO-8601 time with a zone, a date or epoch ms, got "${text}"`);
  }
  return ms;
}

function parse(args: readonly string[]) {
  try {
    return parseArgs({
      args: [...args],
      options: {
        'as-of': { type: 'string' },
        database: { type: 'string' },
        from: { type: 'string' },
        size: { type: 'string' },
        seed: { type: 'string' },
        'step-days': { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw usage(describeError(err));
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return;
  }
  const { values, positionals } = parse(rest);
  switch (command) {
    case 'list': {
      const config = loadConfig();
      const now = Date.now();
      for (const e of loadExperiments(config.EXPERIMENTS_PATH)) {
        const { startMs, endMs } = activeWindow(e);
        const when = `${startMs === undefined ? 'open start' : new Date(startMs).toISOString()} → ${endMs === undefined ? 'open end' : new Date(endMs).toISOString()}`;
        const variants = e.variants.map((v) => `${v.name}${v.control ? '*' : ''}:${v.weight}`).join(' ');
        console.log(
          `${e.name}  ${e.appliesTo}  ${e.appliesTo === 'offline-training' ? 'offline' : isActive(e, now) ? 'running' : 'not running'}  ${when}  ${variants}`,
        );
      }
      return;
    }
    case 'validate': {
      const path = positionals[0] ?? loadConfig().EXPERIMENTS_PATH;
      const experiments = loadExperiments(path);
      console.log(`${path}: ${experiments.length} experiments, valid`);
      return;
    }
    case 'report': {
      const name = positionals[0];
      if (name === undefined) throw usage('report needs an experiment name');
      if (positionals.length > 1) throw usage(`unexpected argument ${JSON.stringify(positionals[1])}`);
      const asOfMs = values['as-of'] === undefined ? Date.now() : parseInstant(values['as-of']);
      const config = loadConfig();
      const experiments = loadExperiments(config.EXPERIMENTS_PATH);
      const ch = createClickHouse(config, values.database === undefined ? {} : { database: values.database });
      try {
        const report = await experimentReport(ch, experiments, name, asOfMs);
        for (const line of formatReport(report)) console.log(line);
      } finally {
        await ch.close();
      }
      return;
    }
    case 'campaign': {
      const [dataset, file, extra] = positionals;
      if (dataset !== 'online-retail' || file === undefined || extra !== undefined) {
        throw usage('campaign takes online-retail and the file');
      }
      const from = values.from ?? '';
      const dayMs = /^\d{4}-\d{2}-\d{2}$/.test(from) ? Date.parse(`${from}T00:00:00Z`) : NaN;
      if (!Number.isFinite(dayMs)) throw usage('--from must be a day YYYY-MM-DD');
      const int = (text: string | undefined, fallback: number, flag: string) => {
        const n = text === undefined ? fallback : Number(text);
        if (!Number.isSafeInteger(n) || n < 1) throw usage(`${flag} must be a positive whole number`);
        return n;
      };
      const summary = await onlineRetailCampaign({
        file,
        dayMs,
        size: int(values.size, 5_000, '--size'),
        seed: int(values.seed, 1, '--seed'),
        stepDays: int(values['step-days'], 7, '--step-days'),
      });
      for (const line of formatCampaign(summary)) console.log(line);
      return;
    }
    default:
      throw usage(`unknown command ${JSON.stringify(command)}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const code = err instanceof AppError ? err.code : 'ERROR';
  console.error(`experiment failed [${code}]: ${err instanceof AppError ? err.message : describeError(err)}`);
  process.exitCode = err instanceof AppError && err.code === 'USAGE' ? 2 : 1;
});
