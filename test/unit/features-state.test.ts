// The streaming feature state against an independent, brute-force reading of the definitions (definitions.ts):
// any order, any split across merged customers, redeliveries and pruning must give the oracle's aggregates.
import { describe, expect, it } from 'vitest';
import {
  DAY_MS,
  DEFAULT_CUT_POINTS,
  HOUR_MS,
  MINUTE_MS,
  type WindowAggregates,
} from '../../processors/features/definitions.js';
import {
  currentFeatures,
  foldEvents,
  hashChanges,
  hashFields,
  type ServedHash,
  type SourcedEvent,
} from '../../processors/features/logic.js';
import {
  aggregatesOf,
  emptyState,
  mergeStates,
  prune,
  upgradeState,
  type ClickType,
  type FeatureEvent,
  type FeatureState,
} from '../../processors/features/state.js';
import { seededRandom } from '../../processors/identity/model.js';

const T0 = Date.UTC(2026, 0, 1);
const NO_GRACE_LIMIT = 10_000 * DAY_MS;

/** The definitions read literally, over a plain list of events. */
function oracle(events: readonly FeatureEvent[], refMs: number): WindowAggregates {
  const evs = events.filter((e) => e.timeMs <= refMs);
  const inWin = (t: number, w: number, hop: number) => Math.floor(t / hop) >= Math.floor(refMs / hop) - w / hop;
  const txs = evs.flatMap((e) => (e.kind === 'transaction' ? [e] : []));
  const clicks = evs.flatMap((e) => (e.kind === 'click' ? [e] : []));
  const purchases = txs.filter((t) => t.purchase);
  const count = (type: ClickType, w: number, hop: number) =>
    clicks.filter((c) => c.type === type && inWin(c.timeMs, w, hop)).length;
  const ordersIn = (w: number) => purchases.filter((p) => inWin(p.timeMs, w, DAY_MS));
  const hourCounts30d = new Array<number>(24).fill(0);
  for (const e of evs) {
    if (inWin(e.timeMs, 30 * DAY_MS, DAY_MS)) hourCounts30d[Math.floor(e.timeMs / HOUR_MS) % 24]! += 1;
  }
  const sessions = new Map<string, { first: number; last: number; cart: boolean; purchase: boolean }>();
  for (const e of evs) {
    if (!e.sessionId) continue;
    const s = sessions.get(e.sessionId) ?? { first: e.timeMs, last: e.timeMs, cart: false, purchase: false };
    s.first = Math.min(s.first, e.timeMs);
    s.last = Math.max(s.last, e.timeMs);
    if (e.kind === 'click' && e.type === 'ADD_TO_CART') s.cart = true;
    if ((e.kind === 'click' && e.type === 'PURCHASE') || (e.kind === 'transaction' && e.purchase)) s.purchase = true;
    sessions.set(e.sessionId, s);
  }
  const inSessions = [...sessions.values()].filter((s) => inWin(s.first, 30 * DAY_MS, DAY_MS));
  const cats = new Map<string, { interactions90d: number; spend90dMinor: number; lastMs: number }>();
  const touch = (category: string, t: number, spend: number) => {
    if (!inWin(t, 90 * DAY_MS, DAY_MS)) return;
    const c = cats.get(category) ?? { interactions90d: 0, spend90dMinor: 0, lastMs: 0 };
    c.interactions90d++;
    c.spend90dMinor += spend;
    c.lastMs = Math.max(c.lastMs, t);
    cats.set(category, c);
  };
  for (const p of purchases) for (const l of p.lines) touch(l.category, p.timeMs, l.amountMinor);
  for (const c of clicks)
    if (c.category && (c.type === 'VIEW' || c.type === 'ADD_TO_CART')) touch(c.category, c.timeMs, 0);
  const brands = new Map<string, number>();
  for (const p of ordersIn(90 * DAY_MS))
    for (const l of p.lines) if (l.brand) brands.set(l.brand, (brands.get(l.brand) ?? 0) + 1);
  const reviews = clicks.filter((c) => c.review != null && inWin(c.timeMs, 90 * DAY_MS, DAY_MS));
  const times = evs.map((e) => e.timeMs);
  const ptimes = purchases.map((p) => p.timeMs);
  const sum = (xs: readonly { totalMinor: number }[]) => xs.reduce((n, x) => n + x.totalMinor, 0);
  return {
    refMs,
    firstEventMs: Math.min(...times),
    lastEventMs: Math.max(...times),
    firstPurchaseMs: ptimes.length ? Math.min(...ptimes) : null,
    lastPurchaseMs: ptimes.length ? Math.max(...ptimes) : null,
    ordersLifetime: purchases.length,
    spendLifetimeMinor: sum(purchases),
    orders7d: ordersIn(7 * DAY_MS).length,
    orders30d: ordersIn(30 * DAY_MS).length,
    orders90d: ordersIn(90 * DAY_MS).length,
    spend7dMinor: sum(ordersIn(7 * DAY_MS)),
    spend30dMinor: sum(ordersIn(30 * DAY_MS)),
    spend90dMinor: sum(ordersIn(90 * DAY_MS)),
    returns90d: txs.filter((t) => !t.purchase && inWin(t.timeMs, 90 * DAY_MS, DAY_MS)).length,
    lines90d: ordersIn(90 * DAY_MS).reduce((n, p) => n + p.lines.length, 0),
    activeDays90d: new Set(ordersIn(90 * DAY_MS).map((p) => Math.floor(p.timeMs / DAY_MS))).size,
    purchaseDays90d: [...new Set(ordersIn(90 * DAY_MS).map((p) => Math.floor(p.timeMs / DAY_MS)))].sort(
      (a, b) => a - b,
    ),
    views1h: count('VIEW', HOUR_MS, MINUTE_MS),
    views24h: count('VIEW', DAY_MS, HOUR_MS),
    views7d: count('VIEW', 7 * DAY_MS, DAY_MS),
    searches1h: count('SEARCH', HOUR_MS, MINUTE_MS),
    searches24h: count('SEARCH', DAY_MS, HOUR_MS),
    searches7d: count('SEARCH', 7 * DAY_MS, DAY_MS),
    searches30d: count('SEARCH', 30 * DAY_MS, DAY_MS),
    carts1h: count('ADD_TO_CART', HOUR_MS, MINUTE_MS),
    carts24h: count('ADD_TO_CART', DAY_MS, HOUR_MS),
    carts7d: count('ADD_TO_CART', 7 * DAY_MS, DAY_MS),
    hourCounts30d,
    sessions30d: inSessions.length,
    cartSessions30d: inSessions.filter((s) => s.cart).length,
    abandonedSessions30d: inSessions.filter((s) => s.cart && !s.purchase).length,
    sessionDurationMs30d: inSessions.reduce((n, s) => n + s.last - s.first, 0),
    categories: [...cats]
      .map(([category, c]) => ({ category, ...c }))
      .sort((a, b) => (a.category < b.category ? -1 : 1)),
    couponOrders90d: ordersIn(90 * DAY_MS).filter((p) => p.coupon).length,
    brandedLines90d: [...brands.values()].reduce((n, v) => n + v, 0),
    favoriteBrandLines90d: Math.max(0, ...brands.values()),
    reviews90d: reviews.length,
    reviewSentimentMilli90d: reviews.reduce((n, c) => n + (c.review ?? 0), 0),
    orders180d: ordersIn(180 * DAY_MS).length,
    orders365d: ordersIn(365 * DAY_MS).length,
    spend180dMinor: sum(ordersIn(180 * DAY_MS)),
    spend365dMinor: sum(ordersIn(365 * DAY_MS)),
    returns365d: txs.filter((t) => !t.purchase && inWin(t.timeMs, 365 * DAY_MS, DAY_MS)).length,
    purchaseDays365d: [...new Set(ordersIn(365 * DAY_MS).map((p) => Math.floor(p.timeMs / DAY_MS)))].sort(
      (a, b) => a - b,
    ),
  };
}

