/**
 * Pure steps of the prediction API: which customer a request names, whether a cached score may be served, the feature
 * hash back into features for an on-demand score, the response, and the ad decision rule. No I/O.
 */
import type { IntentLevel, IntentScore } from '../../schemas/generated/types.js';
import {
  FEATURE_NAMES,
  FEATURES_ABSENT_AS_ZERO,
  type CustomerFeatures,
  type FeatureName,
} from '../features/definitions.js';
import type { AdType, Creative, CreativeCatalog } from './creatives.js';

/** A customer as a caller names it: our global id, or a platform and that platform's own customer id. */
export type CustomerRef =
  { readonly customer_id: string } | { readonly platform: string; readonly platform_customer_id: string };

/** The identity graph's key of a platform identity (`<platform>:<platformCustomerId>`). */
export function identityKeyOf(ref: CustomerRef): string | null {
  return 'platform' in ref ? `${ref.platform}:${ref.platform_customer_id}` : null;
}

/** How a ref reads in logs, errors and the exposure record (never anything but the ids the caller sent). */
export function describeRef(ref: CustomerRef): string {
  return identityKeyOf(ref) ?? (ref as { customer_id: string }).customer_id;
}

export type ScoreSource = 'cache' | 'computed';

/** The body of a prediction: the seed's fields, plus where the score came from and when. */
export interface Prediction {
  readonly customer_id: string;
  readonly intent_score: number;
  readonly intent_level: IntentLevel;
  readonly purchase_probability_7d: number;
  readonly predicted_category: string | null;
  readonly model_version: string;
  /** When the score was computed (ISO 8601, UTC). */
  readonly scored_at: string;
  /** Event time of the newest event the features reflect. */
  readonly feature_time: string;
  /** The reference time the score is as of (later than feature_time when the customer was rescored as time passed). */
  readonly as_of: string;
  readonly source: ScoreSource;
}

const iso = (ms: number) => new Date(ms).toISOString();
const LEVELS: ReadonlySet<string> = new Set<IntentLevel>(['LOW', 'MEDIUM', 'HIGH']);

/** A finite number from a hash field, or null. */
function numberField(hash: Readonly<Record<string, string>>, field: string): number | null {
  const raw = hash[field];
  if (raw === undefined || raw === '') return null;
  const n = Number(raw);
  return Number.isFinite(n) ? n : null;
}

/**
 * The ad server's score hash (`score:{id}`, scoring/logic.ts `scoreHashFields`) as a prediction, or null when it may
 * not be served: absent, incomplete, or scored more than `maxAgeMs` before `nowMs`.
 */
export function cachedPrediction(
  customerId: string,
  hash: Readonly<Record<string, string>>,
  nowMs: number,
  maxAgeMs: number,
): Prediction | null {
  const score = numberField(hash, 'intent_score');
  const probability = numberField(hash, 'purchase_probability_7d');
  const scoredAt = numberField(hash, 'scored_at_ms');
  const featureTime = numberField(hash, 'feature_time_ms');
  const asOf = numberField(hash, 'as_of_ms');
  const level = hash['intent_level'];
  const version = hash['model_version'];
  if (score === null || probability === null || scoredAt === null || featureTime === null || asOf === null) return null;
  if (!level || !LEVELS.has(level) || !version) return null;
  if (nowMs - scoredAt > maxAgeMs) return null;
  return {
    customer_id: customerId,
    intent_score: score,
    intent_level: level as IntentLevel,
    purchase_probability_7d: probability,
    predicted_category: hash['predicted_category'] || null,
    model_version: version,
    scored_at: iso(scoredAt),
    feature_time: iso(featureTime),
    as_of: iso(asOf),
    source: 'cache',
  };
}

/** A score computed on demand, as a prediction. */
export function computedPrediction(score: IntentScore): Prediction {
  return {
    customer_id: score.customerId,
    intent_score: score.intentScore,
    intent_level: score.intentLevel,
    purchase_probability_7d: score.purchaseProbability7d,
    predicted_category: score.predictedCategory,
    model_version: score.modelVersion,
    scored_at: iso(score.scoredAtMs),
    feature_time: iso(score.featureTimeMs),
    as_of: iso(score.eventTimeMs),
    source: 'computed',
  };
}

