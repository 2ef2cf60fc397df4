// The three dashboards in a real headless browser (Debian's chromium through puppeteer-core): a generated sample goes
// through the whole pipeline (resolver, features with a trained model, warehouse sink), the online monitoring job
// judges the scores, then every page served by the API must load, draw data in every chart and log no error, and the
// data routes must carry no customer id.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiApp } from '../../processors/api/app.js';
import { checkDashboards, ensureChromium, launchBrowser, problemsOf } from '../../processors/dashboards/browser.js';
import { DASHBOARD_PAGES } from '../../processors/dashboards/pages.js';
import { runModelMonitoring } from '../../processors/monitoring/job.js';
import type { Pipeline } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import {
  contextPipeline,
  createTestContext,
  publishEvents,
  sampleEvents,
  type TestContext,
  waitFor,
} from '../helpers/context.js';
import { trainSyntheticModel } from '../helpers/model.js';

const VERSION = '20260101T000000Z-dash';
let models = '';
let ctx: TestContext;
let pipeline: Pipeline | undefined;
let api: ApiApp | undefined;
let browser: Browser | undefined;
let url = '';
let shots = '';

const count = async (sql: string) =>
  Number((await (await ctx.clickhouse.query({ query: sql, format: 'JSONEachRow' })).json<{ n: string }>())[0]?.n);

beforeAll(async () => {
  models = mkdtempSync(join(tmpdir(), 'patternos-dashboards-'));
  shots = join(models, 'shots');
  trainSyntheticModel(models, VERSION);
  writeFileSync(join(models, 'experiments.json'), JSON.stringify({ experiments: [] }));
  ctx = await createTestContext({
    topics: true,
    warehouse: true,
    env: {
      MODEL_DIR: models,
      SCORING_CLOCK: 'event',
      SINK_MAX_WAIT_MS: '200',
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      EXPERIMENTS_PATH: join(models, 'experiments.json'),
    },
  });
  pipeline = contextPipeline(ctx);
  await pipeline.start();
  const sample = generateSample({ seed: 12, customers: 120, targetTransactions: 400, salt: 'dashboards-test-salt' });
  // The sample goes in two parts, as time passes live. Sent at once, a replay folds each customer's whole history in
  // one flush, so every score's feature time is the customer's last event: no customer who buys in a judged day's
  // week then holds a score from before that day, and no day can be judged. Split two weeks before the last purchase,
  // the first part's scores are what its buyers hold when the last week's days start.
  const events = sampleEvents(sample);
  const lastPurchase = Math.max(...sample.transactions.filter((t) => t.kind === 'PURCHASE').map((t) => t.eventTimeMs));
  const split = lastPurchase - 14 * 86_400_000;
  await publishEvents(
    ctx,
    events.filter((e) => e.event.eventTimeMs < split),
  );
  await pipeline.waitUntilCaughtUp(ctx.admin, 300_000);
  await publishEvents(
    ctx,
    events.filter((e) => e.event.eventTimeMs >= split),
  );
  await pipeline.waitUntilCaughtUp(ctx.admin, 300_000);
  await waitFor(
    () => count('SELECT uniqExact(global_customer_id) AS n FROM intent_score'),
    (n) => n > 50,
    { what: 'scores in the warehouse', timeoutMs: 120_000 },
  );
  // Caught up is a moment, not a promise that every part's last output is in the warehouse (a flush after the check
  // publishes scores the sink inserts a little later; on a loaded CI machine that is seconds): the job runs until it
  // can judge a day, which it only inserts rows for when it does.
  await waitFor(
    async () => (await runModelMonitoring(ctx.clickhouse, { days: 30 })).length,
    (n) => n > 0,
    { what: 'a day the monitoring job can judge (scores held at its start, purchases after it)', timeoutMs: 120_000 },
  );
  api = new ApiApp({
    config: loadConfig({ ...ctx.env }),
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
    log: createLogger('warn', { test: 'dashboards' }),
    metrics: createMetrics(),
    clickhouse: ctx.clickhouse,
  });
  url = await api.start();
  browser = await launchBrowser(await ensureChromium());
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await api?.stop();
  await pipeline?.stop();
  await ctx?.close();
  rmSync(models, { recursive: true, force: true });
});

describe('dashboards', () => {
  it('every page loads in chromium, every chart has data, nothing is logged as an error', async () => {
    const checks = await checkDashboards(browser!, url, { screenshotDir: shots });
    expect(checks.map((c) => c.page.slug)).toEqual(DASHBOARD_PAGES.map((p) => p.slug));
    for (const check of checks) {
      expect(problemsOf(check), check.page.slug).toEqual([]);
      expect(check.charts.map((c) => c.id)).toEqual(check.page.charts.map((c) => c.id));
      // Headline numbers are filled in from the data, not left as placeholders.
      expect(
        Object.values(check.kpis).every((v) => v !== '–' && v !== ''),
        JSON.stringify(check.kpis),
      ).toBe(true);
      expect(check.screenshot).toBeDefined();
    }
    const overview = checks.find((c) => c.page.slug === 'overview')!;
    const customers = await count(`SELECT count() AS n FROM dim_customer FINAL WHERE merged_into = ''`);
    expect(overview.kpis['customers']).toBe(customers.toLocaleString('en-US'));
    const model = checks.find((c) => c.page.slug === 'model')!;
    expect(model.kpis['model_version']).toBe(VERSION);
  });

  it('data routes answer aggregates only: no customer or platform customer id in any of them', async () => {
    const ids = (
      await (
        await ctx.clickhouse.query({
          query: 'SELECT DISTINCT global_customer_id AS id FROM dim_customer_identity',
          format: 'JSONEachRow',
        })
      ).json<{ id: string }>()
    ).map((r) => r.id);
    expect(ids.length).toBeGreaterThan(50);
    for (const page of DASHBOARD_PAGES) {
      const res = await fetch(`${url}/dashboards/data/${page.slug}.json`);
      expect(res.status).toBe(200);
      const text = await res.text();
      const leaked = ids.filter((id) => text.includes(`"${id}"`));
      expect(leaked, page.slug).toEqual([]);
    }
    // An unknown page is a 404 in the API's error shape; the page itself sets a restrictive CSP.
    expect((await fetch(`${url}/dashboards/nope`)).status).toBe(404);
    expect((await fetch(`${url}/dashboards/overview`)).headers.get('content-security-policy')).toContain(
      "script-src 'self'",
    );
  });

  it('Prometheus gets the serving model card as model_feature_importance', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(
      new RegExp(`^model_feature_importance\\{model_version="${VERSION}",feature="[a-z0-9_]+"\\} 0\\.`, 'm'),
    );
  });
});
