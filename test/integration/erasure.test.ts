// Erasure end to end on the real stack: a person's events on two platforms (merged into one customer) and a few other
// people's go through the whole pipeline (resolver → features and scores → warehouse) and an ad decision through the
// prediction API; then POST /erasure removes the person. Afterwards every Redis key of the run (names and values), the
// compacted topics (as a consumer sees them: latest per key), the erasure topic and every warehouse table are scanned
// for any of the person's values: none is left, the other people are exactly as before, the delete-policy topics are
// bounded by retention, and a later event of the person starts a new, unlinked customer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';
import { ERASURE_BOUND_MS } from '../../topics/catalog.js';
import { ApiApp } from '../../processors/api/app.js';
import type { Pipeline } from '../../processors/pipeline.js';
import { hashIdentity } from '../../processors/producers/identity-hash.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import { contextPipeline, createTestContext, publishEvents, type TestContext, waitFor } from '../helpers/context.js';
import { trainSyntheticModel } from '../helpers/model.js';

const { ConfigResourceTypes } = kafkajs;
const KEY = 'erasure-test-key-0123456789abcdef';
const DAY = 86_400_000;
const T0 = Date.parse('2026-09-01T10:00:00Z');

const PERSON = {
  firstName: 'Zenobia',
  lastName: 'Quartermaine',
  email: 'zenobia.quartermaine@erase.example',
  phone: '+44 7700 900777',
  address: '17 Penmaenmawr Road',
  city: 'Llanfairfechan',
  postcode: 'LL33 0ZQ',
  birthDate: '1971-03-09',
};
/** A review the person wrote (free text is personal data): its rare word is one of the tokens looked for. */
const PERSON_REVIEW = 'Xylophagous kettle, superb and quiet.';
const SHOP_ID = 'zq-shop-7781';
const NORTH_ID = 'zq-north-3319';
const OTHERS = [
  { id: 'other-bf-1', firstName: 'Bartholomew', lastName: 'Finch', email: 'bart.finch@other.example', city: 'Leeds' },
  { id: 'other-cm-2', firstName: 'Cordelia', lastName: 'Marsh', email: 'c.marsh@other.example', city: 'Bristol' },
  { id: 'other-dh-3', firstName: 'Desmond', lastName: 'Holt', email: 'desmond.holt@other.example', city: 'York' },
];

let dir = '';
let ctx: TestContext;
let pipeline: Pipeline;
let api: ApiApp;
let url = '';
let salt = '';
let seq = 0;

function tx(platform: string, customer: string, prefix: string, atMs: number, identity: Transaction['identity']) {
  const n = ++seq;
  const event: Transaction = {
    eventId: `${prefix}-ev-${n}`,
    eventTimeMs: atMs,
    platform,
    platformCustomerId: customer,
    orderId: `${prefix}-ord-${n}`,
    kind: 'PURCHASE',
    lineItems: [
      {
        productId: 'p-1',
        productName: 'Trail shoe',
        category: 'sports',
        brand: 'Fleet',
        quantity: 1,
        unitPriceMinor: 4999,
      },
    ],
    totalMinor: 4999,
    currency: 'GBP',
    sessionId: `${prefix}-sess-1`,
    deviceId: `${prefix}-dev-1`,
    identity,
    couponCode: null,
  };
  return { kind: 'transaction' as const, event };
}

function click(platform: string, customer: string, prefix: string, atMs: number, identity: BehaviorEvent['identity']) {
  const n = ++seq;
  const event: BehaviorEvent = {
    eventId: `${prefix}-ev-${n}`,
    eventTimeMs: atMs,
    platform,
    platformCustomerId: customer,
    sessionId: `${prefix}-sess-1`,
    deviceId: `${prefix}-dev-1`,
    type: identity ? 'IDENTIFY' : 'VIEW',
    productId: 'p-1',
    category: 'sports',
    searchQuery: null,
    quantity: null,
    priceMinor: 4999,
    currency: 'GBP',
    orderId: null,
    identity,
    reviewText: null,
    reviewSentiment: null,
  };
  return { kind: 'behavior' as const, event };
}

