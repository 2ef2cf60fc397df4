// Command-line input files read line by line: a bad line is reported with its number and reason, the rest still runs.
import { describe, expect, it } from 'vitest';
import { CsvLineReader, type BadLine, type CsvRecord } from '../../processors/producers/csv-lines.js';
import { onlineRetailFile } from '../../processors/producers/replay.js';
import type { Transaction } from '../../schemas/generated/types.js';

function* chunks(bytes: Buffer, size = 7): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size); // lines cut across chunks
}

describe('CsvLineReader', () => {
  it('reads BOM, CRLF and blank lines, and reports stray quotes, wrong column counts and Latin-1 bytes', async () => {
    const file = Buffer.concat([
      Buffer.from('\uFEFFa,b,c\r\n1,2,3\r\n\r\n   \n"x" y,2,3\n4,5\n6,7,8,9\n'),
      Buffer.from([0x4a, 0x6f, 0xe9, 0x2c, 0x32, 0x2c, 0x33, 0x0a]), // "Jo\xe9,2,3": Latin-1 é
      Buffer.from('"q, r",é😀\u200f,\u202e\n7,8,9'), // no final newline
    ]);
    const bad: BadLine[] = [];
    const reader = new CsvLineReader({ file: 'f.csv', onBadLine: (b) => bad.push(b) });
    const records: CsvRecord[] = [];
    for await (const r of reader.records(chunks(file))) records.push(r);
    expect(records).toEqual([
      { a: '1', b: '2', c: '3' },
      { a: 'q, r', b: 'é😀\u200f', c: '\u202e' },
      { a: '7', b: '8', c: '9' },
    ]);
    expect(bad.map((b) => [b.line, b.reason.slice(0, 24)])).toEqual([
      [5, expect.stringMatching(/quote/i)],
      [6, '2 fields, the header has'],
      [7, '4 fields, the header has'],
      [8, 'not UTF-8 (column 3): a '],
    ]);
    expect(reader.counts).toEqual({ lines: 10, records: 3, blank: 2, bad: 4 });
  });

  it('refuses a file without a header', async () => {
    const reader = new CsvLineReader({ file: 'e.csv', onBadLine: () => undefined });
    await expect(reader.records(chunks(Buffer.from('\n\n'))).next()).rejects.toThrow('e.csv: no header line');
  });
});

describe('onlineRetailFile', () => {
  it('reports a row with an unreadable quantity and goes on with the next', async () => {
    const csv = [
      'InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country',
      '536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom',
      '536366,22633,HAND WARMER,six,2010-12-01 08:28:00,1.85,17850.0,United Kingdom',
      '536367,84879,"ASSORTED ""BIRD"" ORNAMENT",32,2010-12-01 08:34:00,1.69,13047.0,United Kingdom',
    ].join('\n');
    const bad: BadLine[] = [];
    const { transactions, counts } = onlineRetailFile(chunks(Buffer.from(csv)), {
      file: 'r.csv',
      onBadLine: (b) => bad.push(b),
    });
    const txs: Transaction[] = [];
    for await (const tx of transactions) txs.push(tx);
    expect(txs.map((t) => t.orderId)).toEqual(['536365', '536367']);
    expect(bad).toEqual([{ file: 'r.csv', line: 3, reason: 'invoice 536366: Quantity "six" is not an integer' }]);
    expect(counts).toEqual({ lines: 4, records: 2, blank: 0, bad: 1 });
  });
});
