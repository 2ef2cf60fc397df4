/**
 * The identity graph in Redis: which global customer (cluster) each platform identity belongs to, kept as a union-find
 * whose every update is one Lua script, so identity-processor instances on different partitions can write at once
 * without ever giving one person two ids or losing a merge.
 *
 * Layout (`B` = `<prefix>idg:v1:{<prefix>idg}`; every key carries the one hash tag `{<prefix>idg}`):
 * - `B:counters` hash: `cluster` (last cluster sequence), `merge` (last merge sequence), `erasures` (people erased: a
 *   reader holding sets or clusters in process forgets them when it moves)
 * - `B:meta` hash: `pii-format` (`s1`), `pii-key-id`: how personal data is kept (pii-codec.ts), set on first use
 * - `B:rec` hash: identity key → SEALED record (AES-256-GCM, `s1.<keyId>.<base64url>`, pii-codec.ts) · `B:idc` hash:
 *   identity key → ROOT cluster id (merges rewrite it eagerly)
 * - `B:cseq` hash: cluster id → creation sequence (every cluster ever made; ids are `c-<sequence>`)
 * - `B:parent` hash: retired cluster id → the cluster it was merged into (path-compressed by writing scripts)
 * - `B:mem:<clusterId>` set: identity keys of a root cluster (deleted when the cluster is retired)
 * - `B:cver` hash: root cluster id → version, bumped by every change of its members or of a member's record (what the
 *   resolver's in-process copy of a cluster is checked against, graph-cache.ts); retired and erased ids have none
 * - `B:email:<mac>`, `B:phone:<mac>` sets: identity keys ever seen with that exact hash (`mac` = HMAC of the salted
 *   SHA-256, pii-codec.ts hashIndexName)
 * - `B:blk:<kind>:<mac>` set: identity keys ever seen with that blocking key (`mac` = HMAC of the whole blocking key,
 *   pii-codec.ts blockName; the kind, e.g. `ln:`, stays readable)
 * - `B:outbox` hash: mergeId → MergeEntry JSON, and `B:outbox:order` sorted set: mergeId by merge sequence
 * - `B:wm:register`, `B:wm:union` hashes: `<topic>:<partition>` → last applied input offset
 * - `B:pub:<topic>:<partition>` hash: the global ids a batch's records were published under, until its commit
 * - `B:judged` hash: identity key → SHA-1 of its stored record when it was last judged ({@link IdentityGraph.markJudged})
 * - `B:rejects` hash: rejection eventId → IdentityMergeRejection JSON, and `B:rejects:order` sorted set: eventId by
 *   outbox sequence; written with the judgement that refused the link ({@link IdentityGraph.unionMany}), until acked
 * - `B:fresh` hash: identity key → the cluster {@link IdentityGraph.registerAndSearch} made for it, until the identity is
 *   judged. Nothing is published under such a cluster before that, so when a union retires it while it still holds
 *   only that identity, the identity simply moves: no MergeEntry, no merge event, no hand-off downstream
 *
 * Redis Cluster: a merge touches two arbitrary clusters plus the shared indexes in one atomic script, and a script may
 * only touch keys of one slot, so the whole graph of one prefix lives in ONE slot, i.e. on one shard. It scales up
 * (memory, CPU of one node), not out; the hot path is two scripts per group of changed identities (registerAndSearch,
 * unionMany), each O(group size × cluster size). Scripts declare the fixed keys in KEYS and build the per-cluster,
 * per-hash and per-block set names from ARGV[1]; those share the hash tag, so they are in the declared slot, which is
 * what Redis Cluster checks.
 *
 * Personal data: callers pass and get plain records and logical blocking keys; this class seals records and keys the
 * set names with the {@link PiiCodec} it was opened with, so no name, address or birth date is stored in plain text.
 * A graph opened without a codec (the prediction API) reads roots and members only. The first sealed operation checks
 * `B:meta`: a graph written by a version before sealing, or sealed with another key, fails with a message saying so.
 *
 * Choices:
 * - Email/phone indexes and blocking sets only grow: when a record's hash or blocking keys change, the old entries stay.
 *   For blocking that is harmless (candidates are re-scored from the stored record); for the exact-hash indexes it
 *   means "ever seen with this hash", which is still evidence the clusters are one person.
 * - Merges retire the younger root (lower creation sequence survives), move its members and rewrite their identity →
 *   root entries in the same script, so `B:idc` always names a root; parent pointers matter only for retired ids
 *   that outside systems still hold. Work per merge is O(loser size) ≤ maxClusterSize.
 * - Idempotency: `register` with a watermark is skipped entirely when its `<topic>:<partition>` offset is not newer.
 *   `union` is not gated by the register watermark: a crash between register and union would otherwise lose the
 *   probabilistic merge on redelivery. Union is naturally idempotent (roots already joined → no-op), and it may take its
 *   own watermark kept in a separate hash (`B:wm:union`), so register then union for one event both run exactly once.
 * - Lua numbers are doubles: cluster/merge sequences, offsets and event times must stay below 2^53 (checked here for
 *   offsets and event times). Event times, confidences and weights travel into the MergeEntry JSON as the decimal
 *   strings sent from here, never through cjson's 14-digit number encoding.
 * - Every instance writing one graph must use the same maxClusterSize; the cap is applied by whichever script runs.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { AppError } from '../runtime/errors.js';
import { followMoves, GraphReadCache, type CachedCluster, type CachedSet } from './graph-cache.js';
import { SEALED_FORMAT, type PiiCodec } from './pii-codec.js';
import type { IdentityRecord, LinkMethod, MergeEntry } from './types.js';

/** How a `register` linked the identity (the exact-hash and platform-id rules; probabilistic links come from `union`). */
export type RegisterMethod = Extract<LinkMethod, 'NEW' | 'PLATFORM_ID' | 'EMAIL_HASH' | 'PHONE_HASH'>;

/** The input position of the event being applied; `field` is `<topic>:<partition>`. Offsets must be below 2^53. */
export interface Watermark {
  readonly field: string;
  readonly offset: number | bigint;
}

/** Provenance of a write: stamped on every MergeEntry it causes. `eventTimeMs` is an integer. */
export interface GraphEventMeta {
  readonly eventId: string;
  readonly eventTimeMs: number;
  /** When given, the write is skipped (and `alreadyApplied` is true) if the stored offset for `field` is >= `offset`. */
  readonly watermark?: Watermark;
}

/** The result of a `register` that was applied. */
export interface RegisterApplied {
  readonly alreadyApplied: false;
  /** The identity's root cluster after this call (after the unions it performed). */
  readonly globalId: string;
  /** A cluster was created for this identity. */
  readonly isNew: boolean;
  /**
   * PLATFORM_ID when the identity was known; else EMAIL_HASH / PHONE_HASH by the evidence linking it to the cluster
   * it joined (the oldest matching cluster with room), or NEW.
   */
  readonly method: RegisterMethod;
  /** The identity's root before this call; null when it was unknown. */
  readonly previousGlobalId: string | null;
  /** Unions this call performed, in order (method EMAIL_HASH / PHONE_HASH, confidence 1, matchWeight null). */
  readonly merges: readonly MergeEntry[];
  /** Unions not performed because the cluster would have exceeded maxClusterSize. */
  readonly refused: number;
}

/** The result of a `register` whose watermark showed the event was already applied: nothing was written. */
export interface RegisterSkipped {
  readonly alreadyApplied: true;
  /** The identity's current root; null if it is unknown (the earlier delivery did not register it). */
  readonly globalId: string | null;
  readonly isNew: false;
  /** Always PLATFORM_ID: a redelivery links nothing new (check `globalId` for null before relying on it). */
  readonly method: 'PLATFORM_ID';
  /** Same as `globalId`: nothing changed. */
  readonly previousGlobalId: string | null;
  readonly merges: readonly [];
  readonly refused: 0;
}

export type RegisterResult = RegisterApplied | RegisterSkipped;

/** A probabilistic match to apply: the matched identity, with the score that justified it. */
export interface UnionMatch {
  readonly key: string;
  /** Posterior match probability, 0..1. */
  readonly confidence: number;
  /** Fellegi–Sunter match weight. */
  readonly matchWeight: number;
  /**
   * The cluster the caller judged the match's identity to be in, and its size then: when either changed by the time the
   * union runs, nothing is written and the result is `stale`.
   */
  readonly expected?: { readonly root: string; readonly size: number };
}

export interface UnionResult {
  /** True when the union watermark showed the event was already applied: nothing was written. */
  readonly alreadyApplied: boolean;
  /** The identity's root after this call. */
  readonly globalId: string;
  /** Unions performed, in order (method PROBABILISTIC). */
  readonly merges: readonly MergeEntry[];
  /** Unions not performed because the cluster would have exceeded maxClusterSize. */
  readonly refused: number;
  /** A cluster the caller judged changed before the union ran: nothing was written; judge again. */
  readonly stale: boolean;
  /** {@link IdentityGraph.unionMany} only: the version of `globalId`'s cluster right after this union ('' if stale). */
  readonly version?: string;
}

