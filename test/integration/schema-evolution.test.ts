// Schema evolution on the real registry and pipeline (issue 13 part 5): a platform still on the previous contract
// (no couponCode, no reviewText) keeps producing next to one on the current contract. The registry takes the current
// contract as a BACKWARD-compatible next version, the old records decode with the new fields null, every record of
// both is processed (no dead letter), the resolver replaces a review score a platform sent with its own, and the
// stream's features equal the warehouse's point-in-time features for both customers.
import avro from 'avsc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNamedQuery } from '../../clickhouse/queries.js';
import { featuresAsOf, pairKey } from '../../processors/features/as-of.js';
import { DEFAULT_CUT_POINTS, EXACT_FEATURES, FEATURE_NAMES } from '../../processors/features/definitions.js';
import { reviewSentimentMilli } from '../../processors/features/sentiment.js';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import { subjectOf } from '../../processors/runtime/serde.js';
import { loadSchema, type AvroSchema } from '../../schemas/catalog.js';
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';
import { behaviorKey, transactionKey } from '../../schemas/rules.js';
import { sampleBehavior, sampleTransaction } from '../fixtures/events.js';
import { contextPipeline, createTestContext, publishEvents, type TestContext } from '../helpers/context.js';

/** The contract as it was before a field list was added: what a platform that has not upgraded still writes with. */
function previousContract(schema: AvroSchema, added: readonly string[]): AvroSchema {
  const fields = (schema['fields'] as { name: string }[]).filter((f) => !added.includes(f.name));
  return { ...schema, fields };
}

const OLD_TRANSACTION = previousContract(loadSchema('transaction'), ['couponCode']);
const OLD_BEHAVIOR = previousContract(loadSchema('behaviorEvent'), ['reviewText', 'reviewSentiment']);

/** The value without the fields the previous contract did not have (what the old platform's objects look like). */
function without(value: object, fields: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([k]) => !fields.includes(k)));
}

const MINUTE = 60_000;
const T = Date.now() - 2 * 86_400_000; // inside every window, well before the future-time rule
const REVIEW = 'Love it! Great quality and fast delivery.';
const OLD_REVIEW = 'Poor quality, broke after a week. Disappointed.';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ topics: true, warehouse: true, env: { SINK_MAX_WAIT_MS: '200' } });
});
afterAll(async () => {
  await ctx?.close();
});

