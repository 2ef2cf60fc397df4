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
      /** PURCHASE lines: category, amount (quantity × unit price) in minor units, brand ('' or null: none). */
      readonly lines: readonly {
        readonly category: string;
        readonly amountMinor: number;
        readonly brand?: string | null;
      }[];
      /** A coupon was redeemed (absent in hand-offs written before coupons were read: none). */
      readonly coupon?: boolean;
    }
  | {
      readonly kind: 'click';
      readonly eventId: string;
      readonly timeMs: number;
      readonly type: ClickType;
      readonly sessionId: string | null;
      readonly category: string | null;
      /** The click carries a review: its sentiment in thousandths (sentiment.ts); null or absent: no review. */
      readonly review?: number | null;
    };

/**
 * Time buckets are kept flat, as plain number arrays with a fixed stride: `[index, counts…, index, counts…]`, ascending
 * by bucket index (t / hop, floored). Events arrive nearly in time order, so a bucket is almost always the last one or
 * a new one appended; a scan over numbers allocates nothing (string-keyed records cost a string per key and read).
 */
/** Minute bucket stride: [minute, views, searches, add-to-carts]. */
export const M = 4;
/** Hour bucket stride: [hour, views, searches, add-to-carts, all events]. */
export const H = 5;
/** Day bucket stride: [day, orders, spend minor, returns, purchase lines, views, searches, add-to-carts]. */
export const D = 8;
/** Category day bucket stride: [day, interactions, spend minor]. */
export const C = 3;
/** Session stride: [first ms, last ms, had an add-to-cart (0/1), had a purchase (0/1)]. */
export const S = 4;
/** Extra day bucket stride: [day, purchases with a coupon, reviews, review sentiment sum (thousandths)]. */
export const X = 4;
/** Brand day bucket stride: [day, purchase lines of the brand]. */
export const B = 2;
/** Year day bucket stride: [day, purchases, spend minor, returns], only for days with a transaction. */
export const Y = 4;
/** Category: newest interaction and its day buckets (stride C). */
interface CategoryState {
  l: number;
  d: number[];
}

/** JSON-serializable state of one customer (format 2: flat buckets). */
export interface FeatureState {
  /** Format: 2 (format 1, string-keyed buckets, is read through {@link upgradeState}). */
  v: 2;
  /** First and newest event time applied. */
  f: number;
  l: number;
  /** First and newest purchase time, or null. */
  fp: number | null;
  lp: number | null;
  /** Lifetime purchases and their spend (minor units). */
  ol: number;
  sl: number;
  /** Minute, hour and day buckets, flat (strides M, H, D). */
  m: number[];
  h: number[];
  d: number[];
  c: Record<string, CategoryState>;
  /** Session ids and, flat in the same order, their state (stride S); the current session is almost always last. */
  s: string[];
  sv: number[];
  /**
   * Sessions pruned from `s` (first event before the 30-day window): ids and their first event time, kept for
   * SESSION_TOMBSTONE_DAYS more: a late event or a merged customer's part of such a session must not bring it back as a
   * new session inside the window.
   */
  st: string[];
  stv: number[];
  /**
   * Idempotency watermarks: highest input offset applied, per `<topic>:<partition>|<stream>` (logic.ts SourcedEvent):
   * within a partition only one published key's records are in offset order, so the key is part of the watermark.
   */
  wm: Record<string, number>;
  /** Newest event time per input stream (`<t|c>|<key>`, see logic.ts): lateness is judged within each stream. */
  lt: Record<string, number>;
  /** Events not applied because they were older than their stream's newest − grace. */
  late: number;
  /**
   * Coupons and reviews by day (stride X), and brands with their day buckets (names in `bn`, buckets in `bv`, same
   * order; parallel arrays rather than a record, so a brand named like an Object.prototype member is just a name).
   * Optional: created by the first coupon, review or branded purchase, so states without any (and every state
   * written before they existed) carry none of them.
   */
  x?: number[];
  bn?: string[];
  bv?: number[][];
  /**
   * Transactions by day over a year (stride Y): the 180- and 365-day purchase history. Optional: created by the first
   * transaction. A state written before it existed is given one from its day buckets when read ({@link upgradeState}),
   * which hold the transactions of the last 90 days, so such a customer's longer windows count from there on.
   */
  y?: number[];
}

