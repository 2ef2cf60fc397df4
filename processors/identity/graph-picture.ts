/**
 * The identity graph held whole in the resolver's process while it is the graph's only writer (README, identity
 * section: "The graph in process"). It answers what the resolver asks of the graph for one part of a round
 * (registerAndSearch, unionMany, markJudged) from its own picture, moved by graph-model.ts exactly as the scripts move
 * the graph, and writes the part's changes in ONE script at the end ({@link GraphPicture.commit}, picture-write.lua),
 * which refuses when any other script wrote the graph since the picture was exact (countWrite). A refused part wrote
 * nothing: the resolver drops the picture and runs the part through the scripts, which check the graph as it is.
 *
 * Replies are the ones the scripts give (register-search.lua and union-batch.lua, read by graph-store.ts), so the
 * resolver's judging and sequencing code is the same on both paths; `test/integration/identity-picture.test.ts` runs
 * the same rounds through both and requires the same graph.
 */
import { randomInt } from 'node:crypto';
import {
  blockNames,
  jsonNumber,
  metaArgs,
  parseRegister,
  StoredIdentitiesFound,
  unionResultOf,
  type CandidateClusterRecords,
  type PartGraph,
  type PictureSource,
  type RegisterResult,
  type RegisterSearchItem,
  type RegisterSearchResult,
  type UnionItem,
  type UnionResult,
} from './graph-store.js';
import {
  GraphModel,
  recordSha,
  registerReplyArray,
  unionReplyArray,
  type GraphHash,
  type ModelMatch,
  type ModelUnionReply,
} from './graph-model.js';
import { keyOrder } from './judging-picture.js';
import type { PiiCodec } from './pii-codec.js';
import type { IdentityRecord } from './types.js';

/** The part's writes were refused: another writer (a second resolver, an erasure) changed the graph meanwhile. */
export class PictureMoved extends Error {
  constructor(readonly found: string) {
    super(`the identity graph was written by another writer (write count ${found}): the picture no longer holds`);
    this.name = 'PictureMoved';
  }
}

/** Writes picture-write.lua's commands at a write count (IdentityGraph.writePicture). */
export type PictureWriter = (
  writes: string,
  next: string,
  commands: readonly string[],
) => Promise<{ written: boolean; writes: string }>;

export class GraphPicture implements PartGraph {
  /**
   * Identity key → its stored record, opened: those registered here, and those read at load once a search lists them
   * (opening ~200,000 at start would hold the first round for seconds).
   */
  private readonly open = new Map<string, IdentityRecord>();
  /** Rejections of this part, written with its commit (union-batch.lua writes them with the union). */
  private rejections: string[] = [];
  /** Blocking set name → the distinct roots of its members when it had `size` of them ({@link rootsOf}). */
  private readonly setRoots = new Map<string, { size: number; roots: string[] }>();
  /** Clusters as a search lists them, by root, while the root keeps the version they were listed at. */
  private readonly listed = new Map<
    string,
    { version: number; maxMembers: number; cluster: CandidateClusterRecords }
  >();

  private constructor(
    private readonly model: GraphModel,
    private readonly codec: PiiCodec,
    readonly maxClusterSize: number,
    private writes: string,
    private readonly writer: PictureWriter,
  ) {}

  /** A picture of the graph as `source` read it (its records are opened as searches list them). */
  static load(source: PictureSource, maxClusterSize: number, writer: PictureWriter): GraphPicture {
    const { codec } = source;
    const model = new GraphModel({ journal: true });
    for (const [name, entries] of Object.entries(source.hashes)) model.loadHash(name as GraphHash, entries);
    model.counters.delete('writes'); // the scripts' own count: the picture holds it apart (`writes`)
    for (const [name, members] of source.sets) model.sets.set(name, new Set(members));
    return new GraphPicture(model, codec, maxClusterSize, source.writes, writer);
  }

  /** Identities the picture holds. */
  get identities(): number {
    return this.model.rec.size;
  }

  /** register-search.lua on the picture (see IdentityGraph.registerAndSearch). */
  registerAndSearch(
    items: readonly RegisterSearchItem[],
    options: { register: boolean; maxBlockSize: number; maxMembers: number; absent?: readonly string[] },
  ): Promise<RegisterSearchResult[]> {
    return Promise.resolve(this.registerAndSearchNow(items, options));
  }

