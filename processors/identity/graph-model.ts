/**
 * The identity graph's write rules (graph-lib.lua: registerOne, unionOne and what they call) over a graph held in
 * process memory. Pure: no I/O.
 *
 * The first piece of the resolver's in-process graph (README, "Fewer calls per union, and what 5,000/s needs"): while
 * one resolver is the graph's only writer, it can register, search, judge and unite on its own picture and write Redis
 * once per part, provided the picture moves exactly as the scripts would move the graph. This class is that picture's
 * rules; `test/integration/identity-graph-model.test.ts` runs random operation sequences through the real scripts and
 * through it and requires the same replies and the same graph, key by key. With a journal ({@link GraphModel.takeWrites})
 * it also says what changed, as the commands picture-write.lua applies: graph-picture.ts holds the resolver's picture in
 * one and writes each part's changes in one script.
 *
 * Values are kept as the scripts store them (strings where Redis holds strings), so a dump compares with HGETALL.
 * Covered by the conformance test: what register.lua and union.lua reach (exact-hash links, the cap, the older cluster
 * surviving, MergeEntry JSON, watermarks, stale expectations). Not reached there: the `fresh` and `joinedIsDone` modes
 * (register-search.lua and union-batch.lua pass them) and findRoot's path compression (B:idc always names a root, as
 * merges rewrite it, so no path starts from it); they are mirrored line by line.
 */
import { createHash } from 'node:crypto';
import type { PICTURE_HASHES } from './graph-store.js';
import { keyOrder, sequenceOf } from './judging-picture.js';

/** SHA-1 of a stored record, hex, as Lua's redis.sha1hex gives it (mark-judged.lua names a judged record by it). */
export function recordSha(stored: string): string {
  return createHash('sha1').update(stored, 'utf8').digest('hex');
}

/** The graph's hashes the picture holds, by their names in graph-lib.lua's `K` table (picture-write.lua's targets). */
export type GraphHash = keyof typeof PICTURE_HASHES;
/** The hashes whose values the model keeps as numbers (the scripts' counters, sequences and versions). */
const NUMERIC: ReadonlySet<GraphHash> = new Set(['counters', 'cseq', 'cver']);

/** A string as the scripts' cjson.encode writes it (it escapes `/` too; non-ASCII is written as is). */
export function cjsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '/') out += '\\/';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

interface Candidate {
  id: string;
  seq: number;
  method: string;
  confidence: string;
  matchWeight: string;
}

/** A register reply as register.lua answers it (graph-store.ts parseRegister reads the same array). */
export type ModelRegisterReply =
  | { applied: true; root: string }
  | {
      applied: false;
      root: string;
      isNew: boolean;
      method: string;
      previous: string;
      refused: number;
      merges: string[];
    };

/** A union reply as union.lua answers it; undefined for an unknown identity. */
export interface ModelUnionReply {
  alreadyApplied: boolean;
  root: string;
  refused: number;
  stale: boolean;
  merges: string[];
}

/** A register reply as the array register.lua returns (what graph-store.ts parseRegister reads). */
export function registerReplyArray(r: ModelRegisterReply): (string | number)[] {
  return r.applied ? [1, r.root] : [0, r.root, r.isNew ? 1 : 0, r.method, r.previous, r.refused, ...r.merges];
}

/** A union reply as the array union.lua returns (what graph-store.ts unionResultOf reads). */
export function unionReplyArray(r: ModelUnionReply): (string | number)[] {
  return [r.alreadyApplied ? 1 : 0, r.root, r.refused, r.stale ? 1 : 0, ...r.merges];
}

/** A probabilistic match as union.lua takes it: confidence and weight as JSON number literals, expectations or ''/'0'. */
export interface ModelMatch {
  key: string;
  confidence: string;
  matchWeight: string;
  root: string;
  size: string;
}

/** What changed since the last {@link GraphModel.takeWrites}: hash fields written or deleted, set members, outbox. */
interface Journal {
  readonly fields: Map<GraphHash, Set<string>>;
  /** Members added to each set (the model's set already says each is new). */
  readonly added: Map<string, string[]>;
  /** Sets deleted: written again whole, after their DEL, if they hold members by the time the writes are taken. */
  readonly dropped: Set<string>;
  readonly outbox: [mergeId: string, json: string][];
}

