// The shipped migrations and named queries: well formed, and free of SQL that ClickHouse 18.16 (Debian's) rejects.
import { describe, expect, it } from 'vitest';
import { loadMigrations } from '../../clickhouse/migrate.js';
import { listNamedQueries } from '../../clickhouse/queries.js';
import { formatTable } from '../../clickhouse/format-table.js';

/** Constructs newer than 18.16, or experimental there (see the stack-provisioning notes, section C). */
const UNSUPPORTED_ON_18_16: readonly [RegExp, string][] = [
  [/\bLowCardinality\s*\(/i, 'LowCardinality (experimental on 18.16)'],
  [/\bDateTime64\b/i, 'DateTime64'],
  [/\bTTL\b/, 'TTL'],
  [/\bMap\s*\(/, 'Map type'],
  [/\bBool\b/, 'Bool type'],
  [/\bOVER\s*\(/i, 'window functions'],
  [/\bINDEX\s+\w+\s+.*\bTYPE\b/i, 'data-skipping indexes'],
  [/\bWITH\s+\w+\s+AS\s*\(\s*SELECT\b/i, 'CTE WITH x AS (SELECT ...)'],
  [/\b(ADD|DROP|MODIFY|CLEAR)\s+COLUMN\s+IF\s+(NOT\s+)?EXISTS\b/i, 'IF [NOT] EXISTS on a column'],
  [/\{\s*\w+\s*:\s*\w+\s*\}/, 'query parameters'],
  [/\bSETTINGS\b(?!\s+index_granularity)/i, 'per-query SETTINGS'],
];

const joinsPerSelect = (sql: string) => {
  // Count JOINs directly in each SELECT level: strip nested parentheses, innermost first.
  let text = sql;
  const counts: number[] = [];
  for (;;) {
    const inner = /\(([^()]*)\)/.exec(text);
    if (!inner) break;
    counts.push((inner[1]?.match(/\bJOIN\b/gi) ?? []).length);
    text = text.slice(0, inner.index) + ' _ ' + text.slice(inner.index + inner[0].length);
  }
  counts.push((text.match(/\bJOIN\b/gi) ?? []).length);
  return Math.max(...counts);
};

describe('migrations', async () => {
  const migrations = await loadMigrations();
  it('are numbered from 0001 without gaps', () => {
    expect(migrations.map((m) => m.version)).toEqual(migrations.map((_, i) => i + 1));
  });
  for (const m of migrations) {
    it(`${m.fileName} runs on 18.16 and names no database`, () => {
      for (const statement of m.statements) {
        for (const [pattern, what] of UNSUPPORTED_ON_18_16) expect(statement, what).not.toMatch(pattern);
        // Creates are re-runnable; ALTER ... ADD COLUMN and DROP ... IF EXISTS evolve what earlier migrations made.
        expect(statement).toMatch(
          /^(CREATE (TABLE|VIEW) IF NOT EXISTS [a-z_][a-z0-9_]*\b|ALTER TABLE [a-z_][a-z0-9_]* ADD COLUMN [a-z_][a-z0-9_]* |DROP TABLE IF EXISTS [a-z_][a-z0-9_]*$)/,
        );
        expect(statement, 'database-qualified name').not.toMatch(/\b(patternos|default)\s*\./);
        expect(joinsPerSelect(statement)).toBeLessThanOrEqual(1);
      }
    });
  }
});

describe('named queries', () => {
  const queries = listNamedQueries();
  it('exist, each with a one-line description', () => {
    expect(queries.map((q) => q.name)).toEqual(
      expect.arrayContaining([
        'counts',
        'platforms-per-customer',
        'cross-platform-share',
        'linked-share',
        'intent-level-distribution',
        'high-intent-by-platform',
        'top-categories-by-intent',
        'platform-overlap',
        'revenue-by-platform',
        'dead-letters-by-reason',
      ]),
    );
    for (const q of queries) expect(q.description, q.name).not.toBe('');
  });
  for (const q of queries) {
    it(`${q.name} is one SELECT with at most one JOIN per level, valid on 18.16`, () => {
      expect(q.sql).toMatch(/^SELECT\b/);
      expect(q.sql).not.toMatch(/;\s*$/);
      for (const [pattern, what] of UNSUPPORTED_ON_18_16) expect(q.sql, what).not.toMatch(pattern);
      expect(joinsPerSelect(q.sql)).toBeLessThanOrEqual(1);
      // Facts are read deduplicated: FINAL on every fact table it reads.
      for (const fact of q.sql.match(/\bFROM\s+(fact_\w+|dead_letter|dim_customer)\b(?!_)(\s+FINAL)?/g) ?? []) {
        expect(fact, `${q.name}: ${fact}`).toMatch(/FINAL$/);
      }
    });
  }
});

describe('formatTable', () => {
  it('aligns columns, right-aligns numbers and rounds fractions', () => {
    const text = formatTable([
      { platform: 'shop_a', customers: 12, share: 0.666666 },
      { platform: 'b', customers: 3, share: 1 },
    ]);
    expect(text.split('\n')).toEqual([
      'platform  customers   share',
      '--------  ---------  ------',
      'shop_a           12  0.6667',
      'b                 3       1',
      '(2 rows)',
    ]);
  });

  it('prints the header of an empty result when the columns are known', () => {
    expect(formatTable([], ['a', 'b'])).toBe('a  b\n-  -\n(0 rows)');
    expect(formatTable([])).toBe('(0 rows)');
  });
});
