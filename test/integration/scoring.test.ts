// The scorer in the real stream: a model trained by training/ (on a synthetic fixture set) scores every changed
// customer into Redis, the scores topic and ClickHouse; a newly promoted version is picked up without a restart; and
// customers without new events are rescored as event time passes.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS } from '../../processors/features/definitions.js';
import { Pipeline } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import type { IntentScore } from '../../schemas/generated/types.js';
import { createTestContext, waitFor, type TestContext } from '../helpers/context.js';
import { trainSyntheticModel } from '../helpers/model.js';

let models = '';
const V1 = '20260101T000000Z-v1';
const V2 = '20260102T000000Z-v2';
const contexts: TestContext[] = [];

beforeAll(() => {
  models = mkdtempSync(join(tmpdir(), 'patternos-scoring-'));
  trainSyntheticModel(models, V1);
}, 600_000);

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  rmSync(models, { recursive: true, force: true });
});

describe('scorer', () => {
  it('scores every update, reloads a promoted model without a restart, and rescores as event time passes', async () => {
    const ctx = await createTestContext({
      topics: true,
      warehouse: true,
      env: {
        MODEL_DIR: models,
        MODEL_POLL_MS: '200',
        SCORING_CLOCK: 'event',
        SCORING_RESCORE_EVERY_MS: String(DAY_MS),
        SINK_MAX_WAIT_MS: '200',
      },
    });
    contexts.push(ctx);
    const scores: IntentScore[] = [];
    /** Per flush with scores: when its Redis write was acknowledged, and when the listener heard of it. */
    const reported: { inRedisAtMs: number; calledAtMs: number }[] = [];
    const clock = () => performance.timeOrigin + performance.now();
    const startedAtMs = clock();
    const pipeline = new Pipeline({
      config: ctx.config,
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
      clickhouse: ctx.clickhouse,
      onScores: (s, _eventIds, { inRedisAtMs }) => {
        scores.push(...s);
        reported.push({ inRedisAtMs, calledAtMs: clock() });
      },
    });
    const sample = generateSample({ seed: 3, customers: 60, targetTransactions: 150, salt: 'scoring-test-salt' });
    const all = [
      ...sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
      ...sample.behaviors.map((event) => ({ kind: 'behavior' as const, event })),
    ].sort((a, b) => a.event.eventTimeMs - b.event.eventTimeMs);
    const cut = all[Math.floor(all.length * 0.7)]!.event.eventTimeMs;
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    await pipeline.start();
    try {
      // 1. Every changed customer is scored with v1: Redis hash, scores topic, ClickHouse history.
      await producer.publishAll(all.filter((e) => e.event.eventTimeMs <= cut));
      await pipeline.waitUntilCaughtUp(ctx.admin, 180_000);
      const v1 = scores.filter((s) => s.modelVersion === V1);
      expect(v1.length).toBeGreaterThan(50);
      // Each flush says when its scores reached Redis: after the run started, no later than the flush was done.
      expect(reported.length).toBeGreaterThan(0);
      for (const r of reported) {
        expect(r.inRedisAtMs).toBeGreaterThan(startedAtMs);
        expect(r.inRedisAtMs).toBeLessThanOrEqual(r.calledAtMs);
      }
      const some = v1.at(-1)!;
      const hash = await pipeline.redis.hgetall(`${ctx.config.TOPIC_PREFIX}score:{${some.customerId}}`);
      expect(hash['model_version']).toBe(V1);
      expect(['LOW', 'MEDIUM', 'HIGH']).toContain(hash['intent_level']);
      const features = await pipeline.store.readFeatures(some.customerId);
      expect(hash['feature_time_ms']).toBe(features['feature_time_ms']);
      expect(hash['predicted_category']).toBe(features['top_category']);
      const ttl = await pipeline.redis.ttl(`${ctx.config.TOPIC_PREFIX}score:{${some.customerId}}`);
      expect(ttl).toBeGreaterThan(6 * 3600 - 60);
      expect(ttl).toBeLessThanOrEqual(6 * 3600);
      await waitFor(
        async () => {
          const r = await ctx.clickhouse.query({
            query: 'SELECT count() AS n FROM intent_score',
            format: 'JSONEachRow',
          });
          return Number((await r.json<{ n: string }>())[0]?.n ?? 0);
        },
        (n) => n > 0,
        { what: 'intent_score history in ClickHouse' },
      );

      // 2. Promote "v2" (same trees, new version) by writing the pointer: picked up without a restart.
      cpSync(join(models, V1), join(models, V2), { recursive: true });
      const manifestPath = join(models, V2, 'feature-manifest.json');
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(manifestPath, JSON.stringify({ ...manifest, model_version: V2 }));
      writeFileSync(join(models, 'current'), `${V2}\n`);
      await waitFor(
        () => Promise.resolve(pipeline.models.current?.version),
        (v) => v === V2,
        { what: 'the scorer to load the new version' },
      );
      const before = scores.length;
      await producer.publishAll(all.filter((e) => e.event.eventTimeMs > cut));
      await pipeline.waitUntilCaughtUp(ctx.admin, 180_000);
      const after = scores.slice(before);
      expect(after.length).toBeGreaterThan(0);
      expect(after.every((s) => s.modelVersion === V2)).toBe(true);

      // 3. Time passes: one event two days after everything else moves the event clock; the others get rescored.
      const lastTime = Math.max(...all.map((e) => e.event.eventTimeMs));
      const late = {
        ...sample.behaviors[0]!,
        eventId: 'time-passes',
        eventTimeMs: lastTime + 2 * DAY_MS,
        type: 'VIEW' as const,
      };
      const rescoredFrom = scores.length;
      await producer.publishAll([{ kind: 'behavior', event: late }]);
      await pipeline.waitUntilCaughtUp(ctx.admin, 180_000);
      const rescored = scores.slice(rescoredFrom).filter((s) => s.eventTimeMs > s.featureTimeMs);
      expect(rescored.length).toBeGreaterThan(20);
      const aged = rescored[0]!;
      const agedHash = await pipeline.redis.hgetall(`${ctx.config.TOPIC_PREFIX}score:{${aged.customerId}}`);
      expect(Number(agedHash['as_of_ms'])).toBe(aged.eventTimeMs);
      expect(Number(agedHash['as_of_ms'])).toBeGreaterThan(Number(agedHash['feature_time_ms']));
    } finally {
      await producer.disconnect();
      await pipeline.stop();
    }
  }, 300_000);
});
