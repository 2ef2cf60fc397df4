// `npm run features -- backfill` on a real ClickHouse: a review stored with another score than the shared function's is
// rescored (the others are left alone), a snapshot row written before migration 0015 gets its coupon, brand and review
// columns from the facts, and a second run changes nothing.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS, HOUR_MS } from '../../processors/features/definitions.js';
import { reviewSentimentMilli } from '../../processors/features/sentiment.js';
import { createTestContext, envOf, type TestContext } from '../helpers/context.js';

const DAY = Date.UTC(2024, 4, 2); // the snapshot day
const seconds = (ms: number) => Math.floor(ms / 1000);
const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const GOOD = 'Excellent, would recommend.';
const BAD = 'Awful, broke at once.';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ warehouse: true });
  const ch = ctx.clickhouse;
  await ch.insert({
    table: 'dim_customer_identity',
    format: 'JSONEachRow',
    values: [
      {
        identity_id: 'shop:u1',
        global_customer_id: 'g-1',
        platform_id: 'shop',
        platform_customer_id: 'u1',
        mapping_method: 'NEW',
        mapping_confidence: 1,
        match_weight: 0,
        valid_from: seconds(DAY - 30 * DAY_MS),
        valid_from_ms: DAY - 30 * DAY_MS,
        source_event_id: 'l1',
        link_version: 1,
      },
    ],
  });
  const tx = (id: string, t: number, coupon: string) => ({
    event_id: id,
    platform_id: 'shop',
    platform_customer_id: 'u1',
    order_id: `o-${id}`,
    kind: 'PURCHASE',
    total_minor: 1000,
    currency: 'GBP',
    item_count: 1,
    units: 1,
    session_id: '',
    device_id: '',
    coupon_code: coupon,
    event_time: seconds(t),
    event_time_ms: t,
    event_date: isoDate(t),
    ingested_at: seconds(Date.now()),
    source_topic: 'test',
    source_partition: 0,
    source_offset: 0,
  });
  await ch.insert({
    table: 'fact_transaction',
    format: 'JSONEachRow',
    values: [tx('t1', DAY + HOUR_MS, 'SAVE5'), tx('t2', DAY + 2 * HOUR_MS, '')],
  });
  await ch.insert({
    table: 'fact_transaction_line',
    format: 'JSONEachRow',
    values: ['t1', 't2'].map((id, i) => ({
      event_id: id,
      line_no: 0,
      platform_id: 'shop',
      platform_customer_id: 'u1',
      order_id: `o-${id}`,
      kind: 'PURCHASE',
      product_id: 'p',
      category_id: 'books',
      brand: i === 0 ? 'Acme' : 'Zenith',
      quantity: 1,
      unit_price_minor: 1000,
      amount_minor: 1000,
      currency: 'GBP',
      event_time: seconds(DAY + (i + 1) * HOUR_MS),
      event_date: isoDate(DAY),
    })),
  });
  const click = (id: string, t: number, review: string, sentiment: number) => ({
    event_id: id,
    platform_id: 'shop',
    platform_customer_id: 'u1',
    session_id: '',
    device_id: '',
    event_type: 'VIEW',
    product_id: 'p',
    category_id: 'books',
    search_query: '',
    quantity: 0,
    price_minor: 0,
    currency: '',
    order_id: '',
    review_text: review,
    review_sentiment: sentiment,
    event_time: seconds(t),
    event_time_ms: t,
    event_date: isoDate(t),
    ingested_at: seconds(Date.now()) - 60,
    source_topic: 'test',
    source_partition: 0,
    source_offset: 7,
  });
  await ch.insert({
    table: 'fact_event',
    format: 'JSONEachRow',
    values: [
      click('c1', DAY + 3 * HOUR_MS, GOOD, reviewSentimentMilli(GOOD)), // right already
      click('c2', DAY + 4 * HOUR_MS, BAD, 0), // stored by a loader that did not score it
      click('c3', DAY - 2 * DAY_MS, '', 0), // no review
    ],
  });
  // A snapshot row as written before migration 0015: the new columns read 0.
  await ch.insert({
    table: 'feat_customer_rfm',
    format: 'JSONEachRow',
    values: [{ snapshot_date: isoDate(DAY), global_customer_id: 'g-1', frequency_90d: 2, version: 1 }],
  });
});
afterAll(async () => {
  await ctx?.close();
});

const cli = (args: readonly string[]) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'processors/features/cli.ts', ...args], {
      env: { ...process.env, ...envOf(ctx), LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, stdout, stderr });
    });
  });

async function rows<T>(query: string): Promise<T[]> {
  return (await ctx.clickhouse.query({ query, format: 'JSONEachRow' })).json<T>();
}

describe('features backfill', () => {
  it('rescores stored reviews and fills old snapshot rows, and a second run changes nothing', async () => {
    const first = await cli(['backfill']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({
      sentiment: { days: 1, reviews: 2, rescored: 1 },
      snapshots: { days: 1, rows: 1 },
    });
    const scores = await rows<{ event_id: string; review_sentiment: number; source_offset: string }>(
      'SELECT event_id, review_sentiment, source_offset FROM fact_event FINAL ORDER BY event_id',
    );
    expect(scores).toEqual([
      { event_id: 'c1', review_sentiment: reviewSentimentMilli(GOOD), source_offset: '7' },
      { event_id: 'c2', review_sentiment: reviewSentimentMilli(BAD), source_offset: '7' }, // the rest as it was
      { event_id: 'c3', review_sentiment: 0, source_offset: '7' },
    ]);
    const snapshotQuery =
      'SELECT frequency_90d, coupon_usage_rate_90d, brand_consistency_90d, reviews_90d, review_sentiment_90d ' +
      'FROM feat_customer_rfm FINAL';
    const expected = {
      frequency_90d: 2,
      coupon_usage_rate_90d: 0.5,
      brand_consistency_90d: 0.5,
      reviews_90d: 2,
      review_sentiment_90d: (reviewSentimentMilli(GOOD) + reviewSentimentMilli(BAD)) / 2 / 1000,
    };
    expect(await rows(snapshotQuery)).toEqual([expected]);

    const second = await cli(['backfill']);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ sentiment: { reviews: 2, rescored: 0 } });
    expect(await rows(snapshotQuery)).toEqual([expected]);
    expect(await rows<{ n: string }>("SELECT count() AS n FROM fact_event FINAL WHERE review_text != ''")).toEqual([
      { n: '2' },
    ]);

    const bad = await cli(['backfill', '--only', 'everything']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--only: sentiment or snapshots/);
  }, 120_000);
});
