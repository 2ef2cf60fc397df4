// The warehouse sink end to end on real Kafka, registry and ClickHouse: platform events in, star-schema rows out;
// idempotent under replay; bad input dead-lettered with its reason while good input flows; a ClickHouse outage retried.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, KafkaMessage } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runNamedQuery, listNamedQueries } from '../../clickhouse/queries.js';
import { groupLag } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import type { FatalFailure } from '../../processors/runtime/liveness.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import { WarehouseSink } from '../../processors/warehouse-sink/processor.js';
import type { DeadLetter, IdentityLink, IdentityMerge } from '../../schemas/generated/types.js';
import { transactionKey } from '../../schemas/rules.js';
import { createTestContext, publishEvents, startWarehouseSink, waitFor, type TestContext } from '../helpers/context.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { sampleBehavior, sampleTransaction } from '../fixtures/events.js';

let ctx: TestContext;
const sinks: WarehouseSink[] = [];
beforeAll(async () => {
  ctx = await createTestContext({ topics: true, warehouse: true, env: { SINK_MAX_WAIT_MS: '200' } });
});
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  await ctx?.close(); // undefined when beforeAll failed: report that error, not this one
});

async function startSink(overrides: { clickhouseUrl?: string; groupId?: string; context?: TestContext } = {}) {
  const c = overrides.context ?? ctx;
  const started = await startWarehouseSink(c, {
    ...(overrides.clickhouseUrl
      ? { config: loadConfig({ ...flatten(c.config), CLICKHOUSE_URL: overrides.clickhouseUrl }) }
      : {}),
    groupId: overrides.groupId ?? `${c.config.TOPIC_PREFIX}sink-${sinks.length}`,
  });
  sinks.push(started.sink);
  return started;
}

/** Back from a frozen Config to env strings, to change one endpoint. */
function flatten(config: TestContext['config']): Record<string, string> {
  return {
    KAFKA_BROKERS: config.KAFKA_BROKERS.join(','),
    SCHEMA_REGISTRY_URL: config.SCHEMA_REGISTRY_URL,
    REDIS_URL: config.REDIS_URL,
    CLICKHOUSE_URL: config.CLICKHOUSE_URL,
    CLICKHOUSE_DATABASE: config.CLICKHOUSE_DATABASE,
    TOPIC_PREFIX: config.TOPIC_PREFIX,
    SINK_MAX_WAIT_MS: String(config.SINK_MAX_WAIT_MS),
    LOG_LEVEL: config.LOG_LEVEL,
  };
}

async function count(sql: string, c: TestContext = ctx): Promise<number> {
  const rs = await c.clickhouse.query({ query: sql, format: 'JSONEachRow' });
  const rows = await rs.json<{ n: string | number }>();
  return Number(rows[0]?.n ?? 0);
}

async function allNamedQueryResults(): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const q of listNamedQueries()) results[q.name] = await runNamedQuery(ctx.clickhouse, q.name);
  return results;
}

async function readDeadLetters(topic: string, expected: number): Promise<DeadLetter[]> {
  const consumer = ctx.kafka.consumer({ groupId: `${ctx.config.TOPIC_PREFIX}dlq-reader-${Date.now()}` });
  const found: DeadLetter[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }: { message: KafkaMessage }) => {
      found.push(
        await ctx.serde.decode<DeadLetter>(
          ctx.topics.all.find((t) => t.name === topic)!,
          message.value,
        ),
      );
    },
  });
  await waitFor(
    async () => Promise.resolve(found.length),
    (n) => n >= expected,
    { what: `${expected} dead letters` },
  );
  await consumer.disconnect();
  return found;
}

