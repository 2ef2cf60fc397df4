/**
 * The customer feature definitions: one definition, two executions. The stream (`state.ts`, Redis) and the warehouse
 * (`as-of.ts`, ClickHouse) both reduce a customer's events to {@link WindowAggregates} as of a reference time T, and
 * {@link finalizeFeatures} turns those into features. Only the reduction differs between the two; the parity test
 * proves the reductions agree.
 *
 * Windows follow event time. A window of length w with hop h, as of T, covers the events with
 * `floor(t / h) >= floor(T / h) - w / h` and `t <= T`: it starts at a hop boundary, so it spans between w and w + h.
 * Hops: 1 minute for the 1 h window, 1 hour for 24 h, 1 day (UTC) for 7, 30 and 90 days. Bucketing by hop keeps the
 * streaming state small and is exactly reproducible in SQL (the same scheme as tiled feature stores).
 */

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** Seed weights of category affinity: frequency share, spend share, recency. */
export const AFFINITY_WEIGHTS = { frequency: 0.4, spend: 0.3, recency: 0.3 } as const;

/** Everything the features need, as of `refMs`. Money is integer minor units (exact below 2^53). */
export interface WindowAggregates {
  readonly refMs: number;
  /** Event time of the first and newest event at or before refMs (any kind). */
  readonly firstEventMs: number;
  readonly lastEventMs: number;
  readonly firstPurchaseMs: number | null;
  readonly lastPurchaseMs: number | null;
  /** PURCHASE transactions ever (at or before refMs) and their total. */
  readonly ordersLifetime: number;
  readonly spendLifetimeMinor: number;
  readonly orders7d: number;
  readonly orders30d: number;
  readonly orders90d: number;
  readonly spend7dMinor: number;
  readonly spend30dMinor: number;
  readonly spend90dMinor: number;
  /** RETURN transactions in 90 days. */
  readonly returns90d: number;
  /** Line items of PURCHASE transactions in 90 days. */
  readonly lines90d: number;
  /** UTC days with at least one PURCHASE in 90 days. */
  readonly activeDays90d: number;
  /** Those days as day indexes (floor(t / DAY_MS)), ascending: the purchase rhythm. */
  readonly purchaseDays90d: readonly number[];
  readonly views1h: number;
  readonly views24h: number;
  readonly views7d: number;
  readonly searches1h: number;
  readonly searches24h: number;
  readonly searches7d: number;
  readonly searches30d: number;
  readonly carts1h: number;
  readonly carts24h: number;
  readonly carts7d: number;
  /** All events (clicks of every type and transactions) in 30 days, by UTC hour of day. */
  readonly hourCounts30d: readonly number[];
  /** Sessions (by session id, clicks and transactions) whose first event is in the 30-day window. */
  readonly sessions30d: number;
  readonly cartSessions30d: number;
  /** Sessions with an ADD_TO_CART and neither a PURCHASE click nor a PURCHASE transaction. */
  readonly abandonedSessions30d: number;
  /** Sum over those sessions of (last event − first event). */
  readonly sessionDurationMs30d: number;
  /** Per category, over 90 days: purchase lines + VIEW + ADD_TO_CART clicks, purchase line spend, newest of those. */
  readonly categories: readonly CategoryAggregate[];
  /** PURCHASE transactions with a coupon (a non-empty couponCode) in 90 days. */
  readonly couponOrders90d: number;
  /** Line items of PURCHASE transactions with a brand (non-empty) in 90 days, and the most of them for one brand. */
  readonly brandedLines90d: number;
  readonly favoriteBrandLines90d: number;
  /** Clicks carrying a review (a non-empty reviewText) in 90 days, and the sum of their sentiments (thousandths). */
  readonly reviews90d: number;
  readonly reviewSentimentMilli90d: number;
  /** PURCHASE transactions and their total in 180 and 365 days, RETURN transactions in 365 days. */
  readonly orders180d: number;
  readonly orders365d: number;
  readonly spend180dMinor: number;
  readonly spend365dMinor: number;
  readonly returns365d: number;
  /** UTC days with at least one PURCHASE in 365 days, ascending (day indexes, as purchaseDays90d). */
  readonly purchaseDays365d: readonly number[];
}

