// The identity graph on the real Redis: exact-hash linking, deterministic merges into the oldest cluster, the cluster
// cap, watermarks, the merge outbox, and concurrent writers on separate connections ending in the same clustering as
// one sequential writer.
import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
// Deterministic shuffles, so a failure reproduces.
import { seededRandom } from '../../processors/identity/model.js';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { IdentityGraph, StoredIdentitiesFound, type UnionMatch } from '../../processors/identity/graph-store.js';
import { JudgingPicture } from '../../processors/identity/judging-picture.js';
import { PiiCodec } from '../../processors/identity/pii-codec.js';
import type { IdentityRecord } from '../../processors/identity/types.js';

// Records are sealed and set names keyed (pii-codec.ts); the key is a test's own.
const codecKey = randomBytes(32);
const codec = new PiiCodec(codecKey);

const T0 = 1_700_000_000_123;
const connections: Redis[] = [];
const prefixes: string[] = [];

function connect(): Redis {
  const redis = new Redis(inject('endpoints').redisUrl, { maxRetriesPerRequest: 3 });
  connections.push(redis);
  return redis;
}

function newPrefix(): string {
  const prefix = `t-${randomBytes(4).toString('hex')}.`;
  prefixes.push(prefix);
  return prefix;
}

function open(options: { maxClusterSize?: number; redis?: Redis } = {}): IdentityGraph {
  return IdentityGraph.open(options.redis ?? connect(), { prefix: newPrefix(), codec, ...options });
}

afterAll(async () => {
  const redis = connections[0] ?? connect();
  for (const prefix of prefixes) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}idg:*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
  await Promise.all(connections.map((r) => r.quit()));
});

function rec(key: string, fields: Partial<IdentityRecord> = {}): IdentityRecord {
  return {
    key,
    platform: key.split(':')[0] ?? 'shop',
    ...NO_ATTRIBUTES,
    ...fields,
  };
}

let events = 0;
const meta = (extra: { watermark?: { field: string; offset: number | bigint } } = {}) => ({
  eventId: `e-${++events}`,
  eventTimeMs: T0 + events,
  ...extra,
});
const match = (key: string, confidence = 0.99, matchWeight = 12.5): UnionMatch => ({ key, confidence, matchWeight });

describe('globalIdOf', () => {
  it('answers any number of keys at once: 150,000 (one script call for all of them overflowed the stack)', async () => {
    const graph = open();
    const a = await graph.register(rec('shop:a', { emailSha256: 'e-a' }), [], meta());
    const b = await graph.register(rec('shop:b', { emailSha256: 'e-a' }), [], meta()); // joins a's cluster
    const keys = Array.from({ length: 150_000 }, (_, i) => `shop:unknown-${i}`);
    keys.splice(12_345, 0, 'shop:a');
    keys.push('shop:b', 'shop:a');
    const roots = await graph.globalIdOf(keys);
    expect(roots.size).toBe(150_002);
    expect(roots.get('shop:a')).toBe(a.globalId);
    expect(roots.get('shop:b')).toBe(a.globalId);
    expect(b.globalId).toBe(a.globalId);
    expect([...roots.values()].filter((root) => root !== null)).toHaveLength(2);
  });
});

describe('register', () => {
  it('gives a new identity a new id, and keeps it idempotently when the identity comes again', async () => {
    const graph = open();
    const record = rec('shop:1', { lastName: 'smith', emailSha256: 'e1' });
    const first = await graph.register(record, ['ln:smith'], meta());
    expect(first).toEqual({
      alreadyApplied: false,
      globalId: 'c-1',
      isNew: true,
      method: 'NEW',
      previousGlobalId: null,
      merges: [],
      refused: 0,
    });
    const again = await graph.register(record, ['ln:smith'], meta());
    expect(again).toEqual({
      alreadyApplied: false,
      globalId: 'c-1',
      isNew: false,
      method: 'PLATFORM_ID',
      previousGlobalId: 'c-1',
      merges: [],
      refused: 0,
    });
    expect(await graph.stats()).toEqual({ identities: 1, clusters: 1 });
    expect(await graph.records(['shop:1', 'shop:404'])).toEqual(
      new Map([['shop:1', { record, globalId: 'c-1', sealed: expect.stringMatching(/^s1\./) as string }]]),
    );
    expect(await graph.globalIdOf(['shop:1', 'shop:404'])).toEqual(
      new Map([
        ['shop:1', 'c-1'],
        ['shop:404', null],
      ]),
    );
    expect(await graph.members('c-1')).toEqual(['shop:1']);
    expect(await graph.pendingMerges(10)).toEqual([]);
  });

  it('links a new identity to the cluster of an exact email or phone match', async () => {
    const graph = open();
    await graph.register(rec('shop:1', { emailSha256: 'e1' }), [], meta());
    await graph.register(rec('shop:2', { phoneSha256: 'p2' }), [], meta());
    const byEmail = await graph.register(rec('app:1', { emailSha256: 'e1' }), [], meta());
    expect(byEmail).toMatchObject({ globalId: 'c-1', isNew: false, method: 'EMAIL_HASH', previousGlobalId: null });
    const byPhone = await graph.register(rec('app:2', { phoneSha256: 'p2' }), [], meta());
    expect(byPhone).toMatchObject({ globalId: 'c-2', isNew: false, method: 'PHONE_HASH', merges: [] });
    expect(await graph.members('c-1')).toEqual(['app:1', 'shop:1']);
    expect(await graph.stats()).toEqual({ identities: 4, clusters: 2 });
  });

  it('merges the clusters of an email match and a phone match into the older one, with one MergeEntry', async () => {
    const graph = open();
    await graph.register(rec('shop:a', { emailSha256: 'e' }), [], meta()); // c-1
    await graph.register(rec('shop:b', { phoneSha256: 'p' }), [], meta()); // c-2
    await graph.register(rec('app:b2', { phoneSha256: 'p' }), [], meta()); // joins c-2
    const m = meta();
    const bridge = await graph.register(rec('web:x', { emailSha256: 'e', phoneSha256: 'p' }), [], m);
    expect(bridge).toEqual({
      alreadyApplied: false,
      globalId: 'c-1',
      isNew: false,
      method: 'EMAIL_HASH',
      previousGlobalId: null,
      refused: 0,
      merges: [
        {
          mergeId: 'merge:c-1:c-2',
          survivorId: 'c-1',
          mergedId: 'c-2',
          method: 'PHONE_HASH',
          confidence: 1,
          matchWeight: null,
          sourceEventId: m.eventId,
          eventTimeMs: m.eventTimeMs,
          movedKeys: ['app:b2', 'shop:b'],
        },
      ],
    });
    expect(await graph.members('c-1')).toEqual(['app:b2', 'shop:a', 'shop:b', 'web:x']);
    expect(await graph.members('c-2')).toEqual(['app:b2', 'shop:a', 'shop:b', 'web:x']); // a retired id → its survivor
    expect(await graph.rootOf(['c-2', 'c-1', 'c-9'])).toEqual(
      new Map([
        ['c-2', 'c-1'],
        ['c-1', 'c-1'],
        ['c-9', null],
      ]),
    );
    expect(await graph.globalIdOf(['shop:b', 'app:b2'])).toEqual(
      new Map([
        ['shop:b', 'c-1'],
        ['app:b2', 'c-1'],
      ]),
    );
    expect(await graph.stats()).toEqual({ identities: 4, clusters: 1 });
    // The same record again: nothing left to merge.
    const again = await graph.register(rec('web:x', { emailSha256: 'e', phoneSha256: 'p' }), [], meta());
    expect(again).toMatchObject({ globalId: 'c-1', method: 'PLATFORM_ID', merges: [], refused: 0 });
    expect(await graph.pendingMerges(10)).toHaveLength(1);
  });

  it('lets a known identity that gains an email join the older cluster: its own cluster is retired', async () => {
    const graph = open();
    await graph.register(rec('shop:a', { emailSha256: 'e' }), [], meta()); // c-1
    await graph.register(rec('shop:b'), [], meta()); // c-2
    const result = await graph.register(rec('shop:b', { emailSha256: 'e' }), [], meta());
    expect(result).toMatchObject({ globalId: 'c-1', method: 'PLATFORM_ID', previousGlobalId: 'c-2' });
    expect(result.merges).toMatchObject([{ survivorId: 'c-1', mergedId: 'c-2', method: 'EMAIL_HASH' }]);
  });
});

