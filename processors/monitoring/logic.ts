/**
 * Online model monitoring, the pure part: one day's scores held by customers and whether each bought within 7 days,
 * reduced to ROC-AUC, PR-AUC, precision and recall at the level thresholds, and a calibration table. No I/O.
 */
import { prAuc, rocAuc } from '../scoring/metrics.js';

export interface ScoredOutcome {
  /** The raw model score the levels are cut on. */
  readonly score: number;
  /** The calibrated 7-day purchase probability. */
  readonly probability: number;
  /** 1: a purchase followed within 7 days. */
  readonly label: 0 | 1;
}

export interface DayQuality {
  readonly customers: number;
  readonly positives: number;
  readonly rocAuc: number;
  readonly prAuc: number;
  readonly precisionAt04: number;
  readonly recallAt04: number;
  readonly precisionAt07: number;
  readonly recallAt07: number;
  /** Per decile of the predicted probability: [mean predicted, observed rate, customers]. */
  readonly calibration: readonly (readonly [number, number, number])[];
}

function precisionRecall(rows: readonly ScoredOutcome[], threshold: number, positives: number): [number, number] {
  let flagged = 0;
  let hits = 0;
  for (const r of rows) {
    if (r.score < threshold) continue;
    flagged++;
    hits += r.label;
  }
  return [flagged === 0 ? 0 : hits / flagged, positives === 0 ? 0 : hits / positives];
}

/** Deciles by predicted probability (equal counts; the last bin takes the remainder). */
export function calibrationTable(rows: readonly ScoredOutcome[], bins = 10): [number, number, number][] {
  const sorted = [...rows].sort((a, b) => a.probability - b.probability);
  const out: [number, number, number][] = [];
  for (let b = 0; b < bins; b++) {
    const slice = sorted.slice(Math.floor((b * sorted.length) / bins), Math.floor(((b + 1) * sorted.length) / bins));
    if (slice.length === 0) continue;
    const mean = slice.reduce((s, r) => s + r.probability, 0) / slice.length;
    const rate = slice.reduce((s, r) => s + r.label, 0) / slice.length;
    out.push([mean, rate, slice.length]);
  }
  return out;
}

/** The day's quality, or null when it cannot be judged (no customer, or only one class of outcome). */
export function dayQuality(rows: readonly ScoredOutcome[]): DayQuality | null {
  const positives = rows.reduce((n, r) => n + r.label, 0);
  if (rows.length === 0 || positives === 0 || positives === rows.length) return null;
  const scores = rows.map((r) => r.score);
  const labels = rows.map((r) => r.label);
  const [precisionAt04, recallAt04] = precisionRecall(rows, 0.4, positives);
  const [precisionAt07, recallAt07] = precisionRecall(rows, 0.7, positives);
  return {
    customers: rows.length,
    positives,
    rocAuc: rocAuc(scores, labels),
    prAuc: prAuc(scores, labels),
    precisionAt04,
    recallAt04,
    precisionAt07,
    recallAt07,
    calibration: calibrationTable(rows),
  };
}
