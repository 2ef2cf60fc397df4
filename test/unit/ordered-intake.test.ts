import { describe, expect, it } from 'vitest';
import {
  isRound,
  OrderedIntake,
  partitionsToResume,
  type IntakeRecord,
  type Round,
} from '../../processors/runtime/ordered-intake.js';

const rec = (offset: number, timeMs: number | null): IntakeRecord<string> => ({
  offset: String(offset),
  timeMs,
  item: `${offset}@${timeMs}`,
});

/** Feeds each partition's records in the chunks given, in the order given, taking rounds whenever one is ready. */
function run(
  feeds: readonly { tp: string; chunk: IntakeRecord<string>[] }[],
  maxRecords: number,
  partitions: readonly string[],
): { rounds: string[][]; commits: Record<string, string>[] } {
  const intake = new OrderedIntake<string>({ maxRecords, idleMs: 0 });
  intake.assign(partitions, 0);
  const rounds: string[][] = [];
  const commits: Record<string, string>[] = [];
  const drain = () => {
    for (let r = intake.take(0); isRound(r); r = intake.take(0)) {
      rounds.push(r.entries.map((e) => `${e.tp}/${e.item}`));
      commits.push(Object.fromEntries(r.commits));
    }
  };
  const remaining = new Map<string, number>();
  for (const f of feeds) remaining.set(f.tp, (remaining.get(f.tp) ?? 0) + 1);
  for (const f of feeds) {
    const left = (remaining.get(f.tp) ?? 1) - 1;
    remaining.set(f.tp, left);
    intake.add(f.tp, f.chunk, left === 0, 0);
    drain();
  }
  return { rounds, commits };
}

describe('ordered intake', () => {
  const a = [rec(0, 10), rec(1, 30), rec(2, 50), rec(3, 70), rec(4, 90)];
  const b = [rec(0, 20), rec(1, 40), rec(2, 60), rec(3, 80)];

  it('merges partitions by event time into the same rounds whatever the fetches delivered when', () => {
    const together = run(
      [
        { tp: 't:0', chunk: a },
        { tp: 't:1', chunk: b },
      ],
      3,
      ['t:0', 't:1'],
    );
    const trickled = run(
      [
        { tp: 't:1', chunk: b.slice(0, 1) },
        { tp: 't:0', chunk: a.slice(0, 3) },
        { tp: 't:1', chunk: b.slice(1, 3) },
        { tp: 't:0', chunk: a.slice(3) },
        { tp: 't:1', chunk: b.slice(3) },
      ],
      3,
      ['t:0', 't:1'],
    );
    expect(together.rounds).toEqual([
      ['t:0/0@10', 't:1/0@20', 't:0/1@30'],
      ['t:1/1@40', 't:0/2@50', 't:1/2@60'],
      ['t:0/3@70', 't:1/3@80', 't:0/4@90'],
    ]);
    expect(trickled.rounds).toEqual(together.rounds);
    expect(trickled.commits).toEqual(together.commits);
    expect(together.commits[0]).toEqual({ 't:0': '2', 't:1': '1' });
  });

  it('waits for a partition with records still to come, and not for one that is caught up', () => {
    const intake = new OrderedIntake<string>({ maxRecords: 10, idleMs: 0 });
    intake.assign(['t:0', 't:1'], 0);
    intake.add('t:0', a.slice(0, 2), false, 0);
    expect(intake.take(0)).toEqual({ waitingFor: ['t:1'], unknown: ['t:1'] });
    intake.add('t:1', b.slice(0, 1), false, 0);
    // t:1 has more on the broker: the round may not pass its last buffered record's time
    const waiting = intake.take(0);
    expect(isRound(waiting)).toBe(false);
    intake.add('t:1', b.slice(1, 2), true, 0); // now caught up: what is buffered is all there is
    intake.add('t:0', a.slice(2, 3), true, 0);
    const round = intake.take(0) as Round<string>;
    expect(round.entries.map((e) => e.item)).toEqual(['0@10', '0@20', '1@30', '1@40', '2@50']);
  });

  it('holds a caught-up partition for idleMs, and releases it by a probe when nothing of it was ever fetched', () => {
    const intake = new OrderedIntake<string>({ maxRecords: 10, idleMs: 100 });
    intake.assign(['t:0', 't:1'], 0);
    intake.add('t:0', a.slice(0, 2), true, 0);
    expect(isRound(intake.take(50))).toBe(false);
    intake.setCaughtUp('t:1', true);
    expect(isRound(intake.take(99))).toBe(false);
    const round = intake.take(100) as Round<string>;
    expect(round.entries.map((e) => e.item)).toEqual(['0@10', '1@30']);
    expect(intake.take(200)).toBeNull();
  });

  it('keeps an undecodable record in its place (its partition time) and each partition in offset order', () => {
    const intake = new OrderedIntake<string>({ maxRecords: 10, idleMs: 0 });
    intake.assign(['t:0', 't:1'], 0);
    intake.add('t:0', [rec(0, 50), rec(1, null), rec(2, 5)], true, 0);
    intake.add('t:1', [rec(0, 20), rec(1, 60)], true, 0);
    const round = intake.take(0) as Round<string>;
    expect(round.entries.map((e) => `${e.tp}/${e.offset}`)).toEqual(['t:1/0', 't:0/0', 't:0/1', 't:0/2', 't:1/1']);
  });

  it('drops what it held on a new assignment and ignores batches of the one before', () => {
    const intake = new OrderedIntake<string>({ maxRecords: 10, idleMs: 0 });
    intake.assign(['t:0'], 0);
    const before = intake.generation;
    intake.add('t:0', a.slice(0, 2), true, 0);
    intake.assign(['t:0', 't:1'], 0);
    expect(intake.buffered('t:0')).toBe(0);
    intake.add('t:0', a.slice(0, 2), true, 0, before);
    expect(intake.totalBuffered).toBe(0);
  });
});

