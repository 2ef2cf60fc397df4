/**
 * The Fellegi–Sunter match model: scoring a pair of identity records, and learning the model by Expectation–
 * Maximisation without labels. Pure: no I/O, no clock, no Math.random (sampling uses a seeded generator, so the same
 * records always give the same model).
 *
 * ## Scoring
 *
 * For each attribute the comparison level γ (compare.ts) contributes log2(m/u), where m = P(level | match) and
 * u = P(level | non-match); a missing value contributes 0. The posterior is
 * `1 / (1 + 2^-(weight + log2(prior / (1 - prior))))`, with `prior` = P(two random records match). A pair links when
 * the probability is ≥ `threshold` and there is no {@link isConflict conflict}.
 *
 * ## Training ({@link trainEm})
 *
 * 1. Candidate pairs: every pair of records sharing a blocking key or an exact hash (blocking.ts), skipping blocks
 *    larger than `maxBlockSize`. Almost every true match is among them, so EM on them sees the whole match class.
 * 2. EM on those pairs with a two-class mixture (λ, m, u_blocked), iterated to convergence (half a pseudo-pair per
 *    level keeps a briefly empty level from collapsing to the floor). Only the expected match counts are kept:
 *    blocked non-matches agree on their blocking fields far more often than random pairs, so their u would
 *    understate what agreement is worth.
 * 3. u from a deterministic sample of random pairs (all pairs when there are few), with the few true matches a random
 *    sample contains discounted by their posterior under the step-2 m (an E-step on the sample), so that agreement on
 *    a unique identifier gets the large weight it deserves.
 * 4. prior = expected matches among candidate pairs / all pairs.
 * 5. m = step-2 expected match counts plus one pseudo-pair (M_SHRINKAGE) distributed like u (so an attribute seen on
 *    few matches carries little weight and a level never seen on a match gets a finite penalty, about
 *    −log2(matches)), then made monotone across the ordered levels (pool-adjacent-violators on m/u: less similar
 *    never weighs more). Probabilities are clamped to [1e-6, 1 − 1e-6] (m before the monotone step).
 *
 * ## Threshold
 *
 * {@link DEFAULT_THRESHOLD} = 0.5: with a calibrated posterior that is the Bayes decision when a false link and a
 * missed link cost the same, i.e. "more likely the same person than not". It is a property of the model's
 * probability, not a value fitted to any labelled data.
 *
 * ## The committed default model (model.json)
 *
 * `processors/identity/model.json` is trained by this EM on the synthetic sample of processors/producers/generate.ts
 * (default seed and size; `npm run identity:train -- --generated --out processors/identity/model.json`), whose
 * records carry no labels. It is deliberately NOT trained on FEBRL, so nothing the evaluation measures was fitted to
 * the evaluation data; on a new source, retrain on that source (unsupervised) with the same command.
 */
import { z } from 'zod';
import { AppError } from '../runtime/errors.js';
import { candidateKeys } from './blocking.js';
import {
  ATTRIBUTE_INDEX,
  ATTRIBUTES,
  LEVELS,
  NULL_LEVEL,
  comparePrepared,
  comparePreparedInto,
  levelsButAddressInto,
  locateInto,
  prepare,
  type PreparedRecord,
} from './compare.js';
import type { IdentityRecord, MatchScore } from './types.js';

/** A trained Fellegi–Sunter model; `attributes` has one entry per attribute of compare.ts, levels in order. */
export interface MatchModel {
  version: string;
  /** P(two random records are the same person). */
  prior: number;
  /** Link when the posterior probability is at least this. */
  threshold: number;
  attributes: Record<string, { m: number[]; u: number[] }>;
  /**
   * Term frequencies learned from the training records (share of non-null values equal to each value), per attribute
   * with term-frequency adjustment ({@link TF_ATTRIBUTES}); values below the table's floor are left out and count as
   * the floor. Absent: no adjustment (older models).
   */
  termFrequencies?: Partial<Record<TfAttribute, { floor: number; values: Record<string, number> }>>;
}