/** How far back buckets are kept, relative to the newest event's bucket (the longest window using each hop). */
const KEEP_MINUTES = 60;
const KEEP_HOUR_DAYS = 30; // hour buckets also feed the 30-day preferred hour
const KEEP_DAYS = 90;
const KEEP_YEAR_DAYS = 365;
const SESSION_DAYS = 30;
/** How long a pruned session's start is remembered: sessions are assumed to last less than this. */
const SESSION_TOMBSTONE_DAYS = 7;

const idx = (t: number, hop: number) => Math.floor(t / hop);

/** Slot of a counted click type in minute/hour buckets (1 + slot), day buckets (5 + slot). */
const CLICK_SLOT: Partial<Record<ClickType, 0 | 1 | 2>> = { VIEW: 0, SEARCH: 1, ADD_TO_CART: 2 };

export function emptyState(): FeatureState {
  return {
    v: 2,
    f: Number.MAX_SAFE_INTEGER,
    l: 0,
    fp: null,
    lp: null,
    ol: 0,
    sl: 0,
    m: [],
    h: [],
    d: [],
    c: {},
    s: [],
    sv: [],
    st: [],
    stv: [],
    wm: {},
    lt: {},
    late: 0,
  };
}

export function isEmptyState(state: FeatureState): boolean {
  return state.l === 0 && state.f === Number.MAX_SAFE_INTEGER;
}

// Elements are read in place (`a[i] as number`), not through a helper: a shared helper's one load site saw every
// array kind of the state and went polymorphic (~1 µs per update on uniform traffic, `bench -- features-cpu`).

/** Position in `a` (stride `n`) of bucket `key`, inserted with zero counts when missing. */
function bucket(a: number[], n: number, key: number): number {
  let i = a.length - n;
  while (i >= 0 && (a[i] as number) > key) i -= n;
  if (i >= 0 && a[i] === key) return i;
  const pos = i + n;
  const fresh = new Array<number>(n).fill(0);
  fresh[0] = key;
  if (pos === a.length) a.push(...fresh);
  else a.splice(pos, 0, ...fresh);
  return pos;
}

function add(a: number[], i: number, v: number): void {
  a[i] = (a[i] as number) + v;
}

const minOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));
const maxOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));

/** Adds a session's part (first, last, cart, purchase) to `state`, unless it was pruned (then only its start). */
function addSession(state: FeatureState, id: string, first: number, last: number, cart: number, purchase: number) {
  const pruned = state.st.lastIndexOf(id);
  if (pruned >= 0) {
    state.stv[pruned] = Math.min(state.stv[pruned] as number, first); // began before the window: it stays out of it
    return;
  }
  const i = state.s.lastIndexOf(id);
  if (i < 0) {
    state.s.push(id);
    state.sv.push(first, last, cart, purchase);
    return;
  }
  const sv = state.sv;
  const o = i * S;
  sv[o] = Math.min(sv[o] as number, first);
  sv[o + 1] = Math.max(sv[o + 1] as number, last);
  sv[o + 2] = Math.max(sv[o + 2] as number, cart);
  sv[o + 3] = Math.max(sv[o + 3] as number, purchase);
}

function touchSession(state: FeatureState, id: string | null, t: number, cart: boolean, purchase: boolean): void {
  if (id) addSession(state, id, t, t, cart ? 1 : 0, purchase ? 1 : 0);
}

/**
 * A category's state. Own properties only, and created by definition rather than assignment: a category named like an
 * Object.prototype member (`__proto__`, `constructor`) is just a name (before, `__proto__` threw in the fold).
 */
function categoryOf(state: FeatureState, category: string): CategoryState | undefined {
  return Object.hasOwn(state.c, category) ? state.c[category] : undefined;
}

function addCategory(categories: Record<string, CategoryState>, category: string, c: CategoryState): void {
  // `__proto__` is the one name whose assignment does not make an own property (Object.prototype's accessor); every
  // other name is assigned (defineProperty per new category cost ~1 % of the processor's CPU).
  if (category === '__proto__') {
    Object.defineProperty(categories, category, { value: c, enumerable: true, writable: true, configurable: true });
  } else categories[category] = c;
}

