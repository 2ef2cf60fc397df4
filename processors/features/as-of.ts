/**
 * The warehouse execution of the feature definitions (definitions.ts): WindowAggregates of (customer, reference time)
 * pairs, computed point in time from the ClickHouse facts, for training sets, backfills, daily snapshots and the
 * parity test against the stream.
 *
 * How one request runs, in one ClickHouse session whose temporary tables disappear with it:
 * 1. the pairs go into a temporary table `features_requests` (one insert, however many pairs);
 * 2. `features_events` receives the facts of the requested customers up to the latest reference time, each re-keyed
 *    to its current global customer id exactly as the identity resolver keys it (see resolvedEventsSql), so the
 *    identity view and the FINAL reads happen once per request;
 * 3. four aggregations join `features_events` to the pairs (one JOIN each, as ClickHouse 18.16 requires): per pair
 *    scalars, per (pair, session), per (pair, category) and per (pair, brand). Every window condition is the bucket rule of
 *    definitions.ts written in SQL, so both executions count the same events.
 */
import { randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteString } from '../runtime/clickhouse.js';
import { AppError } from '../runtime/errors.js';
import { cutPointsFromAggregates, formatInstant } from './cutpoints-warehouse.js';
import {
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  finalizeFeatures,
  type CategoryAggregate,
  type CustomerFeatures,
  type RfmCutPoints,
  type WindowAggregates,
} from './definitions.js';

/** One customer at one reference time (epoch ms): features count the events at or before it. */
export interface AsOfRequest {
  readonly customerId: string;
  readonly refMs: number;
}

export interface AsOfOptions {
  /**
   * Pairs per round trip. Each chunk reads the facts once, so bigger chunks are faster, and ClickHouse holds that
   * chunk's customers' events in memory, so smaller chunks are lighter.
   * @default 50_000
   */
  readonly chunkSize?: number;
}

/** The key of a pair in the maps returned here: `${customerId}@${refMs}`. */
export const pairKey = (customerId: string, refMs: number): string => `${customerId}@${refMs}`;

const DEFAULT_CHUNK_SIZE = 50_000;
const REQUESTS = 'features_requests';
const EVENTS = 'features_events';

/**
 * WindowAggregates of each distinct pair, keyed by pairKey. A pair whose customer has no event at or before its
 * reference time is absent. Duplicate pairs are computed once.
 * @throws AppError USAGE for a reference time that is not a non-negative integer of milliseconds
 */
export async function aggregatesAsOf(
  ch: ClickHouseClient,
  requests: readonly AsOfRequest[],
  options: AsOfOptions = {},
): Promise<Map<string, WindowAggregates>> {
  const unique = new Map<string, AsOfRequest>();
  for (const r of requests) {
    checkRefMs(r.refMs);
    unique.set(pairKey(r.customerId, r.refMs), r); // a duplicate pair would double every count in the joins below
  }
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const result = new Map<string, WindowAggregates>();
  const pairs = [...unique.values()];
  for (let i = 0; i < pairs.length; i += chunkSize) {
    for (const [key, agg] of await aggregateChunk(ch, pairs.slice(i, i + chunkSize))) result.set(key, agg);
  }
  return result;
}

/** Finalized features of each distinct pair (see aggregatesAsOf), with the same `cutPoints` for all. */
export async function featuresAsOf(
  ch: ClickHouseClient,
  requests: readonly AsOfRequest[],
  cutPoints: RfmCutPoints,
  options: AsOfOptions = {},
): Promise<Map<string, CustomerFeatures>> {
  const aggregates = await aggregatesAsOf(ch, requests, options);
  return new Map([...aggregates].map(([key, agg]) => [key, finalizeFeatures(agg, cutPoints)]));
}

/** Global customer ids with at least one event (click or transaction) at or before `refMs`, sorted. */
export async function customersWithEventsBefore(ch: ClickHouseClient, refMs: number): Promise<string[]> {
  checkRefMs(refMs);
  return customerList(ch, { kinds: 'events', maxMs: refMs });
}

