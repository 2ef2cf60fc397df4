/**
 * The seed's campaign check, free of I/O: on a day d, treatment = the customers with the highest score held at 00:00
 * of d, control = as many drawn at random from the same population (every customer with a purchase before d, the
 * treatment's members included: the control stands for "no targeting"), and the share of each group that buys within
 * 7 and 14 days of d, compared with processors/experiments/stats.ts (lift with its 95 % interval, z-test).
 */
import { compareProportions, type Comparison } from './stats.js';

export interface CampaignCustomer {
  readonly id: string;
  /** The score held at 00:00 of the day. */
  readonly score: number;
  /** A purchase in [d, d + 7 days) and in [d, d + 14 days). */
  readonly bought7d: boolean;
  readonly bought14d: boolean;
}

export interface CampaignWindowResult {
  readonly days: number;
  readonly treatment: { readonly customers: number; readonly buyers: number; readonly rate: number };
  readonly control: { readonly customers: number; readonly buyers: number; readonly rate: number };
  readonly comparison: Comparison;
}

export interface CampaignResult {
  readonly population: number;
  readonly sizeRequested: number;
  /** The group size used: the request, at most half the population (else the groups would mostly coincide). */
  readonly size: number;
  /** Customers in both groups (the control is drawn from everyone). */
  readonly overlap: number;
  /** The lowest score in the treatment group. */
  readonly treatmentMinScore: number;
  readonly windows: readonly CampaignWindowResult[];
}

/** A small deterministic PRNG (mulberry32): the control group is the same for the same seed. */
function prng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** `k` of `items` uniformly at random without replacement (a partial Fisher–Yates shuffle). */
export function sampleWithoutReplacement<T>(items: readonly T[], k: number, seed: number): T[] {
  const copy = [...items];
  const random = prng(seed);
  const n = Math.min(k, copy.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (copy.length - i));
    const tmp = copy[i] as T;
    copy[i] = copy[j] as T;
    copy[j] = tmp;
  }
  return copy.slice(0, n);
}

export function campaignCheck(
  population: readonly CampaignCustomer[],
  sizeRequested: number,
  seed: number,
): CampaignResult {
  if (population.length < 2) throw new Error(`the population has ${population.length} customers: nothing to compare`);
  const size = Math.min(sizeRequested, Math.floor(population.length / 2));
  // Highest score first; ties by id so the group does not depend on input order.
  const ranked = [...population].sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const treatment = ranked.slice(0, size);
  const byId = [...population].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const control = sampleWithoutReplacement(byId, size, seed);
  const inTreatment = new Set(treatment.map((c) => c.id));
  const group = (members: readonly CampaignCustomer[], bought: (c: CampaignCustomer) => boolean) => {
    const buyers = members.filter(bought).length;
    return { customers: members.length, buyers, rate: buyers / members.length };
  };
  const windows = ([7, 14] as const).map((days) => {
    const bought = (c: CampaignCustomer) => (days === 7 ? c.bought7d : c.bought14d);
    const t = group(treatment, bought);
    const c = group(control, bought);
    const comparison = compareProportions(
      { conversions: c.buyers, customers: c.customers },
      { conversions: t.buyers, customers: t.customers },
    );
    return { days, treatment: t, control: c, comparison };
  });
  return {
    population: population.length,
    sizeRequested,
    size,
    overlap: control.filter((c) => inTreatment.has(c.id)).length,
    treatmentMinScore: treatment.at(-1)?.score ?? Number.NaN,
    windows,
  };
}