export interface CandidatesResult {
  /** Identity keys sharing at least one (not oversized) blocking key, sorted, without the excluded identity. */
  readonly keys: string[];
  /** Blocking sets skipped because they held more than maxBlockSize identities. */
  readonly skippedBlocks: number;
}

/** A root cluster with its size and (some of) its members' stored records. */
export interface CandidateClusterRecords {
  readonly id: string;
  readonly size: number;
  readonly members: readonly IdentityRecord[];
  /** The cluster's version when read (registerAndSearch): a union naming it in `judged` applies only at this version. */
  readonly version?: string;
}

/** One identity of a {@link IdentityGraph.registerAndSearch} group: its (already merged) record and blocking keys. */
export interface RegisterSearchItem {
  readonly record: IdentityRecord;
  /**
   * The record's stored form, when it is the one stored (an unchanged identity this process did not know): registered
   * as it is, so whether it was judged before still holds ({@link RegisterSearchResult.judged}).
   */
  readonly sealed?: string;
  readonly blockingKeys: readonly string[];
  readonly meta: GraphEventMeta;
}

/** What {@link IdentityGraph.registerAndSearch} found for one identity. */
export interface RegisterSearchResult {
  /** The registration (null when the group was only searched). */
  readonly registered: RegisterResult | null;
  readonly skippedBlocks: number;
  /** The identity's root when searched; null when it is unknown. */
  readonly own: string | null;
  /** The identity's own cluster first (when it has one), then the candidates' clusters, as clusterCandidates. */
  readonly clusters: CandidateClusterRecords[];
  /** The record as stored now was judged before ({@link IdentityGraph.markJudged}): judging it again changes nothing. */
  readonly judged: boolean;
  /** Names the stored record for {@link IdentityGraph.markJudged} ('' when none is stored). */
  readonly recordSha: string;
}

/** One identity's union in a {@link IdentityGraph.unionMany} group. */
export interface UnionItem {
  readonly key: string;
  readonly matches: readonly UnionMatch[];
  /** eventId and eventTimeMs only: unions of a group take no watermark. */
  readonly meta: GraphEventMeta;
  readonly expectedOwn?: { readonly root: string; readonly size: number };
  /** Marks the identity judged with its union (unless that is stale): {@link RegisterSearchResult.recordSha}. */
  readonly recordSha?: string;
  /**
   * Every cluster the decision was made on (the identity's own and each candidate's), at the version it was read: when
   * any has changed, nothing is written and the item is stale. With them an item may have no match: the decision to
   * join nothing is then checked and marked the same way.
   */
  readonly judgedClusters?: readonly { readonly id: string; readonly version: string }[];
  /** The identity's root the caller expects once this item is applied (`sequenced` unions only; checked when given). */
  readonly expectedAfter?: string;
  /**
   * Links the judgement refused (merge rejections, each with a unique `eventId`): they go to the graph's rejection
   * outbox with the item, unless it is stale ({@link IdentityGraph.pendingRejections}).
   */
  readonly rejections?: readonly { readonly eventId: string }[];
}

/** A stored identity with its cluster's current root. */
export interface StoredIdentity {
  readonly record: IdentityRecord;
  readonly globalId: string;
  /** The record as stored (sealed). */
  readonly sealed: string;
}

/** One person removed from the graph by {@link IdentityGraph.erase}. */
export interface ErasedPerson {
  /** The person's root cluster id when erased. */
  readonly root: string;
  /** Every global id of the person: the root first, then the ids merged into it. */
  readonly globalIds: readonly string[];
  /** The platform identities of the person (sorted). */
  readonly identityKeys: readonly string[];
  readonly removed: {
    readonly identities: number;
    readonly clusters: number;
    /** Memberships of the person's identities removed from index sets (blocking keys, email, phone). */
    readonly indexEntries: number;
    /** Unpublished merges of the person dropped from the outbox. */
    readonly outbox: number;
    readonly watermarks: number;
  };
}

export interface IdentityGraphOptions {
  /** Namespace of every key; production passes TOPIC_PREFIX, tests a random one. Must not contain `{` or `}`. */
  readonly prefix: string;
  /**
   * A union that would leave a cluster with more identities than this is refused: one bad link (a shared family email,
   * a kiosk device) must not snowball into a giant "person".
   * @default 100
   */
  readonly maxClusterSize?: number;
  /**
   * Seals records and keys set names (IDENTITY_PII_KEY). Without it the graph answers roots, members, merges and
   * watermarks, and refuses what reads or writes personal data (register, candidates, records).
   */
  readonly codec?: PiiCodec;
}

const SCRIPTS = {
  register: 'idgRegister',
  union: 'idgUnion',
  candidates: 'idgCandidates',
  'cluster-candidates': 'idgClusterCandidates',
  'register-search': 'idgRegisterSearch',
  'union-batch': 'idgUnionBatch',
  records: 'idgRecords',
  'root-of': 'idgRootOf',
  'global-id-of': 'idgGlobalIdOf',
  'link-snapshot': 'idgLinkSnapshot',
  members: 'idgMembers',
  'outbox-pending': 'idgOutboxPending',
  'outbox-ack': 'idgOutboxAck',
  'pii-format': 'idgPiiFormat',
  erase: 'idgErase',
  'mark-judged': 'idgMarkJudged',
  'picture-write': 'idgPictureWrite',
} as const;
export type ScriptFile = keyof typeof SCRIPTS;
const READ_ONLY: ReadonlySet<ScriptFile> = new Set([
  'candidates',
  'cluster-candidates',
  'records',
  'global-id-of',
  'members',
  'outbox-pending',
]);

/** A command added by defineCommand without numberOfKeys: the first argument is the key count. */
type ScriptCommand = (numKeys: number, ...args: string[]) => Promise<unknown>;

let sources: ReadonlyMap<ScriptFile, string> | undefined;
/** Script texts, read once per process; the shared prelude is prepended so each script is self-contained for EVAL. */
export function scriptSources(): ReadonlyMap<ScriptFile, string> {
  if (!sources) {
    const read = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
    const lib = read('graph-lib');
    sources = new Map(Object.keys(SCRIPTS).map((file) => [file as ScriptFile, `${lib}\n${read(file)}`]));
  }
  return sources;
}

/**
 * The fixed KEYS every graph script is called with, in graph-lib.lua's order (its `K` table), under the key base
 * `<prefix>idg:v1:{<prefix>idg}`.
 */
export function graphScriptKeys(base: string): string[] {
  return [
    'counters',
    'rec',
    'idc',
    'cseq',
    'parent',
    'outbox',
    'outbox:order',
    'wm:register',
    'wm:union',
    'cver',
    'judged',
    'rejects',
    'rejects:order',
    'fresh',
  ].map((name) => `${base}:${name}`);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
/** Identity keys per global-id-of script (globalIdOf). */
const GLOBAL_ID_CHUNK = 10_000;

function offsetArg(offset: number | bigint): string {
  const value = typeof offset === 'bigint' ? offset : Number.isSafeInteger(offset) ? BigInt(offset) : -1n;
  // Lua compares offsets as doubles: above 2^53 two offsets could compare equal and an event would be skipped.
  if (value < 0n || value > MAX_SAFE)
    throw new RangeError(`watermark offset must be an integer in [0, 2^53): ${offset}`);
  return value.toString();
}

export function metaArgs(meta: GraphEventMeta): [eventId: string, eventTimeMs: string, field: string, offset: string] {
  if (!Number.isSafeInteger(meta.eventTimeMs))
    throw new RangeError(`eventTimeMs must be an integer: ${meta.eventTimeMs}`);
  if (!meta.watermark) return [meta.eventId, String(meta.eventTimeMs), '', '0'];
  if (meta.watermark.field === '') throw new RangeError('watermark field must not be empty');
  return [meta.eventId, String(meta.eventTimeMs), meta.watermark.field, offsetArg(meta.watermark.offset)];
}

/** A finite number as a JSON number literal (what the scripts splice into MergeEntry JSON). */
export function jsonNumber(value: number, what: string): string {
  if (!Number.isFinite(value)) throw new RangeError(`${what} must be finite: ${value}`);
  return JSON.stringify(value);
}

const orNull = (value: string): string | null => (value === '' ? null : value);

function asArray(reply: unknown): unknown[] {
  if (!Array.isArray(reply)) throw new TypeError(`identity graph script returned ${typeof reply}, expected an array`);
  return reply;
}

/**
 * A list in a script's JSON reply (cjson.encode): cjson cannot tell an empty Lua table from an empty object and writes
 * `{}`, which is the empty list here.
 */
function listOf(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (value !== null && typeof value === 'object' && Object.keys(value).length === 0) return [];
  throw new TypeError(`identity graph script returned ${typeof value}, expected a list`);
}

function asString(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`identity graph script returned ${typeof value}, expected string`);
  return value;
}

