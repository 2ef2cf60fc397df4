/**
 * The resolver's in-process answer to "which global customer is this platform identity now": the root last read from
 * the graph, corrected by every merge this instance has heard of since. Merges are the only way a root changes (the
 * graph never splits a cluster), so "read root, then follow merged-away → survivor" is the current root as soon as the
 * merge is known here, whatever the order in which the read and the merge arrived.
 *
 * Pure and synchronous; the resolver feeds it from graph reads, its own merges and the identity-merges topic.
 */
export class RootCache {
  /** Platform identity → root as read (possibly retired since: `get` follows `retired`). */
  private readonly roots = new Map<string, string>();
  /** Merged-away global id → its survivor. */
  private readonly retired = new Map<string, string>();

  /** @param maxEntries identities kept before everything is dropped (a cache, not state: the graph holds the truth). */
  constructor(private readonly maxEntries = 200_000) {}

  get size(): number {
    return this.roots.size;
  }

  /** The current root of `key` as far as this instance knows, or undefined when it was never read. */
  get(key: string): string | undefined {
    const read = this.roots.get(key);
    if (read === undefined) return undefined;
    const root = this.follow(read);
    if (root !== read) this.roots.set(key, root);
    return root;
  }

  /** Records a root read from the graph (a retired id is fine: merges heard of are applied on `get`). */
  set(key: string, root: string): void {
    if (this.roots.size >= this.maxEntries && !this.roots.has(key)) this.clear();
    this.roots.set(key, root);
  }

  /** `mergedId` was retired into `survivorId`. Idempotent; merges may arrive in any order. */
  merged(mergedId: string, survivorId: string): void {
    if (mergedId === survivorId) return;
    // A retired id never comes back and the survivor is always the older cluster, so the map has no cycles; follow()
    // still bounds its walk in case a corrupt event says otherwise.
    if (this.retired.size >= this.maxEntries && !this.retired.has(mergedId)) this.clear();
    this.retired.set(mergedId, survivorId);
  }

  clear(): void {
    this.roots.clear();
    this.retired.clear();
  }

  private follow(id: string): string {
    let current = id;
    for (let hops = 0; hops <= this.retired.size; hops++) {
      const next = this.retired.get(current);
      if (next === undefined) return current;
      current = next;
    }
    return current;
  }
}