/**
 * The features the ad server's hash (`features:{id}`, features/logic.ts `hashFields`) holds, as of its newest event:
 * what an on-demand score is computed from. Null when the hash is absent, is a merge alias, or lacks a feature the
 * model needs (`needed`: the current model's inputs; default every feature). A hash an older feature processor wrote
 * lacks the features added since: one the model does not read is NaN (unused), one of FEATURES_ABSENT_AS_ZERO is 0.
 */
export function featuresFromHash(
  hash: Readonly<Record<string, string>>,
  needed: ReadonlySet<FeatureName> | null = null,
): CustomerFeatures | null {
  const featureTime = numberField(hash, 'feature_time_ms');
  if (featureTime === null || hash['merged_into']) return null;
  const values = {} as Record<FeatureName, number>;
  for (const name of FEATURE_NAMES) {
    const v = numberField(hash, name);
    if (v === null && !(name in hash)) {
      if (FEATURES_ABSENT_AS_ZERO.has(name)) {
        values[name] = 0; // a hash an older feature processor wrote: it knew no such feature
        continue;
      }
      if (needed && !needed.has(name)) {
        values[name] = Number.NaN; // not an input of the model that scores it
        continue;
      }
    }
    if (v === null) return null;
    values[name] = v;
  }
  const affinity = new Map<string, number>();
  for (const [field, raw] of Object.entries(hash)) {
    if (!field.startsWith('affinity:')) continue;
    const v = Number(raw);
    if (Number.isFinite(v)) affinity.set(field.slice('affinity:'.length), v);
  }
  return { values, topCategory: hash['top_category'] ?? '', affinity, featureTimeMs: featureTime, refMs: featureTime };
}

export interface AdThresholds {
  readonly high: number;
  readonly medium: number;
}

export interface AdChoice {
  readonly adType: AdType;
  readonly creative: Creative;
  /** The category the ad is for (null for a brand ad). */
  readonly category: string | null;
}

/**
 * The seed's rule: score ≥ high → a product ad of the predicted category, ≥ medium → a category ad of it, else a brand
 * ad. When the catalog has no creative of that kind for the category, the decision steps down (product → category →
 * brand), so every known customer gets an ad. Among several eligible creatives the customer's hash picks one
 * (weighted), so a customer keeps seeing the same creative while nothing changes.
 */
export function decideAd(
  customerId: string,
  score: number,
  predictedCategory: string | null,
  catalog: CreativeCatalog,
  t: AdThresholds,
): AdChoice {
  const wanted: AdType = score >= t.high ? 'PRODUCT' : score >= t.medium ? 'CATEGORY' : 'BRAND';
  const order: AdType[] =
    wanted === 'PRODUCT' ? ['PRODUCT', 'CATEGORY', 'BRAND'] : wanted === 'CATEGORY' ? ['CATEGORY', 'BRAND'] : ['BRAND'];
  for (const adType of order) {
    const candidates =
      adType === 'BRAND' ? catalog.brand : predictedCategory ? catalog.byCategory(adType, predictedCategory) : [];
    if (candidates.length === 0) continue;
    const creative = pickCreative(candidates, `${customerId}|${adType}|${predictedCategory ?? ''}`);
    return { adType, creative, category: adType === 'BRAND' ? null : predictedCategory };
  }
  // The catalog guarantees at least one brand creative (creatives.ts), so this is unreachable with a valid catalog.
  throw new Error('creative catalog has no brand creative');
}

/** A weighted, stable choice: the same seed always picks the same creative from the same list. */
export function pickCreative(candidates: readonly Creative[], seed: string): Creative {
  const total = candidates.reduce((sum, c) => sum + c.weight, 0);
  let point = (fnv1a(seed) / 2 ** 32) * total;
  for (const c of candidates) {
    point -= c.weight;
    if (point < 0) return c;
  }
  return candidates[candidates.length - 1] as Creative;
}

/** 32-bit FNV-1a of a string's UTF-16 code units: a fast, well-spread hash for stable choices (not for security). */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
