/**
 * The streaming execution of the feature definitions (definitions.ts): per customer, a small bucketed state that folds
 * events in any order within the grace period, merges exactly with another customer's state, and reduces to
 * WindowAggregates as of any reference time at or after its newest event. Pure: no I/O.
 *
 * Why it is exact: every part of the state is a sum, a min, a max or a set union keyed by a bucket or a session id,
 * all commutative and associative, so the order in which events and merges arrive does not matter. Buckets are only
 * dropped once they can no longer fall inside any window as of a time at or after the newest event.
 */
import { DAY_MS, HOUR_MS, MINUTE_MS, type CategoryAggregate, type WindowAggregates } from './definitions.js';

export type ClickType =
  'VIEW' | 'SEARCH' | 'ADD_TO_CART' | 'REMOVE_FROM_CART' | 'CHECKOUT_START' | 'PURCHASE' | 'IDENTIFY';

/** The parts of a resolved event the features use. */
export type FeatureEvent =
  | {
      readonly kind: 'transaction';
      readonly eventId: string;
      readonly timeMs: number;
      readonly purchase: boolean; // false: a return
      readonly totalMinor: number;
      readonly sessionId: string | null;
      /** PURCHASE lines: category and amount (quantity × unit price) in minor units. */
      readonly lines: readonly { readonly category: string; readonly amountMinor: number }[];
    }
  | {
      readonly kind: 'click';
      readonly eventId: string;
      readonly timeMs: number;
      readonly type: ClickType;
      readonly sessionId: string | null;
      readonly category: string | null;
    };

/** Minute/hour bucket: [views, searches, add-to-carts, all events]. */
type ClickCounts = [number, number, number, number];
/** Day bucket: [orders, spend minor, returns, purchase lines, views, searches, add-to-carts]. */
type DayCounts = [number, number, number, number, number, number, number];
/** Session: [first ms, last ms, had an add-to-cart (0/1), had a purchase (0/1)]. */
type SessionState = [number, number, number, number];
/** Category: newest interaction and day buckets of [interactions, spend minor]. */
interface CategoryState {
  l: number;
  d: Record<string, [number, number]>;
}

/** JSON-serializable state of one customer. Bucket keys are bucket indexes (t / hop, floored) as strings. */
export interface FeatureState {
  /** First and newest event time applied. */
  f: number;
  l: number;
  /** First and newest purchase time, or null. */
  fp: number | null;
  lp: number | null;
  /** Lifetime purchases and their spend (minor units). */
  ol: number;
  sl: number;
  m: Record<string, ClickCounts>;
  h: Record<string, ClickCounts>;
  d: Record<string, DayCounts>;
  c: Record<string, CategoryState>;
  s: Record<string, SessionState>;
  /**
   * Sessions pruned from `s` (first event before the 30-day window), by id → first event time, kept for
   * SESSION_TOMBSTONE_DAYS more: a late event or a merged customer's part of such a session must not bring it back as a
   * new session inside the window.
   */
  st?: Record<string, number>;
  /**
   * Idempotency watermarks: highest input offset applied, per `<topic>:<partition>|<stream>` (logic.ts SourcedEvent):
   * within a partition only one published key's records are in offset order, so the key is part of the watermark.
   */
  wm: Record<string, number>;
  /** Newest event time per input stream (`<t|c>|<key>`, see logic.ts): lateness is judged within each stream. */
  lt: Record<string, number>;
  /** Events not applied because they were older than their stream's newest − grace. */
  late: number;
}

/** How far back buckets are kept, relative to the newest event's bucket (the longest window using each hop). */
const KEEP_MINUTES = 60;
const KEEP_HOUR_DAYS = 30; // hour buckets also feed the 30-day preferred hour
const KEEP_DAYS = 90;
const SESSION_DAYS = 30;
/** How long a pruned session's start is remembered: sessions are assumed to last less than this. */
const SESSION_TOMBSTONE_DAYS = 7;

const idx = (t: number, hop: number) => Math.floor(t / hop);

