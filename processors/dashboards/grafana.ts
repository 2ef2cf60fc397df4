/**
 * The same three dashboards for Grafana (docker-compose's `grafana` service), generated as JSON so their SQL is the
 * warehouse's named queries verbatim: `npm run dashboards -- grafana` rewrites grafana/dashboards/*.json, and a unit
 * test fails when the files differ from what this module generates.
 *
 * Panels read ClickHouse through the grafana-clickhouse-datasource plugin (uid patternos-clickhouse) and Prometheus
 * (uid patternos-prometheus): the gauges the alerts read (model_auc, high_intent_users,
 * cross_platform_customer_ratio) and the serving model's feature importance (model_feature_importance, from the
 * API). Grafana has no sankey panel of its own, so the journeys are a table there.
 */
import { readNamedQuery } from '../../clickhouse/queries.js';
import { AUC_ALERT_THRESHOLD } from './logic.js';
import { DASHBOARD_PAGES, type DashboardPage } from './pages.js';

export const GRAFANA_DIR = new URL('./grafana/', import.meta.url);
export const CLICKHOUSE_UID = 'patternos-clickhouse';
export const PROMETHEUS_UID = 'patternos-prometheus';

type Json = Record<string, unknown>;
const clickhouse = { type: 'grafana-clickhouse-datasource', uid: CLICKHOUSE_UID };
const prometheus = { type: 'prometheus', uid: PROMETHEUS_UID };

/** A ClickHouse target: a named query's SQL as is, or SQL of a panel's own (time series need a time column). */
function sql(rawSql: string, queryType: 'table' | 'timeSeries' = 'table'): Json {
  return {
    refId: 'A',
    datasource: clickhouse,
    editorType: 'sql',
    queryType,
    format: queryType === 'table' ? 1 : 0,
    rawSql,
  };
}
const named = (name: string) => sql(readNamedQuery(name).sql);
const promql = (expr: string, legendFormat: string, instant = false): Json => ({
  refId: 'A',
  datasource: prometheus,
  expr,
  legendFormat,
  instant,
  range: !instant,
});

interface PanelSpec {
  readonly title: string;
  readonly description: string;
  readonly type: string;
  readonly target: Json;
  readonly w: number;
  readonly h: number;
  readonly options?: Json;
  readonly fieldConfig?: Json;
  readonly transformations?: Json[];
}

/** A headline number: `fields` picks the result column (a regex; '' = every numeric one). */
const stat = (title: string, description: string, target: Json, fields = '', unit = 'none'): PanelSpec => ({
  title,
  description,
  type: 'stat',
  target,
  w: 6,
  h: 4,
  options: {
    reduceOptions: { calcs: ['lastNotNull'], fields, values: false },
    colorMode: 'none',
    graphMode: 'none',
    textMode: 'value_and_name',
  },
  fieldConfig: { defaults: { unit }, overrides: [] },
});

const bars = (
  title: string,
  description: string,
  target: Json,
  options: Json = {},
  extra: Partial<PanelSpec> = {},
) => ({
  title,
  description,
  type: 'barchart',
  target,
  w: 12,
  h: 9,
  options: { orientation: 'auto', showValue: 'auto', legend: { displayMode: 'list', placement: 'bottom' }, ...options },
  ...extra,
});

const table = (title: string, description: string, target: Json): PanelSpec => ({
  title,
  description,
  type: 'table',
  target,
  w: 12,
  h: 9,
  options: { showHeader: true, cellHeight: 'sm' },
  fieldConfig: {
    defaults: {},
    overrides: [
      {
        matcher: { id: 'byName', options: 'customers' },
        properties: [{ id: 'custom.cellOptions', value: { type: 'gauge', mode: 'basic' } }],
      },
    ],
  },
});

