/**
 * The scorer: turns feature updates into intent scores in micro-batches (one ONNX run per batch of changed customers),
 * and rescores customers without new events as time passes, so no score goes stale. Each score goes to the ad
 * server's Redis hash (`<prefix>score:{<id>}`, TTL SCORES_TTL_SECONDS) and to `customer.scores.v1` (compacted, keyed
 * by customer), which the warehouse sink keeps as intent_score history in ClickHouse.
 *
 * Time: scores are computed as of a reference time. After an update it is the newest event's time; rescoring uses
 * the scorer's clock, which is the newest event time seen (replays: driven by event time) or, with SCORING_CLOCK=wall,
 * the wall clock too (live). A customer whose last score is older than SCORING_RESCORE_EVERY_MS is rescored.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Producer } from 'kafkajs';
import { Counter, Histogram } from 'prom-client';
import type { IntentScore } from '../../schemas/generated/types.js';
import type { TopicCatalog } from '../../topics/catalog.js';
import type { CustomerFeatures, RfmCutPoints } from '../features/definitions.js';
import { currentFeatures } from '../features/logic.js';
import type { FeatureUpdate } from '../features/processor.js';
import type { FeatureStore } from '../features/store.js';
import type { Logger } from '../runtime/log.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { featureMatrix, intentScoreRecord, scoreHashFields } from './logic.js';
import type { ModelWatcher } from './model.js';

export interface ScorerOptions {
  readonly prefix: string;
  readonly scoresTtlSeconds: number;
  readonly rescoreEveryMs: number;
  readonly clock: 'event' | 'wall';
}

export interface ScorerDeps {
  readonly producer: Producer;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  readonly redis: Redis;
  readonly store: FeatureStore;
  readonly models: ModelWatcher;
  readonly cutPoints: () => RfmCutPoints;
  readonly log: Logger;
  readonly metrics: ProcessorMetrics;
  /**
   * Every accepted score as soon as it is in Redis (what the ad server reads; the topic follows), with the ids of the
   * events that caused it (empty for a rescore): evaluations and benchmarks listen here.
   */
  readonly onScores?: (scores: readonly IntentScore[], eventIds: readonly (readonly string[])[]) => void;
}

type ScriptCommand = (numKeys: number, ...args: string[]) => Promise<number>;
const PUT_SCORE = readFileSync(new URL('./lua/put-score.lua', import.meta.url), 'utf8');
const RESCORE_CHUNK = 1_000;

export class Scorer {
  private readonly putScore: ScriptCommand;
  private readonly scoreMetrics;
  /** Newest event time seen in updates: the scorer's event-time clock. */
  private eventClockMs = 0;
  private rescoring: Promise<number> | undefined;

  constructor(
    private readonly deps: ScorerDeps,
    private readonly options: ScorerOptions,
  ) {
    deps.redis.defineCommand('scoringPutScore', { lua: PUT_SCORE });
    this.putScore = (deps.redis as unknown as Record<'scoringPutScore', ScriptCommand>).scoringPutScore.bind(
      deps.redis,
    );
    const registers = [deps.metrics.registry];
    this.scoreMetrics = {
      scores: new Counter({
        name: 'scores_total',
        help: 'Scores published, by cause: update (new event) or rescore (time passed)',
        labelNames: ['cause', 'model_version'],
        registers,
      }),
      skipped: new Counter({
        name: 'scores_skipped_total',
        help: 'Customers not scored: no current model, or a newer score already held',
        labelNames: ['reason'],
        registers,
      }),
      batch: new Histogram({
        name: 'scoring_batch_seconds',
        help: 'One micro-batch: feature rows, ONNX run, Redis and Kafka writes',
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
        registers,
      }),
    };
  }

  scoreKey(customerId: string): string {
    return `${this.options.prefix}score:{${customerId}}`;
  }

  private get asOfIndex(): string {
    return `${this.options.prefix}scores:as-of`;
  }

  /** The feature processor's hook: scores every changed customer as of its newest event, in one batch. */
  async onFeatureUpdates(updates: readonly FeatureUpdate[]): Promise<void> {
    await this.score(updates, 'update');
    const newest = Math.max(...updates.map((u) => u.features.featureTimeMs));
    const period = this.options.rescoreEveryMs;
    const crossed = Math.floor(newest / period) > Math.floor(this.eventClockMs / period) && this.eventClockMs > 0;
    this.eventClockMs = Math.max(this.eventClockMs, newest);
    // Driven by event time (replays): the clock crossed a period boundary. Live, a wall-clock timer calls rescoreDue.
    if (crossed && this.options.clock === 'event') await this.rescoreDue();
  }

