/**
 * Reads FEBRL-format CSV files line by line so that one bad line is reported with its number and skipped instead of
 * ending the whole read. csv-parse in streaming mode stops at the first malformed quote ("Invalid Closing Quote" on an
 * unquoted field that starts with a double quote) and, even with skip_records_with_error, does not recover the lines
 * after it; parsing each physical line on its own (csv-parse/sync) keeps every other line. The cost: a quoted field may
 * not contain a line break, which FEBRL-format person files never do.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parse } from 'csv-parse/sync';
import type { CsvRecord } from '../producers/replay.js';

/** A line that could not be read, with its 1-based number in the file. */
export interface BadLine {
  readonly file: string;
  readonly line: number;
  readonly reason: string;
}

/**
 * One data line under `header`: its record, or why it is not one (malformed quoting, another number of fields).
 * Values are trimmed, as FEBRL writes `, ` between fields.
 */
export function parseFebrlLine(
  header: readonly string[],
  text: string,
): { ok: true; record: CsvRecord } | { ok: false; error: string } {
  let rows: string[][];
  try {
    rows = parse(text, { trim: true, relax_column_count: true });
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  const [fields, extra] = rows;
  if (!fields || extra) return { ok: false, error: 'not one record' };
  if (fields.length !== header.length) {
    return { ok: false, error: `${fields.length} fields, the header has ${header.length}` };
  }
  return { ok: true, record: Object.fromEntries(header.map((name, i) => [name, fields[i] ?? ''])) };
}

/**
 * The records of a FEBRL-format file in order (blank lines skipped); every unreadable line goes to `onBadLine`.
 * @throws Error when the file has no header line.
 */
export async function readFebrlFile(path: string, onBadLine: (bad: BadLine) => void): Promise<CsvRecord[]> {
  const lines = createInterface({ input: createReadStream(path, 'utf8'), crlfDelay: Infinity });
  const records: CsvRecord[] = [];
  let header: string[] | null = null;
  let n = 0;
  for await (const raw of lines) {
    n++;
    const text = n === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (text.trim() === '') continue;
    if (!header) {
      header = parse(text, { trim: true })[0] ?? [];
      continue;
    }
    const parsed = parseFebrlLine(header, text);
    if (parsed.ok) records.push(parsed.record);
    else onBadLine({ file: path, line: n, reason: parsed.error });
  }
  if (!header) throw new Error(`${path}: no header line`);
  return records;
}
