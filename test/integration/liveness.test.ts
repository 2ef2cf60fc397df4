// No silent stalls, on the real broker: overlapping sends on one idempotent producer under a late broker answer (the
// fault behind "out of order sequence number"), with and without SerialProducer; a consumer that hits that error, and
// one whose batch fails the same way on every attempt, both end in onFatal with the reason instead of idling.
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotentProducer, SerialProducer } from '../../processors/runtime/kafka.js';
import { superviseConsumer, type FatalFailure } from '../../processors/runtime/liveness.js';
import { createLogger } from '../../processors/runtime/log.js';
import { waitForLeaders } from '../../topics/apply.js';
import { createTestContext, waitFor, type TestContext } from '../helpers/context.js';
import { startKafkaFaultProxy, type KafkaFaultProxy } from '../helpers/kafka-fault-proxy.js';

let ctx: TestContext;
let proxy: KafkaFaultProxy;
/** Clients through the proxy: a request answered later than 1 s is timed out (and retried) by kafkajs. */
let faulty: Kafka;
const cleanup: (() => Promise<unknown>)[] = [];
const log = createLogger('error', { test: 'liveness' });

beforeAll(async () => {
  ctx = await createTestContext();
  proxy = await startKafkaFaultProxy(ctx.config.KAFKA_BROKERS[0]!);
  faulty = new Kafka({
    clientId: `${ctx.config.TOPIC_PREFIX}faulty`,
    brokers: [...ctx.config.KAFKA_BROKERS],
    socketFactory: proxy.socketFactory,
    requestTimeout: 1_000,
    retry: { initialRetryTime: 200, retries: 5 },
    logLevel: logLevel.NOTHING,
  });
});
afterAll(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
  await proxy?.close();
  await ctx?.close();
});

async function topic(name: string, partitions = 1): Promise<string> {
  const full = `${ctx.config.TOPIC_PREFIX}${name}`;
  // kafkajs' own wait for leaders gives up on a metadata answer that comes too early; ours treats it as "not yet".
  await ctx.admin.createTopics({ topics: [{ topic: full, numPartitions: partitions }], waitForLeaders: false });
  await waitForLeaders(ctx.admin, [full]);
  return full;
}

async function connected(producer: Producer): Promise<Producer> {
  await producer.connect();
  cleanup.push(() => producer.disconnect());
  return producer;
}

/** Every record of `name` as `partition:value`, in log order per partition. */
async function readTopic(name: string, expected: number): Promise<Map<number, string[]>> {
  const consumer = ctx.kafka.consumer({ groupId: `${name}-reader` });
  const byPartition = new Map<number, string[]>();
  let count = 0;
  await consumer.connect();
  await consumer.subscribe({ topic: name, fromBeginning: true });
  await consumer.run({
    eachMessage: ({ partition, message }) => {
      byPartition.set(partition, [...(byPartition.get(partition) ?? []), String(message.value)]);
      count++;
      return Promise.resolve();
    },
  });
  await waitFor(
    () => Promise.resolve(count),
    (n) => n >= expected,
    { what: `${expected} records on ${name}` },
  );
  // Anything beyond `expected` (a duplicate) would arrive right behind: give it a moment to show.
  await new Promise((r) => setTimeout(r, 1_000));
  await consumer.disconnect();
  return byPartition;
}

const messages = (tag: string, n: number, key = 'k') =>
  Array.from({ length: n }, (_, i) => ({ key, value: `${tag}.${i}` }));

describe('one idempotent producer, overlapping sends, a broker answer that comes too late', () => {
  it('plain kafkajs: the overlapping send fails with an out-of-order sequence number', async () => {
    const name = await topic('ooo-raw');
    const producer = await connected(createIdempotentProducer(faulty));
    await producer.send({ topic: name, acks: -1, messages: messages('warm', 1) });
    proxy.delayNextProduceResponse(1_500); // written by the broker, timed out by the client, retried
    const results = await Promise.allSettled([
      producer.send({ topic: name, acks: -1, messages: messages('a', 5) }),
      producer.send({ topic: name, acks: -1, messages: messages('b', 3) }),
    ]);
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/out of order sequence number/);
  });

  it('SerialProducer: every send succeeds, each record is written once, in call order', async () => {
    const name = await topic('ooo-serial', 2);
    const producer = new SerialProducer(() => createIdempotentProducer(faulty));
    await connected(producer);
    await producer.send({ topic: name, acks: -1, messages: messages('warm', 1, 'w') });
    const sends = Array.from({ length: 40 }, (_, i) => ({
      topic: name,
      acks: -1,
      messages: messages(`s${String(i).padStart(2, '0')}`, 1 + (i % 5), i % 3 === 0 ? 'x' : 'y'),
    }));
    const pending: Promise<unknown>[] = [];
    for (const [i, send] of sends.entries()) {
      // Two late answers while sends pile up behind them: the same fault as above, twice.
      if (i === 0 || i === 20) proxy.delayNextProduceResponse(1_500);
      pending.push(i % 2 === 0 ? producer.send(send) : producer.sendBatch({ acks: -1, topicMessages: [send] }));
    }
    const before = proxy.delayed;
    const results = await Promise.allSettled(pending);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(proxy.delayed - before).toBeGreaterThanOrEqual(1); // the fault really happened
    expect(producer.renewals).toBe(0); // retries succeeded: no send failed, no producer replaced

    const total = 1 + sends.reduce((n, s) => n + s.messages.length, 0);
    const written = await readTopic(name, total);
    const all = [...written.values()].flat();
    expect(all).toHaveLength(total); // no duplicate, nothing lost
    for (const key of ['x', 'y']) {
      const sent = sends.flatMap((s) => s.messages.filter((m) => m.key === key).map((m) => m.value));
      const partition = [...written.values()].find((values) => values.includes(sent[0]!))!;
      expect(partition.filter((v) => sent.includes(v))).toEqual(sent); // per-key (per-partition) order = call order
    }
  });
});

