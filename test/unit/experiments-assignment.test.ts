// Assignment: a standard hash (published MurmurHash3 vectors), stable for the same salt and id, proportional to the
// weights, independent across salts, the survivor's variant after a merge, and the variant's thresholds in the rule.
import { describe, expect, it } from 'vitest';
import type { AdExperiment, Experiment } from '../../processors/experiments/definitions.js';
import { parseExperiments } from '../../processors/experiments/definitions.js';
import { loadExperiments } from '../../processors/experiments/load.js';
import {
  assignVariant,
  bucketOf,
  enrol,
  murmur3,
  resolveSurvivor,
  variantThresholdProblems,
} from '../../processors/experiments/logic.js';

const DEFAULTS = { high: 0.7, medium: 0.4 };

function adExperiment(overrides: Partial<AdExperiment> = {}): AdExperiment {
  const [e] = parseExperiments(
    {
      experiments: [
        {
          name: 'thresholds',
          appliesTo: 'ad-decision',
          salt: 'unit-test-salt',
          variants: [
            { name: 'low', weight: 1, adThresholdHigh: 0.6 },
            { name: 'control', weight: 2, control: true },
            { name: 'high', weight: 1, adThresholdHigh: 0.8, adThresholdMedium: 0.5 },
          ],
          metric: { kind: 'conversion_rate', windowDays: 7 },
          durationDays: 14,
          minimumDetectableEffect: { relative: 0.1 },
          ...overrides,
        },
      ],
    },
    'test',
  );
  return e as AdExperiment;
}

