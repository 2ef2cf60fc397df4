// The resolver's log of ids its uncommitted batches were published under (graph-store.ts PublicationLog).
import { describe, expect, it } from 'vitest';
import { PublicationLog } from '../../processors/identity/graph-store.js';

describe('PublicationLog', () => {
  const log = PublicationLog.parse({
    '0-4': JSON.stringify([
      [0, 'c-1'],
      [2, 'c-2'],
      [4, 'c-1'],
    ]),
    '5-9': JSON.stringify([[9, 'c-7']]),
  });

  it('answers the id an earlier attempt published each offset under, and nothing for offsets it never published', () => {
    expect([0, 1, 2, 3, 4, 9, 10].map((o) => log.idAt(o))).toEqual([
      'c-1',
      undefined,
      'c-2',
      undefined,
      'c-1',
      'c-7',
      undefined,
    ]);
    expect(PublicationLog.parse({}).idAt(0)).toBeUndefined();
    expect(log.size).toBe(2);
  });

  it('names the batches wholly below a committed offset, and only those', () => {
    expect(log.fieldsBelow(4)).toEqual([]);
    expect(log.fieldsBelow(5)).toEqual(['0-4']);
    expect(log.fieldsBelow(10).sort()).toEqual(['0-4', '5-9']);
  });
});