export interface CategoryAggregate {
  readonly category: string;
  readonly interactions90d: number;
  readonly spend90dMinor: number;
  readonly lastMs: number;
}

/**
 * RFM quintile cut points: the 20/40/60/80th percentiles of recency_days, frequency_90d and monetary_90d_minor over the
 * customers with a purchase in the 90 days before `asOf` (`npm run features -- cutpoints`, from ClickHouse).
 */
export interface RfmCutPoints {
  readonly recencyDays: readonly number[];
  readonly frequency90d: readonly number[];
  readonly monetary90dMinor: readonly number[];
  /** Where they come from, e.g. `clickhouse as of 2011-09-01T00:00:00Z, 3,211 customers`. */
  readonly source: string;
}

/** The model's numeric inputs, in order (the feature manifest of training/ and the scorer follow this list). */
export const FEATURE_NAMES = [
  'recency_days',
  'frequency_7d',
  'frequency_30d',
  'frequency_90d',
  'monetary_7d_minor',
  'monetary_30d_minor',
  'monetary_90d_minor',
  'days_since_first_purchase',
  'lifetime_days',
  'orders_lifetime',
  'monetary_lifetime_minor',
  'avg_order_value_90d_minor',
  'lines_per_order_90d',
  'active_days_90d',
  'mean_interpurchase_days',
  'purchase_cycle_ratio',
  'returns_share_90d',
  'r_score',
  'f_score',
  'm_score',
  'rfm_score',
  'top_category_affinity',
  'categories_90d',
  'cart_abandonment_rate',
  'search_to_purchase_ratio',
  'preferred_hour',
  'avg_session_duration_s',
  'sessions_30d',
  'views_1h',
  'views_24h',
  'views_7d',
  'searches_1h',
  'searches_24h',
  'searches_7d',
  'add_to_carts_1h',
  'add_to_carts_24h',
  'add_to_carts_7d',
  'last_gap_days_90d',
  'mean_gap_days_90d',
  'gap_cv_90d',
  'gap_ratio_90d',
  'active_weeks_90d',
  'brand_consistency_90d',
  'coupon_usage_rate_90d',
  'reviews_90d',
  'review_sentiment_90d',
  'frequency_180d',
  'frequency_365d',
  'monetary_180d_minor',
  'monetary_365d_minor',
  'active_days_365d',
  'mean_gap_days_365d',
  'gap_cv_365d',
  'gap_ratio_365d',
  'repurchase_hazard_365d',
] as const;

export type FeatureName = (typeof FEATURE_NAMES)[number];

/** Copies features into a vector at `offset`, in the order its reader was made for. */
export type FeatureVectorReader = (
  values: Readonly<Record<FeatureName, number>>,
  out: Float64Array | Float32Array,
  offset: number,
) => void;

const vectorReaders = new Map<string, FeatureVectorReader>();

/**
 * A reader of `names` out of a features record, generated once per order: a loop reading `values[name]` with a
 * changing name is a megamorphic keyed load (~60 ns each here, 3.5 µs per customer update for 55 features), while
 * the generated `values.recency_days` are plain property loads. Every customer update reads its features this way for
 * its hash changes and its model row.
 */
export function featureVectorReader(names: readonly FeatureName[]): FeatureVectorReader {
  const key = names.join(',');
  let reader = vectorReaders.get(key);
  if (!reader) {
    const known = new Set<string>(FEATURE_NAMES);
    for (const name of names) {
      // Feature names are snake_case identifiers; anything else never reaches the generated source.
      if (!known.has(name) || !/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`not a feature name: ${name}`);
    }
    const body = names.map((name, i) => `out[offset + ${i}] = values.${name};`).join('\n');
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- generated from the validated names above
    reader = new Function('values', 'out', 'offset', body) as FeatureVectorReader;
    vectorReaders.set(key, reader);
  }
  return reader;
}