function asNumber(value: unknown): number {
  if (typeof value !== 'number') throw new TypeError(`identity graph script returned ${typeof value}, expected number`);
  return value;
}

const parseMerges = (values: unknown[]): MergeEntry[] => values.map((v) => JSON.parse(asString(v)) as MergeEntry);

/** A union script's reply: applied before, the global id, refusals, stale, then the merges it made. */
export function unionResultOf(reply: readonly unknown[]): UnionResult {
  return {
    alreadyApplied: asNumber(reply[0]) === 1,
    globalId: asString(reply[1]),
    refused: asNumber(reply[2]),
    stale: asNumber(reply[3]) === 1,
    merges: parseMerges(reply.slice(4)),
  };
}

/** A register reply (register.lua, registerOne in graph-lib.lua). */
export function parseRegister(reply: unknown[]): RegisterResult {
  if (asNumber(reply[0]) === 1) {
    const current = orNull(asString(reply[1]));
    return {
      alreadyApplied: true,
      globalId: current,
      isNew: false,
      method: 'PLATFORM_ID',
      previousGlobalId: current,
      merges: [],
      refused: 0,
    };
  }
  return {
    alreadyApplied: false,
    globalId: asString(reply[1]),
    isNew: asNumber(reply[2]) === 1,
    method: asString(reply[3]) as RegisterMethod,
    previousGlobalId: orNull(asString(reply[4])),
    refused: asNumber(reply[5]),
    merges: parseMerges(reply.slice(6)),
  };
}

/** The stored names of an identity's blocking sets: each distinct blocking key, named by the codec. */
export function blockNames(codec: PiiCodec, blockingKeys: readonly string[]): string[] {
  return [...new Set(blockingKeys)].map((k) => codec.blockName(k));
}

/**
 * {@link IdentityGraph.registerAndSearch} with `absent`: identities the caller took for new have stored records.
 * Nothing was written; the caller reads them ({@link IdentityGraph.records}) and registers the group again.
 */
export class StoredIdentitiesFound extends Error {
  constructor(readonly keys: readonly string[]) {
    super(`${keys.length} identities taken for new have stored records`);
    this.name = 'StoredIdentitiesFound';
  }
}

/**
 * What the resolver asks of the graph for one part of a round: the graph itself ({@link IdentityGraph}), or the
 * picture of it a resolver holds while it is the only writer (graph-picture.ts). Both answer as the scripts do.
 */
export interface PartGraph {
  readonly maxClusterSize: number;
  registerAndSearch(
    items: readonly RegisterSearchItem[],
    options: { register: boolean; maxBlockSize: number; maxMembers: number; absent?: readonly string[] },
  ): Promise<RegisterSearchResult[]>;
  unionMany(
    items: readonly UnionItem[],
    judged?: readonly { key: string; recordSha: string }[],
    options?: { sequenced?: boolean },
  ): Promise<UnionResult[]>;
  /** Keeps what the part's unions made for the next search (absent where the graph is held whole in process). */
  rememberClusters?(settled: {
    clusters: readonly CandidateClusterRecords[];
    retired: ReadonlyMap<string, string>;
    roots: ReadonlyMap<string, string>;
  }): void;
  markJudged(items: readonly { key: string; recordSha: string }[]): Promise<number>;
}

/** The hashes of the graph an in-process picture holds, by their names in graph-lib.lua's `K` table. */
export const PICTURE_HASHES = {
  counters: 'counters',
  rec: 'rec',
  idc: 'idc',
  cseq: 'cseq',
  parent: 'parent',
  cver: 'cver',
  fresh: 'fresh',
  judged: 'judged',
  wmRegister: 'wm:register',
  wmUnion: 'wm:union',
} as const;

/** The whole graph as {@link IdentityGraph.readPicture} read it, at one write count (graph-lib.lua countWrite). */
export interface PictureSource {
  readonly writes: string;
  /** The graph's codec: the picture opens its records and names its sets with it. */
  readonly codec: PiiCodec;
  readonly hashes: Readonly<Record<keyof typeof PICTURE_HASHES, Record<string, string>>>;
  /** Every member and index set, by its name after the base (`mem:…`, `blk:…`, `email:…`, `phone:…`). */
  readonly sets: ReadonlyMap<string, readonly string[]>;
}

/**
 * The identity graph of one prefix on one Redis connection. Several instances (on several connections or processes)
 * may write the same graph concurrently: every mutation is one atomic script that resolves roots when it runs.
 */
