// The pure parts of the warehouse side of the features: cut points from aggregates, which stored cut points apply at a
// time, which days are due for a snapshot, and the shape of a snapshot row.
import { describe, expect, it } from 'vitest';
import { cutPointsAt, cutPointsFromAggregates } from '../../processors/features/cutpoints-warehouse.js';
import {
  DAY_MS,
  DEFAULT_CUT_POINTS,
  FEATURE_NAMES,
  finalizeFeatures,
  type RfmCutPoints,
  type WindowAggregates,
} from '../../processors/features/definitions.js';
import { dueSnapshotDays, snapshotRow } from '../../processors/features/snapshots.js';
import { emptyAggregates } from '../fixtures/aggregates.js';

const REF = Date.UTC(2024, 2, 10);

function buyer(recencyDays: number, orders90d: number, spend90dMinor: number): WindowAggregates {
  const lastPurchaseMs = REF - recencyDays * DAY_MS;
  return emptyAggregates(REF, lastPurchaseMs, {
    firstPurchaseMs: lastPurchaseMs,
    lastPurchaseMs,
    ordersLifetime: Math.max(orders90d, 1),
    spendLifetimeMinor: spend90dMinor,
    orders90d,
    spend90dMinor,
    lines90d: orders90d,
    activeDays90d: orders90d > 0 ? 1 : 0,
    purchaseDays90d: orders90d > 0 ? [Math.floor(lastPurchaseMs / DAY_MS)] : [],
    categories: [{ category: 'toys', interactions90d: 1, spend90dMinor, lastMs: lastPurchaseMs }],
  });
}

describe('cutPointsFromAggregates', () => {
  it('takes recency, frequency and monetary of the customers with a purchase in 90 days', () => {
    const cuts = cutPointsFromAggregates(
      [buyer(1, 1, 100), buyer(2, 2, 200), buyer(3, 3, 300), buyer(4, 4, 400), buyer(5, 5, 500), buyer(200, 0, 0)],
      'test as of then',
    );
    expect(cuts).toEqual({
      recencyDays: [1, 2, 3, 4],
      frequency90d: [1, 2, 3, 4],
      monetary90dMinor: [100, 200, 300, 400],
      source: 'test as of then, 5 customers',
    });
  });

  it('is null when nobody bought in 90 days', () => {
    expect(cutPointsFromAggregates([buyer(120, 0, 0)], 'x')).toBeNull();
    expect(cutPointsFromAggregates([], 'x')).toBeNull();
  });

  it('formats the population size for people', () => {
    const many = Array.from({ length: 1234 }, (_, i) => buyer(1 + (i % 30), 1, 100 * i));
    expect(cutPointsFromAggregates(many, 'x')?.source).toBe('x, 1,234 customers');
  });
});

describe('cutPointsAt', () => {
  const cuts = (source: string): RfmCutPoints => ({ ...DEFAULT_CUT_POINTS, source });
  const stored = [
    { asOfMs: 100, cuts: cuts('first') },
    { asOfMs: 200, cuts: cuts('second') },
  ];

  it('takes the newest computation as of the time, never a later one', () => {
    expect(cutPointsAt(stored, 100).source).toBe('first');
    expect(cutPointsAt(stored, 199).source).toBe('first');
    expect(cutPointsAt(stored, 5_000).source).toBe('second');
  });

  it('falls back to the defaults before the first computation', () => {
    expect(cutPointsAt(stored, 99)).toBe(DEFAULT_CUT_POINTS);
    expect(cutPointsAt([], 99)).toBe(DEFAULT_CUT_POINTS);
  });
});

describe('dueSnapshotDays', () => {
  const D0 = Date.UTC(2024, 0, 1);
  const clock = { firstEventMs: D0 + 5 * 3_600_000, graceMs: 0, periodMs: DAY_MS, lastSnapshotDayMs: null };

  it('starts at the first day with data and stops at the last day that has ended', () => {
    expect(dueSnapshotDays({ ...clock, watermarkMs: D0 + DAY_MS - 1 })).toEqual([]);
    expect(dueSnapshotDays({ ...clock, watermarkMs: D0 + DAY_MS })).toEqual([D0]);
    expect(dueSnapshotDays({ ...clock, watermarkMs: D0 + 3 * DAY_MS + 1 })).toEqual([D0, D0 + DAY_MS, D0 + 2 * DAY_MS]);
  });

  it('waits for the grace past the end of a day', () => {
    const graced = { ...clock, graceMs: 2 * 3_600_000 };
    expect(dueSnapshotDays({ ...graced, watermarkMs: D0 + DAY_MS + 3_600_000 })).toEqual([]);
    expect(dueSnapshotDays({ ...graced, watermarkMs: D0 + DAY_MS + 2 * 3_600_000 })).toEqual([D0]);
  });

  it('continues after the last snapshot, every period', () => {
    expect(dueSnapshotDays({ ...clock, lastSnapshotDayMs: D0 + DAY_MS, watermarkMs: D0 + 4 * DAY_MS })).toEqual([
      D0 + 2 * DAY_MS,
      D0 + 3 * DAY_MS,
    ]);
    expect(
      dueSnapshotDays({ ...clock, periodMs: 7 * DAY_MS, lastSnapshotDayMs: D0, watermarkMs: D0 + 30 * DAY_MS }),
    ).toEqual([D0 + 7 * DAY_MS, D0 + 14 * DAY_MS, D0 + 21 * DAY_MS, D0 + 28 * DAY_MS]);
  });
});

describe('snapshotRow', () => {
  it('holds every feature by name and the affinities as parallel arrays sorted by category', () => {
    const agg = buyer(3, 2, 900);
    const features = finalizeFeatures(
      {
        ...agg,
        categories: [
          { category: 'toys', interactions90d: 1, spend90dMinor: 0, lastMs: REF },
          { category: 'books', interactions90d: 3, spend90dMinor: 900, lastMs: REF },
        ],
      },
      DEFAULT_CUT_POINTS,
    );
    const row = snapshotRow('2024-03-09', 'g-1', features, 42);
    expect(Object.keys(row)).toEqual([
      'snapshot_date',
      'global_customer_id',
      ...FEATURE_NAMES,
      'top_category',
      'affinity_categories',
      'affinity_scores',
      'feature_time_ms',
      'version',
    ]);
    expect(row['affinity_categories']).toEqual(['books', 'toys']);
    expect(row['affinity_scores']).toEqual([features.affinity.get('books'), features.affinity.get('toys')]);
    expect(row).toMatchObject({ top_category: 'books', feature_time_ms: agg.lastEventMs, version: 42 });
  });
});