/** Which features are exact integers (counts, sums, scores) and which are ratios/durations (compared with tolerance). */
export const EXACT_FEATURES: ReadonlySet<FeatureName> = new Set<FeatureName>([
  'frequency_7d',
  'frequency_30d',
  'frequency_90d',
  'monetary_7d_minor',
  'monetary_30d_minor',
  'monetary_90d_minor',
  'orders_lifetime',
  'monetary_lifetime_minor',
  'active_days_90d',
  'r_score',
  'f_score',
  'm_score',
  'rfm_score',
  'categories_90d',
  'preferred_hour',
  'sessions_30d',
  'views_1h',
  'views_24h',
  'views_7d',
  'searches_1h',
  'searches_24h',
  'searches_7d',
  'add_to_carts_1h',
  'add_to_carts_24h',
  'add_to_carts_7d',
  'last_gap_days_90d',
  'active_weeks_90d',
  'reviews_90d',
  'frequency_180d',
  'frequency_365d',
  'monetary_180d_minor',
  'monetary_365d_minor',
  'active_days_365d',
]);

/**
 * Features added after `features:{id}` hashes were already being written: a hash an older feature processor wrote lacks
 * them, and reads them as 0, their value without data (that processor folded no coupon, review or brand into the state).
 */
export const FEATURES_ABSENT_AS_ZERO: ReadonlySet<FeatureName> = new Set<FeatureName>([
  'brand_consistency_90d',
  'coupon_usage_rate_90d',
  'reviews_90d',
  'review_sentiment_90d',
]);

export interface CustomerFeatures {
  readonly values: Readonly<Record<FeatureName, number>>;
  readonly topCategory: string;
  /** Affinity in [0, 1] of every category with an interaction in 90 days. */
  readonly affinity: ReadonlyMap<string, number>;
  /** Event time of the newest event reflected (the feature time). */
  readonly featureTimeMs: number;
  readonly refMs: number;
}

const ratio = (num: number, den: number) => (den > 0 ? num / den : 0);

/**
 * The purchase rhythm over the 90-day window, from the distinct purchase days: the gap between the last two, the mean
 * gap, its coefficient of variation (population), days since the last purchase day over the mean gap, and distinct
 * Monday-based weeks with a purchase. -1 where undefined (fewer than 2 days; 3 for the variation).
 */
export function purchaseRhythm(days: readonly number[], refMs: number) {
  const n = days.length;
  const first = days[0] ?? 0;
  const last = days[n - 1] ?? 0;
  const gaps = days.slice(1).map((d, i) => d - (days[i] ?? d));
  const meanGap = n >= 2 ? (last - first) / (n - 1) : -1;
  let cv = -1;
  if (gaps.length >= 2 && meanGap > 0) {
    const variance = gaps.reduce((sum, g) => sum + (g - meanGap) ** 2, 0) / gaps.length;
    cv = Math.sqrt(variance) / meanGap;
  }
  return {
    lastGap: n >= 2 ? last - (days[n - 2] ?? last) : -1,
    meanGap,
    cv,
    gapRatio: meanGap > 0 ? (Math.floor(refMs / DAY_MS) - last) / meanGap : -1,
    weeks: new Set(days.map((d) => Math.floor((d + 3) / 7))).size, // day 0 (1970-01-01) was a Thursday
  };
}

/**
 * Of the gaps between consecutive purchase days (ascending `days`) longer than the current one (days from the last
 * purchase day to the reference day), the share that ended within 7 more days: how often, in the customer's own
 * history, a pause this long was over within a week. -1 without such a gap (fewer than 2 days, or none as long).
 */
export function repurchaseHazard(days: readonly number[], refMs: number): number {
  const last = days.at(-1);
  if (last === undefined) return -1;
  const current = Math.floor(refMs / DAY_MS) - last;
  let longer = 0;
  let ended = 0;
  for (let i = 1; i < days.length; i++) {
    const gap = (days[i] as number) - (days[i - 1] as number);
    if (gap <= current) continue;
    longer++;
    if (gap <= current + 7) ended++;
  }
  return longer > 0 ? ended / longer : -1;
}

