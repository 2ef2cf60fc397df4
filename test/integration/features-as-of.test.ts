// The warehouse execution of the feature definitions on a real ClickHouse: hand-made fact rows (identified customers on
// two platforms, a re-linked identity, anonymous clicks and a guest order, a re-delivered event, events on window edges
// and one just after the reference time) give the aggregates worked out by hand below; cut points, daily snapshots
// driven by event time and the `npm run features` CLI are checked on the same data.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  aggregatesAsOf,
  computeCutPoints,
  customersWithEventsBefore,
  customersWithPurchases,
  featuresAsOf,
  pairKey,
  randomRefMs,
} from '../../processors/features/as-of.js';
import { cutPointsKey, loadCutPoints } from '../../processors/features/cutpoints.js';
import { loadStoredCutPoints, storeCutPoints } from '../../processors/features/cutpoints-warehouse.js';
import {
  AFFINITY_WEIGHTS,
  DAY_MS,
  DEFAULT_CUT_POINTS,
  FEATURE_NAMES,
  HOUR_MS,
  MINUTE_MS,
  type WindowAggregates,
} from '../../processors/features/definitions.js';
import {
  FeatureSnapshotter,
  lastSnapshotDay,
  snapshotDay,
  warehouseEventTimes,
} from '../../processors/features/snapshots.js';
import { emptyAggregates } from '../fixtures/aggregates.js';
import { createTestContext, envOf, waitFor, type TestContext } from '../helpers/context.js';

/** The reference time: 2024-03-10 12:30:00.000 UTC, on a minute boundary. */
const T = Date.UTC(2024, 2, 10, 12, 30);
const DAY_START = Math.floor(T / DAY_MS) * DAY_MS;
const HOUR_START = Math.floor(T / HOUR_MS) * HOUR_MS;

// --- Fact rows, as the warehouse sink writes them ---

interface Tx {
  id: string;
  platform?: string;
  customer?: string;
  order?: string;
  kind?: 'PURCHASE' | 'RETURN';
  total: number;
  t: number;
  session?: string;
  coupon?: string;
  lines: readonly { category: string; amount: number; brand?: string }[];
}

interface Click {
  id: string;
  platform?: string;
  customer?: string;
  type: string;
  t: number;
  session?: string;
  device?: string;
  category?: string;
  /** A review and the score the sink stored for it (this test writes the rows, so it picks the score). */
  review?: string;
  sentiment?: number;
}

const seconds = (ms: number) => Math.floor(ms / 1000);
const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);

async function insertTransactions(ctx: TestContext, txs: readonly Tx[]): Promise<void> {
  const facts = txs.map((tx) => ({
    event_id: tx.id,
    platform_id: tx.platform ?? 'shop',
    platform_customer_id: tx.customer ?? '',
    order_id: tx.order ?? `o-${tx.id}`,
    kind: tx.kind ?? 'PURCHASE',
    total_minor: tx.total,
    currency: 'GBP',
    item_count: tx.lines.length,
    units: tx.lines.length,
    session_id: tx.session ?? '',
    device_id: '',
    coupon_code: tx.coupon ?? '',
    event_time: seconds(tx.t),
    event_time_ms: tx.t,
    event_date: isoDate(tx.t),
    ingested_at: seconds(Date.now()),
    source_topic: 'test',
    source_partition: 0,
    source_offset: 0,
  }));
  const lines = txs.flatMap((tx) =>
    tx.lines.map((l, i) => ({
      event_id: tx.id,
      line_no: i,
      platform_id: tx.platform ?? 'shop',
      platform_customer_id: tx.customer ?? '',
      order_id: tx.order ?? `o-${tx.id}`,
      kind: tx.kind ?? 'PURCHASE',
      product_id: `p-${l.category}`,
      category_id: l.category,
      brand: l.brand ?? '',
      quantity: l.amount < 0 ? -1 : 1,
      unit_price_minor: Math.abs(l.amount),
      amount_minor: l.amount,
      currency: 'GBP',
      event_time: seconds(tx.t),
      event_date: isoDate(tx.t),
    })),
  );
  await ctx.clickhouse.insert({ table: 'fact_transaction', values: facts, format: 'JSONEachRow' });
  await ctx.clickhouse.insert({ table: 'fact_transaction_line', values: lines, format: 'JSONEachRow' });
}

async function insertClicks(ctx: TestContext, clicks: readonly Click[]): Promise<void> {
  const rows = clicks.map((c) => ({
    event_id: c.id,
    platform_id: c.platform ?? 'shop',
    platform_customer_id: c.customer ?? '',
    session_id: c.session ?? '',
    device_id: c.device ?? '',
    event_type: c.type,
    product_id: '',
    category_id: c.category ?? '',
    search_query: c.type === 'SEARCH' ? 'lamp' : '',
    quantity: 0,
    price_minor: 0,
    currency: '',
    order_id: '',
    review_text: c.review ?? '',
    review_sentiment: c.sentiment ?? 0,
    event_time: seconds(c.t),
    event_time_ms: c.t,
    event_date: isoDate(c.t),
    ingested_at: seconds(Date.now()),
    source_topic: 'test',
    source_partition: 0,
    source_offset: 0,
  }));
  await ctx.clickhouse.insert({ table: 'fact_event', values: rows, format: 'JSONEachRow' });
}