  private registerAndSearchNow(
    items: readonly RegisterSearchItem[],
    options: { register: boolean; maxBlockSize: number; maxMembers: number; absent?: readonly string[] },
  ): RegisterSearchResult[] {
    const { model, codec } = this;
    if (options.register) {
      const stored = (options.absent ?? []).filter((key) => model.rec.has(key));
      if (stored.length > 0) throw new StoredIdentitiesFound(stored);
    }
    const names = items.map(({ blockingKeys }) => blockNames(codec, blockingKeys));
    const registered: (RegisterResult | null)[] = [];
    const sent: string[] = [];
    items.forEach(({ record, sealed, meta }, i) => {
      if (!options.register) {
        registered.push(null);
        return;
      }
      const value = sealed ?? codec.sealRecord(record, false); // the picture holds the record itself
      sent.push(value);
      const [eventId, eventTimeMs, field, offset] = metaArgs(meta);
      const reply = model.register(
        record.key,
        value,
        record.emailSha256 ? codec.hashIndexName('email', record.emailSha256) : '',
        record.phoneSha256 ? codec.hashIndexName('phone', record.phoneSha256) : '',
        this.maxClusterSize,
        eventId,
        eventTimeMs,
        field,
        offset,
        names[i] ?? [],
        true,
      );
      if (!reply.applied) this.open.set(record.key, record);
      registered.push(parseRegister(registerReplyArray(reply)));
    });
    return items.map(({ record }, i) => {
      const own = model.rootOfKey(record.key, false) ?? null;
      const clusters: CandidateClusterRecords[] = [];
      const seen = new Set<string>();
      const add = (root: string) => {
        if (seen.has(root)) return;
        seen.add(root);
        clusters.push(this.cluster(root, options.maxMembers));
      };
      if (own !== null) add(own);
      let skippedBlocks = 0;
      for (const name of names[i] ?? []) {
        const set = model.blockMembers(name);
        if (set.size > options.maxBlockSize) {
          skippedBlocks++;
          continue;
        }
        for (const root of this.rootsOf(name, set)) add(root);
      }
      // Whether the record as stored now was judged before; one this call registered new was never judged.
      const r = registered[i] ?? null;
      const isNew = r !== null && !r.alreadyApplied && r.previousGlobalId === null;
      const stored = isNew ? sent[i] : model.rec.get(record.key);
      const sha = stored === undefined ? '' : recordSha(stored);
      const judged = !isNew && sha !== '' && model.judged.get(record.key) === sha;
      return { registered: r, skippedBlocks, own, clusters, recordSha: sha, judged };
    });
  }

  /**
   * The distinct roots of a blocking set's members. Held per set while its size holds: members only join a set, and
   * a root only changes by a merge, which leaves a parent pointer to follow (an erasure drops the whole picture).
   */
  private rootsOf(name: string, set: ReadonlySet<string>): readonly string[] {
    const { model } = this;
    let held = this.setRoots.get(name);
    if (!held) {
      if (this.setRoots.size >= 500_000) this.setRoots.clear();
      held = { size: 0, roots: [] };
      this.setRoots.set(name, held);
    }
    if (held.roots.some((root) => model.parent.has(root))) {
      held.roots = [...new Set(held.roots.map((root) => model.findRoot(root, false) ?? ''))].filter((r) => r !== '');
    }
    if (held.size < set.size) {
      // The members that joined since: the last ones in the set's insertion order.
      const roots = new Set(held.roots);
      let at = 0;
      for (const member of set) {
        if (at++ < held.size) continue;
        const root = model.rootOfKey(member, false);
        if (root !== undefined) roots.add(root);
      }
      held.size = set.size;
      held.roots = [...roots];
    }
    return held.roots;
  }

  /** A root as register-search.lua lists it: size, version, the first maxMembers members by key, opened. */
  private cluster(root: string, maxMembers: number): CandidateClusterRecords {
    const version = this.model.cver.get(root) ?? 0;
    const held = this.listed.get(root);
    if (held && held.version === version && held.maxMembers === maxMembers) return held.cluster;
    const keys = [...(this.model.sets.get(`mem:${root}`) ?? [])].sort(keyOrder);
    const members: IdentityRecord[] = [];
    for (const key of keys.slice(0, maxMembers)) {
      let record = this.open.get(key);
      const stored = record ? undefined : this.model.rec.get(key);
      if (stored !== undefined) {
        record = this.codec.openRecord(key, stored); // throws on a record that does not open, as a graph read does
        this.open.set(key, record);
      }
      if (record) members.push(record);
    }
    const cluster = { id: root, size: keys.length, members, version: String(version) };
    if (this.listed.size >= 200_000) this.listed.clear();
    this.listed.set(root, { version, maxMembers, cluster });
    return cluster;
  }

