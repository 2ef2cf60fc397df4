// The in-process graph rules (graph-model.ts) against the real scripts on the real Redis: random sequences of
// registrations (exact email and phone links, watermarks, blocking sets) and unions (probabilistic matches with
// expectations that are right, stale or absent, the cluster cap) go through register.lua / union.lua and through the
// model; every reply must be the same, and afterwards the whole graph, key by key. A second model keeps a journal and
// writes it now and then through picture-write.lua into a graph of its own, as the resolver's picture does: that graph
// must end up the same too, and a write after another script wrote must be refused.
import { randomBytes, randomInt } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { graphScriptKeys, PICTURE_HASHES, scriptSources } from '../../processors/identity/graph-store.js';
import {
  GraphModel,
  recordSha,
  registerReplyArray,
  unionReplyArray,
  type ModelMatch,
} from '../../processors/identity/graph-model.js';
import { seededRandom } from '../../processors/identity/model.js';

// The scripts as the graph runs them (graph-lib.lua prepended) and their KEYS, from graph-store.ts.
const REGISTER = scriptSources().get('register') ?? '';
const UNION = scriptSources().get('union') ?? '';
const MARK = scriptSources().get('mark-judged') ?? '';
const WRITE = scriptSources().get('picture-write') ?? '';
// The hashes a picture holds, and the merge outbox the model keeps for this test.
const HASHES = [...Object.values(PICTURE_HASHES), 'outbox'];

