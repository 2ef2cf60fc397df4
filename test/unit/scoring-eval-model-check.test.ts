import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logisticFromManifest, logisticScore } from '../../processors/scoring/eval-baselines.js';
import { onlineRetailModelProblem } from '../../processors/scoring/eval-model-check.js';

const DAY_MS = 86_400_000;
const FROM = Date.parse('2011-01-10T00:00:00Z');

const manifest = (dataset: string | null, toMs = FROM - 8 * DAY_MS) => ({
  model_version: 'v1',
  label: { horizon_days: 7 },
  training_data: {
    dataset,
    source: 'ClickHouse http://127.0.0.1:18123 database demo: npm run features -- training-set …',
    to_ms: toMs,
  },
});

describe('which model npm run eval -- online-retail may score with', () => {
  it('accepts a model trained on Online Retail whose labels end by --from', () => {
    expect(onlineRetailModelProblem(manifest('online-retail'), 'v1', FROM)).toBeNull();
    // The last reference date 7 days before --from: labels end exactly at --from.
    expect(onlineRetailModelProblem(manifest('online-retail', FROM - 7 * DAY_MS), 'v1', FROM)).toBeNull();
  });

  it('refuses a model whose manifest names another data source or none', () => {
    expect(onlineRetailModelProblem(manifest('generated'), 'v1', FROM)).toMatch(/v1 was trained on "generated"/);
    expect(onlineRetailModelProblem(manifest(null), 'v1', FROM)).toMatch(
      /v1 does not say it was trained on Online Retail \(training_data\.dataset; its source: ClickHouse/,
    );
    // A manifest written before training_data.dataset existed.
    expect(onlineRetailModelProblem({ training_data: { source: 'x' } }, 'v0', FROM)).toMatch(/does not say/);
    expect(onlineRetailModelProblem(null, 'v0', FROM)).toMatch(/does not say/);
  });

  it('refuses an Online Retail model whose training labels reach into the evaluated days', () => {
    expect(onlineRetailModelProblem(manifest('online-retail', FROM - 6 * DAY_MS), 'v1', FROM)).toMatch(
      /labels up to 2011-01-11, past --from 2011-01-10: it has seen the days/,
    );
  });
});

describe('npm run eval -- online-retail without --train', () => {
  const dir = mkdtempSync(join(tmpdir(), 'patternos-eval-check-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits non-zero before any replay when the current model was trained on another source, and says to add --train', () => {
    const models = join(dir, 'models');
    mkdirSync(join(models, 'v1'), { recursive: true });
    writeFileSync(join(models, 'current'), 'v1\n');
    writeFileSync(join(models, 'v1', 'feature-manifest.json'), JSON.stringify(manifest(null)));
    const run = spawnSync(
      process.execPath,
      [
        'node_modules/tsx/dist/cli.mjs',
        'processors/scoring/eval-cli.ts',
        'online-retail',
        'test/fixtures/online-retail-sample.csv',
        '--from',
        '2011-01-10',
        '--to',
        '2011-01-12',
        '--out',
        join(dir, 'scores.csv'),
      ],
      // Endpoints nobody listens on: the refusal must come before any connection.
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          MODEL_DIR: models,
          KAFKA_BROKERS: '127.0.0.1:1',
          CLICKHOUSE_URL: 'http://127.0.0.1:1',
          REDIS_URL: 'redis://127.0.0.1:1',
          SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1',
        },
        timeout: 120_000,
      },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /refusing to evaluate: the current model v1 does not say it was trained on Online Retail/,
    );
    expect(run.stderr).toMatch(/Add --train/);
  }, 150_000);
});

describe('the logistic-regression baseline applied outside Python', () => {
  const saved = {
    metrics: {
      baselines: {
        logistic_regression: {
          features: ['recency_days', 'frequency_90d', 'no_purchase'],
          mean: { recency_days: 2, frequency_90d: 1, no_purchase: 0.1 },
          scale: { recency_days: 0.5, frequency_90d: 2, no_purchase: 0.3 },
          coefficients: { recency_days: -0.8, frequency_90d: 0.6, no_purchase: -1.5 },
          intercept: -2.4,
        },
      },
    },
  };

  it('reads the manifest and reproduces baselines.py: log1p(max(x, 0)), the no-purchase flag, standardised', () => {
    const model = logisticFromManifest(saved);
    expect(model).not.toBeNull();
    if (!model) return;
    const features: Record<string, number> = { recency_days: 12.5, frequency_90d: 3 };
    const z = -2.4 + -0.8 * ((Math.log1p(12.5) - 2) / 0.5) + 0.6 * ((Math.log1p(3) - 1) / 2) + -1.5 * ((0 - 0.1) / 0.3);
    expect(logisticScore(model, (f) => features[f] ?? NaN)).toBeCloseTo(1 / (1 + Math.exp(-z)), 12);
    // No purchase yet: recency −1 counts as 0 days and raises the flag.
    const none: Record<string, number> = { recency_days: -1, frequency_90d: 0 };
    const z0 = -2.4 + -0.8 * ((0 - 2) / 0.5) + 0.6 * ((0 - 1) / 2) + -1.5 * ((1 - 0.1) / 0.3);
    expect(logisticScore(model, (f) => none[f] ?? NaN)).toBeCloseTo(1 / (1 + Math.exp(-z0)), 12);
  });

  it('is absent from a model trained before it existed, and a malformed one is an error', () => {
    expect(logisticFromManifest({ metrics: {} })).toBeNull();
    expect(() =>
      logisticFromManifest({ metrics: { baselines: { logistic_regression: { features: ['x'] } } } }),
    ).toThrow(/not the shape/);
  });
});