/**
 * Attributes whose exact agreement is weighed by how common the agreeing value is (Splink's term-frequency
 * adjustment): agreeing on "smith" says less than agreeing on "roepstorff". Names are compared compacted (compare.ts).
 */
export const TF_ATTRIBUTES = ['firstName', 'lastName', 'city'] as const;
export type TfAttribute = (typeof TF_ATTRIBUTES)[number];
/**
 * Bounds of one term-frequency adjustment in bits. Upwards it is capped: a value seen once in training (a typo, a rare
 * name) is not proof of identity, and the exact level's m already includes such values. Downwards a very common value
 * may lose most of its agreement weight.
 */
const TF_MAX_BOOST = 3;
const TF_MAX_PENALTY = 10;

/** Link when P(match) ≥ 0.5: the equal-cost Bayes decision (see the module comment). */
export const DEFAULT_THRESHOLD = 0.5;
/** m and u never reach 0 or 1, so every weight stays finite. */
export const PROBABILITY_FLOOR = 1e-6;

const clamp = (p: number) => Math.min(1 - PROBABILITY_FLOOR, Math.max(PROBABILITY_FLOOR, p));

/** Per-level weights log2(m/u) and the prior log-odds, derived once per model object. */
interface Compiled {
  readonly weights: readonly Float64Array[];
  readonly priorLogOdds: number;
  /** Per TF attribute: log2 of the exact level's u (the average frequency of agreement among non-matches). */
  readonly exactLogU: Readonly<Record<TfAttribute, number>>;
  /** The agreeing address level (any but the last) with the largest weight. */
  readonly bestAgreeingAddress: number;
}
const compiledCache = new WeakMap<MatchModel, Compiled>();

function compile(model: MatchModel): Compiled {
  let c = compiledCache.get(model);
  if (c) return c;
  const weights = ATTRIBUTES.map((attr) => {
    const params = model.attributes[attr];
    const w = new Float64Array(LEVELS[attr].length);
    // An attribute the model does not know contributes nothing, like a missing value.
    if (params) for (let l = 0; l < w.length; l++) w[l] = Math.log2((params.m[l] ?? 1) / (params.u[l] ?? 1));
    return w;
  });
  const exactLogU = Object.fromEntries(
    TF_ATTRIBUTES.map((attr) => [attr, Math.log2(model.attributes[attr]?.u[0] ?? 1)]),
  ) as Record<TfAttribute, number>;
  const address = weights[ATTRIBUTE_INDEX.address] ?? new Float64Array(LEVELS.address.length);
  let bestAgreeingAddress = 0;
  for (let l = 1; l < ADDRESS_DIFFERENT; l++)
    if ((address[l] ?? 0) > (address[bestAgreeingAddress] ?? 0)) bestAgreeingAddress = l;
  c = { weights, priorLogOdds: Math.log2(model.prior / (1 - model.prior)), exactLogU, bestAgreeingAddress };
  compiledCache.set(model, c);
  return c;
}

/** Σ log2(m/u) over the non-null levels of a comparison vector. */
export function vectorWeight(model: MatchModel, v: ArrayLike<number>): number {
  const { weights } = compile(model);
  let weight = 0;
  for (let i = 0; i < weights.length; i++) {
    const level = v[i] ?? NULL_LEVEL;
    if (level !== NULL_LEVEL) weight += weights[i]?.[level] ?? 0;
  }
  return weight;
}

/** log2(m/u) per attribute of a comparison vector (0 where the level is null): their sum is {@link vectorWeight}. */
export function attributeWeights(model: MatchModel, v: ArrayLike<number>): number[] {
  const { weights } = compile(model);
  return weights.map((w, i) => {
    const level = v[i] ?? NULL_LEVEL;
    return level === NULL_LEVEL ? 0 : (w[level] ?? 0);
  });
}

/** The posterior match probability of a weight under the model's prior. */
export function probabilityOf(model: MatchModel, weight: number): number {
  return 1 / (1 + 2 ** -(weight + compile(model).priorLogOdds));
}

