/**
 * The statistics of a conversion experiment: the normal distribution, the two-proportion z-test, intervals for the
 * difference and the relative lift, the sample size for a minimum detectable effect, and the winner rule. Pure.
 *
 * Written here rather than taken from npm: the well-kept library (simple-statistics) has a normal CDF read from a
 * table at two decimals of z, too coarse for p-values, and jStat has had no release since 2020. Each function is
 * checked against scipy in test/unit/experiments-stats.test.ts.
 */

/** Φ(z), the standard normal CDF, from erfc (Numerical Recipes' Chebyshev fit: relative error below 1.2e-7). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/** Coefficients of Numerical Recipes' erfcc, lowest power first. */
const ERFC = [
  -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223,
  0.17087277,
];

function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const series = ERFC.reduceRight((acc, c) => acc * t + c, 0);
  const r = t * Math.exp(-z * z + series);
  return x >= 0 ? r : 2 - r;
}

const A = [
  -3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1,
  2.506628277459239,
];
const B = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
const C = [
  -7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968,
  2.938163982698783,
];
const D = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];

const poly = (coef: readonly number[], x: number) => coef.reduce((acc, c) => acc * x + c, 0);

/** Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation (relative error below 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`a probability in (0, 1) is needed, got ${p}`);
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return poly(C, q) / (poly(D, q) * q + 1);
  }
  if (p > 1 - low) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return -poly(C, q) / (poly(D, q) * q + 1);
  }
  const q = p - 0.5;
  const r = q * q;
  return (poly(A, r) * q) / (poly(B, r) * r + 1);
}

/** Conversions out of customers. */
export interface Proportion {
  readonly conversions: number;
  readonly customers: number;
}

export interface Comparison {
  /** Treatment rate − control rate. */
  readonly difference: number;
  /** 95 % (or `confidence`) Wald interval of the difference (unpooled standard error). */
  readonly differenceInterval: readonly [number, number] | null;
  /** Treatment rate / control rate − 1; null when the control has no conversions. */
  readonly lift: number | null;
  /** Interval of the lift from the log risk ratio (Katz); null when either arm has no conversions. */
  readonly liftInterval: readonly [number, number] | null;
  /** Pooled two-proportion z statistic; null when it is undefined (no customers, or all or none converted). */
  readonly z: number | null;
  /** Two-sided p-value of the z-test (null with z). */
  readonly pValue: number | null;
}

/** Treatment against control: difference, lift, their intervals, and the two-sided pooled two-proportion z-test. */
export function compareProportions(control: Proportion, treatment: Proportion, confidence = 0.95): Comparison {
  const { conversions: x1, customers: n1 } = control;
  const { conversions: x2, customers: n2 } = treatment;
  if (n1 === 0 || n2 === 0) {
    return { difference: NaN, differenceInterval: null, lift: null, liftInterval: null, z: null, pValue: null };
  }
  const p1 = x1 / n1;
  const p2 = x2 / n2;
  const q = normalQuantile(1 - (1 - confidence) / 2);
  const difference = p2 - p1;
  const seDiff = Math.sqrt((p1 * (1 - p1)) / n1 + (p2 * (1 - p2)) / n2);
  const differenceInterval = [difference - q * seDiff, difference + q * seDiff] as const;
  const lift = x1 > 0 ? p2 / p1 - 1 : null;
  let liftInterval: readonly [number, number] | null = null;
  if (x1 > 0 && x2 > 0) {
    const logRatio = Math.log(p2 / p1);
    const se = Math.sqrt(1 / x2 - 1 / n2 + 1 / x1 - 1 / n1);
    liftInterval = [Math.exp(logRatio - q * se) - 1, Math.exp(logRatio + q * se) - 1];
  }
  const pooled = (x1 + x2) / (n1 + n2);
  const sePooled = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  const z = sePooled > 0 ? difference / sePooled : null;
  const pValue = z === null ? null : 2 * (1 - normalCdf(Math.abs(z)));
  return { difference, differenceInterval, lift, liftInterval, z, pValue };
}

/**
 * Customers needed in each of two arms for a two-sided test at `alpha` to detect a rate moving from `p1` to `p2` with
 * probability `power` (normal approximation, pooled variance under the null, no continuity correction):
 * n = (z₁₋α/₂·√(2·p̄(1−p̄)) + z_power·√(p1(1−p1) + p2(1−p2)))² / (p2 − p1)², rounded up.
 */
export function sampleSizePerArm(p1: number, p2: number, alpha = 0.05, power = 0.8): number {
  if (!(p1 > 0 && p1 < 1 && p2 > 0 && p2 < 1) || p1 === p2) {
    throw new RangeError(`two different rates in (0, 1) are needed, got ${p1} and ${p2}`);
  }
  const za = normalQuantile(1 - alpha / 2);
  const zb = normalQuantile(power);
  const mean = (p1 + p2) / 2;
  const root = za * Math.sqrt(2 * mean * (1 - mean)) + zb * Math.sqrt(p1 * (1 - p1) + p2 * (1 - p2));
  return Math.ceil((root * root) / ((p2 - p1) * (p2 - p1)));
}

export interface ArmResult {
  readonly variant: string;
  readonly control: boolean;
  readonly rate: number;
  /** Against the control (null for the control itself). */
  readonly pValue: number | null;
}

export type WinnerDecision =
  { readonly winner: string; readonly reason: string } | { readonly winner: null; readonly reason: string };

/**
 * The winner at `confidence` (the seed's select_winner, as read here; its code is not in this repository): each
 * treatment is tested against the control at α / (number of treatments) (Bonferroni, so the whole comparison holds at
 * the stated confidence). A treatment wins when it beats the control significantly; among several, the one with the
 * highest rate. The control wins when every treatment is significantly worse. Otherwise there is no winner yet.
 */
export function selectWinner(arms: readonly ArmResult[], confidence = 0.95): WinnerDecision {
  const control = arms.find((a) => a.control);
  const treatments = arms.filter((a) => !a.control);
  if (!control || treatments.length === 0) return { winner: null, reason: 'needs a control and a treatment' };
  const alpha = (1 - confidence) / treatments.length;
  const shown = Number(alpha.toPrecision(6)); // 0.025, not 0.025000000000000022
  const significant = (a: ArmResult) => a.pValue !== null && a.pValue < alpha;
  const better = treatments.filter((a) => significant(a) && a.rate > control.rate).sort((a, b) => b.rate - a.rate);
  const best = better[0];
  if (best) {
    return {
      winner: best.variant,
      reason: `${best.variant} beats ${control.variant} at p ${formatP(best.pValue)} < ${shown}`,
    };
  }
  if (treatments.every((a) => significant(a) && a.rate < control.rate)) {
    return { winner: control.variant, reason: `every treatment is worse than ${control.variant} at p < ${shown}` };
  }
  return { winner: null, reason: `no treatment differs from ${control.variant} at p < ${shown}` };
}

export function formatP(p: number | null): string {
  if (p === null) return '—';
  return p < 0.0001 ? '< 0.0001' : p.toFixed(4);
}