const redis = new Redis(inject('endpoints').redisUrl, { maxRetriesPerRequest: 3 });
const bases: string[] = [];
afterAll(async () => {
  for (const base of bases) {
    const keys = await scan(base);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

async function scan(base: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 1000);
    keys.push(...found);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

type Reply = (string | number)[];

async function run(base: string, script: string, args: readonly string[]): Promise<Reply | undefined> {
  try {
    const keys = graphScriptKeys(base);
    return (await redis.eval(script, keys.length, ...keys, base, ...args)) as Reply;
  } catch (err) {
    if (String(err).includes('IDG_UNKNOWN_KEY')) return undefined;
    throw err;
  }
}

/** The graph as Redis holds it: every hash, the outbox order and every set, values as strings. */
async function dumpRedis(base: string): Promise<Record<string, unknown>> {
  const dump: Record<string, unknown> = {};
  for (const h of HASHES) dump[h] = await redis.hgetall(`${base}:${h}`);
  delete (dump['counters'] as Record<string, string>)['writes']; // countWrite's count: the scripts' own bookkeeping
  const order = await redis.zrange(`${base}:outbox:order`, 0, -1, 'WITHSCORES');
  const byId: Record<string, string> = {};
  for (let i = 0; i < order.length; i += 2) byId[order[i] ?? ''] = order[i + 1] ?? '';
  dump['outbox:order'] = byId;
  const sets: Record<string, string[]> = {};
  for (const key of await scan(`${base}:`)) {
    const name = key.slice(base.length + 1);
    if ((await redis.type(key)) === 'set') sets[name] = (await redis.smembers(key)).sort();
  }
  dump['sets'] = sets;
  return dump;
}

function dumpModel(model: GraphModel): Record<string, unknown> {
  const strings = (m: ReadonlyMap<string, string | number>) =>
    Object.fromEntries([...m].map(([k, v]) => [k, String(v)]));
  return {
    counters: strings(model.counters),
    rec: strings(model.rec),
    idc: strings(model.idc),
    cseq: strings(model.cseq),
    parent: strings(model.parent),
    outbox: strings(model.outbox),
    'wm:register': strings(model.wmRegister),
    'wm:union': strings(model.wmUnion),
    cver: strings(model.cver),
    fresh: strings(model.fresh),
    judged: strings(model.judged),
    'outbox:order': strings(model.outboxOrder),
    sets: Object.fromEntries([...model.sets].filter(([, s]) => s.size > 0).map(([k, s]) => [k, [...s].sort()])),
  };
}

/** One random sequence of `steps` operations on `people` identity keys, through the scripts and the model. */
async function replay(seed: number, steps: number, cap: number): Promise<{ merges: number; stale: number }> {
  const base = `t-model-${randomBytes(4).toString('hex')}.idg:v1:{t-model-idg}`;
  bases.push(base);
  const model = new GraphModel();
  // The same operations on a journaled model, written now and then into a graph of its own (picture-write.lua).
  const journaled = new GraphModel({ journal: true });
  const both = <T>(apply: (m: GraphModel) => T): T => {
    const reply = apply(model);
    expect(apply(journaled)).toEqual(reply);
    return reply;
  };
  const pictureBase = `t-model-${randomBytes(4).toString('hex')}.idg:v1:{t-model-idg}`;
  bases.push(pictureBase);
  let writes = '0';
  const writeJournal = async () => {
    const next = String(randomInt(1, 2 ** 47));
    const reply = await run(pictureBase, WRITE, [JSON.stringify([writes, next, ...journaled.takeWrites()])]);
    expect(reply, `seed ${seed}: the journal's write`).toEqual([1, next]);
    writes = next;
  };
  const random = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
  const keys = Array.from({ length: 14 }, (_, i) => `shop:k/${i}`); // a '/' as cjson escapes it
  const registered: string[] = [];
  const offsets = new Map<string, number>();
  let merges = 0;
  let stale = 0;
  for (let step = 0; step < steps; step++) {
    const eventId = `e-${seed}-${step}`;
    const eventTimeMs = String(1_700_000_000_000 + step);
    if (registered.length > 0 && random() < 0.12) {
      // A judged mark: of the record as stored, or of one registered again since (not marked).
      const key = pick(registered);
      const sha = random() < 0.75 ? recordSha(model.rec.get(key) ?? '') : recordSha('an earlier record');
      const marked = both((m) => m.markJudged(key, sha));
      expect(await run(base, MARK, [key, sha]), `seed ${seed} step ${step}: mark ${key}`).toBe(marked);
    } else if (registered.length < 2 || random() < 0.55) {
      const key = pick(keys);
      const field = random() < 0.7 ? `t|${key}` : '';
      // A watermark that moves on, or now and then one already applied (a redelivery).
      const last = offsets.get(field) ?? 0;
      const offset = random() < 0.15 ? Math.max(0, last - 1) : last + 1 + Math.floor(random() * 3);
      if (field !== '') offsets.set(field, Math.max(last, offset));
      const email = random() < 0.35 ? pick(['e0', 'e1', 'e2']) : '';
      const phone = random() < 0.25 ? pick(['p0', 'p1']) : '';
      const blocks = ['b0', 'b1', 'b2', 'b3'].filter(() => random() < 0.3);
      const record = `{"key":"${key}","n":${step}}`;
      const args = [key, record, email, phone, String(cap), eventId, eventTimeMs, field, String(offset), ...blocks];
      const expected = registerReplyArray(
        both((m) => m.register(key, record, email, phone, cap, eventId, eventTimeMs, field, String(offset), blocks)),
      );
      expect(await run(base, REGISTER, args), `seed ${seed} step ${step}: register ${key}`).toEqual(expected);
      if (!registered.includes(key)) registered.push(key);
      merges += Math.max(0, expected.length - 6); // the MergeEntries after the six fields
    } else {
      const key = pick(registered);
      const field = random() < 0.5 ? `u|${key}` : '';
      const offset = (offsets.get(field) ?? 0) + (random() < 0.15 ? 0 : 1);
      if (field !== '') offsets.set(field, offset);
      // Expectations: the graph's truth, something stale, or none.
      const expect_ = (k: string): [string, string] => {
        const root = model.rootOfKey(k, false) ?? '';
        const size = String(model.sets.get(`mem:${root}`)?.size ?? 0);
        const r = random();
        if (r < 0.5) return [root, size];
        if (r < 0.65) return [root, String(Number(size) + 1)];
        if (r < 0.75) return ['c-1', '0'];
        return ['', '0'];
      };
      const [ownRoot, ownSize] = expect_(key);
      const matches: ModelMatch[] = Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
        const other = pick(registered);
        const [root, size] = expect_(other);
        return {
          key: other,
          confidence: pick(['0.91', '0.97', '0.995']),
          matchWeight: pick(['8.5', '12.25']),
          root,
          size,
        };
      });
      const args = [key, String(cap), eventId, eventTimeMs, field, String(offset), ownRoot, ownSize];
      for (const m of matches) args.push(m.key, m.confidence, m.matchWeight, m.root, m.size);
      const reply = both((m) =>
        m.union(key, cap, eventId, eventTimeMs, field, String(offset), ownRoot, ownSize, matches),
      );
      const expected = reply && unionReplyArray(reply);
      expect(await run(base, UNION, args), `seed ${seed} step ${step}: union ${key}`).toEqual(expected);
      if (expected?.[3] === 1) stale++;
      merges += expected ? expected.length - 4 : 0;
    }
    if (random() < 0.1) await writeJournal();
  }
  await writeJournal();
  const graph = await dumpRedis(base);
  expect(graph, `seed ${seed}: the graph after ${steps} steps`).toEqual(dumpModel(model));
  expect(await dumpRedis(pictureBase), `seed ${seed}: the journal's graph`).toEqual(graph);
  // Another script wrote meanwhile: the journal's next write is refused whole.
  await run(pictureBase, MARK, ['shop:k/0', 'no such record']);
  const before = await dumpRedis(pictureBase);
  both((m) => m.register('shop:late', '{}', 'e0', '', cap, 'late', '1', '', '0', ['b0']));
  const refused = await run(pictureBase, WRITE, [JSON.stringify([writes, '7', ...journaled.takeWrites()])]);
  expect(refused, `seed ${seed}: a write after another writer`).toEqual([0, String(Number(writes) + 1)]);
  expect(await dumpRedis(pictureBase)).toEqual(before);
  return { merges, stale };
}

describe('graph-model.ts against graph-lib.lua', () => {
  it('answers every registration and union as the scripts do and leaves the same graph, key by key', async () => {
    let merges = 0;
    let stale = 0;
    for (let seed = 1; seed <= 24; seed++) {
      const result = await replay(seed, 60, seed % 3 === 0 ? 3 : 6);
      merges += result.merges;
      stale += result.stale;
    }
    // The sequences did reach the interesting paths: merges with entries in the outbox, and stale unions.
    expect(merges).toBeGreaterThan(20);
    expect(stale).toBeGreaterThan(20);
  }, 120_000);
});