export class IdentityGraph implements PartGraph {
  /** `<prefix>idg:v1:{<prefix>idg}`: the start of every key, as the client names it (before ioredis' keyPrefix). */
  private readonly base: string;
  /** The same base as Redis sees it: scripts build dynamic key names from it, and ioredis prefixes only KEYS. */
  private readonly scriptBase: string;
  private readonly keys: readonly string[];
  /** Blocking sets, roots and clusters read by {@link registerAndSearch}, checked against the graph on every use. */
  private readonly cache = new GraphReadCache();
  /** What searches had to read from the graph (clusters answered, records listed), not from this process's cache. */
  readonly reads = { clusters: 0, records: 0 };
  /** Settled once the graph's personal-data format was found to be this version's (see {@link checkFormat}). */
  private formatChecked: Promise<void> | undefined;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** The cluster cap every script of this graph applies. */
    readonly maxClusterSize: number,
    private readonly codec: PiiCodec | undefined,
  ) {
    this.base = `${prefix}idg:v1:{${prefix}idg}`;
    this.scriptBase = `${redis.options.keyPrefix ?? ''}${this.base}`;
    this.keys = graphScriptKeys(this.base);
  }

  /**
   * Binds the graph of `options.prefix` to a connection and registers the scripts on it (defineCommand: EVALSHA, with
   * EVAL on NOSCRIPT, so a restarted or failed-over Redis needs no reload step). Opening several graphs on one
   * connection is fine: the commands are the same scripts.
   */
  static open(redis: Redis, options: IdentityGraphOptions): IdentityGraph {
    const maxClusterSize = options.maxClusterSize ?? 100;
    if (!Number.isSafeInteger(maxClusterSize) || maxClusterSize < 1) {
      throw new RangeError(`maxClusterSize must be a positive integer: ${maxClusterSize}`);
    }
    // A brace would move the hash tag and scatter the graph over slots, breaking atomic scripts under Redis Cluster.
    if (/[{}]/.test(options.prefix) || /[{}]/.test(redis.options.keyPrefix ?? '')) {
      throw new RangeError(`identity graph prefix must not contain braces: ${options.prefix}`);
    }
    for (const [file, lua] of scriptSources()) {
      redis.defineCommand(SCRIPTS[file], { lua, readOnly: READ_ONLY.has(file) });
    }
    return new IdentityGraph(redis, options.prefix, maxClusterSize, options.codec);
  }

  /**
   * Checks, once per instance, that the graph keeps personal data the way this version does and with this key (an
   * empty graph is marked so). Throws CONFIG_INVALID on a graph written before sealing or sealed with another key.
   * Sealed operations call it themselves; entrypoints call it at startup to fail before consuming anything.
   */
  checkFormat(): Promise<void> {
    const codec = this.requireCodec('checkFormat');
    this.formatChecked ??= this.readFormat(codec).catch((err: unknown) => {
      this.formatChecked = undefined; // Redis away is not a verdict: the next call asks again
      throw err;
    });
    return this.formatChecked;
  }

  private async readFormat(codec: PiiCodec): Promise<void> {
    const reply = asArray(await this.run('pii-format', [SEALED_FORMAT, codec.keyId]));
    const [format, keyId] = [asString(reply[0]), asString(reply[1])];
    if (format === '') {
      throw new AppError(
        'CONFIG_INVALID',
        `the identity graph of prefix "${this.prefix}" was written by a version that kept personal data in plain ` +
          'text: migrate it first (npm run identity:graph -- migrate, with every resolver stopped)',
      );
    }
    if (format !== SEALED_FORMAT) {
      throw new AppError(
        'CONFIG_INVALID',
        `the identity graph of prefix "${this.prefix}" has unknown format ${format}`,
      );
    }
    if (keyId !== codec.keyId) {
      throw new AppError(
        'CONFIG_INVALID',
        `the identity graph of prefix "${this.prefix}" is sealed with key id ${keyId}, but IDENTITY_PII_KEY has key ` +
          `id ${codec.keyId}: run with the key it was written with`,
      );
    }
  }

  private requireCodec(operation: string): PiiCodec {
    if (!this.codec) {
      throw new Error(
        `identity graph ${operation}: opened without a PII codec (IDENTITY_PII_KEY), it reads roots only`,
      );
    }
    return this.codec;
  }

  /** The codec after the format check: what every operation on personal data starts with. */
  private async sealed(operation: string): Promise<PiiCodec> {
    const codec = this.requireCodec(operation);
    await this.checkFormat();
    return codec;
  }

  private run(file: ScriptFile, args: readonly string[]): Promise<unknown> {
    const command = (this.redis as unknown as Record<string, ScriptCommand>)[SCRIPTS[file]];
    if (!command) throw new Error(`identity graph script ${file} is not defined on this connection`);
    return command.call(this.redis, this.keys.length, ...this.keys, this.scriptBase, ...args);
  }

  /**
   * Stores `record` (already merged with the previous one by the caller) and links the identity, in ONE script:
   * - unknown identity: joins the root of the oldest cluster holding an identity with the same exact emailSha256 or
   *   phoneSha256 that has room (method EMAIL_HASH / PHONE_HASH), else gets a new cluster `c-<n>` (method NEW);
   * - known identity: keeps its cluster (method PLATFORM_ID);
   * - then every other cluster sharing the email or phone hash is unioned with it, oldest first, the older root of
   *   each pair surviving, unless the cluster would exceed maxClusterSize (refused, counted);
   * - the key is added to each blocking set and the email/phone indexes; merges go to the outbox.
   * Re-registering the same record changes nothing and returns no merges. With `meta.watermark`, an event whose offset
   * is not newer than the stored one is skipped entirely (`alreadyApplied: true`) and the offset is stored otherwise.
   */
  async register(
    record: IdentityRecord,
    blockingKeys: readonly string[],
    meta: GraphEventMeta,
  ): Promise<RegisterResult> {
    const [eventId, eventTimeMs, field, offset] = metaArgs(meta);
    const codec = await this.sealed('register');
    const reply = asArray(
      await this.run('register', [
        record.key,
        codec.sealRecord(record),
        record.emailSha256 ? codec.hashIndexName('email', record.emailSha256) : '',
        record.phoneSha256 ? codec.hashIndexName('phone', record.phoneSha256) : '',
        String(this.maxClusterSize),
        eventId,
        eventTimeMs,
        field,
        offset,
        ...blockNames(codec, blockingKeys),
      ]),
    );
    return parseRegister(reply);
  }

  /**
   * Read-only: identity keys in the union of the blocking sets, without `excludeKey`, sorted. A set holding more than
   * `maxBlockSize` identities is skipped (counted in `skippedBlocks`). One round trip.
   */
  async candidates(
    blockingKeys: readonly string[],
    excludeKey: string,
    maxBlockSize: number,
  ): Promise<CandidatesResult> {
    if (blockingKeys.length === 0) return { keys: [], skippedBlocks: 0 };
    const codec = await this.sealed('candidates');
    const reply = asArray(
      await this.run('candidates', [excludeKey, String(maxBlockSize), ...blockNames(codec, blockingKeys)]),
    );
    return { skippedBlocks: asNumber(reply[0]), keys: reply.slice(1).map(asString) };
  }

  /**
   * Read-only, one snapshot and one round trip: the clusters a changed identity might join, whole. The roots of the
   * identities sharing a (not oversized) blocking key with it, each with its size and up to `maxMembers` member
   * records (sorted by key), preceded by the identity's own cluster when it has one (`own`; its members include the
   * identity itself).
   */
  async clusterCandidates(
    identityKey: string,
    blockingKeys: readonly string[],
    options: { maxBlockSize: number; maxMembers: number },
  ): Promise<{ skippedBlocks: number; own: string | null; clusters: CandidateClusterRecords[] }> {
    const codec = await this.sealed('clusterCandidates');
    const reply = asArray(
      await this.run('cluster-candidates', [
        identityKey,
        String(options.maxBlockSize),
        String(options.maxMembers),
        ...blockNames(codec, blockingKeys),
      ]),
    );
    const clusters: CandidateClusterRecords[] = [];
    let i = 2;
    while (i + 2 < reply.length) {
      const id = asString(reply[i]);
      const size = asNumber(reply[i + 1]);
      const n = asNumber(reply[i + 2]);
      i += 3;
      const members: IdentityRecord[] = [];
      for (let j = 0; j < n; j++, i += 2) {
        const sealed = asString(reply[i + 1]);
        if (sealed !== '') members.push(codec.openRecord(asString(reply[i]), sealed));
      }
      clusters.push({ id, size, members });
    }
    return { skippedBlocks: asNumber(reply[0]), own: orNull(asString(reply[1])), clusters };
  }

  /** Read-only: stored record and current root per identity key, from one snapshot (one round trip). Unknown keys are absent. */
  async records(keys: readonly string[]): Promise<Map<string, StoredIdentity>> {
    const result = new Map<string, StoredIdentity>();
    if (keys.length === 0) return result;
    const codec = await this.sealed('records');
    const unique = [...new Set(keys)];
    const reply = asArray(await this.run('records', unique));
    unique.forEach((key, i) => {
      const sealed = asString(reply[2 * i]);
      const globalId = asString(reply[2 * i + 1]);
      if (sealed !== '' && globalId !== '')
        result.set(key, { record: codec.openRecord(key, sealed), globalId, sealed });
    });
    return result;
  }

  /**
   * Unions the identity's cluster with the cluster of each match, in ONE script. Roots are resolved when the script
   * runs (a merge made meanwhile by another instance is respected); distinct match roots are taken oldest first, the
   * older root of each pair surviving (method PROBABILISTIC, with the most confident match into that root as evidence);
   * a union that would exceed maxClusterSize is refused and counted. Unknown match keys are ignored; an unknown `key`
   * is an error (register it first). With `expectedOwn` / `match.expected`, a cluster whose root or size is no longer
   * what the caller judged makes the whole call a no-op (`stale: true`). Naturally idempotent; `meta.watermark` (kept apart from register's) makes a
   * redelivered event skip it entirely.
   */
  async union(
    key: string,
    matches: readonly UnionMatch[],
    meta: GraphEventMeta,
    expectedOwn?: { readonly root: string; readonly size: number },
  ): Promise<UnionResult> {
    const [eventId, eventTimeMs, field, offset] = metaArgs(meta);
    const groups = matches.flatMap((m) => [
      m.key,
      jsonNumber(m.confidence, 'confidence'),
      jsonNumber(m.matchWeight, 'matchWeight'),
      m.expected?.root ?? '',
      String(m.expected?.size ?? 0),
    ]);
    const reply = asArray(
      await this.run('union', [
        key,
        String(this.maxClusterSize),
        eventId,
        eventTimeMs,
        field,
        offset,
        expectedOwn?.root ?? '',
        String(expectedOwn?.size ?? 0),
        ...groups,
      ]),
    );
    return unionResultOf(reply);
  }

  /**
   * Registers a group of identities (each as {@link register}), then searches the clusters each might join (each as
   * {@link clusterCandidates}, whose answers it shares), in ONE script and one round trip: every identity of the group
   * is registered before any of them searches, so records of one person in one group see each other. With
   * `register: false` the group is only searched (a record judged again).
   *
   * Blocking sets, roots and clusters with their opened records are kept in this process (graph-cache.ts): the script
   * checks each against the graph (a set's size, a cluster's version) and returns only what changed, so an unchanged
   * candidate cluster costs Redis two O(1) lookups instead of its members and their sealed records. The answer is the
   * one the graph gives at the script's moment, as without the cache.
   *
   * The group's ~1,000 arguments go to the script as one JSON string and its answer comes back as one (cjson in the
   * script): the client's work per argument and per reply element was about a tenth of the resolver's CPU.
   */
  async registerAndSearch(
    items: readonly RegisterSearchItem[],
    options: {
      register: boolean;
      maxBlockSize: number;
      maxMembers: number;
      /** Records come back whole, not as tags: the retry when one changed between the script and reading it. */
      wholeRecords?: boolean;
      /**
       * Keys registered as new identities without a read of their stored records: if any has one, the script writes
       * nothing and this throws {@link StoredIdentitiesFound} (checked in the script, before any registration).
       */
      absent?: readonly string[];
    },
  ): Promise<RegisterSearchResult[]> {
    if (items.length === 0) return [];
    const codec = await this.sealed('registerAndSearch');
    const cache = this.cache;
    cache.bound();
    if (cache.maxMembers !== options.maxMembers) {
      cache.clear();
      cache.maxMembers = options.maxMembers;
    }
    const sent = cache.erasures;

    // The group's distinct blocking sets, which of its identities register into each, and each identity's sets.
    const setIndex = new Map<string, number>();
    const setNames: string[] = [];
    const joining: string[][] = [];
    const itemSets: number[][] = items.map(({ record, blockingKeys }) =>
      blockNames(codec, blockingKeys).map((name) => {
        let j = setIndex.get(name);
        if (j === undefined) {
          j = setNames.length;
          setIndex.set(name, j);
          setNames.push(name);
          joining.push([]);
        }
        if (options.register) joining[j]?.push(record.key);
        return j;
      }),
    );
    const groupKeys = new Set(items.map((item) => item.record.key));
    // A set held is expected at its size plus the group's new members, and the roots of its members are named with
    // the versions held, so the script checks every cluster this picture would use.
    const held = new Map<string, CachedCluster | undefined>();
    const hold = (root: string) => {
      if (!held.has(root)) held.set(root, cache.clusters.get(root));
    };
    // The pictures this call judges on are its own: another call may drop or replace the cache's meanwhile.
    const generation = cache.generation;
    const pictures: (CachedSet | null | undefined)[] = setNames.map((name) =>
      sent === null ? undefined : cache.sets.get(name),
    );
    const expected = pictures.map((set, j) => {
      if (!set) return -1;
      // Roots this process retired stand for the root they were merged into (which holds all their members).
      if (cache.retired.size > 0 && set.roots.some((root) => cache.retired.has(root)))
        set.roots = [...new Set(set.roots.map((root) => cache.currentRoot(root)))];
      set.roots.forEach(hold);
      let size = set.members.size;
      for (const key of joining[j] ?? []) if (!set.members.has(key)) size++;
      return size;
    });
    for (const key of groupKeys) {
      const root = cache.roots.get(key);
      if (root !== undefined) hold(root);
    }

    const args = [
      String(this.maxClusterSize),
      String(options.maxBlockSize),
      String(options.maxMembers),
      options.register ? '1' : '0',
      options.wholeRecords ? '0' : String(codec.tagLength),
      sent ?? '',
      String(held.size),
    ];
    args.push(...held.keys(), ...[...held.values()].map((cluster) => cluster?.version ?? ''));
    args.push(String(setNames.length));
    setNames.forEach((name, j) => args.push(name, String(expected[j] ?? -1)));
    items.forEach(({ record, meta }, i) => {
      if (options.register) {
        args.push(
          record.key,
          items[i]?.sealed ?? codec.sealRecord(record),
          record.emailSha256 ? codec.hashIndexName('email', record.emailSha256) : '',
          record.phoneSha256 ? codec.hashIndexName('phone', record.phoneSha256) : '',
          ...metaArgs(meta),
        );
      } else {
        args.push(record.key, '', '', '', '', '0', '', '0');
      }
      const sets = itemSets[i] ?? [];
      args.push(String(sets.length), ...sets.map((j) => String(j + 1)));
    });
    const absent = options.register ? (options.absent ?? []) : [];
    const reply: unknown = await this.run('register-search', [
      JSON.stringify(args),
      ...(absent.length > 0 ? [JSON.stringify(absent)] : []),
    ]);
    if (Array.isArray(reply)) {
      if (reply[0] !== 'STORED') throw new Error(`register-search: unexpected reply ${String(reply[0])}`);
      throw new StoredIdentitiesFound(reply.slice(1).map(asString));
    }
    const [
      erasuresReply,
      registrations = [],
      owns = [],
      setReplies = [],
      clusterReplies = [],
      flatRecords = [],
      judgedReplies = [],
    ] = listOf(JSON.parse(asString(reply)));
    // Records come back as tags (the name of their sealing): those this process sealed or opened are taken from its
    // codec, the few others read whole, here, once. A record rewritten in between (another tag) means this reply is
    // not one snapshot with what is read now: the group is searched again with records sent whole.
    const records = new Map<string, IdentityRecord>();
    const unread: { key: string; tag: string }[] = [];
    const flat = listOf(flatRecords);
    this.reads.clusters += listOf(clusterReplies).length;
    this.reads.records += flat.length / 2;
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const key = asString(flat[i]);
      const value = asString(flat[i + 1]);
      if (value === '') continue;
      const record = options.wholeRecords ? codec.openRecord(key, value) : codec.recordOfTag(key, value);
      if (record) records.set(key, record);
      else unread.push({ key, tag: value });
    }
    let recordsChanged = false;
    if (unread.length > 0) {
      const whole = asArray(
        await this.run(
          'records',
          unread.map((u) => u.key),
        ),
      );
      unread.forEach(({ key, tag }, k) => {
        const value = asString(whole[2 * k]);
        if (value !== '' && value.startsWith(tag)) records.set(key, codec.openRecord(key, value));
        else recordsChanged = true;
      });
    }
    const judged = listOf(judgedReplies).map((value) => {
      const [sha, flag] = listOf(value);
      return { recordSha: asString(sha), judged: asNumber(flag) === 1 };
    });
    const erasures = asString(erasuresReply);
    const trusted = sent === erasures; // as the script judged: else it answered everything
    if (!trusted) {
      cache.clear();
      cache.maxMembers = options.maxMembers;
      cache.erasures = erasures;
    }
    // What this reply says goes into the cache unless the cache was dropped meanwhile (it may then hold a newer state).
    const store = (!trusted || cache.generation === generation) && !recordsChanged;

    const ownRoots = listOf(owns).map(asString);
    const ownRootOf = new Map<string, string>();
    items.forEach(({ record }, i) => {
      const root = ownRoots[i] ?? '';
      ownRootOf.set(record.key, root);
      if (!store) return;
      if (root === '') cache.roots.delete(record.key);
      else cache.roots.set(record.key, root);
    });
    listOf(setReplies).forEach((value, j) => {
      const reply = listOf(value);
      const name = setNames[j] ?? '';
      const size = asNumber(reply[0]);
      const picture = pictures[j];
      if (size === -1) {
        pictures[j] = null;
        if (store) cache.setMembers(name, null);
      } else if (trusted && size === expected[j] && picture) {
        for (const key of joining[j] ?? []) cache.addMember(picture, key, ownRootOf.get(key) ?? '');
      } else {
        const set: CachedSet = { members: new Set<string>(), roots: [] };
        const roots = new Set<string>();
        for (let k = 1; k + 1 < reply.length; k += 2) {
          set.members.add(asString(reply[k]));
          const root = asString(reply[k + 1]);
          if (root !== '') roots.add(root);
        }
        set.roots = [...roots];
        pictures[j] = set;
        if (store) cache.setMembers(name, set);
      }
    });

    // This snapshot's clusters: those answered, and every other one named as held (current, or it would be answered).
    const snapshot = new Map<string, CachedCluster>();
    if (trusted) for (const [id, cluster] of held) if (cluster) snapshot.set(id, cluster);
    const movedTo = new Map<string, string>(); // retired id → its root, erased or unknown id → ''
    for (const value of listOf(clusterReplies)) {
      const reply = listOf(value);
      const id = asString(reply[0]);
      const root = asString(reply[1]);
      if (root !== id) {
        movedTo.set(id, root);
        snapshot.delete(id);
        if (store) cache.deleteCluster(id);
        continue;
      }
      const members: IdentityRecord[] = [];
      for (let k = 4; k < reply.length; k++) {
        const record = records.get(asString(reply[k]));
        if (record) members.push(record);
      }
      const cluster = { version: asString(reply[3]), size: asNumber(reply[2]), members };
      snapshot.set(id, cluster);
      if (store) cache.setCluster(id, cluster);
    }
    // Roots retired since a set was read stand for the root they were merged into (which holds all their members);
    // an erased one for nothing.
    const current = (root: string): string => followMoves(movedTo, root);
    if (movedTo.size > 0) {
      for (const set of pictures) {
        if (set && set.roots.some((root) => movedTo.has(root)))
          set.roots = [...new Set(set.roots.map(current).filter((root) => root !== ''))];
      }
      for (const key of store ? groupKeys : []) {
        const root = cache.roots.get(key);
        if (root !== undefined && movedTo.has(root)) cache.roots.set(key, current(root));
      }
    }

    const results: RegisterSearchResult[] = [];
    for (let i = 0; i < items.length; i++) {
      const own = orNull(ownRoots[i] ?? '');
      const clusters: CandidateClusterRecords[] = [];
      const listed = new Set<string>();
      let complete = true;
      const add = (root: string) => {
        if (listed.has(root)) return;
        listed.add(root);
        const cluster = snapshot.get(root);
        if (cluster)
          clusters.push({ id: root, size: cluster.size, members: cluster.members, version: cluster.version });
        else complete = false;
      };
      if (own) add(own);
      let skippedBlocks = 0;
      for (const j of itemSets[i] ?? []) {
        const set = pictures[j];
        if (set === null) skippedBlocks++;
        else if (set === undefined) complete = false;
        else set.roots.forEach(add);
      }
      if (!complete || recordsChanged) {
        // The script was not asked about something this picture uses (or a record changed before it was read): never
        // judge on it. Start again from the graph.
        cache.clear();
        const again = await this.registerAndSearch(items, {
          ...options,
          register: false,
          wholeRecords: recordsChanged,
        });
        return again.map((found, k) => ({
          ...found,
          registered: options.register ? parseRegister(listOf(listOf(registrations)[k])) : null,
          ...(judged[k] ?? { recordSha: '', judged: false }),
        }));
      }
      results.push({
        registered: options.register ? parseRegister(listOf(listOf(registrations)[i])) : null,
        skippedBlocks,
        own,
        clusters,
        ...(judged[i] ?? { recordSha: '', judged: false }),
      });
    }
    return results;
  }

  /**
   * The unions of a group of identities (each as {@link union}, without watermarks), applied in order in ONE script:
   * each is judged stale on its own, and one whose matches are all in its identity's cluster already (another record
   * of the group made that link first) is done, not stale. An identity the graph no longer knows is an error. Judged
   * marks ({@link markJudged}) go in the same script: each item's `recordSha` with its union unless that is stale, and
   * `judged` (identities judged without a union) as they are. `sequenced`: the items were judged one after the other
   * on one search's snapshot, each on the snapshot as the unions before it leave it (`expectedOwn`, the matches'
   * `expected` and `expectedAfter` say where it expects the graph): the versions of `judgedClusters` are checked before
   * anything is written, and the first item that is stale or not where it was expected is set aside with every later
   * one (union-batch.lua). Judged again, in order, they give what the graph judging in order gives. An item that
   * names its own root among `judgedClusters` is then marked with its `recordSha` as it stands: that root's version,
   * unchanged since the search, says the record was not registered again.
   */
  async unionMany(
    items: readonly UnionItem[],
    judged: readonly { key: string; recordSha: string }[] = [],
    options: { sequenced?: boolean } = {},
  ): Promise<UnionResult[]> {
    const marks = judged.filter((j) => j.recordSha !== '');
    if (items.length === 0) {
      if (marks.length > 0) await this.markJudged(marks);
      return [];
    }
    const sequenced = options.sequenced ?? false;
    const args = [String(this.maxClusterSize), sequenced ? '1' : '0', String(marks.length)];
    for (const j of marks) args.push(j.key, j.recordSha);
    if (sequenced) {
      // The items were judged on one snapshot and name its clusters again and again: each (cluster, version) once,
      // with the first item that names it (the script sets aside from there when it changed).
      const firstItem = new Map<string, { id: string; version: string; item: number }>();
      items.forEach(({ judgedClusters = [] }, i) => {
        for (const { id, version } of judgedClusters) {
          const pair = `${id}\u0000${version}`;
          if (!firstItem.has(pair)) firstItem.set(pair, { id, version, item: i + 1 });
        }
      });
      args.push(String(firstItem.size));
      for (const { id, version, item } of firstItem.values()) args.push(id, version, String(item));
    }
    for (const {
      key,
      matches,
      meta,
      expectedOwn,
      recordSha,
      expectedAfter,
      judgedClusters = [],
      rejections = [],
    } of items) {
      const [eventId, eventTimeMs] = metaArgs({ eventId: meta.eventId, eventTimeMs: meta.eventTimeMs });
      args.push(key, eventId, eventTimeMs, expectedOwn?.root ?? '', String(expectedOwn?.size ?? 0), recordSha ?? '');
      args.push(expectedAfter ?? '');
      if (sequenced) args.push('0');
      else {
        args.push(String(judgedClusters.length));
        for (const c of judgedClusters) args.push(c.id, c.version);
      }
      args.push(String(matches.length));
      for (const m of matches) {
        args.push(
          m.key,
          jsonNumber(m.confidence, 'confidence'),
          jsonNumber(m.matchWeight, 'matchWeight'),
          m.expected?.root ?? '',
          String(m.expected?.size ?? 0),
        );
      }
      args.push(String(rejections.length));
      for (const r of rejections) args.push(r.eventId, JSON.stringify(r));
    }
    const replies = asArray(await this.run('union-batch', [JSON.stringify(args)])).map(asArray);
    return replies.map((reply, i) => {
      if (asNumber(reply[0]) === -1) {
        throw new Error(`identity graph: union of an unregistered identity: ${items[i]?.key ?? ''}`);
      }
      return { ...unionResultOf([...reply.slice(0, 4), ...reply.slice(5)]), version: asString(reply[4]) };
    });
  }

  /**
   * Keeps clusters this process's own unions made, as the graph now holds them (`version` as {@link unionMany}
   * answered it), and forgets the ids they retired: the next search then finds them current instead of reading them
   * again. `members` must be the whole cluster (size = members.length), sorted by key as the graph sorts them
   * (code-point order, the order of the C collation Redis starts with); any other picture is only forgotten. Retired
   * ids map to the root they are in now (set pictures naming them are read through it), and identity keys → their
   * roots go to the cache too.
   */
  rememberClusters({
    clusters,
    retired,
    roots,
  }: {
    clusters: readonly CandidateClusterRecords[];
    retired: ReadonlyMap<string, string>;
    roots: ReadonlyMap<string, string>;
  }): void {
    const cache = this.cache;
    if (cache.erasures === null) return; // holds nothing: nothing to keep current
    for (const [id, root] of retired) {
      cache.deleteCluster(id);
      cache.retired.set(id, root);
    }
    for (const { id, size, members, version } of clusters) {
      if (version === undefined || version === '' || size !== members.length || size > cache.maxMembers)
        cache.deleteCluster(id);
      else cache.setCluster(id, { version, size, members });
    }
    for (const [key, root] of roots) cache.roots.set(key, root);
  }

  /**
   * Merges not yet acknowledged, oldest first, at most `limit`. Every script writes its merges here atomically with the
   * merge itself, so a crash before the merge events reach Kafka loses nothing: produce them, then `ackMerges`.
   */
  async pendingMerges(limit: number): Promise<MergeEntry[]> {
    if (!Number.isSafeInteger(limit) || limit < 1) return [];
    return parseMerges(asArray(await this.run('outbox-pending', ['merges', String(limit)])));
  }

  /** Merge rejections not yet acknowledged (as {@link UnionItem.rejections} gave them), oldest first, at most `limit`. */
  async pendingRejections(limit: number): Promise<unknown[]> {
    if (!Number.isSafeInteger(limit) || limit < 1) return [];
    return asArray(await this.run('outbox-pending', ['rejections', String(limit)])).map(
      (v) => JSON.parse(asString(v)) as unknown,
    );
  }

  /** Removes produced rejections from the outbox; unknown or already acked ids are ignored. Returns how many were. */
  async ackRejections(eventIds: readonly string[]): Promise<number> {
    if (eventIds.length === 0) return 0;
    return asNumber(await this.run('outbox-ack', ['rejections', ...new Set(eventIds)]));
  }

  /** Removes produced merges from the outbox; unknown or already acked ids are ignored. Returns how many were pending. */
  async ackMerges(mergeIds: readonly string[]): Promise<number> {
    if (mergeIds.length === 0) return 0;
    return asNumber(await this.run('outbox-ack', ['merges', ...new Set(mergeIds)]));
  }

  /** Current root per global id (retired ids follow parent pointers, compressed on the way); null if never created. */
  async rootOf(globalIds: readonly string[]): Promise<Map<string, string | null>> {
    const unique = [...new Set(globalIds)];
    if (unique.length === 0) return new Map();
    const reply = asArray(await this.run('root-of', unique));
    return new Map(unique.map((id, i) => [id, orNull(asString(reply[i]))]));
  }

  /** Identity keys of the root cluster of `globalId` (a retired id gives its survivor's members), sorted; [] if unknown. */
  async members(globalId: string): Promise<string[]> {
    const reply = asArray(await this.run('members', [globalId]));
    return reply.slice(1).map(asString);
  }

  /**
   * Current root per identity key; null when the identity is unknown. Asked GLOBAL_ID_CHUNK keys per script: one call
   * of a whole evaluation's keys (~125,000+) overflows the stack that spreads them into the command.
   */
  async globalIdOf(keys: readonly string[]): Promise<Map<string, string | null>> {
    const unique = [...new Set(keys)];
    const out = new Map<string, string | null>();
    for (let from = 0; from < unique.length; from += GLOBAL_ID_CHUNK) {
      const chunk = unique.slice(from, from + GLOBAL_ID_CHUNK);
      const reply = asArray(await this.run('global-id-of', chunk));
      chunk.forEach((key, i) => out.set(key, orNull(asString(reply[i]))));
    }
    return out;
  }

  /**
   * Current root per identity key and a new graph-wide link version, in one atomic script: of two snapshots the later
   * has the higher version and reflects every write before it. Links are stamped with it so the warehouse orders an
   * identity's links by graph state rather than by event time.
   */
  async linkSnapshot(
    keys: readonly string[],
    /**
     * The publication log of the round about to be sent ({@link recordPublications}), written by the same script from
     * the same roots: each record's id is `earlier` if given, else its identity's root. Records without a root are
     * left out (the caller fails the round for them).
     */
    publish: readonly PublicationEntry[] = [],
  ): Promise<{ version: number; roots: Map<string, string | null>; fields: (string | null)[] }> {
    const index = new Map<string, number>();
    const unique: string[] = [];
    const indexOf = (key: string) => {
      let i = index.get(key);
      if (i === undefined) {
        i = unique.length;
        index.set(key, i);
        unique.push(key);
      }
      return i;
    };
    for (const key of keys) indexOf(key);
    const logs: string[] = [];
    const fields = publish.map(({ topic, partition, records }) => {
      if (records.length === 0) return null;
      const field = publicationField(records.map((r) => r.offset));
      logs.push(`${topic}:${partition}`, field, String(records.length));
      for (const { offset, key, earlier } of records)
        logs.push(String(offset), String(indexOf(key) + 1), earlier ?? '');
      return field;
    });
    const reply = asArray(
      await this.run('link-snapshot', [JSON.stringify([String(unique.length), ...unique, ...logs])]),
    );
    return {
      version: asNumber(reply[0]),
      roots: new Map(unique.map((key, i) => [key, orNull(asString(reply[i + 1]))])),
      fields,
    };
  }

  /**
   * Last applied offset per `<topic>:<partition>` field (absent when none): of `register` by default, or of `union`.
   */
  async getWatermarks(
    fields: readonly string[],
    step: 'register' | 'union' = 'register',
  ): Promise<Map<string, number>> {
    const result = new Map<string, number>();
    if (fields.length === 0) return result;
    const values = await this.redis.hmget(`${this.base}:wm:${step}`, ...fields);
    fields.forEach((field, i) => {
      const value = values[i];
      if (value != null) result.set(field, Number(value));
    });
    return result;
  }

  /**
   * Marks identities as judged in the form register-search found them stored (`recordSha`, {@link
   * RegisterSearchResult.recordSha}); one re-registered since stays unjudged. Returns how many were marked.
   */
  async markJudged(items: readonly { key: string; recordSha: string }[]): Promise<number> {
    const args = items.filter((item) => item.recordSha !== '').flatMap((item) => [item.key, item.recordSha]);
    if (args.length === 0) return 0;
    return asNumber(await this.run('mark-judged', args));
  }

  /**
   * Global ids the records of `<topic>:<partition>` were published under by batches not yet known to be committed:
   * offset → global id, per batch (`first-last` field). A batch repeated after a crash publishes each record under the
   * id it had the first time (see {@link recordPublication}), even when a merge has moved that id's identities since:
   * the feature processor forwards it to the survivor with its first stream, whose watermark the survivor inherited
   * with the merged-away state, so it is taken for the redelivery it is instead of being counted twice.
   */
  async publications(topic: string, partition: number): Promise<PublicationLog> {
    return PublicationLog.parse(await this.redis.hgetall(this.publicationKey(topic, partition)));
  }

  /**
   * Records, before the send, the global id each record of a batch is published under (offset → id); returns the
   * batch's field for {@link forgetPublications}, or null when there was nothing to record.
   */
  async recordPublication(topic: string, partition: number, ids: ReadonlyMap<number, string>): Promise<string | null> {
    const [field = null] = await this.recordPublications([{ topic, partition, ids }]);
    return field;
  }

  /** {@link publications} of several input partitions (`topic:partition`) in one round trip. */
  async publicationsOf(tps: readonly { topic: string; partition: number }[]): Promise<PublicationLog[]> {
    if (tps.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const { topic, partition } of tps) pipeline.hgetall(this.publicationKey(topic, partition));
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, hash]) => {
      if (err) throw err;
      return PublicationLog.parse(hash as Record<string, string>);
    });
  }

  /**
   * {@link recordPublication} for several input partitions in one round trip (pipelined: a failure part way repeats
   * the round, whose records then keep whichever ids were recorded, as a repeated batch always did); returns each
   * partition's field (null where it had nothing to record).
   */
  async recordPublications(
    entries: readonly { topic: string; partition: number; ids: ReadonlyMap<number, string> }[],
  ): Promise<(string | null)[]> {
    const fields: (string | null)[] = [];
    const writes: [string, string, string][] = [];
    for (const { topic, partition, ids } of entries) {
      if (ids.size === 0) {
        fields.push(null);
        continue;
      }
      const field = publicationField(ids.keys());
      writes.push([this.publicationKey(topic, partition), field, JSON.stringify([...ids])]);
      fields.push(field);
    }
    if (writes.length > 0) {
      const pipeline = this.redis.pipeline();
      for (const [key, field, value] of writes) pipeline.hset(key, field, value);
      const replies = (await pipeline.exec()) ?? [];
      for (const [err] of replies) if (err) throw err;
    }
    return fields;
  }

  /** Forgets batches' publications once their offsets are committed. */
  async forgetPublications(topic: string, partition: number, fields: readonly string[]): Promise<void> {
    if (fields.length > 0) await this.redis.hdel(this.publicationKey(topic, partition), ...fields);
  }

  private publicationKey(topic: string, partition: number): string {
    return `${this.base}:pub:${topic}:${partition}`;
  }

  /**
   * Removes the person whose cluster `globalId` names (a root or a retired id; the whole merged cluster is the person):
   * every member identity's record and root entry, the cluster and every id merged into it, its unpublished merges,
   * the members' watermarks (`<topic>|<identity key>` for each of `watermarkTopics`) and every membership of those
   * identities in an index set (blocking keys, email and phone hashes, including entries left by earlier versions of
   * a record). Null when the graph never knew `globalId`.
   *
   * The index sweep SCANs the graph's keys (O(index sets), without blocking Redis); the removal itself is one script
   * that first checks the cluster is still what was judged (same root, members and merged ids), so a merge or a new
   * member arriving meanwhile makes it judge again. Cluster ids are never reused: a record still in flight under an
   * erased id cannot attach to someone else.
   */
  async erase(globalId: string, watermarkTopics: readonly string[]): Promise<ErasedPerson | null> {
    for (let attempt = 1; attempt <= 10; attempt++) {
      const reply = asArray(await this.run('members', [globalId])).map(asString);
      const root = reply[0] ?? '';
      if (root === '') return null;
      const identityKeys = reply.slice(1);
      const globalIds = [root, ...(await this.retiredInto(root))];
      const indexEntries = await this.sweepIndexes(identityKeys);
      const fields = identityKeys.flatMap((key) => watermarkTopics.map((topic) => `${topic}|${key}`));
      const result = asArray(
        await this.run('erase', [
          root,
          String(identityKeys.length),
          String(globalIds.length),
          ...globalIds,
          String(identityKeys.length),
          ...identityKeys,
          ...fields,
        ]),
      ).map(asNumber);
      if (result[0] !== 1) continue; // the cluster changed while it was judged: judge again
      const [, identities = 0, clusters = 0, outbox = 0, watermarks = 0] = result;
      return {
        root,
        globalIds,
        identityKeys,
        removed: { identities, clusters, indexEntries, outbox, watermarks },
      };
    }
    throw new Error(`identity graph: the cluster of ${globalId} kept changing while it was being erased`);
  }

  /** Every retired cluster id whose root is `root` (the parent hash read with HSCAN, without blocking Redis). */
  private async retiredInto(root: string): Promise<string[]> {
    const parent = new Map<string, string>();
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(`${this.base}:parent`, cursor, 'COUNT', 1000);
      for (let i = 0; i + 1 < flat.length; i += 2) parent.set(flat[i] as string, flat[i + 1] as string);
      cursor = next;
    } while (cursor !== '0');
    const rootOf = (id: string): string => {
      let current = id;
      for (let hops = 0; hops <= parent.size; hops++) {
        const up = parent.get(current);
        if (up === undefined) return current;
        current = up;
      }
      return current;
    };
    return [...parent.keys()].filter((id) => rootOf(id) === root).sort();
  }

  /**
   * Removes `members` from every set of the graph but its fixed keys and cluster member sets; returns how many
   * memberships were removed.
   */
  private async sweepIndexes(members: readonly string[]): Promise<number> {
    if (members.length === 0) return 0;
    const keyPrefix = this.redis.options.keyPrefix ?? '';
    const fixed = new Set(this.keys);
    let removed = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.scriptBase}:*`, 'COUNT', 1000);
      cursor = next;
      // Cluster member sets are the script's to check and remove: only index sets are swept here.
      const sets = keys
        .map((k) => k.slice(keyPrefix.length))
        .filter((k) => !fixed.has(k) && !k.startsWith(`${this.base}:mem:`));
      if (sets.length === 0) continue;
      const pipeline = this.redis.pipeline();
      for (const key of sets) pipeline.srem(key, ...members);
      for (const [err, count] of (await pipeline.exec()) ?? []) {
        if (!err) removed += Number(count);
        else if (!String(err).includes('WRONGTYPE')) throw err; // a key of another type: not an index set
      }
    } while (cursor !== '0');
    return removed;
  }

  /** How the graph keeps personal data: `format` '' = not marked (empty, or written before sealing). */
  async piiFormat(): Promise<{ format: string; keyId: string }> {
    const [format, keyId] = await this.redis.hmget(`${this.base}:meta`, 'pii-format', 'pii-key-id');
    return { format: format ?? '', keyId: keyId ?? '' };
  }

  /**
   * Seals, in place, a graph written before sealing: every plain-JSON record is sealed, every blocking and email/phone
   * set is renamed to its keyed name (unioned into it if a sealing version already wrote one), then the format marker
   * is written. Run it with every resolver of the prefix stopped; resolvers of this version refuse the graph until it
   * is done, and an older version must not run afterwards. Resumable after a crash: sealed records are kept and the
   * renamed sets are listed in `B:meta:migrated` until the end. On an already sealed graph it only checks the key.
   */
  async migrateToSealed(
    onProgress: (done: { records: number; sets: number }) => void = () => undefined,
  ): Promise<{ records: number; sets: number; alreadySealed: boolean }> {
    const codec = this.requireCodec('migrateToSealed');
    if ((await this.piiFormat()).format !== '') {
      await this.checkFormat();
      return { records: 0, sets: 0, alreadySealed: true };
    }
    const done = { records: 0, sets: 0 };
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(`${this.base}:rec`, cursor, 'COUNT', 500);
      cursor = next;
      const sealed: string[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const [key = '', value = ''] = [flat[i], flat[i + 1]];
        if (value.startsWith('{')) sealed.push(key, codec.sealRecord(JSON.parse(value) as IdentityRecord));
        else codec.openRecord(key, value); // sealed by an earlier run: it must open with this key
      }
      if (sealed.length > 0) await this.redis.hset(`${this.base}:rec`, ...sealed);
      done.records += sealed.length / 2;
      onProgress(done);
    } while (cursor !== '0');

    const migrated = `${this.base}:meta:migrated`;
    const redisPrefix = this.redis.options.keyPrefix ?? '';
    const renames: readonly [string, (plain: string) => string][] = [
      ['blk', (plain) => codec.blockName(plain)],
      ['email', (plain) => codec.hashIndexName('email', plain)],
      ['phone', (plain) => codec.hashIndexName('phone', plain)],
    ];
    for (const [kind, rename] of renames) {
      const from = `${this.base}:${kind}:`;
      cursor = '0';
      do {
        const [next, found] = await this.redis.scan(cursor, 'MATCH', `${redisPrefix}${from}*`, 'COUNT', 1000);
        cursor = next;
        const names = found.map((name) => name.slice(redisPrefix.length));
        // SCAN may return a set this run already renamed to (created after the scan began): never rename twice.
        const seen = names.length > 0 ? await this.redis.smismember(migrated, ...names) : [];
        // One transaction per chunk: a set is never half renamed (its members moved but not listed, or both names).
        const todo = names.filter((_, i) => seen[i] !== 1);
        if (todo.length > 0) {
          const tx = this.redis.multi();
          for (const name of todo) {
            const target = `${from}${rename(name.slice(from.length))}`;
            tx.sunionstore(target, target, name).del(name).sadd(migrated, target);
          }
          for (const [err] of (await tx.exec()) ?? []) if (err) throw err;
          done.sets += todo.length;
        }
        onProgress(done);
      } while (cursor !== '0');
    }
    await this.redis.hset(`${this.base}:meta`, 'pii-format', SEALED_FORMAT, 'pii-key-id', codec.keyId);
    await this.redis.hincrby(`${this.base}:counters`, 'writes', 1); // records and set names rewritten (countWrite)
    await this.redis.del(migrated);
    await this.checkFormat();
    return { ...done, alreadySealed: false };
  }

  /**
   * The whole graph for an in-process picture (graph-picture.ts), when it holds at most `maxIdentities` identities:
   * its hashes and every member and index set, read between two reads of the write count (graph-lib.lua countWrite),
   * so a write in between shows and it reads again (three attempts). Null when the graph is larger, or kept moving.
   * The sets are found with SCAN over the keyspace, without blocking Redis.
   */
  async readPicture(maxIdentities: number): Promise<PictureSource | null> {
    const codec = await this.sealed('readPicture');
    const counters = `${this.base}:counters`;
    const keyPrefix = this.redis.options.keyPrefix ?? '';
    const kinds = /^(mem|blk|email|phone):./;
    for (let attempt = 1; attempt <= 3; attempt++) {
      const [writes, identities] = await Promise.all([
        this.redis.hget(counters, 'writes'),
        this.redis.hlen(`${this.base}:rec`),
      ]);
      if (identities > maxIdentities) return null;
      const names = Object.keys(PICTURE_HASHES) as (keyof typeof PICTURE_HASHES)[];
      const read = await Promise.all(names.map((name) => this.redis.hgetall(`${this.base}:${PICTURE_HASHES[name]}`)));
      const hashes = Object.fromEntries(names.map((name, i) => [name, read[i] ?? {}])) as PictureSource['hashes'];
      const sets = new Map<string, string[]>();
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.scriptBase}:*`, 'COUNT', 1000);
        cursor = next;
        const found = keys
          .map((k) => k.slice(keyPrefix.length + this.base.length + 1))
          .filter((name) => kinds.test(name) && !sets.has(name));
        if (found.length === 0) continue;
        const pipeline = this.redis.pipeline();
        for (const name of found) pipeline.smembers(`${this.base}:${name}`);
        const replies = (await pipeline.exec()) ?? [];
        found.forEach((name, i) => {
          const [err, members] = replies[i] ?? [new Error('no reply'), null];
          if (err) throw err;
          sets.set(name, members as string[]);
        });
      } while (cursor !== '0');
      if ((await this.redis.hget(counters, 'writes')) === writes) return { writes: writes ?? '0', codec, hashes, sets };
    }
    return null;
  }

  /**
   * Writes a picture's journal (picture-write.lua's commands) if the graph's write count is still `writes`, leaving it
   * at `next`; answers whether it did, and the count now.
   */
  async writePicture(
    writes: string,
    next: string,
    commands: readonly string[],
  ): Promise<{ written: boolean; writes: string }> {
    const reply = asArray(await this.run('picture-write', [JSON.stringify([writes, next, ...commands])]));
    return { written: asNumber(reply[0]) === 1, writes: asString(reply[1]) };
  }

  /** Identities known and root clusters (clusters created minus clusters retired), from one MULTI snapshot. */
  async stats(): Promise<{ identities: number; clusters: number }> {
    const replies = await this.redis
      .multi()
      .hlen(`${this.base}:idc`)
      .hlen(`${this.base}:cseq`)
      .hlen(`${this.base}:parent`)
      .exec();
    const counts = (replies ?? []).map(([err, value]) => {
      if (err) throw err;
      return asNumber(value);
    });
    const [identities = 0, created = 0, retired = 0] = counts;
    return { identities, clusters: created - retired };
  }
}