/** Slot of a counted click type in minute/hour buckets (day buckets: 4 + slot). */
const CLICK_SLOT: Partial<Record<ClickType, 0 | 1 | 2>> = { VIEW: 0, SEARCH: 1, ADD_TO_CART: 2 };

export function emptyState(): FeatureState {
  return {
    f: Number.MAX_SAFE_INTEGER,
    l: 0,
    fp: null,
    lp: null,
    ol: 0,
    sl: 0,
    m: {},
    h: {},
    d: {},
    c: {},
    s: {},
    st: {},
    wm: {},
    lt: {},
    late: 0,
  };
}

export function isEmptyState(state: FeatureState): boolean {
  return state.l === 0 && state.f === Number.MAX_SAFE_INTEGER;
}

function bump<T extends number[]>(map: Record<string, T>, key: number, size: number, add: (b: T) => void): void {
  const k = String(key);
  let bucket = map[k];
  if (!bucket) {
    bucket = new Array<number>(size).fill(0) as T;
    map[k] = bucket;
  }
  add(bucket);
}

const minOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));
const maxOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));

function touchSession(state: FeatureState, id: string | null, t: number, cart: boolean, purchase: boolean): void {
  if (!id) return;
  const pruned = state.st?.[id];
  if (pruned !== undefined && state.st) {
    state.st[id] = Math.min(pruned, t); // began before the window: it stays out of it
    return;
  }
  const s = state.s[id];
  if (s) {
    s[0] = Math.min(s[0], t);
    s[1] = Math.max(s[1], t);
    if (cart) s[2] = 1;
    if (purchase) s[3] = 1;
  } else {
    state.s[id] = [t, t, cart ? 1 : 0, purchase ? 1 : 0];
  }
}

function touchCategory(state: FeatureState, category: string, t: number, interactions: number, spend: number): void {
  let c = state.c[category];
  if (!c) {
    c = { l: t, d: {} };
    state.c[category] = c;
  }
  c.l = Math.max(c.l, t);
  bump(c.d, idx(t, DAY_MS), 2, (b) => {
    b[0] += interactions;
    b[1] += spend;
  });
}

/** Folds one event into `state` (mutates it). The caller has already checked the watermark and the grace period. */
export function applyEvent(state: FeatureState, ev: FeatureEvent): void {
  const t = ev.timeMs;
  state.f = Math.min(state.f, t);
  state.l = Math.max(state.l, t);
  const hour = idx(t, HOUR_MS);
  const day = idx(t, DAY_MS);
  if (ev.kind === 'transaction') {
    bump(state.h, hour, 4, (b) => void (b[3] += 1));
    bump(state.d, day, 7, (b) => {
      if (ev.purchase) {
        b[0] += 1;
        b[1] += ev.totalMinor;
        b[3] += ev.lines.length;
      } else {
        b[2] += 1;
      }
    });
    if (ev.purchase) {
      state.fp = minOrNull(state.fp, t);
      state.lp = maxOrNull(state.lp, t);
      state.ol += 1;
      state.sl += ev.totalMinor;
      for (const line of ev.lines) touchCategory(state, line.category, t, 1, line.amountMinor);
    }
    touchSession(state, ev.sessionId, t, false, ev.purchase);
  } else {
    const slot = CLICK_SLOT[ev.type];
    const count = (b: number[]) => {
      if (slot !== undefined) b[slot] = (b[slot] ?? 0) + 1;
      b[3] = (b[3] ?? 0) + 1;
    };
    bump(state.m, idx(t, MINUTE_MS), 4, count);
    bump(state.h, hour, 4, count);
    if (slot !== undefined) bump(state.d, day, 7, (b: number[]) => void (b[4 + slot] = (b[4 + slot] ?? 0) + 1));
    if (ev.category && (ev.type === 'VIEW' || ev.type === 'ADD_TO_CART')) touchCategory(state, ev.category, t, 1, 0);
    touchSession(state, ev.sessionId, t, ev.type === 'ADD_TO_CART', ev.type === 'PURCHASE');
  }
}

function addInto<T extends number[]>(target: Record<string, T>, source: Record<string, T>): void {
  for (const [k, b] of Object.entries(source)) {
    const t = target[k];
    if (t) for (let i = 0; i < b.length; i++) t[i] = (t[i] ?? 0) + (b[i] ?? 0);
    else target[k] = [...b] as T;
  }
}

