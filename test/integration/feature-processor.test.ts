// The feature processor on real Kafka, registry and Redis: a merged customer's features equal those of one customer
// that received every event under one id (also with two instances, merges crossing partitions and owners); a SIGKILL
// mid-stream followed by a full redelivery leaves every customer's features exactly as one clean pass computes them;
// an instance that lost its partitions cannot overwrite the new owner; unreadable records are dead-lettered.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { Partitioners, type Consumer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_CUT_POINTS, DAY_MS, HOUR_MS } from '../../processors/features/definitions.js';
import {
  clickEvent,
  currentFeatures,
  foldEvents,
  hashFields,
  transactionEvent,
} from '../../processors/features/logic.js';
import { FeatureApp } from '../../processors/features/app.js';
import { groupLag } from '../../processors/pipeline.js';
import { emptyState, type FeatureState } from '../../processors/features/state.js';
import { decodeState, encodeState, FeatureStore } from '../../processors/features/store.js';
import { generateSample } from '../../processors/producers/generate.js';
import { SOURCE_HEADER } from '../../processors/runtime/headers.js';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics, type ProcessorMetrics } from '../../processors/runtime/metrics.js';
import type { BehaviorEvent, IdentityMerge, Transaction } from '../../schemas/generated/types.js';
import type { TopicSpec } from '../../topics/catalog.js';
import { createTestContext, envOf, waitFor, type TestContext } from '../helpers/context.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { sampleBehavior, sampleTransaction, T0 } from '../fixtures/events.js';

const contexts: TestContext[] = [];
const clients: Redis[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(contexts.map((c) => c.close()));
});

async function context(env: Record<string, string> = {}): Promise<TestContext> {
  const ctx = await createTestContext({ topics: true, env: { KAFKA_SESSION_TIMEOUT_MS: '8000', ...env } });
  contexts.push(ctx);
  return ctx;
}

function store(ctx: TestContext): FeatureStore {
  const redis = new Redis(ctx.config.REDIS_URL);
  clients.push(redis);
  return new FeatureStore(redis, {
    prefix: ctx.config.TOPIC_PREFIX,
    stateTtlSeconds: ctx.config.FEATURES_STATE_TTL_SECONDS,
    featuresTtlSeconds: ctx.config.FEATURES_TTL_SECONDS,
    scoresTtlSeconds: ctx.config.SCORES_TTL_SECONDS,
  });
}

/** The processor as every entrypoint builds it (features only: these tests need no model). */
function processor(
  ctx: TestContext,
  metrics: ProcessorMetrics = createMetrics(),
  onFatal?: (error: Error) => void,
): FeatureApp {
  return new FeatureApp({
    config: ctx.config,
    kafka: ctx.kafka,
    serde: ctx.serde,
    topics: ctx.topics,
    log: createLogger('warn', { test: 'features' }),
    metrics,
    scoring: false,
    ...(onFatal ? { onFatal } : {}),
  });
}

type Resolved = { kind: 'tx'; key: string; value: Transaction } | { kind: 'click'; key: string; value: BehaviorEvent };

async function publish(ctx: TestContext, records: readonly Resolved[], merges: readonly IdentityMerge[] = []) {
  const producer = createIdempotentProducer(ctx.kafka);
  await producer.connect();
  const encode = async (spec: TopicSpec, key: string, value: unknown) => ({
    key,
    value: await ctx.serde.encode(spec, value),
  });
  const { customerTransactions: txTopic, customerClicks: clickTopic, identityMerges } = ctx.topics;
  const txs = records.filter((r) => r.kind === 'tx');
  const clicks = records.filter((r) => r.kind === 'click');
  for (let i = 0; i < Math.max(txs.length, clicks.length); i += 2_000) {
    await producer.sendBatch({
      acks: -1,
      topicMessages: [
        {
          topic: txTopic.name,
          messages: await Promise.all(txs.slice(i, i + 2_000).map((r) => encode(txTopic, r.key, r.value))),
        },
        {
          topic: clickTopic.name,
          messages: await Promise.all(clicks.slice(i, i + 2_000).map((r) => encode(clickTopic, r.key, r.value))),
        },
      ],
    });
  }
  if (merges.length > 0) {
    await producer.send({
      topic: identityMerges.name,
      acks: -1,
      messages: await Promise.all(merges.map((m) => encode(identityMerges, m.mergedId, m))),
    });
  }
  await producer.disconnect();
}

