/**
 * What each dashboard shows, computed from the warehouse's named-query rows and the model card (pure: no I/O). Every
 * figure is an aggregate over customers (counts, shares, model metrics): no customer id or per-person value leaves
 * here, which is why the data routes need no API key.
 */

export type Row = Readonly<Record<string, unknown>>;

const num = (v: unknown): number => {
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : 0;
};
const str = (v: unknown): string =>
  typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';

export const INTENT_LEVELS = ['HIGH', 'MEDIUM', 'LOW'] as const;

/** How many categories the bar charts show (the rest would not be readable on a laptop screen). */
export const TOP_CATEGORIES = 12;
/** How many features the importance chart shows. */
export const TOP_FEATURES = 15;
/** The AUC the ModelAucLow alert fires below, drawn as a line on the AUC chart. */
export const AUC_ALERT_THRESHOLD = 0.75;

export interface OverviewData {
  readonly kpis: {
    readonly customers: number;
    readonly scored_customers: number;
    readonly high_intent_customers: number;
    readonly platforms: number;
  };
  /** Always the three levels, in order HIGH, MEDIUM, LOW (0 when nobody holds one). */
  readonly intent_levels: readonly { level: string; customers: number }[];
  readonly high_intent_by_platform: readonly { platform: string; customers: number }[];
  readonly top_categories: readonly {
    category: string;
    customers: number;
    high_intent_customers: number;
    avg_intent_score: number;
  }[];
}

/** The Intent Intelligence Overview from `customers-tracked`, `intent-level-distribution`, `high-intent-by-platform`, `top-categories-by-intent`. */
export function overviewData(rows: {
  tracked: readonly Row[];
  levels: readonly Row[];
  highByPlatform: readonly Row[];
  categories: readonly Row[];
}): OverviewData {
  const tracked = rows.tracked[0] ?? {};
  const byLevel = new Map(rows.levels.map((r) => [str(r['intent_level']), num(r['customers'])]));
  return {
    kpis: {
      customers: num(tracked['customers']),
      scored_customers: num(tracked['scored_customers']),
      high_intent_customers: byLevel.get('HIGH') ?? 0,
      platforms: num(tracked['platforms']),
    },
    intent_levels: INTENT_LEVELS.map((level) => ({ level, customers: byLevel.get(level) ?? 0 })),
    high_intent_by_platform: rows.highByPlatform.map((r) => ({
      platform: str(r['platform_id']),
      customers: num(r['high_intent_customers']),
    })),
    top_categories: rows.categories.slice(0, TOP_CATEGORIES).map((r) => ({
      category: str(r['predicted_category']) || '(none)',
      customers: num(r['customers']),
      high_intent_customers: num(r['high_intent_customers']),
      avg_intent_score: num(r['avg_intent_score']),
    })),
  };
}

export interface CrossPlatformData {
  readonly kpis: {
    readonly customers: number;
    readonly multi_platform_customers: number;
    readonly multi_platform_share: number;
    readonly platform_pairs: number;
  };
  readonly platforms_per_customer: readonly { platforms: number; customers: number }[];
  /** Symmetric matrix of customers on both platforms; the diagonal is left out (it would be every customer). */
  readonly overlap: { readonly platforms: readonly string[]; readonly cells: readonly [number, number, number][] };
  readonly category_consistency: readonly {
    category: string;
    customers: number;
    on_two_or_more_platforms: number;
    on_one_platform: number;
    consistency: number;
  }[];
  /** A sankey: node `<platform> (<n>)` is the customer's n-th platform, so flows never loop back. */
  readonly journeys: {
    readonly nodes: readonly { name: string }[];
    readonly links: readonly { source: string; target: string; value: number }[];
  };
}

const ordinalNode = (platform: string, position: number) => `${platform} (${position})`;

/** Cross-Platform Insights from `cross-platform-share`, `platforms-per-customer`, `platform-overlap`, `category-consistency`, `platform-journeys`. */
export function crossPlatformData(rows: {
  share: readonly Row[];
  perCustomer: readonly Row[];
  overlap: readonly Row[];
  consistency: readonly Row[];
  journeys: readonly Row[];
}): CrossPlatformData {
  const share = rows.share[0] ?? {};
  const pairs = rows.overlap.map((r) => ({
    a: str(r['platform_a']),
    b: str(r['platform_b']),
    customers: num(r['customers']),
  }));
  const platforms = [...new Set(pairs.flatMap((p) => [p.a, p.b]))].sort();
  const index = new Map(platforms.map((p, i) => [p, i]));
  const cells: [number, number, number][] = [];
  for (const p of pairs) {
    const i = index.get(p.a) ?? 0;
    const j = index.get(p.b) ?? 0;
    cells.push([i, j, p.customers], [j, i, p.customers]);
  }
  const nodes = new Set<string>();
  const links = rows.journeys.map((r) => {
    const step = num(r['step']);
    const source = ordinalNode(str(r['from_platform']), step);
    const target = ordinalNode(str(r['to_platform']), step + 1);
    nodes.add(source).add(target);
    return { source, target, value: num(r['customers']) };
  });
  return {
    kpis: {
      customers: num(share['customers']),
      multi_platform_customers: num(share['cross_platform_customers']),
      multi_platform_share: num(share['share']),
      platform_pairs: pairs.length,
    },
    platforms_per_customer: rows.perCustomer.map((r) => ({
      platforms: num(r['platforms_used']),
      customers: num(r['customers']),
    })),
    overlap: { platforms, cells },
    category_consistency: rows.consistency.slice(0, TOP_CATEGORIES).map((r) => ({
      category: str(r['category']),
      customers: num(r['customers']),
      on_two_or_more_platforms: num(r['on_two_or_more_platforms']),
      on_one_platform: num(r['on_one_platform']),
      consistency: num(r['consistency']),
    })),
    journeys: { nodes: [...nodes].map((name) => ({ name })), links },
  };
}

