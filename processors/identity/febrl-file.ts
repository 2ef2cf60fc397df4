/**
 * Reads FEBRL-format CSV files line by line (processors/producers/csv-lines.ts): one bad line (a stray quote, another
 * number of fields, bytes that are not UTF-8) is reported with its number and skipped instead of ending the whole read.
 */
import { createReadStream } from 'node:fs';
import {
  CsvLineReader,
  parseCsvLine,
  type BadLine,
  type CsvLineCounts,
  type CsvRecord,
} from '../producers/csv-lines.js';

export type { BadLine } from '../producers/csv-lines.js';

/**
 * One data line under `header`: its record, or why it is not one (malformed quoting, another number of fields).
 * Values are trimmed, as FEBRL writes `, ` between fields.
 */
export function parseFebrlLine(
  header: readonly string[],
  text: string,
): { ok: true; record: CsvRecord } | { ok: false; error: string } {
  return parseCsvLine(header, text, { trim: true });
}

/**
 * The records of a FEBRL-format file in order (blank lines skipped); every unreadable line goes to `onBadLine`.
 * `counts`, when given, receives how every line was used.
 * @throws Error when the file has no header line.
 */
export async function readFebrlFile(
  path: string,
  onBadLine: (bad: BadLine) => void,
  counts?: (counts: CsvLineCounts) => void,
): Promise<CsvRecord[]> {
  const reader = new CsvLineReader({ file: path, trim: true, onBadLine });
  const records: CsvRecord[] = [];
  for await (const record of reader.records(createReadStream(path))) records.push(record);
  counts?.(reader.counts);
  return records;
}
