// The prediction API on the real stream: a generated sample goes through the whole pipeline (resolver, features with
// a trained model, warehouse sink), then the API answers what the ad server would read from Redis, scores on demand
// when the cached score is gone or too old, follows merges, refuses bad input with reasons, and records every ad
// decision as an exposure that reaches the warehouse.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiApp } from '../../processors/api/app.js';
import type { Pipeline } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import {
  contextPipeline,
  createTestContext,
  publishWithMerge,
  sampleEvents,
  type TestContext,
  waitFor,
} from '../helpers/context.js';
import { trainSyntheticModel } from '../helpers/model.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const KEY = 'api-test-key-0123456789';
const OTHER_KEY = 'api-test-other-key-0123456789';
const VERSION = '20260101T000000Z-api';
let models = '';
let ctx: TestContext;
let pipeline: Pipeline;
let api: ApiApp;
let url = '';
const apps: ApiApp[] = [];

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function call(path: string, body: unknown, key: string | null = KEY, base = url): Promise<Reply> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function startApi(env: Record<string, string> = {}): Promise<{ app: ApiApp; url: string }> {
  const app = new ApiApp({
    config: loadConfig({ ...ctx.env, ...env }),
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
    log: createLogger('warn', { test: 'api' }),
    metrics: createMetrics(),
  });
  apps.push(app);
  return { app, url: await app.start() };
}

const scoreKey = (id: string) => `${ctx.config.TOPIC_PREFIX}score:{${id}}`;

/** Global ids with a score hash, and merged-away ids (feature hash `merged_into`), found in Redis. */
async function customersInRedis(): Promise<{ scored: string[]; merged: [string, string][] }> {
  const scored: string[] = [];
  const merged: [string, string][] = [];
  for (const key of await pipeline.redis.keys(`${ctx.config.TOPIC_PREFIX}features:{*}`)) {
    const id = key.slice(key.indexOf('{') + 1, -1);
    const into = await pipeline.redis.hget(key, 'merged_into');
    if (into) merged.push([id, into]);
    else if ((await pipeline.redis.exists(scoreKey(id))) === 1) scored.push(id);
  }
  return { scored: scored.sort(), merged };
}

beforeAll(async () => {
  models = mkdtempSync(join(tmpdir(), 'patternos-api-'));
  trainSyntheticModel(models, VERSION);
  // No experiment runs here, so the default rule applies to every decision (experiments.test.ts covers enrolment).
  writeFileSync(join(models, 'experiments.json'), JSON.stringify({ experiments: [] }));
  ctx = await createTestContext({
    topics: true,
    warehouse: true,
    env: {
      MODEL_DIR: models,
      SCORING_CLOCK: 'event',
      // No rescoring as event time passes: every score is as of its customer's newest event, like its feature hash.
      SCORING_RESCORE_EVERY_MS: String(10 * 365 * 86_400_000),
      SINK_MAX_WAIT_MS: '200',
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      API_KEYS: `${KEY},${OTHER_KEY}`,
      API_BATCH_MAX: '20',
      EXPERIMENTS_PATH: join(models, 'experiments.json'),
    },
  });
  pipeline = contextPipeline(ctx);
  await pipeline.start();
  const sample = generateSample({ seed: 5, customers: 80, targetTransactions: 200, salt: 'api-test-salt' });
  await publishWithMerge(ctx, pipeline, sampleEvents(sample), 'api-test-salt');
  ({ app: api, url } = await startApi());
}, 600_000);

afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await pipeline.stop();
  await ctx.close();
  rmSync(models, { recursive: true, force: true });
});