describe('candidates and records', () => {
  it('unions blocking sets without the identity itself and skips oversized blocks', async () => {
    const graph = open();
    await graph.register(rec('shop:1'), ['ln:smith', 'pc:1000'], meta());
    await graph.register(rec('shop:2'), ['ln:smith'], meta());
    await graph.register(rec('shop:3'), ['pc:1000', 'city:x'], meta());
    await graph.register(rec('shop:4'), ['city:x'], meta());
    await graph.register(rec('shop:5'), ['city:x'], meta());
    expect(await graph.candidates(['ln:smith', 'pc:1000', 'city:x'], 'shop:1', 2)).toEqual({
      keys: ['shop:2', 'shop:3'],
      skippedBlocks: 1,
    });
    expect(await graph.candidates(['ln:smith', 'pc:1000', 'city:x', 'none'], 'shop:1', 10)).toEqual({
      keys: ['shop:2', 'shop:3', 'shop:4', 'shop:5'],
      skippedBlocks: 0,
    });
  });

  it('returns the clusters of the candidates whole, with sizes and member records, the own cluster first', async () => {
    const graph = open();
    await graph.register(rec('shop:1', { lastName: 'smith', emailSha256: 'e1' }), ['ln:smith', 'pc:1000'], meta());
    await graph.register(rec('shop:0', { emailSha256: 'e1' }), [], meta()); // shop:1's cluster, no shared block
    await graph.register(rec('shop:2', { lastName: 'smyth' }), ['ln:smith'], meta());
    await graph.register(rec('shop:3', { emailSha256: 'e3' }), ['pc:1000', 'city:x'], meta());
    await graph.register(rec('shop:4', { emailSha256: 'e3' }), [], meta()); // shop:3's cluster, found through it
    const blocks = ['ln:smith', 'pc:1000', 'city:x'];
    const found = await graph.clusterCandidates('shop:1', blocks, { maxBlockSize: 10, maxMembers: 10 });
    const roots = await graph.globalIdOf(['shop:1', 'shop:2', 'shop:3']);
    expect(found.own).toBe(roots.get('shop:1'));
    expect(found.skippedBlocks).toBe(0);
    expect(found.clusters.map((c) => [c.id, c.size, c.members.map((m) => m.key)])).toEqual([
      [roots.get('shop:1'), 2, ['shop:0', 'shop:1']],
      [roots.get('shop:2'), 1, ['shop:2']],
      [roots.get('shop:3'), 2, ['shop:3', 'shop:4']],
    ]);
    expect(found.clusters[2]?.members[0]).toEqual(rec('shop:3', { emailSha256: 'e3' }));
    const capped = await graph.clusterCandidates('shop:1', blocks, { maxBlockSize: 1, maxMembers: 1 });
    expect(capped.skippedBlocks).toBe(2); // ln:smith and pc:1000 hold two each
    expect(capped.clusters.map((c) => [c.size, c.members.length])).toEqual([
      [2, 1],
      [2, 1],
    ]);
  });
});