  /** The time rescoring works to: the event-time clock, or the wall clock when that is later and SCORING_CLOCK=wall. */
  nowMs(): number {
    return this.options.clock === 'wall' ? Math.max(Date.now(), this.eventClockMs) : this.eventClockMs;
  }

  /** Rescores every customer whose last score is older than one period before now (one run at a time). */
  async rescoreDue(): Promise<number> {
    const now = this.nowMs();
    if (now <= 0) return 0;
    return this.rescoreAsOf(now, now - this.options.rescoreEveryMs);
  }

  /**
   * Rescores, as of `asOfMs`, every customer whose last score is as of `olderThanMs` or earlier (default: before
   * `asOfMs`). Customers with an event after `asOfMs` keep their newer score.
   */
  async rescoreAsOf(asOfMs: number, olderThanMs = asOfMs - 1): Promise<number> {
    while (this.rescoring) await this.rescoring;
    this.rescoring = this.runRescore(asOfMs, olderThanMs);
    try {
      return await this.rescoring;
    } finally {
      this.rescoring = undefined;
    }
  }

  private async runRescore(asOfMs: number, olderThanMs: number): Promise<number> {
    const { redis, store } = this.deps;
    let total = 0;
    let skipped = 0; // customers left in range on purpose (newer events): page past them
    for (;;) {
      const ids = await redis.zrangebyscore(this.asOfIndex, '-inf', olderThanMs, 'LIMIT', skipped, RESCORE_CHUNK);
      if (ids.length === 0) return total;
      const loaded = await store.loadMany(ids);
      const rows: { customerId: string; features: CustomerFeatures }[] = [];
      const stale: string[] = [];
      for (const id of ids) {
        const s = loaded.get(id);
        if (!s?.state || s.id !== id) {
          stale.push(id); // merged away or expired: the survivor has its own entry
          continue;
        }
        if (s.state.l > asOfMs) {
          skipped++; // a newer event: its update scored it already
          continue;
        }
        const features = currentFeatures(s.state, this.deps.cutPoints(), asOfMs);
        if (features) rows.push({ customerId: id, features });
      }
      if (stale.length > 0) await redis.zrem(this.asOfIndex, ...stale);
      const published = await this.score(rows, 'rescore');
      total += published;
      if (rows.length > 0 && published === 0 && !this.deps.models.current) return total; // no model: nothing moves
      if (rows.length > published) skipped += rows.length - published; // a newer score was held
    }
  }

  private async score(
    rows: readonly { customerId: string; features: CustomerFeatures; eventIds?: readonly string[] }[],
    cause: string,
  ) {
    const model = this.deps.models.current;
    if (!model) {
      this.scoreMetrics.skipped.inc({ reason: 'no_model' }, rows.length);
      // Remember them as never scored (as of 0, without lowering a real entry), so the first rescoring after a model
      // arrives finds them.
      if (rows.length > 0) await this.deps.redis.zadd(this.asOfIndex, 'NX', ...rows.flatMap((r) => [0, r.customerId]));
      return 0;
    }
    if (rows.length === 0) return 0;
    const end = this.scoreMetrics.batch.startTimer();
    const probabilities = await model.predict(
      featureMatrix(
        rows.map((r) => r.features),
        model.features,
      ),
    );
    const scoredAtMs = Date.now();
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
    const ttl = String(this.options.scoresTtlSeconds);
    const written = await Promise.all(
      scores.map((s) =>
        this.putScore(
          2,
          this.scoreKey(s.customerId),
          this.asOfIndex,
          s.customerId,
          String(s.eventTimeMs),
          ttl,
          ...scoreHashFields(s),
        ),
      ),
    );
    const accepted = scores.filter((_, i) => written[i] === 1);
    const causes = rows.flatMap((r, i) => (written[i] === 1 ? [r.eventIds ?? []] : []));
    this.scoreMetrics.skipped.inc({ reason: 'newer_score_held' }, scores.length - accepted.length);
    if (accepted.length > 0) {
      // The ad server can read them from here on; the topic (and through it the warehouse) follows.
      this.deps.onScores?.(accepted, causes);
      const spec = this.deps.topics.customerScores;
      const messages = await Promise.all(
        accepted.map(async (s) => ({ key: s.customerId, value: await this.deps.serde.encode(spec, s) })),
      );
      await this.deps.producer.send({ topic: spec.name, acks: -1, messages });
      this.scoreMetrics.scores.inc({ cause, model_version: model.version }, accepted.length);
    }
    end();
    return accepted.length;
  }
}

/** A score's id: the same customer, reference time and model always give the same id. */
export function scoreId(customerId: string, asOfMs: number, modelVersion: string): string {
  return createHash('sha256').update(`${customerId}|${asOfMs}|${modelVersion}`).digest('hex').slice(0, 32);
}