const ADDRESS_DIFFERENT = LEVELS.address.length - 1;
const FIRST = ATTRIBUTE_INDEX.firstName;
const CITY = ATTRIBUTE_INDEX.city;
const POSTCODE = ATTRIBUTE_INDEX.postcode;
const BIRTH = ATTRIBUTE_INDEX.birthDate;
const EMAIL = ATTRIBUTE_INDEX.emailSha256;
const PHONE = ATTRIBUTE_INDEX.phoneSha256;
const FIRST_DIFFERENT = LEVELS.firstName.length - 1;
const BIRTH_DIFFERENT = LEVELS.birthDate.length - 1;
const EMAIL_DIFFERENT = LEVELS.emailSha256.length - 1;

/**
 * Strong contradicting evidence, which vetoes a link whatever the weight. The exact rule:
 *
 *   both records have a hashed email and the hashes differ,
 *   AND they do not share a hashed phone,
 *   AND (both have a full birth date and the dates differ by more than a typo, i.e. more than one of year, month and
 *        day differs and it is not a day/month swap; OR both have a first name and the names are at the 'different'
 *        level: not within Jaro–Winkler 0.8, not an initial of each other, not swapped with the surname).
 *
 * Why: one person has several mailboxes, and a name or birth date can be mistyped, but a different mailbox together
 * with a different birthday or a different given name is what two members of one household (same surname, address,
 * often a shared device) look like, the false link a Fellegi–Sunter sum is most prone to, because address, surname
 * and device agreement are not independent among non-matches. A shared phone is an identifier and lifts the veto.
 *
 * Deliberately not included: a differing phone hash (households share landlines, numbers are re-entered; FEBRL's
 * stand-in id changes together with the birth date in its duplicates), and differing age brackets alone (brackets
 * computed at different times can legitimately differ). Without email hashes (FEBRL) there is never a conflict.
 */
export function isConflict(a: PreparedRecord, b: PreparedRecord, v: ArrayLike<number>): boolean {
  if (v[EMAIL] !== EMAIL_DIFFERENT || v[PHONE] === 0) return false;
  const birthDiffers = a.birth !== null && b.birth !== null && v[BIRTH] === BIRTH_DIFFERENT;
  return birthDiffers || v[FIRST] === FIRST_DIFFERENT;
}

const TF_INDEX = TF_ATTRIBUTES.map((attr) => ATTRIBUTE_INDEX[attr]);

/**
 * The term-frequency adjustment of a comparison vector in bits: for each TF attribute at its exact level,
 * log2(u_exact / tf(value)), bounded to [−TF_MAX_PENALTY, TF_MAX_BOOST]; 0 without a table. u_exact is the chance that
 * two different people agree at all, tf(value) the chance that they agree on this value: the difference is how much
 * more (or less) this particular agreement says than the average one the m/u weights stand for.
 */
export function tfAdjustment(model: MatchModel, a: PreparedRecord, b: PreparedRecord, v: ArrayLike<number>): number {
  const tables = model.termFrequencies;
  if (!tables) return 0;
  const { exactLogU } = compile(model);
  let adjustment = 0;
  for (let t = 0; t < TF_ATTRIBUTES.length; t++) {
    const attr = TF_ATTRIBUTES[t] as TfAttribute;
    const table = tables[attr];
    if (!table || v[TF_INDEX[t] ?? 0] !== 0) continue;
    const value = tfValue(attr, a, b);
    if (value === null) continue;
    const tf = Math.max(table.values[value] ?? table.floor, table.floor);
    adjustment += Math.min(TF_MAX_BOOST, Math.max(-TF_MAX_PENALTY, exactLogU[attr] - Math.log2(tf)));
  }
  return adjustment;
}

/**
 * The agreeing value of a TF attribute at its exact level. Names may agree crosswise (swapped first and last names,
 * compare.ts); either way `a`'s own first or last name is the agreeing value of that attribute.
 */
function tfValue(attr: TfAttribute, a: PreparedRecord, b: PreparedRecord): string | null {
  switch (attr) {
    case 'firstName':
      return a.first === b.first || a.first === b.last ? a.first : b.first;
    case 'lastName':
      return a.last === b.last || a.last === b.first ? a.last : b.last;
    case 'city':
      return a.record.city;
  }
}

