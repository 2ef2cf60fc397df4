/**
 * RFM quintile cut points on the warehouse side: how they are computed from aggregates (nearest-rank percentiles) and
 * their history in `feat_rfm_cutpoints` (one row per computation), from which point-in-time features take the cut
 * points that were current at their reference time. The stream reads the published ones from Redis (cutpoints.ts).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { z } from 'zod';
import { AppError } from '../runtime/errors.js';
import { DAY_MS, DEFAULT_CUT_POINTS, type RfmCutPoints, type WindowAggregates } from './definitions.js';

/** The percentiles that split customers into quintiles; quintile() in definitions.ts expects four ascending cuts. */
export const RFM_PERCENTILES = [20, 40, 60, 80] as const;

/**
 * The nearest-rank percentile of ascending `sorted` values: the smallest value such that at least `percent` % of the
 * values are at or below it, i.e. `sorted[ceil(percent / 100 * n) - 1]`. Always an observed value (no interpolation),
 * so integer features keep integer cuts and the result does not depend on an approximate sketch.
 * @throws AppError USAGE for an empty list or a percent outside (0, 100]
 */
export function nearestRankPercentile(sorted: readonly number[], percent: number): number {
  if (sorted.length === 0) throw new AppError('USAGE', 'a percentile of no values is undefined');
  if (!(percent > 0 && percent <= 100)) throw new AppError('USAGE', `percent must be in (0, 100], got ${percent}`);
  // percent * n is computed before dividing so whole percents stay exact (0.6 * 5 is 3.0000000000000004 in floats).
  const rank = Math.ceil((percent * sorted.length) / 100);
  const value = sorted[Math.min(Math.max(rank, 1), sorted.length) - 1];
  if (value === undefined) throw new Error('unreachable: rank within bounds');
  return value;
}

/** RFM_PERCENTILES of `values` (any order). */
export function quintileCuts(values: readonly number[]): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  return RFM_PERCENTILES.map((p) => nearestRankPercentile(sorted, p));
}

/**
 * Cut points over the customers among `aggregates` with a purchase in their 90-day window, with recency_days,
 * frequency_90d and monetary_90d_minor defined exactly as finalizeFeatures defines them. `sourceLabel` starts the
 * source text (e.g. `clickhouse as of 2011-09-01T00:00:00Z`); the population size is appended. Null when nobody
 * qualifies: the caller decides between an error and the defaults.
 */
export function cutPointsFromAggregates(
  aggregates: Iterable<WindowAggregates>,
  sourceLabel: string,
): RfmCutPoints | null {
  const recency: number[] = [];
  const frequency: number[] = [];
  const monetary: number[] = [];
  for (const agg of aggregates) {
    if (agg.orders90d <= 0 || agg.lastPurchaseMs === null) continue;
    recency.push((agg.refMs - agg.lastPurchaseMs) / DAY_MS);
    frequency.push(agg.orders90d);
    monetary.push(agg.spend90dMinor);
  }
  if (recency.length === 0) return null;
  return {
    recencyDays: quintileCuts(recency),
    frequency90d: quintileCuts(frequency),
    monetary90dMinor: quintileCuts(monetary),
    source: `${sourceLabel}, ${recency.length.toLocaleString('en-US')} customers`,
  };
}

/** An instant for people: ISO-8601 UTC, without milliseconds when there are none. */
export function formatInstant(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

// z.number() refuses NaN and ±Infinity in zod 4.
const cutList = z
  .array(z.number())
  .length(RFM_PERCENTILES.length)
  .refine((cuts) => cuts.every((c, i) => i === 0 || c >= (cuts[i - 1] ?? c)), 'must be ascending');

const cutPointsSchema = z.object({
  recencyDays: cutList,
  frequency90d: cutList,
  monetary90dMinor: cutList,
  source: z.string(),
});

/**
 * Validates cut points read from feat_rfm_cutpoints (four ascending finite numbers per measure, plus a source).
 * @throws AppError CONFIG_INVALID naming every problem
 */
function parseStoredCutPoints(value: unknown, where: string): RfmCutPoints {
  const parsed = cutPointsSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new AppError('CONFIG_INVALID', `invalid RFM cut points in ${where}: ${problems.join('; ')}`);
  }
  return parsed.data;
}

// --- ClickHouse: the history, for point-in-time use ---

/** One row of feat_rfm_cutpoints: cut points computed as of `asOfMs`. */
export interface StoredCutPoints {
  readonly asOfMs: number;
  readonly cuts: RfmCutPoints;
}

/** Records cut points computed as of `asOfMs`; a recomputation for the same instant replaces the row. */
export async function storeCutPoints(ch: ClickHouseClient, asOfMs: number, cuts: RfmCutPoints): Promise<void> {
  const now = Date.now();
  await ch.insert({
    table: 'feat_rfm_cutpoints',
    format: 'JSONEachRow',
    values: [
      {
        computed_at: Math.floor(now / 1000),
        as_of_ms: asOfMs,
        recency: cuts.recencyDays,
        frequency: cuts.frequency90d,
        monetary: cuts.monetary90dMinor,
        source: cuts.source,
        version: now,
      },
    ],
  });
}

/** Every stored computation, oldest as-of first (the table holds one small row per run of `cutpoints`). */
export async function loadStoredCutPoints(ch: ClickHouseClient): Promise<StoredCutPoints[]> {
  const rs = await ch.query({
    query: 'SELECT as_of_ms, recency, frequency, monetary, source FROM feat_rfm_cutpoints FINAL ORDER BY as_of_ms',
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{
    as_of_ms: string | number;
    recency: number[];
    frequency: number[];
    monetary: number[];
    source: string;
  }>();
  return rows.map((r) => {
    const where = `feat_rfm_cutpoints as of ${formatInstant(Number(r.as_of_ms))}`;
    const cuts = { recencyDays: r.recency, frequency90d: r.frequency, monetary90dMinor: r.monetary, source: r.source };
    return { asOfMs: Number(r.as_of_ms), cuts: parseStoredCutPoints(cuts, where) };
  });
}

/**
 * The cut points that were current at `refMs`: the newest stored computation as of `refMs` or earlier (never a later
 * one, which would leak the future into point-in-time features), else DEFAULT_CUT_POINTS. `stored` is ascending.
 */
export function cutPointsAt(stored: readonly StoredCutPoints[], refMs: number): RfmCutPoints {
  let current: RfmCutPoints = DEFAULT_CUT_POINTS;
  for (const s of stored) {
    if (s.asOfMs > refMs) break;
    current = s.cuts;
  }
  return current;
}
