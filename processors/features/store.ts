/**
 * Feature state and the ad server's feature hash in Redis.
 *
 * Keys (P = TOPIC_PREFIX, id = global customer id; the braces are a Redis Cluster hash tag):
 * - `P features:state:{id}` hash: `ver` (version, +1 per write) and `s` (FeatureState JSON); or, for a customer merged
 *   into another, `alias` = the survivor's id. TTL FEATURES_STATE_TTL_SECONDS, renewed on every write.
 * - `P features:{id}` hash: what the ad server reads with one HGETALL/HMGET (fields: see logic.ts `hashFields`), or just
 *   `merged_into` for a merged-away id. TTL FEATURES_TTL_SECONDS, renewed on every write.
 *
 * Writes are compare-and-set on `ver` in one Lua script (state and hash together), so two writers of one customer
 * (its own partition, a merge, a late event of a merged-away id arriving on another partition) never lose an update:
 * the loser of a race re-reads and re-applies. A merge writes the survivor and aliases the loser in one script; under
 * Redis Cluster the two customers' keys would have to share a slot, so merges need a single Redis (or Sentinel) today.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { FeatureState } from './state.js';

export interface StoredState {
  /** The root id this state belongs to (after following aliases). */
  readonly id: string;
  readonly version: number;
  /** null: no state yet (version 0). */
  readonly state: FeatureState | null;
}

export interface FeatureStoreOptions {
  readonly prefix: string;
  readonly stateTtlSeconds: number;
  readonly featuresTtlSeconds: number;
}

type ScriptCommand = (numKeys: number, ...args: string[]) => Promise<number>;

const read = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
let scripts: { put: string; merge: string } | undefined;

/** The write lost a race (-1) or the key became an alias (-2): re-read and try again. */
export class StaleStateError extends Error {}

const MAX_ALIAS_HOPS = 64;

export class FeatureStore {
  private readonly put: ScriptCommand;
  private readonly merge: ScriptCommand;

  constructor(
    private readonly redis: Redis,
    private readonly options: FeatureStoreOptions,
  ) {
    if (/[{}]/.test(options.prefix))
      throw new RangeError(`feature key prefix must not contain braces: ${options.prefix}`);
    scripts ??= { put: read('put-state'), merge: read('merge-state') };
    redis.defineCommand('featuresPutState', { lua: scripts.put });
    redis.defineCommand('featuresMergeState', { lua: scripts.merge });
    const commands = redis as unknown as Record<'featuresPutState' | 'featuresMergeState', ScriptCommand>;
    this.put = commands.featuresPutState.bind(redis);
    this.merge = commands.featuresMergeState.bind(redis);
  }

  stateKey(id: string): string {
    return `${this.options.prefix}features:state:{${id}}`;
  }

  featuresKey(id: string): string {
    return `${this.options.prefix}features:{${id}}`;
  }

  /** The current state of `id`, following merge aliases to the surviving customer. */
  async load(id: string): Promise<StoredState> {
    let current = id;
    for (let hop = 0; hop < MAX_ALIAS_HOPS; hop++) {
      const [ver, json, alias] = await this.redis.hmget(this.stateKey(current), 'ver', 's', 'alias');
      if (alias) {
        current = alias;
        continue;
      }
      return { id: current, version: Number(ver ?? 0), state: json ? (JSON.parse(json) as FeatureState) : null };
    }
    throw new Error(`feature state alias chain longer than ${MAX_ALIAS_HOPS} from ${id}`);
  }

  /** Loads many ids at once (one pipeline per alias hop). */
  async loadMany(ids: readonly string[]): Promise<Map<string, StoredState>> {
    const out = new Map<string, StoredState>();
    let pending = ids.map((id) => ({ asked: id, current: id }));
    for (let hop = 0; pending.length > 0; hop++) {
      if (hop >= MAX_ALIAS_HOPS) throw new Error(`feature state alias chain longer than ${MAX_ALIAS_HOPS}`);
      const pipeline = this.redis.pipeline();
      for (const p of pending) pipeline.hmget(this.stateKey(p.current), 'ver', 's', 'alias');
      const replies = (await pipeline.exec()) ?? [];
      const next: typeof pending = [];
      pending.forEach((p, i) => {
        const [err, reply] = replies[i] ?? [new Error('missing pipeline reply'), null];
        if (err) throw err;
        const [ver, json, alias] = reply as (string | null)[];
        if (alias) next.push({ asked: p.asked, current: alias });
        else {
          const state = json ? (JSON.parse(json) as FeatureState) : null;
          out.set(p.asked, { id: p.current, version: Number(ver ?? 0), state });
        }
      });
      pending = next;
    }
    return out;
  }

  /** Compare-and-set write of `id`'s state (expected `version`) and hash. Returns the new version. */
  async write(id: string, version: number, state: FeatureState, hash: readonly string[]): Promise<number> {
    const result = await this.put(
      2,
      this.stateKey(id),
      this.featuresKey(id),
      String(version),
      JSON.stringify(state),
      String(this.options.stateTtlSeconds),
      String(this.options.featuresTtlSeconds),
      JSON.stringify(hash),
    );
    if (result < 0) throw new StaleStateError(`feature state of ${id} moved (${result})`);
    return result;
  }

  /** Writes `combined` under the survivor and aliases the loser to it, atomically. Returns the survivor's version. */
  async writeMerge(
    survivor: { id: string; version: number },
    loser: { id: string; version: number },
    combined: FeatureState,
    hash: readonly string[],
  ): Promise<number> {
    const result = await this.merge(
      4,
      this.stateKey(survivor.id),
      this.featuresKey(survivor.id),
      this.stateKey(loser.id),
      this.featuresKey(loser.id),
      String(survivor.version),
      String(loser.version),
      JSON.stringify(combined),
      String(this.options.stateTtlSeconds),
      String(this.options.featuresTtlSeconds),
      survivor.id,
      JSON.stringify(hash),
    );
    if (result < 0) throw new StaleStateError(`merge of ${loser.id} into ${survivor.id}: a state moved (${result})`);
    return result;
  }

  /** The ad server's view of one customer (HGETALL); empty when unknown. */
  async readFeatures(id: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.featuresKey(id));
  }
}