/** `into` absorbs `from` (mutates `into`): the state of one customer that had received both event streams. */
export function mergeStates(into: FeatureState, from: FeatureState): void {
  into.f = Math.min(into.f, from.f);
  into.l = Math.max(into.l, from.l);
  into.fp = minOrNull(into.fp, from.fp);
  into.lp = maxOrNull(into.lp, from.lp);
  into.ol += from.ol;
  into.sl += from.sl;
  addInto(into.m, from.m);
  addInto(into.h, from.h);
  addInto(into.d, from.d);
  for (const [name, c] of Object.entries(from.c)) {
    const mine = into.c[name];
    if (mine) {
      mine.l = Math.max(mine.l, c.l);
      addInto(mine.d, c.d);
    } else {
      into.c[name] = { l: c.l, d: structuredClone(c.d) };
    }
  }
  const tombstones = (into.st ??= {});
  for (const [id, first] of Object.entries(from.st ?? {})) {
    tombstones[id] = Math.min(tombstones[id] ?? first, first);
    const live = into.s[id];
    if (live) live[0] = Math.min(live[0], first); // the session began earlier than this side saw: prune decides
  }
  for (const [id, s] of Object.entries(from.s)) {
    const pruned = tombstones[id];
    if (pruned !== undefined) {
      tombstones[id] = Math.min(pruned, s[0]);
      continue;
    }
    const mine = into.s[id];
    if (mine) {
      mine[0] = Math.min(mine[0], s[0]);
      mine[1] = Math.max(mine[1], s[1]);
      mine[2] = Math.max(mine[2], s[2]);
      mine[3] = Math.max(mine[3], s[3]);
    } else {
      into.s[id] = [...s];
    }
  }
  for (const [src, offset] of Object.entries(from.wm)) into.wm[src] = Math.max(into.wm[src] ?? -1, offset);
  for (const [kind, t] of Object.entries(from.lt)) into.lt[kind] = Math.max(into.lt[kind] ?? 0, t);
  into.late += from.late;
}

function pruneBuckets(map: Record<string, unknown>, minKey: number): void {
  for (const k of Object.keys(map)) if (Number(k) < minKey) Reflect.deleteProperty(map, k);
}

/**
 * Drops what no window as of a time at or after the newest event can include (mutates). Exactness does not depend
 * on when this runs: dropped buckets would count for nothing anyway.
 */
export function prune(state: FeatureState): void {
  if (isEmptyState(state)) return;
  const dayNow = idx(state.l, DAY_MS);
  pruneBuckets(state.m, idx(state.l, MINUTE_MS) - KEEP_MINUTES);
  pruneBuckets(state.h, (dayNow - KEEP_HOUR_DAYS) * 24);
  pruneBuckets(state.d, dayNow - KEEP_DAYS);
  for (const [name, c] of Object.entries(state.c)) {
    pruneBuckets(c.d, dayNow - KEEP_DAYS);
    if (Object.keys(c.d).length === 0) Reflect.deleteProperty(state.c, name);
  }
  const tombstones = (state.st ??= {});
  for (const [id, s] of Object.entries(state.s)) {
    if (idx(s[0], DAY_MS) >= dayNow - SESSION_DAYS) continue;
    tombstones[id] = Math.min(tombstones[id] ?? s[0], s[0]);
    Reflect.deleteProperty(state.s, id);
  }
  for (const [id, first] of Object.entries(tombstones)) {
    if (idx(first, DAY_MS) < dayNow - SESSION_DAYS - SESSION_TOMBSTONE_DAYS) Reflect.deleteProperty(tombstones, id);
  }
}

/**
 * The aggregates as of `refMs`, which must not precede the newest event (the state cannot forget an event). A
 * reference time later than the newest event is how features age as time passes without new events.
 */
