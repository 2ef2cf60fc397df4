// The identity resolver on real Kafka, registry and Redis: deterministic links and merges end to end; a crash mid-stream
// loses nothing; two instances on different partitions give the same clustering as one.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners, type Consumer, type KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentityGraph } from '../../processors/identity/graph-store.js';
import { PiiCodec } from '../../processors/identity/pii-codec.js';
import { loadModel } from '../../processors/identity/model.js';
import { IdentityResolver, type IdentityResolverDeps } from '../../processors/identity/processor.js';
import { generateSample } from '../../processors/producers/generate.js';
import { hashIdentity } from '../../processors/producers/identity-hash.js';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import type { FatalFailure } from '../../processors/runtime/liveness.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import type { BehaviorEvent, IdentityLink, IdentityMerge } from '../../schemas/generated/types.js';
import type { TopicSpec } from '../../topics/catalog.js';
import {
  createTestContext,
  envOf,
  publishEvents,
  startWarehouseSink,
  waitFor,
  within,
  type TestContext,
} from '../helpers/context.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { sampleBehavior } from '../fixtures/events.js';
import type { PlatformEvent } from '../../processors/producers/platform-producer.js';
import { behaviorKey } from '../../schemas/rules.js';

const model = loadModel(
  JSON.parse(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8')),
);
const contexts: TestContext[] = [];
const redis: Redis[] = [];
let endpointsRedis: string;

beforeAll(() => {
  endpointsRedis = ''; // set per context below
});
afterAll(async () => {
  for (const r of redis) {
    r.disconnect();
  }
  await Promise.all(contexts.map((c) => c.close()));
});

async function context(env: Record<string, string> = {}): Promise<TestContext> {
  // A short session timeout: after the SIGKILL the dead member's partitions are reassigned in seconds, not 30.
  const ctx = await createTestContext({ topics: true, env: { KAFKA_SESSION_TIMEOUT_MS: '8000', ...env } });
  contexts.push(ctx);
  endpointsRedis = ctx.config.REDIS_URL;
  return ctx;
}

function resolver(
  ctx: TestContext,
  groupSuffix = 'identity-resolver',
  options: Partial<Pick<IdentityResolverDeps, 'outboxSweepMs' | 'onFatal'>> & { redisUrl?: string } = {},
) {
  const { redisUrl = endpointsRedis, ...deps } = options;
  const client = new Redis(redisUrl);
  if (redisUrl !== endpointsRedis) client.on('error', () => undefined); // a proxy the test closes: reconnects fail
  redis.push(client);
  // Every command this instance's graph sends to Redis (scripts included: they go through sendCommand too), but the
  // batches' publication log (a write before each send and a delete after each commit: what a repeated batch needs).
  let commands = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...args: Parameters<typeof send>) => {
    const key = args[0]?.args[0];
    if (!(typeof key === 'string' && key.includes(':pub:'))) commands++;
    return send(...args);
  };
  const codec = PiiCodec.fromConfig(ctx.config);
  const graph = IdentityGraph.open(client, { prefix: ctx.config.TOPIC_PREFIX, maxClusterSize: 100, codec });
  const metrics = createMetrics();
  const instance = new IdentityResolver({
    config: ctx.config,
    kafka: ctx.kafka,
    serde: ctx.serde,
    graph,
    model,
    topics: ctx.topics,
    log: createLogger('warn', { test: 'identity' }),
    metrics,
    groupId: `${ctx.config.TOPIC_PREFIX}${groupSuffix}`,
    ...deps,
  });
  const counter = async (name: string) =>
    Object.fromEntries(
      (await metrics.registry.getSingleMetric(name)!.get()).values.map((v) => [
        Object.values(v.labels).join(',') || 'total',
        v.value,
      ]),
    );
  return { instance, graph, redisCommands: () => commands, counter };
}

/** A sample click as the platforms' producer publishes it. */
function clickOf(overrides: Parameters<typeof sampleBehavior>[0]): PlatformEvent {
  return { kind: 'behavior', event: sampleBehavior(overrides) };
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- T names the decoded record type for callers
async function readAll<T>(ctx: TestContext, spec: TopicSpec, expected: number): Promise<{ key: string; value: T }[]> {
  const consumer = ctx.kafka.consumer({ groupId: `${ctx.config.TOPIC_PREFIX}reader-${spec.name}-${Date.now()}` });
  const out: { key: string; value: T }[] = [];
  await within(`a reader of ${spec.name} connecting`, 20_000, consumer.connect());
  await consumer.subscribe({ topic: spec.name, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }: { message: KafkaMessage }) => {
      out.push({ key: String(message.key), value: await ctx.serde.decode<T>(spec, message.value) });
    },
  });
  await waitFor(
    async () => Promise.resolve(out.length),
    (n) => n >= expected,
    { what: `${expected} on ${spec.name}`, timeoutMs: 40_000 },
  );
  await within(`the reader of ${spec.name} disconnecting`, 20_000, consumer.disconnect());
  return out;
}

