/**
 * One search's snapshot of the graph as the unions judged on it leave it. Pure: no I/O.
 *
 * The resolver judges a round's identities in order, each against the graph as the ones before it left it. One
 * search answers them all (register-search.lua), so without this every union that changes a cluster a later identity
 * was judged on made that identity stale: it was searched and judged again, in a chain of round trips per round.
 * Instead each identity is judged on the snapshot as the unions before it would leave it: a retired cluster stands for
 * the one it was merged into, whose picture holds the members of both, exactly as the graph would answer them; and
 * its own unions are played here as graph-lib.lua's growCluster plays them (older cluster survives, the cap refuses).
 * The unions then go in one `sequenced` script (union-batch.lua), which checks the snapshot was still the graph's
 * and that every union lands where this picture expected: whatever does not is searched and judged again.
 *
 * A grown cluster's members are those the graph would answer (the first `maxMembers` by key) only while all of them
 * fit: a picture whose grown cluster has more members than that is not one the graph would answer, and {@link view}
 * says so (null), so the identity is searched again instead.
 */
import { followMoves } from './graph-cache.js';
import type { CandidateClusterRecords } from './graph-store.js';

/** The sequence number of a cluster id (`c-<n>`, graph-lib.lua newCluster): the older of two survives a union. */
export function sequenceOf(id: string): number {
  const match = /^c-(\d+)$/.exec(id);
  return match ? Number(match[1]) : Number.POSITIVE_INFINITY;
}

/** Code-point (UTF-8 byte) order of two strings: how the graph orders member keys. */
export function keyOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

/** Surrogates (code points above U+FFFF) after every other UTF-16 code unit, as in code-point order. */
function codeUnitRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

export class JudgingPicture {
  /** Retired cluster id → the id it was merged into. */
  private readonly movedTo = new Map<string, string>();
  /** Clusters grown by the unions played here: their pictures replace the snapshot's. */
  private readonly grown = new Map<string, CandidateClusterRecords>();

  constructor(
    private readonly maxClusterSize: number,
    private readonly maxMembers: number,
  ) {}

  /**
   * What the graph holds once every union played here landed as played: the clusters they grew, each at the version
   * its last union answered (`applied`: each union's identity and its result, in order; a cluster changes only by a
   * union whose identity ends in it, or is retired), the ids they retired with the root each is in now, and the root
   * of every identity they placed.
   */
  settle(applied: readonly { key: string; result?: { globalId: string; version?: string } | undefined }[]): {
    clusters: CandidateClusterRecords[];
    retired: Map<string, string>;
    roots: Map<string, string>;
  } {
    const versions = new Map<string, string>();
    const roots = new Map<string, string>();
    for (const { key, result } of applied) {
      if (!result) continue;
      if (result.version) versions.set(result.globalId, result.version);
      roots.set(key, result.globalId);
    }
    const clusters: CandidateClusterRecords[] = [];
    for (const cluster of this.grown.values()) {
      if (this.movedTo.has(cluster.id)) continue;
      const version = versions.get(cluster.id) ?? '';
      clusters.push({ ...cluster, version });
      if (version !== '') for (const m of cluster.members) roots.set(m.key, cluster.id);
    }
    const retired = new Map([...this.movedTo.keys()].map((id) => [id, this.rootOf(id)]));
    return { clusters, retired, roots };
  }

  /** The root a cluster id of the snapshot has now. */
  rootOf(id: string): string {
    return followMoves(this.movedTo, id);
  }

  /**
   * An identity's own cluster and its candidates' (`clusters`, as the search answered them: own first) as the unions
   * played so far leave them, in the search's order, each root once; null when one of them is a grown cluster whose
   * picture the graph would answer with only some of its members.
   */
  view(
    own: string | null,
    clusters: readonly CandidateClusterRecords[],
  ): { own: CandidateClusterRecords | undefined; others: CandidateClusterRecords[] } | null {
    const ownRoot = own === null ? null : this.rootOf(own);
    let ownCluster: CandidateClusterRecords | undefined;
    const others: CandidateClusterRecords[] = [];
    const listed = new Set<string>();
    for (const snapshot of clusters) {
      const root = this.rootOf(snapshot.id);
      if (listed.has(root)) continue;
      listed.add(root);
      const cluster = this.grown.get(root) ?? snapshot;
      if (cluster.size > cluster.members.length && this.grown.has(root)) return null;
      if (root === ownRoot) ownCluster = cluster;
      else others.push(cluster);
    }
    return { own: ownCluster, others };
  }

  /**
   * Plays an identity's unions as graph-lib.lua growCluster does: its cluster `own` grows by each of `joins` (roots of
   * this picture), oldest first, unless the result would exceed the cluster cap (refused); the older of two clusters
   * survives. Returns the root the identity ends in.
   */
  unite(own: CandidateClusterRecords, joins: readonly CandidateClusterRecords[]): string {
    let current = own;
    for (const join of [...joins].sort((a, b) => sequenceOf(a.id) - sequenceOf(b.id))) {
      if (current.size + join.size > this.maxClusterSize) continue;
      const [survivor, loser] = sequenceOf(join.id) < sequenceOf(current.id) ? [join, current] : [current, join];
      const members = [...survivor.members, ...loser.members].sort((a, b) => keyOrder(a.key, b.key));
      current = { id: survivor.id, size: current.size + join.size, members: members.slice(0, this.maxMembers) };
      this.movedTo.set(loser.id, survivor.id);
      this.grown.set(survivor.id, current);
    }
    return current.id;
  }
}
