/**
 * The dashboards' data: each page's named queries run against the warehouse (and, for Model Performance, the current
 * model's card read from MODEL_DIR), shaped by logic.ts. Results are kept for a few seconds, so any number of open
 * pages refreshing every 30 s cost the warehouse one set of queries per page and period.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { z } from 'zod';
import { runNamedQuery } from '../../clickhouse/queries.js';
import { currentVersion } from '../scoring/current-version.js';
import { crossPlatformData, modelData, overviewData, type ModelCard } from './logic.js';
import type { DashboardPage } from './pages.js';

const nullableNumber = z.number().nullable().optional();
const cardSchema = z.object({
  model_version: z.string(),
  algorithm: z.string().default(''),
  created_at: z.string().default(''),
  metrics: z.object({
    test: z.object({
      roc_auc: z.number(),
      pr_auc: z.number(),
      at_thresholds: z
        .array(z.object({ threshold: z.number(), precision: nullableNumber, recall: z.number() }))
        .default([]),
    }),
    test_calibrated: z
      .object({
        calibration: z
          .array(
            z.object({ count: z.number(), mean_predicted: nullableNumber, observed_rate: nullableNumber }).nullable(),
          )
          .default([]),
      })
      .optional(),
    feature_importance_gain: z.array(z.object({ name: z.string(), gain_share: z.number() })).default([]),
  }),
});

/** The card of the model MODEL_DIR/current names; null when none is promoted yet. A broken manifest is an error. */
export async function readModelCard(modelDir: string): Promise<ModelCard | null> {
  const version = await currentVersion(modelDir);
  if (!version) return null;
  const path = join(modelDir, version, 'feature-manifest.json');
  const parsed = cardSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
  if (!parsed.success) {
    throw new Error(`${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const m = parsed.data;
  return {
    version: m.model_version,
    algorithm: m.algorithm,
    createdAt: m.created_at,
    test: {
      rocAuc: m.metrics.test.roc_auc,
      prAuc: m.metrics.test.pr_auc,
      atThresholds: m.metrics.test.at_thresholds.map((t) => ({
        threshold: t.threshold,
        precision: t.precision ?? null,
        recall: t.recall,
      })),
    },
    calibration: (m.metrics.test_calibrated?.calibration ?? []).flatMap((b) =>
      b && b.count > 0 && typeof b.mean_predicted === 'number' && typeof b.observed_rate === 'number'
        ? [{ meanPredicted: b.mean_predicted, observedRate: b.observed_rate, count: b.count }]
        : [],
    ),
    featureImportance: m.metrics.feature_importance_gain.map((f) => ({ name: f.name, gainShare: f.gain_share })),
  };
}

export interface DashboardDataOptions {
  readonly clickhouse: ClickHouseClient;
  readonly modelDir: string;
  /** How long a page's data is reused. @default 10_000 */
  readonly cacheMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/** Computes and caches each page's data; concurrent requests for one page share one computation. */
export class DashboardData {
  private readonly cache = new Map<DashboardPage['slug'], { at: number; value: Promise<unknown> }>();

  constructor(private readonly options: DashboardDataOptions) {}

  /** The page's data plus `generated_at` (ISO time of the computation). */
  async get(slug: DashboardPage['slug']): Promise<unknown> {
    const now = (this.options.now ?? Date.now)();
    const cached = this.cache.get(slug);
    if (cached && now - cached.at < (this.options.cacheMs ?? 10_000)) return cached.value;
    const value = this.compute(slug).then((data) => ({ generated_at: new Date(now).toISOString(), ...data }));
    this.cache.set(slug, { at: now, value });
    // A failure is not cached: the next refresh tries again.
    value.catch(() => {
      if (this.cache.get(slug)?.value === value) this.cache.delete(slug);
    });
    return value;
  }

  private async compute(slug: DashboardPage['slug']): Promise<object> {
    const q = (name: string) => runNamedQuery(this.options.clickhouse, name);
    switch (slug) {
      case 'overview': {
        const [tracked, levels, highByPlatform, categories] = await Promise.all([
          q('customers-tracked'),
          q('intent-level-distribution'),
          q('high-intent-by-platform'),
          q('top-categories-by-intent'),
        ]);
        return overviewData({ tracked, levels, highByPlatform, categories });
      }
      case 'cross-platform': {
        const [share, perCustomer, overlap, consistency, journeys] = await Promise.all([
          q('cross-platform-share'),
          q('platforms-per-customer'),
          q('platform-overlap'),
          q('category-consistency'),
          q('platform-journeys'),
        ]);
        return crossPlatformData({ share, perCustomer, overlap, consistency, journeys });
      }
      case 'model': {
        const [monitoring, card] = await Promise.all([
          q('model-monitoring-by-day'),
          readModelCard(this.options.modelDir),
        ]);
        return modelData(monitoring, card);
      }
    }
  }
}
