// Counting an experiment from the warehouse's rows: persons through merges, the conversion window, crossed persons
// excluded; and the report built from the counts (lift, p-value, winner or the sample still needed).
import { describe, expect, it } from 'vitest';
import { parseExperiments, type AdExperiment } from '../../processors/experiments/definitions.js';
import { countConversions, type ExposureGroup } from '../../processors/experiments/logic.js';
import { buildConversionReport, formatReport } from '../../processors/experiments/report-logic.js';
import { compareProportions } from '../../processors/experiments/stats.js';

const DAY = 86_400_000;
const T = Date.parse('2026-10-10T00:00:00Z');

const experiment = (baselineRate?: number) =>
  parseExperiments(
    {
      experiments: [
        {
          name: 'thresholds',
          appliesTo: 'ad-decision',
          salt: 'salt-of-the-test',
          variants: [
            { name: 'a', weight: 1, control: true },
            { name: 'b', weight: 1, adThresholdHigh: 0.6 },
          ],
          metric: { kind: 'conversion_rate', windowDays: 7 },
          durationDays: 14,
          minimumDetectableEffect: { relative: 0.2 },
          ...(baselineRate === undefined ? {} : { baselineRate }),
        },
      ],
    },
    'test',
  )[0] as AdExperiment;

const group = (customerId: string, variant: string, firstMs = T, exposures = 1): ExposureGroup => ({
  customerId,
  variant,
  exposures,
  firstMs,
});

describe('countConversions', () => {
  const e = experiment();

  it('counts a purchase in [first exposure, + window) and nothing before or after it', () => {
    const counts = countConversions(
      e,
      [group('c-1', 'a', T, 3), group('c-2', 'a'), group('c-3', 'a'), group('c-4', 'b'), group('c-5', 'b')],
      new Map(),
      [
        { customerId: 'c-1', timesMs: [T - 1, T + 2 * DAY] }, // converts (the earlier purchase does not count)
        { customerId: 'c-2', timesMs: [T + 7 * DAY] }, // exactly at the window's end: out
        { customerId: 'c-3', timesMs: [T - DAY] }, // before exposure: out
        { customerId: 'c-4', timesMs: [T] }, // at the exposure itself: in
        { customerId: 'c-9', timesMs: [T + DAY] }, // never exposed
      ],
      T + 30 * DAY,
    );
    expect(counts.variants).toEqual([
      { variant: 'a', control: true, weight: 1, exposures: 5, customers: 3, conversions: 1, windowOpen: 0 },
      { variant: 'b', control: false, weight: 1, exposures: 2, customers: 2, conversions: 1, windowOpen: 0 },
    ]);
    expect(counts).toMatchObject({ crossed: 0, resolvedThroughMerges: 0, unknownVariant: 0 });
  });

  it("counts a merged-away id's exposures and purchases under its survivor, once, from the first exposure", () => {
    // c-old merged into c-new (same variant a): one person, first exposed at T; its purchase (now keyed by the
    // survivor) at T + 6 days is inside the window of the first exposure though after the survivor's own exposure.
    const counts = countConversions(
      e,
      [group('c-old', 'a', T, 2), group('c-new', 'a', T + 3 * DAY, 1)],
      new Map([['c-old', 'c-new']]),
      [{ customerId: 'c-new', timesMs: [T + 6 * DAY] }],
      T + 30 * DAY,
    );
    expect(counts.variants[0]).toMatchObject({ variant: 'a', exposures: 3, customers: 1, conversions: 1 });
    expect(counts.resolvedThroughMerges).toBe(2);
    expect(counts.crossed).toBe(0);
  });

  it('excludes a person whose exposures span two variants after a merge, and follows merge chains', () => {
    const counts = countConversions(
      e,
      [group('c-x', 'a'), group('c-y', 'b'), group('c-p', 'b'), group('c-q', 'b')],
      new Map([
        ['c-x', 'c-y'], // crossed: a and b
        ['c-p', 'c-mid'],
        ['c-mid', 'c-q'], // chain p → mid → q, all in b: one person
      ]),
      [
        { customerId: 'c-y', timesMs: [T + DAY] },
        { customerId: 'c-q', timesMs: [T + DAY] },
      ],
      T + 30 * DAY,
    );
    expect(counts.crossed).toBe(1);
    expect(counts.resolvedThroughMerges).toBe(1); // c-p's; c-x's exposure is excluded with its crossed person
    expect(counts.variants).toEqual([
      { variant: 'a', control: true, weight: 1, exposures: 0, customers: 0, conversions: 0, windowOpen: 0 },
      { variant: 'b', control: false, weight: 1, exposures: 2, customers: 1, conversions: 1, windowOpen: 0 },
    ]);
  });

  it('reports open windows and exposures of variants the declaration no longer names', () => {
    const counts = countConversions(e, [group('c-1', 'a', T), group('c-2', 'gone')], new Map(), [], T + 3 * DAY);
    expect(counts.variants[0]).toMatchObject({ customers: 1, windowOpen: 1 });
    expect(counts.unknownVariant).toBe(1);
  });
});

