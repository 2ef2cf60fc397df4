// A/B experiments end to end on the real stack: a generated sample goes through the pipeline (resolver, features with
// a trained model, warehouse sink); the prediction API enrols every ad decision in the running threshold experiment
// and decides by its variant's threshold; then purchases and identity merges flow through the same pipeline, and
// `npm run experiment -- report` counts exposures from fact_ad_decision and conversions from fact_transaction,
// resolving merged-away customers to their survivor.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiApp } from '../../processors/api/app.js';
import type { AdExperiment } from '../../processors/experiments/definitions.js';
import { loadExperiments } from '../../processors/experiments/load.js';
import { assignVariant } from '../../processors/experiments/logic.js';
import { experimentReport } from '../../processors/experiments/report.js';
import type { ConversionReport } from '../../processors/experiments/report-logic.js';
import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import type { Pipeline } from '../../processors/pipeline.js';
import { generateSample, type GeneratedSample } from '../../processors/producers/generate.js';
import type { PlatformEvent } from '../../processors/producers/platform-producer.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import { sampleBehavior, sampleTransaction } from '../fixtures/events.js';
import {
  contextPipeline,
  createTestContext,
  envOf,
  publishEvents,
  publishWithMerge,
  sampleEvents,
  type TestContext,
  waitFor,
} from '../helpers/context.js';
import { trainSyntheticModel } from '../helpers/model.js';

const KEY = 'experiments-test-key-0123456789';
const VERSION = '20260101T000000Z-experiments';
const DAY = 86_400_000;
/** The API's clock: after the sample's last event (2026-10-01) and inside the experiment's window. */
const T = Date.parse('2026-10-10T00:00:00Z');
const EXPERIMENT = 'threshold-test';

let dir = '';
let ctx: TestContext;
let pipeline: Pipeline;
let api: ApiApp;
let url = '';
let sample: GeneratedSample;
let experiment: AdExperiment;

const declaration = {
  experiments: [
    {
      name: EXPERIMENT,
      appliesTo: 'ad-decision',
      salt: 'experiments-integration-salt',
      variants: [
        { name: 'threshold-0.6', weight: 1, adThresholdHigh: 0.6 },
        { name: 'threshold-0.7', weight: 1, control: true, adThresholdHigh: 0.7 },
        { name: 'threshold-0.8', weight: 1, adThresholdHigh: 0.8 },
      ],
      metric: { kind: 'conversion_rate', windowDays: 7 },
      durationDays: 30,
      minimumDetectableEffect: { relative: 0.5 },
      start: '2026-10-01T00:00:00Z',
    },
  ],
};

interface Decision {
  decision_id: string;
  customer_id: string;
  ad_type: string;
  intent_score: number;
  predicted_category: string | null;
  experiment: string | null;
  variant: string | null;
}

async function decide(body: Record<string, string>): Promise<Decision> {
  const res = await fetch(`${url}/ad-decision`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Decision;
}

async function query<T>(sql: string): Promise<T[]> {
  return (await ctx.clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<T>();
}

/** Global ids with a score hash, and merged-away ids with their survivor, from Redis. */
async function customersInRedis(): Promise<{ scored: string[]; merged: [string, string][] }> {
  const scored: string[] = [];
  const merged: [string, string][] = [];
  for (const key of await pipeline.redis.keys(`${ctx.config.TOPIC_PREFIX}features:{*}`)) {
    const id = key.slice(key.indexOf('{') + 1, -1);
    const into = await pipeline.redis.hget(key, 'merged_into');
    if (into) merged.push([id, into]);
    else if ((await pipeline.redis.exists(`${ctx.config.TOPIC_PREFIX}score:{${id}}`)) === 1) scored.push(id);
  }
  return { scored: scored.sort(), merged };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'patternos-experiments-'));
  trainSyntheticModel(dir, VERSION);
  writeFileSync(join(dir, 'experiments.json'), JSON.stringify(declaration));
  experiment = loadExperiments(join(dir, 'experiments.json'))[0] as AdExperiment;
  ctx = await createTestContext({
    topics: true,
    warehouse: true,
    env: {
      MODEL_DIR: dir,
      SCORING_CLOCK: 'event',
      SCORING_RESCORE_EVERY_MS: String(10 * 365 * DAY),
      SINK_MAX_WAIT_MS: '200',
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      API_KEYS: KEY,
      EXPERIMENTS_PATH: join(dir, 'experiments.json'),
    },
  });
  pipeline = contextPipeline(ctx);
  await pipeline.start();
  sample = generateSample({ seed: 11, customers: 80, targetTransactions: 200, salt: 'experiments-test-salt' });
  await publishWithMerge(ctx, pipeline, sampleEvents(sample), 'experiments-test-salt');
  api = new ApiApp({
    config: loadConfig(ctx.env),
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
    log: createLogger('warn', { test: 'experiments' }),
    metrics: createMetrics(),
    now: () => T,
  });
  url = await api.start();
}, 600_000);

