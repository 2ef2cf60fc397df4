// The shared feature definitions at their edges (no purchase, one purchase, empty denominators, ties, clamps), and the
// nearest-rank percentile the RFM cut points are made of.
import { describe, expect, it } from 'vitest';
import { nearestRankPercentile, quintileCuts } from '../../processors/features/cutpoints-warehouse.js';
import {
  AFFINITY_WEIGHTS,
  DAY_MS,
  DEFAULT_CUT_POINTS,
  EXACT_FEATURES,
  FEATURE_NAMES,
  categoryAffinity,
  featureVectorReader,
  finalizeFeatures,
  purchaseRhythm,
  quintile,
  repurchaseHazard,
  topCategoryOf,
  type FeatureName,
  type RfmCutPoints,
  type WindowAggregates,
} from '../../processors/features/definitions.js';
import { emptyAggregates } from '../fixtures/aggregates.js';

const REF = Date.UTC(2024, 2, 10, 12);

/** A customer with one click an hour before REF and nothing else; override what a test needs. */
function aggregates(overrides: Partial<WindowAggregates> = {}): WindowAggregates {
  return emptyAggregates(REF, REF - 3_600_000, overrides);
}

const CUTS: RfmCutPoints = {
  recencyDays: [2, 5, 10, 30],
  frequency90d: [1, 2, 3, 5],
  monetary90dMinor: [1_000, 2_000, 5_000, 10_000],
  source: 'test',
};

describe('quintile', () => {
  it('counts the cut points a value exceeds, plus one; equal is not above', () => {
    expect(quintile(0, [1, 2, 3, 4])).toBe(1);
    expect(quintile(1, [1, 2, 3, 4])).toBe(1);
    expect(quintile(1.5, [1, 2, 3, 4])).toBe(2);
    expect(quintile(4, [1, 2, 3, 4])).toBe(4);
    expect(quintile(4.01, [1, 2, 3, 4])).toBe(5);
  });

  it('skips over repeated cut points and stays within 1..5', () => {
    expect(quintile(1, [1, 1, 2, 2])).toBe(1);
    expect(quintile(1.5, [1, 1, 2, 2])).toBe(3);
    expect(quintile(3, [1, 1, 2, 2])).toBe(5);
    expect(quintile(100, [1, 2, 3, 4, 5, 6])).toBe(5);
    expect(quintile(100, [])).toBe(1);
  });
});

describe('categoryAffinity', () => {
  it('weighs interaction share, spend share and recency', () => {
    const affinity = categoryAffinity(
      aggregates({
        categories: [
          { category: 'books', interactions90d: 3, spend90dMinor: 3_000, lastMs: REF },
          { category: 'toys', interactions90d: 1, spend90dMinor: 1_000, lastMs: REF - 45 * DAY_MS },
        ],
      }),
    );
    const { frequency, spend, recency } = AFFINITY_WEIGHTS;
    expect(affinity.get('books')).toBeCloseTo(frequency * 0.75 + spend * 0.75 + recency * 1, 12);
    expect(affinity.get('toys')).toBeCloseTo(frequency * 0.25 + spend * 0.25 + recency * 0.5, 12);
  });

  it('leaves out categories without interactions, clamps negative spend and recency outside [0, 1]', () => {
    const affinity = categoryAffinity(
      aggregates({
        categories: [
          { category: 'gone', interactions90d: 0, spend90dMinor: 0, lastMs: REF },
          { category: 'refunded', interactions90d: 1, spend90dMinor: -800, lastMs: REF - 200 * DAY_MS },
          { category: 'future', interactions90d: 1, spend90dMinor: 0, lastMs: REF + DAY_MS },
        ],
      }),
    );
    expect([...affinity.keys()]).toEqual(['refunded', 'future']);
    // No positive spend anywhere: the spend share is 0, not a division by zero.
    expect(affinity.get('refunded')).toBeCloseTo(AFFINITY_WEIGHTS.frequency * 0.5, 12);
    expect(affinity.get('future')).toBeCloseTo(AFFINITY_WEIGHTS.frequency * 0.5 + AFFINITY_WEIGHTS.recency, 12);
  });

  it('is empty without categories', () => {
    expect(categoryAffinity(aggregates()).size).toBe(0);
  });
});

