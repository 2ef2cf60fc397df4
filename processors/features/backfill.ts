/**
 * `npm run features -- backfill`: fills the warehouse history of the features that came with the schema evolution of
 * issue 13 (brand consistency, coupon usage, review sentiment), where the stored data allows.
 *
 * 1. Review scores: every `fact_event` row with a review gets `review_sentiment` = reviewSentimentMilli(review_text),
 *    the one function the resolver and the sink use. A row whose stored score differs (written by another scorer
 *    version, see SENTIMENT_METHOD, or by a loader that did not score) is inserted again with the new score and a newer
 *    `ingested_at`, which the ReplacingMergeTree keeps (queries read FINAL). Rows already right are left alone.
 * 2. Snapshots: each day in `feat_customer_rfm` is recomputed from the facts (snapshots.ts), which fills the columns
 *    added by migrations 0015 and 0016 on rows written before them (they read 0 until then); a recompute replaces
 *    its rows.
 *
 * Both steps are idempotent: a second run rescored nothing and writes the same snapshot values again. What the source
 * data cannot give is not invented: orders and clicks written before the contracts had couponCode and reviewText
 * carry no coupon and no review, and stay so.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { cutPointsAt, loadStoredCutPoints } from './cutpoints-warehouse.js';
import { DAY_MS } from './definitions.js';
import { reviewSentimentMilli } from './sentiment.js';
import { snapshotDay, type SnapshotResult } from './snapshots.js';

/** Which days to backfill: UTC days with start ≥ fromMs and < toMs (both optional). */
export interface BackfillRange {
  readonly fromMs?: number;
  readonly toMs?: number;
}

export interface SentimentBackfill {
  /** Days with at least one review in the range, and the reviews on them. */
  readonly days: number;
  readonly reviews: number;
  /** Reviews whose stored score differed and were written again. */
  readonly rescored: number;
}

const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** `AND event_date …` for a range of days on a Date column (literals: ClickHouse 18.16 has no query parameters). */
function dateFilter(column: string, range: BackfillRange): string {
  const from = range.fromMs === undefined ? '' : ` AND ${column} >= toDate('${isoDate(range.fromMs)}')`;
  const to = range.toMs === undefined ? '' : ` AND ${column} < toDate('${isoDate(range.toMs)}')`;
  return from + to;
}

/** Int32 arrives as a JSON number; the rest is inserted back as it came. */
type FactEventRow = Record<string, unknown> & { review_text: string; review_sentiment: number };

/** Step 1: recomputes the stored review scores, one UTC day at a time (memory stays bounded by a day's reviews). */
export async function backfillReviewSentiment(
  ch: ClickHouseClient,
  range: BackfillRange = {},
  nowMs = Date.now(),
): Promise<SentimentBackfill> {
  const days = await selectRows<{ day: string }>(
    ch,
    `SELECT DISTINCT toString(event_date) AS day FROM fact_event WHERE review_text != ''${dateFilter('event_date', range)} ORDER BY day`,
  );
  let reviews = 0;
  let rescored = 0;
  for (const { day } of days) {
    const rows = await selectRows<FactEventRow>(
      ch,
      `SELECT * FROM fact_event FINAL WHERE event_date = toDate('${day}') AND review_text != ''`,
    );
    reviews += rows.length;
    const changed = rows.flatMap((row) => {
      const score = reviewSentimentMilli(row.review_text);
      return score === row.review_sentiment
        ? []
        : [{ ...row, review_sentiment: score, ingested_at: Math.floor(nowMs / 1000) }];
    });
    if (changed.length > 0) await ch.insert({ table: 'fact_event', values: changed, format: 'JSONEachRow' });
    rescored += changed.length;
  }
  return { days: days.length, reviews, rescored };
}

/** Step 2: recomputes every snapshot day in the range that the table holds, with the cut points of its time. */
export async function backfillSnapshots(
  ch: ClickHouseClient,
  range: BackfillRange = {},
  options: { chunkSize?: number; onDay?: (result: SnapshotResult) => void } = {},
): Promise<SnapshotResult[]> {
  const days = await selectRows<{ day: string }>(
    ch,
    `SELECT DISTINCT toString(snapshot_date) AS day FROM feat_customer_rfm WHERE 1${dateFilter('snapshot_date', range)} ORDER BY day`,
  );
  const stored = await loadStoredCutPoints(ch);
  const results: SnapshotResult[] = [];
  for (const { day } of days) {
    const dayStartMs = Date.parse(`${day}T00:00:00Z`);
    const cuts = cutPointsAt(stored, dayStartMs + DAY_MS - 1); // as the snapshotter and `snapshot --day` choose them
    const result = await snapshotDay(ch, dayStartMs, cuts, options.chunkSize ? { chunkSize: options.chunkSize } : {});
    options.onDay?.(result);
    results.push(result);
  }
  return results;
}

async function selectRows<T>(ch: ClickHouseClient, query: string): Promise<T[]> {
  return (await ch.query({ query, format: 'JSONEachRow' })).json<T>();
}