describe('ordered intake probes', () => {
  it('a probe answering after a fetch has told changes nothing', () => {
    const intake = new OrderedIntake<string>({ maxRecords: 10, idleMs: 0 });
    intake.assign(['t:0', 't:1'], 0);
    intake.add('t:0', [rec(0, 10)], true, 0);
    intake.add('t:1', [rec(0, 20)], true, 0);
    expect((intake.take(0) as Round<string>).entries).toHaveLength(2);
    intake.setCaughtUp('t:1', false); // started before t:1's first fetch: its committed offset was behind then
    expect(intake.take(0)).toBeNull(); // nothing waits for t:1
  });

  it('resumes a paused partition a round waits for, however much of it is buffered', () => {
    // Rounds of 10, fetching resumed at 2 records left (scaled down). Partition t:0 is paused holding 3 records, all
    // earlier than t:1's, with more on the broker: the round takes the 3 and then needs t:0's next ones.
    const intake = new OrderedIntake<string>({ maxRecords: 10, idleMs: 0 });
    intake.assign(['t:0', 't:1'], 0);
    intake.add('t:0', [rec(0, 0), rec(1, 1), rec(2, 2)], false, 0);
    intake.add(
      't:1',
      Array.from({ length: 20 }, (_, i) => rec(i, 10 + i)),
      false,
      0,
    );
    const paused = new Set(['t:0']);
    const buffered = (tp: string) => intake.buffered(tp);
    const wait = intake.take(0);
    if (wait === null || isRound(wait)) throw new Error('expected the round to wait');
    expect(wait.waitingFor).toEqual(['t:0']);
    expect(buffered('t:0')).toBe(3);
    expect(partitionsToResume(paused, buffered, 2)).toEqual([]); // by count alone: paused forever, the round waiting
    expect(partitionsToResume(paused, buffered, 2, wait.waitingFor)).toEqual(['t:0']);
    // Resumed, its next records arrive and the round is cut.
    intake.add(
      't:0',
      Array.from({ length: 10 }, (_, i) => rec(3 + i, 3 + i)),
      false,
      0,
    );
    const round = intake.take(0);
    const firstTen = Array.from({ length: 10 }, (_, i) => String(i));
    expect(isRound(round) && round.entries.map((e) => e.offset)).toEqual(firstTen);
    // Drained partitions are resumed by count, as before.
    expect(partitionsToResume(new Set(['t:0', 't:1']), (tp) => (tp === 't:1' ? 1 : 30), 2)).toEqual(['t:1']);
  });
});
