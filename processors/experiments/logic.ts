/**
 * Pure steps of the A/B framework: which variant a customer is in, what an enrolled ad decision uses, and how the
 * warehouse's exposures and purchases become per-variant counts (through identity merges). No I/O.
 *
 * Assignment: bucket = MurmurHash3_x86_32(UTF-8 of `<salt>:<global customer id>`, seed 0) / 2^32, and the variant is
 * the one whose cumulative weight share first exceeds the bucket (variants in declaration order). It depends on
 * nothing but the salt, the id and the declaration, so every instance and every restart agrees, and anyone can
 * recompute it (the hash is the standard one, with published test vectors).
 *
 * Merges: the API always decides for the current global id (a merged-away id is answered for its survivor), so after
 * a merge the person is in the survivor's variant. Exposures recorded before the merge under the merged-away id are
 * resolved to the survivor by the report; a person whose exposures then span two variants is excluded from the
 * comparison and counted as `crossed` (it saw both arms, so it measures neither).
 */
import type { AdThresholds } from '../api/logic.js';
import { isActive, type AdExperiment, type AdVariant, type Experiment, type Variant } from './definitions.js';

const encoder = new TextEncoder();

/** MurmurHash3 x86 32-bit of the UTF-8 bytes of `text` (Austin Appleby's reference algorithm), unsigned. */
export function murmur3(text: string, seed = 0): number {
  const bytes = encoder.encode(text);
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = bytes.length - (bytes.length % 4);
  for (let i = 0; i < blocks; i += 4) {
    let k = (bytes[i] ?? 0) | ((bytes[i + 1] ?? 0) << 8) | ((bytes[i + 2] ?? 0) << 16) | ((bytes[i + 3] ?? 0) << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = bytes.length & 3;
  if (tail > 0) {
    let k = 0;
    for (let i = tail - 1; i >= 0; i--) k = (k << 8) | (bytes[blocks + i] ?? 0);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The customer's point in [0, 1) for an experiment's salt. */
export function bucketOf(salt: string, customerId: string): number {
  return murmur3(`${salt}:${customerId}`) / 2 ** 32;
}

/** The variant a global customer id is assigned to: stable for the same salt, id and variant list. */
export function assignVariant<V extends Variant>(e: { salt: string; variants: readonly V[] }, customerId: string): V {
  const total = e.variants.reduce((sum, v) => sum + v.weight, 0);
  let point = bucketOf(e.salt, customerId) * total;
  for (const v of e.variants) {
    point -= v.weight;
    if (point < 0) return v;
  }
  return e.variants[e.variants.length - 1] as V; // float rounding at the very top of the range
}

/** An ad decision's experiment: which one, which variant, and the thresholds the rule uses. */
export interface Enrolment {
  readonly experiment: string | null;
  readonly variant: string | null;
  readonly thresholds: AdThresholds;
}

/** The ad experiment running at `nowMs` (validation allows at most one at any time), if any. */
export function activeAdExperiment(experiments: readonly Experiment[], nowMs: number): AdExperiment | undefined {
  return experiments.find((e): e is AdExperiment => e.appliesTo === 'ad-decision' && isActive(e, nowMs));
}

/**
 * Enrols the customer the API decides for (its current global id) in the running ad experiment, and returns the
 * thresholds of its variant (the defaults where the variant does not override them). Outside any experiment: no
 * experiment, no variant, the defaults.
 */
export function enrol(
  experiments: readonly Experiment[],
  customerId: string,
  nowMs: number,
  defaults: AdThresholds,
): Enrolment {
  const e = activeAdExperiment(experiments, nowMs);
  if (!e) return { experiment: null, variant: null, thresholds: defaults };
  const v: AdVariant = assignVariant(e, customerId);
  return {
    experiment: e.name,
    variant: v.name,
    thresholds: { high: v.adThresholdHigh ?? defaults.high, medium: v.adThresholdMedium ?? defaults.medium },
  };
}

/** Every variant's thresholds with the defaults filled in; a variant whose medium exceeds its high is refused. */
export function variantThresholdProblems(experiments: readonly Experiment[], defaults: AdThresholds): string[] {
  const problems: string[] = [];
  for (const e of experiments) {
    if (e.appliesTo !== 'ad-decision') continue;
    for (const v of e.variants) {
      const high = v.adThresholdHigh ?? defaults.high;
      const medium = v.adThresholdMedium ?? defaults.medium;
      if (medium > high) problems.push(`${e.name}/${v.name}: medium threshold ${medium} is above high ${high}`);
    }
  }
  return problems;
}

/**
 * The survivor a global id has merged into, following chains (a → b, b → c gives c). `mergedInto` maps a merged-away
 * id to the id it merged into. A cycle (which the resolver never writes) stops at the first repeated id.
 */
export function resolveSurvivor(id: string, mergedInto: ReadonlyMap<string, string>): string {
  let current = id;
  const seen = new Set<string>([id]);
  for (;;) {
    const next = mergedInto.get(current);
    if (next === undefined || seen.has(next)) return current;
    seen.add(next);
    current = next;
  }
}

/** One (customer as recorded, variant) group of an experiment's exposures. */
export interface ExposureGroup {
  readonly customerId: string;
  readonly variant: string;
  readonly exposures: number;
  readonly firstMs: number;
}

/** Purchase times of one global customer (as the warehouse currently maps its identities). */
export interface CustomerPurchases {
  readonly customerId: string;
  readonly timesMs: readonly number[];
}

export interface VariantCounts {
  readonly variant: string;
  readonly control: boolean;
  readonly weight: number;
  /** Ad decisions recorded in the variant (counted persons only). */
  readonly exposures: number;
  /** Persons (current global customers) exposed in this variant only: the unit of analysis. */
  readonly customers: number;
  /** Of them, those with a purchase in [first exposure, first exposure + window). */
  readonly conversions: number;
  /** Of them, those whose window has not closed at the report's time (may still convert). */
  readonly windowOpen: number;
}

export interface ExperimentCounts {
  readonly variants: readonly VariantCounts[];
  /** Persons whose exposures (resolved through merges) span more than one variant: excluded. */
  readonly crossed: number;
  /** Exposures recorded under a merged-away id and counted under its survivor (crossed persons' are not counted). */
  readonly resolvedThroughMerges: number;
  /** Exposures whose variant the declaration does not name (a renamed or removed variant): excluded. */
  readonly unknownVariant: number;
}

/**
 * Per-variant counts of a conversion experiment. Each recorded customer is resolved to its current survivor; a person
 * counts once, from its first exposure; a person exposed in two variants is excluded (`crossed`). A purchase converts
 * when it falls in [first exposure, first exposure + windowDays) — purchases are matched to the survivor as well.
 */
export function countConversions(
  e: AdExperiment,
  groups: readonly ExposureGroup[],
  mergedInto: ReadonlyMap<string, string>,
  purchases: readonly CustomerPurchases[],
  asOfMs: number,
): ExperimentCounts {
  const windowMs = Math.round(e.metric.windowDays * 86_400_000);
  const known = new Set(e.variants.map((v) => v.name));
  const persons = new Map<string, { variants: Set<string>; firstMs: number; exposures: number; resolved: number }>();
  let unknownVariant = 0;
  for (const g of groups) {
    if (!known.has(g.variant)) {
      unknownVariant += g.exposures;
      continue;
    }
    const person = resolveSurvivor(g.customerId, mergedInto);
    const resolved = person === g.customerId ? 0 : g.exposures;
    const p = persons.get(person);
    if (p) {
      p.variants.add(g.variant);
      p.firstMs = Math.min(p.firstMs, g.firstMs);
      p.exposures += g.exposures;
      p.resolved += resolved;
    } else {
      persons.set(person, { variants: new Set([g.variant]), firstMs: g.firstMs, exposures: g.exposures, resolved });
    }
  }
  const bought = new Map<string, number[]>();
  for (const c of purchases) {
    const person = resolveSurvivor(c.customerId, mergedInto);
    if (!persons.has(person)) continue;
    const list = bought.get(person) ?? [];
    list.push(...c.timesMs);
    bought.set(person, list);
  }
  const counts = new Map<string, { exposures: number; customers: number; conversions: number; windowOpen: number }>(
    e.variants.map((v) => [v.name, { exposures: 0, customers: 0, conversions: 0, windowOpen: 0 }]),
  );
  let crossed = 0;
  let resolvedThroughMerges = 0;
  for (const [person, p] of persons) {
    if (p.variants.size > 1) {
      crossed++;
      continue;
    }
    const c = counts.get([...p.variants][0] as string);
    if (!c) continue;
    c.exposures += p.exposures;
    c.customers++;
    resolvedThroughMerges += p.resolved;
    const end = p.firstMs + windowMs;
    if ((bought.get(person) ?? []).some((t) => t >= p.firstMs && t < end)) c.conversions++;
    if (end > asOfMs) c.windowOpen++;
  }
  return {
    variants: e.variants.map((v) => ({
      variant: v.name,
      control: v.control,
      weight: v.weight,
      ...(counts.get(v.name) ?? { exposures: 0, customers: 0, conversions: 0, windowOpen: 0 }),
    })),
    crossed,
    resolvedThroughMerges,
    unknownVariant,
  };
}
