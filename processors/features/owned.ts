/**
 * The state one instance owns for one input partition: every customer keyed to that partition that it has touched,
 * in process memory, and what the next flush must write and send. Pure: the shell (processor.ts) loads missing
 * customers before calling in and does all I/O after.
 *
 * Merges without cross-partition writes: a merge record arrives on the merged-away customer's partition (it is keyed
 * by `mergedId`). Its owner turns the customer into an alias and hands its whole state to the survivor through the
 * hand-off topic (keyed by the survivor); events still published under the merged-away id are forwarded the same
 * way, with their original source offsets. The survivor's owner absorbs a state once (absorbed ids) and folds the
 * forwarded events through the usual watermarks, so a redelivery on either side changes nothing.
 *
 * Erasure: an erasure command (customer.erasures.v1, keyed by the customer like its events) drops the customer from
 * memory, and the next flush deletes its keys and publishes a score tombstone. Records still arriving under an erased
 * id (published before the graph forgot it) are dropped while this table lives; cluster ids are never reused.
 */
import type { FeatureHandoff } from '../../schemas/generated/types.js';
import { foldEvents, type FoldResult, type ServedHash, type SourcedEvent } from './logic.js';
import { emptyState, mergeStates, prune, upgradeState, type FeatureState } from './state.js';
import type { StoredCustomer } from './store.js';

export interface Entry {
  readonly id: string;
  state: FeatureState | null;
  alias: string | null;
  absorbed: string[];
  /** State version as last written (the ad server's `state_version`). */
  version: number;
  /** The state changed since the last flush (its features and score must be served again). */
  dirty: boolean;
  /** Score as of this time at the next flush (rescoring as time passes), or null. */
  rescoreAt: number | null;
  /** Events applied since the last flush, when a listener traces them to their score (evaluations, benchmarks). */
  eventIds: string[];
  /** What the ad server's features hash holds since this instance last wrote it (null: unknown, write it whole). */
  served: ServedHash | null;
}

/** What the next flush must send to the hand-off topic. */
export type OutgoingHandoff = Omit<FeatureHandoff, 'payload'> & { readonly payload: string };

export const HANDOFF_PAYLOAD_VERSION = 1;

export interface StatePayload {
  readonly state: FeatureState | null;
  readonly absorbed: readonly string[];
}

export class PartitionTable {
  readonly entries = new Map<string, Entry>();
  /** Entries the next flush serves (features hash, score) or turns into aliases. */
  readonly changed = new Set<Entry>();
  /** Entries whose state changed since the last checkpoint. */
  readonly unsaved = new Set<Entry>();
  /** Next offset to commit per input topic, once the states folded so far are checkpointed. */
  readonly pending = new Map<string, bigint>();
  /**
   * The checkpoint being written: entries whose state it has still to write (a slice per flush, so no one flush
   * carries a whole checkpoint) and the offsets it commits once none is left. An entry that changes meanwhile is
   * `unsaved` again, for the next checkpoint; writing its newer state for this one is safe (a replay from these
   * offsets repeats events the state's watermarks already hold, which changes nothing).
   */
  readonly saving = new Set<Entry>();
  readonly savingCommits = new Map<string, bigint>();
  readonly handoffs: OutgoingHandoff[] = [];
  /** Events to forward, by the survivor they go to. */
  private readonly forwards = new Map<string, { fromId: string; events: SourcedEvent[] }[]>();
  /** Customers erased while this table lived: their records are dropped, never folded into a new state. */
  readonly erased = new Set<string>();
  /** Erased customers whose keys the next flush deletes (with a score tombstone). */
  readonly erasures: string[] = [];
  /** Set when the table is verified as this instance's (epoch claimed and unchanged since). */
  verified = true;

  constructor(
    readonly partition: number,
    readonly epoch: number,
    /** Keep the ids of applied events until the flush (only a score listener needs them: not on the hot path else). */
    private readonly traceEvents = false,
  ) {}

  /** Ids among `ids` not in memory: the shell loads them before folding. */
  missing(ids: Iterable<string>): string[] {
    const out = new Set<string>();
    for (const id of ids) if (!this.entries.has(id) && !this.erased.has(id)) out.add(id);
    return [...out];
  }