function touchCategory(state: FeatureState, category: string, t: number, interactions: number, spend: number): void {
  let c = categoryOf(state, category);
  if (!c) {
    c = { l: t, d: [] };
    addCategory(state.c, category, c);
  }
  c.l = Math.max(c.l, t);
  const i = bucket(c.d, C, idx(t, DAY_MS));
  add(c.d, i + 1, interactions);
  add(c.d, i + 2, spend);
}

/** Folds one event into `state` (mutates it). The caller has already checked the watermark and the grace period. */
export function applyEvent(state: FeatureState, ev: FeatureEvent): void {
  const t = ev.timeMs;
  state.f = Math.min(state.f, t);
  state.l = Math.max(state.l, t);
  const h = bucket(state.h, H, idx(t, HOUR_MS));
  add(state.h, h + 4, 1);
  const day = idx(t, DAY_MS);
  if (ev.kind === 'transaction') {
    const d = bucket(state.d, D, day);
    const y = (state.y ??= []);
    const yi = bucket(y, Y, day);
    if (ev.purchase) {
      add(y, yi + 1, 1);
      add(y, yi + 2, ev.totalMinor);
      add(state.d, d + 1, 1);
      add(state.d, d + 2, ev.totalMinor);
      add(state.d, d + 4, ev.lines.length);
      state.fp = minOrNull(state.fp, t);
      state.lp = maxOrNull(state.lp, t);
      state.ol += 1;
      state.sl += ev.totalMinor;
      for (const line of ev.lines) {
        touchCategory(state, line.category, t, 1, line.amountMinor);
        if (line.brand) touchBrand(state, line.brand, day);
      }
      if (ev.coupon) add((state.x ??= []), bucket(state.x, X, day) + 1, 1);
    } else {
      add(state.d, d + 3, 1);
      add(y, yi + 3, 1);
    }
    touchSession(state, ev.sessionId, t, false, ev.purchase);
  } else {
    const slot = CLICK_SLOT[ev.type];
    if (slot !== undefined) {
      const m = bucket(state.m, M, idx(t, MINUTE_MS));
      add(state.m, m + 1 + slot, 1);
      add(state.h, h + 1 + slot, 1);
      add(state.d, bucket(state.d, D, day) + 5 + slot, 1);
    }
    if (ev.category && (ev.type === 'VIEW' || ev.type === 'ADD_TO_CART')) touchCategory(state, ev.category, t, 1, 0);
    touchSession(state, ev.sessionId, t, ev.type === 'ADD_TO_CART', ev.type === 'PURCHASE');
    if (ev.review !== undefined && ev.review !== null) {
      const x = (state.x ??= []);
      const i = bucket(x, X, day);
      add(x, i + 2, 1);
      add(x, i + 3, ev.review);
    }
  }
}

/** Counts one purchase line of `brand` on `day`. */
function touchBrand(state: FeatureState, brand: string, day: number): void {
  const names = (state.bn ??= []);
  const buckets = (state.bv ??= []);
  let i = names.lastIndexOf(brand);
  if (i < 0) {
    i = names.length;
    names.push(brand);
    buckets.push([]);
  }
  const d = buckets[i] as number[];
  add(d, bucket(d, B, day) + 1, 1);
}

