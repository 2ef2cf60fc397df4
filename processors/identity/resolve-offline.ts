/**
 * In-memory incremental resolution: the reference behaviour of the streaming identity processor, used for fast
 * tuning and evaluation. Pure: no I/O.
 *
 * Records are processed strictly in order, each seeing only the records before it (as the stream does): candidates
 * come from the blocking keys and the exact email/phone indexes (blocking.ts), at most `maxCandidates` of them are
 * scored, and the record joins the cluster of every candidate it links to (probability ≥ threshold, no conflict),
 * merging those clusters. Clusters are a union-find whose root is the oldest record, so the surviving cluster id in a
 * merge is always the older one, as in the identity graph.
 *
 * One rule beyond pairwise links: a record never joins (or merges) a cluster holding a scored candidate it conflicts
 * with, even when another member of that cluster links. Single-link clustering otherwise chains a household member
 * into the cluster of the person they share an address with, through a record that lacks the contradicting fields.
 */
import { candidateKeys } from './blocking.js';
import { decideLinks } from './cluster-link.js';
import type { MatchModel } from './model.js';
import type { IdentityRecord } from './types.js';

/** Options of {@link resolveIncrementally}. */
export interface ResolveOptions {
  /** Earlier records scored per new record, those sharing the most keys first (exact hashes before all). @default 100 */
  readonly maxCandidates?: number;
  /** A merge that would make a cluster larger than this is refused (a runaway chain is worse than a missed link). @default 50 */
  readonly maxClusterSize?: number;
  /** Only the newest this-many members of one block are read: a huge block is a common value, not evidence. @default 200 */
  readonly maxBlockRead?: number;
}

/** Counters of one {@link resolveIncrementallyWithStats} run. */
export interface ResolveStats {
  readonly records: number;
  /** Pairs scored. */
  readonly comparisons: number;
  /** Candidate pairs that met the threshold. */
  readonly links: number;
  /** Links vetoed by a conflict. */
  readonly conflicts: number;
  /** Links that merged two earlier clusters (beyond the new record joining its first one). */
  readonly merges: number;
  /** Links not applied because the record conflicts with another member of either cluster. */
  readonly vetoedMerges: number;
  /** Links not applied because the merged cluster would exceed maxClusterSize. */
  readonly refusedMerges: number;
  /** Records that had more candidates than maxCandidates. */
  readonly truncatedCandidates: number;
}

// A shared exact hash outranks any number of shared fuzzy keys when candidates are capped.
const EXACT_KEY_RANK = 1000;

/**
 * Resolves records in order into clusters; returns record key → cluster id (the key of the cluster's oldest record).
 * @throws RangeError when two records have the same key (merge them with mergeRecord first).
 */
export function resolveIncrementally(
  records: readonly IdentityRecord[],
  model: MatchModel,
  options: ResolveOptions = {},
): Map<string, string> {
  return resolveIncrementallyWithStats(records, model, options).clusters;
}