  /** union-batch.lua on the picture (see IdentityGraph.unionMany). */
  unionMany(
    items: readonly UnionItem[],
    judged: readonly { key: string; recordSha: string }[] = [],
    options: { sequenced?: boolean } = {},
  ): Promise<UnionResult[]> {
    return Promise.resolve(this.unionManyNow(items, judged, options.sequenced ?? false));
  }

  private unionManyNow(
    items: readonly UnionItem[],
    judged: readonly { key: string; recordSha: string }[],
    sequenced: boolean,
  ): UnionResult[] {
    const { model } = this;
    for (const { key, recordSha: sha } of judged) if (sha !== '') model.markJudged(key, sha);
    const versionOf = (id: string) => String(model.cver.get(id) ?? 0);
    let setAsideFrom = items.length;
    const named = new Set<string>();
    if (sequenced) {
      items.forEach(({ judgedClusters = [] }, i) => {
        for (const { id, version } of judgedClusters) {
          named.add(id);
          if (versionOf(id) !== version) setAsideFrom = Math.min(setAsideFrom, i);
        }
      });
    }
    return items.map((item, k) => {
      const { key, matches, meta, expectedOwn, judgedClusters = [] } = item;
      let reply: ModelUnionReply | undefined;
      if (k >= setAsideFrom || (!sequenced && judgedClusters.some((c) => versionOf(c.id) !== c.version))) {
        reply = { alreadyApplied: false, root: '', refused: 0, stale: true, merges: [] };
      } else if (matches.length === 0) {
        const root = model.rootOfKey(key, true);
        reply = root === undefined ? undefined : { alreadyApplied: false, root, refused: 0, stale: false, merges: [] };
      } else {
        const [eventId, eventTimeMs] = metaArgs({ eventId: meta.eventId, eventTimeMs: meta.eventTimeMs });
        const modelMatches: ModelMatch[] = matches.map((m) => ({
          key: m.key,
          confidence: jsonNumber(m.confidence, 'confidence'),
          matchWeight: jsonNumber(m.matchWeight, 'matchWeight'),
          root: m.expected?.root ?? '',
          size: String(m.expected?.size ?? 0),
        }));
        reply = model.union(
          key,
          this.maxClusterSize,
          eventId,
          eventTimeMs,
          '',
          '0',
          expectedOwn?.root ?? '',
          String(expectedOwn?.size ?? 0),
          modelMatches,
          true,
        );
      }
      if (!reply) throw new Error(`identity graph: union of an unregistered identity: ${key}`);
      const applied = !reply.stale;
      if (applied) {
        const sha = item.recordSha ?? '';
        if (sha !== '') {
          if (sequenced && named.has(expectedOwn?.root ?? '')) model.markJudgedAs(key, sha);
          else model.markJudged(key, sha);
        }
        for (const r of item.rejections ?? []) this.rejections.push(r.eventId, JSON.stringify(r));
      }
      if (sequenced && k < setAsideFrom) {
        if (!applied) setAsideFrom = k;
        else if (item.expectedAfter !== undefined && item.expectedAfter !== '' && reply.root !== item.expectedAfter)
          setAsideFrom = k + 1;
      }
      return { ...unionResultOf(unionReplyArray(reply)), version: applied ? versionOf(reply.root) : '' };
    });
  }

  /** mark-judged.lua on the picture. */
  markJudged(items: readonly { key: string; recordSha: string }[]): Promise<number> {
    let marked = 0;
    for (const { key, recordSha: sha } of items) if (sha !== '') marked += this.model.markJudged(key, sha);
    return Promise.resolve(marked);
  }

  /**
   * Writes everything the part changed in one script, if no other script wrote the graph since the picture was
   * exact; throws {@link PictureMoved} otherwise (nothing written: drop this picture). A part that changed nothing
   * costs no round trip.
   */
  async commit(): Promise<void> {
    const commands = this.model.takeWrites();
    if (this.rejections.length > 0) commands.push('R', '', String(this.rejections.length), ...this.rejections);
    this.rejections = [];
    if (commands.length === 0) return;
    // The count to leave is drawn at random, not the next integer: see picture-write.lua.
    const { written, writes } = await this.writer(this.writes, String(randomInt(1, 2 ** 47)), commands);
    if (!written) throw new PictureMoved(writes);
    this.writes = writes;
  }
}
