/**
 * An experiment's report from the warehouse: exposures from `fact_ad_decision` (the API's `ad.decisions.v1`), merges
 * from `identity_merge`, and purchases from `fact_transaction` keyed by their identity's current global customer
 * (`v_customer_identity_current`). Every statement runs on ClickHouse 18.16 and current ClickHouse (one JOIN, no query
 * parameters: values are inlined as escaped literals).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { quoteString } from '../runtime/clickhouse.js';
import { AppError } from '../runtime/errors.js';
import type { AdExperiment, Experiment } from './definitions.js';
import { countConversions, type CustomerPurchases, type ExposureGroup } from './logic.js';
import {
  buildConversionReport,
  buildOfflineReport,
  type ConversionReport,
  type OfflineReport,
} from './report-logic.js';

const DAY_MS = 86_400_000;

async function rows<T>(ch: ClickHouseClient, query: string): Promise<T[]> {
  const rs = await ch.query({ query, format: 'JSONEachRow' });
  return rs.json<T>();
}

/**
 * Exposures of one experiment made up to `untilMs` (inclusive), per (recorded customer, variant): how many decisions,
 * and the first one's time.
 */
export async function exposureGroups(
  ch: ClickHouseClient,
  experiment: string,
  untilMs: number,
): Promise<ExposureGroup[]> {
  const found = await rows<{ customer_id: string; variant: string; exposures: string | number; first_ms: string }>(
    ch,
    `SELECT global_customer_id AS customer_id, variant, count() AS exposures, min(decided_at_ms) AS first_ms
FROM fact_ad_decision FINAL
WHERE experiment = ${quoteString(experiment)} AND decided_at_ms <= ${Math.floor(untilMs)}
GROUP BY global_customer_id, variant`,
  );
  return found.map((r) => ({
    customerId: r.customer_id,
    variant: r.variant,
    exposures: Number(r.exposures),
    firstMs: Number(r.first_ms),
  }));
}

/** Every merge as merged-away id → the id it merged into (chains are followed by logic.ts `resolveSurvivor`). */
export async function mergeMap(ch: ClickHouseClient): Promise<Map<string, string>> {
  const found = await rows<{ merged_id: string; survivor_id: string }>(
    ch,
    `SELECT merged_id, any(survivor_id) AS survivor_id FROM identity_merge FINAL GROUP BY merged_id`,
  );
  return new Map(found.map((r) => [r.merged_id, r.survivor_id]));
}

/**
 * PURCHASE times in [fromMs, toMs) per global customer, as the warehouse maps identities now (an identity moved by a
 * merge counts for the survivor). Guest orders have no identity and convert no one.
 */
export async function purchasesBetween(
  ch: ClickHouseClient,
  fromMs: number,
  toMs: number,
): Promise<CustomerPurchases[]> {
  const found = await rows<{ customer_id: string; times: (string | number)[] }>(
    ch,
    `SELECT global_customer_id AS customer_id, groupArray(event_time_ms) AS times
FROM
(
    SELECT concat(platform_id, ':', platform_customer_id) AS identity_id, event_time_ms
    FROM fact_transaction FINAL
    WHERE kind = 'PURCHASE' AND platform_customer_id != ''
      AND event_time_ms >= ${Math.floor(fromMs)} AND event_time_ms < ${Math.ceil(toMs)}
)
ANY INNER JOIN
(
    SELECT identity_id, global_customer_id FROM v_customer_identity_current
) USING identity_id
GROUP BY global_customer_id`,
  );
  return found.map((r) => ({ customerId: r.customer_id, timesMs: r.times.map(Number) }));
}

/** The report of `name` as of `asOfMs`: counts from the warehouse for an ad experiment, the plan for an offline one. */
export async function experimentReport(
  ch: ClickHouseClient,
  experiments: readonly Experiment[],
  name: string,
  asOfMs: number,
): Promise<ConversionReport | OfflineReport> {
  const e = experiments.find((x) => x.name === name);
  if (!e) {
    const known = experiments.map((x) => x.name).join(', ') || 'none';
    throw new AppError('USAGE', `no experiment named ${JSON.stringify(name)} (declared: ${known})`);
  }
  if (e.appliesTo === 'offline-training') return buildOfflineReport(e);
  return conversionReport(ch, e, asOfMs);
}

async function conversionReport(ch: ClickHouseClient, e: AdExperiment, asOfMs: number): Promise<ConversionReport> {
  const groups = await exposureGroups(ch, e.name, asOfMs);
  const merges = await mergeMap(ch);
  let purchases: CustomerPurchases[] = [];
  let firstExposureMs: number | null = null;
  if (groups.length > 0) {
    // reduce, not Math.min(...): a spread of a million arguments overflows the stack.
    firstExposureMs = groups.reduce((m, g) => Math.min(m, g.firstMs), Infinity);
    const lastFirst = groups.reduce((m, g) => Math.max(m, g.firstMs), -Infinity);
    const windowMs = Math.round(e.metric.windowDays * DAY_MS);
    // A purchase converts in [first exposure, + window) and is only known up to the report's time.
    purchases = await purchasesBetween(ch, firstExposureMs, Math.min(lastFirst + windowMs, asOfMs + 1));
  }
  const counts = countConversions(e, groups, merges, purchases, asOfMs);
  return buildConversionReport(e, counts, firstExposureMs, asOfMs);
}