/** {@link resolveIncrementally} plus counters. */
export function resolveIncrementallyWithStats(
  records: readonly IdentityRecord[],
  model: MatchModel,
  options: ResolveOptions = {},
): { clusters: Map<string, string>; stats: ResolveStats } {
  const maxCandidates = options.maxCandidates ?? 100;
  const maxClusterSize = options.maxClusterSize ?? 50;
  const maxBlockRead = options.maxBlockRead ?? 200;
  const parent: number[] = [];
  const size: number[] = [];
  const blocks = new Map<string, number[]>();
  /** Members of each root, oldest first. */
  const members = new Map<number, number[]>();
  const seenKeys = new Set<string>();
  const stats = {
    comparisons: 0,
    links: 0,
    conflicts: 0,
    merges: 0,
    vetoedMerges: 0,
    refusedMerges: 0,
    truncatedCandidates: 0,
  };

  const find = (x: number): number => {
    let root = x;
    while ((parent[root] ?? root) !== root) root = parent[root] ?? root;
    // Path compression keeps later finds O(1)-ish.
    while ((parent[x] ?? x) !== root) {
      const next = parent[x] ?? x;
      parent[x] = root;
      x = next;
    }
    return root;
  };

  records.forEach((record, i) => {
    if (seenKeys.has(record.key)) throw new RangeError(`duplicate record key ${record.key}`);
    seenKeys.add(record.key);
    parent.push(i);
    size.push(1);

    const keys = candidateKeys(record);
    const rank = new Map<number, number>();
    for (const key of keys) {
      const block = blocks.get(key);
      if (!block) continue;
      const weight = key.startsWith('em:') || key.startsWith('ph:') ? EXACT_KEY_RANK : 1;
      for (let b = block.length - 1; b >= Math.max(0, block.length - maxBlockRead); b--) {
        const c = block[b] ?? 0;
        rank.set(c, (rank.get(c) ?? 0) + weight);
      }
    }
    let candidates = [...rank.keys()];
    if (candidates.length > maxCandidates) {
      stats.truncatedCandidates++;
      // Most shared keys first, then the newest (recent activity is the likelier match); deterministic.
      candidates.sort((x, y) => (rank.get(y) ?? 0) - (rank.get(x) ?? 0) || y - x);
      candidates = candidates.slice(0, maxCandidates);
    }

    // Candidate clusters with all their members (newest first): the record is judged against whole clusters.
    const byRoot = new Map<number, number>();
    for (const c of candidates) byRoot.set(find(c), (byRoot.get(find(c)) ?? 0) + 1);
    const clusters = [...byRoot.keys()]
      .sort((x, y) => x - y)
      .map((root) => ({
        id: String(root),
        size: size[root] ?? 1,
        members: (members.get(root) ?? [root])
          .slice(-60)
          .reverse()
          .map((m) => records[m] ?? record),
      }));
    const decision = decideLinks(model, record, clusters);
    stats.comparisons += decision.comparisons;
    for (const refusal of decision.refusals) {
      if (refusal.reason === 'conflict') stats.conflicts++;
      else stats.vetoedMerges++;
    }
    for (const join of decision.joins) {
      stats.links++;
      const a = find(i);
      const b = Number(join.id);
      if (a === b) continue;
      if ((size[a] ?? 1) + (size[b] ?? 1) > maxClusterSize) {
        stats.refusedMerges++;
        continue;
      }
      const [survivor, merged] = a < b ? [a, b] : [b, a];
      parent[merged] = survivor;
      size[survivor] = (size[survivor] ?? 1) + (size[merged] ?? 1);
      members.set(survivor, [...(members.get(survivor) ?? [survivor]), ...(members.get(merged) ?? [merged])]);
      members.delete(merged);
      // Joining the first cluster is the new record's link; every further one merges two earlier clusters.
      if (a !== i) stats.merges++;
    }

    for (const key of keys) {
      const block = blocks.get(key);
      if (block) block.push(i);
      else blocks.set(key, [i]);
    }
  });

  const clusters = new Map<string, string>();
  records.forEach((record, i) => clusters.set(record.key, records[find(i)]?.key ?? record.key));
  return { clusters, stats: { records: records.length, ...stats } };
}

/** Pairwise precision/recall of a clustering against true matching pairs. */
export interface PairwiseMetrics {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  /** Distinct true pairs. */
  readonly truePairs: number;
  /** Pairs of records put in one cluster. */
  readonly predictedPairs: number;
  /** True pairs put in one cluster. */
  readonly truePositives: number;
}

/**
 * Pairwise metrics: every pair of records in one predicted cluster is a predicted match. A true pair whose record is
 * missing from `predicted` counts as missed. Empty sets score 1 (nothing to find, nothing wrong).
 */
export function pairwiseMetrics(
  predicted: ReadonlyMap<string, string>,
  truePairs: readonly (readonly [string, string])[],
): PairwiseMetrics {
  const clusterSizes = new Map<string, number>();
  for (const cluster of predicted.values()) clusterSizes.set(cluster, (clusterSizes.get(cluster) ?? 0) + 1);
  let predictedPairs = 0;
  for (const s of clusterSizes.values()) predictedPairs += (s * (s - 1)) / 2;
  const distinct = new Set<string>();
  let truePositives = 0;
  for (const [a, b] of truePairs) {
    if (a === b) continue;
    const id = a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
    if (distinct.has(id)) continue;
    distinct.add(id);
    const ca = predicted.get(a);
    if (ca !== undefined && ca === predicted.get(b)) truePositives++;
  }
  const precision = predictedPairs === 0 ? 1 : truePositives / predictedPairs;
  const recall = distinct.size === 0 ? 1 : truePositives / distinct.size;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, truePairs: distinct.size, predictedPairs, truePositives };
}

/**
 * Share of true pairs whose records share at least one blocking key or exact hash: the recall ceiling of any matcher
 * using these keys. Pairs with a record not among `records` count as missed.
 */
export function blockingRecall(
  records: readonly IdentityRecord[],
  truePairs: readonly (readonly [string, string])[],
): number {
  const keysOf = new Map<string, Set<string>>();
  for (const r of records) keysOf.set(r.key, new Set(candidateKeys(r)));
  if (truePairs.length === 0) return 1;
  let found = 0;
  for (const [a, b] of truePairs) {
    const ka = keysOf.get(a);
    const kb = keysOf.get(b);
    if (ka && kb && [...ka].some((k) => kb.has(k))) found++;
  }
  return found / truePairs.length;
}