async function insertLinks(
  ctx: TestContext,
  links: readonly { identity: string; customer: string; t: number; version: number }[],
): Promise<void> {
  const rows = links.map((l) => {
    const [platform = '', platformCustomerId = ''] = l.identity.split(':');
    return {
      identity_id: l.identity,
      global_customer_id: l.customer,
      platform_id: platform,
      platform_customer_id: platformCustomerId,
      mapping_method: l.version === 1 ? 'NEW' : 'MERGE',
      mapping_confidence: 1,
      match_weight: 0,
      valid_from: seconds(l.t),
      valid_from_ms: l.t,
      source_event_id: `link-${l.identity}-${l.version}`,
      link_version: l.version,
    };
  });
  await ctx.clickhouse.insert({ table: 'dim_customer_identity', values: rows, format: 'JSONEachRow' });
}

// --- The data set (times relative to T) ---

const ALICE_TX: Tx[] = [
  {
    id: 'a-tx1',
    customer: 'alice',
    total: 1000,
    t: T - 100 * DAY_MS,
    session: 'sa0',
    coupon: 'OLD10', // before the 90-day window
    lines: [{ category: 'toys', amount: 1000, brand: 'Acme' }],
  },
  {
    // First millisecond of the oldest day of the 90-day window: inside it.
    id: 'a-tx2',
    platform: 'app',
    customer: 'a-9',
    total: 2000,
    t: DAY_START - 90 * DAY_MS,
    coupon: 'SAVE5',
    lines: [
      { category: 'books', amount: 1500, brand: 'Acme' },
      { category: 'toys', amount: 500, brand: 'Zenith' },
    ],
  },
  {
    id: 'a-tx3',
    customer: 'alice',
    total: 3000,
    t: T - 2 * HOUR_MS,
    session: 'sa1',
    lines: [{ category: 'books', amount: 3000, brand: 'Acme' }],
  },
  {
    id: 'a-tx4',
    customer: 'alice',
    kind: 'RETURN',
    total: -500,
    t: T - 5 * DAY_MS,
    coupon: 'RET', // a return: not a purchase with a coupon
    lines: [{ category: 'books', amount: -500, brand: 'Zenith' }],
  },
  // 1 ms after the reference time: counts for nothing.
  {
    id: 'a-tx5',
    customer: 'alice',
    total: 9999,
    t: T + 1,
    session: 'sa2',
    coupon: 'LATE',
    lines: [{ category: 'books', amount: 9999, brand: 'Zenith' }],
  },
];

const ALICE_CLICKS: Click[] = [
  {
    id: 'a-c1',
    customer: 'alice',
    type: 'VIEW',
    category: 'books',
    session: 'sa1',
    t: T - 3 * HOUR_MS,
    review: 'Love it',
    sentiment: 1500,
  },
  { id: 'a-c2', customer: 'alice', type: 'ADD_TO_CART', category: 'books', session: 'sa1', t: T - 130 * MINUTE_MS },
  { id: 'a-c3', customer: 'alice', type: 'SEARCH', session: 'sa2', t: T - 30 * MINUTE_MS },
  { id: 'a-c4', customer: 'alice', type: 'ADD_TO_CART', category: 'garden', session: 'sa2', t: T - 20 * MINUTE_MS },
  // Exactly on the first minute of the 1 h window, and 1 ms before it.
  { id: 'a-c5', customer: 'alice', type: 'VIEW', category: 'garden', t: T - HOUR_MS },
  { id: 'a-c6', customer: 'alice', type: 'VIEW', category: 'garden', t: T - HOUR_MS - 1 },
  { id: 'a-c7', platform: 'app', customer: 'a-9', type: 'IDENTIFY', t: T - 40 * DAY_MS },
  // One session across the start of the 30-day window: its first event is outside, so the session is too.
  // a-c9: a score without a text is no review (only the text decides); a-c10: a review.
  {
    id: 'a-c9',
    customer: 'alice',
    type: 'VIEW',
    category: 'toys',
    session: 'sa-old',
    t: T - 31 * DAY_MS,
    sentiment: 777,
  },
  {
    id: 'a-c10',
    customer: 'alice',
    type: 'VIEW',
    category: 'toys',
    session: 'sa-old',
    t: T - 29 * DAY_MS,
    review: 'Meh, poor',
    sentiment: -400,
  },
  // Exactly on the first hour of the 24 h window, and 1 ms before it.
  { id: 'a-c11', customer: 'alice', type: 'SEARCH', t: HOUR_START - 24 * HOUR_MS },
  { id: 'a-c12', customer: 'alice', type: 'SEARCH', t: HOUR_START - 24 * HOUR_MS - 1 },
  { id: 'a-c8', customer: 'alice', type: 'VIEW', category: 'books', t: T + 1, review: 'Great', sentiment: 3000 },
];

