/**
 * Reads a CSV input file line by line, so that one bad line is reported with its number and reason and every other
 * line still runs. A streaming CSV parser stops at the first malformed quote (csv-parse: "Invalid Closing Quote" on an
 * unquoted field that starts with a double quote) and does not recover the lines after it, even with
 * skip_records_with_error; parsing each physical line on its own (csv-parse/sync) keeps them. The cost: a quoted field
 * may not contain a line break, which neither FEBRL person files nor Online Retail ever do.
 *
 * What each line can be:
 * - a record: as many fields as the header, valid UTF-8, quoting that closes;
 * - blank (empty or only spaces, CRLF's CR included): skipped and counted, not an error;
 * - bad, reported to `onBadLine` with its 1-based line number: malformed quoting, another number of fields than the
 *   header, bytes that are not UTF-8 (a Latin-1 export, say: convert it with `iconv -f latin1 -t utf-8`).
 * A byte-order mark before the header is dropped; CRLF and LF line ends are both read.
 */
import { parse } from 'csv-parse/sync';

/** A record of a CSV file: header name → field. */
export type CsvRecord = Record<string, string>;

/** A line that could not be read, with its 1-based number in the file. */
export interface BadLine {
  readonly file: string;
  readonly line: number;
  readonly reason: string;
}

/** Counts of one read, so a caller can say how every line of the file was used. */
export interface CsvLineCounts {
  /** Physical lines read, the header's included. */
  lines: number;
  records: number;
  blank: number;
  bad: number;
}

/**
 * One data line under `header`: its record, or why it is not one (malformed quoting, another number of fields).
 * `trim` drops spaces around fields (FEBRL writes `, ` between them).
 */
export function parseCsvLine(
  header: readonly string[],
  text: string,
  options: { trim?: boolean } = {},
): { ok: true; record: CsvRecord } | { ok: false; error: string } {
  let rows: string[][];
  try {
    rows = parse(text, { trim: options.trim ?? false, relax_column_count: true });
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

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The line's text, or why it is not UTF-8 (naming the column of the first byte that is not). */
function decodeLine(bytes: Buffer): { ok: true; text: string } | { ok: false; error: string } {
  try {
    return { ok: true, text: utf8.decode(bytes) };
  } catch {
    const column = bytes.toString('utf8').indexOf('\uFFFD') + 1;
    return { ok: false, error: `not UTF-8 (column ${column}): a Latin-1 file? convert it to UTF-8` };
  }
}

/** Reads a CSV file's lines; see the top of this file. `line` is the number of the last line read. */
export class CsvLineReader {
  readonly counts: CsvLineCounts = { lines: 0, records: 0, blank: 0, bad: 0 };
  private header: string[] | null = null;

  constructor(
    private readonly options: {
      /** The file's name in reports. */
      readonly file: string;
      readonly trim?: boolean;
      readonly onBadLine: (bad: BadLine) => void;
    },
  ) {}

  /** The 1-based number of the last line read (the line of the record just yielded). */
  get line(): number {
    return this.counts.lines;
  }

  /** Reports the record just yielded as bad after all (its caller cannot use a value of it): counted as bad. */
  refuse(reason: string): void {
    this.counts.records--;
    this.report(this.counts.lines, reason);
  }

  private report(line: number, reason: string): void {
    this.counts.bad++;
    this.options.onBadLine({ file: this.options.file, line, reason });
  }

  /** The file's data records in order. @throws Error when the file has no header line, or a header that is not CSV. */
  async *records(input: AsyncIterable<Buffer | string> | Iterable<Buffer | string>): AsyncGenerator<CsvRecord> {
    let rest = Buffer.alloc(0);
    for await (const chunk of input) {
      rest = Buffer.concat([rest, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
      let end: number;
      while ((end = rest.indexOf(0x0a)) >= 0) {
        const record = this.readLine(rest.subarray(0, end));
        rest = rest.subarray(end + 1);
        if (record) yield record;
      }
    }
    if (rest.length > 0) {
      const record = this.readLine(rest);
      if (record) yield record;
    }
    if (!this.header) throw new Error(`${this.options.file}: no header line`);
  }

  private readLine(raw: Buffer): CsvRecord | null {
    const n = ++this.counts.lines;
    let bytes = raw.at(-1) === 0x0d ? raw.subarray(0, -1) : raw;
    if (n === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    const decoded = decodeLine(bytes);
    if (!decoded.ok) {
      if (!this.header) throw new Error(`${this.options.file}:${n}: header line ${decoded.error}`);
      this.report(n, decoded.error);
      return null;
    }
    if (decoded.text.trim() === '') {
      this.counts.blank++;
      return null;
    }
    if (!this.header) {
      try {
        const rows: string[][] = parse(decoded.text, { trim: true });
        this.header = rows[0] ?? [];
      } catch (err) {
        throw new Error(`${this.options.file}:${n}: header line is not CSV: ${String(err)}`);
      }
      return null;
    }
    const parsed = parseCsvLine(this.header, decoded.text, { trim: this.options.trim ?? false });
    if (!parsed.ok) {
      this.report(n, parsed.error);
      return null;
    }
    this.counts.records++;
    return parsed.record;
  }
}
