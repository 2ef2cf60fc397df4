// The dashboards' shaping of named-query rows and the model card: what each chart receives, and that nothing
// per-person (a customer id) can reach a page.
import { describe, expect, it } from 'vitest';
import { crossPlatformData, modelData, overviewData, type ModelCard } from '../../processors/dashboards/logic.js';
import { DASHBOARD_PAGES } from '../../processors/dashboards/pages.js';
import { renderPage } from '../../processors/dashboards/plugin.js';

const card: ModelCard = {
  version: 'v2',
  algorithm: 'lightgbm',
  createdAt: '2026-12-01T00:00:00Z',
  test: {
    rocAuc: 0.76,
    prAuc: 0.4,
    atThresholds: [
      { threshold: 0.4, precision: 0.35, recall: 0.54 },
      { threshold: 0.7, precision: null, recall: 0 },
    ],
  },
  calibration: [{ meanPredicted: 0.05, observedRate: 0.04, count: 100 }],
  featureImportance: Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, gainShare: i / 190 })),
};

const monitored = (day: string, version: string, auc: number) => ({
  day,
  model_version: version,
  day_roc_auc: auc,
  day_pr_auc: auc / 2,
  day_precision_at_0_4: 0.3,
  day_recall_at_0_4: 0.6,
  day_precision_at_0_7: 0.5,
  day_recall_at_0_7: 0.2,
  day_calibration: '[[0.1,0.12,40],[0.5,0.4,10],[0.9,0,0]]',
});

describe('dashboard data', () => {
  it('overview: the three levels in order even when one is missing, categories capped', () => {
    const data = overviewData({
      tracked: [{ customers: '120', scored_customers: 100, platforms: 3 }],
      levels: [
        { intent_level: 'LOW', customers: 70 },
        { intent_level: 'HIGH', customers: 30 },
      ],
      highByPlatform: [{ platform_id: 'shop', high_intent_customers: 30 }],
      categories: Array.from({ length: 20 }, (_, i) => ({
        predicted_category: i === 0 ? '' : `c${i}`,
        customers: 20 - i,
        avg_intent_score: 0.5,
        high_intent_customers: 1,
      })),
    });
    expect(data.kpis).toEqual({ customers: 120, scored_customers: 100, high_intent_customers: 30, platforms: 3 });
    expect(data.intent_levels).toEqual([
      { level: 'HIGH', customers: 30 },
      { level: 'MEDIUM', customers: 0 },
      { level: 'LOW', customers: 70 },
    ]);
    expect(data.top_categories).toHaveLength(12);
    expect(data.top_categories[0]?.category).toBe('(none)');
  });

  it('cross-platform: a symmetric overlap matrix and journeys whose nodes carry the step, so flows never loop', () => {
    const data = crossPlatformData({
      share: [{ customers: 10, cross_platform_customers: 4, share: 0.4 }],
      perCustomer: [
        { platforms_used: 1, customers: 6 },
        { platforms_used: 2, customers: 4 },
      ],
      overlap: [{ platform_a: 'b', platform_b: 'c', customers: 3 }],
      consistency: [
        { category: 'toys', customers: 4, on_two_or_more_platforms: 1, on_one_platform: 3, consistency: 0.25 },
      ],
      journeys: [
        { step: 1, from_platform: 'b', to_platform: 'c', customers: 2 },
        { step: 1, from_platform: 'c', to_platform: 'b', customers: 1 },
        { step: 2, from_platform: 'c', to_platform: 'a', customers: 1 },
      ],
    });
    expect(data.kpis).toEqual({
      customers: 10,
      multi_platform_customers: 4,
      multi_platform_share: 0.4,
      platform_pairs: 1,
    });
    expect(data.overlap).toEqual({
      platforms: ['b', 'c'],
      cells: [
        [0, 1, 3],
        [1, 0, 3],
      ],
    });
    expect(data.journeys.links).toEqual([
      { source: 'b (1)', target: 'c (2)', value: 2 },
      { source: 'c (1)', target: 'b (2)', value: 1 },
      { source: 'c (2)', target: 'a (3)', value: 1 },
    ]);
    expect(data.journeys.nodes.map((n) => n.name).sort()).toEqual(['a (3)', 'b (1)', 'b (2)', 'c (1)', 'c (2)']);
  });

  it("model: AUC per version over the union of days, the serving model's newest day, the card beside it", () => {
    const data = modelData(
      [monitored('2026-10-02', 'v1', 0.7), monitored('2026-10-01', 'v2', 0.8), monitored('2026-10-01', 'v1', 0.6)],
      card,
    );
    expect(data.auc_by_day).toEqual({
      days: ['2026-10-01', '2026-10-02'],
      series: [
        { model_version: 'v1', roc_auc: [0.6, 0.7], pr_auc: [0.3, 0.35] },
        { model_version: 'v2', roc_auc: [0.8, null], pr_auc: [0.4, null] },
      ],
    });
    // The serving model (v2, from the card) was last monitored on the 1st, though v1 has a later day.
    expect(data.kpis).toMatchObject({ model_version: 'v2', latest_roc_auc: 0.8, latest_day: '2026-10-01' });
    expect(data.thresholds.rows).toEqual([
      { threshold: 0.4, online_precision: 0.3, online_recall: 0.6, test_precision: 0.35, test_recall: 0.54 },
      { threshold: 0.7, online_precision: 0.5, online_recall: 0.2, test_precision: null, test_recall: 0 },
    ]);
    expect(data.calibration.online).toEqual([
      [0.1, 0.12, 40],
      [0.5, 0.4, 10],
    ]); // the empty decile is not a point
    expect(data.calibration.test).toEqual([[0.05, 0.04, 100]]);
    expect(data.feature_importance).toHaveLength(15);
    expect(data.feature_importance[0]).toEqual({ feature: 'f19', gain_share: 19 / 190 });
  });

  it('model: without monitoring or a model, empty series rather than made-up numbers', () => {
    const data = modelData([], null);
    expect(data.auc_by_day).toEqual({ days: [], series: [] });
    expect(data.thresholds.rows.every((r) => r.online_precision === null && r.test_precision === null)).toBe(true);
    expect(data.feature_importance).toEqual([]);
    expect(data.kpis.latest_roc_auc).toBeNull();
  });

  it('pages: one container per chart, headline slots, no inline script (the CSP allows none)', () => {
    for (const page of DASHBOARD_PAGES) {
      const html = renderPage(page, 30_000);
      expect(html.match(/data-chart="/g)).toHaveLength(page.charts.length);
      expect(html.match(/data-kpi="/g)).toHaveLength(page.kpis.length);
      expect(html).toContain('data-refresh-ms="30000"');
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
    }
  });
});