describe('warehouse sink', () => {
  it('lands generated platform events in the star schema, and a full replay changes no query result', async () => {
    const sample = generateSample({ seed: 7, customers: 60, targetTransactions: 150, salt: 'test-salt-123' });
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
    });
    const publishAll = async () => {
      await Promise.all([
        ...sample.transactions.map((t) => producer.sendTransaction(t)),
        ...sample.behaviors.map((b) => producer.sendBehavior(b)),
      ]);
    };
    await publishAll();
    const { metrics } = await startSink();
    const lines = sample.transactions.reduce((n, t) => n + t.lineItems.length, 0);
    await waitFor(
      () => count('SELECT count() AS n FROM fact_event FINAL'),
      (n) => n === sample.behaviors.length,
      { what: 'all behavior events in fact_event' },
    );
    await waitFor(
      () => count('SELECT count() AS n FROM fact_transaction FINAL'),
      (n) => n === sample.transactions.length,
    );
    expect(await count('SELECT count() AS n FROM fact_transaction_line FINAL')).toBe(lines);
    const revenue = sample.transactions.reduce((n, t) => n + t.totalMinor, 0);
    expect(await count('SELECT sum(total_minor) AS n FROM fact_transaction FINAL')).toBe(revenue);
    expect(await count('SELECT uniqExact(platform_id) AS n FROM dim_platform FINAL')).toBe(
      new Set(sample.transactions.map((t) => t.platform)).size,
    );
    const before = await allNamedQueryResults();

    // At-least-once means the same events can arrive again (a producer retry, a replayed file): nothing may change.
    await publishAll();
    // Count inserts from the sink's own metric: a background merge may already have collapsed the duplicates.
    const inserted = async () =>
      (await metrics.sinkRows.get()).values.find((v) => v.labels.table === 'fact_event')?.value ?? 0;
    await waitFor(inserted, (n) => n >= 2 * sample.behaviors.length, {
      what: 'the replayed events to be inserted again',
    });
    expect(await allNamedQueryResults()).toEqual(before);
    await producer.disconnect();
  });

  it('stop inserts what it buffered and commits it, so a restart reads nothing again', async () => {
    // Its own topics, and rows that stay buffered until stop: no time or size limit is reached before it.
    const c = await createTestContext({
      topics: true,
      warehouse: true,
      env: { SINK_MAX_WAIT_MS: '600000', SINK_MAX_ROWS: '1000000' },
    });
    try {
      const sample = generateSample({ seed: 3, customers: 20, targetTransactions: 40, salt: 'test-salt-123' });
      const producer = await PlatformProducer.connect(c.config, { kafka: c.kafka, serde: c.serde, topics: c.topics });
      await Promise.all([
        ...sample.transactions.map((t) => producer.sendTransaction(t)),
        ...sample.behaviors.map((b) => producer.sendBehavior(b)),
      ]);
      await producer.disconnect();
      const groupId = `${c.config.TOPIC_PREFIX}sink-stop`;
      const { sink, metrics } = await startWarehouseSink(c, { groupId });
      const read = async () =>
        (await metrics.records.get()).values.reduce((n, v) => n + (v.labels.outcome === 'ok' ? v.value : 0), 0);
      const total = sample.transactions.length + sample.behaviors.length;
      await waitFor(read, (n) => n >= total, { what: `all ${total} records read` });
      expect(await count('SELECT count() AS n FROM fact_event FINAL', c)).toBe(0); // buffered, not yet inserted
      await sink.stop();
      expect(await count('SELECT count() AS n FROM fact_event FINAL', c)).toBe(sample.behaviors.length);
      expect(await count('SELECT count() AS n FROM fact_transaction FINAL', c)).toBe(sample.transactions.length);
      expect(await groupLag(c.admin, groupId, [c.topics.transactionsRaw, c.topics.clicksRaw])).toBe(0);
    } finally {
      await c.close();
    }
  });

  it('dead-letters bad records with their reason and source while every good record arrives', async () => {
    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    const good = Array.from({ length: 10 }, (_, i) =>
      sampleTransaction({ eventId: `good-${i}`, platformCustomerId: `c-${i % 3}` }),
    );
    const future = Date.now() + 30 * 86_400_000;
    const invalid = [
      sampleTransaction({
        eventId: 'bad-negative-qty',
        lineItems: [{ ...sampleTransaction().lineItems[0]!, quantity: -3 }],
      }),
      sampleTransaction({ eventId: 'bad-currency', currency: 'XXZ' }),
      sampleTransaction({ eventId: 'bad-future', eventTimeMs: future }),
      sampleTransaction({ eventId: 'bad-oversized', orderId: 'o'.repeat(10_000) }),
      sampleTransaction({ eventId: '' }),
    ];
    const badClick = sampleBehavior({
      eventId: 'bad-no-ids',
      platformCustomerId: null,
      sessionId: null,
      deviceId: null,
    });
    const spec = ctx.topics.transactionsRaw;
    const encode = (t: (typeof good)[number]) => ctx.serde.encode(spec, t);
    const messages = [
      ...(await Promise.all(good.slice(0, 5).map(async (t) => ({ key: transactionKey(t), value: await encode(t) })))),
      { key: 'shopwave:c-x', value: Buffer.from('{"not":"avro"}') }, // malformed
      { key: 'shopwave:c-y', value: Buffer.from([0, 0, 0, 0x7f, 0x7f, 2, 4]) }, // unknown schema id
      ...(await Promise.all(invalid.map(async (t) => ({ key: transactionKey(t), value: await encode(t) })))),
      ...(await Promise.all(good.slice(5).map(async (t) => ({ key: transactionKey(t), value: await encode(t) })))),
    ];
    await producer.send({ topic: spec.name, acks: -1, messages });
    await producer.send({
      topic: ctx.topics.clicksRaw.name,
      acks: -1,
      messages: [{ key: 'shopwave:anon', value: await ctx.serde.encode(ctx.topics.clicksRaw, badClick) }],
    });
    await producer.disconnect();
    const { metrics } = await startSink();

    const letters = await readDeadLetters(spec.deadLetterTopic!, 7);
    expect(letters).toHaveLength(7);
    const reasons = letters.map((l) => `${l.errorCode}: ${l.reason}`).join('\n');
    expect(reasons).toMatch(/RECORD_UNDECODABLE: not Confluent wire format/);
    expect(reasons).toMatch(/RECORD_UNDECODABLE: schema id \d+ is unknown/);
    expect(reasons).toMatch(/quantity -3 must be > 0 in a PURCHASE/);
    expect(reasons).toMatch(/currency "XXZ" is not an ISO 4217 code/);
    expect(reasons).toMatch(/is in the future/);
    expect(reasons).toMatch(/orderId is 10000 characters/);
    expect(reasons).toMatch(/eventId is empty/);
    for (const l of letters) {
      expect(l.sourceTopic).toBe(spec.name);
      expect(l.processor).toBe('warehouse-sink');
      expect(l.sourcePartition).toBeGreaterThanOrEqual(0);
      expect(l.sourceOffset).toBeGreaterThanOrEqual(0);
    }
    // The original bytes are kept untouched: every parked value is one of the values we sent.
    const sentValues = new Set(messages.map((m) => m.value.toString('base64')));
    for (const l of letters) expect(sentValues.has(l.originalValue!.toString('base64'))).toBe(true);

    const clickLetters = await readDeadLetters(ctx.topics.clicksRaw.deadLetterTopic!, 1);
    expect(clickLetters[0]?.reason).toMatch(/no identifier/);
    // What the dead-letter spike alert reads: counted by source topic and reason (the error code).
    const counted = (await metrics.registry.getSingleMetric('dead_letters_total')?.get())?.values ?? [];
    const byReason = (topic: string, reason: string) =>
      counted.find((v) => v.labels['source_topic'] === topic && v.labels['reason'] === reason)?.value ?? 0;
    expect(byReason(spec.name, 'RECORD_UNDECODABLE')).toBe(2);
    expect(byReason(spec.name, 'RECORD_INVALID')).toBe(5);
    expect(byReason(ctx.topics.clicksRaw.name, 'RECORD_INVALID')).toBe(1);
    // What the consumer-lag alert reads: every partition of the topic reports its lag after a finished batch.
    const lags = (await metrics.registry.getSingleMetric('kafka_consumer_lag')?.get())?.values ?? [];
    const lagOf = lags.filter((v) => v.labels['topic'] === spec.name);
    expect(lagOf.length).toBeGreaterThan(0);
    for (const v of lagOf) expect(v.value).toBe(0);

    await waitFor(
      () => count(`SELECT count() AS n FROM fact_transaction FINAL WHERE event_id LIKE 'good-%'`),
      (n) => n === good.length,
      { what: 'every good transaction' },
    );
    await waitFor(
      () => count('SELECT count() AS n FROM dead_letter FINAL'),
      (n) => n >= 8,
      { what: 'dead letters warehoused' },
    );
  });

  it('keeps dim_customer from identity links and merges', async () => {
    const t = Date.UTC(2026, 8, 1);
    const link = (platform: string, id: string, gid: string, atMs: number, method: IdentityLink['method']) => ({
      eventId: `link-${platform}-${id}-${gid}-${atMs}`,
      eventTimeMs: atMs,
      platform,
      platformCustomerId: id,
      globalCustomerId: gid,
      method,
      confidence: method === 'PROBABILISTIC' ? 0.97 : 1,
      matchWeight: null,
      sourceEventId: `src-${atMs}`,
    });
    const links = [
      link('shopwave', 'a', 'dc-1', t, 'NEW'),
      link('marketly', 'b', 'dc-2', t + 1_000, 'NEW'),
      link('urbancart', 'c', 'dc-2', t + 2_000, 'EMAIL_HASH'),
      link('marketly', 'b', 'dc-1', t + 3_000, 'MERGE'),
      link('urbancart', 'c', 'dc-1', t + 3_000, 'MERGE'),
      link('shopwave', 'z', 'dc-9', t + 4_000, 'NEW'),
    ];
    const merge: IdentityMerge = {
      eventId: 'merge-dc-1-dc-2',
      eventTimeMs: t + 3_000,
      survivorId: 'dc-1',
      mergedId: 'dc-2',
      method: 'PROBABILISTIC',
      confidence: 0.97,
      matchWeight: 12.5,
      sourceEventId: 'src-merge',
    };
    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    for (const l of links) {
      await producer.send({
        topic: ctx.topics.identityLinks.name,
        acks: -1,
        messages: [
          { key: `${l.platform}:${l.platformCustomerId}`, value: await ctx.serde.encode(ctx.topics.identityLinks, l) },
        ],
      });
    }
    await producer.send({
      topic: ctx.topics.identityMerges.name,
      acks: -1,
      messages: [{ key: merge.survivorId, value: await ctx.serde.encode(ctx.topics.identityMerges, merge) }],
    });
    await producer.disconnect();
    await startSink();
    type Customer = {
      global_customer_id: string;
      identity_count: unknown; // UInt32 arrives as a number, UInt64 as a string: normalised below
      total_platforms_used: unknown;
      merged_into: string;
    };
    const customers = async () =>
      (
        await ctx.clickhouse.query({
          query: `SELECT global_customer_id, identity_count, total_platforms_used, merged_into
                  FROM dim_customer FINAL WHERE global_customer_id LIKE 'dc-%' ORDER BY global_customer_id`,
          format: 'JSONEachRow',
        })
      ).json<Customer>();
    const rows = await waitFor(customers, (r) => r.length === 3 && r[1]?.merged_into === 'dc-1', {
      what: 'dim_customer rows for dc-1, dc-2 (merged) and dc-9',
    });
    expect(
      rows.map((r) => [r.global_customer_id, Number(r.identity_count), Number(r.total_platforms_used), r.merged_into]),
    ).toEqual([
      ['dc-1', 3, 3, ''],
      ['dc-2', 0, 0, 'dc-1'],
      ['dc-9', 1, 1, ''],
    ]);
  });

  it('gives up, saying why, when its consumer stops fetching a partition the broker holds records of', async () => {
    // Its own topics: the stall is judged on partitions only this test writes.
    const own = await createTestContext({
      topics: true,
      warehouse: true,
      env: { SINK_MAX_WAIT_MS: '200', PROCESSOR_FETCH_STALL_MS: '3000' },
    });
    const failures: FatalFailure[] = [];
    const sink = new WarehouseSink({
      config: own.config,
      kafka: own.kafka,
      serde: own.serde,
      clickhouse: own.clickhouse,
      topics: own.topics,
      log: createLogger('warn', { test: 'warehouse-sink' }),
      metrics: createMetrics(),
      onFatal: (f) => failures.push(f),
    });
    const view = (eventId: string) => ({
      kind: 'behavior' as const,
      event: sampleBehavior({ eventId, platformCustomerId: 'stall', type: 'VIEW' }),
    });
    const topic = own.topics.clicksRaw.name;
    try {
      await publishEvents(own, [view('stall-1')]);
      await sink.start();
      await waitFor(
        () => count(`SELECT count() AS n FROM fact_event WHERE event_id = 'stall-1'`, own),
        (n) => n === 1,
        { what: 'the first event in the warehouse' },
      );
      // Partitions with nothing new are quiet, not stalled: more than twice the bound without traffic.
      await sleep(7_000);
      expect(failures).toEqual([]);
      const partition = (await own.admin.fetchTopicOffsets(topic)).find((p) => p.high === '1')?.partition;
      expect(partition).toBeDefined();
      // What a stalled fetch looks like from the sink: its consumer no longer fetches that partition (paused here
      // behind its back), while a record waits on the broker.
      (sink as unknown as { consumer: Consumer }).consumer.pause([{ topic, partitions: [partition!] }]);
      await publishEvents(own, [view('stall-2')]);
      await waitFor(
        async () => Promise.resolve(failures.length),
        (n) => n > 0,
        { what: 'the sink giving up on the stalled partition', timeoutMs: 30_000 },
      );
      expect(failures[0]?.kind).toBe('stalled-batch');
      expect(failures[0]?.reason).toContain(`${topic}:${partition} (delivered up to 1, high watermark 2)`);
    } finally {
      await sink.stop();
      await own.close();
    }
  }, 120_000);

  it('retries through a ClickHouse outage and loses nothing, dead-letters nothing', async () => {
    // Its own topics and database: only this test's events flow, so "no dead letters" is about them alone.
    const own = await createTestContext({ topics: true, warehouse: true, env: { SINK_MAX_WAIT_MS: '200' } });
    try {
      const target = new URL(own.config.CLICKHOUSE_URL);
      const proxy = await startTcpProxy(target.hostname, Number(target.port));
      proxy.setDown(true);
      const { metrics } = await startSink({ clickhouseUrl: `http://127.0.0.1:${proxy.port}`, context: own });
      const producer = await PlatformProducer.connect(own.config, {
        kafka: own.kafka,
        serde: own.serde,
        topics: own.topics,
      });
      const events = Array.from({ length: 25 }, (_, i) => sampleBehavior({ eventId: `outage-${i}`, type: 'VIEW' }));
      await Promise.all(events.map((e) => producer.sendBehavior(e)));
      await producer.disconnect();

      const retries = async () => (await metrics.retries.get()).values.reduce((n, v) => n + v.value, 0);
      await waitFor(retries, (n) => n >= 2, { what: 'insert retries during the outage' });
      const records = (await metrics.records.get()).values;
      expect(records.filter((v) => v.labels.outcome === 'dead_letter').reduce((n, v) => n + v.value, 0)).toBe(0);
      expect(records.filter((v) => v.labels.outcome === 'ok').reduce((n, v) => n + v.value, 0)).toBe(events.length);

      proxy.setDown(false);
      await waitFor(
        () => count(`SELECT count() AS n FROM fact_event FINAL WHERE event_id LIKE 'outage-%'`, own),
        (n) => n === events.length,
        { what: 'every event after ClickHouse came back' },
      );
      await Promise.all(sinks.splice(0).map((s) => s.stop()));
      await proxy.close();
    } finally {
      await own.close();
    }
  }, 240_000); // two 60 s waits plus a cold group join: if one runs out, its own message should say which
});
