// The experiment statistics against reference values computed with scipy 1.17.1 (scipy.stats.norm and the same
// textbook formulas), and the sample size against the classic table value (Fleiss: 10 % vs 15 %, α 0.05 two-sided,
// power 0.8, no continuity correction → 686 per group).
import { describe, expect, it } from 'vitest';
import {
  compareProportions,
  normalCdf,
  normalQuantile,
  sampleSizePerArm,
  selectWinner,
} from '../../processors/experiments/stats.js';

describe('normal distribution', () => {
  it('matches scipy.stats.norm.cdf', () => {
    const cases: [number, number][] = [
      [0, 0.5],
      [0.5, 0.6914624612740131],
      [-1, 0.15865525393145707],
      [1.96, 0.9750021048517795],
      [3, 0.9986501019683699],
      [-4.5, 3.3976731247300535e-6],
    ];
    for (const [z, p] of cases) expect(Math.abs(normalCdf(z) - p) / p, `z=${z}`).toBeLessThan(2e-7);
  });

  it('matches scipy.stats.norm.ppf', () => {
    const cases: [number, number][] = [
      [0.975, 1.959963984540054],
      [0.8, 0.8416212335729143],
      [0.01, -2.3263478740408408],
      [0.999, 3.090232306167813],
      [1e-6, -4.753424308822899],
    ];
    for (const [p, z] of cases) expect(normalQuantile(p), `p=${p}`).toBeCloseTo(z, 7); // Acklam: relative error < 1.2e-9
    expect(normalQuantile(0.5)).toBe(0);
    expect(() => normalQuantile(1)).toThrow(RangeError);
  });
});

describe('two proportions', () => {
  it('gives the pooled z-test, the Wald difference interval and the Katz lift interval', () => {
    // 200/1000 control vs 250/1000 treatment.
    const c = compareProportions({ conversions: 200, customers: 1000 }, { conversions: 250, customers: 1000 });
    expect(c.difference).toBeCloseTo(0.05, 12);
    expect(c.z).toBeCloseTo(2.677397763008329, 9);
    expect(c.pValue).toBeCloseTo(0.007419649261025687, 7);
    expect(c.differenceInterval?.[0]).toBeCloseTo(0.01346362168753984, 8);
    expect(c.differenceInterval?.[1]).toBeCloseTo(0.08653637831246014, 8);
    expect(c.lift).toBeCloseTo(0.25, 12);
    expect(c.liftInterval?.[0]).toBeCloseTo(0.06094625083756311, 8);
    expect(c.liftInterval?.[1]).toBeCloseTo(0.47274190258600335, 8);
  });

  it('is symmetric in direction: a worse treatment has a negative z and the same kind of p-value', () => {
    const c = compareProportions({ conversions: 120, customers: 1000 }, { conversions: 100, customers: 1000 });
    expect(c.z).toBeCloseTo(-1.4293008498232314, 9);
    expect(c.pValue).toBeCloseTo(0.1529177818639462, 7);
    expect(c.liftInterval?.[0]).toBeCloseTo(-0.3513154506506987, 8);
    expect(c.liftInterval?.[1]).toBeCloseTo(0.07054260062313045, 8);
  });

  it('says what is undefined instead of inventing numbers', () => {
    const empty = compareProportions({ conversions: 0, customers: 0 }, { conversions: 1, customers: 10 });
    expect(empty).toMatchObject({ z: null, pValue: null, lift: null, liftInterval: null, differenceInterval: null });
    const none = compareProportions({ conversions: 0, customers: 50 }, { conversions: 0, customers: 50 });
    expect(none.z).toBeNull(); // no variance under the null: no test
    expect(none.lift).toBeNull();
    const noControlConversions = compareProportions(
      { conversions: 0, customers: 50 },
      { conversions: 5, customers: 50 },
    );
    expect(noControlConversions.lift).toBeNull();
    expect(noControlConversions.pValue).not.toBeNull();
  });
});

describe('sample size', () => {
  it('reproduces the textbook value and scipy for other cases', () => {
    expect(sampleSizePerArm(0.1, 0.15)).toBe(686);
    expect(sampleSizePerArm(0.2, 0.25)).toBe(1094); // scipy: 1093.739
    expect(sampleSizePerArm(0.15, 0.165, 0.025)).toBe(11210); // scipy: 11209.893
    expect(() => sampleSizePerArm(0.1, 0.1)).toThrow(RangeError);
  });
});

describe('selectWinner', () => {
  const arm = (variant: string, rate: number, pValue: number | null, control = false) => ({
    variant,
    control,
    rate,
    pValue,
  });

  it('names the best treatment that beats the control at the Bonferroni-corrected level', () => {
    const d = selectWinner([arm('a', 0.2, null, true), arm('b', 0.25, 0.001), arm('c', 0.27, 0.03)]);
    // c has the higher rate but p 0.03 is above 0.05 / 2: only b is significant.
    expect(d.winner).toBe('b');
    expect(d.reason).toMatch(/b beats a at p 0\.0010 < 0\.025/);
  });

  it('says no winner yet when nothing is significant, and the control wins when every treatment is worse', () => {
    expect(selectWinner([arm('a', 0.2, null, true), arm('b', 0.22, 0.3)]).winner).toBeNull();
    expect(selectWinner([arm('a', 0.2, null, true), arm('b', 0.21, 0.04), arm('c', 0.3, 0.03)]).winner).toBeNull();
    expect(selectWinner([arm('a', 0.2, null, true), arm('b', 0.1, 0.001), arm('c', 0.12, 0.01)]).winner).toBe('a');
    expect(selectWinner([arm('a', 0.2, null, true), arm('b', 0.1, 0.001), arm('c', 0.3, null)]).winner).toBeNull();
  });
});
