/**
 * `npm run migrate [-- --database <name>]`: applies pending ClickHouse migrations to CLICKHOUSE_DATABASE (or the
 * given database), creating it if missing, and prints what was applied and skipped.
 */
import { parseArgs } from 'node:util';
import { createClickHouse } from '../processors/runtime/clickhouse.js';
import { loadConfig } from '../processors/runtime/config.js';
import { AppError, describeError } from '../processors/runtime/errors.js';
import { migrate } from './migrate.js';

const USAGE = 'usage: npm run migrate [-- --database <name>]';

async function main(argv: readonly string[]): Promise<void> {
  let values: { database?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { database: { type: 'string', short: 'd' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    throw new AppError('USAGE', `${describeError(err)}\n${USAGE}`);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const config = loadConfig();
  const database = values.database ?? config.CLICKHOUSE_DATABASE;
  const client = createClickHouse(config, { database });
  try {
    const result = await migrate(client, database, (message) => {
      console.log(message);
    });
    for (const file of result.applied) console.log(`applied  ${file}`);
    for (const file of result.skipped) console.log(`skipped  ${file} (already applied)`);
    console.log(`${database}: ${result.applied.length} applied, ${result.skipped.length} skipped`);
  } catch (err) {
    if (err instanceof AppError && err.code === 'DEPENDENCY_UNAVAILABLE') {
      throw new AppError(
        err.code,
        `${err.message}\nis ClickHouse up at ${config.CLICKHOUSE_URL}? (npm run stack -- up)`,
      );
    }
    throw err;
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const code = err instanceof AppError ? err.code : 'ERROR';
  console.error(`migrate failed [${code}]: ${err instanceof AppError ? err.message : describeError(err)}`);
  process.exitCode = err instanceof AppError && err.code === 'USAGE' ? 2 : 1;
});