describe('groups (registerAndSearch, unionMany)', () => {
  it('registers a whole group before it searches, and answers as register and clusterCandidates do', async () => {
    const graph = open();
    await graph.register(rec('shop:0', { lastName: 'smith', emailSha256: 'e0' }), ['ln:smith'], meta());
    await graph.register(rec('shop:9', { emailSha256: 'e0' }), [], meta()); // shop:0's cluster, no shared block
    const a = rec('shop:a', { lastName: 'smith', firstName: 'ann' });
    const b = rec('shop:b', { lastName: 'smyth', firstName: 'ann', emailSha256: 'e0' });
    const found = await graph.registerAndSearch(
      [
        {
          record: a,
          blockingKeys: ['ln:smith', 'fn:ann'],
          meta: meta({ watermark: { field: 't|shop:a', offset: 5 } }),
        },
        { record: b, blockingKeys: ['fn:ann'], meta: meta() },
      ],
      { register: true, maxBlockSize: 10, maxMembers: 10 },
    );
    expect(found.map((f) => f.registered?.method)).toEqual(['NEW', 'EMAIL_HASH']);
    const roots = await graph.globalIdOf(['shop:0', 'shop:a']);
    // a sees b although b registered after it in the same group; b joined shop:0's cluster by its email.
    expect(found[0]?.own).toBe(roots.get('shop:a'));
    expect(found[0]?.clusters.map((c) => [c.id, c.size, c.members.map((m) => m.key)])).toEqual([
      [roots.get('shop:a'), 1, ['shop:a']],
      [roots.get('shop:0'), 3, ['shop:0', 'shop:9', 'shop:b']],
    ]);
    expect(found[0]?.clusters[1]?.members[2]).toEqual(b);
    expect(found[1]?.clusters.map((c) => c.id)).toEqual([roots.get('shop:0'), roots.get('shop:a')]);
    // A search-only group writes nothing; the watermark of the registration was kept.
    const again = await graph.registerAndSearch([{ record: a, blockingKeys: ['ln:smith'], meta: meta() }], {
      register: false,
      maxBlockSize: 1,
      maxMembers: 10,
    });
    expect(again[0]).toMatchObject({ registered: null, skippedBlocks: 1, own: roots.get('shop:a') });
    expect(await graph.getWatermarks(['t|shop:a'])).toEqual(new Map([['t|shop:a', 5]]));
  });

  it('registers identities taken for new without a read, and writes nothing when one of them is stored', async () => {
    const graph = open();
    const search = { register: true, maxBlockSize: 10, maxMembers: 10 };
    const item = (record: IdentityRecord) => ({ record, blockingKeys: ['ln:smith'], meta: meta() });
    await graph.register(rec('shop:old', { lastName: 'smith', firstName: 'olga' }), ['ln:smith'], meta());
    const fresh = rec('shop:new', { lastName: 'smith', firstName: 'nina' });
    // One of the group is stored: nothing of the group is registered, and the error names the stored one.
    const refused = graph.registerAndSearch([item(fresh), item(rec('shop:old', { lastName: 'smith' }))], {
      ...search,
      absent: ['shop:new', 'shop:old'],
    });
    await expect(refused).rejects.toBeInstanceOf(StoredIdentitiesFound);
    await expect(refused).rejects.toMatchObject({ keys: ['shop:old'] });
    expect([...(await graph.records(['shop:new', 'shop:old'])).keys()]).toEqual(['shop:old']);
    expect((await graph.records(['shop:old'])).get('shop:old')?.record.firstName).toBe('olga');
    expect(await graph.globalIdOf(['shop:new'])).toEqual(new Map([['shop:new', null]]));
    // All of them new: registered and searched as without the check.
    const [found] = await graph.registerAndSearch([item(fresh)], { ...search, absent: ['shop:new'] });
    expect(found?.registered?.method).toBe('NEW');
    expect(found?.clusters.map((c) => c.members.map((m) => m.key)).sort()).toEqual([['shop:new'], ['shop:old']]);
  });

  it('answers from the graph as it is now, whatever this process read before: other writers, merges, erasure', async () => {
    const prefix = newPrefix();
    const [reader, writer] = [connect(), connect()].map((redis) => IdentityGraph.open(redis, { prefix, codec }));
    if (!reader || !writer) throw new Error('two graphs expected');
    const search = { maxBlockSize: 10, maxMembers: 10 };
    const item = (record: IdentityRecord, blockingKeys = ['ln:smith']) => ({ record, blockingKeys, meta: meta() });
    const clustersOf = async (record: IdentityRecord) => {
      const [found] = await reader.registerAndSearch([item(record)], { register: false, ...search });
      const clusters = found?.clusters.map((c) => [
        c.id,
        c.size,
        c.members.map((m) => `${m.key}:${m.firstName ?? ''}`),
      ]);
      return clusters?.sort((x, y) => String(x[0]).localeCompare(String(y[0]))); // a set's members come unordered
    };
    const a = rec('s:a', { lastName: 'smith', firstName: 'ann' });
    await reader.registerAndSearch([item(a), item(rec('s:b', { lastName: 'smith' }))], { register: true, ...search });
    const [ra, rb] = ['c-1', 'c-2'];
    expect(await clustersOf(a)).toEqual([
      [ra, 1, ['s:a:ann']],
      [rb, 1, ['s:b:']],
    ]);
    // Another process adds a member to a block this one holds, rewrites a held member's record, and merges clusters.
    await writer.register(rec('s:c', { lastName: 'smith' }), ['ln:smith'], meta());
    await writer.register(rec('s:b', { lastName: 'smith', firstName: 'bob' }), ['ln:smith'], meta());
    expect(await clustersOf(a)).toEqual([
      [ra, 1, ['s:a:ann']],
      [rb, 1, ['s:b:bob']],
      ['c-3', 1, ['s:c:']],
    ]);
    await writer.union('s:c', [match('s:b')], meta());
    expect(await clustersOf(a)).toEqual([
      [ra, 1, ['s:a:ann']],
      [rb, 2, ['s:b:bob', 's:c:']],
    ]);
    // An erasure (by any process) makes every process forget what it holds: the erased person is never a candidate.
    expect(await writer.erase(rb, [])).toMatchObject({ identityKeys: ['s:b', 's:c'] });
    expect(await clustersOf(a)).toEqual([[ra, 1, ['s:a:ann']]]);
  });

  it('sends back records this process holds as the name of their sealing, and reads the others whole', async () => {
    const prefix = newPrefix();
    // Another process: the same key, but its own codec, so it holds none of the records the writer sealed.
    const readerRedis = connect();
    const reader = IdentityGraph.open(readerRedis, { prefix, codec: new PiiCodec(codecKey) });
    const writer = IdentityGraph.open(connect(), { prefix, codec });
    const search = { register: false, maxBlockSize: 10, maxMembers: 10 };
    const probe = { record: rec('s:p', { lastName: 'smith' }), blockingKeys: ['ln:smith'], meta: meta() };
    const names = async () =>
      (await reader.registerAndSearch([probe], search))[0]?.clusters.flatMap((c) =>
        c.members.map((m) => `${m.key}:${m.firstName ?? ''}`),
      );
    await writer.register(rec('s:a', { lastName: 'smith', firstName: 'ann' }), ['ln:smith'], meta());
    expect(await names()).toEqual(['s:a:ann']);
    // A record rewritten between the search and the read of the records it named: the search runs again, whole.
    const command = readerRedis as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const readRecords = command['idgRecords'];
    if (!readRecords) throw new Error('records script not defined');
    let rewrites = 0;
    command['idgRecords'] = async (...args: unknown[]) => {
      if (rewrites++ === 0) {
        await writer.register(rec('s:a', { lastName: 'smith', firstName: 'anna' }), ['ln:smith'], meta());
      }
      return readRecords.apply(readerRedis, args);
    };
    await writer.register(rec('s:b', { lastName: 'smith', firstName: 'bob' }), ['ln:smith'], meta());
    await writer.register(rec('s:a', { lastName: 'smith', firstName: 'ann' }), ['ln:smith'], meta());
    expect((await names())?.sort()).toEqual(['s:a:anna', 's:b:bob']);
    expect(rewrites).toBe(1);
  });

  it('carries any identity key and event id through the packed arguments and answers (JSON both ways)', async () => {
    const graph = open();
    const odd = ['shop:"quoted" \\ back\\', 'shop:ünïcødé ✓ 𝄞', 'shop:tab\tnew\nline\u0001'];
    const found = await graph.registerAndSearch(
      odd.map((key) => ({
        record: rec(key, { lastName: 'smith', firstName: key }),
        blockingKeys: ['ln:smith'],
        meta: { eventId: `e:${key}`, eventTimeMs: T0 },
      })),
      { register: true, maxBlockSize: 10, maxMembers: 10 },
    );
    expect(found.map((f) => f.registered?.method)).toEqual(['NEW', 'NEW', 'NEW']);
    for (const f of found) {
      const members = f.clusters.flatMap((c) => c.members);
      expect(members.map((m) => m.key).sort()).toEqual([...odd].sort());
      for (const m of members) expect(m.firstName).toBe(m.key);
    }
    const [first = '', second = '', third = ''] = odd;
    // Judged (marked) first, so its cluster is one that was published and the unions are merges with MergeEntries.
    await graph.markJudged(found.map((f, i) => ({ key: odd[i] ?? '', recordSha: f.recordSha })));
    const [united] = await graph.unionMany([{ key: first, matches: [match(second), match(third)], meta: meta() }]);
    expect(united?.merges.flatMap((m) => m.movedKeys ?? []).sort()).toEqual([second, third].sort());
    expect(new Set((await graph.globalIdOf(odd)).values())).toEqual(new Set([united?.globalId]));
  });

  it('applies unions in order, each stale on its own, and one already made by the group is done', async () => {
    const graph = open();
    for (const key of ['s:a', 's:b', 's:x', 's:y']) await graph.register(rec(key), [], meta()); // c-1 … c-4
    const results = await graph.unionMany([
      { key: 's:a', matches: [{ ...match('s:b'), expected: { root: 'c-2', size: 1 } }], meta: meta() },
      // s:b judged joining s:a's singleton: s:a's union made that link, so this one is done, not stale.
      {
        key: 's:b',
        matches: [{ ...match('s:a'), expected: { root: 'c-1', size: 1 } }],
        meta: meta(),
        expectedOwn: { root: 'c-2', size: 1 },
      },
      // s:x judged s:a's cluster when it was a singleton: stale now.
      { key: 's:x', matches: [{ ...match('s:a'), expected: { root: 'c-1', size: 1 } }], meta: meta() },
      { key: 's:y', matches: [{ ...match('s:x'), expected: { root: 'c-3', size: 1 } }], meta: meta() },
    ]);
    expect(results.map((r) => [r.stale, r.globalId, r.merges.length])).toEqual([
      [false, 'c-1', 1],
      [false, 'c-1', 0],
      [true, 'c-3', 0],
      [false, 'c-3', 1],
    ]);
    expect(await graph.members('c-1')).toEqual(['s:a', 's:b']);
    expect(await graph.members('c-3')).toEqual(['s:x', 's:y']);
  });

  it('sequenced: each item applies on the snapshot as the ones before it leave it; the first that does not land where expected is set aside with every later one', async () => {
    const graph = open();
    const search = { register: false, maxBlockSize: 10, maxMembers: 10 };
    const blocks: Record<string, string[]> = {
      's:a': ['ln:ab'],
      's:b': ['ln:ab'],
      's:x': ['ln:ab', 'ln:xy'],
      's:y': ['ln:xy', 'ln:yz'],
      's:z': ['ln:yz'],
      's:p': ['ln:pq'],
      's:q': ['ln:pq'],
    };
    const keys = Object.keys(blocks);
    const items = () => keys.map((key) => ({ record: rec(key), blockingKeys: blocks[key] ?? [], meta: meta() }));
    for (const { record, blockingKeys } of items()) await graph.register(record, blockingKeys, meta()); // c-1 … c-7
    const found = await graph.registerAndSearch(items(), search);
    const judged = (i: number) => found[i]?.clusters.map((c) => ({ id: c.id, version: c.version ?? '' })) ?? [];
    expect(judged(0).every((c) => c.version !== '')).toBe(true);
    expect(
      judged(2)
        .map((c) => c.id)
        .sort(),
    ).toEqual(['c-1', 'c-2', 'c-3', 'c-4']);
    const sha = (i: number) => found[i]?.recordSha ?? '';
    const at = (root: string, size: number) => ({ root, size });
    const results = await graph.unionMany(
      [
        // s:a joins s:b: c-2 retires into c-1
        {
          key: 's:a',
          matches: [{ ...match('s:b'), expected: at('c-2', 1) }],
          meta: meta(),
          expectedOwn: at('c-1', 1),
          expectedAfter: 'c-1',
          judgedClusters: judged(0),
          recordSha: sha(0),
        },
        // s:x, judged on the snapshot as s:a's union leaves it (s:b in c-1, size 2), joins that cluster: applies,
        // although c-1 and c-2 are no longer at the versions of the snapshot
        {
          key: 's:x',
          matches: [{ ...match('s:a'), expected: at('c-1', 2) }],
          meta: meta(),
          expectedOwn: at('c-3', 1),
          expectedAfter: 'c-1',
          judgedClusters: judged(2),
          recordSha: sha(2),
        },
        // s:y joins s:z but expects the wrong survivor: it applies, and every item after it is set aside
        {
          key: 's:y',
          matches: [{ ...match('s:z'), expected: at('c-5', 1) }],
          meta: meta(),
          expectedOwn: at('c-4', 1),
          expectedAfter: 'c-5',
          judgedClusters: judged(3),
          recordSha: sha(3),
        },
        // s:p shares no cluster with any of them, but comes after the surprise: set aside, nothing written
        {
          key: 's:p',
          matches: [{ ...match('s:q'), expected: at('c-7', 1) }],
          meta: meta(),
          expectedOwn: at('c-6', 1),
          expectedAfter: 'c-6',
          judgedClusters: judged(5),
          recordSha: sha(5),
        },
      ],
      [],
      { sequenced: true },
    );
    expect(results.map((r) => [r.stale, r.globalId])).toEqual([
      [false, 'c-1'],
      [false, 'c-1'],
      [false, 'c-4'],
      [true, ''],
    ]);
    expect(await graph.members('c-1')).toEqual(['s:a', 's:b', 's:x']);
    expect(await graph.members('c-4')).toEqual(['s:y', 's:z']);
    expect(await graph.members('c-6')).toEqual(['s:p']);
    const after = await graph.registerAndSearch(items(), search);
    expect(after.map((r) => r.judged)).toEqual([true, false, true, true, false, false, false]);

    // A snapshot that no longer holds when the script starts (c-4 changed since judged(4) was read): that item and
    // every later one are set aside, even one whose own clusters are unchanged.
    const stale = await graph.unionMany(
      [
        { key: 's:z', matches: [], meta: meta(), judgedClusters: judged(4), recordSha: sha(4) },
        {
          key: 's:p',
          matches: [{ ...match('s:q'), expected: at('c-7', 1) }],
          meta: meta(),
          expectedOwn: at('c-6', 1),
          judgedClusters: judged(5),
          recordSha: sha(5),
        },
      ],
      [],
      { sequenced: true },
    );
    expect(stale.map((r) => r.stale)).toEqual([true, true]);
    expect(await graph.members('c-6')).toEqual(['s:p']);
    // Searched again, s:p's union applies and is marked.
    const again = await graph.registerAndSearch(items(), search);
    const retried = await graph.unionMany(
      [
        {
          key: 's:p',
          matches: [{ ...match('s:q'), expected: at('c-7', 1) }],
          meta: meta(),
          expectedOwn: at('c-6', 1),
          expectedAfter: 'c-6',
          judgedClusters: again[5]?.clusters.map((c) => ({ id: c.id, version: c.version ?? '' })) ?? [],
          recordSha: again[5]?.recordSha ?? '',
        },
      ],
      [],
      { sequenced: true },
    );
    expect(retried.map((r) => [r.stale, r.globalId])).toEqual([[false, 'c-6']]);
    expect(await graph.members('c-6')).toEqual(['s:p', 's:q']);

    // Not sequenced, a stale item is only reported: the next one is still tried on its own.
    const now = await graph.registerAndSearch(items(), search);
    const plain = await graph.unionMany([
      { key: 's:z', matches: [], meta: meta(), judgedClusters: judged(4), recordSha: sha(4) },
      {
        key: 's:q',
        matches: [],
        meta: meta(),
        judgedClusters: now[6]?.clusters.map((c) => ({ id: c.id, version: c.version ?? '' })) ?? [],
        recordSha: now[6]?.recordSha ?? '',
      },
    ]);
    expect(plain.map((r) => [r.stale, r.globalId])).toEqual([
      [true, ''],
      [false, 'c-6'],
    ]);
  });

  it('keeps the clusters its sequenced unions made as the graph holds them: the next search reads none of them', async () => {
    const prefix = newPrefix();
    const graph = IdentityGraph.open(connect(), { prefix, codec });
    const keys = ['s:a', 's:b', 's:c', 's:d'];
    const items = keys.map((key) => ({ record: rec(key, { lastName: 'kay' }), blockingKeys: ['ln:k'], meta: meta() }));
    const search = { maxBlockSize: 10, maxMembers: 10 };
    const found = await graph.registerAndSearch(items, { register: true, ...search }); // c-1 … c-4
    // Judged in order on the picture, as the resolver does: s:a joins s:b, s:c joins the cluster that made (s:a and
    // s:b), s:d joins nothing.
    const picture = new JudgingPicture(graph.maxClusterSize, search.maxMembers);
    const joinsOf: Record<string, string[]> = { 's:a': ['s:b'], 's:c': ['s:a'], 's:d': [] };
    const unions = ['s:a', 's:c', 's:d'].map((key) => {
      const candidates = found[keys.indexOf(key)];
      const view = candidates && picture.view(candidates.own, candidates.clusters);
      if (!candidates || !view?.own) throw new Error(`no picture for ${key}`);
      const joins = view.others.filter((c) => c.members.some((m) => joinsOf[key]?.includes(m.key)));
      const own = view.own;
      return {
        key,
        matches: joins.map((c) => ({ ...match(c.members[0]?.key ?? ''), expected: { root: c.id, size: c.size } })),
        meta: meta(),
        expectedOwn: { root: own.id, size: own.size },
        expectedAfter: picture.unite(own, joins),
        judgedClusters: candidates.clusters.map((c) => ({ id: c.id, version: c.version ?? '' })),
        recordSha: candidates.recordSha,
      };
    });
    expect(unions.map((u) => u.expectedAfter)).toEqual(['c-1', 'c-1', 'c-4']);
    const united = await graph.unionMany(unions, [], { sequenced: true });
    expect(united.map((r) => [r.stale, r.globalId])).toEqual([
      [false, 'c-1'],
      [false, 'c-1'],
      [false, 'c-4'],
    ]);
    graph.rememberClusters(picture.settle(unions.map((u, i) => ({ key: u.key, result: united[i] }))));

    const before = { ...graph.reads };
    const again = await graph.registerAndSearch(items, { register: false, ...search });
    expect(graph.reads).toEqual(before); // every cluster from the cache, current
    // A reader with nothing cached (another instance) reads the same from the graph.
    const other = IdentityGraph.open(connect(), { prefix, codec });
    const fresh = await other.registerAndSearch(items, { register: false, ...search });
    expect(other.reads.clusters).toBeGreaterThan(0);
    const shape = (results: typeof again) =>
      results.map((r) => [r.own, r.clusters.map((c) => [c.id, c.size, c.version, c.members.map((m) => m.key)])]);
    expect(shape(again)).toEqual(shape(fresh));
    expect(shape(fresh)[1]).toEqual([
      'c-1',
      [
        ['c-1', 3, shape(fresh)[1]?.[1]?.[0]?.[2], ['s:a', 's:b', 's:c']],
        ['c-4', 1, shape(fresh)[1]?.[1]?.[1]?.[2], ['s:d']],
      ],
    ]);
  });

  it('keeps the links a judgement refused in a rejection outbox written with it, until acked or the person is erased', async () => {
    const graph = open();
    const search = { register: false, maxBlockSize: 10, maxMembers: 10 };
    const keys = ['s:a', 's:b', 's:c', 's:x'];
    for (const key of keys) await graph.register(rec(key), ['ln:k'], meta()); // c-1 … c-4
    const found = await graph.registerAndSearch(
      keys.map((key) => ({ record: rec(key), blockingKeys: ['ln:k'], meta: meta() })),
      search,
    );
    const judged = (i: number) => found[i]?.clusters.map((c) => ({ id: c.id, version: c.version ?? '' })) ?? [];
    const refusal = (key: string, candidateKey: string, candidateGlobalId: string) => ({
      eventId: `reject:e:${key}:${candidateKey}`,
      identityKey: key,
      candidateKey,
      candidateGlobalId,
      globalCustomerId: '',
      reason: 'CONFLICT',
    });
    const united = await graph.unionMany(
      [
        // s:a joins s:b and refuses s:c: the refusal goes with the union
        {
          key: 's:a',
          matches: [{ ...match('s:b'), expected: { root: 'c-2', size: 1 } }],
          meta: meta(),
          judgedClusters: judged(0),
          rejections: [refusal('s:a', 's:c', 'c-3')],
        },
        // s:x was judged on a version of s:a's cluster the graph no longer has: stale, so its refusal is not written
        {
          key: 's:x',
          matches: [],
          meta: meta(),
          judgedClusters: [{ id: 'c-1', version: '999' }],
          rejections: [refusal('s:x', 's:a', 'c-1')],
        },
      ],
      [],
      { sequenced: true },
    );
    expect(united.map((r) => r.stale)).toEqual([false, true]);
    expect(await graph.pendingRejections(10)).toEqual([refusal('s:a', 's:c', 'c-3')]);
    // Acked (once produced), it is gone.
    expect(await graph.ackRejections(['reject:e:s:a:s:c', 'reject:none'])).toBe(1);
    expect(await graph.pendingRejections(10)).toEqual([]);
    // Not yet published when the person it names is erased: dropped with them.
    const again = await graph.registerAndSearch(
      keys.map((key) => ({ record: rec(key), blockingKeys: ['ln:k'], meta: meta() })),
      search,
    );
    await graph.unionMany(
      [
        {
          key: 's:x',
          matches: [],
          meta: meta(),
          judgedClusters: again[3]?.clusters.map((c) => ({ id: c.id, version: c.version ?? '' })) ?? [],
          rejections: [refusal('s:x', 's:c', 'c-3'), refusal('s:x', 's:a', 'c-1')],
        },
      ],
      [],
      { sequenced: true },
    );
    expect((await graph.pendingRejections(10)).map((r) => (r as { eventId: string }).eventId)).toEqual([
      'reject:e:s:x:s:c',
      'reject:e:s:x:s:a',
    ]);
    await graph.erase('c-3', []);
    expect(await graph.pendingRejections(10)).toEqual([refusal('s:x', 's:a', 'c-1')]);
  });

  it('marks judged with the unions: each item unless its union is stale, and those judged without one', async () => {
    const graph = open();
    const search = { register: false, maxBlockSize: 10, maxMembers: 10 };
    const keys = ['s:a', 's:b', 's:x', 's:s'];
    for (const key of keys) await graph.register(rec(key), [], meta()); // c-1 … c-4
    const probe = async () =>
      graph.registerAndSearch(
        keys.map((key) => ({ record: rec(key), blockingKeys: [], meta: meta() })),
        search,
      );
    const before = await probe();
    expect(before.map((r) => r.judged)).toEqual([false, false, false, false]);
    const sha = new Map(keys.map((key, i) => [key, before[i]?.recordSha ?? '']));
    await graph.unionMany(
      [
        { key: 's:a', matches: [match('s:b')], meta: meta(), recordSha: sha.get('s:a') ?? '' },
        // judged against s:b's cluster as a singleton: stale now, so not marked (it is judged again)
        {
          key: 's:x',
          matches: [{ ...match('s:b'), expected: { root: 'c-1', size: 1 } }],
          meta: meta(),
          recordSha: sha.get('s:x') ?? '',
        },
      ],
      [{ key: 's:s', recordSha: sha.get('s:s') ?? '' }],
    );
    expect((await probe()).map((r) => r.judged)).toEqual([true, false, false, true]);
    // A record registered again (another sealing, another SHA-1) is no longer the one judged.
    await graph.register(rec('s:a'), [], meta());
    expect((await probe())[0]?.judged).toBe(false);
  });
  it('sequenced, marks on the search SHA-1 when the own root is unchanged, and not after the record was registered again', async () => {
    const graph = open();
    const search = { register: true, maxBlockSize: 10, maxMembers: 10 };
    const item = (key: string) => ({ record: rec(key), blockingKeys: ['ln:smith'], meta: meta() });
    const found = await graph.registerAndSearch([item('s:a'), item('s:b'), item('s:c')], search); // c-1 … c-3
    const judgedOn = (i: number) => found[i]?.clusters.map((c) => ({ id: c.id, version: c.version ?? '' })) ?? [];
    const unionOf = (i: number, key: string, own: string) => ({
      key,
      matches: [],
      meta: meta(),
      recordSha: found[i]?.recordSha ?? '',
      expectedOwn: { root: own, size: 1 },
      judgedClusters: judgedOn(i),
    });
    const [a] = await graph.unionMany([unionOf(0, 's:a', 'c-1')], [], { sequenced: true });
    expect(a?.stale).toBe(false);
    // s:b registered again (another sealing, a new version of its root) after the search: stale, not marked; s:c,
    // judged on the same snapshot after it, is set aside with it.
    await graph.registerAndSearch([{ ...item('s:b'), record: rec('s:b', { city: 'york' }) }], search);
    const later = await graph.unionMany([unionOf(1, 's:b', 'c-2'), unionOf(2, 's:c', 'c-3')], [], { sequenced: true });
    expect(later.map((r) => r.stale)).toEqual([true, true]);
    const probe = await graph.registerAndSearch([item('s:a'), item('s:b'), item('s:c')], {
      ...search,
      register: false,
    });
    expect(probe.map((r) => r.judged)).toEqual([true, false, false]);
  });
});