/** A clustering as a canonical string: sorted member lists, so two runs compare regardless of id labels. */
function canonical(roots: ReadonlyMap<string, string | null>): string[] {
  const byRoot = new Map<string, string[]>();
  for (const [key, root] of roots)
    byRoot.set(root ?? `none:${key}`, [...(byRoot.get(root ?? `none:${key}`) ?? []), key]);
  return [...byRoot.values()].map((m) => m.sort().join('|')).sort();
}

describe('identity resolver', () => {
  it('links by hashed email, merges two customers when a later event links them, and re-keys every event', async () => {
    // Each step has its own bound, so a slow one names itself (once, in CI, this test ran past its 120 s).
    const ctx = await within('the test context', 30_000, context());
    const salt = ctx.config.IDENTITY_HASH_SALT.reveal();
    const identify = (
      platform: string,
      id: string,
      raw: Parameters<typeof hashIdentity>[0],
      at: number,
    ): BehaviorEvent =>
      sampleBehavior({
        eventId: `${platform}-${id}-${at}`,
        eventTimeMs: Date.UTC(2026, 8, 1) + at,
        platform,
        platformCustomerId: id,
        type: 'IDENTIFY',
        identity: hashIdentity(raw, salt),
      });
    const events = [
      identify('shopwave', 'a', { email: 'ada@example.org', firstName: 'Ada', lastName: 'Lovelace' }, 1),
      identify('marketly', 'b', { email: 'ADA@example.org ' }, 2), // same mailbox: deterministic link
      identify('urbancart', 'c', { phone: '+44 20 7946 0958', firstName: 'Grace' }, 3), // someone new
      sampleBehavior({
        eventId: 'click-c',
        platform: 'urbancart',
        platformCustomerId: 'c',
        eventTimeMs: Date.UTC(2026, 8, 1) + 4,
      }),
      identify('marketly', 'b', { email: 'ada@example.org', phone: '0044 20 7946 0958' }, 5), // b's phone is c's: merge
    ];
    const producer = await within(
      'the producer connecting',
      20_000,
      PlatformProducer.connect(ctx.config, {
        kafka: ctx.kafka,
        serde: ctx.serde,
        topics: ctx.topics,
      }),
    );
    const { instance, graph } = resolver(ctx);
    await within('the resolver starting', 30_000, instance.start());
    // Different keys live on different partitions, processed in any order: send in phases to pin the story.
    const phase = async (batch: BehaviorEvent[]) => {
      const target = instance.processedCount + batch.length;
      for (const e of batch) await within(`sending ${e.eventId}`, 20_000, producer.sendBehavior(e));
      await waitFor(
        async () => Promise.resolve(instance.processedCount),
        (n) => n >= target,
        { what: `the resolver processing ${batch.map((e) => e.eventId).join(', ')}`, timeoutMs: 30_000 },
      );
    };
    await phase([events[0]!]); // a: new customer
    await phase([events[1]!]); // b: same mailbox as a
    await phase([events[2]!, events[3]!]); // c: someone new, then a click of c
    const before = await graph.globalIdOf(['shopwave:a', 'marketly:b', 'urbancart:c']);
    expect(before.get('marketly:b')).toBe(before.get('shopwave:a'));
    expect(before.get('urbancart:c')).not.toBe(before.get('shopwave:a'));
    await phase([events[4]!]); // b's phone is c's: the two customers merge
    await within('the producer disconnecting', 20_000, producer.disconnect());
    await within('the resolver stopping', 30_000, instance.stop());

    const roots = await graph.globalIdOf(['shopwave:a', 'marketly:b', 'urbancart:c']);
    const survivor = roots.get('shopwave:a');
    expect(survivor).toBeTruthy();
    expect(roots.get('marketly:b')).toBe(survivor);
    expect(roots.get('urbancart:c')).toBe(survivor);

    const merges = await readAll<IdentityMerge>(ctx, ctx.topics.identityMerges, 1);
    expect(merges).toHaveLength(1);
    expect(merges[0]?.value.survivorId).toBe(survivor); // the older cluster survives
    expect(merges[0]?.key).toBe(merges[0]?.value.mergedId); // keyed by the merged-away id: its partition hands on

    const links = await readAll<IdentityLink>(ctx, ctx.topics.identityLinks, 4);
    const latest = new Map(links.map((l) => [l.key, l.value]));
    expect(latest.get('marketly:b')?.globalCustomerId).toBe(survivor);
    expect(latest.get('urbancart:c')?.globalCustomerId).toBe(survivor);
    expect(links.find((l) => l.key === 'marketly:b')?.value.method).toBe('EMAIL_HASH');

    const resolved = await readAll<BehaviorEvent>(ctx, ctx.topics.customerClicks, events.length);
    expect(resolved.map((r) => r.value.eventId).sort()).toEqual(events.map((e) => e.eventId).sort());
    // Events after the merge are keyed by the survivor; each event keeps its content.
    expect(resolved.find((r) => r.value.eventId === 'marketly-b-5')?.key).toBe(survivor);
  });

  it("registers a round's new identities in scripts of IDENTITY_SCRIPT_MAX_IDENTITIES, each part seeing the ones before", async () => {
    // On the graph's scripts (the calls counted below); the picture's parts: identity-picture.test.ts.
    const ctx = await within(
      'the test context',
      30_000,
      context({ IDENTITY_SCRIPT_MAX_IDENTITIES: '2', IDENTITY_PICTURE_MAX_IDENTITIES: '0' }),
    );
    const salt = ctx.config.IDENTITY_HASH_SALT.reveal();
    const identify = (id: string, raw: Parameters<typeof hashIdentity>[0], at: number): BehaviorEvent =>
      sampleBehavior({
        eventId: `parts-${id}`,
        eventTimeMs: Date.UTC(2026, 8, 1) + at,
        platform: 'shopwave',
        platformCustomerId: id,
        type: 'IDENTIFY',
        identity: hashIdentity(raw, salt),
      });
    // Six new identities in one round (all published before the resolver starts): parts [a, b], [c, d], [e, f].
    const events = [
      identify('a', { email: 'mary@example.org', firstName: 'Mary' }, 1),
      identify('b', { phone: '+44 20 7946 0001', firstName: 'Jon' }, 2),
      identify('c', { email: 'c@example.org' }, 3),
      identify('d', { email: 'd@example.org' }, 4),
      identify('e', { email: 'MARY@example.org' }, 5), // a's mailbox, two scripts later
      identify('f', { phone: '0044 20 7946 0001' }, 6), // b's phone
    ];
    await publishEvents(
      ctx,
      events.map((event) => ({ kind: 'behavior' as const, event })),
    );
    const { instance, graph } = resolver(ctx);
    const registered: number[] = [];
    const registerAndSearch = graph.registerAndSearch.bind(graph);
    graph.registerAndSearch = (items, options) => {
      if (options.register) registered.push(items.length);
      return registerAndSearch(items, options);
    };
    await within('the resolver starting', 30_000, instance.start());
    try {
      const resolved = await readAll<BehaviorEvent>(ctx, ctx.topics.customerClicks, events.length);
      expect(resolved.map((r) => r.value.eventId).sort()).toEqual(events.map((e) => e.eventId).sort());
      expect(registered).toEqual([2, 2, 2]); // one round, three scripts
      const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => `shopwave:${id}`);
      const roots = await graph.globalIdOf(keys);
      expect(roots.get('shopwave:e')).toBe(roots.get('shopwave:a'));
      expect(roots.get('shopwave:f')).toBe(roots.get('shopwave:b'));
      expect(new Set(['a', 'b', 'c', 'd'].map((id) => roots.get(`shopwave:${id}`))).size).toBe(4);
      for (const r of resolved) expect(r.key).toBe(roots.get(`shopwave:${r.value.eventId.slice('parts-'.length)}`));
    } finally {
      await instance.stop();
    }
  }, 120_000);

  it('never merges a father and son at one address, even through a record that matches both; refusals are warehoused', async () => {
    const ctx = await createTestContext({ topics: true, warehouse: true, env: { SINK_MAX_WAIT_MS: '200' } });
    contexts.push(ctx);
    endpointsRedis = ctx.config.REDIS_URL;
    const salt = ctx.config.IDENTITY_HASH_SALT.reveal();
    const home = { lastName: 'Whitaker', address: '12 Orchard Lane', city: 'Leeds', postcode: 'LS6 2AB' };
    const person = (platform: string, id: string, raw: Parameters<typeof hashIdentity>[0], at: number) =>
      sampleBehavior({
        eventId: `${platform}-${id}`,
        eventTimeMs: Date.UTC(2026, 8, 1) + at,
        platform,
        platformCustomerId: id,
        type: 'IDENTIFY',
        identity: hashIdentity({ ...home, ...raw }, salt),
      });
    const father = person(
      'shopwave',
      'sr',
      { email: 'john.sr@example.org', firstName: 'John', birthDate: '1961-03-14' },
      1,
    );
    const son = person(
      'marketly',
      'jr',
      { email: 'johnny@example.org', firstName: 'John', birthDate: '1992-07-30' },
      2,
    );
    const either = person('urbancart', 'j', { firstName: 'John' }, 3); // no email, no birth date: matches both
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    const { instance, graph } = resolver(ctx);
    await instance.start();
    for (const [i, e] of [father, son, either].entries()) {
      await producer.sendBehavior(e);
      await waitFor(
        async () => Promise.resolve(instance.processedCount),
        (n) => n > i,
        { what: `event ${i + 1}` },
      );
    }
    await producer.disconnect();
    await instance.stop();
    const roots = await graph.globalIdOf(['shopwave:sr', 'marketly:jr', 'urbancart:j']);
    expect(roots.get('shopwave:sr')).not.toBe(roots.get('marketly:jr'));
    expect([roots.get('shopwave:sr'), roots.get('marketly:jr')]).toContain(roots.get('urbancart:j'));

    const { sink } = await startWarehouseSink(ctx);
    try {
      const rows = await waitFor(
        async () =>
          (
            await ctx.clickhouse.query({
              query: `SELECT identity_id, reason FROM identity_merge_rejected FINAL ORDER BY identity_id`,
              format: 'JSONEachRow',
            })
          ).json<{ identity_id: string; reason: string }>(),
        (r) => r.length >= 2,
        { what: 'refused links in the warehouse' },
      );
      expect(rows.map((r) => r.reason)).toEqual(rows.map(() => 'CONFLICT'));
      expect(rows.map((r) => r.identity_id)).toEqual(expect.arrayContaining(['marketly:jr', 'urbancart:j']));
    } finally {
      await sink.stop();
    }
  });

  it('known identities resolve from the in-process cache with no graph command; a merge made by another instance reaches that cache', async () => {
    // On the graph's scripts: the searches' read cache is theirs (a resolver holding the graph reads nothing).
    const ctx = await context({ IDENTITY_PICTURE_MAX_IDENTITIES: '0' });
    const salt = ctx.config.IDENTITY_HASH_SALT.reveal();
    const at = Date.UTC(2026, 8, 1);
    const identify = (id: string, raw: Parameters<typeof hashIdentity>[0], n: number): BehaviorEvent =>
      sampleBehavior({
        eventId: `identify-${id}-${n}`,
        eventTimeMs: at + n,
        platform: 'shopwave',
        platformCustomerId: id,
        type: 'IDENTIFY',
        identity: hashIdentity(raw, salt),
      });
    const click = (id: string, n: number): BehaviorEvent =>
      sampleBehavior({
        eventId: `click-${id}-${n}`,
        eventTimeMs: at + n,
        platform: 'shopwave',
        platformCustomerId: id,
      });
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    // No time-based outbox sweep during the test: what is measured is the per-batch path.
    const a = resolver(ctx, 'identity-resolver', { outboxSweepMs: 600_000 });
    await a.instance.start();
    const publish = async (who: IdentityResolver[], events: BehaviorEvent[]) => {
      const total = () => who.reduce((n, r) => n + r.processedCount, 0);
      const target = total() + events.length;
      for (const e of events) await producer.sendBehavior(e);
      await waitFor(
        async () => Promise.resolve(total()),
        (n) => n >= target,
        { what: `${events.length} events processed` },
      );
    };

    // 1. New identities go through the graph: x first (the older customer), then candidates for y, each its own.
    const ys = Array.from({ length: 8 }, (_, i) => `y${i}`);
    await publish([a.instance], [identify('x', { email: 'x@example.org', firstName: 'Xavier' }, 1)]);
    await publish(
      [a.instance],
      ys.map((y, i) => identify(y, { phone: `+44 20 7946 10${i}0`, firstName: `Yara${i}` }, 10 + i)),
    );
    const rootX = (await a.graph.globalIdOf(['shopwave:x'])).get('shopwave:x')!;
    expect(a.redisCommands()).toBeGreaterThan(0); // the counter sees the graph's commands
    // What the searches read from the graph (not current in the in-process cache) is counted.
    expect(a.graph.reads.clusters).toBeGreaterThan(0);
    expect(await a.counter('identity_graph_reads_total')).toEqual({
      clusters: a.graph.reads.clusters,
      records: a.graph.reads.records,
    });

    // 2. Every identity known, nothing new about anyone: no graph command, every root from the cache.
    const before = a.redisCommands();
    await publish(
      [a.instance],
      ['x', ...ys].map((id, i) => click(id, 100 + i)),
    );
    expect(a.redisCommands() - before).toBe(0);
    expect((await a.counter('identity_root_lookups_total'))['cache']).toBe(ys.length + 1);

    // 3. A second instance joins and takes some partitions. It merges y's customer into x's (an event of a new
    //    identity z carrying x's email and y's phone); the instance that cached y's root hears of it from
    //    identity.merges, without a Redis command of its own.
    const b = resolver(ctx, 'identity-resolver', { outboxSweepMs: 600_000 });
    await b.instance.start();
    const topic = ctx.topics.clicksRaw.name;
    await waitFor(
      async () =>
        Promise.resolve([
          ...(a.instance.assignedPartitions[topic] ?? []),
          ...(b.instance.assignedPartitions[topic] ?? []),
        ]),
      (parts) =>
        parts.length === ctx.config.KAFKA_PARTITIONS &&
        (a.instance.assignedPartitions[topic] ?? []).length > 0 &&
        (b.instance.assignedPartitions[topic] ?? []).length > 0,
      { what: 'the partitions split between two instances' },
    );
    const metadata = (await ctx.admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions;
    const partitioner = Partitioners.DefaultPartitioner();
    const partitionOf = (ev: BehaviorEvent) =>
      partitioner({ topic, partitionMetadata: metadata, message: { key: behaviorKey(ev), value: null } });
    const ownedByA = new Set(a.instance.assignedPartitions[topic]);
    const y = ys.find((id) => ownedByA.has(partitionOf(click(id, 0))));
    expect(y).toBeDefined();
    const yIndex = ys.indexOf(y!);
    const z = Array.from({ length: 50 }, (_, i) => `z${i}`).find((id) => !ownedByA.has(partitionOf(click(id, 0))))!;
    const rootY = a.instance.cachedRootOf(`shopwave:${y}`);
    expect(rootY).toBeDefined();
    expect(rootY).not.toBe(rootX);
    const linking = identify(z, { email: 'x@example.org', phone: `+44 20 7946 10${yIndex}0` }, 200);
    const beforeMerge = a.redisCommands();
    await publish([b.instance], [linking]);
    expect((await b.graph.globalIdOf([`shopwave:${y}`])).get(`shopwave:${y}`)).toBe(rootX); // b merged y into x
    await waitFor(
      async () => Promise.resolve(a.instance.cachedRootOf(`shopwave:${y}`)),
      (root) => root === rootX,
      { what: "the merge in a's cache", timeoutMs: 20_000 },
    );
    expect(a.redisCommands() - beforeMerge).toBe(0); // learnt from the topic, not from Redis

    // 4. y's next event is resolved by a from its cache, under the survivor, still without Redis.
    const afterMerge = a.redisCommands();
    const next = click(y!, 300);
    await publish([a.instance, b.instance], [next]);
    expect(a.redisCommands() - afterMerge).toBe(0);
    await producer.disconnect();
    await Promise.all([a.instance.stop(), b.instance.stop()]);

    const resolved = await readAll<BehaviorEvent>(ctx, ctx.topics.customerClicks, 2 * (ys.length + 1) + 2);
    expect(resolved.find((r) => r.value.eventId === next.eventId)?.key).toBe(rootX);
    expect(resolved.find((r) => r.value.eventId === `click-${y}-${101 + yIndex}`)?.key).toBe(rootY); // before
    const merges = await readAll<IdentityMerge>(ctx, ctx.topics.identityMerges, 1);
    expect(merges.map((m) => [m.key, m.value.survivorId])).toEqual([[rootY, rootX]]);
  });

  it('a batch repeated after a crash publishes each record under the id its first attempt used, then forgets it', async () => {
    const ctx = await context();
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    await producer.sendBehavior(sampleBehavior({ eventId: 'again-1', platformCustomerId: 'again' }));
    await producer.sendBehavior(sampleBehavior({ eventId: 'again-2', platformCustomerId: 'again' }));
    await producer.disconnect();
    const topic = ctx.topics.clicksRaw.name;
    const partition = (await ctx.admin.fetchTopicOffsets(topic)).find((p) => p.high === '2')?.partition;
    expect(partition).toBeDefined();

    // What an attempt that published offset 0 under `c-first` (say, before a merge moved it) and died before its
    // commit leaves behind.
    const { instance, graph } = resolver(ctx);
    await graph.recordPublication(topic, partition!, new Map([[0, 'c-first']]));
    await instance.start();
    try {
      const resolved = await readAll<BehaviorEvent>(ctx, ctx.topics.customerClicks, 2);
      const root = (await graph.globalIdOf(['shopwave:again'])).get('shopwave:again');
      expect(root).toMatch(/^c-/);
      expect(root).not.toBe('c-first');
      // Different keys, so possibly different partitions of the resolved topic: compared in event order.
      expect(resolved.map((r) => [r.value.eventId, r.key]).sort()).toEqual([
        ['again-1', 'c-first'], // the repeated record keeps its first id: downstream takes it for the redelivery
        ['again-2', root], // a record no attempt had published goes to the current root
      ]);
      // Committed: the log is forgotten (it holds ids only while a batch is in flight).
      await waitFor(
        async () => (await graph.publications(topic, partition!)).size,
        (n) => n === 0,
        { what: 'the publication log forgotten after the commit' },
      );
    } finally {
      await instance.stop();
    }
  }, 120_000);

  it('a restarted instance reads the publication log again while an earlier attempt published past its round', async () => {
    // One record per round: an attempt that published two rounds and died before either commit leaves two batches.
    const ctx = await context({ IDENTITY_ROUND_MAX_RECORDS: '1' });
    const sent = await publishEvents(
      ctx,
      [1, 2, 3].map((n) => clickOf({ eventId: `rounds-${n}`, platformCustomerId: 'rounds' })),
    );
    expect(sent.acknowledged).toBe(3);
    const topic = ctx.topics.clicksRaw.name;
    const partition = (await ctx.admin.fetchTopicOffsets(topic)).find((p) => p.high === '3')?.partition;
    expect(partition).toBeDefined();

    const { instance, graph } = resolver(ctx);
    await graph.recordPublication(topic, partition!, new Map([[0, 'c-first']]));
    await graph.recordPublication(topic, partition!, new Map([[1, 'c-second']]));
    await instance.start();
    try {
      const resolved = await readAll<BehaviorEvent>(ctx, ctx.topics.customerClicks, 3);
      const root = (await graph.globalIdOf(['shopwave:rounds'])).get('shopwave:rounds');
      expect(root).toMatch(/^c-/);
      expect(resolved.map((r) => [r.value.eventId, r.key]).sort()).toEqual([
        ['rounds-1', 'c-first'],
        ['rounds-2', 'c-second'], // the second round's record too, although the first round's commit came between
        ['rounds-3', root],
      ]);
    } finally {
      await instance.stop();
    }
  }, 120_000);

  it('an identity judged before is not judged again by a restarted instance unless its record changed', async () => {
    const ctx = await context();
    const salt = ctx.config.IDENTITY_HASH_SALT.reveal();
    const at = Date.UTC(2026, 8, 1);
    const event = (id: string, n: number, raw?: Parameters<typeof hashIdentity>[0]): BehaviorEvent =>
      sampleBehavior({
        eventId: `judged-${id}-${n}`,
        eventTimeMs: at + n,
        platform: 'shopwave',
        platformCustomerId: id,
        ...(raw ? { type: 'IDENTIFY' as const, identity: hashIdentity(raw, salt) } : {}),
      });
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    const publish = async (instance: IdentityResolver, events: BehaviorEvent[]) => {
      const target = instance.processedCount + events.length;
      for (const e of events) await producer.sendBehavior(e);
      await waitFor(
        async () => Promise.resolve(instance.processedCount),
        (n) => n >= target,
        { what: `${events.length} events processed` },
      );
    };
    const skipped = async (r: ReturnType<typeof resolver>) =>
      (await r.counter('identity_judgements_repeated_skipped_total'))['total'] ?? 0;
    const people = {
      ada: { email: 'ada@example.org', firstName: 'Ada', lastName: 'Lovelace', city: 'London' },
      bea: { phone: '+44 20 7946 0001', firstName: 'Beatrice', lastName: 'Shilling', city: 'Leicester' },
      cid: { email: 'cid@example.org', firstName: 'Cidalia', lastName: 'Moreira', city: 'Porto' },
    };

    const first = resolver(ctx);
    await first.instance.start();
    await publish(first.instance, [event('ada', 1, people.ada), event('bea', 2, people.bea)]);
    expect(await skipped(first)).toBe(0); // new identities: judged once
    const clusters = await first.graph.globalIdOf(['shopwave:ada', 'shopwave:bea']);
    await first.instance.stop();

    // A restarted instance knows nobody in memory: events that change nothing about ada and bea register their
    // stored records as they are, and the graph says those were judged. A new person comes first: her round reads no
    // stored record, so the next round registers without reading and the registration finds ada's and bea's; that
    // round then reads them and registers again, as if it had read first.
    const second = resolver(ctx);
    const unseenStored = async () => (await second.counter('identity_unseen_stored_total'))['total'] ?? 0;
    await second.instance.start();
    try {
      await publish(second.instance, [event('cid', 3, people.cid)]);
      expect(await unseenStored()).toBe(0);
      await publish(second.instance, [event('ada', 3), event('bea', 4)]);
      // One round or two (they are on different partitions): the first finds a stored record, the next reads first.
      expect(await unseenStored()).toBeGreaterThanOrEqual(1);
      expect(await skipped(second)).toBe(2);
      // bea's record changes (a new city): her new record is judged; ada's repeated record is not.
      await publish(second.instance, [event('bea', 5, { ...people.bea, city: 'Derby' }), event('ada', 6, people.ada)]);
      expect(await skipped(second)).toBe(2);
      expect(await second.graph.globalIdOf(['shopwave:ada', 'shopwave:bea'])).toEqual(clusters);
    } finally {
      await second.instance.stop();
      await producer.disconnect();
    }
  }, 180_000);

  it('gives up, saying why, when its consumer stops fetching a partition the broker holds records of', async () => {
    const ctx = await context({ PROCESSOR_FETCH_STALL_MS: '3000' });
    const failures: FatalFailure[] = [];
    const { instance } = resolver(ctx, 'identity-resolver', { onFatal: (f) => failures.push(f) });
    await publishEvents(ctx, [clickOf({ eventId: 'stall-1', platformCustomerId: 'stall' })]);
    await instance.start();
    try {
      await readAll<BehaviorEvent>(ctx, ctx.topics.customerClicks, 1);
      // Partitions with nothing new are quiet, not stalled: more than twice the bound without traffic.
      await sleep(7_000);
      expect(failures).toEqual([]);
      const topic = ctx.topics.clicksRaw.name;
      const partition = (await ctx.admin.fetchTopicOffsets(topic)).find((p) => p.high === '1')?.partition;
      expect(partition).toBeDefined();
      // What a stalled fetch looks like from the resolver: its consumer no longer fetches that partition (paused here
      // behind its back), while a record waits on the broker.
      (instance as unknown as { consumer: Consumer }).consumer.pause([{ topic, partitions: [partition!] }]);
      await publishEvents(ctx, [clickOf({ eventId: 'stall-2', platformCustomerId: 'stall' })]);
      await waitFor(
        async () => Promise.resolve(failures.length),
        (n) => n > 0,
        { what: 'the resolver giving up on the stalled partition', timeoutMs: 30_000 },
      );
      expect(failures).toHaveLength(1);
      expect(failures[0]?.kind).toBe('stalled-batch');
      expect(failures[0]?.reason).toContain(`${topic}:${partition} (delivered up to 1, high watermark 2)`);
      expect(instance.failure?.reason).toContain('its fetching has stalled');
    } finally {
      await instance.stop();
    }
  }, 120_000);

  it('gives up, saying why, when Redis takes a round of its requests and never answers', async () => {
    // A step may run 3 s here (outages ridden out for 1 s, below it); this instance reaches Redis through the proxy.
    const ctx = await context({ PROCESSOR_STEP_MAX_MS: '3000', PROCESSOR_OUTAGE_MAX_MS: '1000' });
    const target = new URL(endpointsRedis);
    const proxy = await startTcpProxy(target.hostname, Number(target.port));
    const failures: FatalFailure[] = [];
    const { instance } = resolver(ctx, 'identity-resolver', {
      onFatal: (f) => failures.push(f),
      redisUrl: `redis://127.0.0.1:${proxy.port}`,
    });
    await publishEvents(ctx, [clickOf({ eventId: 'frozen-1', platformCustomerId: 'frozen-1' })]);
    await instance.start();
    try {
      await readAll<BehaviorEvent>(ctx, ctx.topics.customerClicks, 1);
      expect(failures).toEqual([]);
      // Redis (as this instance reaches it) now takes requests and never answers: the next round waits for ever.
      proxy.setFrozen(true);
      await publishEvents(ctx, [clickOf({ eventId: 'frozen-2', platformCustomerId: 'frozen-2' })]);
      await waitFor(
        async () => Promise.resolve(failures.length),
        (n) => n > 0,
        { what: 'the resolver giving up on its stuck round', timeoutMs: 30_000 },
      );
      expect(failures).toHaveLength(1);
      expect(failures[0]?.kind).toBe('stuck-step');
      expect(failures[0]?.reason).toMatch(/^a resolver round has run for \d+ s without ending/);
    } finally {
      await proxy.close(); // the stuck requests fail now, and the instance can stop
      await instance.stop();
    }
  }, 120_000);

  it('the entrypoint exits with a non-zero code, saying why, when a batch fails on every attempt', async () => {
    const ctx = await context();
    const client = new Redis(endpointsRedis);
    redis.push(client);
    // Corrupt state: the graph's identity → cluster hash replaced by a string. Every read of it answers WRONGTYPE, on
    // every retry and every restart: a deterministic failure that used to be retried forever. (Not the record hash:
    // the startup check of the graph's personal-data format reads that one, and would stop the process before any batch.)
    const base = `${ctx.config.TOPIC_PREFIX}idg:v1:{${ctx.config.TOPIC_PREFIX}idg}`;
    await client.set(`${base}:idc`, 'not a hash');
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    await producer.sendBehavior(sampleBehavior({ eventId: 'stuck-1', platformCustomerId: 'stuck' }));
    await producer.disconnect();

    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', 'processors/identity/main.ts'], {
      env: { ...process.env, ...envOf(ctx), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL'); // still running: the stall this test is about
      }, 150_000);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
    expect(exit).toEqual({ code: 1, signal: null });
    const lines = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const fatal = lines.find((l) => l['msg'] === 'processor cannot make progress');
    expect(fatal?.['kind']).toBe('stalled-batch');
    expect(String(fatal?.['reason'])).toMatch(/clicks\.raw\.v1\/\d+@0 failed \d+ times over \d+ s: .*WRONGTYPE/);
    expect(lines.some((l) => l['msg'] === 'exiting: the processor cannot make progress')).toBe(true);
    expect(await committed(ctx)).toBe(0); // the record was never skipped
    expect(Date.now() - started).toBeLessThan(120_000); // 30 s of failures at least, then a bounded shutdown
  }, 200_000);

  it('survives a crash mid-stream and two concurrent instances: same clustering as one uninterrupted instance', async () => {
    // Every click too: a stream long enough (~14k events) that the kill below always lands mid-stream.
    const sample = generateSample({ seed: 11, customers: 200, targetTransactions: 500, salt: 'identity-test-salt' });
    const identityEvents = sample.behaviors;
    const keys = [...new Set(sample.groundTruth.map((g) => `${g.platform}:${g.platformCustomerId}`))];
    let killedAt = 0;
    const run = async (mode: 'single' | 'crash' | 'concurrent') => {
      // Rounds of 1,000 records (the kill lands after the first commit, mid-stream), and the new identities of a round
      // registered and judged in scripts of 150 (several per round: the parts must add up to what one round makes).
      const ctx = await context({ IDENTITY_ROUND_MAX_RECORDS: '1000', IDENTITY_SCRIPT_MAX_IDENTITIES: '150' });
      const publish = async () => {
        const producer = await PlatformProducer.connect(ctx.config, {
          kafka: ctx.kafka,
          serde: ctx.serde,
          topics: ctx.topics,
        });
        await producer.publishAll([
          ...sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
          ...identityEvents.map((event) => ({ kind: 'behavior' as const, event })),
        ]);
        await producer.disconnect();
      };
      const first = resolver(ctx);
      const second = resolver(ctx);
      if (mode === 'concurrent') {
        // Both join before anything is published, so each owns partitions while records flow.
        await Promise.all([first.instance.start(), second.instance.start()]);
        await waitFor(
          async () =>
            (await ctx.admin.describeGroups([`${ctx.config.TOPIC_PREFIX}identity-resolver`])).groups[0]?.members
              .length ?? 0,
          (n) => n === 2,
          { what: 'two members in the group' },
        );
      }
      await publish();
      const total = sample.transactions.length + identityEvents.length;
      if (mode === 'crash') {
        // The real entrypoint in its own process, killed with SIGKILL right after its first commit: no shutdown hook runs.
        const child = spawn(process.execPath, ['--import', 'tsx', 'processors/identity/main.ts'], {
          env: { ...process.env, ...envOf(ctx), LOG_LEVEL: 'error' },
          stdio: 'ignore',
        });
        await waitFor(
          () => committed(ctx),
          (n) => n > 0,
          { what: 'a first commit', timeoutMs: 120_000, intervalMs: 20 },
        );
        // Listen before killing: an 'exit' that fires before the listener is attached would never be seen.
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
        killedAt = await committed(ctx);
      }
      if (mode !== 'concurrent') await first.instance.start();
      if (mode === 'crash') {
        await waitFor(
          () => committed(ctx),
          (n) => n >= total,
          { what: 'all offsets committed after the restart' },
        );
      } else if (mode === 'concurrent') {
        await waitFor(
          () => committed(ctx),
          (n) => n >= total,
          { what: 'all offsets committed by two instances' },
        );
        expect(first.instance.processedCount).toBeGreaterThan(0);
        expect(second.instance.processedCount).toBeGreaterThan(0);
        await second.instance.stop();
      } else {
        await waitFor(
          () => committed(ctx),
          (n) => n >= total,
          { what: 'all offsets committed' },
        );
      }
      await first.instance.stop();
      const pending = await first.graph.pendingMerges(10);
      expect(pending).toEqual([]); // every merge was published
      return canonical(await first.graph.globalIdOf(keys));
    };
    const single = await run('single');
    expect(await run('crash')).toEqual(single);
    const total = sample.transactions.length + identityEvents.length;
    expect(killedAt).toBeGreaterThan(0);
    expect(killedAt).toBeLessThan(total); // the kill really landed mid-stream
    expect(await run('concurrent')).toEqual(single);
  }, 360_000); // three full runs of ~14k events, one of them a crash and restart
});

/** Offsets the resolver group has committed on the raw topics. */
async function committed(ctx: TestContext): Promise<number> {
  const groupId = `${ctx.config.TOPIC_PREFIX}identity-resolver`; // the entrypoint's default group
  const offsets = await ctx.admin.fetchOffsets({
    groupId,
    topics: [ctx.topics.transactionsRaw.name, ctx.topics.clicksRaw.name],
  });
  return offsets.flatMap((t) => t.partitions).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}