describe('schema evolution: old producers next to new ones', () => {
  it('registers the current contract after the previous one, and processes both alike', async () => {
    const { topics, serde } = ctx;
    // 1. The platform on the previous contract registers it first (the subject's version 1), as it did before.
    const oldTxId = await serde.registerSchema(subjectOf(topics.transactionsRaw), OLD_TRANSACTION);
    const oldClickId = await serde.registerSchema(subjectOf(topics.clicksRaw), OLD_BEHAVIOR);
    // 2. The current contract is accepted as the next version under BACKWARD.
    const newTxId = await serde.register(topics.transactionsRaw);
    const newClickId = await serde.register(topics.clicksRaw);
    expect(newTxId).not.toBe(oldTxId);
    expect(newClickId).not.toBe(oldClickId);
    const url = ctx.config.SCHEMA_REGISTRY_URL;
    for (const topic of [topics.transactionsRaw, topics.clicksRaw]) {
      const versions = (await (await fetch(`${url}/subjects/${subjectOf(topic)}/versions`)).json()) as number[];
      expect(versions.length, subjectOf(topic)).toBe(2);
      const config = (await (await fetch(`${url}/config/${subjectOf(topic)}`)).json()) as {
        compatibilityLevel: string;
      };
      expect(config.compatibilityLevel).toBe('BACKWARD');
    }

    // 3. The old platform's records, written with the previous contract's own writer (no new field at all).
    const oldTx: Transaction[] = [
      sampleTransaction({ platformCustomerId: 'c-old', eventTimeMs: T, sessionId: 'so-1', identity: null }),
      sampleTransaction({
        platformCustomerId: 'c-old',
        eventTimeMs: T + 5 * MINUTE,
        sessionId: 'so-2',
        identity: null,
      }),
    ];
    const oldClicks: BehaviorEvent[] = [
      sampleBehavior({ platformCustomerId: 'c-old', eventTimeMs: T - MINUTE, sessionId: 'so-1' }),
    ];
    const oldTxType = avro.Type.forSchema(OLD_TRANSACTION as avro.Schema);
    const oldClickType = avro.Type.forSchema(OLD_BEHAVIOR as avro.Schema);
    const wire = (id: number, payload: Buffer) => {
      const header = Buffer.alloc(5);
      header.writeInt32BE(id, 1);
      return Buffer.concat([header, payload]);
    };
    const oldTxBytes = oldTx.map((tx) => wire(oldTxId, oldTxType.toBuffer(without(tx, ['couponCode']))));
    const oldClickBytes = oldClicks.map((ev) =>
      wire(oldClickId, oldClickType.toBuffer(without(ev, ['reviewText', 'reviewSentiment']))),
    );
    // Read with the current contract, the new fields are their defaults.
    const decoded = await serde.decode<Transaction>(topics.transactionsRaw, oldTxBytes[0]!);
    expect(decoded.couponCode).toBe(null);
    expect(decoded.orderId).toBe(oldTx[0]!.orderId);
    const decodedClick = await serde.decode<BehaviorEvent>(topics.clicksRaw, oldClickBytes[0]!);
    expect([decodedClick.reviewText, decodedClick.reviewSentiment]).toEqual([null, null]);

    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    try {
      await producer.sendBatch({
        acks: -1,
        topicMessages: [
          {
            topic: topics.transactionsRaw.name,
            messages: oldTx.map((tx, i) => ({ key: transactionKey(tx), value: oldTxBytes[i]! })),
          },
          {
            topic: topics.clicksRaw.name,
            messages: oldClicks.map((ev, i) => ({ key: behaviorKey(ev), value: oldClickBytes[i]! })),
          },
        ],
      });
    } finally {
      await producer.disconnect();
    }

    // 4. The upgraded platform, through the producer library: coupons, brands, reviews. One review carries a score
    // of the platform's own, which the resolver replaces; c-old also writes a review once its platform upgrades.
    const line = (productId: string, brand: string | null) => ({
      productId,
      productName: null,
      category: 'sports',
      brand,
      quantity: 1,
      unitPriceMinor: 1_000,
    });
    const newTx: Transaction[] = [
      sampleTransaction({
        platformCustomerId: 'c-new',
        eventTimeMs: T,
        identity: null, // the fixtures' one email would link the two customers
        couponCode: 'WELCOME10',
        lineItems: [line('p-1', 'Fleet'), line('p-2', 'Fleet'), line('p-3', 'Stride')],
        totalMinor: 3_000,
      }),
      sampleTransaction({
        platformCustomerId: 'c-new',
        eventTimeMs: T + 10 * MINUTE,
        identity: null,
        lineItems: [line('p-4', 'Fleet'), line('p-5', null)],
        totalMinor: 2_000,
      }),
    ];
    const newClicks: BehaviorEvent[] = [
      sampleBehavior({ platformCustomerId: 'c-new', eventTimeMs: T + 20 * MINUTE, reviewText: REVIEW }),
      sampleBehavior({
        platformCustomerId: 'c-old',
        eventTimeMs: T + 30 * MINUTE,
        reviewText: OLD_REVIEW,
        reviewSentiment: 4_999, // not the platform's to set
      }),
    ];
    const counts = await publishEvents(ctx, [
      ...newTx.map((event) => ({ kind: 'transaction' as const, event })),
      ...newClicks.map((event) => ({ kind: 'behavior' as const, event })),
    ]);
    expect(counts).toEqual({ acknowledged: 4, refused: 0 });

    // 5. The real pipeline: resolver, feature processor, warehouse sink.
    const pipeline = contextPipeline(ctx);
    await pipeline.start();
    try {
      await pipeline.waitUntilCaughtUp(ctx.admin, 240_000);
      const query = async <R>(sql: string) =>
        (await ctx.clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<R>();
      expect(await query<{ n: string }>('SELECT count() AS n FROM dead_letter')).toEqual([{ n: '0' }]);
      const coupons = await query<{ order_id: string; coupon_code: string }>(
        'SELECT order_id, coupon_code FROM fact_transaction FINAL ORDER BY event_time_ms, order_id',
      );
      expect(coupons).toHaveLength(4);
      expect(Object.fromEntries(coupons.map((r) => [r.order_id, r.coupon_code]))).toEqual({
        [oldTx[0]!.orderId]: '',
        [oldTx[1]!.orderId]: '',
        [newTx[0]!.orderId]: 'WELCOME10',
        [newTx[1]!.orderId]: '',
      });
      const reviews = await query<{ review_text: string; review_sentiment: number }>(
        "SELECT review_text, review_sentiment FROM fact_event FINAL WHERE review_text != '' ORDER BY event_time_ms",
      );
      expect(reviews).toEqual([
        { review_text: REVIEW, review_sentiment: reviewSentimentMilli(REVIEW) },
        { review_text: OLD_REVIEW, review_sentiment: reviewSentimentMilli(OLD_REVIEW) },
      ]);

      // The analysts' summary reads the same columns.
      expect(await runNamedQuery(ctx.clickhouse, 'coupons-and-reviews-by-platform')).toEqual([
        {
          platform_id: 'shopwave',
          purchases: 4,
          coupon_purchases: 1,
          coupon_share: 0.25,
          reviews: 2,
          mean_review_sentiment: (reviewSentimentMilli(REVIEW) + reviewSentimentMilli(OLD_REVIEW)) / 2 / 1000,
        },
      ]);

      const ids = await query<{ identity_id: string; global_customer_id: string }>(
        "SELECT identity_id, global_customer_id FROM v_customer_identity_current WHERE identity_id IN ('shopwave:c-old', 'shopwave:c-new')",
      );
      const customer = new Map(ids.map((r) => [r.identity_id, r.global_customer_id]));
      const hashOf = async (identity: string) =>
        pipeline.redis.hgetall(`${ctx.config.TOPIC_PREFIX}features:{${customer.get(identity)!}}`);
      const oldHash = await hashOf('shopwave:c-old');
      const newHash = await hashOf('shopwave:c-new');
      // The old records count as purchases without a coupon; sampleTransaction's lines: Fleet and an unbranded one.
      expect(Number(oldHash['frequency_90d'])).toBe(2);
      expect(Number(oldHash['coupon_usage_rate_90d'])).toBe(0);
      expect(Number(oldHash['brand_consistency_90d'])).toBe(1);
      expect(Number(oldHash['reviews_90d'])).toBe(1);
      expect(Number(oldHash['review_sentiment_90d'])).toBe(reviewSentimentMilli(OLD_REVIEW) / 1000);
      expect(Number(newHash['coupon_usage_rate_90d'])).toBe(0.5);
      expect(Number(newHash['brand_consistency_90d'])).toBe(0.75); // Fleet 3 of 4 branded lines
      expect(Number(newHash['reviews_90d'])).toBe(1);
      expect(Number(newHash['review_sentiment_90d'])).toBe(reviewSentimentMilli(REVIEW) / 1000);

      // 6. The warehouse's point-in-time features equal the stream's, for both.
      const requests = [oldHash, newHash].map((h, i) => ({
        customerId: customer.get(i === 0 ? 'shopwave:c-old' : 'shopwave:c-new')!,
        refMs: Number(h['feature_time_ms']),
      }));
      const warehouse = await featuresAsOf(ctx.clickhouse, requests, DEFAULT_CUT_POINTS);
      for (const [i, r] of requests.entries()) {
        const stream = i === 0 ? oldHash : newHash;
        const w = warehouse.get(pairKey(r.customerId, r.refMs))!;
        for (const name of FEATURE_NAMES) {
          const got = Number(stream[name]);
          if (EXACT_FEATURES.has(name)) expect(got, name).toBe(w.values[name]);
          else expect(Math.abs(got - w.values[name]), name).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(got)));
        }
      }
    } finally {
      await pipeline.stop();
    }
  }, 300_000);
});
