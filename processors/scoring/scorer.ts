/**
 * The scoring stage: the feature processor's flush calls it with every customer whose features changed (or whose
 * score aged), and writes what it returns together with the features, in the same round trip. One ONNX run per flush.
 *
 * Scores are as of a reference time: the newest event's time after an update; for a rescore, the processor's clock
 * (the newest event time seen, or with SCORING_CLOCK=wall the wall clock too). Each score goes to the ad server's Redis
 * hash (`<prefix>score:{<id>}`, TTL SCORES_TTL_SECONDS) and to `customer.scores.v1` (compacted, keyed by customer),
 * which the warehouse sink keeps as intent_score history in ClickHouse.
 */
import { createHash } from 'node:crypto';
import { Counter, Histogram } from 'prom-client';
import type { IntentScore } from '../../schemas/generated/types.js';
import type { CustomerFeatures, FeatureName } from '../features/definitions.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import { featureMatrix, intentScoreRecord } from './logic.js';
import type { ModelWatcher } from './model.js';

/** One customer to score, and why. */
export interface ScoreRow {
  readonly customerId: string;
  readonly features: CustomerFeatures;
  /** update: new events; rescore: time passed; on_demand: the prediction API found no fresh cached score. */
  readonly cause: 'update' | 'rescore' | 'on_demand';
}

export class Scorer {
  private readonly scoreMetrics;

  constructor(
    private readonly models: ModelWatcher,
    metrics: ProcessorMetrics,
  ) {
    const registers = [metrics.registry];
    this.scoreMetrics = {
      scores: new Counter({
        name: 'scores_total',
        help: 'Scores computed, by cause: update (new event), rescore (time passed), on_demand (prediction API)',
        labelNames: ['cause', 'model_version'],
        registers,
      }),
      generated: new Counter({
        name: 'intent_scores_generated',
        help: "Intent scores generated (the seed's metric), by intent level and model version, whatever the cause",
        labelNames: ['level', 'model_version'],
        registers,
      }),
      skipped: new Counter({
        name: 'scores_skipped_total',
        help: 'Customers not scored because no model is current yet',
        labelNames: ['reason'],
        registers,
      }),
      batch: new Histogram({
        name: 'scoring_batch_seconds',
        help: 'One flush worth of scoring: feature matrix and ONNX run',
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
        registers,
      }),
    };
  }

  /** The model version scores are made with now, or null while none is current. */
  get modelVersion(): string | null {
    return this.models.current?.version ?? null;
  }

  /** The features the current model reads, or null while none is current. */
  get modelFeatures(): readonly FeatureName[] | null {
    return this.models.current?.features ?? null;
  }

  /** Scores `rows` in one ONNX run (same order); null when no model is current (the caller remembers them). */
  async score(rows: readonly ScoreRow[], scoredAtMs = Date.now()): Promise<IntentScore[] | null> {
    const model = this.models.current;
    if (!model) {
      this.scoreMetrics.skipped.inc({ reason: 'no_model' }, rows.length);
      return null;
    }
    if (rows.length === 0) return [];
    const end = this.scoreMetrics.batch.startTimer();
    const probabilities = await model.predict(
      featureMatrix(
        rows.map((r) => r.features),
        model.features,
      ),
    );
    const scores = rows.map((r, i) =>
      intentScoreRecord({
        eventId: scoreId(r.customerId, r.features.refMs, model.version),
        customerId: r.customerId,
        features: r.features,
        probability: probabilities[i] ?? 0,
        modelVersion: model.version,
        calibration: model.calibration,
        thresholds: model.thresholds,
        scoredAtMs,
      }),
    );
    const byCause = new Map<ScoreRow['cause'], number>();
    for (const r of rows) byCause.set(r.cause, (byCause.get(r.cause) ?? 0) + 1);
    for (const [cause, n] of byCause) this.scoreMetrics.scores.inc({ cause, model_version: model.version }, n);
    const byLevel = new Map<string, number>();
    for (const s of scores) byLevel.set(s.intentLevel, (byLevel.get(s.intentLevel) ?? 0) + 1);
    for (const [level, n] of byLevel) this.scoreMetrics.generated.inc({ level, model_version: model.version }, n);
    end();
    return scores;
  }
}

/** A score's id: the same customer, reference time and model always give the same id. */
export function scoreId(customerId: string, asOfMs: number, modelVersion: string): string {
  return createHash('sha256').update(`${customerId}|${asOfMs}|${modelVersion}`).digest('hex').slice(0, 32);
}
