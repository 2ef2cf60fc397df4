import { describe, expect, it } from 'vitest';
import {
  leadingDescription,
  migrationChecksum,
  parseMigrationFileName,
  splitStatements,
} from '../../clickhouse/sql-text.js';

describe('splitStatements', () => {
  it('splits on a semicolon that ends its line and drops comments', () => {
    const sql = [
      '-- header comment',
      'CREATE TABLE a',
      '(',
      '    x String -- trailing comment',
      ');',
      '',
      '/* block',
      '   comment */',
      'CREATE TABLE b (y UInt8) ENGINE = Memory; -- after the semicolon',
      '',
    ].join('\n');
    expect(splitStatements(sql)).toEqual([
      'CREATE TABLE a\n(\n    x String \n)',
      'CREATE TABLE b (y UInt8) ENGINE = Memory',
    ]);
  });

  it('keeps a semicolon that is not at the end of its line inside the statement', () => {
    expect(splitStatements('SELECT 1; SELECT 2;\n')).toEqual(['SELECT 1; SELECT 2']);
  });

  it('ignores semicolons and comment markers inside literals and quoted identifiers', () => {
    const sql = "SELECT ';\n' AS `a;`, '--no', \"b--\", 'it''s', 'x\\';' FROM t;\nSELECT 2";
    expect(splitStatements(sql)).toEqual([
      "SELECT ';\n' AS `a;`, '--no', \"b--\", 'it''s', 'x\\';' FROM t",
      'SELECT 2',
    ]);
  });

  it('treats text after the last semicolon as a statement and skips empty ones', () => {
    expect(splitStatements('SELECT 1')).toEqual(['SELECT 1']);
    expect(splitStatements(';\n  ;\n-- only a comment\n')).toEqual([]);
    expect(splitStatements('SELECT 1;\r\nSELECT 2;\r\n')).toEqual(['SELECT 1', 'SELECT 2']);
  });

  it('rejects an unterminated literal', () => {
    expect(() => splitStatements("SELECT 'oops;\n")).toThrow(/unterminated/);
  });
});

describe('leadingDescription', () => {
  it('is the first comment line before any SQL', () => {
    expect(leadingDescription('\n-- Revenue per platform\n-- more detail\nSELECT 1')).toBe('Revenue per platform');
    expect(leadingDescription('SELECT 1 -- not a description')).toBe('');
    expect(leadingDescription('--\n--   Spaced out  \nSELECT 1')).toBe('Spaced out');
  });
});

describe('migration files', () => {
  it('parses NNNN_description.sql and nothing else', () => {
    expect(parseMigrationFileName('0001_dimensions.sql')).toEqual({ version: 1, name: '0001_dimensions' });
    expect(parseMigrationFileName('0042_add_x_2.sql')).toEqual({ version: 42, name: '0042_add_x_2' });
    for (const bad of ['0000_zero.sql', '1_short.sql', '0001-dash.sql', '0001_Upper.sql', '0001_x.sql~', 'README.md']) {
      expect(parseMigrationFileName(bad)).toBeUndefined();
    }
  });

  it('checksums statements: comments, indentation and blank lines do not count, SQL does', () => {
    const base = migrationChecksum(splitStatements('-- v1\nCREATE TABLE a\n(\n  x String\n);\n'));
    expect(
      migrationChecksum(splitStatements('-- v2, reworded\n\nCREATE TABLE a\n(\n      x String -- why\n);\n')),
    ).toBe(base);
    expect(migrationChecksum(splitStatements('CREATE TABLE a\n(\n  x UInt8\n);\n'))).not.toBe(base);
    expect(migrationChecksum(['SELECT 1', 'SELECT 2'])).not.toBe(migrationChecksum(['SELECT 1\nSELECT 2']));
  });
});