const CLICK_TYPES: readonly ClickType[] = ['VIEW', 'VIEW', 'VIEW', 'SEARCH', 'ADD_TO_CART', 'PURCHASE', 'IDENTIFY'];
/** Names of Object.prototype members are categories like any other. */
const CATEGORIES = ['books', 'garden', 'toys', '__proto__', 'constructor'];
/** '' is no brand, as null is; 'constructor' and '__proto__' are brands like any other. */
const BRANDS = ['Acme', 'Zenith', 'constructor', '__proto__', '', null];

/**
 * A customer's history over ~400 days (the longest window is 365), dense near the end so every window has events at
 * its edges.
 */
function history(seed: number, n: number): FeatureEvent[] {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const end = T0 + 400 * DAY_MS;
  return Array.from({ length: n }, (_, i): FeatureEvent => {
    const back = rnd() < 0.5 ? rnd() * 2 * DAY_MS : rnd() * 400 * DAY_MS;
    const timeMs = Math.floor(end - back);
    const sessionId = rnd() < 0.8 ? `s${Math.floor(timeMs / (2 * HOUR_MS))}` : null;
    if (rnd() < 0.25) {
      const purchase = rnd() < 0.85;
      const lines = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => ({
        category: pick(CATEGORIES),
        amountMinor: 100 + Math.floor(rnd() * 5_000),
        brand: pick(BRANDS),
      }));
      const totalMinor = lines.reduce((a, l) => a + l.amountMinor, 0);
      return {
        kind: 'transaction',
        eventId: `e${seed}-${i}`,
        timeMs,
        purchase,
        totalMinor: purchase ? totalMinor : -totalMinor,
        sessionId,
        lines: purchase ? lines : [],
        coupon: rnd() < 0.3,
      };
    }
    const type = pick(CLICK_TYPES);
    return {
      kind: 'click',
      eventId: `e${seed}-${i}`,
      timeMs,
      type,
      sessionId,
      category: rnd() < 0.7 ? pick(CATEGORIES) : null,
      review: rnd() < 0.15 ? Math.floor(rnd() * 2_000) - 1_000 : null,
    };
  });
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const rnd = seededRandom(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Records on `source` with consecutive offsets from `from`. */
const sourced = (events: readonly FeatureEvent[], source = 'topic:0', from = 0): SourcedEvent[] =>
  events.map((event, i) => ({ event, source, offset: from + i, stream: `${event.kind}|${source}` }));

function fold(events: readonly FeatureEvent[], source?: string, batchSize = 7): FeatureState {
  const state = emptyState();
  const records = sourced(events, source);
  // Pruned after every batch, as the processor prunes a changed state at every flush.
  for (let i = 0; i < records.length; i += batchSize) {
    foldEvents(state, records.slice(i, i + batchSize), NO_GRACE_LIMIT);
    prune(state);
  }
  return state;
}

const newest = (events: readonly FeatureEvent[]) => Math.max(...events.map((e) => e.timeMs));

describe('feature state', () => {
  it('matches the definitions read literally, for events in any order, as of the newest event and later', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const events = history(seed, 400);
      const state = fold(shuffled(events, seed * 31));
      const t = newest(events);
      for (const ref of [t, t + 30 * MINUTE_MS, t + 20 * HOUR_MS, t + 6 * DAY_MS, t + 45 * DAY_MS]) {
        expect(aggregatesOf(state, ref)).toEqual(oracle(events, ref));
      }
    }
  });

  it('a merged customer equals one that received every event under one id', () => {
    for (const seed of [11, 12, 13]) {
      const events = history(seed, 300);
      const rnd = seededRandom(seed);
      const a = events.filter(() => rnd() < 0.5);
      const b = events.filter((e) => !a.includes(e));
      const merged = fold(a, 'clicks:0');
      mergeStates(merged, fold(b, 'clicks:1'));
      const single = fold(events, 'clicks:0');
      const t = newest(events);
      expect(aggregatesOf(merged, t)).toEqual(aggregatesOf(single, t));
      expect(aggregatesOf(merged, t)).toEqual(oracle(events, t));
      // ...and merging twice (a redelivered merge applied to a copy) would double-count: the store aliases the loser.
    }
  });

  it('keeps a session that began before the window out of it when its other part arrives by merge or late', () => {
    const d0 = Date.UTC(2026, 2, 1);
    const view = (id: string, timeMs: number): FeatureEvent => ({
      kind: 'click',
      eventId: id,
      timeMs,
      type: 'VIEW',
      sessionId: 'straddler',
      category: null,
    });
    const e1 = view('e1', d0 + 23 * HOUR_MS); // day 0
    const e2 = view('e2', d0 + 25 * HOUR_MS); // day 1: the same session, past midnight
    const later = { ...view('e3', d0 + 31 * DAY_MS + HOUR_MS), sessionId: 'other' }; // moves the window to day 1
    const a = fold([e1, later], 'clicks:0'); // prunes the straddler: it began on day 0
    const b = fold([e2], 'clicks:1');
    mergeStates(a, b);
    const t = later.timeMs;
    expect(aggregatesOf(a, t)).toEqual(oracle([e1, e2, later], t));
    expect(aggregatesOf(a, t).sessions30d).toBe(1);
    const late = fold([e1, later], 'clicks:0'); // ...and the same for its part arriving late
    foldEvents(late, [{ event: e2, source: 'clicks:0', offset: 99, stream: 'click|clicks:0' }], 40 * DAY_MS);
    expect(aggregatesOf(late, t)).toEqual(oracle([e1, e2, later], t));
  });

  it('ignores redelivered records: a replayed batch changes nothing', () => {
    const events = history(21, 200);
    const records = sourced(events, 'tx:2', 100);
    const state = emptyState();
    foldEvents(state, records.slice(0, 150), NO_GRACE_LIMIT);
    const before = JSON.stringify(state);
    const again = foldEvents(state, records.slice(50, 150), NO_GRACE_LIMIT); // redelivery after a crash
    expect(again).toMatchObject({ applied: 0, duplicates: 100 });
    expect(JSON.stringify(state)).toBe(before);
    const rest = foldEvents(state, records.slice(100), NO_GRACE_LIMIT); // overlap + new records
    expect(rest).toMatchObject({ applied: 50, duplicates: 50 });
    expect(aggregatesOf(state, newest(events))).toEqual(oracle(events, newest(events)));
  });

  it("applies a merged-away id's records that share a partition with the survivor's, whichever group folds first", () => {
    // One chunk of partition 0: survivor c-S at offsets 10 and 20, merged-away c-L at 15. The processor folds each
    // published key's records as a group into the root's state; c-S's group folding first must not make c-L's lower
    // offset look like a redelivery.
    const [e1, e2, e3] = history(5, 3);
    const state = emptyState();
    const s = foldEvents(
      state,
      [
        { event: e1!, source: 'tx:0', offset: 10, stream: 'transaction|c-S' },
        { event: e2!, source: 'tx:0', offset: 20, stream: 'transaction|c-S' },
      ],
      NO_GRACE_LIMIT,
    );
    const l = foldEvents(
      state,
      [{ event: e3!, source: 'tx:0', offset: 15, stream: 'transaction|c-L' }],
      NO_GRACE_LIMIT,
    );
    expect(s).toMatchObject({ applied: 2, duplicates: 0 });
    expect(l).toMatchObject({ applied: 1, duplicates: 0 });
    // ...and a redelivery of either group is still recognised.
    const again = foldEvents(state, [{ event: e3!, source: 'tx:0', offset: 15, stream: 'transaction|c-L' }], 0);
    expect(again).toMatchObject({ applied: 0, duplicates: 1 });
  });

  it('serves the features hash as changes: applying them to the previous hash gives exactly the full hash', () => {
    const events = history(33, 300);
    const state = emptyState();
    const hash = new Map<string, string>();
    let served: ServedHash | null = null;
    let written = 0;
    let full = 0;
    for (const [i, r] of sourced(events, 'tx:0').entries()) {
      foldEvents(state, [r], NO_GRACE_LIMIT);
      const features = currentFeatures(state, DEFAULT_CUT_POINTS);
      if (!features) continue;
      const changes = hashChanges(features, served, i, 1_000 + i);
      if (changes.replace) hash.clear();
      for (const f of changes.del) hash.delete(f);
      for (let k = 0; k < changes.set.length; k += 2) hash.set(changes.set[k]!, changes.set[k + 1]!);
      served = changes.next;
      const expected = hashFields(features, i, 1_000 + i);
      expect(Object.fromEntries(hash)).toEqual(
        Object.fromEntries(
          Array.from({ length: expected.length / 2 }, (_, k) => [expected[2 * k], expected[2 * k + 1]]),
        ),
      );
      written += changes.set.length;
      full += expected.length;
    }
    expect(written).toBeLessThan(full * 0.8); // and it does write less
  });

  it('applies a late event within the grace period exactly, and counts an older one without applying it', () => {
    const base = T0 + 100 * DAY_MS;
    const click = (i: number, timeMs: number): FeatureEvent => ({
      kind: 'click',
      eventId: `c${i}`,
      timeMs,
      type: 'VIEW',
      sessionId: null,
      category: 'books',
    });
    const state = emptyState();
    const grace = 2 * HOUR_MS;
    foldEvents(state, [{ event: click(0, base), source: 'topic:0', offset: 0, stream: 'click|c-1' }], grace);
    const at = (event: FeatureEvent, offset: number, stream = 'click|c-1') => [
      { event, source: 'topic:0', offset, stream },
    ];
    const within = foldEvents(state, at(click(1, base - grace + 1), 1), grace);
    expect(within).toMatchObject({ applied: 1, late: 0 });
    const tooLate = foldEvents(state, at(click(2, base - grace - 1), 2), grace);
    expect(tooLate).toMatchObject({ applied: 0, late: 1 });
    expect(state.late).toBe(1);
    expect(aggregatesOf(state, base)).toEqual(oracle([click(0, base), click(1, base - grace + 1)], base));
    // Lateness is per input stream: a transaction, or a click of a merged-away id, far older than the newest click is not late.
    const tx: FeatureEvent = {
      kind: 'transaction',
      eventId: 't0',
      timeMs: base - 10 * DAY_MS,
      purchase: true,
      totalMinor: 500,
      sessionId: null,
      lines: [{ category: 'books', amountMinor: 500 }],
    };
    expect(
      foldEvents(state, [{ event: tx, source: 'tx:0', offset: 0, stream: 'transaction|c-1' }], grace),
    ).toMatchObject({
      applied: 1,
    });
    expect(foldEvents(state, at(click(3, base - 5 * DAY_MS), 3, 'click|c-2'), grace)).toMatchObject({ applied: 1 });
  });

  it('counts an event exactly on a hop boundary and excludes one hop beyond the window', () => {
    const ref = Date.UTC(2026, 5, 10, 12, 30, 15);
    const view = (i: number, timeMs: number): FeatureEvent => ({
      kind: 'click',
      eventId: `v${i}`,
      timeMs,
      type: 'VIEW',
      sessionId: null,
      category: null,
    });
    const minuteStart = Math.floor(ref / MINUTE_MS) * MINUTE_MS;
    const events = [
      view(0, minuteStart - 60 * MINUTE_MS), // first instant of the 1 h window (61 minute buckets)
      view(1, minuteStart - 60 * MINUTE_MS - 1), // 1 ms before it
      view(2, ref),
    ];
    const agg = aggregatesOf(fold(events), ref);
    expect(agg.views1h).toBe(2);
    expect(agg.views24h).toBe(3);
    expect(agg).toEqual(oracle(events, ref));
  });

  it('survives JSON (the Redis representation) and rejects a reference time before its newest event', () => {
    const events = history(31, 120);
    const state = fold(events);
    const copy = JSON.parse(JSON.stringify(state)) as FeatureState;
    const t = newest(events);
    expect(aggregatesOf(copy, t + DAY_MS)).toEqual(aggregatesOf(state, t + DAY_MS));
    expect(() => aggregatesOf(state, t - 1)).toThrow(/precedes the newest event/);
  });

  it('reads a format 1 state (string-keyed buckets, as checkpoints and hand-offs written before format 2) exactly', () => {
    for (const seed of [41, 42]) {
      const events = history(seed, 300);
      const state = fold(events);
      // Format 1 as the previous code wrote it: bucket index → counts, sessions and tombstones by id.
      const record = (flat: readonly number[], n: number, pad: number) => {
        const out: Record<string, number[]> = {};
        for (let i = 0; i < flat.length; i += n)
          out[String(flat[i])] = [...flat.slice(i + 1, i + n), ...new Array<number>(pad).fill(7)];
        return out;
      };
      const v1 = {
        ...state,
        v: undefined,
        m: record(state.m, 4, 1), // format 1 minute buckets also counted all events (unused)
        h: record(state.h, 5, 0),
        d: record(state.d, 8, 0),
        c: Object.fromEntries(Object.entries(state.c).map(([k, c]) => [k, { l: c.l, d: record(c.d, 3, 0) }])),
        s: Object.fromEntries(state.s.map((id, i) => [id, state.sv.slice(i * 4, i * 4 + 4)])),
        st: Object.fromEntries(state.st.map((id, i) => [id, state.stv[i]])),
        sv: undefined,
        stv: undefined,
      };
      const upgraded = upgradeState(JSON.parse(JSON.stringify(v1)) as Parameters<typeof upgradeState>[0]);
      const t = newest(events);
      for (const ref of [t, t + 10 * DAY_MS]) expect(aggregatesOf(upgraded, ref)).toEqual(oracle(events, ref));
      const later = history(seed + 100, 50).map((e) => ({ ...e, timeMs: e.timeMs + 20 * DAY_MS }));
      foldEvents(upgraded, sourced(later, 'topic:9'), NO_GRACE_LIMIT); // and it keeps folding as format 2
      const t2 = newest([...events, ...later]);
      expect(aggregatesOf(upgraded, t2)).toEqual(oracle([...events, ...later], t2));
    }
  });

  it('gives a state written before the year buckets its last 90 days of transactions, then keeps the year exactly', () => {
    for (const seed of [51, 52]) {
      const events = history(seed, 300);
      const state = fold(events);
      const old: Partial<FeatureState> = JSON.parse(JSON.stringify(state)) as FeatureState;
      delete old.y; // as the previous code wrote it
      const upgraded = upgradeState(old as FeatureState);
      const t = newest(events);
      // What such a state still knows: the day buckets, i.e. the transactions of the days from t's day − 90 on.
      const kept = events.filter(
        (e) => e.kind === 'click' || Math.floor(e.timeMs / DAY_MS) >= Math.floor(t / DAY_MS) - 90,
      );
      const want = oracle(kept, t);
      const got = aggregatesOf(upgraded, t);
      expect(got).toEqual({ ...oracle(events, t), ...pickYear(want) });
      expect(got.orders365d).toBeLessThan(oracle(events, t).orders365d); // the history did reach further back
      // ...and from there on the year buckets fold, merge and prune like any state's.
      const later = history(seed + 100, 80).map((e) => ({ ...e, timeMs: e.timeMs + 30 * DAY_MS }));
      foldEvents(upgraded, sourced(later, 'topic:9'), NO_GRACE_LIMIT);
      const t2 = newest([...events, ...later]);
      expect(aggregatesOf(upgraded, t2)).toEqual({
        ...oracle([...events, ...later], t2),
        ...pickYear(oracle([...kept, ...later], t2)),
      });
    }
  });

  it('leaves a state without any transaction in its day buckets without year buckets', () => {
    const clicks = history(61, 100).filter((e) => e.kind === 'click');
    const state = fold(clicks);
    expect(state.y).toBeUndefined();
    expect(upgradeState(JSON.parse(JSON.stringify(state)) as FeatureState).y).toBeUndefined();
  });
});

/** The aggregates of the year buckets. */
function pickYear(a: WindowAggregates): Partial<WindowAggregates> {
  const { orders180d, orders365d, spend180dMinor, spend365dMinor, returns365d, purchaseDays365d } = a;
  return { orders180d, orders365d, spend180dMinor, spend365dMinor, returns365d, purchaseDays365d };
}