export function aggregatesOf(state: FeatureState, refMs: number): WindowAggregates {
  if (isEmptyState(state)) throw new Error('aggregates of an empty feature state');
  if (refMs < state.l) throw new Error(`reference time ${refMs} precedes the newest event ${state.l}`);
  const minute = idx(refMs, MINUTE_MS);
  const hour = idx(refMs, HOUR_MS);
  const day = idx(refMs, DAY_MS);
  // One pass per map (this runs on every update, so it stays allocation-light).
  let views1h = 0;
  let searches1h = 0;
  let carts1h = 0;
  for (const k in state.m) {
    const b = state.m[k];
    if (!b || Number(k) < minute - 60) continue;
    views1h += b[0];
    searches1h += b[1];
    carts1h += b[2];
  }
  let views24h = 0;
  let searches24h = 0;
  let carts24h = 0;
  const hourCounts30d = new Array<number>(24).fill(0);
  for (const k in state.h) {
    const b = state.h[k];
    const h = Number(k);
    if (!b || h < (day - 30) * 24) continue;
    hourCounts30d[h % 24] = (hourCounts30d[h % 24] ?? 0) + b[3];
    if (h < hour - 24) continue;
    views24h += b[0];
    searches24h += b[1];
    carts24h += b[2];
  }
  let orders7d = 0;
  let orders30d = 0;
  let orders90d = 0;
  let spend7dMinor = 0;
  let spend30dMinor = 0;
  let spend90dMinor = 0;
  let returns90d = 0;
  let lines90d = 0;
  const purchaseDays90d: number[] = [];
  let views7d = 0;
  let searches7d = 0;
  let searches30d = 0;
  let carts7d = 0;
  for (const k in state.d) {
    const b = state.d[k];
    const d = Number(k);
    if (!b || d < day - 90) continue;
    orders90d += b[0];
    spend90dMinor += b[1];
    returns90d += b[2];
    lines90d += b[3];
    if (b[0] > 0) purchaseDays90d.push(d);
    if (d < day - 30) continue;
    orders30d += b[0];
    spend30dMinor += b[1];
    searches30d += b[5];
    if (d < day - 7) continue;
    orders7d += b[0];
    spend7dMinor += b[1];
    views7d += b[4];
    searches7d += b[5];
    carts7d += b[6];
  }
  let sessions30d = 0;
  let cartSessions30d = 0;
  let abandonedSessions30d = 0;
  let sessionDurationMs30d = 0;
  for (const k in state.s) {
    const s = state.s[k];
    if (!s || idx(s[0], DAY_MS) < day - SESSION_DAYS) continue;
    sessions30d++;
    sessionDurationMs30d += s[1] - s[0];
    if (s[2]) {
      cartSessions30d++;
      if (!s[3]) abandonedSessions30d++;
    }
  }
  const categories: CategoryAggregate[] = [];
  for (const category in state.c) {
    const c = state.c[category];
    if (!c) continue;
    let interactions90d = 0;
    let spend90d = 0;
    for (const k in c.d) {
      const b = c.d[k];
      if (!b || Number(k) < day - 90) continue;
      interactions90d += b[0];
      spend90d += b[1];
    }
    if (interactions90d > 0) categories.push({ category, interactions90d, spend90dMinor: spend90d, lastMs: c.l });
  }
  return {
    refMs,
    firstEventMs: state.f,
    lastEventMs: state.l,
    firstPurchaseMs: state.fp,
    lastPurchaseMs: state.lp,
    ordersLifetime: state.ol,
    spendLifetimeMinor: state.sl,
    orders7d,
    orders30d,
    orders90d,
    spend7dMinor,
    spend30dMinor,
    spend90dMinor,
    returns90d,
    lines90d,
    activeDays90d: purchaseDays90d.length,
    purchaseDays90d: purchaseDays90d.sort((a, b) => a - b),
    views1h,
    views24h,
    views7d,
    searches1h,
    searches24h,
    searches7d,
    searches30d,
    carts1h,
    carts24h,
    carts7d,
    hourCounts30d,
    sessions30d,
    cartSessions30d,
    abandonedSessions30d,
    sessionDurationMs30d,
    categories: categories.sort((a, b) => (a.category < b.category ? -1 : a.category > b.category ? 1 : 0)),
  };
}