describe('buildConversionReport', () => {
  const counts = (a: [number, number], b: [number, number]) => ({
    variants: [
      { variant: 'a', control: true, weight: 1, exposures: a[1], customers: a[1], conversions: a[0], windowOpen: 0 },
      { variant: 'b', control: false, weight: 1, exposures: b[1], customers: b[1], conversions: b[0], windowOpen: 0 },
    ],
    crossed: 0,
    resolvedThroughMerges: 0,
    unknownVariant: 0,
  });

  it('declares the treatment the winner when it beats the control at 95 %', () => {
    const r = buildConversionReport(experiment(), counts([200, 1000], [250, 1000]), T, T + 10 * DAY);
    const b = r.variants[1]!;
    expect(b.rate).toBe(0.25);
    expect(b.lift).toBeCloseTo(0.25, 12);
    expect(b.p_value).toBeCloseTo(0.007419649261025687, 7);
    expect(r.winner).toBe('b');
    expect(r.power).toBeNull();
    const lines = formatReport(r);
    expect(lines.at(-2)).toMatch(/^Winner at 95 %: b \(b beats a at p 0\.0074 < 0\.05\)\.$/);
    expect(JSON.parse(lines.at(-1)!)).toEqual(JSON.parse(JSON.stringify(r)));
  });

  it('says no winner yet and how many customers are still needed, from the control rate', () => {
    const r = buildConversionReport(experiment(), counts([20, 100], [22, 100]), T, T + 10 * DAY);
    expect(r.winner).toBeNull();
    expect(r.variants[1]!.p_value).toBeCloseTo(
      compareProportions({ conversions: 20, customers: 100 }, { conversions: 22, customers: 100 }).pValue!,
      12,
    );
    // 0.20 → 0.24 (a 20 % relative effect) at α 0.05, power 0.8: 1,683 per arm (scipy: 1682.4).
    expect(r.power).toEqual({
      baseline_rate: 0.2,
      baseline_source: 'control',
      target_rate: 0.24,
      alpha: 0.05,
      power: 0.8,
      needed_per_arm: 1683,
      still_needed: 2 * (1683 - 100),
    });
    expect(formatReport(r).at(-2)).toMatch(
      /^No winner yet .* Sample still needed: 3,166 more customers \(1,683 per variant/,
    );
  });

  it('plans from the declared baseline before the control has conversions, and says when it cannot', () => {
    const declared = buildConversionReport(experiment(0.1), counts([0, 0], [0, 0]), null, T);
    expect(declared.power).toMatchObject({
      baseline_rate: 0.1,
      baseline_source: 'declared',
      still_needed: 2 * declared.power!.needed_per_arm,
    });
    const unknown = buildConversionReport(experiment(), counts([0, 0], [0, 0]), null, T);
    expect(unknown.power).toBeNull();
    expect(unknown.power_note).toMatch(/no baselineRate declared/);
  });
});