const personIdentity = () =>
  hashIdentity(
    {
      email: PERSON.email,
      firstName: PERSON.firstName,
      lastName: PERSON.lastName,
      address: PERSON.address,
      city: PERSON.city,
      postcode: PERSON.postcode,
      birthDate: PERSON.birthDate,
    },
    salt,
  );

async function settle(): Promise<void> {
  await pipeline.waitUntilCaughtUp(ctx.admin, 240_000);
  await pipeline.features.processor.flushNow(true);
}

const prefix = () => ctx.config.TOPIC_PREFIX;
const key = (platform: string, id: string) => `${platform}:${id}`;

/** Every key of the run with its value(s), as text. */
async function redisDump(): Promise<Map<string, string>> {
  const redis = pipeline.redis;
  const out = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix()}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const type = await redis.type(k);
      let value: unknown;
      if (type === 'string') value = await redis.get(k);
      else if (type === 'hash') value = await redis.hgetall(k);
      else if (type === 'set') value = (await redis.smembers(k)).sort();
      else if (type === 'zset') value = await redis.zrange(k, 0, -1, 'WITHSCORES');
      else if (type === 'list') value = await redis.lrange(k, 0, -1);
      else value = `<${type}>`;
      out.set(k, JSON.stringify(value));
    }
  } while (cursor !== '0');
  return out;
}

