import { describe, expect, it } from 'vitest';
import { PartitionTable } from '../../processors/features/owned.js';
import { sourcedPurchase } from '../fixtures/events.js';

const DAY = 86_400_000;
const purchase = (id: string, offset: number) => sourcedPurchase(id, offset);

function tableWith(...ids: string[]): PartitionTable {
  const table = new PartitionTable(0, 1);
  table.adopt(ids.map((id) => ({ id, state: null, alias: null, absorbed: [], version: 0 })));
  for (const id of ids) table.fold(id, [purchase(id, 1)], 30 * DAY);
  return table;
}

describe('erasure of a customer the partition table holds', () => {
  it('forgets the customer, leaves the others, and queues the deletion for the next flush', () => {
    const table = tableWith('c-1', 'c-2');
    expect(table.erase('c-1')).toBe('erased');
    expect(table.entries.has('c-1')).toBe(false);
    expect([...table.changed].map((e) => e.id)).toEqual(['c-2']);
    expect([...table.unsaved].map((e) => e.id)).toEqual(['c-2']);
    expect(table.erasures).toEqual(['c-1']);
    expect(table.entries.get('c-2')?.state).not.toBeNull();
  });

  it('drops records and hand-offs that still arrive under the erased id instead of starting a new state', () => {
    const table = tableWith('c-1');
    table.erase('c-1');
    expect(table.missing(['c-1', 'c-9'])).toEqual(['c-9']); // an erased id is never loaded back from Redis
    expect(table.fold('c-1', [purchase('c-1', 2)], 30 * DAY)).toBe('erased');
    const handoff = {
      eventId: 'STATE|c-7|x',
      eventTimeMs: 0,
      toId: 'c-1',
      fromId: 'c-7',
      kind: 'STATE' as const,
      payloadVersion: 1,
      payload: Buffer.from('{"state":null,"absorbed":[]}'),
    };
    expect(table.receive(handoff, 30 * DAY)).toBe('erased');
    expect(table.entries.has('c-1')).toBe(false);
  });

  it('is idempotent: a redelivered command deletes again and reports a duplicate', () => {
    const table = tableWith('c-1');
    table.erase('c-1');
    expect(table.erase('c-1')).toBe('duplicate');
    expect(table.erasures).toEqual(['c-1', 'c-1']);
  });
});
