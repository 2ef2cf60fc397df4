// The partition table's checkpoint bookkeeping (owned.ts): a checkpoint takes the states changed since the last one and
// the offsets folded so far, is written a slice per flush, and commits only once none of its states is left.
import { describe, expect, it } from 'vitest';
import { PartitionTable } from '../../processors/features/owned.js';
import { sourcedPurchase } from '../fixtures/events.js';

const DAY = 86_400_000;
const TOPIC = 'customer.transactions.v1';
const purchase = (id: string, offset: number) => sourcedPurchase(id, offset);

/** A table holding `ids`, each with one folded purchase at `offset`, and the offset after it pending. */
function tableWith(offset: number, ...ids: string[]): PartitionTable {
  const table = new PartitionTable(0, 1);
  table.adopt(ids.map((id) => ({ id, state: null, alias: null, absorbed: [], version: 0 })));
  for (const id of ids) table.fold(id, [purchase(id, offset)], 30 * DAY);
  table.pending.set(TOPIC, BigInt(offset + 1));
  return table;
}

const idsOf = (entries: Iterable<{ id: string }>) => [...entries].map((e) => e.id).sort();

describe('checkpoints written a slice at a time', () => {
  it('takes the changed states and the folded offsets; a change meanwhile belongs to the next checkpoint too', () => {
    const table = tableWith(1, 'c-1', 'c-2', 'c-3');
    table.beginCheckpoint();
    expect(idsOf(table.saving)).toEqual(['c-1', 'c-2', 'c-3']);
    expect([...table.savingCommits]).toEqual([[TOPIC, 2n]]);
    expect(table.unsaved.size).toBe(0);
    expect(table.pending.size).toBe(0);

    table.saved(table.entry('c-1')); // the first slice
    table.fold('c-2', [purchase('c-2', 2)], 30 * DAY); // folded after the checkpoint began
    table.pending.set(TOPIC, 3n);
    expect(idsOf(table.saving)).toEqual(['c-2', 'c-3']);
    expect(idsOf(table.unsaved)).toEqual(['c-2']);
    expect([...table.savingCommits]).toEqual([[TOPIC, 2n]]); // commits what was folded when it began

    table.saved(table.entry('c-2')); // written as it is now: the next checkpoint needs it only if it changes again
    expect(table.unsaved.size).toBe(0);
    expect([...table.pending]).toEqual([[TOPIC, 3n]]);
  });

  it('a forced checkpoint widens the one in progress to everything folded so far', () => {
    const table = tableWith(1, 'c-1', 'c-2');
    table.beginCheckpoint();
    table.saved(table.entry('c-1'));
    table.adopt([{ id: 'c-4', state: null, alias: null, absorbed: [], version: 0 }]);
    table.fold('c-4', [purchase('c-4', 5)], 30 * DAY);
    table.pending.set(TOPIC, 6n);
    table.beginCheckpoint();
    expect(idsOf(table.saving)).toEqual(['c-2', 'c-4']);
    expect([...table.savingCommits]).toEqual([[TOPIC, 6n]]);
  });

  it('keeps states still to be written in memory, and forgets them with an erasure or a merge hand-off', () => {
    const table = tableWith(1, 'c-1', 'c-2', 'c-3');
    table.beginCheckpoint();
    table.changed.clear(); // served by the flush that began it
    expect(table.evict(0)).toBe(0); // every one still to be written
    table.saved(table.entry('c-3'));
    expect(table.evict(0)).toBe(1);
    expect(table.entries.has('c-3')).toBe(false);

    expect(table.erase('c-1')).toBe('erased');
    expect(idsOf(table.saving)).toEqual(['c-2']);
    expect(table.merge('c-2', 'c-9', 0, 'merge-1')).toBe('handed-off');
    expect(table.saving.size).toBe(0); // the alias replaces its state at once
  });
});

describe('holding the customers a chunk folds', () => {
  it('loads again a customer a flush evicted while the load of the others was awaited', async () => {
    const table = tableWith(1, 'c-held');
    table.changed.clear(); // served by a flush (its snapshot takes them)…
    table.beginCheckpoint();
    table.saved(table.entry('c-held')); // …and checkpointed: clean, so the end of a flush may evict it
    const fetched: string[][] = [];
    await table.hold(['c-held', 'c-new'], (missing) => {
      fetched.push(missing);
      if (fetched.length === 1) table.evict(0); // a flush ends while this load is awaited
      return Promise.resolve(missing.map((id) => ({ id, state: null, alias: null, absorbed: [], version: 0 })));
    });
    expect(fetched).toEqual([['c-new'], ['c-held']]);
    // Both fold with no await in between: before, the evicted one threw "was not loaded before use".
    expect(table.fold('c-held', [purchase('c-held', 2)], 30 * DAY)).toMatchObject({ applied: 1 });
    expect(table.fold('c-new', [purchase('c-new', 2)], 30 * DAY)).toMatchObject({ applied: 1 });
  });
});