/**
 * Bits taken off a pair whose given names and full birth dates both disagree (both present; an initial is not a
 * given name). Fellegi–Sunter multiplies the attributes' likelihood ratios as if they were independent, but among
 * non-matches they are not: people who share a surname and an address (a household) agree on both far more often
 * than random pairs, so the large address weight makes partners, parents and children link. A different given name
 * AND a different birthday together are what a household member looks like, and rare for one person written twice.
 * The size is a judgement, not fitted: large enough to outweigh a shared surname and address, so such a pair needs
 * an identifier (email, phone) or near-identical everything else to link.
 */
export const HOUSEHOLD_PENALTY = 12;

function householdPenalty(a: PreparedRecord, b: PreparedRecord, v: ArrayLike<number>): number {
  if (v[FIRST] !== FIRST_DIFFERENT || v[BIRTH] !== BIRTH_DIFFERENT || !a.birth || !b.birth) return 0;
  return (a.first?.length ?? 0) > 1 && (b.first?.length ?? 0) > 1 ? HOUSEHOLD_PENALTY : 0;
}

/** Compares and scores two records (derived values are cached per record object, see compare.ts). */
export function scorePair(model: MatchModel, a: IdentityRecord, b: IdentityRecord): MatchScore {
  return scorePrepared(model, prepare(a), prepare(b));
}

/** {@link scorePair} on prepared records, with the comparison vector that produced the score. */
export function scorePrepared(
  model: MatchModel,
  pa: PreparedRecord,
  pb: PreparedRecord,
): MatchScore & { levels: Int8Array } {
  const v = comparePrepared(pa, pb);
  const weight = vectorWeight(model, v) + tfAdjustment(model, pa, pb, v) - householdPenalty(pa, pb, v);
  return { weight, probability: probabilityOf(model, weight), conflict: isConflict(pa, pb, v), levels: v };
}

/**
 * The match weight of {@link scorePrepared}, with the comparison vector written into the caller's `v` (no allocation:
 * the resolver scores each changed record against every member of its candidate clusters). {@link isConflict} on the
 * same `v` gives the conflict.
 */
export function weightPreparedInto(model: MatchModel, pa: PreparedRecord, pb: PreparedRecord, v: Int8Array): number {
  comparePreparedInto(pa, pb, v);
  return scoredWeight(model, pa, pb, v);
}

/** The weight of a comparison vector of `pa` and `pb` (as {@link scorePrepared}). */
function scoredWeight(model: MatchModel, pa: PreparedRecord, pb: PreparedRecord, v: Int8Array): number {
  return vectorWeight(model, v) + tfAdjustment(model, pa, pb, v) - householdPenalty(pa, pb, v);
}

/**
 * An upper bound on {@link weightPreparedInto} that compares everything but the addresses: the larger of the weights
 * with the best agreeing address level (city and postcode then made null as that implies) and with the disagreeing one.
 * The address level is the only part of the weight left open (term-frequency adjustments and the household penalty do
 * not read it), every agreeing level nulls city and postcode alike, and floating-point addition is monotone, so the
 * true weight is one of the two or below the first. Exact (and returned as such) when either address is missing.
 * Uses `v` as scratch. The resolver skips a candidate cluster none of whose members can reach the threshold by it.
 */
export function weightBoundPreparedInto(
  model: MatchModel,
  pa: PreparedRecord,
  pb: PreparedRecord,
  v: Int8Array,
): number {
  levelsButAddressInto(pa, pb, v, true);
  if (pa.addressTerm === null || pb.addressTerm === null) return scoredWeight(model, pa, pb, locateInto(NULL_LEVEL, v));
  const city = v[CITY] ?? NULL_LEVEL;
  const postcode = v[POSTCODE] ?? NULL_LEVEL;
  const agreeing = scoredWeight(model, pa, pb, locateInto(compile(model).bestAgreeingAddress, v));
  v[CITY] = city;
  v[POSTCODE] = postcode;
  const differing = scoredWeight(model, pa, pb, locateInto(ADDRESS_DIFFERENT, v));
  return Math.max(agreeing, differing);
}