describe('topCategoryOf', () => {
  it('takes the highest affinity, ties (within 1e-12) going to the first name', () => {
    expect(topCategoryOf(new Map())).toBe('');
    expect(
      topCategoryOf(
        new Map([
          ['b', 0.5],
          ['a', 0.2],
        ]),
      ),
    ).toBe('b');
    expect(
      topCategoryOf(
        new Map([
          ['zeta', 0.5],
          ['alpha', 0.5],
        ]),
      ),
    ).toBe('alpha');
    expect(
      topCategoryOf(
        new Map([
          ['beta', 0.5 + 1e-13],
          ['alpha', 0.5],
        ]),
      ),
    ).toBe('alpha');
  });

  it('takes a zero affinity over none', () => {
    expect(topCategoryOf(new Map([['only', 0]]))).toBe('only');
  });
});

describe('finalizeFeatures', () => {
  it('gives every feature in order, exact ones as integers', () => {
    const f = finalizeFeatures(aggregates({ ordersLifetime: 1, firstPurchaseMs: REF, lastPurchaseMs: REF }), CUTS);
    expect(Object.keys(f.values)).toEqual([...FEATURE_NAMES]);
    for (const name of EXACT_FEATURES) expect(Number.isInteger(f.values[name]), name).toBe(true);
  });

  it('marks purchase-based durations -1 and scores 0 without any purchase', () => {
    const f = finalizeFeatures(aggregates(), CUTS);
    expect(f.values).toMatchObject({
      recency_days: -1,
      days_since_first_purchase: -1,
      mean_interpurchase_days: -1,
      purchase_cycle_ratio: -1,
      r_score: 0,
      f_score: 0,
      m_score: 0,
      rfm_score: 0,
      avg_order_value_90d_minor: 0,
      lines_per_order_90d: 0,
      returns_share_90d: 0,
      cart_abandonment_rate: 0,
      search_to_purchase_ratio: 0,
      avg_session_duration_s: 0,
      preferred_hour: 0,
      top_category_affinity: 0,
      categories_90d: 0,
    });
    expect(f.values.lifetime_days).toBeCloseTo(1 / 24, 12);
    expect(f.topCategory).toBe('');
    expect(f.featureTimeMs).toBe(REF - 3_600_000);
    expect(f.refMs).toBe(REF);
  });

  it('has no inter-purchase time with a single purchase', () => {
    const f = finalizeFeatures(
      aggregates({
        firstPurchaseMs: REF - 3 * DAY_MS,
        lastPurchaseMs: REF - 3 * DAY_MS,
        ordersLifetime: 1,
        orders7d: 1,
        orders30d: 1,
        orders90d: 1,
        spend90dMinor: 1_500,
      }),
      CUTS,
    );
    expect(f.values).toMatchObject({
      recency_days: 3,
      days_since_first_purchase: 3,
      mean_interpurchase_days: -1,
      purchase_cycle_ratio: -1,
      r_score: 4, // 3 days exceeds only the first recency cut (2): quintile 2, reversed
      f_score: 1,
      m_score: 2,
      rfm_score: 412,
    });
  });

  it('keeps r_score for a purchase older than 90 days, with f and m at 0', () => {
    const f = finalizeFeatures(
      aggregates({
        firstPurchaseMs: REF - 200 * DAY_MS,
        lastPurchaseMs: REF - 100 * DAY_MS,
        ordersLifetime: 3,
        spendLifetimeMinor: 9_000,
      }),
      CUTS,
    );
    expect(f.values).toMatchObject({
      recency_days: 100,
      mean_interpurchase_days: 50,
      purchase_cycle_ratio: 2,
      r_score: 1,
      f_score: 0,
      m_score: 0,
      rfm_score: 100,
      monetary_lifetime_minor: 9_000,
    });
  });

  it('divides where there is a denominator', () => {
    const hourCounts30d = new Array<number>(24).fill(0);
    hourCounts30d[7] = 4;
    hourCounts30d[19] = 4; // a tie goes to the earlier hour
    hourCounts30d[3] = 1;
    const f = finalizeFeatures(
      aggregates({
        firstPurchaseMs: REF - DAY_MS,
        lastPurchaseMs: REF - DAY_MS,
        ordersLifetime: 4,
        orders30d: 2,
        orders90d: 4,
        spend90dMinor: 10_000,
        lines90d: 10,
        returns90d: 1,
        searches30d: 8,
        sessions30d: 4,
        cartSessions30d: 3,
        abandonedSessions30d: 1,
        sessionDurationMs30d: 10_000,
        hourCounts30d,
      }),
      CUTS,
    );
    expect(f.values).toMatchObject({
      avg_order_value_90d_minor: 2_500,
      lines_per_order_90d: 2.5,
      returns_share_90d: 0.2,
      cart_abandonment_rate: 1 / 3,
      search_to_purchase_ratio: 0.25,
      avg_session_duration_s: 2.5,
      preferred_hour: 7,
      f_score: 4, // 4 orders exceed 1, 2 and 3 but not 5
      m_score: 4, // 10,000 is not above the last cut
    });
  });

  it('reports the top category and its affinity', () => {
    const f = finalizeFeatures(
      aggregates({
        categories: [
          { category: 'garden', interactions90d: 1, spend90dMinor: 0, lastMs: REF - 80 * DAY_MS },
          { category: 'books', interactions90d: 2, spend90dMinor: 0, lastMs: REF },
        ],
      }),
      DEFAULT_CUT_POINTS,
    );
    expect(f.topCategory).toBe('books');
    expect(f.values.top_category_affinity).toBe(f.affinity.get('books'));
    expect(f.values.categories_90d).toBe(2);
  });
});