describe('superviseConsumer', () => {
  async function supervised(
    groupSuffix: string,
    inputs: string,
    eachBatch: (offset: string) => Promise<void>,
    options: { retry?: { initialRetryTime: number; retries: number }; maxBatchAttempts?: number; minStallMs?: number },
  ): Promise<{ consumer: Consumer; registry: Registry; fatal: Promise<FatalFailure> }> {
    const consumer = ctx.kafka.consumer({
      groupId: `${ctx.config.TOPIC_PREFIX}${groupSuffix}`,
      ...(options.retry ? { retry: options.retry } : {}),
    });
    cleanup.push(() => consumer.disconnect());
    const registry = new Registry();
    let reportFatal!: (f: FatalFailure) => void;
    const fatal = new Promise<FatalFailure>((resolve) => (reportFatal = resolve));
    const supervisor = superviseConsumer(consumer, {
      processor: 'test',
      log,
      registry,
      onFatal: reportFatal,
      ...(options.maxBatchAttempts ? { maxBatchAttempts: options.maxBatchAttempts } : {}),
      ...(options.minStallMs !== undefined ? { minStallMs: options.minStallMs } : {}),
    });
    await consumer.connect();
    await consumer.subscribe({ topic: inputs, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: supervisor.eachBatch(async ({ batch }) => eachBatch(batch.firstOffset() ?? '')),
    });
    return { consumer, registry, fatal };
  }

  const crashes = async (registry: Registry) =>
    Object.fromEntries(
      (await registry.getSingleMetric('processor_crashes_total')!.get()).values.map((v) => [
        String(v.labels['restart']),
        v.value,
      ]),
    );

  const within = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([
      p,
      new Promise<never>((_, reject) =>
        setTimeout(() => {
          reject(new Error(`${what}: not within ${ms} ms`));
        }, ms),
      ),
    ]);

  it('a consumer whose batch hits the out-of-order sequence error is given up by kafkajs: counted, onFatal', async () => {
    const inputs = await topic('stall-in');
    const outputs = await topic('stall-out');
    const input = await connected(createIdempotentProducer(ctx.kafka));
    await input.send({ topic: inputs, acks: -1, messages: messages('in', 1) });
    const output = await connected(createIdempotentProducer(faulty));
    await output.send({ topic: outputs, acks: -1, messages: messages('warm', 1) });
    // The resolver's old shape: the batch's outputs as concurrent sends on one shared idempotent producer.
    const { registry, fatal } = await supervised(
      'stall',
      inputs,
      async () => {
        proxy.delayNextProduceResponse(1_500);
        await Promise.all([
          output.send({ topic: outputs, acks: -1, messages: messages('a', 5) }),
          output.send({ topic: outputs, acks: -1, messages: messages('b', 3) }),
        ]);
      },
      {},
    );
    const failure = await within(fatal, 60_000, 'onFatal');
    expect(failure.kind).toBe('crash');
    expect(failure.reason).toMatch(/will not be restarted: .*out of order sequence number/);
    expect(await crashes(registry)).toEqual({ false: 1 });
  });

  it('a batch that fails the same way on every attempt is retried at the same offset, never skipped, then given up', async () => {
    const inputs = await topic('poison-in');
    const input = await connected(createIdempotentProducer(ctx.kafka));
    await input.send({ topic: inputs, acks: -1, messages: messages('in', 3) });
    const attempts: string[] = [];
    const { registry, fatal } = await supervised(
      'poison',
      inputs,
      (offset) => {
        attempts.push(offset);
        return Promise.reject(new Error('cannot store this batch'));
      },
      // kafkajs retries twice, then crashes and restarts the consumer: the count must survive the restart.
      { retry: { initialRetryTime: 50, retries: 2 }, maxBatchAttempts: 6, minStallMs: 500 },
    );
    const failure = await within(fatal, 60_000, 'onFatal');
    expect(failure.kind).toBe('stalled-batch');
    expect(failure.reason).toMatch(/poison-in\/0@0 failed \d+ times over \d+ s: cannot store this batch/);
    expect(attempts.length).toBeGreaterThanOrEqual(6);
    expect(new Set(attempts)).toEqual(new Set(['0'])); // the same batch every time
    // kafkajs restarted it in between, and gave it up once the supervisor declared the batch stalled.
    const counted = await waitFor(
      () => crashes(registry),
      (c) => c['false'] === 1,
      { what: 'the final crash', timeoutMs: 10_000 },
    );
    expect(counted['true']).toBeGreaterThanOrEqual(1);
    const committed = await ctx.admin.fetchOffsets({
      groupId: `${ctx.config.TOPIC_PREFIX}poison`,
      topics: [inputs],
    });
    expect(committed[0]?.partitions.map((p) => p.offset)).toEqual(['-1']); // nothing skipped
  });
});
