/**
 * Experiment declarations: the file format (zod), its validation with every problem named, and which experiment is
 * running at a time. Pure: the file is read by the caller (`loadExperiments` in load.ts).
 *
 * A declaration file is `{ "experiments": [ … ] }`. Each experiment names what it applies to:
 * - `ad-decision`: the prediction API enrols every customer it decides an ad for while the experiment is active, and
 *   each variant may override the ad rule's thresholds. Measured by conversion rate from exposures and purchases.
 * - `offline-training`: compared offline by training (e.g. feature sets by ROC-AUC); no customer is enrolled.
 */
import { z } from 'zod';
import { FEATURE_NAMES } from '../features/definitions.js';
import { AppError } from '../runtime/errors.js';

const DAY_MS = 86_400_000;
const NAME = /^[a-z0-9][a-z0-9._-]*$/;
const name = (what: string) =>
  z
    .string()
    .max(64, `${what} names have at most 64 characters`)
    .regex(NAME, `${what} names are lowercase letters, digits, '.', '_' or '-'`);
const instant = z.iso.datetime({ offset: true, message: 'an ISO-8601 time with a zone, e.g. 2026-12-01T00:00:00Z' });

const variantBase = {
  name: name('variant'),
  /** Share of customers: weight / the sum of the experiment's weights. */
  weight: z.number().positive('weights are > 0'),
  /** The variant the others are compared with; exactly one per experiment. */
  control: z.boolean().default(false),
  description: z.string().optional(),
};

const adVariant = z.strictObject({
  ...variantBase,
  /** The ad rule's high threshold for this variant (score >= it → product ad); default AD_THRESHOLD_HIGH. */
  adThresholdHigh: z.number().min(0).max(1).optional(),
  /** The medium threshold (score >= it → category ad); default AD_THRESHOLD_MEDIUM. */
  adThresholdMedium: z.number().min(0).max(1).optional(),
});

const featureName = z.string().refine((n) => (FEATURE_NAMES as readonly string[]).includes(n), {
  error: (issue) => `unknown feature ${JSON.stringify(issue.input)} (see processors/features/definitions.ts)`,
});

const offlineVariant = z.strictObject({
  ...variantBase,
  /** The model inputs this variant trains on: FEATURE_NAMES names, or "all". */
  features: z.union([z.literal('all'), z.array(featureName).min(1, 'a feature set names at least one feature')]),
});

/** Relative (10 % of the control's rate: 0.1) or absolute (0.01 = one percentage point, or 0.01 of AUC). */
const mde = z.union(
  [z.strictObject({ relative: z.number().positive() }), z.strictObject({ absolute: z.number().positive().max(1) })],
  { error: 'either {"relative": r} (r > 0, a share of the control) or {"absolute": a} (0 < a <= 1)' },
);

const common = {
  name: name('experiment'),
  description: z.string().optional(),
  /** Hashed with the customer id; a new salt reshuffles everyone, so it never changes while an experiment runs. */
  salt: z.string().min(8, 'a salt has at least 8 characters'),
  /** Planned length; the end when `end` is not given. */
  durationDays: z.number().positive().max(366),
  minimumDetectableEffect: mde,
  /** Inclusive start (ISO-8601 with a zone); without it the experiment runs from the first decision. */
  start: instant.optional(),
  /** Exclusive end; default start + durationDays, and no end without a start. */
  end: instant.optional(),
};

const adExperiment = z.strictObject({
  ...common,
  appliesTo: z.literal('ad-decision'),
  variants: z.array(adVariant).min(2, 'an experiment has at least two variants'),
  metric: z.strictObject({
    kind: z.literal('conversion_rate'),
    /** A customer converts with a PURCHASE in [first exposure, first exposure + windowDays). */
    windowDays: z.number().positive().max(90),
  }),
  /** Conversion rate assumed for the power calculation until the control has data. */
  baselineRate: z.number().gt(0).lt(1).optional(),
});

const offlineExperiment = z.strictObject({
  ...common,
  appliesTo: z.literal('offline-training'),
  variants: z.array(offlineVariant).min(2, 'an experiment has at least two variants'),
  metric: z.strictObject({ kind: z.literal('offline_auc') }),
});