describe('nearest-rank percentile', () => {
  it('is the smallest value with at least p % of the values at or below it', () => {
    const ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect([20, 40, 60, 80, 100].map((p) => nearestRankPercentile(ten, p))).toEqual([2, 4, 6, 8, 10]);
    expect([20, 40, 60, 80].map((p) => nearestRankPercentile([10, 20, 30], p))).toEqual([10, 20, 20, 30]);
    expect(nearestRankPercentile([7], 20)).toBe(7);
  });

  it('computes the rank without float error (0.6 × 5 = 3.0000000000000004)', () => {
    expect(nearestRankPercentile([1, 2, 3, 4, 5], 60)).toBe(3);
  });

  it('takes values in any order for the quintile cuts, and never interpolates', () => {
    expect(quintileCuts([5000, 700])).toEqual([700, 700, 5000, 5000]);
    expect(quintileCuts([3, 1, 2, 2, 9, 4, 4, 1])).toEqual([1, 2, 3, 4]);
  });

  it('refuses no values or a percent outside (0, 100]', () => {
    expect(() => nearestRankPercentile([], 50)).toThrow(/no values/);
    expect(() => nearestRankPercentile([1], 0)).toThrow(/percent/);
    expect(() => nearestRankPercentile([1], 101)).toThrow(/percent/);
  });
});

describe('purchase rhythm', () => {
  it('derives gaps, their variation, the overdue ratio and active weeks from the purchase days', () => {
    const day = (d: number) => 20_000 + d; // day indexes
    const refMs = (20_000 + 30) * 86_400_000 + 5;
    const r = purchaseRhythm([day(0), day(10), day(20), day(26)], refMs);
    expect(r.lastGap).toBe(6);
    expect(r.meanGap).toBeCloseTo(26 / 3, 12);
    const gaps = [10, 10, 6];
    const mean = 26 / 3;
    expect(r.cv).toBeCloseTo(Math.sqrt(gaps.reduce((s, g) => s + (g - mean) ** 2, 0) / 3) / mean, 12);
    expect(r.gapRatio).toBeCloseTo(4 / mean, 12);
    expect(r.weeks).toBe(new Set([0, 10, 20, 26].map((d) => Math.floor((20_000 + d + 3) / 7))).size);
  });

  it('is -1 where undefined', () => {
    expect(purchaseRhythm([], 0)).toEqual({ lastGap: -1, meanGap: -1, cv: -1, gapRatio: -1, weeks: 0 });
    expect(purchaseRhythm([100], 101 * 86_400_000)).toEqual({
      lastGap: -1,
      meanGap: -1,
      cv: -1,
      gapRatio: -1,
      weeks: 1,
    });
    expect(purchaseRhythm([100, 104], 110 * 86_400_000)).toMatchObject({
      lastGap: 4,
      meanGap: 4,
      cv: -1,
      gapRatio: 1.5,
    });
  });
});