export class GraphModel {
  /** `B:counters`: cluster and merge sequences. */
  readonly counters = new Map<string, number>();
  /** `B:rec`: identity key → record as stored. */
  readonly rec = new Map<string, string>();
  /** `B:idc`: identity key → root cluster id. */
  readonly idc = new Map<string, string>();
  /** `B:cseq`: cluster id → creation sequence. */
  readonly cseq = new Map<string, number>();
  /** `B:parent`: retired cluster id → the cluster it went into. */
  readonly parent = new Map<string, string>();
  /**
   * `B:outbox` and `B:outbox:order`: merge id → MergeEntry JSON, and → its sequence. Kept only with `keepOutbox` (the
   * conformance test): the graph's outbox is emptied by its readers, and a journal hands merges on instead.
   */
  readonly outbox = new Map<string, string>();
  readonly outboxOrder = new Map<string, number>();
  /** `B:wm:register`, `B:wm:union`: watermark field → offset as sent. */
  readonly wmRegister = new Map<string, string>();
  readonly wmUnion = new Map<string, string>();
  /** `B:cver`: root → version. */
  readonly cver = new Map<string, number>();
  /** `B:fresh`: identity key → the cluster its registration made, until judged. */
  readonly fresh = new Map<string, string>();
  /** `B:judged`: identity key → SHA-1 of its record when it was judged. */
  readonly judged = new Map<string, string>();
  /** Sets by their name after the base: `mem:<cluster>`, `blk:<name>`, `email:<hash>`, `phone:<hash>`. */
  readonly sets = new Map<string, Set<string>>();
  private readonly journal: Journal | undefined;
  /** Each hash by its name (put, remove, takeWrites, loadHash). */
  private readonly hashes: Readonly<Record<GraphHash, Map<string, string | number>>> = {
    counters: this.counters,
    rec: this.rec,
    idc: this.idc,
    cseq: this.cseq,
    parent: this.parent,
    cver: this.cver,
    fresh: this.fresh,
    judged: this.judged,
    wmRegister: this.wmRegister,
    wmUnion: this.wmUnion,
  };
  private readonly blocks = new Map<string, { readonly name: string; readonly set: Set<string> }>();

  constructor(private readonly options: { keepOutbox?: boolean; journal?: boolean } = { keepOutbox: true }) {
    if (options.journal) this.journal = { fields: new Map(), added: new Map(), dropped: new Set(), outbox: [] };
  }

  /** Fills hash `name` from the graph's HGETALL reply (not journaled: it is what the graph already holds). */
  loadHash(name: GraphHash, from: Readonly<Record<string, string>>): void {
    const map = this.hashes[name];
    const numeric = NUMERIC.has(name);
    for (const [field, value] of Object.entries(from)) map.set(field, numeric ? Number(value) : value);
  }

  private touched(name: GraphHash, field: string): void {
    const journal = this.journal;
    if (!journal) return;
    let fields = journal.fields.get(name);
    if (!fields) {
      fields = new Set();
      journal.fields.set(name, fields);
    }
    fields.add(field);
  }

  private put(name: GraphHash, field: string, value: string | number): void {
    this.hashes[name].set(field, value);
    this.touched(name, field);
  }

  private remove(name: GraphHash, field: string): void {
    if (this.hashes[name].delete(field)) this.touched(name, field);
  }

  private addMember(name: string, member: string, into?: Set<string>): void {
    let set = into ?? this.sets.get(name);
    if (!set) {
      set = new Set();
      this.sets.set(name, set);
    }
    if (set.has(member)) return;
    set.add(member);
    const journal = this.journal;
    if (!journal || journal.dropped.has(name)) return; // written whole after its DEL
    const added = journal.added.get(name);
    if (added) added.push(member);
    else journal.added.set(name, [member]);
  }

  private dropSet(name: string): void {
    this.sets.delete(name);
    this.journal?.added.delete(name);
    this.journal?.dropped.add(name);
  }

