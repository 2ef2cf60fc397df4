/**
 * What one resolver process keeps of the identity graph so that a group's search (register-search.lua) reads again
 * only what changed: blocking sets' members, identities' roots and clusters' members with their opened records.
 *
 * Never trusted on its own: every group's script checks what this names against the graph at that moment (a set's
 * size, a cluster's version, whether a root was retired or erased) and returns what differs, so a judgement is always
 * made on one atomic snapshot, as without the cache. Why each check is enough:
 * - blocking sets and clusters only grow, but by an erasure, which bumps the graph's erasure count (erase.lua): a
 *   different count, or none held, and the script answers everything and this cache starts again;
 * - an identity's root changes only when its cluster is merged into another (the old root is then retired and the
 *   script names the survivor, which holds every member of the retired one) or erased;
 * - every change of a cluster's members or of a member's record bumps its version (graph-lib.lua).
 * A stale picture costs a longer reply, never a judgement on clusters other than the graph's.
 */
import type { IdentityRecord } from './types.js';

/** A root cluster as last read: its version, its size and up to maxMembers members' records (sorted by key). */
export interface CachedCluster {
  readonly version: string;
  readonly size: number;
  readonly members: readonly IdentityRecord[];
}

/** A blocking set as last read: its members, and the distinct roots of their clusters then (in members' order). */
export interface CachedSet {
  readonly members: Set<string>;
  roots: string[];
}

/**
 * Bounds of the cache: past one of them it is dropped whole (the graph refills it). Roughly 70 bytes a set membership,
 * 100 a root and 500 a member record held (its strings and the cluster's reference): ~250 MB at most.
 */
const MAX_SET_MEMBERSHIPS = 1_000_000;
const MAX_ROOTS = 500_000;
const MAX_RECORDS = 250_000;

/** Where `id` ended up through `moves` (retired cluster id → the id it went into), following chains; itself if it never moved. */
export function followMoves(moves: ReadonlyMap<string, string>, id: string): string {
  let root = id;
  for (let next = moves.get(root); next !== undefined && next !== root; next = moves.get(root)) root = next;
  return root;
}

export class GraphReadCache {
  /** The graph's erasure count this cache is from; null = holds nothing (first use, or dropped). */
  erasures: string | null = null;
  /** Blocking set name → its members and their roots, or null when it holds more than maxBlockSize. */
  readonly sets = new Map<string, CachedSet | null>();
  /** Identity key → its root when last read (the identities this process registered or searched for). */
  readonly roots = new Map<string, string>();
  /** Root cluster id → the cluster when last read (change it through setCluster and deleteCluster). */
  readonly clusters = new Map<string, CachedCluster>();
  /** Cluster id → the id it was merged into, for merges this process made (its set pictures may still name them). */
  readonly retired = new Map<string, string>();
  /** Which maxMembers the clusters were read with: another value means reading them again. */
  maxMembers = 0;
  /** Moves on every {@link clear}: a call that started before one must not write what it read into the new cache. */
  generation = 0;
  private memberships = 0;
  private records = 0;

  /** Forgets everything (an erasure, a bound reached, another maxMembers). */
  clear(): void {
    this.generation++;
    this.erasures = null;
    this.sets.clear();
    this.roots.clear();
    this.retired.clear();
    this.clusters.clear();
    this.memberships = 0;
    this.records = 0;
  }

  /** Records a cluster as read from the graph. */
  setCluster(id: string, cluster: CachedCluster): void {
    this.records += cluster.members.length - (this.clusters.get(id)?.members.length ?? 0);
    this.clusters.set(id, cluster);
  }

  /** A cluster id as it stands after the merges this process made (itself when it made none of it). */
  currentRoot(id: string): string {
    return followMoves(this.retired, id);
  }

  /** Forgets a cluster (retired or erased). */
  deleteCluster(id: string): void {
    this.records -= this.clusters.get(id)?.members.length ?? 0;
    this.clusters.delete(id);
  }

  /** Records a set as read from the graph (null: over maxBlockSize). */
  setMembers(name: string, set: CachedSet | null): void {
    const before = this.sets.get(name);
    this.memberships += (set?.members.size ?? 0) - (before?.members.size ?? 0);
    this.sets.set(name, set);
  }

  /** Adds a key the group just registered, in cluster `root`, to a set held (its size was as expected). */
  addMember(set: CachedSet, key: string, root: string): void {
    if (!set.members.has(key)) {
      set.members.add(key);
      this.memberships++;
      if (root !== '' && !set.roots.includes(root)) set.roots.push(root);
    }
  }

  /** Drops everything when a bound is passed; called between groups. */
  bound(): void {
    if (
      this.memberships > MAX_SET_MEMBERSHIPS ||
      this.roots.size > MAX_ROOTS ||
      this.retired.size > MAX_ROOTS ||
      this.records > MAX_RECORDS
    ) {
      this.clear();
    }
  }
}