describe('repurchase hazard', () => {
  const day = (d: number) => 20_000 + d; // day indexes
  const at = (d: number) => day(d) * DAY_MS + 5;

  it('is the share of the past gaps longer than the current one that ended within 7 more days', () => {
    // Gaps 10, 3, 20, 12; on day 50 the current gap is 5: of the gaps longer than 5 (10, 20, 12), 10 and 12 ended
    // within 5 + 7 days.
    expect(repurchaseHazard([day(0), day(10), day(13), day(33), day(45)], at(50))).toBeCloseTo(2 / 3, 12);
    // Current gap 3: the gap of 3 is not longer; of 10 and 12, the 10 (exactly 3 + 7) counts as ended within a week.
    expect(repurchaseHazard([day(0), day(3), day(13), day(25)], at(28))).toBe(0.5);
  });

  it('is -1 without a purchase, with one purchase day, or when no past gap is as long as the current one', () => {
    expect(repurchaseHazard([], at(0))).toBe(-1);
    expect(repurchaseHazard([day(0)], at(5))).toBe(-1);
    expect(repurchaseHazard([day(0), day(4), day(8)], at(20))).toBe(-1);
  });

  it('is the 365-day feature of finalizeFeatures, with the 365-day rhythm beside it', () => {
    const days = [day(0), day(10), day(13), day(33)];
    const f = finalizeFeatures(
      emptyAggregates(at(38), at(0) - 5, {
        ordersLifetime: 4,
        orders180d: 4,
        orders365d: 4,
        spend180dMinor: 900,
        spend365dMinor: 900,
        purchaseDays365d: days,
        firstPurchaseMs: at(0),
        lastPurchaseMs: at(33),
      }),
      CUTS,
    );
    const rhythm = purchaseRhythm(days, at(38));
    expect(f.values).toMatchObject({
      frequency_180d: 4,
      frequency_365d: 4,
      monetary_180d_minor: 900,
      monetary_365d_minor: 900,
      active_days_365d: 4,
      mean_gap_days_365d: rhythm.meanGap,
      gap_cv_365d: rhythm.cv,
      gap_ratio_365d: rhythm.gapRatio,
      repurchase_hazard_365d: repurchaseHazard(days, at(38)),
    });
  });
});

describe('featureVectorReader', () => {
  const f = finalizeFeatures(
    aggregates({
      ordersLifetime: 3,
      orders90d: 2,
      spend90dMinor: 4_321,
      firstPurchaseMs: REF - 40 * DAY_MS,
      lastPurchaseMs: REF - DAY_MS,
    }),
    CUTS,
  );

  it('reads every feature in FEATURE_NAMES order, and any order or subset a model asks for, at an offset', () => {
    const all = new Float64Array(FEATURE_NAMES.length + 2);
    featureVectorReader(FEATURE_NAMES)(f.values, all, 2);
    expect([...all.subarray(2)]).toEqual(FEATURE_NAMES.map((name) => f.values[name]));
    expect(new Set(all.subarray(2)).size).toBeGreaterThan(5); // not a vector of one repeated value
    const order: FeatureName[] = ['rfm_score', 'recency_days', 'monetary_90d_minor'];
    const row = new Float32Array(3);
    featureVectorReader(order)(f.values, row, 0);
    expect([...row]).toEqual(order.map((name) => Math.fround(f.values[name])));
  });

  it('refuses a name that is not a feature before generating anything', () => {
    expect(() => featureVectorReader(['recency_days', 'x; process.exit(1)' as FeatureName])).toThrow(
      /not a feature name/,
    );
  });
});