  /**
   * The changes since the last call as picture-write.lua's commands (without its leading write count): each hash
   * field's final value (or its deletion), sets' new members (a deleted set: DEL, then whole if it holds members
   * again), the merge outbox in merge order. Empty when nothing changed. Needs a model made with `journal`.
   */
  takeWrites(): string[] {
    const journal = this.journal;
    if (!journal) throw new Error('graph model: takeWrites needs a model made with a journal');
    const out: string[] = [];
    // Appended one by one: a part of many identities spreads arrays past what one call takes as arguments.
    const command = (op: string, target: string, args: Iterable<string>, n: number) => {
      out.push(op, target, String(n));
      for (const arg of args) out.push(arg);
    };
    for (const [name, fields] of journal.fields) {
      const map = this.hashes[name];
      const set: string[] = [];
      const deleted: string[] = [];
      for (const field of fields) {
        const value = map.get(field);
        if (value === undefined) deleted.push(field);
        else set.push(field, String(value));
      }
      if (set.length > 0) command('H', name, set, set.length);
      if (deleted.length > 0) command('D', name, deleted, deleted.length);
    }
    for (const name of journal.dropped) {
      command('X', name, [], 0);
      const members = this.sets.get(name);
      if (members && members.size > 0) command('S', name, members, members.size);
    }
    for (const [name, members] of journal.added) command('S', name, members, members.length);
    if (journal.outbox.length > 0) command('O', '', journal.outbox.flat(), 2 * journal.outbox.length);
    journal.fields.clear();
    journal.added.clear();
    journal.dropped.clear();
    journal.outbox.length = 0;
    return out;
  }

  /**
   * Blocking set `block` (its name after `blk:`) as held in `sets`, with its full name: one lookup per registration
   * instead of two (blocking sets are never dropped, so the entry stays the set `sets` holds).
   */
  private block(block: string): { readonly name: string; readonly set: Set<string> } {
    let entry = this.blocks.get(block);
    if (!entry) {
      const name = `blk:${block}`;
      let set = this.sets.get(name);
      if (!set) {
        set = new Set();
        this.sets.set(name, set);
      }
      entry = { name, set };
      this.blocks.set(block, entry);
    }
    return entry;
  }

  /** The members of blocking set `block` (by its name after `blk:`). */
  blockMembers(block: string): ReadonlySet<string> {
    return this.block(block).set;
  }

  private size(root: string): number {
    return this.sets.get(`mem:${root}`)?.size ?? 0;
  }

  findRoot(clusterId: string | undefined, compress: boolean): string | undefined {
    if (clusterId === undefined) return undefined;
    const path: string[] = [];
    let current = clusterId;
    for (let up = this.parent.get(current); up !== undefined; up = this.parent.get(current)) {
      path.push(current);
      current = up;
    }
    if (compress) for (const id of path.slice(0, -1)) this.put('parent', id, current);
    if (path.length === 0 && !this.cseq.has(current)) return undefined;
    return current;
  }

  rootOfKey(key: string, compress: boolean): string | undefined {
    return this.findRoot(this.idc.get(key), compress);
  }

  private bumpVersion(root: string): void {
    this.put('cver', root, (this.cver.get(root) ?? 0) + 1);
  }

  private seqOf(clusterId: string): number {
    const n = sequenceOf(clusterId); // read off the id, as graph-lib.lua does; the hash only for another form
    return Number.isFinite(n) ? n : (this.cseq.get(clusterId) ?? Number.NaN);
  }

  private newCluster(): string {
    const n = (this.counters.get('cluster') ?? 0) + 1;
    this.put('counters', 'cluster', n);
    const id = `c-${n}`;
    this.put('cseq', id, n);
    return id;
  }