/** Global customer ids with a PURCHASE transaction at a time t with `fromMs <= t <= toMs`, sorted. */
export async function customersWithPurchases(ch: ClickHouseClient, fromMs: number, toMs: number): Promise<string[]> {
  checkRefMs(fromMs);
  checkRefMs(toMs);
  return customerList(ch, { kinds: 'purchases', minMs: fromMs, maxMs: toMs });
}

/** A customer's reference time on the day starting at dayMs: uniform over the day, stable across runs. */
export function randomRefMs(customerId: string, dayMs: number): number {
  let h = 0x811c9dc5; // FNV-1a over "<customer>|<day>"
  for (const ch of `${customerId}|${dayMs}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return dayMs + (h % DAY_MS);
}

/** Each customer's purchase times (epoch ms, in no order) with fromMs ≤ t ≤ toMs: labels for per-customer reference times. */
export async function purchaseTimes(
  ch: ClickHouseClient,
  fromMs: number,
  toMs: number,
): Promise<Map<string, number[]>> {
  checkRefMs(fromMs);
  checkRefMs(toMs);
  const rs = await ch.query({
    query: `SELECT customer_id, groupArray(t) AS times FROM (${resolvedEventsSql({ kinds: 'purchases', minMs: fromMs, maxMs: toMs })}) GROUP BY customer_id`,
    format: 'JSONEachRow',
  });
  const out = new Map<string, number[]>();
  for (const row of await rs.json<{ customer_id: string; times: (string | number)[] }>()) {
    out.set(row.customer_id, row.times.map(Number));
  }
  return out;
}

/**
 * RFM cut points as of `asOfMs` over the customers with a purchase in the 90-day window (day hop) as of then, from
 * the same aggregates the features use, so a cut point and the feature it splits cannot disagree on a definition.
 * @throws AppError USAGE when no customer has a purchase in that window
 */
export async function computeCutPoints(
  ch: ClickHouseClient,
  asOfMs: number,
  options: AsOfOptions = {},
): Promise<RfmCutPoints> {
  checkRefMs(asOfMs);
  const windowStartMs = (Math.floor(asOfMs / DAY_MS) - 90) * DAY_MS;
  const customers = await customersWithPurchases(ch, Math.max(windowStartMs, 0), asOfMs);
  const aggregates = await aggregatesAsOf(
    ch,
    customers.map((customerId) => ({ customerId, refMs: asOfMs })),
    options,
  );
  const cuts = cutPointsFromAggregates(aggregates.values(), `clickhouse as of ${formatInstant(asOfMs)}`);
  if (!cuts) {
    throw new AppError(
      'USAGE',
      `no customer has a purchase in the 90 days before ${formatInstant(asOfMs)}: cannot compute RFM cut points`,
    );
  }
  return cuts;
}

function checkRefMs(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new AppError('USAGE', `a reference time must be a non-negative integer of epoch milliseconds, got ${ms}`);
  }
}

// --- Sessions and temporary tables ---

/**
 * A ClickHouse session: its temporary tables are private to it and vanish when it ends, also when this process dies
 * mid-request (the server drops an idle session after its timeout), so a crash leaves nothing behind in the warehouse.
 * Requests of one session must not overlap, so every method is awaited in turn.
 */
class Session {
  private readonly id = `patternos-features-${randomUUID()}`;
  constructor(private readonly ch: ClickHouseClient) {}

  async command(query: string): Promise<void> {
    await this.ch.command({ query, session_id: this.id });
  }

  async select<T>(query: string): Promise<T[]> {
    const rs = await this.ch.query({ query, format: 'JSONEachRow', session_id: this.id });
    return rs.json<T>();
  }

  async insert(table: string, values: readonly Record<string, unknown>[]): Promise<void> {
    await this.ch.insert({ table, values: [...values], format: 'JSONEachRow', session_id: this.id });
  }

  /** Drops the temporary tables now rather than at the session timeout; their memory is the point. */
  async dropTables(names: readonly string[]): Promise<void> {
    for (const name of names) await this.command(`DROP TEMPORARY TABLE IF EXISTS ${name}`);
  }
}

/**
 * Runs `work` in a new session and drops `tables` afterwards. The drop is best effort: should it fail, the server still
 * frees the tables when the idle session times out, so neither a result nor the error of `work` is lost to it.
 */
async function withSession<T>(
  ch: ClickHouseClient,
  tables: readonly string[],
  work: (s: Session) => Promise<T>,
): Promise<T> {
  const session = new Session(ch);
  try {
    return await work(session);
  } finally {
    await session.dropTables(tables).catch(() => undefined);
  }
}

// --- The resolved event stream ---

/** Which facts a query reads. */
type FactKinds =
  /** Clicks, transactions of both kinds and the line items of purchases: everything the aggregates use. */
  | 'all'
  /** Clicks and transactions: the events that make a customer exist at a time. */
  | 'events'
  /** PURCHASE transactions only. */
  | 'purchases';

interface EventScope {
  readonly kinds: FactKinds;
  /** Only facts with event time at or before this. */
  readonly maxMs: number;
  /** Only facts with event time at or after this. */
  readonly minMs?: number;
  /** Only customers listed in this table's customer_id column. */
  readonly customersIn?: string;
}

/** `<platform>:<platformCustomerId>` for an identified fact, '' for an anonymous one (its id comes from anonId). */
const IDENTITY_ID = `if(platform_customer_id = '', '', concat(platform_id, ':', platform_customer_id))`;
/** The resolver's key of an anonymous click (identityOf in identity/logic.ts): session, else device, else the event. */
const ANON_CLICK_ID = `concat('anon:', platform_id, ':', multiIf(session_id != '', session_id, device_id != '', device_id, event_id))`;
/** The resolver's key of a guest order. */
const ANON_ORDER_ID = `concat('anon:', platform_id, ':', order_id)`;

function timeFilter(scope: EventScope): string {
  const min = scope.minMs === undefined ? '' : ` AND event_time_ms >= ${scope.minMs}`;
  return `event_time_ms <= ${scope.maxMs}${min}`;
}

/**
 * The facts in `scope` as one stream of (identity_id, anon_id, t, src, event_type, session_id, category_id,
 * amount_minor, brand, coupon, review, sentiment): src is 'click' (event_type = the click type; review = 1 when it
 * carries a review, sentiment its stored score), 'tx' (event_type = PURCHASE | RETURN, amount = total, coupon = 1 when
 * one was redeemed) or 'line' (a line item of a purchase: amount, category and brand of the line, time and identity of
 * its transaction, joined on event_id because fact_transaction_line only keeps whole seconds). FINAL collapses
 * re-delivered facts.
 */
function factsSql(scope: EventScope): string {
  const where = timeFilter(scope);
  const clicks = `SELECT
    ${IDENTITY_ID} AS identity_id,
    ${ANON_CLICK_ID} AS anon_id,
    toInt64(event_time_ms) AS t,
    'click' AS src,
    event_type,
    session_id,
    category_id,
    toInt64(0) AS amount_minor,
    '' AS brand,
    toUInt8(0) AS coupon,
    toUInt8(review_text != '') AS review,
    toInt64(review_sentiment) AS sentiment
FROM fact_event FINAL
WHERE ${where}`;
  const transactions = `SELECT
    ${IDENTITY_ID} AS identity_id,
    ${ANON_ORDER_ID} AS anon_id,
    toInt64(event_time_ms) AS t,
    'tx' AS src,
    kind AS event_type,
    session_id,
    '' AS category_id,
    total_minor AS amount_minor,
    '' AS brand,
    toUInt8(coupon_code != '') AS coupon,
    toUInt8(0) AS review,
    toInt64(0) AS sentiment
FROM fact_transaction FINAL
WHERE ${where}${scope.kinds === 'purchases' ? ` AND kind = 'PURCHASE'` : ''}`;
  const purchaseLines = `SELECT identity_id, anon_id, t, 'line' AS src, event_type, '' AS session_id, category_id, amount_minor,
    brand, toUInt8(0) AS coupon, toUInt8(0) AS review, toInt64(0) AS sentiment
FROM
(
    SELECT event_id, category_id, amount_minor, brand
    FROM fact_transaction_line FINAL
)
ALL INNER JOIN
(
    SELECT
        event_id,
        ${IDENTITY_ID} AS identity_id,
        ${ANON_ORDER_ID} AS anon_id,
        toInt64(event_time_ms) AS t,
        kind AS event_type
    FROM fact_transaction FINAL
    WHERE ${where} AND kind = 'PURCHASE'
) USING event_id`;
  switch (scope.kinds) {
    case 'all':
      return [clicks, transactions, purchaseLines].join('\nUNION ALL\n');
    case 'events':
      return [clicks, transactions].join('\nUNION ALL\n');
    case 'purchases':
      return transactions;
  }
}

/**
 * The facts in `scope` keyed by customer_id: an identified fact by its identity's current global customer id
 * (v_customer_identity_current; facts of an identity without a link yet are dropped, as the resolver has not keyed
 * them either), an anonymous one by the resolver's anonymous key.
 */
function resolvedEventsSql(scope: EventScope): string {
  const onlyRequested = scope.customersIn
    ? ` WHERE global_customer_id IN (SELECT customer_id FROM ${scope.customersIn})`
    : '';
  const keep = scope.customersIn ? ` AND customer_id IN (SELECT customer_id FROM ${scope.customersIn})` : '';
  return `SELECT customer_id, t, src, event_type, session_id, category_id, amount_minor, brand, coupon, review, sentiment
FROM
(
    SELECT
        if(identity_id = '', anon_id, global_customer_id) AS customer_id,
        t, src, event_type, session_id, category_id, amount_minor, brand, coupon, review, sentiment
    FROM
    (
${factsSql(scope)}
    )
    ANY LEFT JOIN
    (
        SELECT identity_id, global_customer_id FROM v_customer_identity_current${onlyRequested}
    ) USING identity_id
)
WHERE customer_id != ''${keep}`;
}

async function customerList(ch: ClickHouseClient, scope: EventScope): Promise<string[]> {
  const rs = await ch.query({
    query: `SELECT customer_id FROM (${resolvedEventsSql(scope)}) GROUP BY customer_id ORDER BY customer_id`,
    format: 'JSONEachRow',
  });
  return (await rs.json<{ customer_id: string }>()).map((r) => r.customer_id);
}

// --- Aggregation ---

/** The window rule of definitions.ts: floor(t / hop) >= floor(T / hop) - length / hop (and t <= T, filtered apart). */
const inWindow = (lengthMs: number, hopMs: number, time = 't') =>
  `intDiv(${time}, ${hopMs}) >= intDiv(ref_ms, ${hopMs}) - ${lengthMs / hopMs}`;

const W1H = inWindow(HOUR_MS, MINUTE_MS);
const W24H = inWindow(DAY_MS, HOUR_MS);
const W7D = inWindow(7 * DAY_MS, DAY_MS);
const W30D = inWindow(30 * DAY_MS, DAY_MS);
const W90D = inWindow(90 * DAY_MS, DAY_MS);
const W180D = inWindow(180 * DAY_MS, DAY_MS);
const W365D = inWindow(365 * DAY_MS, DAY_MS);

/** A click or a transaction. A line item is part of its transaction, not an event of its own. */
const IS_EVENT = `src != 'line'`;
const IS_PURCHASE = `src = 'tx' AND event_type = 'PURCHASE'`;
const IS_RETURN = `src = 'tx' AND event_type = 'RETURN'`;
const IS_PURCHASE_LINE = `src = 'line' AND event_type = 'PURCHASE'`;
const isClick = (type: string) => `src = 'click' AND event_type = ${quoteString(type)}`;

/** Per-pair scalar aggregates: output column → expression over the joined rows. */
const SCALAR_COLUMNS: readonly (readonly [string, string])[] = [
  ['events', `countIf(${IS_EVENT})`],
  ['first_event_ms', `minIf(t, ${IS_EVENT})`],
  ['last_event_ms', `maxIf(t, ${IS_EVENT})`],
  ['first_purchase_ms', `minIf(t, ${IS_PURCHASE})`],
  ['last_purchase_ms', `maxIf(t, ${IS_PURCHASE})`],
  ['orders_lifetime', `countIf(${IS_PURCHASE})`],
  ['spend_lifetime_minor', `sumIf(amount_minor, ${IS_PURCHASE})`],
  ['orders_7d', `countIf(${IS_PURCHASE} AND ${W7D})`],
  ['orders_30d', `countIf(${IS_PURCHASE} AND ${W30D})`],
  ['orders_90d', `countIf(${IS_PURCHASE} AND ${W90D})`],
  ['spend_7d_minor', `sumIf(amount_minor, ${IS_PURCHASE} AND ${W7D})`],
  ['spend_30d_minor', `sumIf(amount_minor, ${IS_PURCHASE} AND ${W30D})`],
  ['spend_90d_minor', `sumIf(amount_minor, ${IS_PURCHASE} AND ${W90D})`],
  ['returns_90d', `countIf(${IS_RETURN} AND ${W90D})`],
  ['lines_90d', `countIf(${IS_PURCHASE_LINE} AND ${W90D})`],
  ['active_days_90d', `uniqExactIf(intDiv(t, ${DAY_MS}), ${IS_PURCHASE} AND ${W90D})`],
  ['purchase_days_90d', `groupUniqArrayIf(intDiv(t, ${DAY_MS}), ${IS_PURCHASE} AND ${W90D})`],
  ['views_1h', `countIf(${isClick('VIEW')} AND ${W1H})`],
  ['views_24h', `countIf(${isClick('VIEW')} AND ${W24H})`],
  ['views_7d', `countIf(${isClick('VIEW')} AND ${W7D})`],
  ['searches_1h', `countIf(${isClick('SEARCH')} AND ${W1H})`],
  ['searches_24h', `countIf(${isClick('SEARCH')} AND ${W24H})`],
  ['searches_7d', `countIf(${isClick('SEARCH')} AND ${W7D})`],
  ['searches_30d', `countIf(${isClick('SEARCH')} AND ${W30D})`],
  ['carts_1h', `countIf(${isClick('ADD_TO_CART')} AND ${W1H})`],
  ['carts_24h', `countIf(${isClick('ADD_TO_CART')} AND ${W24H})`],
  ['carts_7d', `countIf(${isClick('ADD_TO_CART')} AND ${W7D})`],
  ['coupon_orders_90d', `countIf(${IS_PURCHASE} AND ${W90D} AND coupon = 1)`],
  ['reviews_90d', `countIf(src = 'click' AND review = 1 AND ${W90D})`],
  ['review_sentiment_90d', `sumIf(sentiment, src = 'click' AND review = 1 AND ${W90D})`],
  ['orders_180d', `countIf(${IS_PURCHASE} AND ${W180D})`],
  ['orders_365d', `countIf(${IS_PURCHASE} AND ${W365D})`],
  ['spend_180d_minor', `sumIf(amount_minor, ${IS_PURCHASE} AND ${W180D})`],
  ['spend_365d_minor', `sumIf(amount_minor, ${IS_PURCHASE} AND ${W365D})`],
  ['returns_365d', `countIf(${IS_RETURN} AND ${W365D})`],
  ['purchase_days_365d', `groupUniqArrayIf(intDiv(t, ${DAY_MS}), ${IS_PURCHASE} AND ${W365D})`],
  [
    'hour_counts_30d',
    `[${Array.from({ length: 24 }, (_, h) => `countIf(${IS_EVENT} AND ${W30D} AND intDiv(t, ${HOUR_MS}) % 24 = ${h})`).join(', ')}]`,
  ],
];

/** Every row of a requested customer at or before the pair's reference time, with the pair's ref_ms alongside. */
const PAIR_ROWS = `${EVENTS} ALL INNER JOIN ${REQUESTS} USING customer_id`;

const SCALARS_SQL = `SELECT customer_id, ref_ms, ${SCALAR_COLUMNS.map(([name, expr]) => `${expr} AS ${name}`).join(', ')}
FROM ${PAIR_ROWS}
WHERE t <= ref_ms
GROUP BY customer_id, ref_ms
HAVING events > 0`;

/**
 * Sessions are grouped over all of a pair's events (not only the window's) so that a session which began before the
 * window keeps its true first event and stays out, as definitions.ts requires.
 */
const SESSIONS_SQL = `SELECT
    customer_id,
    ref_ms,
    count() AS sessions,
    countIf(has_cart) AS cart_sessions,
    countIf(has_cart AND NOT has_purchase) AS abandoned_sessions,
    sum(last_t - first_t) AS duration_ms
FROM
(
    SELECT
        customer_id,
        ref_ms,
        session_id,
        min(t) AS first_t,
        max(t) AS last_t,
        max(${isClick('ADD_TO_CART')}) AS has_cart,
        max(event_type = 'PURCHASE') AS has_purchase
    FROM ${PAIR_ROWS}
    WHERE t <= ref_ms AND ${IS_EVENT} AND session_id != ''
    GROUP BY customer_id, ref_ms, session_id
)
WHERE ${inWindow(30 * DAY_MS, DAY_MS, 'first_t')}
GROUP BY customer_id, ref_ms`;

const CATEGORIES_SQL = `SELECT
    customer_id,
    ref_ms,
    category_id AS category,
    count() AS interactions,
    sumIf(amount_minor, src = 'line') AS spend_minor,
    max(t) AS last_ms
FROM ${PAIR_ROWS}
WHERE t <= ref_ms
    AND ${W90D}
    AND category_id != ''
    AND ((${IS_PURCHASE_LINE}) OR (src = 'click' AND event_type IN ('VIEW', 'ADD_TO_CART')))
GROUP BY customer_id, ref_ms, category_id`;

/** Per pair: purchase lines with a brand in 90 days, and the most of them for one brand (brand consistency). */
const BRANDS_SQL = `SELECT customer_id, ref_ms, sum(lines) AS branded_lines, max(lines) AS favorite_lines
FROM
(
    SELECT customer_id, ref_ms, brand, count() AS lines
    FROM ${PAIR_ROWS}
    WHERE t <= ref_ms AND ${W90D} AND ${IS_PURCHASE_LINE} AND brand != ''
    GROUP BY customer_id, ref_ms, brand
)
GROUP BY customer_id, ref_ms`;

/** Int64/UInt64 arrive as strings in JSON formats; every value here is far below 2^53. */
type Cell = string | number;
type Row = Record<string, Cell | Cell[]>;

function num(row: Row, column: string): number {
  const value = Number(row[column]);
  if (!Number.isFinite(value)) throw new Error(`ClickHouse returned a non-numeric ${column}: ${String(row[column])}`);
  return value;
}

const keyOf = (row: Row) => pairKey(String(row['customer_id']), num(row, 'ref_ms'));

async function aggregateChunk(
  ch: ClickHouseClient,
  pairs: readonly AsOfRequest[],
): Promise<Map<string, WindowAggregates>> {
  if (pairs.length === 0) return new Map();
  const maxRefMs = pairs.reduce((max, p) => Math.max(max, p.refMs), 0); // no spread: a chunk may exceed the argument limit
  return withSession(ch, [REQUESTS, EVENTS], async (s) => {
    await s.command(`CREATE TEMPORARY TABLE ${REQUESTS} (customer_id String, ref_ms Int64)`);
    await s.insert(
      REQUESTS,
      pairs.map((p) => ({ customer_id: p.customerId, ref_ms: p.refMs })),
    );
    await s.command(
      `CREATE TEMPORARY TABLE ${EVENTS} (customer_id String, t Int64, src String, event_type String, ` +
        `session_id String, category_id String, amount_minor Int64, brand String, coupon UInt8, review UInt8, ` +
        `sentiment Int64)`,
    );
    await s.command(
      `INSERT INTO ${EVENTS} ${resolvedEventsSql({ kinds: 'all', maxMs: maxRefMs, customersIn: REQUESTS })}`,
    );
    const scalars = await s.select<Row>(SCALARS_SQL);
    const sessions = new Map((await s.select<Row>(SESSIONS_SQL)).map((r) => [keyOf(r), r]));
    const categories = groupBy(await s.select<Row>(CATEGORIES_SQL), keyOf);
    const brands = new Map((await s.select<Row>(BRANDS_SQL)).map((r) => [keyOf(r), r]));
    return new Map(
      scalars.map((row) => {
        const key = keyOf(row);
        return [key, toAggregates(row, sessions.get(key), categories.get(key) ?? [], brands.get(key))];
      }),
    );
  });
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group) group.push(item);
    else groups.set(key, [item]);
  }
  return groups;
}

function toAggregates(
  row: Row,
  session: Row | undefined,
  categoryRows: readonly Row[],
  brands: Row | undefined,
): WindowAggregates {
  const orders = num(row, 'orders_lifetime');
  const hours = row['hour_counts_30d'];
  if (!Array.isArray(hours) || hours.length !== 24) throw new Error('ClickHouse returned no 24 hour counts');
  const sessionValue = (column: string) => (session ? num(session, column) : 0);
  const categories: CategoryAggregate[] = categoryRows
    .map((c) => ({
      category: String(c['category']),
      interactions90d: num(c, 'interactions'),
      spend90dMinor: num(c, 'spend_minor'),
      lastMs: num(c, 'last_ms'),
    }))
    // The stream's order (UTF-16 code units); ClickHouse's ORDER BY compares bytes, which differs beyond ASCII.
    .sort((a, b) => (a.category < b.category ? -1 : a.category > b.category ? 1 : 0));
  return {
    refMs: num(row, 'ref_ms'),
    firstEventMs: num(row, 'first_event_ms'),
    lastEventMs: num(row, 'last_event_ms'),
    // minIf/maxIf give 0 when nothing matched; the count tells "no purchase" from a purchase at the epoch.
    firstPurchaseMs: orders > 0 ? num(row, 'first_purchase_ms') : null,
    lastPurchaseMs: orders > 0 ? num(row, 'last_purchase_ms') : null,
    ordersLifetime: orders,
    spendLifetimeMinor: num(row, 'spend_lifetime_minor'),
    orders7d: num(row, 'orders_7d'),
    orders30d: num(row, 'orders_30d'),
    orders90d: num(row, 'orders_90d'),
    spend7dMinor: num(row, 'spend_7d_minor'),
    spend30dMinor: num(row, 'spend_30d_minor'),
    spend90dMinor: num(row, 'spend_90d_minor'),
    returns90d: num(row, 'returns_90d'),
    lines90d: num(row, 'lines_90d'),
    activeDays90d: num(row, 'active_days_90d'),
    purchaseDays90d: (row['purchase_days_90d'] as (string | number)[]).map(Number).sort((a, b) => a - b),
    views1h: num(row, 'views_1h'),
    views24h: num(row, 'views_24h'),
    views7d: num(row, 'views_7d'),
    searches1h: num(row, 'searches_1h'),
    searches24h: num(row, 'searches_24h'),
    searches7d: num(row, 'searches_7d'),
    searches30d: num(row, 'searches_30d'),
    carts1h: num(row, 'carts_1h'),
    carts24h: num(row, 'carts_24h'),
    carts7d: num(row, 'carts_7d'),
    hourCounts30d: hours.map(Number),
    sessions30d: sessionValue('sessions'),
    cartSessions30d: sessionValue('cart_sessions'),
    abandonedSessions30d: sessionValue('abandoned_sessions'),
    sessionDurationMs30d: sessionValue('duration_ms'),
    categories,
    couponOrders90d: num(row, 'coupon_orders_90d'),
    brandedLines90d: brands ? num(brands, 'branded_lines') : 0,
    favoriteBrandLines90d: brands ? num(brands, 'favorite_lines') : 0,
    reviews90d: num(row, 'reviews_90d'),
    reviewSentimentMilli90d: num(row, 'review_sentiment_90d'),
    orders180d: num(row, 'orders_180d'),
    orders365d: num(row, 'orders_365d'),
    spend180dMinor: num(row, 'spend_180d_minor'),
    spend365dMinor: num(row, 'spend_365d_minor'),
    returns365d: num(row, 'returns_365d'),
    purchaseDays365d: (row['purchase_days_365d'] as (string | number)[]).map(Number).sort((a, b) => a - b),
  };
}