describe('fresh clusters', () => {
  const search = { register: true, maxBlockSize: 10, maxMembers: 10 };
  const group = (keys: readonly string[], fields: Partial<IdentityRecord> = {}) =>
    keys.map((key) => ({ record: rec(key, fields), blockingKeys: ['ln:smith'], meta: meta() }));

  it('retires the cluster a new identity got at registration without a merge while it is unjudged and alone', async () => {
    const graph = open();
    // s:old was judged (published under c-1); s:new and s:twin are new and not judged yet.
    const [old] = await graph.registerAndSearch(group(['s:old']), search);
    await graph.markJudged([{ key: 's:old', recordSha: old?.recordSha ?? '' }]);
    const found = await graph.registerAndSearch(group(['s:new', 's:twin']), search);
    expect(found.map((f) => f.registered?.globalId)).toEqual(['c-2', 'c-3']);
    const [newSha, twinSha] = found.map((f) => f.recordSha);

    // s:new joins the older c-1: its own c-2 is retired with no MergeEntry, and it is marked judged with the union.
    const [joined] = await graph.unionMany(
      [{ key: 's:new', matches: [match('s:old')], meta: meta(), recordSha: newSha ?? '' }],
      [],
      { sequenced: true },
    );
    expect([joined?.stale, joined?.globalId, joined?.merges]).toEqual([false, 'c-1', []]);
    expect(await graph.pendingMerges(10)).toEqual([]);
    expect(await graph.members('c-1')).toEqual(['s:new', 's:old']);
    expect((await graph.rootOf(['c-2'])).get('c-2')).toBe('c-1'); // who read c-2 meanwhile still finds the person

    // s:twin is judged alone (its cluster stays and is published), then a later identity links it to c-1: now its
    // cluster is retired by a merge, with the MergeEntry downstream needs to hand its state over.
    await graph.markJudged([{ key: 's:twin', recordSha: twinSha ?? '' }]);
    const [merged] = await graph.unionMany([{ key: 's:twin', matches: [match('s:old')], meta: meta() }]);
    expect(merged?.merges.map((m) => [m.survivorId, m.mergedId, m.movedKeys])).toEqual([['c-1', 'c-3', ['s:twin']]]);
    expect((await graph.pendingMerges(10)).map((m) => m.mergeId)).toEqual(['merge:c-1:c-3']);
  });

  it('merges a fresh cluster that gained a member, and one made by a caller that does not judge (register)', async () => {
    const graph = open();
    const [old] = await graph.registerAndSearch(group(['s:old']), search);
    await graph.markJudged([{ key: 's:old', recordSha: old?.recordSha ?? '' }]); // c-1
    // s:a is new (c-2, fresh); s:b shares its email and joins c-2 at registration: c-2 holds two identities now.
    await graph.registerAndSearch(group(['s:a'], { emailSha256: 'e' }), search);
    await graph.registerAndSearch(group(['s:b'], { emailSha256: 'e' }), search);
    expect(await graph.members('c-2')).toEqual(['s:a', 's:b']);
    const [two] = await graph.unionMany([{ key: 's:a', matches: [match('s:old')], meta: meta() }]);
    expect(two?.merges.map((m) => m.mergedId)).toEqual(['c-2']);
    // register (without judging) makes no fresh cluster: its unions are merges as before.
    await graph.register(rec('s:plain'), [], meta()); // c-3
    const [plain] = await graph.unionMany([{ key: 's:plain', matches: [match('s:old')], meta: meta() }]);
    expect(plain?.merges.map((m) => m.mergedId)).toEqual(['c-3']);
  });

  it('moves a fresh identity that an exact match at registration brings into an older cluster, without a merge', async () => {
    const graph = open();
    const [old] = await graph.registerAndSearch(group(['s:old'], { emailSha256: 'e' }), search);
    await graph.markJudged([{ key: 's:old', recordSha: old?.recordSha ?? '' }]); // c-1, email e
    await graph.registerAndSearch(group(['s:new'], { phoneSha256: 'p' }), search); // c-2, fresh
    // s:link carries both hashes: it joins c-1 by email, and c-2 (fresh, unjudged, alone) is retired into it quietly.
    const [link] = await graph.registerAndSearch(group(['s:link'], { emailSha256: 'e', phoneSha256: 'p' }), search);
    expect([link?.registered?.globalId, link?.registered?.merges]).toEqual(['c-1', []]);
    expect(await graph.members('c-1')).toEqual(['s:link', 's:new', 's:old']);
    expect(await graph.pendingMerges(10)).toEqual([]);
  });
});