/** Adds every bucket of `source` into `target` (both stride `n`). */
function addInto(target: number[], source: readonly number[], n: number): void {
  for (let j = 0; j < source.length; j += n) {
    const i = bucket(target, n, source[j] as number);
    for (let k = 1; k < n; k++) add(target, i + k, source[j + k] as number);
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
  addInto(into.m, from.m, M);
  addInto(into.h, from.h, H);
  addInto(into.d, from.d, D);
  for (const [name, c] of Object.entries(from.c)) {
    const mine = categoryOf(into, name);
    if (mine) {
      mine.l = Math.max(mine.l, c.l);
      addInto(mine.d, c.d, C);
    } else {
      addCategory(into.c, name, { l: c.l, d: [...c.d] });
    }
  }
  from.st.forEach((id, j) => {
    const first = from.stv[j] as number;
    addTombstone(into, id, first);
    const live = into.s.lastIndexOf(id);
    if (live >= 0) into.sv[live * S] = Math.min(into.sv[live * S] as number, first); // began earlier: prune decides
  });
  from.s.forEach((id, j) => {
    const o = j * S;
    addSession(
      into,
      id,
      from.sv[o] as number,
      from.sv[o + 1] as number,
      from.sv[o + 2] as number,
      from.sv[o + 3] as number,
    );
  });
  if (from.x) addInto((into.x ??= []), from.x, X);
  if (from.y) addInto((into.y ??= []), from.y, Y);
  from.bn?.forEach((brand, j) => {
    const names = (into.bn ??= []);
    const buckets = (into.bv ??= []);
    const source = from.bv?.[j] ?? [];
    const i = names.lastIndexOf(brand);
    if (i >= 0) addInto(buckets[i] as number[], source, B);
    else {
      names.push(brand);
      buckets.push([...source]);
    }
  });
  for (const [src, offset] of Object.entries(from.wm)) into.wm[src] = Math.max(into.wm[src] ?? -1, offset);
  for (const [kind, t] of Object.entries(from.lt)) into.lt[kind] = Math.max(into.lt[kind] ?? 0, t);
  into.late += from.late;
}

function addTombstone(state: FeatureState, id: string, first: number): void {
  const i = state.st.lastIndexOf(id);
  if (i >= 0) state.stv[i] = Math.min(state.stv[i] as number, first);
  else {
    state.st.push(id);
    state.stv.push(first);
  }
}

/** Drops the buckets (stride `n`) before `minKey`. */
function pruneBuckets(a: number[], n: number, minKey: number): void {
  let j = 0;
  while (j < a.length && (a[j] as number) < minKey) j += n;
  if (j > 0) a.splice(0, j);
}

/**
 * Drops what no window as of a time at or after the newest event can include (mutates). Exactness does not depend
 * on when this runs: dropped buckets would count for nothing anyway.
 */
export function prune(state: FeatureState): void {
  if (isEmptyState(state)) return;
  const dayNow = idx(state.l, DAY_MS);
  pruneBuckets(state.m, M, idx(state.l, MINUTE_MS) - KEEP_MINUTES);
  pruneBuckets(state.h, H, (dayNow - KEEP_HOUR_DAYS) * 24);
  pruneBuckets(state.d, D, dayNow - KEEP_DAYS);
  for (const name in state.c) {
    const c = state.c[name] as CategoryState;
    pruneBuckets(c.d, C, dayNow - KEEP_DAYS);
    if (c.d.length === 0) Reflect.deleteProperty(state.c, name);
  }
  if (state.x) pruneBuckets(state.x, X, dayNow - KEEP_DAYS);
  if (state.y) pruneBuckets(state.y, Y, dayNow - KEEP_YEAR_DAYS);
  const { bn, bv } = state;
  if (bn && bv) {
    let keptBrands = 0;
    for (let i = 0; i < bn.length; i++) {
      const d = bv[i] as number[];
      pruneBuckets(d, B, dayNow - KEEP_DAYS);
      if (d.length === 0) continue;
      bn[keptBrands] = bn[i] as string;
      bv[keptBrands] = d;
      keptBrands++;
    }
    bn.length = keptBrands;
    bv.length = keptBrands;
  }
  const { s, sv } = state;
  let kept = 0;
  for (let i = 0; i < s.length; i++) {
    const first = sv[i * S] as number;
    if (idx(first, DAY_MS) < dayNow - SESSION_DAYS) {
      addTombstone(state, s[i] as string, first);
      continue;
    }
    if (kept !== i) {
      s[kept] = s[i] as string;
      for (let k = 0; k < S; k++) sv[kept * S + k] = sv[i * S + k] as number;
    }
    kept++;
  }
  s.length = kept;
  sv.length = kept * S;
  const { st, stv } = state;
  let live = 0;
  for (let i = 0; i < st.length; i++) {
    if (idx(stv[i] as number, DAY_MS) < dayNow - SESSION_DAYS - SESSION_TOMBSTONE_DAYS) continue;
    st[live] = st[i] as string;
    stv[live] = stv[i] as number;
    live++;
  }
  st.length = live;
  stv.length = live;
}

/** Format 1 of the state (string-keyed bucket records): what checkpoints and hand-offs written before format 2 hold. */
interface StateV1 extends Omit<FeatureState, 'v' | 'm' | 'h' | 'd' | 'c' | 's' | 'sv' | 'st' | 'stv'> {
  s: Record<string, number[]>;
  st?: Record<string, number>;
  m: Record<string, number[]>;
  h: Record<string, number[]>;
  d: Record<string, number[]>;
  c: Record<string, { l: number; d: Record<string, number[]> }>;
}

/** Format 1 buckets (key → counts) as flat buckets of stride `n` (the first n − 1 counts of each). */
function flatten(record: Record<string, number[]>, n: number): number[] {
  const out: number[] = [];
  const keys = Object.keys(record)
    .map(Number)
    .sort((a, b) => a - b);
  for (const k of keys) {
    const counts = record[String(k)] ?? [];
    out.push(k);
    for (let i = 0; i < n - 1; i++) out.push(counts[i] ?? 0);
  }
  return out;
}

/** A stored or handed-off state in whichever format it was written, as format 2 (format 1 is converted exactly). */
export function upgradeState(stored: FeatureState | StateV1): FeatureState {
  if ('v' in stored && stored.v === 2) return withYear(stored);
  const v1 = stored as StateV1;
  const c: Record<string, CategoryState> = {};
  for (const [name, cat] of Object.entries(v1.c)) addCategory(c, name, { l: cat.l, d: flatten(cat.d, C) });
  // Format 1 minute buckets were [views, searches, carts, all]; hour [views, searches, carts, all]; day as format 2.
  const sessions = Object.entries(v1.s);
  const tombstones = Object.entries(v1.st ?? {});
  return withYear({
    ...v1,
    v: 2,
    m: flatten(v1.m, M),
    h: flatten(v1.h, H),
    d: flatten(v1.d, D),
    c,
    s: sessions.map(([id]) => id),
    sv: sessions.flatMap(([, v]) => v.slice(0, S)),
    st: tombstones.map(([id]) => id),
    stv: tombstones.map(([, first]) => first),
  });
}

/**
 * A state written before the year buckets existed gets them from its day buckets (the transactions it still holds,
 * those of the last 90 days); one that has them, or has no transaction in its day buckets, is returned as it is.
 */
function withYear(state: FeatureState): FeatureState {
  if (state.y) return state;
  const { d } = state;
  let y: number[] | undefined;
  for (let i = 0; i < d.length; i += D) {
    if ((d[i + 1] as number) === 0 && (d[i + 3] as number) === 0) continue;
    (y ??= []).push(d[i] as number, d[i + 1] as number, d[i + 2] as number, d[i + 3] as number);
  }
  if (y) state.y = y;
  return state;
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
  // One pass per bucket array (this runs on every update, so it allocates next to nothing).
  let views1h = 0;
  let searches1h = 0;
  let carts1h = 0;
  const { m, h: hb, d: db } = state;
  for (let i = 0; i < m.length; i += M) {
    if ((m[i] as number) < minute - 60) continue;
    views1h += m[i + 1] as number;
    searches1h += m[i + 2] as number;
    carts1h += m[i + 3] as number;
  }
  let views24h = 0;
  let searches24h = 0;
  let carts24h = 0;
  const hourCounts30d = new Array<number>(24).fill(0);
  for (let i = 0; i < hb.length; i += H) {
    const h = hb[i] as number;
    if (h < (day - 30) * 24) continue;
    hourCounts30d[h % 24] = (hourCounts30d[h % 24] as number) + (hb[i + 4] as number);
    if (h < hour - 24) continue;
    views24h += hb[i + 1] as number;
    searches24h += hb[i + 2] as number;
    carts24h += hb[i + 3] as number;
  }
  let orders7d = 0;
  let orders30d = 0;
  let orders90d = 0;
  let spend7dMinor = 0;
  let spend30dMinor = 0;
  let spend90dMinor = 0;
  let returns90d = 0;
  let lines90d = 0;
  const purchaseDays90d: number[] = []; // ascending: the buckets are
  let views7d = 0;
  let searches7d = 0;
  let searches30d = 0;
  let carts7d = 0;
  for (let i = 0; i < db.length; i += D) {
    const d = db[i] as number;
    if (d < day - 90) continue;
    const orders = db[i + 1] as number;
    const spend = db[i + 2] as number;
    orders90d += orders;
    spend90dMinor += spend;
    returns90d += db[i + 3] as number;
    lines90d += db[i + 4] as number;
    if (orders > 0) purchaseDays90d.push(d);
    if (d < day - 30) continue;
    orders30d += orders;
    spend30dMinor += spend;
    searches30d += db[i + 6] as number;
    if (d < day - 7) continue;
    orders7d += orders;
    spend7dMinor += spend;
    views7d += db[i + 5] as number;
    searches7d += db[i + 6] as number;
    carts7d += db[i + 7] as number;
  }
  let sessions30d = 0;
  let cartSessions30d = 0;
  let abandonedSessions30d = 0;
  let sessionDurationMs30d = 0;
  const sv = state.sv;
  for (let o = 0; o < sv.length; o += S) {
    const first = sv[o] as number;
    if (idx(first, DAY_MS) < day - SESSION_DAYS) continue;
    sessions30d++;
    sessionDurationMs30d += (sv[o + 1] as number) - first;
    if (sv[o + 2] as number) {
      cartSessions30d++;
      if (!(sv[o + 3] as number)) abandonedSessions30d++;
    }
  }
  const categories: CategoryAggregate[] = [];
  for (const category in state.c) {
    const c = state.c[category] as CategoryState;
    let interactions90d = 0;
    let spend90d = 0;
    for (let i = 0; i < c.d.length; i += C) {
      if ((c.d[i] as number) < day - 90) continue;
      interactions90d += c.d[i + 1] as number;
      spend90d += c.d[i + 2] as number;
    }
    if (interactions90d > 0) categories.push(new Category90d(category, interactions90d, spend90d, c.l));
  }
  let couponOrders90d = 0;
  let reviews90d = 0;
  let reviewSentimentMilli90d = 0;
  const x = state.x ?? NONE;
  for (let i = 0; i < x.length; i += X) {
    if ((x[i] as number) < day - 90) continue;
    couponOrders90d += x[i + 1] as number;
    reviews90d += x[i + 2] as number;
    reviewSentimentMilli90d += x[i + 3] as number;
  }
  let orders180d = 0;
  let orders365d = 0;
  let spend180dMinor = 0;
  let spend365dMinor = 0;
  let returns365d = 0;
  const purchaseDays365d: number[] = []; // ascending: the buckets are
  const y = state.y ?? NONE;
  for (let i = 0; i < y.length; i += Y) {
    const d = y[i] as number;
    if (d < day - 365) continue;
    const orders = y[i + 1] as number;
    orders365d += orders;
    spend365dMinor += y[i + 2] as number;
    returns365d += y[i + 3] as number;
    if (orders > 0) purchaseDays365d.push(d);
    if (d < day - 180) continue;
    orders180d += orders;
    spend180dMinor += y[i + 2] as number;
  }
  let brandedLines90d = 0;
  let favoriteBrandLines90d = 0;
  for (const d of state.bv ?? NONE_NESTED) {
    let lines = 0;
    for (let i = 0; i < d.length; i += B) if ((d[i] as number) >= day - 90) lines += d[i + 1] as number;
    brandedLines90d += lines;
    favoriteBrandLines90d = Math.max(favoriteBrandLines90d, lines);
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
    purchaseDays90d,
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
    couponOrders90d,
    brandedLines90d,
    favoriteBrandLines90d,
    reviews90d,
    reviewSentimentMilli90d,
    orders180d,
    orders365d,
    spend180dMinor,
    spend365dMinor,
    returns365d,
    purchaseDays365d,
  };
}

/**
 * A category's 90-day aggregate as aggregatesOf builds it, one per category and update. A class rather than an object
 * literal: its objects get a shape of their own. As a literal starting with `category` it shared V8's map transitions
 * with every other literal starting with that key (events, rows), whose field generalizations made each construction
 * slow: on uniform traffic (`bench -- features-cpu`) aggregatesOf took ~10 µs, 5 with the class.
 */
class Category90d implements CategoryAggregate {
  constructor(
    readonly category: string,
    readonly interactions90d: number,
    readonly spend90dMinor: number,
    readonly lastMs: number,
  ) {}
}

const NONE: readonly number[] = [];
const NONE_NESTED: readonly (readonly number[])[] = [];