const BOB_CLICKS: Click[] = [
  { id: 'b-c1', customer: 'bob', type: 'SEARCH', session: 'sb1', t: T - 10 * DAY_MS },
  {
    id: 'b-c2',
    customer: 'bob',
    type: 'ADD_TO_CART',
    category: 'garden',
    session: 'sb1',
    t: T - 10 * DAY_MS + MINUTE_MS,
  },
  { id: 'b-c3', customer: 'bob', type: 'PURCHASE', session: 'sb1', t: T - 10 * DAY_MS + 5 * MINUTE_MS },
];

const ANONYMOUS_CLICKS: Click[] = [
  { id: 'n-c1', type: 'VIEW', category: 'toys', session: 's-anon', device: 'dev-x', t: T - DAY_MS },
  { id: 'n-c2', type: 'ADD_TO_CART', category: 'toys', session: 's-anon', t: T - DAY_MS + MINUTE_MS },
  { id: 'n-c3', type: 'VIEW', device: 'dev-1', t: T - 2 * DAY_MS },
  // An identity the resolver has not linked yet: not anybody's event.
  { id: 'ghost-c1', customer: 'ghost', type: 'VIEW', category: 'toys', t: T - DAY_MS },
];

const GUEST_TX: Tx = {
  id: 'g-tx1',
  order: 'o-guest',
  total: 700,
  t: T - 3 * DAY_MS,
  session: 'guest-s',
  lines: [{ category: 'toys', amount: 700 }],
};

/** Carol bought only long ago: each of the 180- and 365-day windows at its first millisecond and 1 ms before it. */
const CAROL_TX: Tx[] = [
  {
    id: 'c-tx1',
    customer: 'carol',
    total: 100,
    t: DAY_START - 365 * DAY_MS - 1,
    lines: [{ category: 'toys', amount: 100 }],
  },
  {
    id: 'c-tx2',
    customer: 'carol',
    total: 200,
    t: DAY_START - 365 * DAY_MS,
    lines: [{ category: 'toys', amount: 200 }],
  },
  {
    id: 'c-tx3',
    customer: 'carol',
    total: 400,
    t: DAY_START - 180 * DAY_MS - 1,
    lines: [{ category: 'toys', amount: 400 }],
  },
  {
    id: 'c-tx4',
    customer: 'carol',
    total: 800,
    t: DAY_START - 180 * DAY_MS,
    lines: [{ category: 'toys', amount: 800 }],
  },
  { id: 'c-tx5', customer: 'carol', kind: 'RETURN', total: -800, t: DAY_START - 179 * DAY_MS, lines: [] },
  { id: 'c-tx6', customer: 'carol', kind: 'RETURN', total: -100, t: DAY_START - 365 * DAY_MS - 1, lines: [] },
];

const LINKS = [
  { identity: 'shop:alice', customer: 'g-alice', t: T - 200 * DAY_MS, version: 1 },
  // app:a-9 first became g-old, then merged into g-alice: the current link decides.
  { identity: 'app:a-9', customer: 'g-old', t: T - 200 * DAY_MS, version: 1 },
  { identity: 'app:a-9', customer: 'g-alice', t: T - 10 * DAY_MS, version: 2 },
  { identity: 'shop:bob', customer: 'g-bob', t: T - 200 * DAY_MS, version: 1 },
];

/** Alice as of T, worked out by hand from the rows above. */
const ALICE_AT_T: WindowAggregates = {
  refMs: T,
  firstEventMs: T - 100 * DAY_MS,
  lastEventMs: T - 20 * MINUTE_MS,
  firstPurchaseMs: T - 100 * DAY_MS,
  lastPurchaseMs: T - 2 * HOUR_MS,
  ordersLifetime: 3,
  spendLifetimeMinor: 6000,
  orders7d: 1,
  orders30d: 1,
  orders90d: 2, // a-tx2 on the window's first day, a-tx3
  spend7dMinor: 3000,
  spend30dMinor: 3000,
  spend90dMinor: 5000,
  returns90d: 1,
  lines90d: 3,
  activeDays90d: 2,
  purchaseDays90d: [Math.floor(DAY_START / DAY_MS) - 90, Math.floor(T / DAY_MS)], // a-tx2 and a-tx3
  views1h: 1, // a-c5 on the boundary; a-c6 1 ms before it is out
  views24h: 3,
  views7d: 3,
  searches1h: 1, // a-c3 once, although delivered twice
  searches24h: 2, // a-c3, a-c11 on the boundary
  searches7d: 3,
  searches30d: 3,
  carts1h: 1,
  carts24h: 2,
  carts7d: 2,
  // 09: a-c1; 10: a-tx3, a-c2; 11: a-c5, a-c6, a-c12; 12: a-tx4, a-c3, a-c4, a-c10, a-c11
  hourCounts30d: Array.from({ length: 24 }, (_, h) => ({ 9: 1, 10: 2, 11: 3, 12: 5 })[h] ?? 0),
  sessions30d: 2, // sa1, sa2 (sa0 and sa-old began before the window)
  cartSessions30d: 2,
  abandonedSessions30d: 1, // sa2: a cart and no purchase (a-tx5 in sa2 is after T)
  sessionDurationMs30d: HOUR_MS + 10 * MINUTE_MS,
  categories: [
    { category: 'books', interactions90d: 4, spend90dMinor: 4500, lastMs: T - 2 * HOUR_MS },
    { category: 'garden', interactions90d: 3, spend90dMinor: 0, lastMs: T - 20 * MINUTE_MS },
    { category: 'toys', interactions90d: 3, spend90dMinor: 500, lastMs: T - 29 * DAY_MS },
  ],
  couponOrders90d: 1, // a-tx2 (a-tx1 is before the window, a-tx4 a return, a-tx5 after T)
  brandedLines90d: 3, // Acme: a-tx2, a-tx3; Zenith: a-tx2
  favoriteBrandLines90d: 2,
  reviews90d: 2, // a-c1, a-c10 (a-c8 is after T)
  reviewSentimentMilli90d: 1100,
  orders180d: 3,
  orders365d: 3,
  spend180dMinor: 6000,
  spend365dMinor: 6000,
  returns365d: 1,
  purchaseDays365d: [Math.floor(T / DAY_MS) - 100, Math.floor(DAY_START / DAY_MS) - 90, Math.floor(T / DAY_MS)],
};

