// Personal data in the identity graph on the real Redis: after the real resolver has linked generated people (typos,
// nicknames, households), no name, street address or birth date is stored in plain text under the run's prefix, in
// any key or value; a graph written before sealing, or sealed with another key, fails clearly instead of matching
// nothing.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { IdentityApp } from '../../processors/identity/app.js';
import { blockingKeys } from '../../processors/identity/blocking.js';
import { phoneticCode } from '../../processors/identity/compare.js';
import { IdentityGraph } from '../../processors/identity/graph-store.js';
import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { generateMessy } from '../../processors/identity/messy-logic.js';
import { PiiCodec } from '../../processors/identity/pii-codec.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import { pairwiseMetrics } from '../../processors/identity/resolve-offline.js';
import type { IdentityRecord } from '../../processors/identity/types.js';
import { febrlEvents } from '../../processors/producers/replay.js';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import { createTestContext, waitFor, type TestContext } from '../helpers/context.js';

const contexts: TestContext[] = [];
const connections: Redis[] = [];
afterAll(async () => {
  for (const r of connections) r.disconnect();
  await Promise.all(contexts.map((c) => c.close()));
});

/** Every key under `prefix` with its contents (hash fields and values, set members, strings, sorted-set members). */
async function dumpPrefix(redis: Redis, prefix: string): Promise<{ keys: number; text: string }> {
  const parts: string[] = [];
  let keys = 0;
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    for (const key of batch) {
      keys++;
      parts.push(key);
      const type = await redis.type(key);
      if (type === 'hash') parts.push(...Object.entries(await redis.hgetall(key)).flat());
      else if (type === 'set') parts.push(...(await redis.smembers(key)));
      else if (type === 'zset') parts.push(...(await redis.zrange(key, 0, -1)));
      else if (type === 'list') parts.push(...(await redis.lrange(key, 0, -1)));
      else if (type === 'string') parts.push((await redis.get(key)) ?? '');
      else throw new Error(`unexpected ${type} at ${key}`);
    }
  } while (cursor !== '0');
  return { keys, text: parts.join('\n') };
}

/**
 * The personal values of records as a platform sends them, as the graph normalizes them and as blocking derives them
 * (compacted and phonetic names, street words, birth year and date).
 */
function personalValues(records: readonly IdentityRecord[], raw: readonly string[]): Set<string> {
  const values = new Set(raw.map((v) => v.trim()).filter((v) => v !== ''));
  for (const r of records) {
    for (const v of [r.firstName, r.lastName, r.address, r.city, r.birthDate]) if (v) values.add(v);
    for (const name of [r.firstName, r.lastName]) {
      const compact = name?.replace(/ /g, '');
      if (compact) values.add(compact).add(phoneticCode(compact));
    }
    for (const word of r.address?.split(' ') ?? []) if (!/\d/.test(word)) values.add(word);
    if (r.birthDate) values.add(r.birthDate.replace(/-/g, ''));
  }
  return values;
}

/**
 * The values found in `text`. Values of 8 or more characters are searched anywhere; shorter ones (≥ 3 characters, with
 * a letter: a house number alone names nobody, and identity keys and cluster ids are full of numbers) as whole words.
 * Words run over letters, digits, `-` and `_`, so a sealed value or a keyed name (base64url) is one long word that a
 * short value cannot equal by chance, while plain text as it used to be stored splits into its values
 * (`"firstName":"zoe"`, `ln:PRL|z|2`).
 */
function found(values: Iterable<string>, text: string): string[] {
  const words = new Set(text.split(/[^\p{L}\p{N}_-]+/u));
  return [...values].filter((v) =>
    v.length >= 8 ? text.includes(v) : v.length >= 3 && /\p{L}/u.test(v) && words.has(v),
  );
}