  /**
   * Holds every customer of `ids` (but the erased), loading with `fetch` those it lacks, and again any that a flush
   * evicted while a load was awaited (one ending meanwhile drops clean entries: held when asked is not held after the
   * await). Folds that follow with no await in between find them all.
   */
  async hold(ids: Iterable<string>, fetch: (missing: string[]) => Promise<Iterable<StoredCustomer>>): Promise<void> {
    const wanted = [...ids];
    for (let missing = this.missing(wanted); missing.length > 0; missing = this.missing(wanted)) {
      this.adopt(await fetch(missing));
    }
  }

  /** Adds loaded customers; an entry that arrived meanwhile (a concurrent batch of another topic) wins. */
  adopt(loaded: Iterable<StoredCustomer>): void {
    for (const s of loaded) {
      if (this.entries.has(s.id)) continue;
      this.entries.set(s.id, {
        id: s.id,
        state: s.state,
        alias: s.alias,
        absorbed: [...s.absorbed],
        version: s.version,
        dirty: false,
        rescoreAt: null,
        eventIds: [],
        served: null,
      });
    }
  }

  entry(id: string): Entry {
    const e = this.entries.get(id);
    if (!e) throw new Error(`customer ${id} of partition ${this.partition} was not loaded before use`);
    return e;
  }

  /** Starts a checkpoint of everything folded so far; one in progress is widened to it (and commits further). */
  beginCheckpoint(): void {
    for (const e of this.unsaved) this.saving.add(e);
    this.unsaved.clear();
    for (const [topic, offset] of this.pending) this.savingCommits.set(topic, offset);
    this.pending.clear();
  }

  /** A checkpoint is in progress: states still to write, or offsets still to commit. */
  get checkpointing(): boolean {
    return this.saving.size > 0 || this.savingCommits.size > 0;
  }

  /** `e`'s state is being written as it is now: no checkpoint needs it again until it changes. */
  saved(e: Entry): void {
    this.saving.delete(e);
    this.unsaved.delete(e);
  }

  private touch(e: Entry): void {
    // Touched since the last flush and still changed and unsaved: the adds below would change nothing, and the entry
    // is near the end of the LRU order already (moving it again costs a Map delete and insert per folded event).
    if (e.dirty && this.unsaved.has(e) && this.changed.has(e)) return;
    e.dirty = true;
    this.changed.add(e);
    this.unsaved.add(e);
    // Most recently used last: eviction takes clean entries from the front.
    this.entries.delete(e.id);
    this.entries.set(e.id, e);
  }

  /** Folds records published under `id` (offset order); forwards them instead when `id` was merged away. */
  fold(id: string, records: readonly SourcedEvent[], graceMs: number): FoldResult | 'forwarded' | 'erased' {
    if (this.erased.has(id)) return 'erased';
    const e = this.entry(id);
    if (e.alias) {
      this.forward(id, e.alias, records);
      return 'forwarded';
    }
    return this.foldInto(e, records, graceMs);
  }

  private foldInto(e: Entry, records: readonly SourcedEvent[], graceMs: number): FoldResult {
    e.state ??= emptyState();
    const result = foldEvents(e.state, records, graceMs);
    if (result.applied > 0 || result.late > 0) {
      this.touch(e);
      if (this.traceEvents) for (const r of records) e.eventIds.push(r.event.eventId);
    }
    return result;
  }

  /** Applies a merge of `mergedId` into `survivorId` on the merged-away customer's side. */
  merge(mergedId: string, survivorId: string, eventTimeMs: number, eventKey: string): 'handed-off' | 'duplicate' {
    const e = this.entry(mergedId);
    if (e.alias) return 'duplicate'; // a redelivered merge: the state left with the first one
    const payload: StatePayload = { state: e.state, absorbed: e.absorbed };
    this.handoffs.push({
      eventId: `STATE|${mergedId}|${eventKey}`,
      eventTimeMs,
      toId: survivorId,
      fromId: mergedId,
      kind: 'STATE',
      payloadVersion: HANDOFF_PAYLOAD_VERSION,
      payload: JSON.stringify(payload),
    });
    e.alias = survivorId;
    e.state = null;
    e.absorbed = [];
    e.rescoreAt = null;
    e.eventIds = [];
    e.served = null;
    this.touch(e);
    this.saved(e); // the alias is written at once, in place of any checkpoint
    return 'handed-off';
  }