afterAll(async () => {
  await api.stop();
  await pipeline.stop();
  await ctx.close();
  rmSync(dir, { recursive: true, force: true });
});

const thresholdOf = (variant: string | null) =>
  experiment.variants.find((v) => v.name === variant)?.adThresholdHigh ?? Number.NaN;

describe('A/B experiments', () => {
  const decisions: Decision[] = [];

  it("enrols every ad decision in its customer's variant and decides by that variant's threshold", async () => {
    const { scored, merged } = await customersInRedis();
    expect(scored.length).toBeGreaterThan(30);
    let changedByVariant = 0;
    for (const id of scored) {
      const d = await decide({ customer_id: id, placement: 'home' });
      expect(d.experiment).toBe(EXPERIMENT);
      expect(d.variant).toBe(assignVariant(experiment, id).name);
      const high = thresholdOf(d.variant);
      const wanted = d.intent_score >= high ? 'PRODUCT' : d.intent_score >= 0.4 ? 'CATEGORY' : 'BRAND';
      expect(d.ad_type, `${id} score ${d.intent_score} in ${d.variant}`).toBe(d.predicted_category ? wanted : 'BRAND');
      const byDefault = d.intent_score >= 0.7 ? 'PRODUCT' : d.intent_score >= 0.4 ? 'CATEGORY' : 'BRAND';
      if (d.predicted_category && wanted !== byDefault) changedByVariant++;
      decisions.push(d);
    }
    // The variants are not labels only: some customers got another ad than the 0.7 rule would have shown them.
    expect(changedByVariant).toBeGreaterThan(0);
    // Every variant got customers.
    expect(new Set(decisions.map((d) => d.variant))).toEqual(new Set(experiment.variants.map((v) => v.name)));

    // A merged-away id is decided for, and assigned as, its survivor.
    const [gone, survivor] = merged[0] as [string, string];
    const d = await decide({ customer_id: gone });
    expect(d.customer_id).toBe(survivor);
    expect(d.variant).toBe(assignVariant(experiment, survivor).name);
    decisions.push(d);
    // Repeat decisions are exposures of the same person, not new customers.
    for (const id of scored.slice(0, 5)) decisions.push(await decide({ customer_id: id }));
  });

  it('reports exposures, conversions and merges from the warehouse, as the CLI prints them', async () => {
    const variantOf = new Map(decisions.map((d) => [d.customer_id, d.variant as string]));
    const exposed = [...variantOf.keys()].filter((id) => id.startsWith('c-')).sort();
    // Platform identities of each exposed customer, and the email hash one of them carries (for a merge).
    const identityOf = new Map<string, string>();
    const emailOf = new Map<string, string>();
    const emailByKey = new Map<string, string>();
    for (const e of [...sample.transactions, ...sample.behaviors]) {
      if (e.platformCustomerId && e.identity?.emailSha256) {
        emailByKey.set(`${e.platform}:${e.platformCustomerId}`, e.identity.emailSha256);
      }
    }
    for (const id of exposed) {
      const members = await pipeline.graph.members(id);
      const key = members.find((k) => !k.includes(':anon:'));
      if (key) identityOf.set(id, key);
      const email = members.map((k) => emailByKey.get(k)).find((h) => h !== undefined);
      if (email) emailOf.set(id, email);
    }
    const withEmail = exposed.filter((id) => identityOf.has(id) && emailOf.has(id));
    // Two merges after exposure: one between customers of different variants (the person saw both arms: excluded),
    // one between customers of the same variant (one person, counted under the survivor).
    const crossPair = (() => {
      for (const x of withEmail) {
        const y = withEmail.find((c) => c !== x && variantOf.get(c) !== variantOf.get(x));
        if (y) return [x, y] as const;
      }
      throw new Error('no pair across variants');
    })();
    const samePair = (() => {
      for (const x of withEmail.filter((c) => !crossPair.includes(c))) {
        const y = withEmail.find((c) => c !== x && !crossPair.includes(c) && variantOf.get(c) === variantOf.get(x));
        if (y) return [x, y] as const;
      }
      throw new Error('no pair within a variant');
    })();
    const others = exposed.filter((id) => identityOf.has(id) && !crossPair.includes(id) && !samePair.includes(id));
    const converters = others.filter((_, i) => i % 3 === 0);
    const late = others.filter((_, i) => i % 3 === 1); // buys after the 7-day window: no conversion
    const key = (id: string) => {
      const k = identityOf.get(id) as string;
      const at = k.indexOf(':');
      return { platform: k.slice(0, at), platformCustomerId: k.slice(at + 1) };
    };
    const purchase = (id: string, at: number): PlatformEvent => ({
      kind: 'transaction',
      event: sampleTransaction({ ...key(id), eventTimeMs: at, identity: null, sessionId: null, deviceId: null }),
    });
    // x's identity logs in with y's email: an exact email match links it to y, which merges the two customers.
    const mergeOf = ([x, y]: readonly [string, string]): PlatformEvent => ({
      kind: 'behavior',
      event: sampleBehavior({
        ...key(x),
        type: 'IDENTIFY',
        eventTimeMs: T + 3_600_000,
        sessionId: null,
        deviceId: null,
        productId: null,
        category: null,
        priceMinor: null,
        currency: null,
        identity: { ...NO_ATTRIBUTES, emailSha256: emailOf.get(y) as string },
      }),
    });
    await publishEvents(ctx, [
      ...converters.map((id) => purchase(id, T + 2 * DAY)),
      ...late.map((id) => purchase(id, T + 8 * DAY)),
      purchase(samePair[0], T + 2 * DAY), // bought under one id of the pair: converts the merged person
      mergeOf(crossPair),
      mergeOf(samePair),
    ]);
    await pipeline.waitUntilCaughtUp(ctx.admin, 240_000);
    const mergedIds = await waitFor(
      () =>
        query<{ merged_id: string; survivor_id: string }>('SELECT merged_id, survivor_id FROM identity_merge FINAL'),
      (rows) =>
        [crossPair, samePair].every(([x, y]) =>
          rows.some((r) => (r.merged_id === x && r.survivor_id === y) || (r.merged_id === y && r.survivor_id === x)),
        ),
      { what: 'both merges in identity_merge' },
    );
    await waitFor(
      () => query<{ n: string }>(`SELECT count() AS n FROM fact_ad_decision FINAL WHERE experiment = '${EXPERIMENT}'`),
      (r) => Number(r[0]?.n) === decisions.length,
      { what: 'every exposure in fact_ad_decision' },
    );
    await waitFor(
      () =>
        query<{ n: string }>(
          `SELECT count() AS n FROM fact_transaction FINAL WHERE event_time_ms >= ${T} AND kind = 'PURCHASE'`,
        ),
      (r) => Number(r[0]?.n) === converters.length + late.length + 1,
      { what: 'the purchases in fact_transaction' },
    );
    const samePairSurvivor = mergedIds.find((r) => samePair.includes(r.merged_id))?.survivor_id as string;
    const samePairMerged = samePair.find((id) => id !== samePairSurvivor) as string;

    // Expected, from what this test did: each exposed customer once in its variant, except both of the crossed pair
    // (excluded) and the merged-away one of the same-variant pair (counted as its survivor).
    const expected = new Map(experiment.variants.map((v) => [v.name, { exposures: 0, customers: 0, conversions: 0 }]));
    for (const d of decisions) {
      if (crossPair.includes(d.customer_id)) continue;
      const counts = expected.get(d.variant as string)!;
      counts.exposures++;
    }
    for (const [id, variant] of variantOf) {
      if (crossPair.includes(id) || id === samePairMerged) continue;
      const counts = expected.get(variant)!;
      counts.customers++;
      if (converters.includes(id) || id === samePairSurvivor) counts.conversions++;
    }
    const asOf = T + 30 * DAY;
    const report = (await experimentReport(ctx.clickhouse, [experiment], EXPERIMENT, asOf)) as ConversionReport;
    expect(report.crossed).toBe(1);
    expect(report.resolved_through_merges).toBe(decisions.filter((d) => d.customer_id === samePairMerged).length);
    expect(report.first_exposure).toBe(new Date(T).toISOString());
    for (const v of report.variants) {
      const e = expected.get(v.variant)!;
      expect({
        variant: v.variant,
        exposures: v.exposures,
        customers: v.customers,
        conversions: v.conversions,
      }).toEqual({ variant: v.variant, ...e });
      expect(v.rate).toBeCloseTo(e.conversions / e.customers, 12);
      expect(v.window_open).toBe(0);
    }
    expect(report.variants.reduce((n, v) => n + v.conversions, 0)).toBe(converters.length + 1);
    // Two or three dozen customers per arm cannot show a 50 % lift: no winner, and the sample still needed.
    expect(report.winner).toBeNull();
    expect(report.power?.still_needed).toBeGreaterThan(0);

    // As of a time before the first decision, nothing was exposed yet.
    const before = (await experimentReport(ctx.clickhouse, [experiment], EXPERIMENT, T - 1)) as ConversionReport;
    expect(before.first_exposure).toBeNull();
    expect(before.variants.map((v) => v.exposures + v.customers)).toEqual([0, 0, 0]);

    const cli = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'processors/experiments/cli.ts', 'report', EXPERIMENT, '--as-of', String(asOf)],
      { encoding: 'utf8', env: { ...process.env, ...envOf(ctx), EXPERIMENTS_PATH: join(dir, 'experiments.json') } },
    );
    expect(cli.status, cli.stderr).toBe(0);
    const lines = cli.stdout.trim().split('\n');
    expect(JSON.parse(lines.at(-1)!)).toEqual(JSON.parse(JSON.stringify(report)));
    expect(lines.join('\n')).toMatch(/^threshold-0\.7 +yes /m);
    expect(lines.at(-2)).toMatch(/^No winner yet .* Sample still needed: [\d,]+ more customers/);
  });
});
