/**
 * Pure steps of the feature processor: resolved events → FeatureEvents, folding a customer's batch into its state with
 * the idempotency watermark and the lateness rule, and the Redis hash the ad server reads. No I/O.
 */
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';
import {
  featureVectorReader,
  finalizeFeatures,
  FEATURE_NAMES,
  type CustomerFeatures,
  type RfmCutPoints,
} from './definitions.js';
import { reviewSentimentOf } from './sentiment.js';
import { aggregatesOf, applyEvent, isEmptyState, type FeatureEvent, type FeatureState } from './state.js';

export function transactionEvent(tx: Transaction): FeatureEvent {
  const purchase = tx.kind === 'PURCHASE';
  return {
    kind: 'transaction',
    eventId: tx.eventId,
    timeMs: tx.eventTimeMs,
    purchase,
    totalMinor: tx.totalMinor,
    sessionId: tx.sessionId ?? null,
    lines: purchase
      ? tx.lineItems.map((l) => ({ category: l.category, amountMinor: l.quantity * l.unitPriceMinor, brand: l.brand }))
      : [],
    coupon: Boolean(tx.couponCode), // '' is no coupon, as in the warehouse
  };
}

export function clickEvent(ev: BehaviorEvent): FeatureEvent {
  return {
    kind: 'click',
    eventId: ev.eventId,
    timeMs: ev.eventTimeMs,
    type: ev.type,
    sessionId: ev.sessionId ?? null,
    category: ev.category ?? null,
    // The resolver stamps the score; scoring here is only the fallback for a record it did not stamp.
    review: ev.reviewText ? (ev.reviewSentiment ?? reviewSentimentOf(ev.reviewText)) : null,
  };
}

/** One input record for a customer: the event plus where it came from (the watermark's unit). */
export interface SourcedEvent {
  readonly event: FeatureEvent;
  /** `<topic>:<partition>` */
  readonly source: string;
  readonly offset: number;
  /**
   * The ordered stream the event came in: `<t|c>|<key it was published under>`. Lateness is judged within it, so the
   * events of a merged-away id that are still in flight are not late just because the survivor saw newer ones.
   */
  readonly stream: string;
}

export interface FoldResult {
  readonly applied: number;
  readonly duplicates: number;
  readonly late: number;
}

/**
 * Folds a customer's records (in offset order per source and stream) into `state` (mutated). A record at or below its
 * source's and stream's watermark was applied before (a redelivery) and changes nothing. A record older than the newest event of its stream
 * minus `graceMs` is counted as late and not applied; everything else is applied exactly, whatever its order.
 * It does not prune: the owner prunes a changed state once per flush (state.ts prune; exactness does not depend on
 * when), not once per fold, which on traffic spread over many customers is once per event.
 */
export function foldEvents(state: FeatureState, records: readonly SourcedEvent[], graceMs: number): FoldResult {
  let applied = 0;
  let duplicates = 0;
  let late = 0;
  let source = '';
  let stream = '';
  let mark = '';
  for (const r of records) {
    // Per source partition *and* published key: only one key's records are guaranteed to arrive in offset order (a
    // merged-away id's records are folded as their own group, possibly after the survivor's higher offsets). A group's
    // records nearly always share both, so the key is built once per run of them.
    if (r.source !== source || r.stream !== stream) {
      source = r.source;
      stream = r.stream;
      mark = `${source}|${stream}`;
    }
    if (r.offset <= (state.wm[mark] ?? -1)) {
      duplicates++;
      continue;
    }
    state.wm[mark] = r.offset;
    const newest = state.lt[r.stream];
    if (newest !== undefined && r.event.timeMs < newest - graceMs) {
      state.late++;
      late++;
      continue;
    }
    state.lt[r.stream] = Math.max(newest ?? 0, r.event.timeMs);
    applyEvent(state, r.event);
    applied++;
  }
  return { applied, duplicates, late };
}

/** Features as of the newest event (what the hash holds), or null for a state that never received an event. */
export function currentFeatures(state: FeatureState, cuts: RfmCutPoints, refMs?: number): CustomerFeatures | null {
  if (isEmptyState(state)) return null;
  return finalizeFeatures(aggregatesOf(state, Math.max(refMs ?? state.l, state.l)), cuts);
}

/**
 * The ad server's hash, as flat field/value pairs: every feature by name, `top_category`, `affinity:<category>` for
 * each category with an interaction in 90 days, `feature_time_ms` (newest event reflected), `updated_at_ms` (wall
 * clock of the write) and `state_version`.
 */
export function hashFields(features: CustomerFeatures, stateVersion: number, nowMs: number): string[] {
  const out: string[] = [];
  for (const name of FEATURE_NAMES) out.push(name, String(features.values[name]));
  out.push('top_category', features.topCategory);
  for (const [category, score] of features.affinity) out.push(`affinity:${category}`, String(score));
  out.push('feature_time_ms', String(features.featureTimeMs), 'updated_at_ms', String(nowMs));
  out.push('state_version', String(stateVersion));
  return out;
}

const readAllFeatures = featureVectorReader(FEATURE_NAMES);

/** What a customer's features hash holds after the last write (kept in memory to write only what changed). */
export interface ServedHash {
  readonly values: Float64Array;
  readonly topCategory: string;
  readonly affinity: ReadonlyMap<string, number>;
}

/** The fields to set and to delete to turn the hash `prev` described into {@link hashFields}' result. */
export interface HashChanges {
  /** Field/value pairs; with `replace`, the whole hash. */
  readonly set: string[];
  readonly del: string[];
  /** `prev` was unknown: delete the hash and write it whole. */
  readonly replace: boolean;
  readonly next: ServedHash;
}

/**
 * The same hash as {@link hashFields}, as changes against what was served before (`prev`; null: unknown, write all).
 * A click changes a handful of the fields, so most updates write a fraction of them.
 */
export function hashChanges(
  features: CustomerFeatures,
  prev: ServedHash | null,
  stateVersion: number,
  nowMs: number,
): HashChanges {
  const values = new Float64Array(FEATURE_NAMES.length);
  readAllFeatures(features.values, values, 0);
  if (!prev) {
    const next = { values, topCategory: features.topCategory, affinity: features.affinity };
    return { set: hashFields(features, stateVersion, nowMs), del: [], replace: true, next };
  }
  const set: string[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Object.is(prev.values[i], v)) set.push(FEATURE_NAMES[i] as string, String(v));
  }
  if (features.topCategory !== prev.topCategory) set.push('top_category', features.topCategory);
  for (const [category, score] of features.affinity) {
    if (prev.affinity.get(category) !== score) set.push(`affinity:${category}`, String(score));
  }
  const del: string[] = [];
  for (const category of prev.affinity.keys()) if (!features.affinity.has(category)) del.push(`affinity:${category}`);
  set.push('feature_time_ms', String(features.featureTimeMs), 'updated_at_ms', String(nowMs));
  set.push('state_version', String(stateVersion));
  const next = { values, topCategory: features.topCategory, affinity: features.affinity };
  return { set, del, replace: false, next };
}
