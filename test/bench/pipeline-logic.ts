/** Pure parts of `npm run bench -- pipeline` (no I/O): percentiles and the paced latency over time. */
import { nearestRankPercentile } from '../../processors/features/cutpoints-warehouse.js';

/** The q-quantile (0 < q ≤ 1) of an ascending list, nearest rank (the RFM cuts' definition); NaN when empty. */
export function percentile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : nearestRankPercentile(sorted, q * 100);
}

/** Latency of the events sent in one window of the paced run. */
export interface LatencyWindow {
  /** The window's start, seconds after the first event sent. */
  readonly fromS: number;
  readonly events: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * The paced run's latency by when the events were sent, in windows of `windowMs`: whether the figure is steady or
 * still falling (JIT compilation and first sights of customers are front-loaded) or rising (queueing). `sentAtMs[i]`
 * and `latencyMs[i]` belong to one event.
 */
export function latencyWindows(
  sentAtMs: readonly number[],
  latencyMs: readonly number[],
  windowMs: number,
): LatencyWindow[] {
  if (sentAtMs.length !== latencyMs.length) throw new RangeError('one send time per latency');
  if (!(windowMs > 0)) throw new RangeError('windowMs must be > 0');
  let first = Infinity;
  for (const t of sentAtMs) first = Math.min(first, t);
  const byWindow = new Map<number, number[]>();
  sentAtMs.forEach((t, i) => {
    const k = Math.floor((t - first) / windowMs);
    const list = byWindow.get(k);
    if (list) list.push(latencyMs[i] as number);
    else byWindow.set(k, [latencyMs[i] as number]);
  });
  return [...byWindow]
    .sort(([a], [b]) => a - b)
    .map(([k, list]) => {
      list.sort((x, y) => x - y);
      return {
        fromS: (k * windowMs) / 1000,
        events: list.length,
        p50Ms: percentile(list, 0.5),
        p99Ms: percentile(list, 0.99),
      };
    });
}