describe('union', () => {
  it('writes nothing and says stale when a cluster the caller judged changed before the union', async () => {
    const graph = open();
    for (const key of ['s:a', 's:b', 's:x', 's:d']) await graph.register(rec(key), [], meta()); // c-1 … c-4
    await graph.union('s:b', [match('s:a')], meta()); // c-2 → c-1: s:b's root is no longer the c-2 judged
    const moved = await graph.union('s:x', [{ ...match('s:b'), expected: { root: 'c-2', size: 1 } }], meta());
    expect(moved).toMatchObject({ stale: true, merges: [], globalId: 'c-3' });
    const grown = await graph.union('s:x', [{ ...match('s:a'), expected: { root: 'c-1', size: 1 } }], meta());
    expect(grown).toMatchObject({ stale: true, merges: [] }); // c-1 has two members now
    const ownChanged = await graph.union('s:x', [match('s:a')], meta(), { root: 'c-3', size: 2 });
    expect(ownChanged).toMatchObject({ stale: true, merges: [] });
    expect(await graph.members('c-3')).toEqual(['s:x']);
    const current = await graph.union('s:x', [{ ...match('s:a'), expected: { root: 'c-1', size: 2 } }], meta(), {
      root: 'c-3',
      size: 1,
    });
    expect(current).toMatchObject({ stale: false, globalId: 'c-1' });
    expect(await graph.members('c-1')).toEqual(['s:a', 's:b', 's:x']);
  });

  it('merges into the oldest root with the score as evidence, and refuses what would exceed the cap', async () => {
    const graph = open({ maxClusterSize: 3 });
    await graph.register(rec('s:a1', { emailSha256: 'ea' }), [], meta()); // c-1
    await graph.register(rec('s:a2', { emailSha256: 'ea' }), [], meta());
    await graph.register(rec('s:b1', { emailSha256: 'eb' }), [], meta()); // c-2
    await graph.register(rec('s:b2', { emailSha256: 'eb' }), [], meta());
    await graph.register(rec('s:c1'), [], meta()); // c-3

    const refused = await graph.union('s:a1', [match('s:b1')], meta());
    expect(refused).toEqual({ alreadyApplied: false, globalId: 'c-1', merges: [], refused: 1, stale: false });

    // From the younger side, with two matches into c-1: the most confident one is the evidence; b is still too big.
    const m = meta();
    const united = await graph.union(
      's:c1',
      [match('s:a2', 0.9, 7), match('s:a1', 0.987654321012345, 13.25), match('s:b2'), match('s:unknown')],
      m,
    );
    expect(united).toEqual({
      alreadyApplied: false,
      globalId: 'c-1',
      refused: 1,
      stale: false,
      merges: [
        {
          mergeId: 'merge:c-1:c-3',
          survivorId: 'c-1',
          mergedId: 'c-3',
          method: 'PROBABILISTIC',
          confidence: 0.987654321012345,
          matchWeight: 13.25,
          sourceEventId: m.eventId,
          eventTimeMs: m.eventTimeMs,
          movedKeys: ['s:c1'],
        },
      ],
    });
    expect(await graph.members('c-1')).toEqual(['s:a1', 's:a2', 's:c1']);
    // Applying it again is a no-op: the roots are already one.
    expect(await graph.union('s:c1', [match('s:a1')], meta())).toMatchObject({ globalId: 'c-1', merges: [] });

    // The cap holds for exact-hash joins too: a full cluster is not joined, the identity gets its own.
    const full = await graph.register(rec('s:a3', { emailSha256: 'ea' }), [], meta());
    expect(full).toMatchObject({ globalId: 'c-4', isNew: true, method: 'NEW', refused: 1, merges: [] });

    await expect(graph.union('s:nobody', [match('s:a1')], meta())).rejects.toThrow(/IDG_UNKNOWN_KEY/);
  });

  it('compresses parent paths when resolving retired ids', async () => {
    const redis = connect();
    const graph = open({ redis });
    for (const key of ['s:1', 's:2', 's:3']) await graph.register(rec(key), [], meta()); // c-1, c-2, c-3
    await graph.union('s:3', [match('s:2')], meta()); // c-3 → c-2
    await graph.union('s:2', [match('s:1')], meta()); // c-2 → c-1
    const parentKey = `${prefixes.at(-1)!}idg:v1:{${prefixes.at(-1)!}idg}:parent`;
    expect(await redis.hget(parentKey, 'c-3')).toBe('c-2');
    expect(await graph.rootOf(['c-3'])).toEqual(new Map([['c-3', 'c-1']]));
    expect(await redis.hget(parentKey, 'c-3')).toBe('c-1');
    expect(await graph.globalIdOf(['s:1', 's:2', 's:3'])).toEqual(
      new Map([
        ['s:1', 'c-1'],
        ['s:2', 'c-1'],
        ['s:3', 'c-1'],
      ]),
    );
  });
});