/** Whether a score is a link under the model: probability ≥ threshold and no conflict. */
export function isLink(model: MatchModel, score: MatchScore): boolean {
  return score.probability >= model.threshold && !score.conflict;
}

// ---------------------------------------------------------------- loading

const probabilities = z.array(z.number().gt(0).lt(1));
const modelSchema = z.object({
  version: z.string().min(1),
  prior: z.number().gt(0).lt(1),
  threshold: z.number().gt(0).lte(1),
  attributes: z.record(z.string(), z.object({ m: probabilities, u: probabilities })),
  termFrequencies: z
    .partialRecord(
      z.enum(TF_ATTRIBUTES),
      z.object({ floor: z.number().gt(0).lte(1), values: z.record(z.string(), z.number().gt(0).lte(1)) }),
    )
    .optional(),
});

/**
 * Validates a model (parsed JSON or its text): every attribute of compare.ts present with one m and one u per level,
 * each a probability summing to 1, and no unknown attribute (a model made for other comparisons must not load).
 * @throws AppError MODEL_CONTRACT naming every problem.
 */
export function loadModel(json: unknown): MatchModel {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json) as unknown;
    } catch (err) {
      throw new AppError('MODEL_CONTRACT', 'identity model is not JSON', { cause: err });
    }
  }
  const parsed = modelSchema.safeParse(value);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new AppError('MODEL_CONTRACT', `identity model: ${problems.join('; ')}`);
  }
  const model = parsed.data;
  const problems: string[] = [];
  for (const attr of ATTRIBUTES) {
    const params = model.attributes[attr];
    const levels = LEVELS[attr].length;
    if (!params) problems.push(`${attr}: missing`);
    else
      for (const side of ['m', 'u'] as const) {
        const p = params[side];
        if (p.length !== levels) problems.push(`${attr}.${side}: ${p.length} levels, expected ${levels}`);
        else if (Math.abs(p.reduce((s, x) => s + x, 0) - 1) > 1e-6) problems.push(`${attr}.${side}: does not sum to 1`);
      }
  }
  for (const attr of Object.keys(model.attributes)) {
    if (!(ATTRIBUTES as readonly string[]).includes(attr)) problems.push(`${attr}: unknown attribute`);
  }
  if (problems.length > 0) throw new AppError('MODEL_CONTRACT', `identity model: ${problems.join('; ')}`);
  return model;
}

// ---------------------------------------------------------------- training

/** Options of {@link trainEm}. */
export interface TrainOptions {
  /** EM stops after this many iterations at the latest. @default 500 */
  readonly maxIterations?: number;
  /** EM stops when no parameter moves by more than this. @default 1e-7 */
  readonly tolerance?: number;
  /** Random pairs sampled for u (all pairs when there are fewer). @default 1_000_000 */
  readonly randomPairs?: number;
  /** Seed of the pair sampler. @default 1 */
  readonly seed?: number;
  /** Blocks with more records are left out of the EM pairs (they are almost all non-matches). @default 200 */
  readonly maxBlockSize?: number;
  /** The model's link threshold. @default DEFAULT_THRESHOLD */
  readonly threshold?: number;
  /** Values seen fewer times than this are left out of the term-frequency tables (they count as the floor). @default 2 */
  readonly tfMinCount?: number;
}

/** What training saw and estimated, for the CLI. */
export interface TrainReport {
  readonly records: number;
  readonly candidatePairs: number;
  readonly randomPairs: number;
  readonly iterations: number;
  readonly converged: boolean;
  /** EM's share of matches among candidate pairs. */
  readonly candidateMatchShare: number;
  /** λ × candidate pairs. */
  readonly expectedMatches: number;
}

/** A histogram of comparison vectors: distinct vectors and how many pairs had each. */
interface Patterns {
  readonly vectors: Int8Array[];
  readonly counts: number[];
  readonly total: number;
}

type Params = number[][]; // [attribute][level]

