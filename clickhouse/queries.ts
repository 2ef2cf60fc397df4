/**
 * Named analyst queries: each clickhouse/queries/<name>.sql holds one SELECT that opens with a `-- <description>` line.
 * They run on ClickHouse 18.16 (one JOIN per SELECT, no CTEs) and read facts with FINAL or argMax, so a re-delivered
 * event leaves every result unchanged, and each returns zero rows or zeros on an empty warehouse.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { AppError } from '../processors/runtime/errors.js';
import { leadingDescription, splitStatements } from './sql-text.js';

/** The folder holding the named query files shipped with the code. */
export const QUERIES_DIR = fileURLToPath(new URL('./queries/', import.meta.url));

export interface NamedQuery {
  /** File name without `.sql`, e.g. `revenue-by-platform`. */
  readonly name: string;
  /** The file's leading `-- ` comment line. */
  readonly description: string;
  /** The single SELECT, comments and trailing `;` removed. */
  readonly sql: string;
}

export type QueryRow = Record<string, unknown>;

const QUERY_NAME = /^[a-z0-9][a-z0-9-]*$/;

/** Every named query, sorted by name. Synchronous: a handful of small files read at startup or per CLI call. */
export function listNamedQueries(dir: string = QUERIES_DIR): NamedQuery[] {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .map((f) => f.slice(0, -'.sql'.length))
    .filter((name) => QUERY_NAME.test(name))
    .sort();
  return names.map((name) => readNamedQuery(name, dir));
}

/** One named query; AppError USAGE when there is no such file. */
export function readNamedQuery(name: string, dir: string = QUERIES_DIR): NamedQuery {
  if (!QUERY_NAME.test(name)) throw new AppError('USAGE', `unknown query ${JSON.stringify(name)}`);
  let text: string;
  try {
    text = readFileSync(join(dir, `${name}.sql`), 'utf8');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') throw new AppError('USAGE', `unknown query ${name}`);
    throw err;
  }
  const statements = splitStatements(text);
  const [sql] = statements;
  if (statements.length !== 1 || sql === undefined) {
    throw new AppError(
      'CONFIG_INVALID',
      `query ${name}.sql must hold exactly one statement, found ${statements.length}`,
    );
  }
  return { name, description: leadingDescription(text), sql };
}

/**
 * Runs a named query in the client's database and returns its rows. 64-bit integers come back as JS numbers
 * (`output_format_json_quote_64bit_integers=0`): counts and minor-unit sums stay far below 2^53.
 */
export async function runNamedQuery(client: ClickHouseClient, name: string): Promise<QueryRow[]> {
  return (await runNamedQueryWithColumns(client, name)).rows;
}

export interface QueryResult {
  /** Result columns in SELECT order with their ClickHouse types; known even when there are no rows. */
  readonly columns: readonly { readonly name: string; readonly type: string }[];
  readonly rows: QueryRow[];
}

/** runNamedQuery plus the result's column names and types (the `JSON` format's `meta`). */
export async function runNamedQueryWithColumns(client: ClickHouseClient, name: string): Promise<QueryResult> {
  const query = readNamedQuery(name);
  const result = await client.query({
    query: query.sql,
    format: 'JSON',
    clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
  });
  const body = await result.json<QueryRow>();
  return { columns: body.meta ?? [], rows: body.data };
}
