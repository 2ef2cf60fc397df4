/**
 * Pure steps of scoring: features → model input row in the manifest's order, calibration, level, the IntentScore
 * record. No I/O.
 */
import type { IntentLevel, IntentScore } from '../../schemas/generated/types.js';
import {
  featureVectorReader,
  FEATURE_NAMES,
  type CustomerFeatures,
  type FeatureName,
} from '../features/definitions.js';

export interface Thresholds {
  readonly high: number;
  readonly medium: number;
}

/** Isotonic calibration as [x, y] points, x increasing: linear between points, clamped outside. */
export type CalibrationPoints = readonly (readonly [number, number])[];

export function calibrate(points: CalibrationPoints, p: number): number {
  const first = points[0];
  const last = points.at(-1);
  if (!first || !last) return p;
  if (p <= first[0]) return first[1];
  if (p >= last[0]) return last[1];
  let lo = 0;
  let hi = points.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if ((points[mid]?.[0] ?? 0) <= p) lo = mid;
    else hi = mid;
  }
  const [x0, y0] = points[lo] ?? first;
  const [x1, y1] = points[hi] ?? last;
  return x1 === x0 ? y1 : y0 + ((p - x0) * (y1 - y0)) / (x1 - x0);
}

export function intentLevel(score: number, t: Thresholds): IntentLevel {
  return score >= t.high ? 'HIGH' : score >= t.medium ? 'MEDIUM' : 'LOW';
}

/** Checks that every model input is a known feature; returns them typed, in the model's order. */
export function modelFeatureOrder(names: readonly string[]): FeatureName[] {
  const known = new Set<string>(FEATURE_NAMES);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) throw new Error(`model expects features this build does not compute: ${unknown.join(', ')}`);
  return names as FeatureName[];
}

/** Writes the customers' feature rows into one float32 buffer (row-major), in `order`. */
export function featureMatrix(rows: readonly CustomerFeatures[], order: readonly FeatureName[]): Float32Array {
  const out = new Float32Array(rows.length * order.length);
  const read = featureVectorReader(order);
  for (let r = 0; r < rows.length; r++) read((rows[r] as CustomerFeatures).values, out, r * order.length);
  return out;
}

/** `eventId` should be stable for (customer, as-of time, model version): a re-delivered score then replaces itself. */
export function intentScoreRecord(input: {
  eventId: string;
  customerId: string;
  features: CustomerFeatures;
  probability: number;
  modelVersion: string;
  calibration: CalibrationPoints;
  thresholds: Thresholds;
  scoredAtMs: number;
}): IntentScore {
  const { customerId, features, probability, modelVersion } = input;
  return {
    eventId: input.eventId,
    eventTimeMs: features.refMs,
    customerId,
    intentScore: probability,
    intentLevel: intentLevel(probability, input.thresholds),
    predictedCategory: features.topCategory || null,
    purchaseProbability7d: calibrate(input.calibration, probability),
    modelVersion,
    featureTimeMs: features.featureTimeMs,
    scoredAtMs: input.scoredAtMs,
  };
}

/** The ad server's score hash (`<prefix>score:{<id>}`): flat field/value pairs. */
export function scoreHashFields(s: IntentScore): string[] {
  return [
    'intent_score',
    String(s.intentScore),
    'intent_level',
    s.intentLevel,
    'predicted_category',
    s.predictedCategory ?? '',
    'purchase_probability_7d',
    String(s.purchaseProbability7d),
    'model_version',
    s.modelVersion,
    'as_of_ms',
    String(s.eventTimeMs),
    'feature_time_ms',
    String(s.featureTimeMs),
    'scored_at_ms',
    String(s.scoredAtMs),
  ];
}