  /** Applies a hand-off addressed to `h.toId` (owned here); re-forwards it when that customer was merged on too. */
  receive(h: FeatureHandoff, graceMs: number): 'absorbed' | 'duplicate' | 'forwarded' | 'erased' | FoldResult {
    if (this.erased.has(h.toId) || this.erased.has(h.fromId)) return 'erased';
    const e = this.entry(h.toId);
    if (e.alias) {
      this.handoffs.push({ ...h, toId: e.alias, payload: h.payload.toString('utf8') });
      return 'forwarded';
    }
    if (h.kind === 'EVENTS') {
      return this.foldInto(e, JSON.parse(h.payload.toString('utf8')) as SourcedEvent[], graceMs);
    }
    if (h.fromId === e.id || e.absorbed.includes(h.fromId)) return 'duplicate';
    const payload = JSON.parse(h.payload.toString('utf8')) as StatePayload;
    const state = (e.state ??= emptyState());
    if (payload.state) mergeStates(state, upgradeState(payload.state)); // a hand-off from an older instance: format 1
    prune(state);
    e.absorbed.push(h.fromId, ...payload.absorbed.filter((id) => !e.absorbed.includes(id)));
    this.touch(e);
    return 'absorbed';
  }

  /**
   * Erases `id`: forgets it (state, alias, pending forwards to it), drops its later records while this table lives,
   * and has the next flush delete its keys. Idempotent: a redelivered command deletes again, which changes nothing.
   */
  erase(id: string): 'erased' | 'duplicate' {
    const e = this.entries.get(id);
    if (e) {
      this.entries.delete(id);
      this.changed.delete(e);
      this.saved(e);
    }
    this.forwards.delete(id);
    const known = this.erased.has(id);
    this.erased.add(id);
    this.erasures.push(id);
    return known ? 'duplicate' : 'erased';
  }

  /** Marks `id` (loaded, not merged away, with state) to be rescored as of `asOfMs` at the next flush. */
  markRescore(id: string, asOfMs: number): boolean {
    const e = this.entries.get(id);
    if (!e?.state || e.alias) return false;
    e.rescoreAt = Math.max(e.rescoreAt ?? 0, asOfMs);
    this.changed.add(e);
    return true;
  }

  private forward(fromId: string, toId: string, records: readonly SourcedEvent[]): void {
    const list = this.forwards.get(toId) ?? [];
    const last = list.at(-1);
    if (last?.fromId === fromId) last.events.push(...records);
    else list.push({ fromId, events: [...records] });
    this.forwards.set(toId, list);
  }

  /** Takes what the next flush must send: state hand-offs first, then forwarded events, in the order they arose. */
  takeHandoffs(): OutgoingHandoff[] {
    const out = this.handoffs.splice(0);
    for (const [toId, groups] of this.forwards) {
      for (const { fromId, events } of groups) {
        const first = events[0];
        if (!first) continue;
        out.push({
          eventId: `EVENTS|${fromId}|${first.source}|${first.stream}|${first.offset}`,
          eventTimeMs: events.reduce((max, r) => Math.max(max, r.event.timeMs), -Infinity),
          toId,
          fromId,
          kind: 'EVENTS',
          payloadVersion: HANDOFF_PAYLOAD_VERSION,
          payload: JSON.stringify(events),
        });
      }
    }
    this.forwards.clear();
    return out;
  }

  /** Drops the least recently used clean entries beyond `max` (they reload from Redis when needed). */
  evict(max: number): number {
    let dropped = 0;
    for (const [id, e] of this.entries) {
      if (this.entries.size <= max) break;
      if (this.changed.has(e) || this.unsaved.has(e) || this.saving.has(e)) continue;
      this.entries.delete(id);
      dropped++;
    }
    return dropped;
  }
}
