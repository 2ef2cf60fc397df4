/**
 * Where the feature processor's partition-owned state is checkpointed, and what the ad server reads.
 *
 * Keys (P = TOPIC_PREFIX, id = global customer id, p = partition number; braces are Redis Cluster hash tags):
 * - `P features:state:{id}` hash: `ep` (owner epoch of the customer's partition at the last write), `ver` (+1 per
 *   served update), `s` (the FeatureState checkpoint, binary (state-codec.ts) as base64; JSON when written before it,
 *   still read: written every FEATURES_CHECKPOINT_MS with the offset commit),
 *   `mg` (ids absorbed by merges, JSON); or, once merged away, `alias` = survivor. TTL FEATURES_STATE_TTL_SECONDS.
 * - `P features:{id}` hash: what the ad server reads with one HGETALL/HMGET (fields: logic.ts `hashFields`), or just
 *   `merged_into` for a merged-away id. TTL FEATURES_TTL_SECONDS.
 * - `P score:{id}` hash: the intent score (scoring/logic.ts `scoreHashFields`). TTL SCORES_TTL_SECONDS.
 * - `P features:epoch:{p<p>}`: the owner epoch of partition p, raised by every instance that takes the partition over.
 * - `P scores:as-of:{p<p>}` sorted set: customer id → as-of time of its score, for rescoring as time passes.
 *
 * Only the instance that owns a customer's partition writes its keys, in one pipelined round trip per flush; each
 * customer's write is one script over that customer's own keys, which refuses a writer whose epoch is older than the
 * one stored (an instance that lost the partition in a rebalance). No script spans two customers, so merges and every
 * other write run unchanged on Redis Cluster.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { decodeBinaryState, encodeStateText, isBinaryState } from './state-codec.js';
import { upgradeState, type FeatureState } from './state.js';

export interface StoredCustomer {
  readonly id: string;
  /** null: no state yet (or merged away). */
  readonly state: FeatureState | null;
  /** The survivor this id was merged into, or null. */
  readonly alias: string | null;
  /** Ids this customer absorbed by merges (a redelivered hand-off of one of them changes nothing). */
  readonly absorbed: readonly string[];
  readonly version: number;
}

export interface FeatureStoreOptions {
  readonly prefix: string;
  /**
   * A second connection for the lazy restore's reads ({@link FeatureStore.fetch}). On the writing connection a read
   * waits behind every command of a flush in flight (replies come in order), so folding the next records stalled for
   * the whole Redis part of each flush whenever they touched a customer not in memory. A customer the processor
   * loads is never one a flush in flight writes (only customers in memory are written; clean ones are evicted after
   * their flush is done), so nothing read this way can be older than a write before it. Default: the same connection.
   */
  readonly reader?: Redis;
  readonly stateTtlSeconds: number;
  readonly featuresTtlSeconds: number;
  readonly scoresTtlSeconds: number;
}

/** One customer's part of a flush. */
export type CustomerWrite =
  | {
      readonly kind: 'write';
      readonly id: string;
      readonly epoch: number;
      readonly version: number;
      /**
       * The state checkpoint ({@link encodeState}), or null to leave it (states are checkpointed less often than they
       * are served).
       */
      readonly checkpoint: string | null;
      readonly absorbed: readonly string[];
      /** Features hash field/value pairs to set; empty leaves the hash alone. */
      readonly hash: readonly string[];
      /** `hash` is the whole features hash: replace what is there. */
      readonly replaceHash: boolean;
      /** Features hash fields to delete. */
      readonly deleteFields: readonly string[];
      /** Score hash field/value pairs; empty leaves the score alone. */
      readonly score: readonly string[];
    }
  | {
      readonly kind: 'alias';
      readonly id: string;
      readonly epoch: number;
      readonly version: number;
      readonly survivor: string;
    }
  | {
      /** Erased: the customer's state, features and score keys are deleted (fenced like every write). */
      readonly kind: 'erase';
      readonly id: string;
      readonly epoch: number;
    };

/** Rescoring index changes of a flush, by partition. */
export interface FlushIndex {
  readonly scored: ReadonlyMap<number, readonly (readonly [id: string, asOfMs: number])[]>;
  readonly unscored: ReadonlyMap<number, readonly string[]>;
  readonly forget: ReadonlyMap<number, readonly string[]>;
}