function histogram(pairs: Iterable<readonly [number, number]>, prepared: readonly PreparedRecord[]): Patterns {
  const index = new Map<number, number>();
  const vectors: Int8Array[] = [];
  const counts: number[] = [];
  let total = 0;
  for (const [i, j] of pairs) {
    const a = prepared[i];
    const b = prepared[j];
    if (!a || !b) continue;
    const v = comparePrepared(a, b);
    let code = 0;
    for (const level of v) code = code * 8 + (level + 1); // levels are -1..6: three bits each, 27 bits in all
    const k = index.get(code);
    if (k === undefined) {
      index.set(code, vectors.length);
      vectors.push(v);
      counts.push(1);
    } else counts[k] = (counts[k] ?? 0) + 1;
    total++;
  }
  return { vectors, counts, total };
}

/** mulberry32: a tiny seeded generator, enough for sampling pairs (and test shuffles) reproducibly. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function* candidatePairs(records: readonly IdentityRecord[], maxBlockSize: number): Generator<[number, number]> {
  const blocks = new Map<string, number[]>();
  records.forEach((r, i) => {
    for (const key of candidateKeys(r)) {
      const block = blocks.get(key);
      if (block) block.push(i);
      else blocks.set(key, [i]);
    }
  });
  const seen = new Set<number>();
  const n = records.length;
  for (const block of blocks.values()) {
    if (block.length < 2 || block.length > maxBlockSize) continue;
    for (let x = 1; x < block.length; x++) {
      for (let y = 0; y < x; y++) {
        const i = block[y] ?? 0;
        const j = block[x] ?? 0;
        const code = i * n + j; // i < j: indices are pushed in record order
        if (seen.has(code)) continue;
        seen.add(code);
        yield [i, j];
      }
    }
  }
}

function* randomPairs(n: number, wanted: number, seed: number): Generator<[number, number]> {
  if ((n * (n - 1)) / 2 <= wanted) {
    for (let j = 1; j < n; j++) for (let i = 0; i < j; i++) yield [i, j];
    return;
  }
  const random = seededRandom(seed);
  for (let k = 0; k < wanted; k++) {
    const i = Math.floor(random() * n);
    let j = Math.floor(random() * (n - 1));
    if (j >= i) j++;
    yield i < j ? [i, j] : [j, i];
  }
}

/** Posterior match probability of each pattern under (λ, m, u). */
function posteriors(patterns: Patterns, lambda: number, m: Params, u: Params): Float64Array {
  const logM = m.map((levels) => levels.map(Math.log));
  const logU = u.map((levels) => levels.map(Math.log));
  const out = new Float64Array(patterns.vectors.length);
  const logLambda = Math.log(lambda);
  const logNot = Math.log(1 - lambda);
  patterns.vectors.forEach((v, k) => {
    let lm = logLambda;
    let lu = logNot;
    for (let a = 0; a < v.length; a++) {
      const level = v[a] ?? NULL_LEVEL;
      if (level === NULL_LEVEL) continue;
      lm += logM[a]?.[level] ?? 0;
      lu += logU[a]?.[level] ?? 0;
    }
    out[k] = 1 / (1 + Math.exp(lu - lm));
  });
  return out;
}

/** Σ count·weightOf(k) per attribute level over the patterns (missing values skipped). */
function levelSums(patterns: Patterns, weightOf: (k: number) => number): Params {
  const sums = ATTRIBUTES.map((attr) => new Array<number>(LEVELS[attr].length).fill(0));
  patterns.vectors.forEach((v, k) => {
    const w = weightOf(k) * (patterns.counts[k] ?? 0);
    for (let a = 0; a < v.length; a++) {
      const level = v[a] ?? NULL_LEVEL;
      const row = sums[a];
      if (level !== NULL_LEVEL && row) row[level] = (row[level] ?? 0) + w;
    }
  });
  return sums;
}

/**
 * Level frequencies weighted by `weightOf(k)` per pattern, with `pseudo` added to every level; an attribute never
 * observed non-null keeps `fallback` (so it stays neutral instead of inventing evidence).
 */