/** A batch's field in its partition's publication log: its first and last offsets (PublicationLog.parse reads it). */
function publicationField(offsets: Iterable<number>): string {
  let first = Infinity;
  let last = -Infinity;
  for (const offset of offsets) {
    first = Math.min(first, offset);
    last = Math.max(last, offset);
  }
  return `${first}-${last}`;
}

/** One input partition's records of a round, for the publication log ({@link IdentityGraph.linkSnapshot}). */
export interface PublicationEntry {
  readonly topic: string;
  readonly partition: number;
  /** Each record's offset and identity, and the id an earlier attempt published it under, if any. */
  readonly records: readonly { readonly offset: number; readonly key: string; readonly earlier?: string | undefined }[];
}

/**
 * The global ids batches of one input partition were published under, until their offsets are committed (a few
 * batches: the one in flight, and those a crashed instance published but never committed, commits travelling while
 * the next rounds run). Carries no personal data: offsets and global ids, gone once committed.
 */
export class PublicationLog {
  private constructor(private readonly batches: readonly { field: string; last: number; ids: Map<number, string> }[]) {}

  static readonly empty = new PublicationLog([]);

  static parse(hash: Record<string, string>): PublicationLog {
    const batches = Object.entries(hash).map(([field, value]) => {
      const last = Number(field.slice(field.indexOf('-') + 1));
      const pairs = JSON.parse(value) as [number, string][];
      return { field, last, ids: new Map(pairs) };
    });
    return batches.length === 0 ? PublicationLog.empty : new PublicationLog(batches);
  }

  /** The global id the record at `offset` was published under by an earlier attempt, if any. */
  idAt(offset: number): string | undefined {
    for (const b of this.batches) {
      const id = b.ids.get(offset);
      if (id !== undefined) return id;
    }
    return undefined;
  }

  get size(): number {
    return this.batches.length;
  }

  /** The highest offset an earlier attempt published (-1 when none). */
  get lastOffset(): number {
    return this.batches.reduce((max, b) => Math.max(max, b.last), -1);
  }

  fieldsBelow(committed: number): string[] {
    return this.batches.filter((b) => b.last < committed).map((b) => b.field);
  }
}