describe('watermarks', () => {
  it('skips a register whose offset is not newer, and keeps register and union watermarks apart', async () => {
    const graph = open();
    const field = 'raw.transactions.v1:3';
    const v1 = rec('shop:1', { emailSha256: 'e1' });
    expect(await graph.register(v1, [], meta({ watermark: { field, offset: 5 } }))).toMatchObject({
      alreadyApplied: false,
      globalId: 'c-1',
    });
    const v2 = rec('shop:1', { emailSha256: 'e2' });
    for (const offset of [5, 4n]) {
      expect(await graph.register(v2, ['b'], meta({ watermark: { field, offset } }))).toEqual({
        alreadyApplied: true,
        globalId: 'c-1',
        isNew: false,
        method: 'PLATFORM_ID',
        previousGlobalId: 'c-1',
        merges: [],
        refused: 0,
      });
    }
    expect((await graph.records(['shop:1'])).get('shop:1')?.record).toEqual(v1);
    expect(await graph.candidates(['b'], 'x', 10)).toEqual({ keys: [], skippedBlocks: 0 });
    expect(await graph.getWatermarks([field, 'other:0'])).toEqual(new Map([[field, 5]]));
    // A skipped event of an identity never registered reports it unknown.
    expect(await graph.register(rec('shop:9'), [], meta({ watermark: { field, offset: 2 } }))).toMatchObject({
      alreadyApplied: true,
      globalId: null,
    });

    expect(await graph.register(v2, [], meta({ watermark: { field, offset: 6n } }))).toMatchObject({
      alreadyApplied: false,
    });
    expect((await graph.records(['shop:1'])).get('shop:1')?.record).toEqual(v2);

    // One event: register then union at the same offset. The register watermark does not gate the union (a crash
    // between the two must not lose the union); the union's own watermark makes its redelivery a no-op.
    await graph.register(rec('app:1'), [], meta({ watermark: { field, offset: 7 } })); // c-2
    const union = await graph.union('app:1', [match('shop:1')], meta({ watermark: { field, offset: 7 } }));
    expect(union).toMatchObject({ alreadyApplied: false, globalId: 'c-1', merges: [{ mergedId: 'c-2' }] });
    const redelivered = await graph.union('app:1', [match('shop:1')], meta({ watermark: { field, offset: 7 } }));
    expect(redelivered).toEqual({ alreadyApplied: true, globalId: 'c-1', merges: [], refused: 0, stale: false });
    expect(await graph.getWatermarks([field], 'union')).toEqual(new Map([[field, 7]]));

    await expect(graph.register(v2, [], meta({ watermark: { field, offset: 2 ** 53 } }))).rejects.toThrow(RangeError);
  });
});