/** Offsets the feature processor's group has committed on its inputs. */
async function committed(ctx: TestContext): Promise<number> {
  const offsets = await ctx.admin.fetchOffsets({
    groupId: `${ctx.config.TOPIC_PREFIX}feature-processor`,
    topics: [
      ctx.topics.customerTransactions.name,
      ctx.topics.customerClicks.name,
      ctx.topics.identityMerges.name,
      ctx.topics.featureHandoff.name,
    ],
  });
  return offsets.flatMap((t) => t.partitions).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}

/** Waits until the processor's group has read and committed everything on its inputs, hand-offs included. */
async function settled(ctx: TestContext): Promise<void> {
  const { customerTransactions, customerClicks, identityMerges, featureHandoff } = ctx.topics;
  const group = `${ctx.config.TOPIC_PREFIX}feature-processor`;
  const specs = [customerTransactions, customerClicks, identityMerges, featureHandoff];
  let zeros = 0; // hand-offs are produced by the processor itself: lag 0 twice in a row, half a second apart
  await waitFor(
    async () => {
      zeros = (await groupLag(ctx.admin, group, specs)) === 0 ? zeros + 1 : 0;
      return zeros;
    },
    (n) => n >= 2,
    { what: 'the feature processor to catch up', timeoutMs: 120_000, intervalMs: 500 },
  );
}

/** The generated sample's transactions and clicks as the resolver would publish them, keyed by a global id each. */
function sampleRecords(seed: number, customers: number, targetTransactions: number): Resolved[] {
  const sample = generateSample({ seed, customers, targetTransactions, salt: 'feature-test-salt' });
  const gid = (e: Transaction | BehaviorEvent) => `g-${e.platform}-${e.platformCustomerId ?? 'anon'}`;
  return [
    ...sample.transactions.map((value) => ({ kind: 'tx' as const, key: gid(value), value })),
    ...sample.behaviors.map((value) => ({ kind: 'click' as const, key: gid(value), value })),
  ];
}

/** A hash without the fields that depend on when and how often it was written. */
function stable(hash: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(hash).filter(([k]) => k !== 'updated_at_ms' && k !== 'state_version'));
}

function merge(survivorId: string, mergedId: string, eventTimeMs: number): IdentityMerge {
  return {
    eventId: `merge-${survivorId}-${mergedId}`,
    eventTimeMs,
    survivorId,
    mergedId,
    method: 'EMAIL_HASH',
    confidence: 1,
    matchWeight: null,
    sourceEventId: 'e-source',
  };
}

/** Forty clicks and purchases of one person over about 60 days, across every window edge. */
function personHistory(): Resolved[] {
  const history: Resolved[] = [];
  for (let i = 0; i < 40; i++) {
    const t = T0 + i * 37 * HOUR_MS;
    if (i % 4 === 0) {
      const value = sampleTransaction({ eventTimeMs: t, sessionId: `s-${Math.floor(i / 3)}` });
      history.push({ kind: 'tx', key: '', value });
    } else {
      const type = (['VIEW', 'SEARCH', 'ADD_TO_CART'] as const)[i % 3]!;
      const value = sampleBehavior({ eventTimeMs: t, type, sessionId: `s-${Math.floor(i / 3)}`, category: 'books' });
      history.push({ kind: 'click', key: '', value });
    }
  }
  return history;
}

/** The partition the producers' murmur2 partitioner picks for a key among `count`. */
function partitioner(count: number): (key: string) => number {
  const pick = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: count }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  return (key) => pick({ topic: 't', partitionMetadata, message: { key, value: null } });
}

