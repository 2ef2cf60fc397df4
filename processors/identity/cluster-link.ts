/**
 * Which clusters a record joins: links judged against whole clusters, not single records. Pure: no I/O.
 *
 * Pairwise Fellegi–Sunter links chain: a record missing its first name and birth date matches both members of a
 * household, and single-link clustering then makes the two one person; a few such bridges and unrelated people form
 * a blob that only the cluster-size cap stops. Here:
 *
 * 1. A record is scored against every known member of each candidate cluster. Any pairwise conflict (model.ts
 *    isConflict) vetoes the cluster. Otherwise the cluster's evidence is the mean log2-odds over its members
 *    (average linkage), each member's score bounded to ±{@link SCORE_BOUND} bits so one exact duplicate cannot outvote
 *    members the record contradicts; it must reach the threshold's log-odds, and so must the best single member.
 *    A cluster none of whose members can reach it even with the best address agreement (model.ts
 *    weightBoundPreparedInto) is dropped before its members are scored: the same decision, without comparing the
 *    addresses of most candidates (on the messy benchmark half the pairs are never scored).
 * 2. The record joins the cluster with the strongest evidence. Every further cluster it links to would be a merge of
 *    two clusters: that is judged by the mean log2-odds over all pairs across the two (the record counted with the
 *    side it joined), which must reach the threshold plus {@link MERGE_BITS_PER_DOUBLING} bits per doubling of the
 *    smaller side: two large clusters that disagree on average do not become one because one record fits both, and
 *    the larger the clusters the more evidence a merge needs.
 *
 * The cluster-size cap of the graph stays as the last guard; with these rules honest data never reaches it.
 */
import { ATTRIBUTES, prepare, type PreparedRecord } from './compare.js';
import { isConflict, probabilityOf, weightBoundPreparedInto, weightPreparedInto, type MatchModel } from './model.js';
import type { IdentityRecord } from './types.js';

/** A member's score counts at most this many bits either way in a cluster's mean. */
export const SCORE_BOUND = 20;
/** Extra bits a cluster-to-cluster merge needs per doubling of the smaller cluster's size. */
export const MERGE_BITS_PER_DOUBLING = 1;

/** A cluster the record might join: its id, its size in the graph, and the members known to the caller. */
export interface CandidateCluster {
  readonly id: string;
  /** Identities in the cluster (may exceed `members.length` when the caller holds only some of them). */
  readonly size: number;
  /** Not changed once given: {@link decideLinks} keeps the prepared form of a list for the next record. */
  readonly members: readonly IdentityRecord[];
}

/** A cluster the record joins, with the evidence for it. */
export interface ClusterJoin {
  readonly id: string;
  /** The member that matched best: the link's evidence. */
  readonly key: string;
  /** Match probability of the best member. */
  readonly confidence: number;
  /** Match weight of the best member (Fellegi–Sunter, term-frequency adjusted). */
  readonly matchWeight: number;
  /** Comparison levels with the best member (compare.ts ATTRIBUTES order; -1 = missing). */
  readonly levels: readonly number[];
  /** Mean bounded log2-odds over the cluster's members (or, for a further cluster, across the two clusters). */
  readonly clusterLogOdds: number;
}

/** A cluster the record matched pairwise but does not join, and why. */
export interface ClusterRefusal {
  readonly id: string;
  /** conflict: a member contradicts the record; contradicted: the members disagree on average; merge: too little
   * evidence to merge this cluster with the one the record joined. */
  readonly reason: 'conflict' | 'contradicted' | 'merge';
  readonly key: string;
  readonly probability: number;
  readonly weight: number;
}

export interface LinkDecision {
  /** Clusters to unite with the record, strongest first. */
  readonly joins: readonly ClusterJoin[];
  readonly refusals: readonly ClusterRefusal[];
  /** Pairs scored (not counting the bound that rules most candidate clusters out before scoring). */
  readonly comparisons: number;
}

/** Options of {@link decideLinks}. */
export interface LinkOptions {
  /** Link threshold (match probability). @default the model's */
  readonly threshold?: number;
  /** At most this many members of a cluster are compared (the first ones given). @default 60 */
  readonly maxMembers?: number;
  /**
   * The record's own cluster when it already has one (an identity seen before, or linked by an exact hash): then even
   * the first cluster it joins is a merge of two clusters, judged across them.
   */
  readonly own?: CandidateCluster;
}

const logit2 = (p: number) => Math.log2(p / (1 - p));