/** Nothing counted; refMs and first/last event come from each expectation. */
const ZERO = emptyAggregates(0, 0);

const hours = (counts: Record<number, number>) => Array.from({ length: 24 }, (_, h) => counts[h] ?? 0);

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ warehouse: true });
  await insertLinks(ctx, LINKS);
  await insertTransactions(ctx, [...ALICE_TX, GUEST_TX]);
  await insertClicks(ctx, [...ALICE_CLICKS, ...BOB_CLICKS, ...ANONYMOUS_CLICKS]);
  // Re-delivery: the sink inserts a-tx3 (with its line) and a-c3 again.
  await insertTransactions(
    ctx,
    ALICE_TX.filter((tx) => tx.id === 'a-tx3'),
  );
  await insertClicks(
    ctx,
    ALICE_CLICKS.filter((c) => c.id === 'a-c3'),
  );
});
/** Contexts of single tests. */
const contexts: TestContext[] = [];
afterAll(async () => {
  await ctx?.close();
  await Promise.all(contexts.map((c) => c.close()));
});

describe('aggregatesAsOf', () => {
  it('reduces each pair to the hand-computed aggregates', async () => {
    const result = await aggregatesAsOf(ctx.clickhouse, [
      { customerId: 'g-alice', refMs: T },
      { customerId: 'g-alice', refMs: T }, // a duplicate pair counts once
      { customerId: 'g-alice', refMs: T - DAY_MS },
      { customerId: 'g-alice', refMs: T - 200 * DAY_MS }, // before her first event: absent
      { customerId: 'g-bob', refMs: T },
      { customerId: 'anon:shop:s-anon', refMs: T },
      { customerId: 'anon:shop:dev-1', refMs: T },
      { customerId: 'anon:shop:o-guest', refMs: T },
      { customerId: 'g-old', refMs: T }, // app:a-9 moved to g-alice: g-old has nothing left
      { customerId: 'shop:ghost', refMs: T },
    ]);
    expect([...result.keys()].sort()).toEqual(
      [
        pairKey('anon:shop:dev-1', T),
        pairKey('anon:shop:o-guest', T),
        pairKey('anon:shop:s-anon', T),
        pairKey('g-alice', T),
        pairKey('g-alice', T - DAY_MS),
        pairKey('g-bob', T),
      ].sort(),
    );
    expect(result.get(pairKey('g-alice', T))).toEqual(ALICE_AT_T);

    // A day earlier a-tx3, a-c1…a-c6 have not happened; a-c11 is the newest event; a-tx2 is still in the window.
    expect(result.get(pairKey('g-alice', T - DAY_MS))).toMatchObject({
      lastEventMs: HOUR_START - 24 * HOUR_MS,
      ordersLifetime: 2,
      orders90d: 1,
      lastPurchaseMs: DAY_START - 90 * DAY_MS,
      couponOrders90d: 1,
      brandedLines90d: 2,
      favoriteBrandLines90d: 1,
      reviews90d: 1, // a-c10
      reviewSentimentMilli90d: -400,
      searches1h: 2, // a-c11 and a-c12 are now 30 min and 30 min + 1 ms old
      searches24h: 2,
      sessions30d: 1, // sa-old now begins on the first day of the window
    });

    expect(result.get(pairKey('g-bob', T))).toEqual({
      ...ZERO,
      refMs: T,
      firstEventMs: T - 10 * DAY_MS,
      lastEventMs: T - 10 * DAY_MS + 5 * MINUTE_MS,
      searches30d: 1,
      hourCounts30d: hours({ 12: 3 }),
      sessions30d: 1,
      cartSessions30d: 1,
      abandonedSessions30d: 0, // the session has a PURCHASE click
      sessionDurationMs30d: 5 * MINUTE_MS,
      categories: [{ category: 'garden', interactions90d: 1, spend90dMinor: 0, lastMs: T - 10 * DAY_MS + MINUTE_MS }],
    });

    expect(result.get(pairKey('anon:shop:s-anon', T))).toEqual({
      ...ZERO,
      refMs: T,
      firstEventMs: T - DAY_MS,
      lastEventMs: T - DAY_MS + MINUTE_MS,
      views24h: 1,
      views7d: 1,
      carts24h: 1,
      carts7d: 1,
      hourCounts30d: hours({ 12: 2 }),
      sessions30d: 1,
      cartSessions30d: 1,
      abandonedSessions30d: 1,
      sessionDurationMs30d: MINUTE_MS,
      categories: [{ category: 'toys', interactions90d: 2, spend90dMinor: 0, lastMs: T - DAY_MS + MINUTE_MS }],
    });

    expect(result.get(pairKey('anon:shop:dev-1', T))).toMatchObject({ views7d: 1, firstEventMs: T - 2 * DAY_MS });

    expect(result.get(pairKey('anon:shop:o-guest', T))).toEqual({
      ...ZERO,
      refMs: T,
      firstEventMs: T - 3 * DAY_MS,
      lastEventMs: T - 3 * DAY_MS,
      firstPurchaseMs: T - 3 * DAY_MS,
      lastPurchaseMs: T - 3 * DAY_MS,
      ordersLifetime: 1,
      spendLifetimeMinor: 700,
      orders7d: 1,
      orders30d: 1,
      orders90d: 1,
      spend7dMinor: 700,
      spend30dMinor: 700,
      spend90dMinor: 700,
      lines90d: 1,
      activeDays90d: 1,
      purchaseDays90d: [Math.floor((T - 3 * DAY_MS) / DAY_MS)],
      orders180d: 1,
      orders365d: 1,
      spend180dMinor: 700,
      spend365dMinor: 700,
      purchaseDays365d: [Math.floor((T - 3 * DAY_MS) / DAY_MS)],
      hourCounts30d: hours({ 12: 1 }),
      sessions30d: 1,
      categories: [{ category: 'toys', interactions90d: 1, spend90dMinor: 700, lastMs: T - 3 * DAY_MS }],
    });
  });

  it('counts the 180- and 365-day windows from the first millisecond of their oldest day', async () => {
    // A database of her own, so that the other tests' customer lists stay as they are.
    const own = await createTestContext({ warehouse: true });
    contexts.push(own);
    await insertLinks(own, [{ identity: 'shop:carol', customer: 'g-carol', t: T - 400 * DAY_MS, version: 1 }]);
    await insertTransactions(own, CAROL_TX);
    const day = Math.floor(DAY_START / DAY_MS);
    const result = await aggregatesAsOf(own.clickhouse, [{ customerId: 'g-carol', refMs: T }]);
    expect(result.get(pairKey('g-carol', T))).toEqual({
      ...ZERO,
      refMs: T,
      firstEventMs: DAY_START - 365 * DAY_MS - 1,
      lastEventMs: DAY_START - 179 * DAY_MS,
      firstPurchaseMs: DAY_START - 365 * DAY_MS - 1,
      lastPurchaseMs: DAY_START - 180 * DAY_MS,
      ordersLifetime: 4,
      spendLifetimeMinor: 1500,
      orders180d: 1, // c-tx4
      orders365d: 3, // c-tx2, c-tx3, c-tx4
      spend180dMinor: 800,
      spend365dMinor: 1400,
      returns365d: 1, // c-tx5 (c-tx6 is 1 ms before the window)
      purchaseDays365d: [day - 365, day - 181, day - 180],
    });
  });

  it('gives the same answers in small chunks', async () => {
    const requests = ['g-alice', 'g-bob', 'anon:shop:o-guest'].map((customerId) => ({ customerId, refMs: T }));
    const whole = await aggregatesAsOf(ctx.clickhouse, requests);
    expect(await aggregatesAsOf(ctx.clickhouse, requests, { chunkSize: 1 })).toEqual(whole);
  });

  it('finalizes features with the given cut points', async () => {
    const features = await featuresAsOf(ctx.clickhouse, [{ customerId: 'g-alice', refMs: T }], DEFAULT_CUT_POINTS);
    const alice = features.get(pairKey('g-alice', T))!;
    const recencyDays = (2 * HOUR_MS) / DAY_MS;
    const interpurchase = (100 - recencyDays) / 2;
    expect(alice.values).toMatchObject({
      recency_days: recencyDays,
      frequency_90d: 2,
      monetary_90d_minor: 5000,
      days_since_first_purchase: 100,
      lifetime_days: 100,
      orders_lifetime: 3,
      avg_order_value_90d_minor: 2500,
      lines_per_order_90d: 1.5,
      active_days_90d: 2,
      r_score: 5,
      f_score: 2, // 2 exceeds the first frequency cut (1) only
      m_score: 1, // 5,000 does not exceed the first monetary cut (5,000)
      rfm_score: 521,
      categories_90d: 3,
      cart_abandonment_rate: 0.5,
      preferred_hour: 12,
      avg_session_duration_s: 2100,
      sessions_30d: 2,
    });
    expect(alice.values.mean_interpurchase_days).toBeCloseTo(interpurchase, 12);
    expect(alice.values.purchase_cycle_ratio).toBeCloseTo(recencyDays / interpurchase, 12);
    expect(alice.values.returns_share_90d).toBeCloseTo(1 / 3, 12);
    expect(alice.values.search_to_purchase_ratio).toBeCloseTo(1 / 3, 12);
    const books =
      AFFINITY_WEIGHTS.frequency * (4 / 10) +
      AFFINITY_WEIGHTS.spend * (4500 / 5000) +
      AFFINITY_WEIGHTS.recency * (1 - (2 * HOUR_MS) / (90 * DAY_MS));
    expect(alice.topCategory).toBe('books');
    expect(alice.values.top_category_affinity).toBeCloseTo(books, 12);
    expect(alice.featureTimeMs).toBe(T - 20 * MINUTE_MS);
  });
});