const fileSchema = z.strictObject({
  experiments: z.array(z.discriminatedUnion('appliesTo', [adExperiment, offlineExperiment])),
});

export type AdExperiment = z.infer<typeof adExperiment>;
export type OfflineExperiment = z.infer<typeof offlineExperiment>;
export type Experiment = AdExperiment | OfflineExperiment;
export type Variant = Experiment['variants'][number];
export type AdVariant = AdExperiment['variants'][number];

/** When an experiment runs: [startMs, endMs), either side open when undefined. */
export function activeWindow(e: Experiment): { startMs: number | undefined; endMs: number | undefined } {
  const startMs = e.start === undefined ? undefined : Date.parse(e.start);
  const endMs =
    e.end !== undefined
      ? Date.parse(e.end)
      : startMs !== undefined
        ? startMs + Math.round(e.durationDays * DAY_MS)
        : undefined;
  return { startMs, endMs };
}

export function isActive(e: Experiment, nowMs: number): boolean {
  const { startMs, endMs } = activeWindow(e);
  return (startMs === undefined || nowMs >= startMs) && (endMs === undefined || nowMs < endMs);
}

/** The control variant (validation guarantees exactly one). */
export function controlOf<V extends Variant>(e: { variants: readonly V[] }): V {
  const control = e.variants.find((v) => v.control);
  if (!control) throw new Error('experiment without a control');
  return control;
}

const overlaps = (a: Experiment, b: Experiment) => {
  const x = activeWindow(a);
  const y = activeWindow(b);
  return (x.startMs ?? -Infinity) < (y.endMs ?? Infinity) && (y.startMs ?? -Infinity) < (x.endMs ?? Infinity);
};

/**
 * Parses a declaration file's JSON. Throws CONFIG_INVALID naming every problem (`<source>: experiments.0.salt: …;
 * …`): the schema's, then the rules across fields — one control per experiment, unique variant and experiment names,
 * end after start, and no two ad-decision experiments running at the same time (an exposure record carries one
 * experiment and variant, so a customer is in at most one ad experiment per decision).
 */
export function parseExperiments(doc: unknown, source: string): readonly Experiment[] {
  const parsed = fileSchema.safeParse(doc);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.') || '(file)'}: ${issue.message}`);
  } else {
    const seen = new Set<string>();
    for (const [i, e] of parsed.data.experiments.entries()) {
      const at = `experiments.${i}`;
      if (seen.has(e.name)) problems.push(`${at}.name: experiment ${e.name} is declared twice`);
      seen.add(e.name);
      const controls = e.variants.filter((v) => v.control).length;
      if (controls !== 1) problems.push(`${at}.variants: exactly one variant has "control": true (found ${controls})`);
      const names = new Set<string>();
      for (const [j, v] of e.variants.entries()) {
        if (names.has(v.name)) problems.push(`${at}.variants.${j}.name: variant ${v.name} is declared twice`);
        names.add(v.name);
        if (
          'adThresholdHigh' in v &&
          v.adThresholdHigh !== undefined &&
          v.adThresholdMedium !== undefined &&
          v.adThresholdMedium > v.adThresholdHigh
        ) {
          problems.push(`${at}.variants.${j}: adThresholdMedium is above adThresholdHigh`);
        }
      }
      if (e.end !== undefined && e.start === undefined) problems.push(`${at}.end: an end needs a start`);
      const { startMs, endMs } = activeWindow(e);
      if (startMs !== undefined && endMs !== undefined && endMs <= startMs) {
        problems.push(`${at}.end: the end is not after the start`);
      }
    }
    const ads = parsed.data.experiments.filter((e) => e.appliesTo === 'ad-decision');
    for (const [i, a] of ads.entries()) {
      for (const b of ads.slice(i + 1)) {
        if (overlaps(a, b)) {
          problems.push(
            `ad-decision experiments ${a.name} and ${b.name} overlap in time: a decision records one experiment`,
          );
        }
      }
    }
  }
  if (problems.length > 0) throw new AppError('CONFIG_INVALID', `${source}: ${problems.join('; ')}`);
  return Object.freeze((parsed.data as z.infer<typeof fileSchema>).experiments);
}