/** 1..5 from ascending cut points: how many cut points `value` exceeds, plus one. */
export function quintile(value: number, cuts: readonly number[]): number {
  let score = 1;
  for (const c of cuts) if (value > c) score++;
  return Math.min(score, 5);
}

/** Category affinity (seed weights) of each category with an interaction in the 90-day window. */
export function categoryAffinity(agg: WindowAggregates): Map<string, number> {
  const totalInteractions = agg.categories.reduce((n, c) => n + c.interactions90d, 0);
  const totalSpend = agg.categories.reduce((n, c) => n + Math.max(c.spend90dMinor, 0), 0);
  const out = new Map<string, number>();
  for (const c of agg.categories) {
    if (c.interactions90d <= 0) continue;
    const recency = Math.min(1, Math.max(0, 1 - (agg.refMs - c.lastMs) / (90 * DAY_MS)));
    const score =
      AFFINITY_WEIGHTS.frequency * ratio(c.interactions90d, totalInteractions) +
      AFFINITY_WEIGHTS.spend * ratio(Math.max(c.spend90dMinor, 0), totalSpend) +
      AFFINITY_WEIGHTS.recency * recency;
    out.set(c.category, score);
  }
  return out;
}

/** The top category: highest affinity, ties broken by name; '' without any. */
export function topCategoryOf(affinity: ReadonlyMap<string, number>): string {
  let best = '';
  let bestScore = -1;
  for (const [category, score] of [...affinity].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (score > bestScore + 1e-12) {
      best = category;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Features from aggregates. Conventions: a duration or ratio without a denominator is 0, except the purchase-based
 * durations (recency_days, days_since_first_purchase, mean_interpurchase_days, purchase_cycle_ratio), which are -1 when
 * undefined; preferred_hour is 0 without events in 30 days (sessions_30d and the counts tell those apart).
 * RFM: r_score is 0 without any purchase, f_score and m_score 0 without a purchase in 90 days; rfm_score = 100 r + 10 f + m.
 * The 365-day purchase rhythm (mean gap, its variation, gap ratio: as purchaseRhythm over the 90 days, -1 where
 * undefined) and the repurchase hazard read the distinct purchase days of 365 days (day hop, as every window).
 * Brand consistency: the favourite brand's share of the branded purchase lines (ties do not matter: only the count is
 * used); review sentiment: the mean per-review score (AFINN per word, see sentiment.ts), 0 without a review.
 */
export function finalizeFeatures(agg: WindowAggregates, cuts: RfmCutPoints): CustomerFeatures {
  const days = (ms: number) => ms / DAY_MS;
  const recency = agg.lastPurchaseMs === null ? -1 : days(agg.refMs - agg.lastPurchaseMs);
  const sinceFirst = agg.firstPurchaseMs === null ? -1 : days(agg.refMs - agg.firstPurchaseMs);
  const interpurchase =
    agg.ordersLifetime >= 2 && agg.firstPurchaseMs !== null && agg.lastPurchaseMs !== null
      ? days(agg.lastPurchaseMs - agg.firstPurchaseMs) / (agg.ordersLifetime - 1)
      : -1;
  const rScore = agg.lastPurchaseMs === null ? 0 : 6 - quintile(recency, cuts.recencyDays);
  const fScore = agg.orders90d > 0 ? quintile(agg.orders90d, cuts.frequency90d) : 0;
  const mScore = agg.orders90d > 0 ? quintile(agg.spend90dMinor, cuts.monetary90dMinor) : 0;
  let preferredHour = 0;
  for (let h = 1; h < 24; h++)
    if ((agg.hourCounts30d[h] ?? 0) > (agg.hourCounts30d[preferredHour] ?? 0)) preferredHour = h;
  const affinity = categoryAffinity(agg);
  const topCategory = topCategoryOf(affinity);
  const rhythm = purchaseRhythm(agg.purchaseDays90d, agg.refMs);
  const year = purchaseRhythm(agg.purchaseDays365d, agg.refMs);
  const values: Record<FeatureName, number> = {
    recency_days: recency,
    frequency_7d: agg.orders7d,
    frequency_30d: agg.orders30d,
    frequency_90d: agg.orders90d,
    monetary_7d_minor: agg.spend7dMinor,
    monetary_30d_minor: agg.spend30dMinor,
    monetary_90d_minor: agg.spend90dMinor,
    days_since_first_purchase: sinceFirst,
    lifetime_days: days(agg.refMs - agg.firstEventMs),
    orders_lifetime: agg.ordersLifetime,
    monetary_lifetime_minor: agg.spendLifetimeMinor,
    avg_order_value_90d_minor: ratio(agg.spend90dMinor, agg.orders90d),
    lines_per_order_90d: ratio(agg.lines90d, agg.orders90d),
    active_days_90d: agg.activeDays90d,
    mean_interpurchase_days: interpurchase,
    purchase_cycle_ratio: interpurchase > 0 ? recency / interpurchase : -1,
    returns_share_90d: ratio(agg.returns90d, agg.returns90d + agg.orders90d),
    r_score: rScore,
    f_score: fScore,
    m_score: mScore,
    rfm_score: 100 * rScore + 10 * fScore + mScore,
    top_category_affinity: topCategory ? (affinity.get(topCategory) ?? 0) : 0,
    categories_90d: affinity.size,
    cart_abandonment_rate: ratio(agg.abandonedSessions30d, agg.cartSessions30d),
    search_to_purchase_ratio: ratio(agg.orders30d, agg.searches30d),
    preferred_hour: preferredHour,
    avg_session_duration_s: ratio(agg.sessionDurationMs30d, agg.sessions30d) / 1000,
    sessions_30d: agg.sessions30d,
    views_1h: agg.views1h,
    views_24h: agg.views24h,
    views_7d: agg.views7d,
    searches_1h: agg.searches1h,
    searches_24h: agg.searches24h,
    searches_7d: agg.searches7d,
    add_to_carts_1h: agg.carts1h,
    add_to_carts_24h: agg.carts24h,
    add_to_carts_7d: agg.carts7d,
    last_gap_days_90d: rhythm.lastGap,
    mean_gap_days_90d: rhythm.meanGap,
    gap_cv_90d: rhythm.cv,
    gap_ratio_90d: rhythm.gapRatio,
    active_weeks_90d: rhythm.weeks,
    brand_consistency_90d: ratio(agg.favoriteBrandLines90d, agg.brandedLines90d),
    coupon_usage_rate_90d: ratio(agg.couponOrders90d, agg.orders90d),
    reviews_90d: agg.reviews90d,
    review_sentiment_90d: ratio(agg.reviewSentimentMilli90d, agg.reviews90d) / 1000,
    frequency_180d: agg.orders180d,
    frequency_365d: agg.orders365d,
    monetary_180d_minor: agg.spend180dMinor,
    monetary_365d_minor: agg.spend365dMinor,
    active_days_365d: agg.purchaseDays365d.length,
    mean_gap_days_365d: year.meanGap,
    gap_cv_365d: year.cv,
    gap_ratio_365d: year.gapRatio,
    repurchase_hazard_365d: repurchaseHazard(agg.purchaseDays365d, agg.refMs),
  };
  return { values, topCategory, affinity, featureTimeMs: agg.lastEventMs, refMs: agg.refMs };
}

/** Neutral cut points used until `npm run features -- cutpoints` has published real ones. */
export const DEFAULT_CUT_POINTS: RfmCutPoints = {
  recencyDays: [7, 21, 45, 70],
  frequency90d: [1, 2, 3, 6],
  monetary90dMinor: [5_000, 15_000, 40_000, 100_000],
  source: 'built-in defaults (no cut points computed yet)',
};
