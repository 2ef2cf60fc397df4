import { describe, expect, it } from 'vitest';
import { FEATURE_NAMES, finalizeFeatures, DEFAULT_CUT_POINTS } from '../../processors/features/definitions.js';
import { aggregatesOf, emptyState, applyEvent } from '../../processors/features/state.js';
import {
  calibrate,
  featureMatrix,
  intentLevel,
  intentScoreRecord,
  modelFeatureOrder,
  scoreHashFields,
} from '../../processors/scoring/logic.js';

const points = [
  [0.1, 0.02],
  [0.5, 0.3],
  [0.9, 0.8],
] as const;

describe('scoring logic', () => {
  it('calibrates by linear interpolation and clamps outside the table', () => {
    expect(calibrate(points, 0)).toBe(0.02);
    expect(calibrate(points, 0.1)).toBe(0.02);
    expect(calibrate(points, 0.3)).toBeCloseTo(0.16, 12);
    expect(calibrate(points, 0.7)).toBeCloseTo(0.55, 12);
    expect(calibrate(points, 1)).toBe(0.8);
    expect(calibrate([], 0.42)).toBe(0.42);
  });

  it('maps scores to levels at the seed thresholds (high ≥ 0.7, medium ≥ 0.4)', () => {
    const t = { high: 0.7, medium: 0.4 };
    expect([0.39999, 0.4, 0.69999, 0.7, 1].map((s) => intentLevel(s, t))).toEqual([
      'LOW',
      'MEDIUM',
      'MEDIUM',
      'HIGH',
      'HIGH',
    ]);
  });

  it('refuses a model that needs a feature this build does not compute', () => {
    expect(modelFeatureOrder(['recency_days', 'views_1h'])).toEqual(['recency_days', 'views_1h']);
    expect(() => modelFeatureOrder(['recency_days', 'shoe_size'])).toThrow(/shoe_size/);
  });

  it("lays features out in the model's order and builds the score record and hash", () => {
    const state = emptyState();
    const t = Date.UTC(2026, 3, 1, 12);
    applyEvent(state, {
      kind: 'transaction',
      eventId: 'e1',
      timeMs: t,
      purchase: true,
      totalMinor: 4_200,
      sessionId: 's',
      lines: [{ category: 'books', amountMinor: 4_200 }],
    });
    const features = finalizeFeatures(aggregatesOf(state, t + 3_600_000), DEFAULT_CUT_POINTS);
    const order = modelFeatureOrder(['monetary_90d_minor', 'recency_days']);
    expect([...featureMatrix([features, features], order)]).toEqual([4_200, 1 / 24, 4_200, 1 / 24].map(Math.fround));
    expect(featureMatrix([features], modelFeatureOrder([...FEATURE_NAMES])).length).toBe(FEATURE_NAMES.length);
    const score = intentScoreRecord({
      eventId: 'id-1',
      customerId: 'c-1',
      features,
      probability: 0.72,
      modelVersion: 'v1',
      calibration: points,
      thresholds: { high: 0.7, medium: 0.4 },
      scoredAtMs: 99,
    });
    expect(score).toMatchObject({
      intentLevel: 'HIGH',
      predictedCategory: 'books',
      eventTimeMs: t + 3_600_000,
      featureTimeMs: t,
    });
    expect(score.purchaseProbability7d).toBeCloseTo(0.575, 12);
    const hash = scoreHashFields(score);
    expect(
      Object.fromEntries(Array.from({ length: hash.length / 2 }, (_, i) => [hash[2 * i], hash[2 * i + 1]])),
    ).toEqual({
      intent_score: '0.72',
      intent_level: 'HIGH',
      predicted_category: 'books',
      purchase_probability_7d: String(score.purchaseProbability7d),
      model_version: 'v1',
      as_of_ms: String(t + 3_600_000),
      feature_time_ms: String(t),
      scored_at_ms: '99',
    });
  });
});
