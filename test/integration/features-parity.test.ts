// One definition, two executions: a generated dataset replayed through the real stream (identity resolver → feature
// processor → Redis, and the warehouse sink → ClickHouse) up to event time T; then every feature of every customer as
// the ad server reads it from Redis equals the same feature computed from ClickHouse as of that customer's feature
// time, and features aged to T + 3 days from the Redis state equal ClickHouse as of T + 3 days. The sample carries
// brands, coupons and reviews, so the features of the optional contract fields are compared too, and spans 500 days,
// so the 180- and 365-day windows start inside the history.
import { afterAll, describe, expect, it } from 'vitest';
import { featuresAsOf, pairKey } from '../../processors/features/as-of.js';
import {
  DAY_MS,
  DEFAULT_CUT_POINTS,
  EXACT_FEATURES,
  FEATURE_NAMES,
  type CustomerFeatures,
} from '../../processors/features/definitions.js';
import { currentFeatures } from '../../processors/features/logic.js';
import { Pipeline } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import { createTestContext, type TestContext } from '../helpers/context.js';

const contexts: TestContext[] = [];
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
});

/** Exact for counts, sums and scores; ratios and durations within 1e-9 (relative), as floating point allows. */
function expectSameFeatures(stream: Record<string, string>, warehouse: CustomerFeatures, what: string): void {
  for (const name of FEATURE_NAMES) {
    const got = Number(stream[name]);
    const want = warehouse.values[name];
    if (EXACT_FEATURES.has(name)) expect(got, `${what} ${name}`).toBe(want);
    else
      expect(Math.abs(got - want), `${what} ${name}: ${got} vs ${want}`).toBeLessThanOrEqual(
        1e-9 * Math.max(1, Math.abs(want)),
      );
  }
  expect(stream['top_category'], `${what} top_category`).toBe(warehouse.topCategory);
  const affinity = Object.entries(stream).filter(([k]) => k.startsWith('affinity:'));
  expect(affinity.length, `${what} affinity categories`).toBe(warehouse.affinity.size);
  for (const [k, v] of affinity) {
    expect(
      Math.abs(Number(v) - (warehouse.affinity.get(k.slice('affinity:'.length)) ?? NaN)),
      `${what} ${k}`,
    ).toBeLessThan(1e-9);
  }
  expect(Number(stream['feature_time_ms']), `${what} feature_time_ms`).toBe(warehouse.featureTimeMs);
}

describe('feature parity: Redis (stream) and ClickHouse (point in time)', () => {
  it('gives every customer the same features from both executions, as of their feature time and later', async () => {
    // Grace longer than the history: this test is about equal definitions; lateness has its own tests.
    const ctx = await createTestContext({
      topics: true,
      warehouse: true,
      env: { SINK_MAX_WAIT_MS: '200', FEATURES_LATE_GRACE_MS: String(1000 * DAY_MS) },
    });
    contexts.push(ctx);
    const sample = generateSample({
      seed: 23,
      customers: 160,
      targetTransactions: 1500,
      days: 500,
      salt: 'parity-test-salt',
    });
    const all = [
      ...sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
      ...sample.behaviors.map((event) => ({ kind: 'behavior' as const, event })),
    ];
    const times = all.map((e) => e.event.eventTimeMs).sort((a, b) => a - b);
    const T = times[Math.floor(times.length * 0.8)]!; // replay up to event time T
    const replayed = all.filter((e) => e.event.eventTimeMs <= T);
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    await producer.publishAll(replayed);
    await producer.disconnect();

    const pipeline = new Pipeline({
      config: ctx.config,
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
      clickhouse: ctx.clickhouse,
    });
    await pipeline.start();
    try {
      await pipeline.waitUntilCaughtUp(ctx.admin, 240_000);
      // Snapshot Redis at T: every customer's hash as the ad server reads it.
      const hashes = new Map<string, Record<string, string>>();
      const pattern = `${ctx.config.TOPIC_PREFIX}features:{*`;
      let cursor = '0';
      do {
        const [next, keys] = await pipeline.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) {
          const hash = await pipeline.redis.hgetall(key);
          if (!hash['merged_into']) hashes.set(key.slice(key.indexOf('{') + 1, -1), hash);
        }
      } while (cursor !== '0');
      expect(hashes.size).toBeGreaterThan(150);

      // 1. As of each customer's own feature time (the newest event its hash reflects).
      const requests = [...hashes].map(([customerId, h]) => ({ customerId, refMs: Number(h['feature_time_ms']) }));
      const warehouse = await featuresAsOf(ctx.clickhouse, requests, DEFAULT_CUT_POINTS);
      for (const r of requests) {
        const w = warehouse.get(pairKey(r.customerId, r.refMs));
        expect(w, `${r.customerId} in the warehouse`).toBeDefined();
        expectSameFeatures(hashes.get(r.customerId)!, w!, r.customerId);
      }
      const withPurchases = requests.filter((r) => Number(hashes.get(r.customerId)!['frequency_90d']) > 0).length;
      const withSessions = requests.filter((r) => Number(hashes.get(r.customerId)!['sessions_30d']) > 0).length;
      expect(withPurchases).toBeGreaterThan(50); // the comparison covered real RFM values...
      expect(withSessions).toBeGreaterThan(50); // ...and behaviour
      // ...and the features of the optional contract fields: brands, coupons, reviews (scored by the resolver in the
      // stream, by the sink in the warehouse, with the same function).
      const nonZero = (name: string) => requests.filter((r) => Number(hashes.get(r.customerId)![name]) !== 0).length;
      expect(nonZero('brand_consistency_90d')).toBeGreaterThan(50);
      expect(nonZero('coupon_usage_rate_90d')).toBeGreaterThan(5);
      expect(nonZero('reviews_90d')).toBeGreaterThan(5);
      expect(nonZero('review_sentiment_90d')).toBeGreaterThan(5);
      // ...and the year: purchases before the 180-day window and before the 365-day one, and a defined hazard.
      const value = (r: { customerId: string }, name: string) => Number(hashes.get(r.customerId)![name]);
      const count = (p: (r: { customerId: string }) => boolean) => requests.filter(p).length;
      expect(count((r) => value(r, 'frequency_180d') < value(r, 'frequency_365d'))).toBeGreaterThan(20);
      expect(count((r) => value(r, 'frequency_365d') < value(r, 'orders_lifetime'))).toBeGreaterThan(5);
      expect(count((r) => value(r, 'repurchase_hazard_365d') >= 0)).toBeGreaterThan(20);

      // 2. As of T + 3 days: features aged from the Redis state (no new events) against ClickHouse at that time.
      const later = T + 3 * DAY_MS;
      const aged = await featuresAsOf(
        ctx.clickhouse,
        requests.map((r) => ({ customerId: r.customerId, refMs: later })),
        DEFAULT_CUT_POINTS,
      );
      for (const r of requests) {
        const stored = await pipeline.store.load(r.customerId);
        const stream = currentFeatures(stored.state!, DEFAULT_CUT_POINTS, later)!;
        const fields: Record<string, string> = {
          top_category: stream.topCategory,
          feature_time_ms: String(stream.featureTimeMs),
        };
        for (const name of FEATURE_NAMES) fields[name] = String(stream.values[name]);
        for (const [c, v] of stream.affinity) fields[`affinity:${c}`] = String(v);
        expectSameFeatures(fields, aged.get(pairKey(r.customerId, later))!, `${r.customerId}@T+3d`);
      }
    } finally {
      await pipeline.stop();
    }
  }, 300_000);
});
