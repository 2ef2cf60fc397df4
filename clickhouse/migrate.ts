/**
 * Applies clickhouse/migrations/NNNN_description.sql in version order and records each in `schema_migrations`.
 *
 * - One statement per HTTP request (ClickHouse refuses multi-statement requests); files are split by splitStatements.
 * - ClickHouse DDL is not transactional: a file that fails halfway is re-run from its first statement next time, which
 *   is why migrations use `CREATE … IF NOT EXISTS`. A file is recorded only after all its statements succeeded.
 * - Applied migrations are immutable: a changed checksum stops the run (CONFIG_INVALID) before anything is applied.
 * - Migrations name no database: their tables land in the database the client is bound to, so tests can migrate a
 *   random database. The client from `createClickHouse(config, { database })` is the expected one; a client bound to
 *   no database (`database: null`) also works (the run then uses a session with `USE <database>`).
 */
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import {
  clickHouseErrorCode,
  isTransientClickHouseError,
  quoteIdentifier,
  quoteString,
  siblingClickHouse,
} from '../processors/runtime/clickhouse.js';
import { AppError, describeError } from '../processors/runtime/errors.js';
import { migrationChecksum, parseMigrationFileName, splitStatements } from './sql-text.js';

/** The folder holding the migration files shipped with the code. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

export interface Migration {
  readonly version: number;
  /** File name without `.sql`, as recorded in schema_migrations.name. */
  readonly name: string;
  readonly fileName: string;
  readonly statements: readonly string[];
  /** migrationChecksum(statements): comments and blank lines may change, SQL may not. */
  readonly checksum: string;
}

export interface MigrateResult {
  /** File names applied by this run, in order. */
  readonly applied: string[];
  /** File names already recorded as applied (and unchanged). */
  readonly skipped: string[];
}

export type MigrateLog = (message: string) => void;

export interface MigrateOptions {
  /** @default MIGRATIONS_DIR */
  readonly migrationsDir?: string;
}

const PLAIN_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Reads and validates every `NNNN_description.sql` in `dir`, sorted by version. Other files are ignored. */
export async function loadMigrations(dir: string = MIGRATIONS_DIR): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const fileName of (await readdir(dir)).sort()) {
    if (!fileName.endsWith('.sql')) continue;
    const parsed = parseMigrationFileName(fileName);
    if (!parsed) {
      throw new AppError('CONFIG_INVALID', `migration file ${fileName} is not named NNNN_description.sql (NNNN > 0)`);
    }
    const statements = splitStatements(await readFile(join(dir, fileName), 'utf8'));
    if (statements.length === 0) throw new AppError('CONFIG_INVALID', `migration ${fileName} has no statements`);
    migrations.push({ ...parsed, fileName, statements, checksum: migrationChecksum(statements) });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    const [previous, current] = [migrations[i - 1], migrations[i]];
    if (previous && current && previous.version === current.version) {
      throw new AppError('CONFIG_INVALID', `migrations ${previous.fileName} and ${current.fileName} share a version`);
    }
  }
  return migrations;
}

/**
 * Creates `database` if missing, then `schema_migrations`, then applies pending migrations in order.
 * `client` should be bound to `database` (createClickHouse(config, { database })) or to none.
 * @throws AppError CONFIG_INVALID when an applied migration's file changed, or a migration statement fails for a
 *   reason retrying cannot fix; DEPENDENCY_UNAVAILABLE when ClickHouse is unreachable or overloaded.
 */
