// The features that came with the schema evolution of issue 13 (coupons, brands, reviews): one sentiment function for
// every path, the feature definitions, hashes and models from before the change, the warehouse rows and the demo data.
import { describe, expect, it } from 'vitest';
import { featuresFromHash } from '../../processors/api/logic.js';
import {
  DAY_MS,
  DEFAULT_CUT_POINTS,
  FEATURE_NAMES,
  FEATURES_ABSENT_AS_ZERO,
  finalizeFeatures,
} from '../../processors/features/definitions.js';
import { clickEvent, currentFeatures, hashFields, transactionEvent } from '../../processors/features/logic.js';
import {
  reviewSentimentMilli,
  reviewSentimentOf,
  SENTIMENT_MILLI_MAX,
  withReviewSentiment,
} from '../../processors/features/sentiment.js';
import { applyEvent, emptyState } from '../../processors/features/state.js';
import { generateSample } from '../../processors/producers/generate.js';
import { featureMatrix, modelFeatureOrder } from '../../processors/scoring/logic.js';
import { behaviorRows, transactionRows } from '../../processors/warehouse-sink/logic.js';
import { behaviorProblems, MAX_REVIEW_LENGTH, MAX_STRING_LENGTH, transactionProblems } from '../../schemas/rules.js';
import { emptyAggregates } from '../fixtures/aggregates.js';
import { sampleBehavior, sampleTransaction, T0 } from '../fixtures/events.js';

/** FEATURE_NAMES before issue 13 part 5: the inputs of every model trained until then. */
const FEATURES_BEFORE = FEATURE_NAMES.filter((n) => !FEATURES_ABSENT_AS_ZERO.has(n));

describe('review sentiment', () => {
  it('is an integer of thousandths of AFINN valence per word, signed by the tone', () => {
    const good = reviewSentimentMilli('Love it! Great quality and fast delivery.');
    const bad = reviewSentimentMilli('Terrible. Poor quality and it broke, awful.');
    const flat = reviewSentimentMilli('It arrived on Tuesday in a box.');
    expect(good).toBeGreaterThan(0);
    expect(bad).toBeLessThan(0);
    expect(flat).toBe(0);
    for (const v of [good, bad, flat]) expect(Number.isInteger(v)).toBe(true);
    // "Love it" = 3 over 2 words: 1.5 per word.
    expect(reviewSentimentMilli('Love it')).toBe(1_500);
    expect(reviewSentimentMilli('not good')).toBeLessThan(0); // the library's negation rule
    // One word at either end of the AFINN scale: the bounds.
    expect([reviewSentimentMilli('superb'), reviewSentimentMilli('bastard')]).toEqual([
      SENTIMENT_MILLI_MAX,
      -SENTIMENT_MILLI_MAX,
    ]);
    expect(Object.is(reviewSentimentMilli('meh hmm'), -0)).toBe(false);
  });

  it('is null without a review: null and empty text alike, as the warehouse reads review_text != ""', () => {
    expect(reviewSentimentOf(null)).toBe(null);
    expect(reviewSentimentOf(undefined)).toBe(null);
    expect(reviewSentimentOf('')).toBe(null);
    expect(reviewSentimentOf(' ')).toBe(0); // a review, of nothing scored
  });

  it('is stamped by the resolver over whatever the platform sent, and leaves other events as they are', () => {
    const plain = sampleBehavior();
    expect(withReviewSentiment(plain)).toBe(plain); // no copy on the common path
    const tx = sampleTransaction();
    expect(withReviewSentiment(tx)).toBe(tx);
    const review = sampleBehavior({ reviewText: 'Love it', reviewSentiment: 99 });
    expect(withReviewSentiment(review)).toEqual({ ...review, reviewSentiment: 1_500 });
    const forged = sampleBehavior({ reviewSentiment: 5_000 });
    expect(withReviewSentiment(forged).reviewSentiment).toBe(null);
  });
});

describe('contract rules of the new fields', () => {
  it('take reviews up to 4,096 characters and hold every other string, the coupon code too, to 512', () => {
    const options = { nowMs: T0 };
    expect(behaviorProblems(sampleBehavior({ reviewText: 'x'.repeat(MAX_REVIEW_LENGTH) }), options)).toEqual([]);
    expect(behaviorProblems(sampleBehavior({ reviewText: 'x'.repeat(MAX_REVIEW_LENGTH + 1) }), options)).toEqual([
      `reviewText is ${MAX_REVIEW_LENGTH + 1} characters (max ${MAX_REVIEW_LENGTH})`,
    ]);
    expect(behaviorProblems(sampleBehavior({ searchQuery: 'x'.repeat(MAX_STRING_LENGTH + 1) }), options)).toHaveLength(
      1,
    );
    expect(transactionProblems(sampleTransaction({ couponCode: 'x'.repeat(MAX_STRING_LENGTH + 1) }), options)).toEqual([
      `couponCode is ${MAX_STRING_LENGTH + 1} characters (max ${MAX_STRING_LENGTH})`,
    ]);
  });
});

