/**
 * Daily feature snapshots in `feat_customer_rfm`, driven by event time rather than the wall clock: a day is
 * snapshotted once the warehouse holds an event at least `graceMs` past the day's end, so a replay of last year's data
 * produces last year's snapshots, and events that arrive up to the grace late still land in their day.
 *
 * A snapshot of day D holds every customer with an event at or before the end of D (reference time = next midnight
 * − 1 ms), features computed by as-of.ts. Recomputing a day replaces its rows (version = wall-clock ms of the run).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { isTransientClickHouseError } from '../runtime/clickhouse.js';
import { AppError, describeError } from '../runtime/errors.js';
import type { Logger } from '../runtime/log.js';
import { customersWithEventsBefore, featuresAsOf, pairKey, type AsOfOptions } from './as-of.js';
import { cutPointsAt, loadStoredCutPoints } from './cutpoints-warehouse.js';
import { DAY_MS, FEATURE_NAMES, type CustomerFeatures, type RfmCutPoints } from './definitions.js';

/** What one snapshot wrote. */
export interface SnapshotResult {
  /** The UTC day, YYYY-MM-DD. */
  readonly snapshotDate: string;
  readonly refMs: number;
  /** Rows written: customers with an event at or before refMs. */
  readonly customers: number;
}

const DEFAULT_CHUNK_SIZE = 50_000;

/** YYYY-MM-DD of the UTC day holding `ms`. */
const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Writes the snapshot of the UTC day starting at `dayStartMs`: one feat_customer_rfm row per customer with an event at
 * or before the day's last millisecond, with `cutPoints` for the RFM scores. Customers are processed `chunkSize` at a
 * time, so memory stays bounded however many there are.
 * @throws AppError USAGE when `dayStartMs` is not a UTC midnight
 */
export async function snapshotDay(
  ch: ClickHouseClient,
  dayStartMs: number,
  cutPoints: RfmCutPoints,
  options: AsOfOptions = {},
): Promise<SnapshotResult> {
  if (!Number.isSafeInteger(dayStartMs) || dayStartMs < 0 || dayStartMs % DAY_MS !== 0) {
    throw new AppError('USAGE', `a snapshot day must start at a UTC midnight, got ${dayStartMs}`);
  }
  const refMs = dayStartMs + DAY_MS - 1;
  const snapshotDate = isoDate(dayStartMs);
  const version = Date.now(); // one version for the whole run, newer than any earlier run's: a recompute replaces
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const customers = await customersWithEventsBefore(ch, refMs);
  let written = 0;
  for (let i = 0; i < customers.length; i += chunkSize) {
    const requests = customers.slice(i, i + chunkSize).map((customerId) => ({ customerId, refMs }));
    const features = await featuresAsOf(ch, requests, cutPoints, { chunkSize });
    const rows = requests.flatMap(({ customerId }) => {
      const f = features.get(pairKey(customerId, refMs));
      return f ? [snapshotRow(snapshotDate, customerId, f, version)] : [];
    });
    if (rows.length > 0) await ch.insert({ table: 'feat_customer_rfm', values: rows, format: 'JSONEachRow' });
    written += rows.length;
  }
  return { snapshotDate, refMs, customers: written };
}

/** One feat_customer_rfm row: every feature under its own name, plus the affinities as parallel arrays. */
export function snapshotRow(
  snapshotDate: string,
  customerId: string,
  features: CustomerFeatures,
  version: number,
): Record<string, string | number | readonly (string | number)[]> {
  const affinity = [...features.affinity].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const row: Record<string, string | number | readonly (string | number)[]> = {
    snapshot_date: snapshotDate,
    global_customer_id: customerId,
  };
  for (const name of FEATURE_NAMES) row[name] = features.values[name];
  row['top_category'] = features.topCategory;
  row['affinity_categories'] = affinity.map(([category]) => category);
  row['affinity_scores'] = affinity.map(([, score]) => score);
  row['feature_time_ms'] = features.featureTimeMs;
  row['version'] = version;
  return row;
}