describe('personal data in the identity graph', () => {
  it('is nowhere in plain text after the resolver has linked people, and linking still works', async () => {
    const ctx = await createTestContext({ topics: true });
    contexts.push(ctx);
    const dataset = generateMessy({ people: 80, seed: 23 });
    const events = febrlEvents(dataset.rows, 'shop', {
      salt: ctx.config.IDENTITY_HASH_SALT.reveal(),
      baseTimeMs: Date.UTC(2026, 0, 1),
    });
    const app = new IdentityApp({
      config: ctx.config,
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
      log: createLogger('warn', { test: 'identity-pii' }),
      metrics: createMetrics(),
    });
    await app.start();
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    const { refused } = await producer.publishAll(events.map((event) => ({ kind: 'behavior' as const, event })));
    await producer.disconnect();
    expect(refused).toBe(0);
    await waitFor(
      () => Promise.resolve(app.resolver.processedCount),
      (n) => n >= events.length,
      { what: `${events.length} records resolved`, timeoutMs: 180_000 },
    );
    await app.stop();

    const redis = new Redis(ctx.config.REDIS_URL);
    connections.push(redis);
    // Linking compared the decrypted values: duplicates are found as well as in plain text (the messy test's bars).
    const roots = await IdentityGraph.open(redis, { prefix: ctx.config.TOPIC_PREFIX }).globalIdOf(
      events.map((e) => `shop:${e.platformCustomerId ?? ''}`),
    );
    const clusters = new Map([...roots].map(([key, root]) => [key, root ?? key]));
    const byPerson = new Map<string, string[]>();
    for (const key of clusters.keys()) {
      const person = /^shop:rec-(\d+)-/.exec(key)?.[1] ?? key;
      byPerson.set(person, [...(byPerson.get(person) ?? []), key]);
    }
    const truePairs = [...byPerson.values()].flatMap((keys) =>
      keys.flatMap((a, i) => keys.slice(i + 1).map((b) => [a, b] as [string, string])),
    );
    const quality = pairwiseMetrics(clusters, truePairs);
    expect(quality.precision).toBeGreaterThan(0.95);
    expect(quality.recall).toBeGreaterThan(0.85);

    const records = events.map((e) =>
      toIdentityRecord('shop', e.platformCustomerId ?? '', e.identity ?? NO_ATTRIBUTES),
    );
    const raw = dataset.rows.flatMap((r) => [
      r.given_name,
      r.surname,
      r.address_1,
      r.address_2,
      r.suburb,
      r.date_of_birth,
    ]);
    const values = personalValues(records, raw);
    expect(values.size).toBeGreaterThan(500);
    const dump = await dumpPrefix(redis, ctx.config.TOPIC_PREFIX);
    expect(dump.keys).toBeGreaterThan(records.length); // blocking sets, clusters, records: the graph is all there
    expect(found(values, dump.text)).toEqual([]);
    // The check would have caught the graph as it was stored before sealing: records as JSON, blocking keys as names.
    const plain = records.flatMap((r) => [JSON.stringify(r), ...blockingKeys(r)]).join('\n');
    expect(found(values, plain).length).toBeGreaterThan(values.size / 2);
  });

  it('refuses a graph written before sealing, and one sealed with another key, naming the problem', async () => {
    const redis = new Redis(inject('endpoints').redisUrl);
    connections.push(redis);
    const prefix = `t-pii-${randomBytes(4).toString('hex')}.`;
    const keyA = new PiiCodec(randomBytes(32));
    const keyB = new PiiCodec(randomBytes(32));
    const record: IdentityRecord = { ...NO_ATTRIBUTES, key: 'shop:1', platform: 'shop', firstName: 'ada' };
    const meta = { eventId: 'e-1', eventTimeMs: 1 };

    const sealedA = IdentityGraph.open(redis, { prefix: `${prefix}a.`, codec: keyA });
    await sealedA.register(record, ['nm:AT|AT'], meta);
    const withB = IdentityGraph.open(redis, { prefix: `${prefix}a.`, codec: keyB });
    await expect(withB.records(['shop:1'])).rejects.toThrow(
      new RegExp(`sealed with key id ${keyA.keyId}, but IDENTITY_PII_KEY has key id ${keyB.keyId}`),
    );
    await expect(withB.register(record, [], meta)).rejects.toThrow(/run with the key it was written with/);
    expect((await sealedA.records(['shop:1'])).get('shop:1')?.record).toEqual(record);

    // What an older version left: a plain record and a cluster, no format marker.
    const base = `${prefix}b.idg:v1:{${prefix}b.idg}`;
    await redis.hset(`${base}:rec`, 'shop:1', JSON.stringify(record));
    await redis.hset(`${base}:counters`, 'cluster', '1');
    const old = IdentityGraph.open(redis, { prefix: `${prefix}b.`, codec: keyA });
    await expect(old.register(record, [], meta)).rejects.toThrow(/kept personal data in plain text: migrate it first/);
    await expect(old.checkFormat()).rejects.toThrow(/npm run identity:graph -- migrate/);
    for (const key of await redis.keys(`${prefix}*`)) await redis.del(key);
  });

  it('migrates a graph written before sealing in place: same clusters, found by the same blocking and hashes', async () => {
    const redis = new Redis(inject('endpoints').redisUrl);
    connections.push(redis);
    const prefix = `t-pii-${randomBytes(4).toString('hex')}.`;
    const codec = new PiiCodec(randomBytes(32));
    const ada = toIdentityRecord('shop', '1', {
      ...NO_ATTRIBUTES,
      emailSha256: 'e'.repeat(64),
      firstName: 'Ada',
      lastName: 'Lovelace',
      address: '12 St James Square',
      city: 'London',
      postcode: 'SW1Y 4JH',
      birthDate: '1815-12-10',
    });
    // The layout an older version wrote for one identity in cluster c-1 (graph-store.ts before sealing).
    const base = `${prefix}idg:v1:{${prefix}idg}`;
    await redis.hset(`${base}:counters`, 'cluster', '1');
    await redis.hset(`${base}:cseq`, 'c-1', '1');
    await redis.hset(`${base}:idc`, ada.key, 'c-1');
    await redis.sadd(`${base}:mem:c-1`, ada.key);
    await redis.hset(`${base}:rec`, ada.key, JSON.stringify(ada));
    await redis.sadd(`${base}:email:${ada.emailSha256 ?? ''}`, ada.key);
    for (const key of blockingKeys(ada)) await redis.sadd(`${base}:blk:${key}`, ada.key);

    const graph = IdentityGraph.open(redis, { prefix, codec });
    await expect(graph.checkFormat()).rejects.toThrow(/migrate it first/);
    const result = await graph.migrateToSealed();
    expect(result).toEqual({ records: 1, sets: blockingKeys(ada).length + 1, alreadySealed: false });
    expect(await graph.migrateToSealed()).toMatchObject({ alreadySealed: true });
    await expect(
      IdentityGraph.open(redis, { prefix, codec: new PiiCodec(randomBytes(32)) }).migrateToSealed(),
    ).rejects.toThrow(/run with the key it was written with/);

    // The record opens; the email index still links; the blocking sets still find Ada's cluster for a typo of her.
    expect((await graph.records([ada.key])).get(ada.key)).toEqual({
      record: ada,
      globalId: 'c-1',
      sealed: expect.stringMatching(/^s1\./) as string,
    });
    const sameMail = { ...NO_ATTRIBUTES, key: 'web:9', platform: 'web', emailSha256: ada.emailSha256 };
    const linked = await graph.register(sameMail, [], { eventId: 'e-1', eventTimeMs: 1 });
    expect(linked).toMatchObject({ globalId: 'c-1', method: 'EMAIL_HASH' });
    const typo: IdentityRecord = { ...ada, key: 'app:3', platform: 'app', emailSha256: null, firstName: 'adah' };
    const candidates = await graph.clusterCandidates(typo.key, blockingKeys(typo), {
      maxBlockSize: 100,
      maxMembers: 10,
    });
    expect(candidates.clusters.map((c) => c.id)).toEqual(['c-1']);
    expect(candidates.clusters[0]?.members).toContainEqual(ada);

    const dump = await dumpPrefix(redis, prefix);
    expect(found(personalValues([ada], []), dump.text)).toEqual([]);
    expect(dump.text).not.toContain(ada.emailSha256);
    for (const key of await redis.keys(`${prefix}*`)) await redis.del(key);
  });
});