describe('link snapshot', () => {
  it('writes the publication log from the roots it answers, keeping the ids an earlier attempt published under', async () => {
    const graph = open();
    for (const key of ['s:a', 's:b', 's:c']) await graph.register(rec(key), [], meta()); // c-1 … c-3
    const snapshot = await graph.linkSnapshot(
      ['s:a'],
      [
        {
          topic: 'raw',
          partition: 2,
          records: [
            { offset: 7, key: 's:a' },
            { offset: 9, key: 's:b', earlier: 'c-old' }, // an earlier attempt published it under c-old
            { offset: 8, key: 's:c' },
          ],
        },
        { topic: 'raw', partition: 3, records: [] },
      ],
    );
    expect(snapshot.fields).toEqual(['7-9', null]);
    expect(snapshot.roots).toEqual(
      new Map([
        ['s:a', 'c-1'],
        ['s:b', 'c-2'],
        ['s:c', 'c-3'],
      ]),
    );
    const [log, empty] = await graph.publicationsOf([
      { topic: 'raw', partition: 2 },
      { topic: 'raw', partition: 3 },
    ]);
    expect([7, 8, 9, 10].map((offset) => log?.idAt(offset))).toEqual(['c-1', 'c-3', 'c-old', undefined]);
    expect(empty?.size).toBe(0);
    // the same log recordPublications writes for those ids
    await graph.forgetPublications('raw', 2, ['7-9']);
    await graph.recordPublications([
      {
        topic: 'raw',
        partition: 2,
        ids: new Map([
          [7, 'c-1'],
          [9, 'c-old'],
          [8, 'c-3'],
        ]),
      },
    ]);
    const [again] = await graph.publicationsOf([{ topic: 'raw', partition: 2 }]);
    expect([7, 8, 9].map((offset) => again?.idAt(offset))).toEqual(['c-1', 'c-3', 'c-old']);
    expect((await graph.linkSnapshot(['s:a'])).version).toBe(snapshot.version + 1);
  });
});