  private mergeInto(
    survivor: string,
    loser: string,
    c: Candidate,
    eventId: string,
    eventTimeMs: string,
  ): string | null {
    this.put('parent', loser, survivor);
    const moved = [...(this.sets.get(`mem:${loser}`) ?? [])];
    const fresh = moved.length === 1 && moved[0] !== undefined && this.fresh.get(moved[0]) === loser;
    if (fresh && moved[0] !== undefined) this.remove('fresh', moved[0]);
    moved.sort(keyOrder); // as Lua's table.sort orders them: by UTF-8 bytes
    for (const m of moved) this.put('idc', m, survivor);
    for (const m of moved) this.addMember(`mem:${survivor}`, m);
    this.dropSet(`mem:${loser}`);
    this.remove('cver', loser);
    this.bumpVersion(survivor);
    if (fresh) return null;
    const mergeId = `merge:${survivor}:${loser}`;
    const json =
      `{"mergeId":${cjsonString(mergeId)},"survivorId":${cjsonString(survivor)},"mergedId":${cjsonString(loser)}` +
      `,"method":${cjsonString(c.method)},"confidence":${c.confidence},"matchWeight":${c.matchWeight}` +
      `,"sourceEventId":${cjsonString(eventId)},"eventTimeMs":${eventTimeMs}` +
      `,"movedKeys":[${moved.map(cjsonString).join(',')}]}`;
    // The merge sequence orders the outbox; the write script takes the next one from the graph itself.
    const order = (this.counters.get('merge') ?? 0) + 1;
    this.counters.set('merge', order);
    if (this.options.keepOutbox) {
      this.outbox.set(mergeId, json);
      this.outboxOrder.set(mergeId, order);
    }
    this.journal?.outbox.push([mergeId, json]);
    return json;
  }

  private growCluster(
    start: string | undefined,
    candidates: Candidate[],
    cap: number,
    eventId: string,
    eventTimeMs: string,
  ): { current: string | undefined; joined: Candidate | undefined; merges: string[]; refused: number } {
    candidates.sort((a, b) => a.seq - b.seq);
    let current = start;
    let size = 1;
    let currentSeq = Number.NaN;
    if (current !== undefined) {
      size = this.size(current);
      currentSeq = this.seqOf(current);
    }
    let joined: Candidate | undefined;
    const merges: string[] = [];
    let refused = 0;
    for (const c of candidates) {
      const candidateSize = this.size(c.id);
      if (size + candidateSize > cap) refused++;
      else if (current === undefined) {
        current = c.id;
        currentSeq = c.seq;
        joined = c;
        size += candidateSize;
      } else {
        let [survivor, loser] = [current, c.id];
        if (c.seq < currentSeq) {
          [survivor, loser] = [c.id, current];
          currentSeq = c.seq;
        }
        const merge = this.mergeInto(survivor, loser, c, eventId, eventTimeMs);
        if (merge !== null) merges.push(merge);
        current = survivor;
        size += candidateSize;
      }
    }
    return { current, joined, merges, refused };
  }

  /** graph-lib.lua registerOne: `blocks` are set names, `fresh` as the resolver's registration passes it. */
  register(
    key: string,
    recordJson: string,
    email: string,
    phone: string,
    cap: number,
    eventId: string,
    eventTimeMs: string,
    wmField: string,
    wmOffset: string,
    blocks: readonly string[],
    fresh = false,
  ): ModelRegisterReply {
    if (wmField !== '') {
      const stored = this.wmRegister.get(wmField);
      if (stored !== undefined && Number(stored) >= Number(wmOffset)) {
        return { applied: true, root: this.rootOfKey(key, true) ?? '' };
      }
    }
    const previous = this.rootOfKey(key, true);
    const byRoot = new Set<string>();
    const candidates: Candidate[] = [];
    const collect = (indexName: string, method: string) => {
      for (const other of this.sets.get(indexName) ?? []) {
        if (other === key) continue;
        const root = this.rootOfKey(other, true);
        if (root !== undefined && root !== previous && !byRoot.has(root)) {
          byRoot.add(root);
          candidates.push({ id: root, seq: this.seqOf(root), method, confidence: '1', matchWeight: 'null' });
        }
      }
    };
    if (email !== '') collect(`email:${email}`, 'EMAIL_HASH');
    if (phone !== '') collect(`phone:${phone}`, 'PHONE_HASH');
    const grown = this.growCluster(previous, candidates, cap, eventId, eventTimeMs);
    let root = grown.current;
    let isNew = false;
    let method = 'PLATFORM_ID';
    if (previous === undefined) {
      if (grown.joined) method = grown.joined.method;
      else {
        root = this.newCluster();
        isNew = true;
        method = 'NEW';
        if (fresh) this.put('fresh', key, root);
      }
      this.put('idc', key, root as string);
      this.addMember(`mem:${root}`, key);
    }
    const at = root as string;
    this.put('rec', key, recordJson);
    if (email !== '') this.addMember(`email:${email}`, key);
    if (phone !== '') this.addMember(`phone:${phone}`, key);
    for (const block of blocks) {
      const { name, set } = this.block(block);
      this.addMember(name, key, set);
    }
    if (wmField !== '') this.put('wmRegister', wmField, wmOffset);
    this.bumpVersion(at);
    return {
      applied: false,
      root: at,
      isNew,
      method,
      previous: previous ?? '',
      refused: grown.refused,
      merges: grown.merges,
    };
  }