function frequencies(patterns: Patterns, weightOf: (k: number) => number, pseudo: number, fallback: Params): Params {
  return levelSums(patterns, weightOf).map((row, a) => {
    const total = row.reduce((s, x) => s + x, 0);
    if (total <= 0) return [...(fallback[a] ?? [])];
    return normalize(row.map((x) => x + pseudo));
  });
}

function normalize(row: readonly number[]): number[] {
  const total = row.reduce((s, y) => s + y, 0);
  const clamped = row.map((x) => clamp(x / total));
  const sum = clamped.reduce((s, x) => s + x, 0);
  return clamped.map((x) => x / sum);
}

/**
 * Pool-adjacent-violators on m/u: levels are ordered from most to least similar, so the evidence for a match must
 * not grow as similarity drops. Where EM says otherwise (a level seen too rarely to estimate, e.g. a birth-date typo in
 * data that has none), adjacent levels are pooled to one likelihood ratio; Σm is preserved.
 */
function monotone(m: readonly number[], u: readonly number[]): number[] {
  const blocks: { m: number; u: number; levels: number }[] = [];
  m.forEach((ml, l) => {
    blocks.push({ m: ml, u: u[l] ?? 1, levels: 1 });
    for (;;) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (!a || !b || a.m / a.u >= b.m / b.u) break;
      blocks.splice(-2, 2, { m: a.m + b.m, u: a.u + b.u, levels: a.levels + b.levels });
    }
  });
  const out: number[] = [];
  for (const block of blocks)
    for (let i = 0; i < block.levels; i++) out.push((u[out.length] ?? 1) * (block.m / block.u));
  return out;
}

const uniform = (): Params => ATTRIBUTES.map((attr) => normalize(LEVELS[attr].map(() => 1)));

/** 0.9 on the strongest agreement, the rest spread evenly: a starting point EM moves away from quickly. */
const initialM = (): Params =>
  ATTRIBUTES.map((attr) => {
    const n = LEVELS[attr].length;
    return LEVELS[attr].map((_, l) => (l === 0 ? 0.9 : 0.1 / (n - 1)));
  });

/** FNV-1a of a string as 8 hex digits: a content-derived model version. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** Weight of the prior that pulls each attribute's m towards its u (in expected matching pairs): see trainEm step 5. */
const M_SHRINKAGE = 1;

/**
 * Learns m, u and the prior from unlabelled records (see the module comment for the procedure). Deterministic: the
 * same records in the same order give the same model, and the version string is derived from its parameters.
 */