/** Event times of the warehouse's first and newest facts (clicks and transactions); null while it has none. */
export async function warehouseEventTimes(ch: ClickHouseClient): Promise<{ firstMs: number; lastMs: number } | null> {
  // No FINAL: a re-delivered copy has the same event time, so it changes neither bound. minIf skips an empty table,
  // whose min() would be 0.
  const rs = await ch.query({
    query: `SELECT minIf(lo, n > 0) AS first_ms, max(hi) AS last_ms, sum(n) AS facts
FROM
(
    SELECT min(event_time_ms) AS lo, max(event_time_ms) AS hi, count() AS n FROM fact_transaction
    UNION ALL
    SELECT min(event_time_ms) AS lo, max(event_time_ms) AS hi, count() AS n FROM fact_event
)`,
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ first_ms: string; last_ms: string; facts: string }>();
  if (!row || Number(row.facts) === 0) return null;
  return { firstMs: Number(row.first_ms), lastMs: Number(row.last_ms) };
}

/** Start (epoch ms) of the newest snapshot day in feat_customer_rfm; null while there is none. */
export async function lastSnapshotDay(ch: ClickHouseClient): Promise<number | null> {
  const rs = await ch.query({
    query: 'SELECT count() AS n, toUInt32(max(snapshot_date)) AS day FROM feat_customer_rfm',
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ n: string; day: string | number }>();
  return !row || Number(row.n) === 0 ? null : Number(row.day) * DAY_MS;
}

/** What decides which days are due; all times are epoch ms of event time. */
export interface SnapshotClock {
  readonly firstEventMs: number;
  /** The newest event time in the warehouse. */
  readonly watermarkMs: number;
  /** Start of the newest day already snapshotted, null when none is. */
  readonly lastSnapshotDayMs: number | null;
  readonly graceMs: number;
  readonly periodMs: number;
}

/**
 * Starts of the days to snapshot now, oldest first: from the day after the last snapshot (or the first day with data)
 * every `periodMs`, while the day has ended at least `graceMs` before the watermark.
 */
export function dueSnapshotDays(clock: SnapshotClock): number[] {
  const completeUpToMs = clock.watermarkMs - clock.graceMs; // a day is complete once its end is at or before this
  const firstDay = Math.floor(clock.firstEventMs / DAY_MS) * DAY_MS;
  const due: number[] = [];
  for (
    let day = clock.lastSnapshotDayMs === null ? firstDay : clock.lastSnapshotDayMs + clock.periodMs;
    day + DAY_MS <= completeUpToMs;
    day += clock.periodMs
  ) {
    due.push(day);
  }
  return due;
}

export interface FeatureSnapshotterOptions {
  readonly clickhouse: ClickHouseClient;
  /**
   * How far past a day's end the warehouse's newest event must be before the day is snapshotted: events arriving
   * later than this behind the newest one miss their day's snapshot. The stream passes FEATURES_LATE_GRACE_MS.
   */
  readonly graceMs: number;
  /**
   * Event time between two snapshots, a whole number of days.
   * @default DAY_MS (daily)
   */
  readonly periodMs?: number;
  /**
   * Wall-clock time between two looks at the warehouse's watermark.
   * @default 60_000
   */
  readonly pollIntervalMs?: number;
  /**
   * Cut points for the snapshot whose reference time is `refMs`.
   * @default the newest feat_rfm_cutpoints row as of refMs or earlier, else DEFAULT_CUT_POINTS
   */
  readonly cutPoints?: (refMs: number) => Promise<RfmCutPoints>;
  /** @default 50_000 customers per ClickHouse round trip */
  readonly chunkSize?: number;
  /** @default no logging */
  readonly log?: Logger;
}

/**
 * Keeps feat_customer_rfm one snapshot per completed day behind the warehouse's event-time watermark: polls the
 * watermark, snapshots every due day (dueSnapshotDays) oldest first, and resumes after a restart from the newest
 * snapshot in the table. A failed poll is logged and retried at the next one; the days it missed are still due then.
 */
export class FeatureSnapshotter {
  private readonly periodMs: number;
  private readonly pollIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> | undefined;
  private running = false;
  /** Set by stop() so a long backlog ends after the day in progress rather than after the last due day. */
  private stopRequested = false;
  /**
   * The newest day this instance snapshotted. A day with no customer yet (its facts all wait for identity links)
   * writes no row, so the table alone would offer that day again at every poll.
   */
  private lastDoneMs: number | null = null;

  constructor(private readonly options: FeatureSnapshotterOptions) {
    this.periodMs = options.periodMs ?? DAY_MS;
    this.pollIntervalMs = options.pollIntervalMs ?? 60_000;
    if (!Number.isSafeInteger(this.periodMs) || this.periodMs <= 0 || this.periodMs % DAY_MS !== 0) {
      throw new AppError(
        'CONFIG_INVALID',
        `snapshot period must be a whole number of days in ms, got ${this.periodMs}`,
      );
    }
    if (!(options.graceMs >= 0)) throw new AppError('CONFIG_INVALID', `grace must be >= 0 ms, got ${options.graceMs}`);
    if (!(this.pollIntervalMs > 0)) {
      throw new AppError('CONFIG_INVALID', `poll interval must be > 0 ms, got ${this.pollIntervalMs}`);
    }
  }

  /** Polls now and then every pollIntervalMs until stop(). Calling it while running does nothing. */
  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.inFlight === undefined) this.schedule(0); // else the poll in progress schedules the next one
  }

  /** Stops polling; waits for a snapshot in progress to finish its current day. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopRequested = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      await this.inFlight;
    } finally {
      this.stopRequested = false;
    }
  }

  /** One poll: snapshots every due day, oldest first, and returns what it wrote. Throws what ClickHouse throws. */
  async runOnce(): Promise<SnapshotResult[]> {
    const ch = this.options.clickhouse;
    const times = await warehouseEventTimes(ch);
    if (!times) return [];
    const stored = await lastSnapshotDay(ch);
    const last = stored === null ? this.lastDoneMs : Math.max(stored, this.lastDoneMs ?? stored);
    const due = dueSnapshotDays({
      firstEventMs: times.firstMs,
      watermarkMs: times.lastMs,
      lastSnapshotDayMs: last,
      graceMs: this.options.graceMs,
      periodMs: this.periodMs,
    });
    if (due.length === 0) return [];
    const cutPointsFor = this.options.cutPoints ?? (await this.storedCutPoints());
    const results: SnapshotResult[] = [];
    for (const day of due) {
      if (this.stopRequested) break;
      const started = Date.now();
      const result = await snapshotDay(ch, day, await cutPointsFor(day + DAY_MS - 1), this.chunkOptions());
      this.lastDoneMs = day;
      results.push(result);
      this.options.log?.info('feature snapshot written', { ...result, ms: Date.now() - started });
    }
    return results;
  }

  private chunkOptions(): AsOfOptions {
    return this.options.chunkSize === undefined ? {} : { chunkSize: this.options.chunkSize };
  }

  /** The stored cut points, read once per poll: the table is small and changes rarely. */
  private async storedCutPoints(): Promise<(refMs: number) => Promise<RfmCutPoints>> {
    const stored = await loadStoredCutPoints(this.options.clickhouse);
    return (refMs) => Promise.resolve(cutPointsAt(stored, refMs));
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.poll().finally(() => {
        this.inFlight = undefined;
        if (this.running && this.timer === undefined) this.schedule(this.pollIntervalMs);
      });
    }, delayMs);
  }

  private async poll(): Promise<void> {
    try {
      await this.runOnce();
    } catch (err) {
      // Warehouse trouble is expected now and then (retry at the next poll); anything else is a bug worth an error
      // line, but stopping the processor that hosts the snapshotter would not fix it either.
      const fields = { error: describeError(err) };
      if (isTransientClickHouseError(err)) this.options.log?.warn('feature snapshot failed, will retry', fields);
      else this.options.log?.error('feature snapshot failed', fields);
    }
  }
}