describe('customer lists', () => {
  it('name the current global customers with an event, or with a purchase in a range', async () => {
    expect(await customersWithEventsBefore(ctx.clickhouse, T)).toEqual([
      'anon:shop:dev-1',
      'anon:shop:o-guest',
      'anon:shop:s-anon',
      'g-alice',
      'g-bob',
    ]);
    expect(await customersWithEventsBefore(ctx.clickhouse, T - 50 * DAY_MS)).toEqual(['g-alice']);
    expect(await customersWithPurchases(ctx.clickhouse, T - 4 * DAY_MS, T)).toEqual(['anon:shop:o-guest', 'g-alice']);
    expect(await customersWithPurchases(ctx.clickhouse, T - 4 * DAY_MS, T - 3 * HOUR_MS)).toEqual([
      'anon:shop:o-guest',
    ]);
  });
});

describe('computeCutPoints', () => {
  it('takes nearest-rank percentiles over the customers with a purchase in 90 days', async () => {
    // Alice: recency 2 h, 2 orders, 5,000; the guest: recency 3 days, 1 order, 700. Bob never bought.
    const cuts = await computeCutPoints(ctx.clickhouse, T);
    const r = (2 * HOUR_MS) / DAY_MS;
    expect(cuts).toEqual({
      recencyDays: [r, r, 3, 3],
      frequency90d: [1, 1, 2, 2],
      monetary90dMinor: [700, 700, 5000, 5000],
      source: 'clickhouse as of 2024-03-10T12:30:00Z, 2 customers',
    });
  });

  it('refuses an instant before any purchase', async () => {
    await expect(computeCutPoints(ctx.clickhouse, T - 150 * DAY_MS)).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('keeps a history in feat_rfm_cutpoints, a recomputation replacing its row', async () => {
    const cuts = await computeCutPoints(ctx.clickhouse, T);
    await storeCutPoints(ctx.clickhouse, T, { ...cuts, source: 'first run' });
    await storeCutPoints(ctx.clickhouse, T, cuts);
    const stored = await loadStoredCutPoints(ctx.clickhouse);
    expect(stored).toEqual([{ asOfMs: T, cuts }]);
    await ctx.clickhouse.command({ query: 'TRUNCATE TABLE feat_rfm_cutpoints' });
  });
});

describe('snapshotDay', () => {
  it('writes every customer as of the end of the day, and a recompute replaces the rows', async () => {
    const day = DAY_START - DAY_MS;
    const first = await snapshotDay(ctx.clickhouse, day, DEFAULT_CUT_POINTS, { chunkSize: 2 });
    expect(first).toEqual({ snapshotDate: isoDate(day), refMs: DAY_START - 1, customers: 5 });
    await snapshotDay(ctx.clickhouse, day, DEFAULT_CUT_POINTS);
    const rs = await ctx.clickhouse.query({
      query: `SELECT * FROM feat_customer_rfm FINAL WHERE snapshot_date = '${isoDate(day)}' ORDER BY global_customer_id`,
      format: 'JSONEachRow',
    });
    const rows = await rs.json<Record<string, unknown>>();
    expect(rows.map((r) => r['global_customer_id'])).toEqual([
      'anon:shop:dev-1',
      'anon:shop:o-guest',
      'anon:shop:s-anon',
      'g-alice',
      'g-bob',
    ]);
    const alice = rows.find((r) => r['global_customer_id'] === 'g-alice')!;
    for (const name of FEATURE_NAMES) expect(alice, name).toHaveProperty(name);
    expect(Number(alice['orders_lifetime'])).toBe(2);
    expect(Number(alice['feature_time_ms'])).toBe(HOUR_START - 24 * HOUR_MS);
    // books: one a-tx2 line 90 days old; toys: an a-tx2 line plus a-c9 and a-c10, a month old.
    expect(alice['affinity_categories']).toEqual(['books', 'toys']);
    expect(alice['top_category']).toBe('toys');
    await ctx.clickhouse.command({ query: 'TRUNCATE TABLE feat_customer_rfm' });
  });

  it('refuses a day that does not start at a UTC midnight', async () => {
    await expect(snapshotDay(ctx.clickhouse, DAY_START + 1, DEFAULT_CUT_POINTS)).rejects.toMatchObject({
      code: 'USAGE',
    });
  });
});

describe('FeatureSnapshotter', () => {
  const D0 = Date.UTC(2024, 0, 1);
  let snap: TestContext;
  beforeAll(async () => {
    snap = await createTestContext({ warehouse: true });
  });
  afterAll(async () => {
    await snap?.close();
  });
  const click = (n: number, t: number): Click => ({ id: `s-${n}`, type: 'VIEW', session: `s${n}`, t });
  const snapshotCounts = async () => {
    const rs = await snap.clickhouse.query({
      query:
        'SELECT toString(snapshot_date) AS day, count() AS n FROM feat_customer_rfm FINAL GROUP BY day ORDER BY day',
      format: 'JSONEachRow',
    });
    return (await rs.json<{ day: string; n: string }>()).map((r) => [r.day, Number(r.n)]);
  };

  it('snapshots each day once the watermark minus the grace has passed its end, resuming from the table', async () => {
    const graced = new FeatureSnapshotter({ clickhouse: snap.clickhouse, graceMs: 11 * HOUR_MS });
    expect(await graced.runOnce()).toEqual([]);
    expect(await warehouseEventTimes(snap.clickhouse)).toBeNull();

    await insertClicks(snap, [click(0, D0 + 10 * HOUR_MS), click(1, D0 + DAY_MS + 10 * HOUR_MS)]);
    await insertClicks(snap, [click(2, D0 + 2 * DAY_MS + 10 * HOUR_MS)]);
    expect(await warehouseEventTimes(snap.clickhouse)).toEqual({
      firstMs: D0 + 10 * HOUR_MS,
      lastMs: D0 + 2 * DAY_MS + 10 * HOUR_MS,
    });
    // Watermark 2024-01-03 10:00 − 11 h: only 2024-01-01 has ended.
    expect((await graced.runOnce()).map((r) => r.snapshotDate)).toEqual(['2024-01-01']);
    expect(await graced.runOnce()).toEqual([]);

    const prompt = new FeatureSnapshotter({ clickhouse: snap.clickhouse, graceMs: 0 });
    expect((await prompt.runOnce()).map((r) => r.snapshotDate)).toEqual(['2024-01-02']);
    await insertClicks(snap, [click(3, D0 + 4 * DAY_MS + HOUR_MS)]);
    expect((await prompt.runOnce()).map((r) => r.snapshotDate)).toEqual(['2024-01-03', '2024-01-04']);
    expect(await snapshotCounts()).toEqual([
      ['2024-01-01', 1],
      ['2024-01-02', 2],
      ['2024-01-03', 3],
      ['2024-01-04', 3],
    ]);
  });

  it('polls on its own until stopped', async () => {
    const snapshotter = new FeatureSnapshotter({ clickhouse: snap.clickhouse, graceMs: 0, pollIntervalMs: 100 });
    snapshotter.start();
    try {
      await insertClicks(snap, [click(4, D0 + 6 * DAY_MS)]);
      await waitFor(
        () => lastSnapshotDay(snap.clickhouse),
        (day) => day === D0 + 5 * DAY_MS,
        { what: 'the snapshot of 2024-01-06', timeoutMs: 30_000 },
      );
    } finally {
      await snapshotter.stop();
    }
    expect((await snapshotCounts()).map(([day]) => day)).toContain('2024-01-05');
  });

  it('refuses a period that is not whole days', () => {
    expect(() => new FeatureSnapshotter({ clickhouse: snap.clickhouse, graceMs: 0, periodMs: HOUR_MS })).toThrow(
      /whole number of days/,
    );
  });
});

describe('npm run features', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'features-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cli = (args: readonly string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'processors/features/cli.ts', ...args], {
        env: { ...process.env, ...envOf(ctx), LOG_LEVEL: 'warn' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        resolve({ code, stdout, stderr });
      });
    });
  const csv = (text: string) =>
    text
      .trim()
      .split('\n')
      .map((line) => line.split(','));

  it('as-of prints one CSV row per customer with an event', async () => {
    const { code, stdout, stderr } = await cli([
      'as-of',
      new Date(T).toISOString(),
      '--customers',
      'g-alice,g-bob,nobody',
    ]);
    expect(code, stderr).toBe(0);
    const [header, ...rows] = csv(stdout);
    expect(header).toEqual(['customer_id', 'ref_ms', 'feature_time_ms', ...FEATURE_NAMES, 'top_category']);
    expect(rows.map((r) => r[0])).toEqual(['g-alice', 'g-bob']);
    const alice = Object.fromEntries(header!.map((name, i) => [name, rows[0]![i]]));
    expect(alice).toMatchObject({ ref_ms: String(T), orders_lifetime: '3', rfm_score: '521', top_category: 'books' });
    expect(stderr).toMatch(/1 requested pairs have no event/);
  });

  it('as-of --pairs takes the reference time of each pair', async () => {
    const pairs = join(dir, 'pairs.csv');
    await writeFile(pairs, `customer_id,ref_ms\ng-alice,${T}\ng-alice,${T - DAY_MS}\n"anon:shop:s-anon",${T}\n`);
    const out = join(dir, 'pairs-features.csv');
    const { code, stderr } = await cli(['as-of', '--pairs', pairs, '--out', out]);
    expect(code, stderr).toBe(0);
    const [, ...rows] = csv(await readFile(out, 'utf8'));
    expect(rows.map((r) => [r[0], Number(r[1])])).toEqual([
      ['g-alice', T],
      ['g-alice', T - DAY_MS],
      ['anon:shop:s-anon', T],
    ]);
  });

  it('training-set labels purchases in the horizon after each midnight', async () => {
    const out = join(dir, 'training.csv');
    const from = isoDate(DAY_START - 2 * DAY_MS);
    const to = isoDate(DAY_START + DAY_MS);
    const { code, stderr } = await cli([
      'training-set',
      '--from',
      from,
      '--to',
      to,
      '--horizon-days',
      '1',
      '--ref-times',
      'midnight',
      '--out',
      out,
    ]);
    expect(code, stderr).toBe(0);
    const [header, ...rows] = csv(await readFile(out, 'utf8'));
    expect(header?.at(-1)).toBe('label');
    // Every midnight: everyone identified with an event before it (Alice, and Bob who only clicked); the guest's
    // anonymous key (one order) is left out of training; only Alice buys on the day of T (a-tx3).
    expect(rows.map((r) => [r[0], Number(r[1]), r.at(-1)])).toEqual([
      ['g-alice', DAY_START - 2 * DAY_MS, '0'],
      ['g-bob', DAY_START - 2 * DAY_MS, '0'],
      ['g-alice', DAY_START - DAY_MS, '0'],
      ['g-bob', DAY_START - DAY_MS, '0'],
      ['g-alice', DAY_START, '1'],
      ['g-bob', DAY_START, '0'],
    ]);
  });

  it('training-set with random reference times: features before its own time, label after it', async () => {
    const out = join(dir, 'training-random.csv');
    const days = [DAY_START - 2 * DAY_MS, DAY_START - DAY_MS, DAY_START];
    const { code, stderr } = await cli([
      'training-set',
      '--from',
      isoDate(days[0]!),
      '--to',
      isoDate(DAY_START + DAY_MS),
      '--horizon-days',
      '1',
      '--out',
      out,
    ]);
    expect(code, stderr).toBe(0);
    const [header, ...rows] = csv(await readFile(out, 'utf8'));
    const col = (row: readonly string[], name: string) => row[header!.indexOf(name)];
    // Alice's purchases (transactions of kind PURCHASE, whatever platform account), from the data set above.
    const alicePurchases = ALICE_TX.filter((tx) => (tx.kind ?? 'PURCHASE') === 'PURCHASE').map((tx) => tx.t);
    expect(rows.map((r) => r[0])).toEqual(['g-alice', 'g-bob', 'g-alice', 'g-bob', 'g-alice', 'g-bob']);
    const refs = rows.map((r) => Number(r[1]));
    rows.forEach((row, i) => {
      const day = days[Math.floor(i / 2)]!;
      const ref = refs[i]!;
      expect(ref).toBe(randomRefMs(row[0]!, day));
      expect(ref).toBeGreaterThanOrEqual(day);
      expect(ref).toBeLessThan(day + DAY_MS);
      expect(Number(col(row, 'feature_time_ms'))).toBeLessThan(ref);
      if (row[0] !== 'g-alice') return;
      const label = alicePurchases.some((t) => t >= ref && t < ref + DAY_MS) ? '1' : '0';
      expect(row.at(-1), `label of g-alice at ${new Date(ref).toISOString()}`).toBe(label);
      expect(col(row, 'orders_lifetime')).toBe(String(alicePurchases.filter((t) => t < ref).length));
    });
    // Not everyone at midnight: the two customers of a day get different times.
    expect(new Set(refs).size).toBe(refs.length);
  });

  it('cutpoints stores and publishes; snapshot writes a day', async () => {
    const redis = new Redis(ctx.config.REDIS_URL);
    try {
      const { code, stdout, stderr } = await cli(['cutpoints', '--as-of', String(T), '--publish']);
      expect(code, stderr).toBe(0);
      const printed = JSON.parse(stdout) as unknown;
      expect(await loadCutPoints(redis, ctx.config.TOPIC_PREFIX)).toEqual(printed);
      expect((await loadStoredCutPoints(ctx.clickhouse)).map((s) => s.cuts)).toEqual([printed]);
    } finally {
      await redis.del(cutPointsKey(ctx.config.TOPIC_PREFIX));
      redis.disconnect();
    }
    const snapshot = await cli(['snapshot', '--day', isoDate(DAY_START)]);
    expect(snapshot.code, snapshot.stderr).toBe(0);
    expect(JSON.parse(snapshot.stdout)).toMatchObject({ snapshotDate: isoDate(DAY_START), customers: 5 });
  });

  it('explains bad arguments', async () => {
    const zoneless = await cli(['as-of', '2024-03-10T12:30:00']);
    expect(zoneless.code).toBe(2);
    expect(zoneless.stderr).toMatch(/add a zone/);
    const unknown = await cli(['as-of', String(T), '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/bogus/);
    const missing = await cli(['training-set', '--from', '2024-01-01', '--to', '2024-01-05']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--out is required/);
  });
});