export interface FlushResult {
  /** Ids whose write was refused: a newer owner of their partition has written them. */
  readonly fenced: readonly string[];
}

/** The checkpoint's encoding of a state (the `s` field): binary (state-codec.ts), as base64 text. */
export function encodeState(state: FeatureState): string {
  return encodeStateText(state);
}

/**
 * A checkpoint in whichever encoding and state format it was written: binary as base64 text (what this version
 * writes), binary bytes, or JSON as every checkpoint before the binary encoding (format 1 JSON is converted exactly).
 * JSON text starts with `{`, which neither of the others can.
 */
export function decodeState(stored: Buffer | string): FeatureState {
  if (typeof stored !== 'string') {
    if (isBinaryState(stored)) return decodeBinaryState(stored);
    if (stored[0] !== OPEN_BRACE) return decodeBinaryState(Buffer.from(stored.toString('latin1'), 'base64'));
  } else if (stored.charCodeAt(0) !== OPEN_BRACE) return decodeBinaryState(Buffer.from(stored, 'base64'));
  const json = typeof stored === 'string' ? stored : stored.toString('utf8');
  return upgradeState(JSON.parse(json) as Parameters<typeof upgradeState>[0]);
}

const OPEN_BRACE = 0x7b;

type ScriptCommand = (...args: string[]) => Promise<number>;
const FLUSH_CUSTOMER = readFileSync(new URL('./lua/flush-customer.lua', import.meta.url), 'utf8');
const MAX_ALIAS_HOPS = 64;

export class FeatureStore {
  constructor(
    private readonly redis: Redis,
    private readonly options: FeatureStoreOptions,
  ) {
    if (/[{}]/.test(options.prefix))
      throw new RangeError(`feature key prefix must not contain braces: ${options.prefix}`);
    redis.defineCommand('featuresFlushCustomer', { lua: FLUSH_CUSTOMER, numberOfKeys: 3 });
  }

  stateKey(id: string): string {
    return `${this.options.prefix}features:state:{${id}}`;
  }

  featuresKey(id: string): string {
    return `${this.options.prefix}features:{${id}}`;
  }

  scoreKey(id: string): string {
    return `${this.options.prefix}score:{${id}}`;
  }

  epochKey(partition: number): string {
    return `${this.options.prefix}features:epoch:{p${partition}}`;
  }

  asOfKey(partition: number): string {
    return `${this.options.prefix}scores:as-of:{p${partition}}`;
  }

  /** Takes partition `partition` over: a new epoch, after which writes of every earlier owner are refused. */
  async claimEpoch(partition: number): Promise<number> {
    return this.redis.incr(this.epochKey(partition));
  }

  async currentEpoch(partition: number): Promise<number> {
    return Number((await this.redis.get(this.epochKey(partition))) ?? 0);
  }

  /** The stored records of `ids` as they are (aliases not followed), in one round trip. */
  async fetch(ids: readonly string[]): Promise<Map<string, StoredCustomer>> {
    const out = new Map<string, StoredCustomer>();
    if (ids.length === 0) return out;
    const pipeline = (this.options.reader ?? this.redis).pipeline();
    for (const id of ids) pipeline.hmgetBuffer(this.stateKey(id), 'ver', 's', 'mg', 'alias');
    const replies = (await pipeline.exec()) ?? [];
    ids.forEach((id, i) => {
      const [err, reply] = replies[i] ?? [new Error('missing pipeline reply'), null];
      if (err) throw err;
      const [ver, state, mg, alias] = reply as (Buffer | null)[];
      out.set(id, {
        id,
        version: Number(ver?.toString() ?? 0),
        state: state && state.length > 0 ? decodeState(state) : null,
        absorbed: mg ? (JSON.parse(mg.toString('utf8')) as string[]) : [],
        alias: alias?.toString('utf8') ?? null,
      });
    });
    return out;
  }