/** Every record of a topic from its log start, in offset order per partition. */
async function readTopic(topic: string): Promise<{ key: string; value: Buffer | null }[]> {
  const ends = await ctx.admin.fetchTopicOffsets(topic);
  const todo = new Map(ends.filter((p) => Number(p.high) > Number(p.low)).map((p) => [p.partition, Number(p.high)]));
  const records: { key: string; value: Buffer | null }[] = [];
  if (todo.size === 0) return records;
  const consumer = ctx.kafka.consumer({ groupId: `${prefix()}scan-${Math.random().toString(36).slice(2)}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`reading ${topic} timed out`));
    }, 60_000);
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        records.push({ key: message.key?.toString() ?? '', value: message.value });
        if (Number(message.offset) + 1 >= (todo.get(partition) ?? 0)) todo.delete(partition);
        if (todo.size === 0) {
          clearTimeout(timer);
          resolve();
        }
        return Promise.resolve();
      },
    });
  });
  await consumer.disconnect();
  return records;
}

/** The run's warehouse tables (views left out) with their engines. */
async function tableEngines(): Promise<Map<string, string>> {
  const rows = await (
    await ctx.clickhouse.query({
      query: `SELECT name, engine FROM system.tables WHERE database = '${ctx.config.CLICKHOUSE_DATABASE}' AND engine NOT LIKE '%View' ORDER BY name`,
      format: 'JSONEachRow',
    })
  ).json<{ name: string; engine: string }>();
  return new Map(rows.map((r) => [r.name, r.engine]));
}

async function tables(): Promise<string[]> {
  return [...(await tableEngines()).keys()];
}

/**
 * Every stored row of a table (`final`: as queries see a ReplacingMergeTree, one row per sorting key: a mutation
 * rewrites parts and may collapse duplicates that were not merged yet, which changes nobody's data).
 */
async function tableRows(table: string, final = false): Promise<string[]> {
  const replacing = final && (await tableEngines()).get(table)?.startsWith('Replacing');
  const query = `SELECT DISTINCT * FROM ${table}${replacing ? ' FINAL' : ''}`;
  const rows = await (await ctx.clickhouse.query({ query, format: 'JSONEachRow' })).json();
  return rows.map((r) => JSON.stringify(r)).sort();
}

/** The places `text` names one of `tokens` (ids match whole: `c-3` is not found in `c-31`). */
function hits(text: string, tokens: readonly string[]): string[] {
  return tokens.filter((t) =>
    new RegExp(`(?<![\\w-])${t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w])`, 'i').test(text),
  );
}

let erasedGids: string[] = [];
let tokens: string[] = [];
let othersBefore: {
  redis: Map<string, string>;
  rows: Map<string, string[]>;
  gids: string[];
  graph: Map<string, string | null>;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'patternos-erasure-'));
  trainSyntheticModel(dir, '20260101T000000Z-erasure');
  ctx = await createTestContext({
    topics: true,
    warehouse: true,
    env: {
      MODEL_DIR: dir,
      SCORING_CLOCK: 'event',
      SCORING_RESCORE_EVERY_MS: String(10 * 365 * DAY),
      SINK_MAX_WAIT_MS: '200',
      FEATURES_CHECKPOINT_MS: '200',
      API_HOST: '127.0.0.1',
      API_PORT: '0',
      API_KEYS: KEY,
    },
  });
  salt = ctx.config.IDENTITY_HASH_SALT.reveal();
  pipeline = contextPipeline(ctx);
  await pipeline.start();
  // Others, and the person on shopwave (its cluster is the older one).
  const others = OTHERS.flatMap((o, i) => {
    const identity = hashIdentity({ email: o.email, firstName: o.firstName, lastName: o.lastName, city: o.city }, salt);
    return [
      tx('shopwave', o.id, o.id, T0 + i * 3_600_000, identity),
      tx('shopwave', o.id, o.id, T0 + DAY + i * 3_600_000, identity),
      click('shopwave', o.id, o.id, T0 + 2 * DAY, null),
    ];
  });
  await publishEvents(ctx, [
    ...others,
    tx('shopwave', SHOP_ID, 'zq', T0, personIdentity()),
    tx('shopwave', SHOP_ID, 'zq', T0 + DAY, personIdentity()),
  ]);
  await settle();
  // On northbay, first without identity attributes (a customer of its own), then identified by the same email: a merge.
  const reviewed = click('northbay', NORTH_ID, 'zq', T0 + 2 * DAY, null);
  await publishEvents(ctx, [{ ...reviewed, event: { ...reviewed.event, reviewText: PERSON_REVIEW } }]);
  await settle();
  await publishEvents(ctx, [
    click(
      'northbay',
      NORTH_ID,
      'zq',
      T0 + 3 * DAY,
      hashIdentity(
        {
          email: PERSON.email,
          phone: PERSON.phone,
          firstName: PERSON.firstName,
          lastName: PERSON.lastName,
          birthDate: PERSON.birthDate,
        },
        salt,
      ),
    ),
    tx('northbay', NORTH_ID, 'zq', T0 + 3 * DAY + 60_000, null),
  ]);
  await settle();
  api = new ApiApp({
    config: loadConfig(ctx.env),
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
    log: createLogger('warn', { test: 'erasure' }),
    metrics: createMetrics(),
    clickhouse: ctx.clickhouse,
    now: () => T0 + 4 * DAY,
  });
  url = await api.start();
}, 600_000);

afterAll(async () => {
  await api?.stop();
  await pipeline?.stop();
  await ctx?.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = (path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
  });

describe('erasure', () => {
  it('holds the person as one merged customer everywhere before the erasure', async () => {
    const roots = await pipeline.graph.globalIdOf([key('shopwave', SHOP_ID), key('northbay', NORTH_ID)]);
    const root = roots.get(key('shopwave', SHOP_ID)) as string;
    expect(root).toMatch(/^c-\d+$/);
    expect(roots.get(key('northbay', NORTH_ID))).toBe(root);
    // the northbay customer was merged away into the shopwave one
    const merged = (
      await ctx.clickhouse.query({ query: 'SELECT merged_id FROM identity_merge', format: 'JSONEachRow' })
    ).json<{ merged_id: string }>();
    const mergedIds = (await merged).map((r) => r.merged_id);
    expect(mergedIds.length).toBe(1);
    erasedGids = [root, ...mergedIds];
    // an ad decision for the person (an exposure on ad.decisions.v1 and in fact_ad_decision)
    const decision = await post('/ad-decision', { platform: 'shopwave', platform_customer_id: SHOP_ID });
    expect(decision.status).toBe(200);
    await waitFor(
      async () => (await tableRows('fact_ad_decision')).length,
      (n) => n === 1,
      { what: 'the exposure in the warehouse', timeoutMs: 60_000 },
    );
    const identity = personIdentity();
    tokens = [
      SHOP_ID,
      NORTH_ID,
      PERSON.firstName,
      PERSON.lastName,
      PERSON.city,
      PERSON.postcode,
      'Penmaenmawr',
      PERSON.birthDate,
      identity.emailSha256 as string,
      hashIdentity({ phone: PERSON.phone }, salt).phoneSha256 as string,
      'zq-sess-1',
      'zq-dev-1',
      'zq-ord',
      'zq-ev',
      'Xylophagous',
      ...erasedGids,
    ];
    // Before: the person is there (the scans below would see them).
    const dump = [...(await redisDump())].map(([k, v]) => `${k} ${v}`).join('\n');
    expect(hits(dump, tokens)).toEqual(expect.arrayContaining([SHOP_ID, root]));
    for (const t of ['fact_transaction', 'fact_event', 'dim_customer_identity', 'intent_score', 'fact_ad_decision']) {
      expect(hits((await tableRows(t)).join('\n'), tokens).length, t).toBeGreaterThan(0);
    }
    expect(hits((await tableRows('fact_event')).join('\n'), ['Xylophagous'])).toEqual(['Xylophagous']); // the review
    // What belongs to the others, to compare afterwards.
    const redis = new Map([...(await redisDump())].filter(([k, v]) => hits(`${k} ${v}`, tokens).length === 0));
    const rows = new Map<string, string[]>();
    for (const t of await tables())
      rows.set(
        t,
        (await tableRows(t, true)).filter((r) => hits(r, tokens).length === 0),
      );
    const gids = [...(await pipeline.graph.globalIdOf(OTHERS.map((o) => key('shopwave', o.id)))).values()] as string[];
    const graph = new Map<string, string | null>();
    const base = `${prefix()}idg:v1:{${prefix()}idg}`;
    for (const o of OTHERS) {
      for (const hash of ['rec', 'idc']) {
        const value = await pipeline.redis.hget(`${base}:${hash}`, key('shopwave', o.id));
        expect(value, `${hash} ${o.id}`).not.toBeNull();
        graph.set(`${hash} ${o.id}`, value);
      }
    }
    othersBefore = { redis, rows, gids, graph };
  });

  it('POST /erasure removes the person from Redis, the compacted topics and every warehouse table', async () => {
    const res = await post('/erasure', { platform: 'shopwave', platform_customer_id: SHOP_ID });
    const body = (await res.json()) as {
      status: string;
      erasure_id: string;
      counts: Record<string, unknown>;
      pending: string[];
    };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.status).toBe('done');
    expect(body.counts['global_ids']).toBe(2);
    expect(body.counts['identities']).toBe(2);

    // Redis: no key and no value of the run names the person.
    const dump = await redisDump();
    const leftInRedis = [...dump].flatMap(([k, v]) => hits(`${k} ${v}`, tokens).map((t) => `${k}: ${t}`));
    expect(leftInRedis).toEqual([]);

    // Compacted topics, as every consumer sees them: the person's keys end in tombstones, no value names them.
    for (const spec of [ctx.topics.identityLinks, ctx.topics.customerScores]) {
      const latest = new Map<string, Buffer | null>();
      for (const r of await readTopic(spec.name)) latest.set(r.key, r.value);
      for (const [k, value] of latest) {
        const text = value ? JSON.stringify(await ctx.serde.decode(spec, value)) : '';
        expect(hits(`${value ? k : ''} ${text}`, tokens), `${spec.name} ${k}`).toEqual([]);
      }
    }
    // The erasure commands themselves were deleted once the feature processor had handled them.
    expect(await readTopic(ctx.topics.customerErasures.name)).toEqual([]);
    // Every other topic is bounded by its retention (the README's erasure bound).
    const described = await ctx.admin.describeConfigs({
      includeSynonyms: false,
      resources: ctx.topics.all.map((t) => ({
        type: ConfigResourceTypes.TOPIC,
        name: t.name,
        configNames: ['cleanup.policy', 'retention.ms', 'max.compaction.lag.ms', 'delete.retention.ms'],
      })),
    });
    for (const r of described.resources) {
      const c = Object.fromEntries(r.configEntries.map((e) => [e.configName, Number(e.configValue) || e.configValue]));
      if (c['cleanup.policy'] === 'delete') {
        expect(Number(c['retention.ms']), r.resourceName).toBeGreaterThan(0);
        expect(Number(c['retention.ms']), r.resourceName).toBeLessThanOrEqual(ERASURE_BOUND_MS);
      } else {
        expect(Number(c['max.compaction.lag.ms']), r.resourceName).toBeLessThanOrEqual(DAY);
        expect(Number(c['delete.retention.ms']), r.resourceName).toBeLessThanOrEqual(DAY);
      }
    }

    // Every warehouse table.
    for (const t of await tables()) {
      expect(hits((await tableRows(t)).join('\n'), tokens), t).toEqual([]);
    }
    // The log: one row, with counts and without the person.
    const log = await tableRows('erasure_log');
    expect(log.length).toBe(1);
    expect(log[0]).toContain(body.erasure_id);
    expect(log[0]).toContain('"status":"done"');
  }, 300_000);

  it('leaves every other customer exactly as it was', async () => {
    const redis = await redisDump();
    for (const [k, v] of othersBefore.redis) {
      if (k.endsWith(':counters')) continue; // graph-wide sequences move on
      expect(redis.get(k), k).toBe(v);
    }
    for (const gid of othersBefore.gids) expect(await pipeline.redis.exists(`${prefix()}score:{${gid}}`)).toBe(1);
    // The graph's shared hashes held the person too (so they are not compared whole above): the others' entries.
    const graph = `${prefix()}idg:v1:{${prefix()}idg}`;
    for (const o of OTHERS) {
      for (const hash of ['rec', 'idc']) {
        expect(await pipeline.redis.hget(`${graph}:${hash}`, key('shopwave', o.id)), `${hash} ${o.id}`).toBe(
          othersBefore.graph.get(`${hash} ${o.id}`),
        );
      }
    }
    const gids = [...(await pipeline.graph.globalIdOf(OTHERS.map((o) => key('shopwave', o.id)))).values()];
    expect(gids).toEqual(othersBefore.gids);
    for (const [t, rows] of othersBefore.rows) {
      if (t === 'erasure_log') continue;
      expect(await tableRows(t, true), t).toEqual(rows);
    }
  });

  it('starts a new, unlinked customer for a later event of the person', async () => {
    await publishEvents(ctx, [tx('shopwave', SHOP_ID, 'zq-later', T0 + 10 * DAY, personIdentity())]);
    await settle();
    const gid = (await pipeline.graph.globalIdOf([key('shopwave', SHOP_ID)])).get(key('shopwave', SHOP_ID)) as string;
    expect(gid).toMatch(/^c-\d+$/);
    expect(erasedGids).not.toContain(gid);
    expect(await pipeline.graph.members(gid)).toEqual([key('shopwave', SHOP_ID)]); // northbay is not linked again
    expect((await pipeline.graph.globalIdOf([key('northbay', NORTH_ID)])).get(key('northbay', NORTH_ID))).toBeNull();
    const stored = await pipeline.store.load(gid);
    expect(stored.absorbed).toEqual([]);
    expect(stored.state).not.toBeNull();
    for (const old of erasedGids) expect(await pipeline.redis.exists(`${prefix()}features:state:{${old}}`)).toBe(0);
  });

  it('drops a record still in flight under an erased id instead of bringing the customer back', async () => {
    // As if the resolver had published it from a stale cache just before the erasure reached it.
    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    const late = tx('shopwave', SHOP_ID, 'zq-inflight', T0 + 11 * DAY, null).event;
    for (const old of erasedGids) {
      const value = await ctx.serde.encode(ctx.topics.customerTransactions, late);
      await producer.send({ topic: ctx.topics.customerTransactions.name, acks: -1, messages: [{ key: old, value }] });
    }
    await producer.disconnect();
    await settle();
    for (const old of erasedGids) {
      for (const k of [`features:state:{${old}}`, `features:{${old}}`, `score:{${old}}`]) {
        expect(await pipeline.redis.exists(`${prefix()}${k}`), k).toBe(0);
      }
    }
  });
});