/** The first `max` members prepared, kept per members list (a cluster's list is the resolver's until it changes). */
const preparedLists = new WeakMap<readonly IdentityRecord[], { max: number; prepared: PreparedRecord[] }>();
function preparedMembers(members: readonly IdentityRecord[], max: number): PreparedRecord[] {
  const known = preparedLists.get(members);
  if (known?.max === max) return known.prepared;
  const prepared = members.slice(0, max).map(prepare);
  preparedLists.set(members, { max, prepared });
  return prepared;
}
const bound = (x: number) => Math.max(-SCORE_BOUND, Math.min(SCORE_BOUND, x));

/** Decides which candidate clusters `record` joins (see the module comment). Deterministic in its inputs' order. */
export function decideLinks(
  model: MatchModel,
  record: IdentityRecord,
  clusters: readonly CandidateCluster[],
  options: LinkOptions = {},
): LinkDecision {
  const threshold = options.threshold ?? model.threshold;
  const maxMembers = options.maxMembers ?? 60;
  const cut = logit2(threshold);
  const priorLogOdds = logit2(model.prior);
  const self = prepare(record);
  let comparisons = 0;
  const refusals: ClusterRefusal[] = [];
  const viable: { join: ClusterJoin; members: PreparedRecord[]; size: number }[] = [];
  const v = new Int8Array(ATTRIBUTES.length); // each pair's comparison vector, reused
  const bestLevels = new Int8Array(ATTRIBUTES.length);

  for (const cluster of clusters) {
    const members = preparedMembers(cluster.members, maxMembers);
    if (members.length === 0) continue;
    // A cluster none of whose members can reach the threshold is no candidate (below): most clusters the blocking
    // finds are such, and a bound that leaves the addresses uncompared tells them apart for less than scoring them.
    let reachable = false;
    for (const m of members) {
      if (weightBoundPreparedInto(model, self, m, v) + priorLogOdds >= cut) {
        reachable = true;
        break;
      }
    }
    if (!reachable) continue;
    let best: PreparedRecord | null = null;
    let bestWeight = 0;
    let sum = 0;
    let conflict: { key: string; weight: number } | null = null;
    for (const m of members) {
      comparisons++;
      const weight = weightPreparedInto(model, self, m, v);
      if (!conflict && isConflict(self, m, v)) conflict = { key: m.record.key, weight };
      sum += bound(weight + priorLogOdds);
      if (!best || weight > bestWeight) {
        best = m;
        bestWeight = weight;
        bestLevels.set(v);
      }
    }
    if (!best || bestWeight + priorLogOdds < cut) continue; // no member links at all: not a candidate
    const mean = sum / members.length;
    if (conflict) {
      refusals.push({
        id: cluster.id,
        reason: 'conflict',
        key: conflict.key,
        probability: probabilityOf(model, conflict.weight),
        weight: conflict.weight,
      });
      continue;
    }
    const join: ClusterJoin = {
      id: cluster.id,
      key: best.record.key,
      confidence: probabilityOf(model, bestWeight),
      matchWeight: bestWeight,
      levels: Array.from(bestLevels),
      clusterLogOdds: mean,
    };
    if (mean < cut) {
      refusals.push({
        id: cluster.id,
        reason: 'contradicted',
        key: join.key,
        probability: join.confidence,
        weight: bestWeight,
      });
      continue;
    }
    viable.push({ join, members, size: Math.max(cluster.size, members.length) });
  }

  viable.sort(
    ({ join: x }, { join: y }) => y.clusterLogOdds - x.clusterLogOdds || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0),
  );
  const joins: ClusterJoin[] = [];
  const own = (options.own?.members ?? []).filter((m) => m.key !== record.key).slice(0, maxMembers);
  const joined: PreparedRecord[] = [self, ...own.map(prepare)];
  let joinedSize = Math.max(1 + own.length, options.own?.size ?? 1);
  for (const { join, members, size } of viable) {
    if (joinedSize === 1) {
      joins.push(join);
    } else {
      // A merge of what the record has joined so far with another cluster: judged across the two.
      let sum = 0;
      let n = 0;
      let conflict = false;
      for (const a of joined) {
        for (const b of members) {
          comparisons++;
          const weight = weightPreparedInto(model, a, b, v);
          if (isConflict(a, b, v)) conflict = true;
          sum += bound(weight + priorLogOdds);
          n++;
        }
      }
      const mean = sum / n;
      const needed = cut + MERGE_BITS_PER_DOUBLING * Math.log2(Math.min(joinedSize, size));
      if (conflict || mean < needed) {
        refusals.push({
          id: join.id,
          reason: conflict ? 'conflict' : 'merge',
          key: join.key,
          probability: join.confidence,
          weight: join.matchWeight,
        });
        continue;
      }
      joins.push({ ...join, clusterLogOdds: mean });
    }
    joined.push(...members);
    joinedSize += size;
  }
  return { joins, refusals, comparisons };
}