describe('merge outbox', () => {
  it('keeps merges, in order, across connections until they are acked', async () => {
    const redis = connect();
    const graph = open({ redis });
    for (const key of ['s:1', 's:2', 's:3']) await graph.register(rec(key), [], meta());
    await graph.union('s:2', [match('s:1')], meta());
    await graph.union('s:3', [match('s:1')], meta());

    // A "restarted" instance on another connection sees what the first one wrote.
    const restarted = IdentityGraph.open(connect(), { prefix: prefixes.at(-1)! });
    const pending = await restarted.pendingMerges(10);
    expect(pending.map((e) => e.mergeId)).toEqual(['merge:c-1:c-2', 'merge:c-1:c-3']);
    expect(await restarted.pendingMerges(1)).toEqual([pending[0]]);

    expect(await restarted.ackMerges(['merge:c-1:c-2'])).toBe(1);
    expect(await graph.pendingMerges(10)).toEqual([pending[1]]);
    expect(await graph.ackMerges(['merge:c-1:c-2', 'merge:c-1:c-3', 'merge:none'])).toBe(1);
    expect(await graph.pendingMerges(10)).toEqual([]);
    expect(await graph.ackMerges(['merge:c-1:c-3'])).toBe(0);
  });
});

describe('concurrent writers', () => {
  function shuffle<T>(items: readonly T[], random: () => number): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  const PERSONS = 200;
  interface Op {
    readonly record: IdentityRecord;
    readonly blocking: string[];
  }
  /**
   * Per person: `shop` (email), `app` (email, then in a later event also phone), `pos` (phone) link only through exact
   * hashes, in a chain; `web` (no hashes) links only through a probabilistic union on name and birth date. Every
   * identity's events are delivered twice. A postcode block is shared by ten persons, so candidates include strangers.
   */
  function opsOf(p: number): Op[] {
    const person = { lastName: `ln${p}`, birthDate: `19${50 + (p % 50)}-01-${10 + (p % 18)}`, postcode: `P${p % 20}` };
    const blocking = [`lb:${person.lastName}|${person.birthDate}`, `pc:${person.postcode}`];
    const email = `email-${p}`;
    const phone = `phone-${p}`;
    const records = [
      rec(`shop:${p}`, { ...person, emailSha256: email }),
      rec(`app:${p}`, { ...person, emailSha256: email }),
      rec(`app:${p}`, { ...person, emailSha256: email, phoneSha256: phone }),
      rec(`pos:${p}`, { ...person, phoneSha256: phone }),
      rec(`web:${p}`, { ...person }),
    ];
    return [...records, ...records].map((record) => ({ record, blocking }));
  }
  const allOps = Array.from({ length: PERSONS }, (_, p) => opsOf(p)).flat();

  /** What the processor does per event: register, find candidates, "score" them, union with the matches. */
  async function apply(graph: IdentityGraph, op: Op): Promise<void> {
    const registered = await graph.register(op.record, op.blocking, meta());
    const { keys } = await graph.candidates(op.blocking, op.record.key, 1_000);
    const found = await graph.records(keys);
    const matches: UnionMatch[] = [];
    for (const [key, other] of found) {
      const oneIsWeb = op.record.platform === 'web' || other.record.platform === 'web';
      const same = other.record.lastName === op.record.lastName && other.record.birthDate === op.record.birthDate;
      if (oneIsWeb && same && other.globalId !== registered.globalId) matches.push(match(key));
    }
    if (matches.length > 0) await graph.union(op.record.key, matches, meta());
  }

  async function runWith(workers: IdentityGraph[], ops: readonly Op[]): Promise<void> {
    let next = 0;
    await Promise.all(
      workers.map(async (graph) => {
        for (let i = next++; i < ops.length; i = next++) await apply(graph, ops[i]!);
      }),
    );
  }

  /** The clustering as a canonical value: sorted member lists of every cluster, sorted. */
  async function clustering(graph: IdentityGraph): Promise<string[][]> {
    const keys = [...new Set(allOps.map((op) => op.record.key))];
    const roots = await graph.globalIdOf(keys);
    const byRoot = new Map<string, string[]>();
    for (const key of keys) {
      const root = roots.get(key);
      expect(root, key).toBeTruthy();
      byRoot.set(root!, [...(byRoot.get(root!) ?? []), key]);
    }
    return [...byRoot.values()].map((members) => members.sort()).sort((a, b) => a[0]!.localeCompare(b[0]!));
  }

  it('ends with the same clustering as one sequential writer, one cluster per person and no lost merge', async () => {
    const sequential = open();
    await runWith([sequential], shuffle(allOps, seededRandom(1)));

    const prefix = newPrefix();
    const workers = Array.from({ length: 4 }, () => IdentityGraph.open(connect(), { prefix, codec }));
    await runWith(workers, shuffle(allOps, seededRandom(2)));
    const concurrent = workers[0]!;

    const expected = Array.from({ length: PERSONS }, (_, p) => [`app:${p}`, `pos:${p}`, `shop:${p}`, `web:${p}`])
      .sort((a, b) => a[0]!.localeCompare(b[0]!))
      .map((members) => members.sort());
    expect(await clustering(sequential)).toEqual(expected);
    expect(await clustering(concurrent)).toEqual(expected);

    for (const graph of [sequential, concurrent]) {
      expect(await graph.stats()).toEqual({ identities: PERSONS * 4, clusters: PERSONS });
      // Every cluster ever created is either one of the final roots or was merged exactly once, into a cluster that
      // resolves to the same root: a cluster id handed out can always be followed to its person.
      const merges = await graph.pendingMerges(100_000);
      const created = PERSONS + merges.length;
      // Chains registered out of order must merge: some persons' `shop` and `pos` get clusters before `app` bridges them.
      expect(merges.length).toBeGreaterThan(PERSONS / 4);
      expect(new Set(merges.map((m) => m.mergedId)).size).toBe(merges.length);
      const ids = Array.from({ length: created }, (_, i) => `c-${i + 1}`);
      const roots = await graph.rootOf([...ids, `c-${created + 1}`]);
      expect(roots.get(`c-${created + 1}`)).toBeNull();
      const finalRoots = new Set(
        [...(await graph.globalIdOf(allOps.map((op) => op.record.key))).values()].filter((r) => r !== null),
      );
      expect(finalRoots.size).toBe(PERSONS);
      for (const id of ids) expect(finalRoots.has(roots.get(id) ?? 'none'), id).toBe(true);
      for (const m of merges) {
        expect(roots.get(m.mergedId), m.mergeId).toBe(roots.get(m.survivorId));
        expect(Number(m.survivorId.slice(2))).toBeLessThan(Number(m.mergedId.slice(2))); // the older one survives
      }
      for (const root of finalRoots) expect(await graph.members(root)).toHaveLength(4);
    }
  });
});
