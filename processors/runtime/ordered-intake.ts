/**
 * Ordered intake: the records of every input partition an instance owns, merged into ONE sequence whose order and
 * cuts depend on the records alone, not on when fetches happened to return them. A processor whose results depend on
 * the order it sees records in (the identity resolver: which clusters exist when a record is judged decides which
 * links it makes) then computes the same thing in a replay, after a crash, and in a clean run of the same records.
 *
 * The merge is Kafka Streams' (a task's partition group): the next record is the head with the smallest event time
 * among all partitions (ties: topic, then partition), each partition staying in offset order. It may take a record
 * only when every partition has one buffered, or is known to have none to come: caught up with its high watermark at
 * its last fetch, for at least `idleMs` (Kafka Streams' max.task.idle.ms). A partition with records still on the broker
 * is always waited for; so in a replay or any backlog the order is the records' own, and only a live, caught-up
 * stream trades it for latency (idleMs 0: a caught-up partition never holds the others back).
 *
 * Rounds are cut by count (the next `maxRecords` records of the merged sequence), or, when every partition is caught up
 * and idle, by what is there. A round starting where the last committed one ended is the same round, whatever happened
 * in between: the caller commits every partition of a round at once, at the round's end.
 */

/** One record handed to the intake, in its partition's offset order. */
export interface IntakeRecord<T> {
  readonly offset: string;
  /** Event time; null (an undecodable record) takes its partition's previous time, so it keeps its place. */
  readonly timeMs: number | null;
  readonly item: T;
}

export interface RoundEntry<T> {
  /** `topic:partition`. */
  readonly tp: string;
  readonly offset: string;
  readonly timeMs: number;
  readonly item: T;
}

export interface Round<T> {
  /** The intake's generation (assignment) the round was taken in. */
  readonly generation: number;
  /** In merged order. */
  readonly entries: RoundEntry<T>[];
  /** Per partition of the round: the offset to commit (last taken + 1). */
  readonly commits: ReadonlyMap<string, string>;
}

export interface IntakeOptions {
  readonly maxRecords: number;
  readonly idleMs: number;
}

/** Why no round could be taken: the partitions it waits for, and those of them whose caught-up state is unknown. */
export interface IntakeWait {
  readonly waitingFor: readonly string[];
  readonly unknown: readonly string[];
}

interface PartitionBuffer<T> {
  readonly tp: string;
  readonly order: number;
  entries: RoundEntry<T>[];
  head: number;
  lastTimeMs: number;
  /** At its last fetch, the partition had nothing after what it delivered; null: not known yet in this generation. */
  caughtUp: boolean | null;
  /** When records last arrived (or the partition was assigned). */
  lastArrivalMs: number;
}

/** `topic:partition` → [topic, partition]. */
export function splitTp(tp: string): { topic: string; partition: number } {
  const at = tp.lastIndexOf(':');
  return { topic: tp.slice(0, at), partition: Number(tp.slice(at + 1)) };
}

export class OrderedIntake<T> {
  private partitions = new Map<string, PartitionBuffer<T>>();
  private gen = 0;

  constructor(private readonly options: IntakeOptions) {
    if (!Number.isSafeInteger(options.maxRecords) || options.maxRecords < 1) throw new Error('maxRecords must be ≥ 1');
    if (!(options.idleMs >= 0)) throw new Error('idleMs must be ≥ 0');
  }

  get generation(): number {
    return this.gen;
  }

  /** A new assignment: every buffer is dropped (the consumer fetches again from the committed offsets). */
  assign(tps: Iterable<string>, nowMs: number): void {
    this.gen++;
    const sorted = [...new Set(tps)].sort((a, b) => {
      const x = splitTp(a);
      const y = splitTp(b);
      return x.topic < y.topic ? -1 : x.topic > y.topic ? 1 : x.partition - y.partition;
    });
    this.partitions = new Map(
      sorted.map((tp, order) => [
        tp,
        { tp, order, entries: [], head: 0, lastTimeMs: 0, caughtUp: null, lastArrivalMs: nowMs },
      ]),
    );
  }

  /** Partitions of the current assignment. */
  get assigned(): string[] {
    return [...this.partitions.keys()];
  }

