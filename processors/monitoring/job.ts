/**
 * Online model monitoring (`npm run monitor`, and on a schedule in `npm run start:monitor`): for each day whose 7-day
 * outcome window is complete in the warehouse and each model version with scores, the score every customer held at
 * 00:00 UTC (from the newest features before that instant, `intent_score`) is joined with whether the customer bought
 * in the next 7 days (`fact_transaction` through the current identity links), and the day's quality is written to
 * `model_monitoring`. Merged-away customers are left out (their history continues under the survivor).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteString } from '../runtime/clickhouse.js';
import { dayQuality, type DayQuality, type ScoredOutcome } from './logic.js';

const DAY_MS = 86_400_000;
const WINDOW_MS = 7 * DAY_MS;

export interface MonitorOptions {
  /** First day (YYYY-MM-DD); default: `days` before the last complete one. */
  readonly from?: string;
  /** Last day; default and at most: the last day whose 7-day window the warehouse's newest transaction closes. */
  readonly to?: string;
  /** @default 30 */
  readonly days?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

export interface DayResult extends DayQuality {
  readonly day: string;
  readonly modelVersion: string;
}

async function rows<T>(clickhouse: ClickHouseClient, query: string): Promise<T[]> {
  return (await clickhouse.query({ query, format: 'JSONEachRow' })).json<T>();
}

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const parseDay = (day: string, flag: string) => {
  const ms = Date.parse(`${day}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day) || Number.isNaN(ms))
    throw new Error(`${flag} must be a day (YYYY-MM-DD): ${day}`);
  return ms;
};

/** Buyers (current global ids) with a purchase in [startMs, endMs). */
async function buyers(clickhouse: ClickHouseClient, startMs: number, endMs: number): Promise<Set<string>> {
  const found = await rows<{ id: string }>(
    clickhouse,
    `SELECT DISTINCT global_customer_id AS id
     FROM v_customer_identity_current
     WHERE identity_id IN
         (
             SELECT concat(platform_id, ':', platform_customer_id)
             FROM fact_transaction FINAL
             WHERE kind = 'PURCHASE' AND event_time_ms >= ${startMs} AND event_time_ms < ${endMs}
         )`,
  );
  return new Set(found.map((r) => r.id));
}

/** The score each active customer held at `atMs` under `version`. */
async function heldScores(clickhouse: ClickHouseClient, version: string, atMs: number) {
  return rows<{ id: string; score: number; probability: number }>(
    clickhouse,
    `SELECT
         global_customer_id AS id,
         argMax(intent_score, feature_time_ms) AS score,
         argMax(purchase_probability_7d, feature_time_ms) AS probability
     FROM intent_score
     WHERE model_version = ${quoteString(version)}
         AND feature_time_ms < ${atMs}
         AND global_customer_id NOT IN (SELECT global_customer_id FROM dim_customer FINAL WHERE merged_into != '')
     GROUP BY global_customer_id`,
  );
}

/** Computes and stores the days asked for; returns them (days that cannot be judged are skipped). */
export async function runModelMonitoring(
  clickhouse: ClickHouseClient,
  options: MonitorOptions = {},
): Promise<DayResult[]> {
  const now = options.now ?? Date.now;
  const [newest] = await rows<{ ms: string }>(
    clickhouse,
    `SELECT max(event_time_ms) AS ms FROM fact_transaction WHERE kind = 'PURCHASE'`,
  );
  const newestMs = Number(newest?.ms ?? 0);
  const lastComplete = Math.floor((newestMs - WINDOW_MS) / DAY_MS) * DAY_MS;
  const toMs = Math.min(options.to ? parseDay(options.to, '--to') : lastComplete, lastComplete);
  const fromMs = options.from ? parseDay(options.from, '--from') : toMs - ((options.days ?? 30) - 1) * DAY_MS;
  const versions = (await rows<{ v: string }>(clickhouse, 'SELECT DISTINCT model_version AS v FROM intent_score')).map(
    (r) => r.v,
  );
  const results: DayResult[] = [];
  for (let day = fromMs; day <= toMs; day += DAY_MS) {
    const bought = await buyers(clickhouse, day, day + WINDOW_MS);
    for (const version of versions.sort()) {
      const held = await heldScores(clickhouse, version, day);
      const outcomes: ScoredOutcome[] = held.map((h) => ({
        score: h.score,
        probability: h.probability,
        label: bought.has(h.id) ? 1 : 0,
      }));
      const quality = dayQuality(outcomes);
      if (quality) results.push({ day: dayOf(day), modelVersion: version, ...quality });
    }
  }
  if (results.length > 0) {
    const computedAt = now();
    await clickhouse.insert({
      table: 'model_monitoring',
      format: 'JSONEachRow',
      values: results.map((r) => ({
        day: r.day,
        model_version: r.modelVersion,
        customers: r.customers,
        positives: r.positives,
        roc_auc: r.rocAuc,
        pr_auc: r.prAuc,
        precision_at_0_4: r.precisionAt04,
        recall_at_0_4: r.recallAt04,
        precision_at_0_7: r.precisionAt07,
        recall_at_0_7: r.recallAt07,
        calibration: JSON.stringify(r.calibration),
        computed_at_ms: computedAt,
      })),
    });
  }
  return results;
}

/** The newest monitored day's ROC-AUC per model version (what model_auc reports). */
export async function latestAuc(clickhouse: ClickHouseClient): Promise<Map<string, number>> {
  const found = await rows<{ v: string; auc: number }>(
    clickhouse,
    `SELECT model_version AS v, argMax(roc_auc, day) AS auc
     FROM (SELECT day, model_version, argMax(roc_auc, computed_at_ms) AS roc_auc FROM model_monitoring GROUP BY day, model_version)
     GROUP BY model_version`,
  );
  return new Map(found.map((r) => [r.v, r.auc]));
}