  /** graph-lib.lua unionOne; undefined for an unknown identity. */
  union(
    key: string,
    cap: number,
    eventId: string,
    eventTimeMs: string,
    wmField: string,
    wmOffset: string,
    ownRoot: string,
    ownSize: string,
    matches: readonly ModelMatch[],
    joinedIsDone = false,
  ): ModelUnionReply | undefined {
    const root = this.rootOfKey(key, true);
    if (root === undefined) return undefined;
    const unchanged = { alreadyApplied: false, root, refused: 0, stale: false, merges: [] };
    if (wmField !== '') {
      const stored = this.wmUnion.get(wmField);
      if (stored !== undefined && Number(stored) >= Number(wmOffset)) return { ...unchanged, alreadyApplied: true };
    }
    const matchRoots = matches.map((m) => this.rootOfKey(m.key, false));
    if (joinedIsDone && matches.length > 0 && matchRoots.every((r) => r === root)) return unchanged;
    const changed = (actual: string | undefined, expectedRoot: string, expectedSize: string) =>
      expectedRoot !== '' &&
      (actual !== expectedRoot || (expectedSize !== '0' && this.size(actual) !== Number(expectedSize)));
    if (changed(root, ownRoot, ownSize) || matches.some((m, i) => changed(matchRoots[i], m.root, m.size))) {
      return { ...unchanged, stale: true };
    }
    const byRoot = new Map<string, Candidate>();
    const candidates: Candidate[] = [];
    matches.forEach((m, i) => {
      const matchRoot = matchRoots[i];
      if (matchRoot === undefined || matchRoot === root) return;
      const c = byRoot.get(matchRoot);
      if (!c) {
        const candidate = {
          id: matchRoot,
          seq: this.seqOf(matchRoot),
          method: 'PROBABILISTIC',
          confidence: m.confidence,
          matchWeight: m.matchWeight,
        };
        byRoot.set(matchRoot, candidate);
        candidates.push(candidate);
      } else if (Number(m.confidence) > Number(c.confidence)) {
        c.confidence = m.confidence;
        c.matchWeight = m.matchWeight;
      }
    });
    const grown = this.growCluster(root, candidates, cap, eventId, eventTimeMs);
    if (wmField !== '') this.put('wmUnion', wmField, wmOffset);
    return {
      alreadyApplied: false,
      root: grown.current as string,
      refused: grown.refused,
      stale: false,
      merges: grown.merges,
    };
  }

  /** graph-lib.lua markJudgedAs: `key` judged as the record whose SHA-1 is `sha`; no longer fresh. */
  markJudgedAs(key: string, sha: string): void {
    this.put('judged', key, sha);
    this.remove('fresh', key);
  }

  /** graph-lib.lua markJudged: marks `key` if its stored record is still the one named `sha`; 1 when marked. */
  markJudged(key: string, sha: string): number {
    const stored = this.rec.get(key);
    if (stored === undefined || recordSha(stored) !== sha) return 0;
    this.markJudgedAs(key, sha);
    return 1;
  }
}
