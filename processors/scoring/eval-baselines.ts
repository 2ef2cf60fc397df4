/**
 * The logistic-regression baseline of a training run (training/patternos_training/baselines.py), applied outside
 * Python: `npm run eval -- online-retail` scores the held-out days with it, from the same point-in-time features, so the
 * model and the baseline of the same run are compared on the same rows. The manifest keeps everything needed:
 * features, transform (log1p(max(x, 0)), a no-purchase flag from recency_days < 0), the train split's mean and scale,
 * coefficients and intercept.
 */

export interface LogisticBaseline {
  /** Model inputs in order; the last is the no-purchase flag, the others feature names of the contract. */
  readonly features: readonly string[];
  readonly mean: readonly number[];
  readonly scale: readonly number[];
  readonly coefficients: readonly number[];
  readonly intercept: number;
}

export const NO_PURCHASE_FLAG = 'no_purchase';

/** The baseline in a feature-manifest.json, or null when the model was trained before it existed. */
export function logisticFromManifest(manifest: unknown): LogisticBaseline | null {
  const lr = (manifest as { metrics?: { baselines?: { logistic_regression?: Record<string, unknown> } } } | null)
    ?.metrics?.baselines?.logistic_regression;
  if (!lr) return null;
  const features = lr['features'];
  const table = (key: string) => lr[key] as Record<string, unknown> | undefined;
  if (!Array.isArray(features) || features.at(-1) !== NO_PURCHASE_FLAG || typeof lr['intercept'] !== 'number') {
    throw new Error("the manifest's metrics.baselines.logistic_regression is not the shape baselines.py writes");
  }
  const column = (key: string) =>
    features.map((name) => {
      const v = table(key)?.[String(name)];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`logistic_regression.${key}.${String(name)}`);
      return v;
    });
  return {
    features: features.map(String),
    mean: column('mean'),
    scale: column('scale'),
    coefficients: column('coefficients'),
    intercept: lr['intercept'],
  };
}

/** The baseline's probability for one row, given a feature value by name. */
export function logisticScore(model: LogisticBaseline, value: (feature: string) => number): number {
  let z = model.intercept;
  model.features.forEach((name, i) => {
    const x = name === NO_PURCHASE_FLAG ? (value('recency_days') < 0 ? 1 : 0) : Math.log1p(Math.max(value(name), 0));
    z += (model.coefficients[i] ?? 0) * ((x - (model.mean[i] ?? 0)) / (model.scale[i] ?? 1));
  });
  return 1 / (1 + Math.exp(-z));
}
