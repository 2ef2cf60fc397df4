/**
 * An experiment's report from its counts: per-variant rate, lift against the control with a 95 % interval, p-value,
 * the winner (stats.ts `selectWinner`) or the sample still needed, as text and as one JSON object. Pure.
 */
import { controlOf, type AdExperiment, type OfflineExperiment } from './definitions.js';
import type { ExperimentCounts } from './logic.js';
import { compareProportions, formatP, sampleSizePerArm, selectWinner, type Comparison } from './stats.js';

const CONFIDENCE = 0.95;
const POWER = 0.8;
const DAY_MS = 86_400_000;

export interface VariantReport {
  readonly variant: string;
  readonly control: boolean;
  readonly exposures: number;
  readonly customers: number;
  readonly conversions: number;
  readonly rate: number | null;
  readonly window_open: number;
  readonly difference: number | null;
  readonly difference_ci: readonly [number, number] | null;
  readonly lift: number | null;
  readonly lift_ci: readonly [number, number] | null;
  readonly z: number | null;
  readonly p_value: number | null;
}

export interface PowerPlan {
  /** The rate the effect is measured from: the control's, or the declared baselineRate before it has one. */
  readonly baseline_rate: number;
  readonly baseline_source: 'control' | 'declared';
  readonly target_rate: number;
  /** Per comparison (Bonferroni over the treatments). */
  readonly alpha: number;
  readonly power: number;
  readonly needed_per_arm: number;
  /** Customers still to expose, summed over the arms below needed_per_arm. */
  readonly still_needed: number;
}

export interface ConversionReport {
  readonly experiment: string;
  readonly applies_to: 'ad-decision';
  readonly metric: 'conversion_rate';
  readonly window_days: number;
  readonly as_of: string;
  readonly first_exposure: string | null;
  readonly days_running: number;
  readonly duration_days: number;
  readonly variants: readonly VariantReport[];
  readonly crossed: number;
  readonly resolved_through_merges: number;
  readonly unknown_variant: number;
  readonly confidence: number;
  readonly winner: string | null;
  readonly reason: string;
  readonly power: PowerPlan | null;
  readonly power_note: string | null;
}

export interface OfflineReport {
  readonly experiment: string;
  readonly applies_to: 'offline-training';
  readonly metric: 'offline_auc';
  readonly status: 'offline';
  readonly reason: string;
  readonly variants: readonly { variant: string; control: boolean; features: number | 'all' }[];
  readonly minimum_detectable_effect: number;
}

const rateOf = (conversions: number, customers: number) => (customers === 0 ? null : conversions / customers);

/** The report of a conversion experiment from its counts (logic.ts `countConversions`) as of `asOfMs`. */
export function buildConversionReport(
  e: AdExperiment,
  counts: ExperimentCounts,
  firstExposureMs: number | null,
  asOfMs: number,
): ConversionReport {
  const control = controlOf(e);
  const controlCounts = counts.variants.find((v) => v.variant === control.name);
  if (!controlCounts) throw new Error(`no counts for the control ${control.name}`);
  const variants: VariantReport[] = counts.variants.map((v) => {
    const c: Comparison | null = v.control ? null : compareProportions(controlCounts, v, CONFIDENCE);
    return {
      variant: v.variant,
      control: v.control,
      exposures: v.exposures,
      customers: v.customers,
      conversions: v.conversions,
      rate: rateOf(v.conversions, v.customers),
      window_open: v.windowOpen,
      difference: c && Number.isFinite(c.difference) ? c.difference : null,
      difference_ci: c?.differenceInterval ?? null,
      lift: c?.lift ?? null,
      lift_ci: c?.liftInterval ?? null,
      z: c?.z ?? null,
      p_value: c?.pValue ?? null,
    };
  });
  const decision = selectWinner(
    variants.map((v) => ({ variant: v.variant, control: v.control, rate: v.rate ?? 0, pValue: v.p_value })),
    CONFIDENCE,
  );
  const treatments = e.variants.length - 1;
  let power: PowerPlan | null = null;
  let powerNote: string | null = null;
  if (decision.winner === null) {
    const controlRate = rateOf(controlCounts.conversions, controlCounts.customers);
    const fromControl = controlRate !== null && controlRate > 0 && controlRate < 1;
    const baseline = fromControl ? controlRate : e.baselineRate;
    if (baseline === undefined) {
      powerNote = 'no control conversions yet and no baselineRate declared: the sample needed is unknown';
    } else {
      const mde = e.minimumDetectableEffect;
      const target = 'relative' in mde ? baseline * (1 + mde.relative) : baseline + mde.absolute;
      if (!(target < 1)) {
        powerNote = `the minimum detectable effect takes the rate ${baseline.toFixed(4)} to ${target.toFixed(4)}, not below 1`;
      } else {
        const alpha = (1 - CONFIDENCE) / treatments;
        const needed = sampleSizePerArm(baseline, target, alpha, POWER);
        const stillNeeded = counts.variants.reduce((sum, v) => sum + Math.max(0, needed - v.customers), 0);
        power = {
          baseline_rate: baseline,
          baseline_source: fromControl ? 'control' : 'declared',
          target_rate: target,
          alpha: Number(alpha.toPrecision(6)),
          power: POWER,
          needed_per_arm: needed,
          still_needed: stillNeeded,
        };
      }
    }
  }
  return {
    experiment: e.name,
    applies_to: 'ad-decision',
    metric: 'conversion_rate',
    window_days: e.metric.windowDays,
    as_of: new Date(asOfMs).toISOString(),
    first_exposure: firstExposureMs === null ? null : new Date(firstExposureMs).toISOString(),
    days_running:
      firstExposureMs === null ? 0 : Math.max(0, Math.round(((asOfMs - firstExposureMs) / DAY_MS) * 10) / 10),
    duration_days: e.durationDays,
    variants,
    crossed: counts.crossed,
    resolved_through_merges: counts.resolvedThroughMerges,
    unknown_variant: counts.unknownVariant,
    confidence: CONFIDENCE,
    winner: decision.winner,
    reason: decision.reason,
    power,
    power_note: powerNote,
  };
}