/** Panels per page, in reading order (laid out left to right, 24 columns wide). */
const PANELS: Record<DashboardPage['slug'], PanelSpec[]> = {
  overview: [
    stat(
      'Customers tracked',
      'Active global customers (customers-tracked)',
      named('customers-tracked'),
      '/^customers$/',
    ),
    stat(
      'Customers scored',
      'Active customers holding a score (customers-tracked)',
      named('customers-tracked'),
      '/^scored_customers$/',
    ),
    stat('High intent now', 'high_intent_users, from npm run start:monitor', promql('high_intent_users', 'HIGH')),
    stat(
      'Platforms',
      'Platforms with linked identities (customers-tracked)',
      named('customers-tracked'),
      '/^platforms$/',
    ),
    {
      title: 'Intent level distribution',
      description: "Customers by their latest score's level (intent-level-distribution)",
      type: 'piechart',
      target: named('intent-level-distribution'),
      w: 12,
      h: 9,
      options: {
        pieType: 'donut',
        reduceOptions: { calcs: ['lastNotNull'], fields: '/^customers$/', values: true },
        displayLabels: ['name', 'value'],
        legend: { displayMode: 'list', placement: 'right' },
      },
    },
    bars(
      'High-intent customers by platform',
      'A customer on two platforms counts on each (high-intent-by-platform)',
      named('high-intent-by-platform'),
    ),
    bars(
      'Top categories by intent',
      'Predicted category of the latest score: customers and HIGH-intent customers (top-categories-by-intent)',
      named('top-categories-by-intent'),
      { xField: 'predicted_category' },
      {
        w: 24,
        transformations: [{ id: 'organize', options: { excludeByName: { avg_intent_score: true } } }],
      },
    ),
  ],
  'cross-platform': [
    stat(
      'Multi-platform customers',
      'Active customers on two or more platforms (cross-platform-share)',
      named('cross-platform-share'),
      '/^cross_platform_customers$/',
    ),
    {
      title: 'Cross-platform customer rate',
      description: 'cross_platform_customer_ratio over time; the CrossPlatformRateLow alert fires below 25 %',
      type: 'timeseries',
      target: promql('cross_platform_customer_ratio', 'share'),
      w: 18,
      h: 4,
      fieldConfig: {
        defaults: {
          unit: 'percentunit',
          min: 0,
          max: 1,
          thresholds: {
            mode: 'absolute',
            steps: [
              { color: 'red', value: null },
              { color: 'green', value: 0.25 },
            ],
          },
          custom: { thresholdsStyle: { mode: 'line' } },
        },
        overrides: [],
      },
    },
    bars(
      'Platforms per customer',
      'Active customers by platforms used (platforms-per-customer)',
      named('platforms-per-customer'),
      { xField: 'platforms_used' },
      {
        transformations: [
          {
            id: 'convertFieldType',
            options: { conversions: [{ targetField: 'platforms_used', destinationType: 'string' }] },
          },
        ],
      },
    ),
    table('Platform overlap', 'Customers on both platforms of a pair (platform-overlap)', named('platform-overlap')),
    bars(
      'Category consistency across platforms',
      'Multi-platform customers interested in a category on two or more of their platforms, or on one (category-consistency)',
      named('category-consistency'),
      { xField: 'category', stacking: 'normal', orientation: 'horizontal' },
      {
        transformations: [{ id: 'organize', options: { excludeByName: { customers: true, consistency: true } } }],
      },
    ),
    table(
      'Customer journeys, platform to platform',
      'Step 1 = first platform to second, by when each was first linked (platform-journeys; Grafana has no sankey panel)',
      named('platform-journeys'),
    ),
  ],
  model: [
    {
      title: 'AUC over time',
      description:
        'Online ROC-AUC per day and model version (model_monitoring); the ModelAucLow alert fires below 0.75',
      type: 'timeseries',
      target: sql(
        `SELECT toDateTime(day) AS time, model_version, argMax(roc_auc, computed_at_ms) AS roc_auc
FROM model_monitoring
GROUP BY day, model_version
ORDER BY time, model_version`,
        'timeSeries',
      ),
      w: 12,
      h: 9,
      fieldConfig: {
        defaults: {
          min: 0,
          max: 1,
          thresholds: {
            mode: 'absolute',
            steps: [
              { color: 'red', value: null },
              { color: 'green', value: AUC_ALERT_THRESHOLD },
            ],
          },
          custom: { thresholdsStyle: { mode: 'line' }, spanNulls: false },
        },
        overrides: [],
      },
    },
    {
      title: 'model_auc (what the alert reads)',
      description: 'The gauge npm run start:monitor serves: ROC-AUC of each version on its newest monitored day',
      type: 'timeseries',
      target: promql('model_auc', '{{model_version}}'),
      w: 12,
      h: 9,
      fieldConfig: {
        defaults: {
          min: 0,
          max: 1,
          thresholds: {
            mode: 'absolute',
            steps: [
              { color: 'red', value: null },
              { color: 'green', value: AUC_ALERT_THRESHOLD },
            ],
          },
          custom: { thresholdsStyle: { mode: 'line' } },
        },
        overrides: [],
      },
    },
    bars(
      'Precision and recall by threshold',
      'Newest monitored day of each model version: precision and recall at 0.4 (MEDIUM) and 0.7 (HIGH)',
      sql(`SELECT
    model_version,
    argMax(precision_at_0_4, (day, computed_at_ms)) AS precision_at_0_4,
    argMax(recall_at_0_4, (day, computed_at_ms)) AS recall_at_0_4,
    argMax(precision_at_0_7, (day, computed_at_ms)) AS precision_at_0_7,
    argMax(recall_at_0_7, (day, computed_at_ms)) AS recall_at_0_7
FROM model_monitoring
GROUP BY model_version
ORDER BY model_version`),
      { xField: 'model_version' },
      { fieldConfig: { defaults: { min: 0, max: 1 }, overrides: [] } },
    ),
    {
      title: 'Calibration curve',
      description:
        'Newest monitored day: observed 7-day purchase rate per decile of purchase_probability_7d (perfect: the diagonal)',
      type: 'xychart',
      // String functions rather than JSONExtract, which ClickHouse 18.16 does not have.
      target: sql(String.raw`SELECT toFloat64(parts[1]) AS predicted, toFloat64(parts[2]) AS observed
FROM
(
    SELECT splitByChar(',', replaceRegexpAll(bin, '[\\[\\] ]', '')) AS parts
    FROM
    (
        SELECT arrayJoin(extractAll(newest, '\\[[^\\[\\]]+\\]')) AS bin
        FROM (SELECT argMax(calibration, (day, computed_at_ms)) AS newest FROM model_monitoring)
    )
)
WHERE toFloat64(parts[3]) > 0
ORDER BY predicted`),
      w: 12,
      h: 9,
      options: {
        mapping: 'manual',
        series: [
          {
            x: { matcher: { id: 'byName', options: 'predicted' } },
            y: { matcher: { id: 'byName', options: 'observed' } },
          },
        ],
        legend: { displayMode: 'list', placement: 'bottom' },
      },
      fieldConfig: { defaults: { min: 0, max: 1, custom: { show: 'points+lines' } }, overrides: [] },
    },
    {
      title: 'Feature importance',
      description:
        'Share of total gain in the serving model (its model card, served by the API as model_feature_importance)',
      type: 'bargauge',
      target: promql('sort_desc(topk(15, model_feature_importance))', '{{feature}}', true),
      w: 12,
      h: 9,
      options: {
        orientation: 'horizontal',
        displayMode: 'basic',
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        showUnfilled: true,
      },
      fieldConfig: { defaults: { unit: 'percentunit', min: 0 }, overrides: [] },
    },
  ],
};