  /**
   * Records of one fetched batch of `tp` (in offset order) and whether the fetch left nothing after them (the batch's
   * last offset + 1 reached its high watermark). Refused (false) for a partition not assigned or an older generation.
   */
  add(
    tp: string,
    records: readonly IntakeRecord<T>[],
    caughtUp: boolean,
    nowMs: number,
    generation = this.gen,
  ): boolean {
    const p = this.partitions.get(tp);
    if (!p || generation !== this.gen) return false;
    for (const r of records) {
      const timeMs = r.timeMs ?? p.lastTimeMs;
      p.lastTimeMs = timeMs;
      p.entries.push({ tp, offset: r.offset, timeMs, item: r.item });
    }
    p.caughtUp = caughtUp;
    if (records.length > 0) p.lastArrivalMs = nowMs;
    return true;
  }

  /**
   * What a probe of the broker found for a partition nothing of which was fetched yet in this assignment: its committed
   * offset has reached its high watermark (or not). Ignored once a fetch has told (it knows better than a probe that
   * started before it).
   */
  setCaughtUp(tp: string, caughtUp: boolean, generation = this.gen): void {
    const p = this.partitions.get(tp);
    if (!p || generation !== this.gen || p.caughtUp !== null) return;
    p.caughtUp = caughtUp;
  }

  /** Records buffered for `tp` (not yet taken). */
  buffered(tp: string): number {
    const p = this.partitions.get(tp);
    return p ? p.entries.length - p.head : 0;
  }

  get totalBuffered(): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.entries.length - p.head;
    return n;
  }

  /** The next round, or what it waits for. */
  take(nowMs: number): Round<T> | IntakeWait | null {
    const parts = [...this.partitions.values()];
    const at = parts.map((p) => p.head);
    const released = (p: PartitionBuffer<T>) => p.caughtUp === true && nowMs - p.lastArrivalMs >= this.options.idleMs;
    const taken: RoundEntry<T>[] = [];
    let complete = false;
    const waitingFor: string[] = [];
    while (taken.length < this.options.maxRecords) {
      let best = -1;
      let bestTime = 0;
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i] as PartitionBuffer<T>;
        const h = at[i] as number;
        if (h >= p.entries.length) {
          if (!released(p)) waitingFor.push(p.tp);
          continue;
        }
        const t = (p.entries[h] as RoundEntry<T>).timeMs;
        if (best === -1 || t < bestTime) {
          best = i;
          bestTime = t;
        }
      }
      if (waitingFor.length > 0) break;
      if (best === -1) {
        complete = taken.length > 0; // every partition caught up and idle: the round is what there is
        break;
      }
      const p = parts[best] as PartitionBuffer<T>;
      taken.push(p.entries[at[best] as number] as RoundEntry<T>);
      at[best] = (at[best] as number) + 1;
    }
    if (taken.length >= this.options.maxRecords) complete = true;
    if (!complete) {
      if (waitingFor.length === 0) return null;
      const unknown = waitingFor.filter((tp) => this.partitions.get(tp)?.caughtUp === null);
      return { waitingFor, unknown };
    }
    const commits = new Map<string, string>();
    parts.forEach((p, i) => {
      const h = at[i] as number;
      if (h === p.head) return;
      commits.set(p.tp, (BigInt((p.entries[h - 1] as RoundEntry<T>).offset) + 1n).toString());
      p.head = h;
      if (p.head > 1024 && p.head * 2 > p.entries.length) {
        p.entries = p.entries.slice(p.head);
        p.head = 0;
      }
    });
    return { generation: this.gen, entries: taken, commits };
  }
}

/**
 * The paused partitions to fetch again: those drained to `resumeAt` records or fewer, and every one a round waits for.
 * A round may need more of one partition than it holds (its records come first in event time while the others wait
 * behind them); paused, that partition would never deliver them and the round would wait forever.
 */
export function partitionsToResume(
  paused: Iterable<string>,
  buffered: (tp: string) => number,
  resumeAt: number,
  waitingFor: readonly string[] = [],
): string[] {
  const waited = new Set(waitingFor);
  return [...paused].filter((tp) => waited.has(tp) || buffered(tp) <= resumeAt);
}

export function isRound<T>(x: Round<T> | IntakeWait | null): x is Round<T> {
  return x !== null && 'entries' in x;
}