describe('prediction API', () => {
  it('answers exactly what the ad server reads from Redis, by global id and by platform id', async () => {
    const { scored } = await customersInRedis();
    expect(scored.length).toBeGreaterThan(20);
    for (const id of scored.slice(0, 10)) {
      const hash = await pipeline.redis.hgetall(scoreKey(id));
      const { status, body } = await call('/predict-intent', { customer_id: id });
      expect(status).toBe(200);
      expect(body).toEqual({
        customer_id: id,
        intent_score: Number(hash['intent_score']),
        intent_level: hash['intent_level'],
        purchase_probability_7d: Number(hash['purchase_probability_7d']),
        predicted_category: hash['predicted_category'] || null,
        model_version: VERSION,
        scored_at: new Date(Number(hash['scored_at_ms'])).toISOString(),
        feature_time: new Date(Number(hash['feature_time_ms'])).toISOString(),
        as_of: new Date(Number(hash['as_of_ms'])).toISOString(),
        source: 'cache',
      });
    }
    // A platform identity answers for the customer the identity graph puts it in (anonymous sessions have none).
    const id = scored.find((c) => c.startsWith('c-')) as string;
    const [identity] = await pipeline.graph.members(id);
    expect(identity).toBeDefined();
    const at = (identity as string).indexOf(':');
    const byPlatform = await call('/predict-intent', {
      platform: (identity as string).slice(0, at),
      platform_customer_id: (identity as string).slice(at + 1),
    });
    expect(byPlatform.status).toBe(200);
    expect(byPlatform.body['customer_id']).toBe(id);
    expect(byPlatform.body['intent_score']).toBe(Number(await pipeline.redis.hget(scoreKey(id), 'intent_score')));
  });

  it('answers a merged-away id for its survivor', async () => {
    const { merged } = await customersInRedis();
    expect(merged.length).toBeGreaterThan(0);
    const [gone, survivor] = merged[0] as [string, string];
    const { status, body } = await call('/predict-intent', { customer_id: gone });
    expect(status).toBe(200);
    expect(body['customer_id']).toBe(survivor);
  });

  it('scores on demand, identically to the stream, when the cached score is missing or older than its TTL', async () => {
    const { scored } = await customersInRedis();
    const [missing, stale] = scored.slice(-2) as [string, string];
    const streamed = await pipeline.redis.hgetall(scoreKey(missing));
    // Only scores as of the newest event are reproducible from the features hash (a rescore is as of a later time).
    expect(streamed['as_of_ms']).toBe(streamed['feature_time_ms']);
    await pipeline.redis.del(scoreKey(missing));
    const computed = await call('/predict-intent', { customer_id: missing });
    expect(computed.status).toBe(200);
    expect(computed.body['source']).toBe('computed');
    expect(computed.body['intent_score']).toBeCloseTo(Number(streamed['intent_score']), 6);
    expect(computed.body['intent_level']).toBe(streamed['intent_level']);
    expect(computed.body['predicted_category']).toBe(streamed['predicted_category'] || null);
    expect(computed.body['feature_time']).toBe(new Date(Number(streamed['feature_time_ms'])).toISOString());
    expect(Date.parse(computed.body['scored_at'] as string)).toBeGreaterThan(Number(streamed['scored_at_ms']));

    const sevenHoursAgo = Date.now() - 7 * 3_600_000;
    await pipeline.redis.hset(scoreKey(stale), 'scored_at_ms', String(sevenHoursAgo));
    const refreshed = await call('/predict-intent', { customer_id: stale });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body['source']).toBe('computed');
    expect(Date.parse(refreshed.body['scored_at'] as string)).toBeGreaterThan(sevenHoursAgo);
  });

  it('answers 404 for unknown customers with a clear body, never a made-up score', async () => {
    const unknown = await call('/predict-intent', { customer_id: 'c-does-not-exist' });
    expect(unknown).toEqual({ status: 404, body: { error: 'not_found', message: 'unknown customer' } });
    const platform = await call('/predict-intent', { platform: 'shopwave', platform_customer_id: 'nobody-here' });
    expect(platform).toEqual({ status: 404, body: { error: 'not_found', message: 'unknown platform identity' } });
  });

  it('refuses requests without a valid key (401), and beyond a key’s rate (429, per key)', async () => {
    const { scored } = await customersInRedis();
    const body = { customer_id: scored[0] };
    expect((await call('/predict-intent', body, null)).status).toBe(401);
    const wrong = await call('/predict-intent', body, 'not-a-key-of-this-api');
    expect(wrong.status).toBe(401);
    expect(wrong.body['error']).toBe('unauthorized');
    expect(JSON.stringify(wrong.body)).not.toContain(KEY);

    const limited = await startApi({ API_RATE_LIMIT_PER_MINUTE: '5' });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await call('/predict-intent', body, KEY, limited.url)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    const refused = await call('/predict-intent', body, KEY, limited.url);
    expect(refused.body['error']).toBe('rate_limited');
    // The limit is per key: another key still gets through, and a wrong key is 401 rather than 429.
    expect((await call('/predict-intent', body, OTHER_KEY, limited.url)).status).toBe(200);
    expect((await call('/predict-intent', body, 'not-a-key-of-this-api', limited.url)).status).toBe(401);
  });

  it('refuses bad bodies with 400 and the reason', async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /customer_id, or by platform and platform_customer_id/],
      [{ customer_id: 'c-1', platform: 'shopwave', platform_customer_id: 'x' }, /customer_id, or by platform/],
      [{ platform: 'shopwave' }, /platform and platform_customer_id/],
      [{ customer_id: 42 }, /customer_id must be string/],
      [{ customer_id: '' }, /must NOT have fewer than 1 characters/],
      [{ customer_id: 'c-1', extra: true }, /must NOT have additional properties/],
      [{ platform: 'a:b', platform_customer_id: 'x' }, /platform must match pattern/],
      ['{"customer_id": ', /JSON/i],
    ];
    for (const [body, reason] of cases) {
      const reply = await call('/predict-intent', body);
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(reply.body['error']).toBe('bad_request');
      expect(reply.body['message']).toMatch(reason);
    }
  });

  it('answers a batch in request order, within its size limit', async () => {
    const { scored, merged } = await customersInRedis();
    const ids = scored.slice(0, 5);
    const reply = await call('/predict-intent/batch', {
      customers: [...ids.map((customer_id) => ({ customer_id })), { customer_id: 'c-nobody' }],
    });
    expect(reply.status).toBe(200);
    const results = reply.body['results'] as Record<string, unknown>[];
    expect(results).toHaveLength(6);
    for (const [i, id] of ids.entries()) {
      const single = await call('/predict-intent', { customer_id: id });
      expect(results[i]).toEqual({ status: 200, prediction: single.body });
    }
    expect(results[5]).toEqual({ status: 404, error: 'not_found', message: 'unknown customer' });
    if (merged[0]) {
      const one = await call('/predict-intent/batch', { customers: [{ customer_id: merged[0][0] }] });
      const [first] = one.body['results'] as { prediction: { customer_id: string } }[];
      expect(first?.prediction.customer_id).toBe(merged[0][1]);
    }

    const tooMany = await call('/predict-intent/batch', {
      customers: Array.from({ length: 21 }, (_, i) => ({ customer_id: `c-${i}` })),
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body['message']).toMatch(/must NOT have more than 20 items/);
    const badItem = await call('/predict-intent/batch', { customers: [{ customer_id: 'c-1' }, {}] });
    expect(badItem.status).toBe(400);
    expect(badItem.body['message']).toMatch(/^customers\[1\]: /);
    expect((await call('/predict-intent/batch', { customers: [] })).status).toBe(400);
  });

  it('decides ads by the seed rule and records each decision as an exposure that reaches the warehouse', async () => {
    const { scored } = await customersInRedis();
    const decisions: Record<string, unknown>[] = [];
    for (const id of scored.slice(0, 12)) {
      const reply = await call('/ad-decision', { customer_id: id, placement: 'home-hero' });
      expect(reply.status).toBe(200);
      const d = reply.body;
      const score = d['intent_score'] as number;
      const creative = d['creative'] as Record<string, unknown>;
      const wanted = score >= 0.7 ? 'PRODUCT' : score >= 0.4 ? 'CATEGORY' : 'BRAND';
      // The sample catalog has product and category creatives for every predicted category, so no step-down here.
      expect(d['ad_type']).toBe(d['predicted_category'] ? wanted : 'BRAND');
      expect(creative['type']).toBe(d['ad_type']);
      if (d['ad_type'] !== 'BRAND') expect(creative['category']).toBe(d['predicted_category']);
      expect(d['intent_score']).toBe(Number(await pipeline.redis.hget(scoreKey(id), 'intent_score')));
      decisions.push(d);
    }
    const rows = await waitFor(
      async () => {
        const r = await ctx.clickhouse.query({
          query: `SELECT decision_id, global_customer_id, ad_type, creative_id, category, placement, intent_score,
                         model_version, score_source, experiment
                  FROM fact_ad_decision FINAL ORDER BY decision_id`,
          format: 'JSONEachRow',
        });
        return r.json<Record<string, unknown>>();
      },
      (r) => r.length >= decisions.length,
      { what: 'the exposures in fact_ad_decision' },
    );
    const byId = new Map(rows.map((r) => [r['decision_id'], r]));
    for (const d of decisions) {
      expect(byId.get(d['decision_id'])).toEqual({
        decision_id: d['decision_id'],
        global_customer_id: d['customer_id'],
        ad_type: d['ad_type'],
        creative_id: (d['creative'] as Record<string, unknown>)['id'],
        category: d['ad_type'] === 'BRAND' ? '' : d['predicted_category'],
        placement: 'home-hero',
        intent_score: d['intent_score'],
        model_version: VERSION,
        score_source: 'CACHE',
        experiment: '',
      });
    }
    const unknown = await call('/ad-decision', { customer_id: 'c-does-not-exist' });
    expect(unknown.status).toBe(404);
  });

  it('answers 503 instead of waiting when Redis takes the lookup and never answers', async () => {
    const target = new URL(ctx.config.REDIS_URL);
    const proxy = await startTcpProxy(target.hostname, Number(target.port));
    try {
      // This instance reaches Redis through the proxy.
      const frozen = await startApi({ REDIS_URL: `redis://127.0.0.1:${proxy.port}`, API_REDIS_TIMEOUT_MS: '500' });
      const [id] = (await customersInRedis()).scored;
      expect((await call('/predict-intent', { customer_id: id }, KEY, frozen.url)).status).toBe(200);
      proxy.setFrozen(true); // Redis, as this instance reaches it, now takes commands and never answers
      const { status, body } = await call('/predict-intent', { customer_id: id }, KEY, frozen.url);
      expect(status).toBe(503);
      expect(body['error']).toBe('unavailable');
    } finally {
      await proxy.close();
    }
  });

  it('serves health, readiness, metrics and its OpenAPI document', async () => {
    expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${url}/ready`)).json()).toEqual({ ready: true, model_version: VERSION });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/api_request_duration_seconds_bucket\{[^}]*route="\/predict-intent"/);
    expect(metrics).toMatch(/api_predictions_total\{outcome="cache"\} [1-9]/);
    expect(metrics).toMatch(/api_predictions_total\{outcome="computed"\} [1-9]/);
    const ratio = Number(/^api_cache_hit_ratio ([0-9.]+)$/m.exec(metrics)?.[1]);
    expect(ratio).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(1);
    expect(metrics).toMatch(/ad_decisions_total\{ad_type="[A-Z]+",intent_level="[A-Z]+"\} [1-9]/);
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).sort()).toEqual(
      ['/ad-decision', '/erasure', '/health', '/predict-intent', '/predict-intent/batch', '/ready'].sort(),
    );
    expect(api.models.current?.version).toBe(VERSION);
  });
});