/** The parts of a model's feature-manifest.json (training's structured model card) the Model Performance page uses. */
export interface ModelCard {
  readonly version: string;
  readonly algorithm: string;
  readonly createdAt: string;
  readonly test: {
    readonly rocAuc: number;
    readonly prAuc: number;
    readonly atThresholds: readonly { threshold: number; precision: number | null; recall: number }[];
  };
  /** Test-split calibration of purchase_probability_7d (what the monitor's calibration table is about). */
  readonly calibration: readonly { meanPredicted: number; observedRate: number; count: number }[];
  readonly featureImportance: readonly { name: string; gainShare: number }[];
}

export interface ModelData {
  readonly kpis: {
    readonly model_version: string;
    readonly latest_roc_auc: number | null;
    readonly latest_day: string | null;
    readonly test_roc_auc: number | null;
    readonly monitored_days: number;
  };
  readonly alert_threshold: number;
  /** One series per model version over the monitored days (null where a version has no row that day). */
  readonly auc_by_day: {
    readonly days: readonly string[];
    readonly series: readonly { model_version: string; roc_auc: (number | null)[]; pr_auc: (number | null)[] }[];
  };
  /** Precision and recall at the scorer's two thresholds: the newest monitored day, and the card's test split. */
  readonly thresholds: {
    readonly online_day: string | null;
    readonly online_version: string | null;
    readonly rows: readonly {
      threshold: number;
      online_precision: number | null;
      online_recall: number | null;
      test_precision: number | null;
      test_recall: number | null;
    }[];
  };
  /** [mean predicted, observed rate, customers] per decile: the newest monitored day, and the card's test split. */
  readonly calibration: {
    readonly online_day: string | null;
    readonly online: readonly [number, number, number][];
    readonly test: readonly [number, number, number][];
  };
  readonly feature_importance: readonly { feature: string; gain_share: number }[];
}

interface MonitoredDay {
  day: string;
  version: string;
  rocAuc: number;
  prAuc: number;
  precision04: number;
  recall04: number;
  precision07: number;
  recall07: number;
  calibration: [number, number, number][];
}

function parseCalibration(text: string): [number, number, number][] {
  try {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) return [];
    return parsed
      .filter((p): p is unknown[] => Array.isArray(p) && p.length >= 3)
      .map((p) => [num(p[0]), num(p[1]), num(p[2])] as [number, number, number])
      .filter(([, , n]) => n > 0);
  } catch {
    return [];
  }
}

/** Model Performance from `model-monitoring-by-day` rows and the current model's card (null: no model yet). */
export function modelData(monitoring: readonly Row[], card: ModelCard | null): ModelData {
  const days: MonitoredDay[] = monitoring.map((r) => ({
    day: str(r['day']),
    version: str(r['model_version']),
    rocAuc: num(r['day_roc_auc']),
    prAuc: num(r['day_pr_auc']),
    precision04: num(r['day_precision_at_0_4']),
    recall04: num(r['day_recall_at_0_4']),
    precision07: num(r['day_precision_at_0_7']),
    recall07: num(r['day_recall_at_0_7']),
    calibration: parseCalibration(str(r['day_calibration'])),
  }));
  const dayList = [...new Set(days.map((d) => d.day))].sort();
  const versions = [...new Set(days.map((d) => d.version))].sort();
  const at = new Map(days.map((d) => [`${d.version}\u0000${d.day}`, d]));
  const series = versions.map((v) => ({
    model_version: v,
    roc_auc: dayList.map((d) => at.get(`${v}\u0000${d}`)?.rocAuc ?? null),
    pr_auc: dayList.map((d) => at.get(`${v}\u0000${d}`)?.prAuc ?? null),
  }));
  // The newest day of the serving model when it was monitored, else the newest day of any version.
  const newest = (rows: MonitoredDay[]) =>
    rows.reduce<MonitoredDay | null>((a, b) => (!a || b.day >= a.day ? b : a), null);
  const online = newest(days.filter((d) => d.version === card?.version)) ?? newest(days);
  const testAt = (t: number) => card?.test.atThresholds.find((x) => Math.abs(x.threshold - t) < 1e-9);
  const thresholdRow = (t: number, precision?: number, recall?: number) => ({
    threshold: t,
    online_precision: precision ?? null,
    online_recall: recall ?? null,
    test_precision: testAt(t)?.precision ?? null,
    test_recall: testAt(t)?.recall ?? null,
  });
  return {
    kpis: {
      model_version: card?.version ?? online?.version ?? '',
      latest_roc_auc: online?.rocAuc ?? null,
      latest_day: online?.day ?? null,
      test_roc_auc: card?.test.rocAuc ?? null,
      monitored_days: dayList.length,
    },
    alert_threshold: AUC_ALERT_THRESHOLD,
    auc_by_day: { days: dayList, series },
    thresholds: {
      online_day: online?.day ?? null,
      online_version: online?.version ?? null,
      rows: [
        thresholdRow(0.4, online?.precision04, online?.recall04),
        thresholdRow(0.7, online?.precision07, online?.recall07),
      ],
    },
    calibration: {
      online_day: online?.day ?? null,
      online: online?.calibration ?? [],
      test: (card?.calibration ?? []).map((b) => [b.meanPredicted, b.observedRate, b.count]),
    },
    feature_importance: (card?.featureImportance ?? [])
      .slice()
      .sort((a, b) => b.gainShare - a.gainShare)
      .slice(0, TOP_FEATURES)
      .map((f) => ({ feature: f.name, gain_share: f.gainShare })),
  };
}
