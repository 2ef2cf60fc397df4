/** Pure text rendering of query results for the CLIs (no I/O), unit-tested in test/unit/clickhouse-format-table.test.ts. */

export type Cell = unknown;

/**
 * An aligned plain-text table: a header, a dashed rule, one line per row and a `(n rows)` footer. Numbers are
 * right-aligned and fractions shown with at most 4 decimals; '' stays empty, null shows as NULL.
 * `columns` fixes the column order (and prints a header even with no rows); by default the first row's keys.
 */
export function formatTable(rows: readonly Readonly<Record<string, Cell>>[], columns?: readonly string[]): string {
  const names = columns ?? (rows[0] ? Object.keys(rows[0]) : []);
  const footer = `(${rows.length} ${rows.length === 1 ? 'row' : 'rows'})`;
  if (names.length === 0) return footer;
  const cells = rows.map((row) => names.map((name) => formatCell(row[name])));
  const numeric = names.map((name) => rows.length > 0 && rows.every((row) => isNumeric(row[name])));
  const widths = names.map((name, c) => Math.max(name.length, ...cells.map((line) => (line[c] ?? '').length)));
  const render = (values: readonly string[]) =>
    values
      .map((value, c) => (numeric[c] ? value.padStart(widths[c] ?? 0) : value.padEnd(widths[c] ?? 0)))
      .join('  ')
      .trimEnd();
  return [render(names), render(widths.map((w) => '-'.repeat(w))), ...cells.map(render), footer].join('\n');
}

export function formatCell(value: Cell): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number') {
    if (Number.isInteger(value) || !Number.isFinite(value)) return String(value);
    return String(Number(value.toFixed(4)));
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function isNumeric(value: Cell): boolean {
  return (
    typeof value === 'number' ||
    typeof value === 'bigint' ||
    (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value))
  );
}
