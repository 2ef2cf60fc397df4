/**
 * The dashboards as a fastify plugin of the API process:
 *
 *   GET /dashboards                    → 302 to the overview
 *   GET /dashboards/<slug>             → the page (HTML; overview, cross-platform, model)
 *   GET /dashboards/data/<slug>.json   → its data (aggregates only), 503 when the warehouse or model dir fails
 *   GET /dashboards/assets/<file>      → the page script and style, and ECharts from node_modules
 *
 * No API key: the pages are for operators' browsers, which cannot send a bearer header on navigation, and every figure
 * is an aggregate over customers (counts, shares, model metrics), never a customer id or a person's score. Deployments
 * that expose the API port beyond operators turn them off with DASHBOARDS_ENABLED=false.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../runtime/log.js';
import { DashboardData, readModelCard } from './data.js';
import { DASHBOARD_PAGES, pageOf, type DashboardPage } from './pages.js';

export interface DashboardsOptions {
  readonly clickhouse: ClickHouseClient;
  readonly modelDir: string;
  readonly registry: Registry;
  readonly log: Logger;
  /** How often the pages refetch their data. @default 30_000 */
  readonly refreshMs?: number;
  /** How long the server reuses a page's data. @default 10_000 */
  readonly cacheMs?: number;
}

const require = createRequire(import.meta.url);
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

/** Static files: name → [path, content type]. ECharts is the package's own minified browser build, pinned in package.json. */
const ASSETS: Readonly<Record<string, readonly [string, string]>> = {
  'dashboards.js': [`${PUBLIC_DIR}dashboards.js`, 'text/javascript; charset=utf-8'],
  'dashboards.css': [`${PUBLIC_DIR}dashboards.css`, 'text/css; charset=utf-8'],
  'echarts.min.js': [require.resolve('echarts/dist/echarts.min.js'), 'text/javascript; charset=utf-8'],
};

// Scripts and styles from this origin only; ECharts sets element styles from script (allowed), the page has no inline
// script. The favicon is an empty data: URL so the browser does not ask for /favicon.ico.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch);

/** The page's HTML: navigation, headline numbers and one container per chart; the script fills them in. */
export function renderPage(page: DashboardPage, refreshMs: number): string {
  const nav = DASHBOARD_PAGES.map(
    (p) =>
      `<a href="/dashboards/${p.slug}"${p.slug === page.slug ? ' aria-current="page"' : ''}>${escapeHtml(p.title)}</a>`,
  ).join('');
  const kpis = page.kpis
    .map(
      (k) =>
        `<div class="kpi"><div class="kpi-value" data-kpi="${k.key}">–</div><div class="kpi-label">${escapeHtml(k.label)}</div></div>`,
    )
    .join('');
  const charts = page.charts
    .map(
      (c) =>
        `<section class="card${c.wide ? ' wide' : ''}"><h2>${escapeHtml(c.title)}</h2><p class="note">${escapeHtml(c.note)}</p>` +
        `<div class="chart" data-chart="${c.id}"></div></section>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)} · PatternOS</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboards/assets/dashboards.css">
<script src="/dashboards/assets/echarts.min.js" defer></script>
<script src="/dashboards/assets/dashboards.js" defer></script>
</head>
<body data-page="${page.slug}" data-refresh-ms="${refreshMs}" data-state="loading">
<header><div class="brand">PatternOS</div><nav>${nav}</nav></header>
<main>
<div class="title"><h1>${escapeHtml(page.title)}</h1><p>${escapeHtml(page.summary)}</p>
<p class="status" id="status">Loading…</p></div>
<div class="kpis">${kpis}</div>
<div class="grid">${charts}</div>
</main>
</body>
</html>
`;
}

function registerImportance(options: DashboardsOptions): void {
  new Gauge({
    name: 'model_feature_importance',
    help: "Share of total gain of each feature in the serving model (its model card's feature_importance_gain)",
    labelNames: ['model_version', 'feature'],
    registers: [options.registry],
    async collect() {
      this.reset();
      try {
        const card = await readModelCard(options.modelDir);
        for (const f of card?.featureImportance ?? []) {
          this.set({ model_version: card?.version ?? '', feature: f.name }, f.gainShare);
        }
      } catch (err) {
        options.log.warn('model card unreadable for model_feature_importance', { error: String(err) });
      }
    },
  });
}

/** Registers the routes (and the model_feature_importance gauge on `registry`). */
// eslint-disable-next-line @typescript-eslint/require-await -- fastify treats a plugin that returns a promise as done when it settles
export const dashboards: FastifyPluginAsync<DashboardsOptions> = async (app: FastifyInstance, options) => {
  const data = new DashboardData({
    clickhouse: options.clickhouse,
    modelDir: options.modelDir,
    ...(options.cacheMs !== undefined ? { cacheMs: options.cacheMs } : {}),
  });
  const refreshMs = options.refreshMs ?? 30_000;
  const html = new Map(DASHBOARD_PAGES.map((p) => [p.slug, renderPage(p, refreshMs)]));

  // What Grafana's Model Performance dashboard reads from Prometheus (a file in MODEL_DIR is out of its reach).
  if (!options.registry.getSingleMetric('model_feature_importance')) registerImportance(options);

  // Errors of these routes answer 503 (a dependency) or 404, never the API's generic 500.
  app.setErrorHandler((err, req, reply) => {
    options.log.warn('dashboard data unavailable', { route: req.routeOptions.url, error: String(err) });
    return reply.code(503).send({ error: 'unavailable', message: `dashboard data unavailable: ${String(err)}` });
  });

  app.get('/dashboards', { schema: { hide: true } }, (_req, reply) => reply.redirect('/dashboards/overview'));

  app.get<{ Params: { slug: string } }>('/dashboards/:slug', { schema: { hide: true } }, (req, reply) => {
    const page = html.get(req.params.slug as DashboardPage['slug']);
    if (!page) return reply.code(404).send({ error: 'not_found', message: `no dashboard ${req.params.slug}` });
    return reply
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-cache')
      .type('text/html; charset=utf-8')
      .send(page);
  });

  app.get<{ Params: { file: string } }>('/dashboards/data/:file', { schema: { hide: true } }, async (req, reply) => {
    const page = pageOf(req.params.file.replace(/\.json$/, ''));
    if (!page || !req.params.file.endsWith('.json')) {
      return reply.code(404).send({ error: 'not_found', message: `no dashboard data ${req.params.file}` });
    }
    return reply.header('cache-control', 'no-store').send(await data.get(page.slug));
  });

  app.get<{ Params: { file: string } }>('/dashboards/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    const asset = ASSETS[req.params.file];
    if (!asset) return reply.code(404).send({ error: 'not_found', message: `no asset ${req.params.file}` });
    const [path, type] = asset;
    return reply
      .header('cache-control', 'public, max-age=300')
      .header('x-content-type-options', 'nosniff')
      .type(type)
      .send(await readFile(path));
  });
};