describe('brand, coupon and review features', () => {
  it('are the favourite brand share, the coupon share of purchases and the mean review score in 90 days', () => {
    const refMs = Date.UTC(2026, 5, 1);
    const agg = emptyAggregates(refMs, refMs - 10 * DAY_MS, {
      orders90d: 4,
      couponOrders90d: 1,
      brandedLines90d: 5,
      favoriteBrandLines90d: 3,
      reviews90d: 2,
      reviewSentimentMilli90d: 1_250,
    });
    const values = finalizeFeatures(agg, DEFAULT_CUT_POINTS).values;
    expect(values.brand_consistency_90d).toBe(0.6);
    expect(values.coupon_usage_rate_90d).toBe(0.25);
    expect(values.reviews_90d).toBe(2);
    expect(values.review_sentiment_90d).toBe(0.625);
    const none = finalizeFeatures(emptyAggregates(refMs, refMs), DEFAULT_CUT_POINTS).values;
    expect([
      none.brand_consistency_90d,
      none.coupon_usage_rate_90d,
      none.reviews_90d,
      none.review_sentiment_90d,
    ]).toEqual([0, 0, 0, 0]);
  });

  it('come from the resolved events: brands of purchase lines, a coupon code, a review score', () => {
    const state = emptyState();
    const tx = sampleTransaction({ couponCode: 'WELCOME10' }); // lines: brand Fleet, and one without a brand
    applyEvent(state, transactionEvent(tx));
    applyEvent(state, transactionEvent(sampleTransaction({ couponCode: '', eventTimeMs: T0 + 1 })));
    applyEvent(
      state,
      clickEvent(sampleBehavior({ eventTimeMs: T0 + 2, reviewText: 'Love it', reviewSentiment: 1_500 })),
    );
    // Not stamped (a record the resolver did not write): scored here from the same function.
    applyEvent(state, clickEvent(sampleBehavior({ eventTimeMs: T0 + 3, reviewText: 'Terrible.' })));
    const values = currentFeatures(state, DEFAULT_CUT_POINTS)!.values;
    expect(values.coupon_usage_rate_90d).toBe(0.5);
    expect(values.brand_consistency_90d).toBe(1); // two Fleet lines, unbranded lines do not count
    expect(values.reviews_90d).toBe(2);
    expect(values.review_sentiment_90d).toBe((1_500 + reviewSentimentMilli('Terrible.')) / 2 / 1000);
  });

  it('leave a model trained before them its own inputs, and a hash written before them still scores', () => {
    const state = emptyState();
    applyEvent(state, transactionEvent(sampleTransaction({ couponCode: 'X' })));
    const features = currentFeatures(state, DEFAULT_CUT_POINTS)!;
    const order = modelFeatureOrder(FEATURES_BEFORE);
    const row = featureMatrix([features], order);
    expect(row.length).toBe(FEATURES_BEFORE.length);
    expect([...row]).toEqual(FEATURES_BEFORE.map((n) => Math.fround(features.values[n])));

    const flat = hashFields(features, 1, T0);
    const hash: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
    for (const name of FEATURES_ABSENT_AS_ZERO) Reflect.deleteProperty(hash, name); // an older processor's hash
    const read = featuresFromHash(hash);
    expect(read).not.toBe(null);
    for (const name of FEATURES_BEFORE) expect(read!.values[name]).toBe(features.values[name]);
    for (const name of FEATURES_ABSENT_AS_ZERO) expect(read!.values[name]).toBe(0);
    Reflect.deleteProperty(hash, 'recency_days'); // an old feature missing is still a broken hash
    expect(featuresFromHash(hash)).toBe(null);
  });
});

describe('warehouse rows of the new fields', () => {
  it('keep the coupon code and the review with its score from the shared function', () => {
    const source = { topic: 't', partition: 0, offset: '1' };
    const tx = transactionRows(sampleTransaction({ couponCode: 'SPRING15' }), source, T0);
    expect(tx.fact_transaction?.[0]).toMatchObject({ coupon_code: 'SPRING15' });
    expect(transactionRows(sampleTransaction(), source, T0).fact_transaction?.[0]).toMatchObject({ coupon_code: '' });
    const text = 'Brilliant value, works perfectly.';
    // A raw record's own score is not trusted: the sink scores the text.
    const click = behaviorRows(sampleBehavior({ reviewText: text, reviewSentiment: -4_000 }), source, T0);
    expect(click.fact_event?.[0]).toMatchObject({ review_text: text, review_sentiment: reviewSentimentMilli(text) });
    expect(behaviorRows(sampleBehavior(), source, T0).fact_event?.[0]).toMatchObject({
      review_text: '',
      review_sentiment: 0,
    });
  });
});

describe('generated demo data', () => {
  it('carries brands, coupons and reviews of both tones', () => {
    const sample = generateSample({ seed: 5, customers: 200, targetTransactions: 600, salt: 'evolution-salt' });
    const purchases = sample.transactions.filter((t) => t.kind === 'PURCHASE');
    const withCoupon = purchases.filter((t) => t.couponCode);
    expect(withCoupon.length).toBeGreaterThan(purchases.length * 0.05);
    expect(withCoupon.length).toBeLessThan(purchases.length * 0.5);
    expect(purchases.every((t) => t.lineItems.every((l) => l.brand))).toBe(true);
    const reviews = sample.behaviors.filter((b) => b.reviewText);
    expect(reviews.length).toBeGreaterThan(20);
    expect(reviews.every((r) => r.type === 'VIEW' && r.reviewSentiment === null && r.platformCustomerId)).toBe(true);
    const scores = reviews.map((r) => reviewSentimentMilli(r.reviewText!));
    expect(scores.some((s) => s > 0)).toBe(true);
    expect(scores.some((s) => s < 0)).toBe(true);
    // Every review follows a purchase of the same account and product.
    for (const r of reviews) {
      const order = r.eventId.split(':review:')[1];
      const tx = purchases.find((t) => t.orderId === order);
      expect(tx?.platformCustomerId).toBe(r.platformCustomerId);
      expect(tx!.eventTimeMs).toBeLessThan(r.eventTimeMs);
      expect(tx!.lineItems.map((l) => l.productId)).toContain(r.productId);
    }
  });
});