export function trainEmWithReport(
  records: readonly IdentityRecord[],
  options: TrainOptions = {},
): { model: MatchModel; report: TrainReport } {
  const maxIterations = options.maxIterations ?? 500;
  const tolerance = options.tolerance ?? 1e-7;
  const prepared = records.map(prepare);
  const n = records.length;

  const candidates = histogram(candidatePairs(records, options.maxBlockSize ?? 200), prepared);
  const random = histogram(randomPairs(n, options.randomPairs ?? 1_000_000, options.seed ?? 1), prepared);

  // Step 2: EM over candidate pairs; u starts from the random-pair frequencies. Half a pseudo-pair per level keeps a
  // level that is briefly unpopulated from collapsing to the floor and locking itself out.
  let m = initialM();
  let uBlocked = frequencies(random, () => 1, 0.5, uniform());
  let lambda = 0.1;
  let iterations = 0;
  let converged = candidates.total === 0;
  while (!converged && iterations < maxIterations) {
    iterations++;
    const p = posteriors(candidates, lambda, m, uBlocked);
    let matched = 0;
    p.forEach((pk, k) => (matched += pk * (candidates.counts[k] ?? 0)));
    const nextLambda = clamp(matched / candidates.total);
    const nextM = frequencies(candidates, (k) => p[k] ?? 0, 0.5, m);
    const nextU = frequencies(candidates, (k) => 1 - (p[k] ?? 0), 0.5, uBlocked);
    const delta = Math.max(Math.abs(nextLambda - lambda), maxDelta(nextM, m), maxDelta(nextU, uBlocked));
    lambda = nextLambda;
    m = nextM;
    uBlocked = nextU;
    converged = delta < tolerance;
  }
  const finalP = posteriors(candidates, lambda, m, uBlocked);
  const matchSums = levelSums(candidates, (k) => finalP[k] ?? 0);

  // Steps 3 and 4: u from random pairs, discounting the matches among them; the prior over all pairs.
  const allPairs = (n * (n - 1)) / 2;
  const expectedMatches = lambda * candidates.total;
  const prior = clamp(allPairs > 0 ? expectedMatches / allPairs : PROBABILITY_FLOOR);
  let u = frequencies(random, () => 1, 0.5, uniform());
  // An attribute no candidate pair had on both sides taught EM nothing: it must not sway the discounting either.
  const observed = matchSums.map((row) => row.some((x) => x > 0));
  for (let k = 0; k < 20; k++) {
    const mSeen = m.map((row, a) => (observed[a] ? row : (u[a] ?? row)));
    const p = posteriors(random, prior, mSeen, u);
    const nextU = frequencies(random, (i) => 1 - (p[i] ?? 0), 0.5, uniform());
    const delta = maxDelta(nextU, u);
    u = nextU;
    if (delta < tolerance) break;
  }

  // Step 5: the final m, from EM's expected match counts shrunk towards u by M_SHRINKAGE pseudo-pairs (an attribute
  // seen on few matches carries little weight, one never seen on a match carries none), then made monotone.
  const attributes: MatchModel['attributes'] = {};
  ATTRIBUTES.forEach((attr, a) => {
    const ua = u[a] ?? [];
    const sums = matchSums[a] ?? [];
    const total = sums.reduce((s, x) => s + x, 0);
    const shrunk = ua.map((ul, l) => ((sums[l] ?? 0) + M_SHRINKAGE * ul) / (total + M_SHRINKAGE));
    // Clamped before the monotone step, which only moves probability between levels (Σm stays 1) and so could
    // only be undone by clamping again.
    attributes[attr] = { m: monotone(normalize(shrunk), ua), u: ua };
  });
  const body = {
    prior,
    threshold: options.threshold ?? DEFAULT_THRESHOLD,
    attributes,
    termFrequencies: termFrequencies(prepared, options.tfMinCount ?? 2),
  };
  const model: MatchModel = { version: `fs-em-${fnv1a(JSON.stringify(body))}`, ...body };
  return {
    model,
    report: {
      records: n,
      candidatePairs: candidates.total,
      randomPairs: random.total,
      iterations,
      converged,
      candidateMatchShare: lambda,
      expectedMatches,
    },
  };
}

/** {@link trainEmWithReport} without the report. */
export function trainEm(records: readonly IdentityRecord[], options: TrainOptions = {}): MatchModel {
  return trainEmWithReport(records, options).model;
}

/**
 * Term-frequency tables of the TF attributes over the training records: share of each value among the non-null ones.
 * Values seen fewer than `minCount` times are dropped and the floor (1 / non-null count, i.e. seen once) stands in for
 * them, which keeps the table to the values whose frequency was actually measured.
 */
export function termFrequencies(
  prepared: readonly PreparedRecord[],
  minCount: number,
): NonNullable<MatchModel['termFrequencies']> {
  const out: NonNullable<MatchModel['termFrequencies']> = {};
  for (const attr of TF_ATTRIBUTES) {
    const counts = new Map<string, number>();
    let total = 0;
    for (const p of prepared) {
      const value = attr === 'firstName' ? p.first : attr === 'lastName' ? p.last : p.record.city;
      if (value === null) continue;
      counts.set(value, (counts.get(value) ?? 0) + 1);
      total++;
    }
    if (total === 0) continue;
    const values: Record<string, number> = {};
    for (const [value, n] of [...counts].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      if (n >= minCount) values[value] = n / total;
    }
    out[attr] = { floor: 1 / total, values };
  }
  return out;
}

function maxDelta(a: Params, b: Params): number {
  let d = 0;
  a.forEach((row, i) => {
    row.forEach((x, l) => (d = Math.max(d, Math.abs(x - (b[i]?.[l] ?? 0)))));
  });
  return d;
}
