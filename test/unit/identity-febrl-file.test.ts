import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFebrlLine, readFebrlFile, type BadLine } from '../../processors/identity/febrl-file.js';

describe('readFebrlFile', () => {
  it('skips unreadable lines, reporting their numbers, and keeps every other line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'febrl-'));
    const file = join(dir, 'people.csv');
    writeFileSync(
      file,
      [
        '\uFEFFrec_id, given_name, surname',
        'rec-1-org, ada, lovelace',
        'rec-2-org, "bob" jr, smith', // an unquoted field starting with a quote: "Invalid Closing Quote"
        '',
        'rec-3-org, "grace, hopper"',
        'rec-4-org, alan', // one field short
        'rec-5-org, "mary, ann", "o\'brien"',
      ].join('\n'),
    );
    const bad: BadLine[] = [];
    const rows = await readFebrlFile(file, (b) => bad.push(b));
    expect(rows).toEqual([
      { rec_id: 'rec-1-org', given_name: 'ada', surname: 'lovelace' },
      { rec_id: 'rec-5-org', given_name: 'mary, ann', surname: "o'brien" },
    ]);
    expect(bad.map((b) => b.line)).toEqual([3, 5, 6]);
    expect(bad[0]?.reason).toMatch(/quote/i);
    expect(bad[2]?.reason).toBe('2 fields, the header has 3');
  });

  it('parses a line under a header', () => {
    expect(parseFebrlLine(['a', 'b'], ' 1 ,  x ')).toEqual({ ok: true, record: { a: '1', b: 'x' } });
    expect(parseFebrlLine(['a', 'b'], '1, 2, 3')).toEqual({ ok: false, error: '3 fields, the header has 2' });
  });
});
