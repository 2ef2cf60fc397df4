/**
 * The three dashboards the API serves under /dashboards/<slug>, and what is on each: headline numbers (`kpis`, keys
 * of the data's `kpis`) and charts (drawn by public/dashboards.js, which has one renderer per chart id). Grafana's
 * copies (grafana/*.json) carry the same titles.
 */
export interface DashboardPage {
  readonly slug: 'overview' | 'cross-platform' | 'model';
  readonly title: string;
  /** One line under the title: what the page answers. */
  readonly summary: string;
  readonly kpis: readonly { readonly key: string; readonly label: string }[];
  /** `wide`: the chart takes a whole row (many categories on the x axis). */
  readonly charts: readonly {
    readonly id: string;
    readonly title: string;
    readonly note: string;
    readonly wide?: boolean;
  }[];
}

export const DASHBOARD_PAGES: readonly DashboardPage[] = [
  {
    slug: 'overview',
    title: 'Intent Intelligence Overview',
    summary: 'Who is tracked and how much purchase intent they show, by level, platform and category',
    kpis: [
      { key: 'customers', label: 'Customers tracked' },
      { key: 'scored_customers', label: 'Customers scored' },
      { key: 'high_intent_customers', label: 'HIGH intent now (scored ids)' },
      { key: 'platforms', label: 'Platforms' },
    ],
    charts: [
      {
        id: 'intent-levels',
        title: 'Intent level distribution',
        note: "Scored ids (customers and anonymous sessions) by their latest score's level",
      },
      {
        id: 'high-intent-by-platform',
        title: 'High-intent customers by platform',
        note: 'A customer on two platforms counts on each',
      },
      {
        id: 'top-categories',
        title: 'Top categories by intent',
        note: 'Predicted category of the latest score: scored ids, of them HIGH, and the average score',
        wide: true,
      },
    ],
  },
  {
    slug: 'cross-platform',
    title: 'Cross-Platform Insights',
    summary: 'Customers seen on more than one platform: overlaps, shared interests and the order they came in',
    kpis: [
      { key: 'multi_platform_customers', label: 'Multi-platform customers' },
      { key: 'multi_platform_share', label: 'Share of customers' },
      { key: 'customers', label: 'Customers' },
      { key: 'platform_pairs', label: 'Platform pairs shared' },
    ],
    charts: [
      { id: 'platforms-per-customer', title: 'Platforms per customer', note: 'Active customers by platforms used' },
      { id: 'platform-overlap', title: 'Platform overlap', note: 'Customers on both platforms of a pair' },
      {
        id: 'category-consistency',
        title: 'Category consistency across platforms',
        note: 'Multi-platform customers interested in a category on two or more of their platforms, or on one',
      },
      {
        id: 'journeys',
        title: 'Customer journeys, platform to platform',
        note: 'Order in which multi-platform customers joined their platforms: (1) first, (2) second, …',
      },
    ],
  },
  {
    slug: 'model',
    title: 'Model Performance',
    summary: 'How the live scores turned out (online monitoring) next to what training measured (model card)',
    kpis: [
      { key: 'model_version', label: 'Serving model' },
      { key: 'latest_roc_auc', label: 'Online ROC-AUC (newest day)' },
      { key: 'test_roc_auc', label: 'Test ROC-AUC (model card)' },
      { key: 'monitored_days', label: 'Days monitored' },
    ],
    charts: [
      {
        id: 'auc-over-time',
        title: 'AUC over time',
        note: 'Scores held at 00:00 vs a purchase in the next 7 days, per model version; dashed: the alert at 0.75',
      },
      {
        id: 'precision-recall',
        title: 'Precision and recall by threshold',
        note: 'MEDIUM ≥ 0.4 and HIGH ≥ 0.7: online on the newest monitored day, and on the model card’s test split',
      },
      {
        id: 'calibration',
        title: 'Calibration curve',
        note: 'Observed 7-day purchase rate per decile of purchase_probability_7d; the diagonal is perfect',
      },
      {
        id: 'feature-importance',
        title: 'Feature importance',
        note: 'Share of total gain in the serving model (model card), top 15',
      },
    ],
  },
];

export function pageOf(slug: string): DashboardPage | undefined {
  return DASHBOARD_PAGES.find((p) => p.slug === slug);
}
