/**
 * Pure helpers over .sql files (no I/O): statement splitting, the leading description comment, migration file names
 * and checksums. Shared by migrate.ts and queries.ts, unit-tested in test/unit/clickhouse-sql-text.test.ts.
 */
import { createHash } from 'node:crypto';
import { AppError } from '../processors/runtime/errors.js';

/**
 * Splits a .sql file into statements, one per HTTP request (ClickHouse rejects multi-statement requests). A statement
 * ends at a `;` that is the last thing on its line apart from whitespace and comments. `--` and `/* … *\/` comments are
 * dropped, but not inside '…' strings or `…` / "…" identifiers, so `';'` or `'--'` in a literal is safe. Text after the
 * last `;` is a statement too (a named query may omit it). Blank statements are skipped; each statement is trimmed and
 * keeps its inner line breaks.
 */
export function splitStatements(sql: string): string[] {
  const text = sql.replace(/\r\n?/g, '\n');
  const statements: string[] = [];
  let buf = '';
  /** Index in buf of a top-level `;` followed so far on its line only by whitespace/comments, else -1. */
  let pendingSemicolon = -1;
  let i = 0;

  const endLine = () => {
    if (pendingSemicolon >= 0) {
      const statement = buf.slice(0, pendingSemicolon).trim();
      if (statement.length > 0) statements.push(statement);
      buf = '';
      pendingSemicolon = -1;
    } else {
      buf += '\n';
    }
  };

  while (i < text.length) {
    const ch = text[i] as string;
    const next = text[i + 1];
    if (ch === '-' && next === '-') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end; // the newline itself is handled on the next pass
      continue;
    }
    if (ch === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end === -1) throw new AppError('CONFIG_INVALID', 'unterminated /* comment in SQL');
      const comment = text.slice(i, end + 2);
      // A block comment spanning lines ends the line the `;` was on.
      if (comment.includes('\n')) endLine();
      else buf += ' ';
      i = end + 2;
      continue;
    }
    if (ch === '\n') {
      endLine();
      i += 1;
      continue;
    }
    if (ch === "'" || ch === '`' || ch === '"') {
      const end = closingQuote(text, i);
      if (end === -1)
        throw new AppError('CONFIG_INVALID', `unterminated ${ch} quote in SQL near: ${text.slice(i, i + 40)}`);
      buf += text.slice(i, end + 1);
      pendingSemicolon = -1;
      i = end + 1;
      continue;
    }
    if (ch === ';') {
      pendingSemicolon = buf.length;
      buf += ch;
      i += 1;
      continue;
    }
    if (ch.trim() !== '') pendingSemicolon = -1;
    buf += ch;
    i += 1;
  }
  endLine();
  const rest = buf.trim();
  if (rest.length > 0) statements.push(rest);
  return statements;
}

/** Index of the quote closing the one at `start`; handles backslash escapes and doubled quotes. -1 if none. */
function closingQuote(text: string, start: number): number {
  const quote = text[start];
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\\') {
      i += 2;
      continue;
    }
    if (ch === quote) {
      if (text[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i;
    }
    i += 1;
  }
  return -1;
}

/** The text of the first `-- ` comment line before any SQL, trimmed; '' when the file does not start with one. */
export function leadingDescription(sql: string): string {
  for (const raw of sql.replace(/\r\n?/g, '\n').split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (!line.startsWith('--')) return '';
    const text = line.replace(/^-+/, '').trim();
    if (text !== '') return text;
  }
  return '';
}

export interface MigrationFileName {
  readonly version: number;
  /** The file name without `.sql`, e.g. `0001_dimensions`: the `name` recorded in schema_migrations. */
  readonly name: string;
}

const MIGRATION_FILE = /^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$/;

/** Parses `NNNN_description.sql`; undefined for anything else (README, editor backups). */
export function parseMigrationFileName(fileName: string): MigrationFileName | undefined {
  const match = MIGRATION_FILE.exec(fileName);
  if (!match?.[1]) return undefined;
  const version = Number(match[1]);
  if (version === 0) return undefined;
  return { version, name: fileName.slice(0, -'.sql'.length) };
}

/**
 * sha256 of the statements a migration runs (as splitStatements returns them), with each line trimmed and blank lines
 * dropped: editing comments, indentation or blank lines is not a change, editing any SQL token is.
 */
export function migrationChecksum(statements: readonly string[]): string {
  const hash = createHash('sha256');
  for (const statement of statements) {
    const lines = statement
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '');
    hash.update(lines.join('\n')).update('\n;\n');
  }
  return hash.digest('hex');
}