/** An offline experiment has no exposures: it is evaluated by training each variant's model on the same rows. */
export function buildOfflineReport(e: OfflineExperiment): OfflineReport {
  const mde = e.minimumDetectableEffect;
  return {
    experiment: e.name,
    applies_to: 'offline-training',
    metric: 'offline_auc',
    status: 'offline',
    reason:
      'evaluated offline by training: each variant is a model trained and tested on the same rows, compared by test ' +
      'ROC-AUC; no customer is enrolled, so ad decisions do not drive it',
    variants: e.variants.map((v) => ({
      variant: v.name,
      control: v.control,
      features: v.features === 'all' ? 'all' : v.features.length,
    })),
    minimum_detectable_effect: 'absolute' in mde ? mde.absolute : mde.relative,
  };
}

const pct = (x: number | null, digits = 2) => (x === null ? '—' : `${(x * 100).toFixed(digits)} %`);
const signedPct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
const interval = (ci: readonly [number, number] | null) =>
  ci === null ? '' : ` [${signedPct(ci[0])}, ${signedPct(ci[1])}]`;
const count = (n: number) => n.toLocaleString('en-US');

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The report as lines of text, ending with the JSON line. */
export function formatReport(report: ConversionReport | OfflineReport): string[] {
  if (report.applies_to === 'offline-training') {
    return [
      `Experiment ${report.experiment}: metric offline ROC-AUC`,
      ...table(
        ['variant', 'control', 'features'],
        report.variants.map((v) => [v.variant, v.control ? 'yes' : '', String(v.features)]),
      ),
      `Not driven by ad decisions: ${report.reason}.`,
      JSON.stringify(report),
    ];
  }
  const lines = [
    `Experiment ${report.experiment}: conversion = a purchase within ${report.window_days} days of the first exposure`,
    `As of ${report.as_of}; first exposure ${report.first_exposure ?? 'none yet'}; running ${report.days_running} of ${report.duration_days} planned days`,
    ...table(
      ['variant', 'control', 'exposures', 'customers', 'conversions', 'rate', 'lift vs control (95 % CI)', 'p-value'],
      report.variants.map((v) => [
        v.variant,
        v.control ? 'yes' : '',
        count(v.exposures),
        count(v.customers),
        count(v.conversions),
        pct(v.rate),
        v.control ? '' : v.lift === null ? '—' : `${signedPct(v.lift)}${interval(v.lift_ci)}`,
        v.control ? '' : formatP(v.p_value),
      ]),
    ),
  ];
  const open = report.variants.reduce((n, v) => n + v.window_open, 0);
  const notes: string[] = [];
  if (open > 0) notes.push(`${count(open)} customers' windows are still open (they may yet convert)`);
  if (report.resolved_through_merges > 0) {
    notes.push(`${count(report.resolved_through_merges)} exposures of merged-away ids counted under their survivor`);
  }
  if (report.crossed > 0) {
    notes.push(`${count(report.crossed)} customers excluded: after a merge their exposures span two variants`);
  }
  if (report.unknown_variant > 0) {
    notes.push(`${count(report.unknown_variant)} exposures excluded: variant not in the declaration`);
  }
  if (notes.length > 0) lines.push(`Notes: ${notes.join('; ')}.`);
  if (report.winner !== null) {
    lines.push(`Winner at ${report.confidence * 100} %: ${report.winner} (${report.reason}).`);
  } else if (report.power) {
    const p = report.power;
    lines.push(
      `No winner yet (${report.reason}). Sample still needed: ${count(p.still_needed)} more customers ` +
        `(${count(p.needed_per_arm)} per variant to detect ${pct(p.baseline_rate)} → ${pct(p.target_rate)} ` +
        `at α ${p.alpha} per comparison, power ${p.power}; baseline: ${p.baseline_source === 'control' ? "the control's rate" : 'the declared baselineRate'}).`,
    );
  } else {
    lines.push(`No winner yet (${report.reason}); ${report.power_note ?? ''}.`);
  }
  lines.push(JSON.stringify(report));
  return lines;
}