describe('feature processor', () => {
  it('merges customers exactly: the survivor equals a customer that received every event under one id', async () => {
    const ctx = await context();
    const history = personHistory();
    // Person A/B: events first under two ids, then the merge, then in-flight events still under the merged-away id.
    const split = history.map((r, i) => ({ ...r, key: i < 15 ? 'c-A' : i < 30 ? 'c-B' : i % 2 ? 'c-B' : 'c-A' }));
    const control = history.map((r) => ({ ...r, key: 'c-ONE' }));
    await publish(ctx, split.slice(0, 30));
    await publish(ctx, [...split.slice(30), ...control], [merge('c-A', 'c-B', T0 + 30 * 37 * HOUR_MS)]);
    const instance = processor(ctx);
    await instance.start();
    try {
      await settled(ctx);
      const features = store(ctx);
      const single = await features.readFeatures('c-ONE');
      expect(Number(single['frequency_90d'])).toBeGreaterThan(0);
      expect(stable(await features.readFeatures('c-A'))).toEqual(stable(single));
      expect(await features.readFeatures('c-B')).toEqual({ merged_into: 'c-A' });
      expect((await features.load('c-B')).id).toBe('c-A'); // the state of c-B now lives under c-A
    } finally {
      await instance.stop();
    }
  });

  it('merges exactly across partitions and instances: two owners hand state and in-flight events through Kafka', async () => {
    const ctx = await context({ KAFKA_PARTITIONS: '4' });
    const history = personHistory();
    const pairs = Array.from({ length: 12 }, (_, i) => ({ a: `p${i}-A`, b: `p${i}-B`, one: `p${i}-ONE` }));
    const partitionOf = partitioner(4);
    expect(pairs.filter((p) => partitionOf(p.a) !== partitionOf(p.b)).length).toBeGreaterThan(4);
    const before: Resolved[] = [];
    const after: Resolved[] = [];
    const merges: IdentityMerge[] = [];
    for (const { a, b, one } of pairs) {
      history.forEach((r, i) => {
        const key = i < 15 ? a : i < 30 ? b : i % 2 ? b : a;
        (i < 30 ? before : after).push({ ...r, key });
        after.push({ ...r, key: one });
      });
      merges.push(merge(a, b, T0 + 30 * 37 * HOUR_MS));
    }
    await publish(ctx, before);
    const first = processor(ctx);
    const second = processor(ctx);
    await first.start();
    await second.start();
    try {
      // Both instances own partitions before the merges and the rest arrive.
      await waitFor(
        () => Promise.resolve([first.processor.ownedPartitions.length, second.processor.ownedPartitions.length]),
        ([x, y]) => x === 2 && y === 2,
        { what: 'two partitions per instance' },
      );
      await publish(ctx, after, merges);
      await settled(ctx);
      const features = store(ctx);
      for (const { a, b, one } of pairs) {
        const single = await features.readFeatures(one);
        expect(Number(single['frequency_90d'])).toBeGreaterThan(0);
        expect(stable(await features.readFeatures(a)), a).toEqual(stable(single));
        expect(await features.readFeatures(b)).toEqual({ merged_into: a });
      }
    } finally {
      await first.stop();
      await second.stop();
    }
  }, 300_000); // above its two waits (60 s + 120 s), so a slow machine fails with what it was waiting for

  it('fences an instance that lost its partition: its writes are refused once the new owner claimed it', async () => {
    const ctx = await context();
    const s = store(ctx);
    const oldEpoch = await s.claimEpoch(0);
    const newEpoch = await s.claimEpoch(0);
    const write = (epoch: number, value: string) =>
      s.flush(
        [
          {
            kind: 'write',
            id: 'c-Z',
            epoch,
            version: 1,
            checkpoint: encodeState(emptyState()),
            absorbed: [],
            hash: ['top_category', value],
            replaceHash: true,
            deleteFields: [],
            score: [],
          },
        ],
        { scored: new Map(), unscored: new Map(), forget: new Map() },
      );
    expect((await write(newEpoch, 'new')).fenced).toEqual([]);
    expect((await write(oldEpoch, 'stale')).fenced).toEqual(['c-Z']);
    expect((await s.readFeatures('c-Z'))['top_category']).toBe('new');
  });

  it('restores a checkpoint written as JSON (before the binary encoding) and folds on from it exactly', async () => {
    const ctx = await context();
    const history = personHistory();
    const keyed = (key: string, from: number, to: number) => history.slice(from, to).map((r) => ({ ...r, key }));
    await publish(ctx, [...keyed('c-J', 0, 20), ...keyed('c-ONE', 0, 20)]);
    const first = processor(ctx);
    await first.start();
    try {
      await settled(ctx);
    } finally {
      await first.stop(); // checkpoints everything and commits
    }
    // As the previous code wrote it: the same state, as JSON text.
    const redis = new Redis(ctx.config.REDIS_URL);
    clients.push(redis);
    const features = store(ctx);
    const binary = await redis.hgetBuffer(features.stateKey('c-J'), 's');
    expect(binary?.[0]).not.toBe('{'.charCodeAt(0));
    const state = decodeState(binary as Buffer);
    await redis.hset(features.stateKey('c-J'), 's', JSON.stringify(state));
    expect((await features.fetch(['c-J'])).get('c-J')?.state).toEqual(state);

    await publish(ctx, [...keyed('c-J', 20, 40), ...keyed('c-ONE', 20, 40)]);
    const second = processor(ctx);
    await second.start();
    try {
      await settled(ctx);
      const single = await features.readFeatures('c-ONE');
      expect(Number(single['frequency_90d'])).toBeGreaterThan(0);
      expect(stable(await features.readFeatures('c-J'))).toEqual(stable(single));
    } finally {
      await second.stop();
    }
    const [restored, clean] = ['c-J', 'c-ONE'].map((id) => redis.hgetBuffer(features.stateKey(id), 's'));
    expect((await restored)?.[0]).not.toBe('{'.charCodeAt(0)); // written back binary
    const normalize = (s: FeatureState) => JSON.parse(JSON.stringify({ ...s, wm: {}, lt: {} })) as unknown;
    expect(normalize(decodeState((await restored) as Buffer))).toEqual(normalize(decodeState((await clean) as Buffer)));
  });

  it('after a SIGKILL mid-stream and a full redelivery, every customer is exactly as one clean pass makes it', async () => {
    const ctx = await context();
    const records = sampleRecords(5, 150, 400);
    await publish(ctx, records);
    // The real entrypoint in its own process, killed right after its first commit: no shutdown hook runs. Small
    // flushes, each a checkpoint, so commits come early and often.
    const child = spawn(process.execPath, ['--import', 'tsx', 'processors/features/main.ts'], {
      env: {
        ...process.env,
        ...envOf(ctx),
        LOG_LEVEL: 'error',
        FEATURES_CHECKPOINT_MS: '0',
        FEATURES_FLUSH_MAX_RECORDS: '200',
      },
      stdio: 'ignore',
    });
    await waitFor(
      () => committed(ctx),
      (n) => n > 0,
      { what: 'a first commit', timeoutMs: 120_000, intervalMs: 20 },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const killedAt = await committed(ctx);
    expect(killedAt).toBeLessThan(records.length); // the kill landed mid-stream
    // Redeliver everything the dead instance touched: rewind the group to the start, as a lost commit would. The
    // broker must first notice the dead member (session timeout) before offsets may be reset.
    const groupId = `${ctx.config.TOPIC_PREFIX}feature-processor`;
    await waitFor(
      async () => (await ctx.admin.describeGroups([groupId])).groups[0]?.state,
      (state) => state === 'Empty',
      { what: 'the dead member to leave the group', timeoutMs: 60_000 },
    );
    for (const topic of [ctx.topics.customerTransactions.name, ctx.topics.customerClicks.name]) {
      await ctx.admin.resetOffsets({ groupId, topic, earliest: true });
    }
    const metrics = createMetrics();
    const instance = processor(ctx, metrics);
    await instance.start();
    try {
      await waitFor(
        () => committed(ctx),
        (n) => n >= records.length,
        { what: 'every record committed', timeoutMs: 120_000 },
      );
      const duplicates = await metrics.registry.getSingleMetricAsString('features_events_total');
      expect(duplicates).toMatch(/outcome="duplicate"} [1-9]/); // the redelivery really repeated applied records
      // The reference: one clean pass of the same pure code over each customer's records in partition order.
      const states = new Map<string, FeatureState>();
      const grace = ctx.config.FEATURES_LATE_GRACE_MS;
      for (const [i, r] of records.entries()) {
        const state = states.get(r.key) ?? emptyState();
        const event = r.kind === 'tx' ? transactionEvent(r.value) : clickEvent(r.value);
        foldEvents(state, [{ event, source: r.kind, offset: i, stream: `${r.kind}|${r.key}` }], grace);
        states.set(r.key, state);
      }
      const features = store(ctx);
      let compared = 0;
      for (const [key, state] of states) {
        const expected = currentFeatures(state, DEFAULT_CUT_POINTS);
        if (!expected) continue;
        const fields = hashFields(expected, 0, 0);
        const want = Object.fromEntries(
          Array.from({ length: fields.length / 2 }, (_, i): [string, string] => [fields[2 * i]!, fields[2 * i + 1]!]),
        );
        expect(stable(await features.readFeatures(key)), key).toEqual(stable(want));
        compared++;
      }
      expect(compared).toBe(states.size);
      expect(compared).toBeGreaterThan(100);
    } finally {
      await instance.stop();
    }
  }, 240_000);

  it('gives up, saying why, when its consumer stops fetching a partition the broker holds records of', async () => {
    const ctx = await context({ PROCESSOR_FETCH_STALL_MS: '3000' });
    const spec = ctx.topics.customerClicks;
    const send = async (event: BehaviorEvent) => {
      const producer = createIdempotentProducer(ctx.kafka);
      await producer.connect();
      await producer.send({
        topic: spec.name,
        messages: [{ key: 'c-STALL', value: await ctx.serde.encode(spec, event) }],
      });
      await producer.disconnect();
    };
    await send(sampleBehavior({ eventTimeMs: T0 + DAY_MS, type: 'VIEW' }));
    const failures: Error[] = [];
    const instance = processor(ctx, createMetrics(), (error) => failures.push(error));
    await instance.start();
    try {
      await settled(ctx);
      // Partitions with nothing new are quiet, not stalled: more than twice the bound without traffic.
      await sleep(7_000);
      expect(failures).toEqual([]);
      const partition = (await ctx.admin.fetchTopicOffsets(spec.name)).find((p) => p.high === '1')?.partition;
      expect(partition).toBeDefined();
      // What a stalled fetch looks like from the processor: its consumer no longer fetches that partition (paused
      // here behind its back), while a record waits on the broker.
      const { consumer } = instance.processor as unknown as { consumer: Consumer };
      consumer.pause([{ topic: spec.name, partitions: [partition!] }]);
      await send(sampleBehavior({ eventTimeMs: T0 + DAY_MS + 60_000, type: 'VIEW' }));
      await waitFor(
        async () => Promise.resolve(failures.length),
        (n) => n > 0,
        { what: 'the feature processor giving up on the stalled partition', timeoutMs: 30_000 },
      );
      expect(failures[0]?.message).toContain(`${spec.name}:${partition} (delivered up to 1, high watermark 2)`);
      expect(failures[0]?.message).toContain('its fetching has stalled');
    } finally {
      await instance.stop();
    }
  }, 120_000);

  it('gives up, saying why, when Redis takes its flush and never answers', async () => {
    const ctx = await context();
    const redis = new URL(ctx.config.REDIS_URL);
    const proxy = await startTcpProxy(redis.hostname, Number(redis.port));
    // This instance reaches Redis through the proxy; a step may run 3 s (outages ridden out for 1 s, below it).
    const config = {
      ...ctx.config,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      PROCESSOR_STEP_MAX_MS: 3_000,
      PROCESSOR_OUTAGE_MAX_MS: 1_000,
    };
    const failures: Error[] = [];
    const metrics = createMetrics();
    const instance = new FeatureApp({
      config,
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
      log: createLogger('error', { test: 'features' }),
      metrics,
      scoring: false,
      onFatal: (error) => failures.push(error),
    });
    const click = (minute: number): Resolved => ({
      kind: 'click',
      key: 'c-FROZEN',
      value: sampleBehavior({ eventTimeMs: T0 + minute * 60_000, type: 'VIEW' }),
    });
    const features = store(ctx);
    try {
      await publish(ctx, [click(0)]);
      await instance.start();
      await waitFor(
        () => features.readFeatures('c-FROZEN'),
        (f) => f['views_7d'] === '1',
        { what: 'the first click flushed through the proxy' },
      );
      expect(failures).toEqual([]);
      // Redis (as this instance reaches it) now takes requests and never answers: the next flush waits for ever.
      proxy.setFrozen(true);
      await publish(ctx, [click(1)]);
      await waitFor(
        async () => Promise.resolve(failures.length),
        (n) => n > 0,
        { what: 'the feature processor giving up on its stuck flush', timeoutMs: 30_000 },
      );
      expect(failures[0]?.message).toMatch(/^a flush has run for \d+ s without ending \(PROCESSOR_STEP_MAX_MS 3 s\)/);
      const fatal = (await metrics.registry.getSingleMetric('processor_fatal_total')?.get())?.values ?? [];
      expect(fatal).toContainEqual(
        expect.objectContaining({ labels: { processor: 'feature-processor', kind: 'stuck-step' } }),
      );
      // Nothing of the second click was written: the customer is as the first flush left it.
      expect((await features.readFeatures('c-FROZEN'))['views_7d']).toBe('1');
    } finally {
      await proxy.close(); // the stuck requests fail now, and the instance can stop
      await instance.stop();
    }
  }, 120_000);

  it('the entrypoint exits 1, saying why, when Redis never answers while it starts', async () => {
    const ctx = await context();
    const redis = new URL(ctx.config.REDIS_URL);
    const proxy = await startTcpProxy(redis.hostname, Number(redis.port));
    proxy.setFrozen(true); // connections are taken, nothing is ever answered
    let child: ReturnType<typeof spawn> | undefined;
    try {
      child = spawn(process.execPath, ['--import', 'tsx', 'processors/features/main.ts'], {
        env: {
          ...process.env,
          ...envOf(ctx),
          REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
          PROCESSOR_STEP_MAX_MS: '3000',
          PROCESSOR_OUTAGE_MAX_MS: '1000',
          LOG_LEVEL: 'error',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const started = child;
      const exited = new Promise<number | null>((resolve) => started.on('exit', resolve));
      const code = await Promise.race([exited, sleep(40_000).then(() => 'still running after 40 s')]);
      expect(code).toBe(1);
      expect(stderr).toContain('cannot start');
      expect(stderr).toContain('the start has run for 3 s without ending (PROCESSOR_STEP_MAX_MS)');
    } finally {
      if (child?.exitCode === null) child.kill('SIGKILL');
      await proxy.close();
    }
  }, 60_000);

  it('checkpoints before the interval once unsaved states reach half the cache, and commits their offsets', async () => {
    // Ten minutes between checkpoints, twenty customers of cache: only the cache bound can make the commit come.
    const ctx = await context({ FEATURES_CHECKPOINT_MS: '600000', FEATURES_CACHE_SIZE: '20' });
    const records = sampleRecords(7, 120, 300);
    await publish(ctx, records);
    const instance = processor(ctx);
    await instance.start();
    try {
      await waitFor(
        () => committed(ctx),
        (n) => n > 0,
        { what: 'a commit well before the ten-minute interval', timeoutMs: 60_000 },
      );
      // The commit came with a checkpoint: states are in Redis, not only the served hashes.
      const saved = await store(ctx).fetch([...new Set(records.map((r) => r.key))]);
      expect([...saved.values()].filter((c) => c.state !== null).length).toBeGreaterThanOrEqual(10);
    } finally {
      await instance.stop();
    }
  });

  it('reports served positions as flushes write them, long before a checkpoint commits them', async () => {
    const ctx = await context({ FEATURES_CHECKPOINT_MS: '600000' });
    const records = sampleRecords(8, 60, 150);
    await publish(ctx, records);
    const ends = new Map<string, number>();
    for (const spec of [ctx.topics.customerTransactions, ctx.topics.customerClicks]) {
      for (const p of await ctx.admin.fetchTopicOffsets(spec.name)) {
        if (Number(p.high) > 0) ends.set(`${spec.name}:${p.partition}`, Number(p.high));
      }
    }
    const instance = processor(ctx);
    await instance.start();
    try {
      const served = () => new Map([...instance.processor.servedPositions()].map(([tp, o]) => [tp, Number(o)]));
      await waitFor(
        () => Promise.resolve(served()),
        (now) => [...ends].every(([tp, end]) => now.get(tp) === end),
        { what: 'every partition served to its end', timeoutMs: 60_000 },
      );
      expect(await committed(ctx)).toBe(0); // served, not yet checkpointed
      expect(
        Number(
          await store(ctx)
            .readFeatures(records[0]!.key)
            .then((h) => h['state_version']),
        ),
      ).toBeGreaterThan(0);
    } finally {
      await instance.stop();
    }
  });

  it('applies a resolved event the resolver published twice (same raw source, new offsets) once', async () => {
    const ctx = await context();
    const spec = ctx.topics.customerClicks;
    const first = sampleBehavior({ eventTimeMs: T0 + DAY_MS, type: 'VIEW' });
    const second = sampleBehavior({ eventTimeMs: T0 + DAY_MS + 60_000, type: 'VIEW' });
    const at = (offset: number) => ({ [SOURCE_HEADER]: `${ctx.config.TOPIC_PREFIX}clicks.raw.v1:0:${offset}` });
    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    // The resolver's batch [first, second] and, after a crash before its commit, the same batch once more.
    for (let copy = 0; copy < 2; copy++) {
      await producer.send({
        topic: spec.name,
        messages: [
          { key: 'c-DUP', value: await ctx.serde.encode(spec, first), headers: at(7) },
          { key: 'c-DUP', value: await ctx.serde.encode(spec, second), headers: at(8) },
        ],
      });
    }
    await producer.disconnect();
    const metrics = createMetrics();
    const instance = processor(ctx, metrics);
    await instance.start();
    try {
      await settled(ctx);
      expect((await store(ctx).readFeatures('c-DUP'))['views_7d']).toBe('2');
      const events = await metrics.registry.getSingleMetricAsString('features_events_total');
      expect(events).toMatch(/outcome="duplicate"} 2/);
    } finally {
      await instance.stop();
    }
  });

  it('dead-letters a record it cannot read and one without a customer key, and goes on', async () => {
    const ctx = await context();
    const good = sampleBehavior({ eventTimeMs: T0 + DAY_MS });
    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    await producer.send({
      topic: ctx.topics.customerClicks.name,
      messages: [
        { key: 'c-X', value: Buffer.from('not avro') },
        { key: null, value: await ctx.serde.encode(ctx.topics.customerClicks, good) },
        { key: 'c-Y', value: await ctx.serde.encode(ctx.topics.customerClicks, good) },
      ],
    });
    await producer.disconnect();
    const instance = processor(ctx);
    await instance.start();
    try {
      await waitFor(
        () => committed(ctx),
        (n) => n >= 3,
        { what: 'three records committed' },
      );
      const dlq = await ctx.admin.fetchTopicOffsets(`${ctx.topics.customerClicks.name}.dlq`);
      expect(dlq.reduce((n, p) => n + Number(p.high), 0)).toBe(2);
      expect((await store(ctx).readFeatures('c-Y'))['views_1h']).toBeDefined();
    } finally {
      await instance.stop();
    }
  });
});
