/**
 * What the API reads: the customer a request names (through the identity graph), the ad server's score hash, and, when
 * that is missing or too old, the feature hash to score on demand. Reads of one step share one Redis round trip
 * (auto-pipelining: every command issued in the same tick goes out together), so a cached prediction by global id costs
 * one round trip, by platform id two, and an on-demand score one more; a batch costs the same as one customer.
 *
 * The API only reads: the feature processor that owns a customer's partition is the one writer of its keys (see
 * features/store.ts). A computed score is answered, not stored; the stream writes the customer's next score.
 */
import type { Redis } from 'ioredis';
import type { CustomerFeatures } from '../features/definitions.js';
import type { FeatureStore } from '../features/store.js';
import type { IdentityGraph } from '../identity/graph-store.js';
import type { Scorer } from '../scoring/scorer.js';
import {
  cachedPrediction,
  computedPrediction,
  featuresFromHash,
  identityKeyOf,
  type CustomerRef,
  type Prediction,
} from './logic.js';

export type PredictOutcome =
  | { readonly kind: 'found'; readonly prediction: Prediction }
  | { readonly kind: 'not_found'; readonly reason: string }
  | { readonly kind: 'unavailable'; readonly reason: string };

export interface ReaderOptions {
  /** A cached score older than this (by its scored_at) is not served: the customer is scored on demand. */
  readonly maxScoreAgeMs: number;
}

/** Aliases followed from a merged-away id's feature hash to its survivor, at most. */
const MAX_ALIAS_HOPS = 8;

interface Pending {
  readonly index: number;
  /** The global id being read (the survivor, once known). */
  id: string;
  hops: number;
  /** The identity graph knows the customer (else only a feature hash could). */
  readonly known: boolean;
}

export class CustomerReader {
  constructor(
    private readonly redis: Redis,
    private readonly graph: IdentityGraph,
    private readonly store: FeatureStore,
    private readonly scorer: Scorer,
    private readonly options: ReaderOptions,
  ) {}

  /** One outcome per ref, in order. */
  async predict(refs: readonly CustomerRef[], nowMs = Date.now()): Promise<PredictOutcome[]> {
    const out: (PredictOutcome | undefined)[] = new Array<PredictOutcome | undefined>(refs.length);
    const globalIds = refs.flatMap((r) => ('customer_id' in r ? [r.customer_id] : []));
    const keys = refs.flatMap((r) => identityKeyOf(r) ?? []);

    // Round trip 1: the graph's answer for every ref, and the score hash of every id named directly.
    const [roots, byKey, directScores] = await Promise.all([
      globalIds.length > 0 ? this.graph.rootOf(globalIds) : new Map<string, string | null>(),
      keys.length > 0 ? this.graph.globalIdOf(keys) : new Map<string, string | null>(),
      Promise.all(globalIds.map((id) => this.redis.hgetall(this.store.scoreKey(id)))),
    ]);
    const scoreOf = new Map<string, Record<string, string>>();
    globalIds.forEach((id, i) => scoreOf.set(id, directScores[i] ?? {}));

    let pending: Pending[] = [];
    refs.forEach((ref, index) => {
      if ('customer_id' in ref) {
        // A global id the graph does not know may still have features (e.g. the graph lives elsewhere): try it as is.
        const root = roots.get(ref.customer_id);
        pending.push({ index, id: root ?? ref.customer_id, hops: 0, known: root != null });
      } else {
        const root = byKey.get(identityKeyOf(ref) as string);
        if (root) pending.push({ index, id: root, hops: 0, known: true });
        else out[index] = { kind: 'not_found', reason: 'unknown platform identity' };
      }
    });

    while (pending.length > 0) {
      // Round trip 2 (only for ids not read yet: platform refs, merged-away ids): their score hashes.
      const unread = [...new Set(pending.map((p) => p.id).filter((id) => !scoreOf.has(id)))];
      if (unread.length > 0) {
        const hashes = await Promise.all(unread.map((id) => this.redis.hgetall(this.store.scoreKey(id))));
        unread.forEach((id, i) => scoreOf.set(id, hashes[i] ?? {}));
      }
      const misses: Pending[] = [];
      for (const p of pending) {
        const cached = cachedPrediction(p.id, scoreOf.get(p.id) ?? {}, nowMs, this.options.maxScoreAgeMs);
        if (cached) out[p.index] = { kind: 'found', prediction: cached };
        else misses.push(p);
      }
      if (misses.length === 0) break;

      // Round trip 3: the feature hashes of the misses, to score them now (or follow a merge alias).
      const ids = [...new Set(misses.map((p) => p.id))];
      const hashes = await Promise.all(ids.map((id) => this.redis.hgetall(this.store.featuresKey(id))));
      const featuresOf = new Map(ids.map((id, i) => [id, hashes[i] ?? {}]));
      const toScore: { readonly p: Pending; readonly features: CustomerFeatures }[] = [];
      const next: Pending[] = [];
      const inputs = this.scorer.modelFeatures;
      const needed = inputs ? new Set(inputs) : null;
      for (const p of misses) {
        const hash = featuresOf.get(p.id) ?? {};
        const survivor = hash['merged_into'];
        const features = featuresFromHash(hash, needed);
        if (survivor && p.hops < MAX_ALIAS_HOPS) next.push({ ...p, id: survivor, hops: p.hops + 1 });
        else if (features) toScore.push({ p, features });
        else {
          const reason = p.known || p.hops > 0 ? 'no features for this customer yet' : 'unknown customer';
          out[p.index] = { kind: 'not_found', reason };
        }
      }
      if (toScore.length > 0) {
        const rows = toScore.map(({ p, features }) => ({ customerId: p.id, features, cause: 'on_demand' as const }));
        const scores = await this.scorer.score(rows, nowMs);
        toScore.forEach(({ p }, i) => {
          const score = scores?.[i];
          out[p.index] = score
            ? { kind: 'found', prediction: computedPrediction(score) }
            : { kind: 'unavailable', reason: 'no cached score and no model loaded to compute one' };
        });
      }
      pending = next;
    }
    return out.map((o) => o ?? { kind: 'not_found', reason: 'unknown customer' });
  }
}
