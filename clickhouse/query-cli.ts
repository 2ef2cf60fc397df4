/**
 * `npm run query -- <name> [--json] [--database <name>]`: runs a named query from clickhouse/queries/ and prints an
 * aligned table (or the rows as JSON). Without a name, or with an unknown one, prints the available queries.
 */
import { parseArgs } from 'node:util';
import { createClickHouse } from '../processors/runtime/clickhouse.js';
import { loadConfig } from '../processors/runtime/config.js';
import { AppError, describeError } from '../processors/runtime/errors.js';
import { formatTable } from './format-table.js';
import { listNamedQueries, runNamedQueryWithColumns } from './queries.js';

const USAGE = 'usage: npm run query -- <name> [--json] [--database <name>]';

function printList(): void {
  const queries = listNamedQueries();
  const width = Math.max(...queries.map((q) => q.name.length));
  console.log(`${USAGE}\n\nnamed queries:`);
  for (const q of queries) console.log(`  ${q.name.padEnd(width)}  ${q.description}`);
}

async function main(argv: readonly string[]): Promise<void> {
  let parsed: { values: { json?: boolean; database?: string; help?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        json: { type: 'boolean' },
        database: { type: 'string', short: 'd' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new AppError('USAGE', `${describeError(err)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const [name, ...extra] = positionals;
  if (values.help || name === undefined) {
    printList();
    return;
  }
  if (extra.length > 0) throw new AppError('USAGE', `one query at a time, got ${positionals.join(' ')}\n${USAGE}`);
  const known = listNamedQueries();
  if (!known.some((q) => q.name === name)) {
    console.error(`unknown query: ${name}\n`);
    printList();
    process.exitCode = 2;
    return;
  }

  const config = loadConfig();
  const client = createClickHouse(config, values.database === undefined ? {} : { database: values.database });
  try {
    const result = await runNamedQueryWithColumns(client, name);
    if (values.json) {
      console.log(JSON.stringify(result.rows, null, 2));
    } else {
      console.log(
        formatTable(
          result.rows,
          result.columns.map((c) => c.name),
        ),
      );
    }
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const code = err instanceof AppError ? err.code : 'ERROR';
  console.error(`query failed [${code}]: ${err instanceof AppError ? err.message : describeError(err)}`);
  process.exitCode = err instanceof AppError && err.code === 'USAGE' ? 2 : 1;
});
