import { describe, expect, it } from 'vitest';
import {
  campaignCheck,
  sampleWithoutReplacement,
  type CampaignCustomer,
} from '../../processors/experiments/campaign-logic.js';
import { compareProportions } from '../../processors/experiments/stats.js';

const customer = (i: number, score: number, bought7d: boolean, bought14d = bought7d): CampaignCustomer => ({
  id: `c${String(i).padStart(3, '0')}`,
  score,
  bought7d,
  bought14d,
});

describe('the campaign check', () => {
  // 100 customers; scores rise with i; the top 20 bought within 7 days, and every tenth customer within 14.
  const population = Array.from({ length: 100 }, (_, i) => customer(i, i / 100, i >= 80, i >= 80 || i % 10 === 0));

  it('takes the highest scores as the treatment and a seeded random group of the same population as the control', () => {
    const r = campaignCheck(population, 20, 1);
    expect(r).toMatchObject({ population: 100, sizeRequested: 20, size: 20, treatmentMinScore: 0.8 });
    const [w7, w14] = r.windows;
    expect(w7?.treatment).toEqual({ customers: 20, buyers: 20, rate: 1 });
    expect(w7?.control.customers).toBe(20);
    // The control is a sample of everyone: its buyers are the treatment's members it drew.
    expect(w7?.control.buyers).toBe(r.overlap);
    expect(w7?.comparison).toEqual(
      compareProportions({ conversions: w7!.control.buyers, customers: 20 }, { conversions: 20, customers: 20 }),
    );
    expect(w14?.days).toBe(14);
    expect(w14!.control.buyers).toBeGreaterThanOrEqual(w7!.control.buyers);
    // Same seed, same control; input order does not matter.
    expect(campaignCheck([...population].reverse(), 20, 1)).toEqual(r);
  });

  it('uses at most half the population, and says what was asked', () => {
    const r = campaignCheck(population, 5_000, 1);
    expect(r).toMatchObject({ sizeRequested: 5_000, size: 50 });
    expect(() => campaignCheck([customer(1, 0.5, true)], 10, 1)).toThrow(/nothing to compare/);
  });

  it('breaks score ties by id, so the treatment does not depend on the order of the input', () => {
    const tied = Array.from({ length: 10 }, (_, i) => customer(i, 0.5, i < 3));
    const r = campaignCheck(tied, 3, 1);
    expect(r.windows[0]?.treatment.buyers).toBe(3); // c000, c001, c002
  });
});

describe('sampling without replacement', () => {
  it('draws k distinct items, every item about equally often', () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    const counts = new Array<number>(10).fill(0);
    for (let seed = 1; seed <= 2_000; seed++) {
      const s = sampleWithoutReplacement(items, 3, seed);
      expect(new Set(s).size).toBe(3);
      for (const x of s) counts[x] = (counts[x] ?? 0) + 1;
    }
    // 600 expected per item; 4 standard deviations of a binomial(2000, 0.3) are about 82.
    for (const c of counts) expect(Math.abs(c - 600)).toBeLessThan(82);
    expect(sampleWithoutReplacement(items, 20, 1)).toHaveLength(10);
  });
});