/** Lays panels out in rows of 24 columns, in order. */
function layout(specs: readonly PanelSpec[]): Json[] {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  return specs.map((spec, i) => {
    if (x + spec.w > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const panel: Json = {
      id: i + 1,
      type: spec.type,
      title: spec.title,
      description: spec.description,
      datasource: spec.target['datasource'],
      gridPos: { x, y, w: spec.w, h: spec.h },
      targets: [spec.target],
      options: spec.options ?? {},
      fieldConfig: spec.fieldConfig ?? { defaults: {}, overrides: [] },
      ...(spec.transformations ? { transformations: spec.transformations } : {}),
    };
    x += spec.w;
    rowHeight = Math.max(rowHeight, spec.h);
    return panel;
  });
}

/** Every dashboard as Grafana JSON (file name → model), titles and order as the API's pages. */
export function grafanaDashboards(): Map<string, Json> {
  const links = DASHBOARD_PAGES.map((p) => ({
    type: 'link',
    title: p.title,
    url: `/d/patternos-${p.slug}`,
    targetBlank: false,
  }));
  return new Map(
    DASHBOARD_PAGES.map((page) => [
      `patternos-${page.slug}.json`,
      {
        uid: `patternos-${page.slug}`,
        title: `PatternOS · ${page.title}`,
        description: page.summary,
        tags: ['patternos'],
        editable: true,
        schemaVersion: 39,
        version: 1,
        refresh: '30s',
        time: { from: page.slug === 'model' ? 'now-30d' : 'now-6h', to: 'now' },
        timezone: 'utc',
        links,
        templating: { list: [] },
        annotations: { list: [] },
        panels: layout(PANELS[page.slug]),
      },
    ]),
  );
}

/** The JSON text of one dashboard file, as written to disk (2-space indent, final newline). */
export const grafanaFileText = (model: Json) => `${JSON.stringify(model, null, 2)}\n`;