  /** The current record of `id`, following merge aliases to the surviving customer (tools and tests). */
  async load(id: string): Promise<StoredCustomer> {
    let current = id;
    for (let hop = 0; hop < MAX_ALIAS_HOPS; hop++) {
      const stored = (await this.fetch([current])).get(current) as StoredCustomer;
      if (!stored.alias) return stored;
      current = stored.alias;
    }
    throw new Error(`feature state alias chain longer than ${MAX_ALIAS_HOPS} from ${id}`);
  }

  /**
   * Writes a flush: every customer's state, hash and score (each fenced by its partition's epoch) and the rescoring
   * index (per partition: scored customers at their score's as-of time, unscored ones at 0 unless already there,
   * merged-away ones removed), in one pipelined round trip.
   */
  async flush(writes: readonly CustomerWrite[], index: FlushIndex): Promise<FlushResult> {
    const { stateTtlSeconds, featuresTtlSeconds, scoresTtlSeconds } = this.options;
    const ttls = `"${stateTtlSeconds}","${featuresTtlSeconds}","${scoresTtlSeconds}"`;
    const pipeline = this.redis.pipeline();
    const run = (pipeline as unknown as Record<'featuresFlushCustomer', ScriptCommand>).featuresFlushCustomer.bind(
      pipeline,
    );
    for (const w of writes) {
      const [k1, k2, k3] = [this.stateKey(w.id), this.featuresKey(w.id), this.scoreKey(w.id)];
      if (w.kind === 'write') {
        const head = `["${w.epoch}","w","${w.version}",${ttls},"${w.replaceHash ? '1' : '0'}"]`;
        const [state, absorbed] = w.checkpoint === null ? ['', '[]'] : [w.checkpoint, JSON.stringify(w.absorbed)];
        void run(k1, k2, k3, head, state, absorbed, JSON.stringify([w.hash, w.score, w.deleteFields]));
      } else if (w.kind === 'alias') {
        void run(k1, k2, k3, `["${w.epoch}","a","${w.version}",${ttls},"0"]`, w.survivor, '[]', '[[],[],[]]');
      } else {
        void run(k1, k2, k3, `["${w.epoch}","e","0",${ttls},"0"]`, '', '[]', '[[],[],[]]');
      }
    }
    for (const [p, entries] of index.scored) {
      if (entries.length > 0) pipeline.zadd(this.asOfKey(p), ...entries.flatMap(([id, t]) => [t, id]));
    }
    for (const [p, ids] of index.unscored) {
      if (ids.length > 0) pipeline.zadd(this.asOfKey(p), 'NX', ...ids.flatMap((id) => [0, id]));
    }
    for (const [p, ids] of index.forget) if (ids.length > 0) pipeline.zrem(this.asOfKey(p), ...ids);
    if (pipeline.length === 0) return { fenced: [] };
    const replies = (await pipeline.exec()) ?? [];
    const fenced: string[] = [];
    for (const [i, [err, reply]] of replies.entries()) {
      if (err) throw err;
      if (i < writes.length && reply === -1) fenced.push((writes[i] as CustomerWrite).id);
    }
    return { fenced };
  }

  /** Customers of `partition` whose score is as of `olderThanMs` or earlier, oldest first. */
  async dueForRescore(partition: number, olderThanMs: number, skip: number, count: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.asOfKey(partition), '-inf', olderThanMs, 'LIMIT', skip, count);
  }

  async forgetAsOf(partition: number, ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.redis.zrem(this.asOfKey(partition), ...ids);
  }

  /**
   * Deletes customers' state, features and score keys and their entries in every partition's rescoring index, without
   * an epoch (erasure tools; the owner's own erase command is fenced like its other writes). Returns keys deleted.
   */
  async eraseCustomers(ids: readonly string[], partitions: number): Promise<number> {
    if (ids.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    pipeline.del(...ids.flatMap((id) => [this.stateKey(id), this.featuresKey(id), this.scoreKey(id)]));
    for (let p = 0; p < partitions; p++) pipeline.zrem(this.asOfKey(p), ...ids);
    const replies = (await pipeline.exec()) ?? [];
    let deleted = 0;
    for (const [err, n] of replies) {
      if (err) throw err;
      deleted += Number(n);
    }
    return deleted;
  }

  /** The ad server's view of one customer (HGETALL); empty when unknown. */
  async readFeatures(id: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.featuresKey(id));
  }
}