describe('murmur3', () => {
  it('matches the published MurmurHash3_x86_32 vectors, on UTF-8 bytes', () => {
    expect(murmur3('')).toBe(0);
    expect(murmur3('', 1)).toBe(0x514e28b7);
    expect(murmur3('a')).toBe(0x3c2569b2);
    expect(murmur3('abc')).toBe(0xb3dd93fa);
    expect(murmur3('hello')).toBe(0x248bfa47);
    expect(murmur3('Hello, world!')).toBe(0xc0363e43);
    expect(murmur3('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
    expect(murmur3('ππππππππ', 0x9747b28c)).toBe(0xd58063c1);
  });
});

describe('assignVariant', () => {
  const e = adExperiment();
  const ids = Array.from({ length: 30_000 }, (_, i) => `c-${i}`);

  it('is a pure function of salt and id: the same answer every time, pinned across releases', () => {
    const first = ids.slice(0, 200).map((id) => assignVariant(e, id).name);
    const again = ids.slice(0, 200).map((id) => assignVariant(adExperiment(), id).name);
    expect(again).toEqual(first);
    // Pinned: a change of hash, key format or variant order would silently reshuffle running experiments.
    expect(bucketOf('unit-test-salt', 'c-0')).toBe(murmur3('unit-test-salt:c-0') / 2 ** 32);
    expect(['c-0', 'c-1', 'c-2', 'c-3', 'c-4', 'c-5'].map((id) => assignVariant(e, id).name)).toEqual([
      'low',
      'control',
      'control',
      'low',
      'control',
      'control',
    ]);
  });

  it('splits customers in proportion to the weights', () => {
    const counts = new Map<string, number>();
    for (const id of ids) {
      const v = assignVariant(e, id).name;
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    // Expected 1/4, 1/2, 1/4; 4 standard errors of a binomial share at n = 30,000 is under 0.011.
    expect(Math.abs((counts.get('low') ?? 0) / ids.length - 0.25)).toBeLessThan(0.011);
    expect(Math.abs((counts.get('control') ?? 0) / ids.length - 0.5)).toBeLessThan(0.012);
    expect(Math.abs((counts.get('high') ?? 0) / ids.length - 0.25)).toBeLessThan(0.011);
  });

  it('reshuffles independently under another salt', () => {
    const other = adExperiment({ salt: 'another-salt-entirely' });
    let same = 0;
    for (const id of ids) if (assignVariant(e, id).name === assignVariant(other, id).name) same++;
    // Independent assignments agree with probability 1/16 + 1/4 + 1/16 = 0.375.
    expect(Math.abs(same / ids.length - 0.375)).toBeLessThan(0.015);
  });
});

describe('enrol', () => {
  const e = adExperiment({ start: '2026-10-01T00:00:00Z' });
  const t = Date.parse('2026-10-05T00:00:00Z');

  it("uses the variant's thresholds, with the defaults where it does not override them", () => {
    const seen = new Map<string, { high: number; medium: number }>();
    for (let i = 0; i < 100; i++) {
      const r = enrol([e], `c-${i}`, t, DEFAULTS);
      expect(r.experiment).toBe('thresholds');
      expect(r.variant).toBe(assignVariant(e, `c-${i}`).name);
      seen.set(r.variant as string, r.thresholds);
    }
    expect(Object.fromEntries(seen)).toEqual({
      low: { high: 0.6, medium: 0.4 },
      control: { high: 0.7, medium: 0.4 },
      high: { high: 0.8, medium: 0.5 },
    });
  });

  it('enrols no one outside the experiment window (start inclusive, start + duration exclusive)', () => {
    const start = Date.parse('2026-10-01T00:00:00Z');
    const end = start + 14 * 86_400_000;
    expect(enrol([e], 'c-1', start - 1, DEFAULTS)).toEqual({ experiment: null, variant: null, thresholds: DEFAULTS });
    expect(enrol([e], 'c-1', start, DEFAULTS).experiment).toBe('thresholds');
    expect(enrol([e], 'c-1', end - 1, DEFAULTS).experiment).toBe('thresholds');
    expect(enrol([e], 'c-1', end, DEFAULTS).experiment).toBeNull();
    expect(enrol([], 'c-1', t, DEFAULTS)).toEqual({ experiment: null, variant: null, thresholds: DEFAULTS });
  });

  it('after a merge, the person is in the survivor’s variant (the API decides for the survivor id)', () => {
    // Find a pair in different variants, merge one into the other, and decide as the API does: for the survivor.
    const ids = Array.from({ length: 50 }, (_, i) => `c-${i}`);
    const merged = ids.find((id) => assignVariant(e, id).name !== assignVariant(e, 'c-survivor').name) as string;
    const merges = new Map([[merged, 'c-survivor']]);
    const answeredFor = resolveSurvivor(merged, merges);
    expect(answeredFor).toBe('c-survivor');
    expect(enrol([e], answeredFor, t, DEFAULTS).variant).toBe(assignVariant(e, 'c-survivor').name);
    expect(enrol([e], answeredFor, t, DEFAULTS).variant).not.toBe(assignVariant(e, merged).name);
  });

  it('refuses a variant whose medium threshold ends up above its high one', () => {
    const bad = adExperiment({
      variants: [
        { name: 'a', weight: 1, control: true },
        { name: 'b', weight: 1, control: false, adThresholdHigh: 0.3 },
      ],
    });
    expect(variantThresholdProblems([bad], DEFAULTS)).toEqual(['thresholds/b: medium threshold 0.4 is above high 0.3']);
    expect(variantThresholdProblems([adExperiment()], DEFAULTS)).toEqual([]);
  });
});

describe('resolveSurvivor', () => {
  it('follows merge chains and stops on a cycle', () => {
    const merges = new Map([
      ['a', 'b'],
      ['b', 'c'],
      ['x', 'y'],
      ['y', 'x'],
    ]);
    expect(resolveSurvivor('a', merges)).toBe('c');
    expect(resolveSurvivor('c', merges)).toBe('c');
    expect(resolveSurvivor('z', merges)).toBe('z');
    expect(resolveSurvivor('x', merges)).toBe('y');
  });
});

describe('the shipped experiments', () => {
  it('declare the seed’s intent-threshold (0.6 / 0.7 / 0.8) and feature-set experiments', () => {
    const experiments: readonly Experiment[] = loadExperiments('processors/experiments/experiments.json');
    const threshold = experiments.find((x) => x.name === 'intent-threshold') as AdExperiment;
    expect(threshold.appliesTo).toBe('ad-decision');
    expect(threshold.metric).toEqual({ kind: 'conversion_rate', windowDays: 7 });
    expect(threshold.variants.map((v) => [v.name, v.adThresholdHigh, v.control])).toEqual([
      ['threshold-0.6', 0.6, false],
      ['threshold-0.7', 0.7, true],
      ['threshold-0.8', 0.8, false],
    ]);
    const features = experiments.find((x) => x.name === 'feature-sets');
    expect(features?.appliesTo).toBe('offline-training');
    expect(features?.metric).toEqual({ kind: 'offline_auc' });
    expect(features?.variants.map((v) => v.name)).toEqual(['rfm_only', 'rfm_behavioral', 'full']);
    // It runs with no start, so the API enrols every ad decision in it.
    expect(enrol(experiments, 'c-1', Date.now(), DEFAULTS).experiment).toBe('intent-threshold');
  });
});