export async function migrate(
  client: ClickHouseClient,
  database: string,
  log: MigrateLog = () => undefined,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  if (!PLAIN_IDENTIFIER.test(database)) {
    throw new AppError('USAGE', `database must be a plain identifier, got ${JSON.stringify(database)}`);
  }
  const migrations = await loadMigrations(options.migrationsDir);
  await guard('create the database', () => ensureDatabase(client, database));
  const run = await guard('open a migration connection', () => openRunner(client, database));

  await guard('create schema_migrations', () =>
    run.command(
      `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version`,
    ),
  );
  const recorded = await guard('read schema_migrations', () =>
    run.select<{ version: number | string; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version',
    ),
  );

  // Check every recorded migration before applying anything, so a tampered history never gets half a new run.
  const byVersion = new Map(migrations.map((m) => [m.version, m]));
  const appliedVersions = new Set<number>();
  for (const row of recorded) {
    const version = Number(row.version);
    appliedVersions.add(version);
    const file = byVersion.get(version);
    if (!file) {
      log(`warning: schema_migrations has version ${version} (${row.name}) but there is no such file`);
      continue;
    }
    if (file.checksum !== row.checksum) {
      throw new AppError(
        'CONFIG_INVALID',
        `migration ${file.fileName} changed after it was applied to ${database} as ${row.name} ` +
          `(checksum ${row.checksum.slice(0, 12)}… recorded, ${file.checksum.slice(0, 12)}… now): applied migrations ` +
          'are immutable; revert the edit and add a new migration instead',
      );
    }
    if (file.name !== row.name) log(`note: ${file.fileName} was applied under the name ${row.name}`);
  }

  const applied: string[] = [];
  const skipped: string[] = [];
  for (const migration of migrations) {
    if (appliedVersions.has(migration.version)) {
      skipped.push(migration.fileName);
      continue;
    }
    log(
      `applying ${migration.fileName} (${migration.statements.length} statement${migration.statements.length === 1 ? '' : 's'}) to ${database}`,
    );
    for (const [index, statement] of migration.statements.entries()) {
      await guard(`apply ${migration.fileName} statement ${index + 1}`, () => run.command(statement));
    }
    await guard(`record ${migration.fileName}`, () =>
      run.command(
        `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ` +
          `(${migration.version}, ${quoteString(migration.name)}, ${quoteString(migration.checksum)}, now())`,
      ),
    );
    applied.push(migration.fileName);
  }
  return { applied, skipped };
}

interface Runner {
  command(sql: string): Promise<void>;
  select<T>(sql: string): Promise<T[]>;
}

/**
 * `CREATE DATABASE` cannot go through a client bound to the missing database (the server rejects the request's
 * `database` parameter first), so a createClickHouse client lends its config to an unbound sibling.
 */
async function ensureDatabase(client: ClickHouseClient, database: string): Promise<void> {
  const query = `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}`;
  const unbound = siblingClickHouse(client, null);
  try {
    await (unbound ?? client).command({ query });
  } catch (err) {
    if (!unbound && clickHouseErrorCode(err) === 81) {
      throw new AppError(
        'USAGE',
        `cannot create database ${database} through a client bound to a missing database: ` +
          'pass a client from createClickHouse() or create the database first',
        { cause: err },
      );
    }
    throw err;
  } finally {
    await unbound?.close();
  }
}

/** Runs statements in `database`: directly when the client is bound to it, else in a session after `USE`. */
async function openRunner(client: ClickHouseClient, database: string): Promise<Runner> {
  const direct: Runner = {
    command: async (sql) => {
      await client.command({ query: sql });
    },
    select: async <T>(sql: string) => (await client.query({ query: sql, format: 'JSONEachRow' })).json<T>(),
  };
  if ((await currentDatabase(direct)) === database) return direct;

  const session_id = `patternos-migrate-${randomUUID()}`;
  const session: Runner = {
    command: async (sql) => {
      await client.command({ query: sql, session_id });
    },
    select: async <T>(sql: string) => (await client.query({ query: sql, format: 'JSONEachRow', session_id })).json<T>(),
  };
  await session.command(`USE ${quoteIdentifier(database)}`);
  const current = await currentDatabase(session);
  if (current !== database) {
    throw new AppError(
      'USAGE',
      `the client is bound to database ${current}, not ${database}: create it with createClickHouse(config, { database })`,
    );
  }
  return session;
}

async function currentDatabase(run: Runner): Promise<string> {
  const [row] = await run.select<{ db: string }>('SELECT currentDatabase() AS db');
  return row?.db ?? '';
}

/** Gives ClickHouse failures a code: transient ones are DEPENDENCY_UNAVAILABLE, the rest a broken migration. */
async function guard<T>(step: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (err) {
    if (err instanceof AppError) throw err;
    const code = isTransientClickHouseError(err) ? 'DEPENDENCY_UNAVAILABLE' : 'CONFIG_INVALID';
    throw new AppError(code, `migrate: could not ${step}: ${describeError(err)}`, { cause: err });
  }
}
