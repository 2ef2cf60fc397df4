// kafkajs against the real broker: admin topic creation, idempotent produce, consumer-group consume, offset commit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import { waitForLeaders } from '../../topics/apply.js';
import { createTestContext, waitFor, type TestContext } from '../helpers/context.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx?.close(); // undefined when beforeAll failed: report that error, not this one
});

describe('kafkajs on the real broker', () => {
  it('creates a topic, produces idempotently, consumes in a group and commits offsets', async () => {
    const topic = `${ctx.config.TOPIC_PREFIX}smoke`;
    expect(await ctx.admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })).toBe(true);
    await waitForLeaders(ctx.admin, [topic]);
    expect(await ctx.admin.listTopics()).toContain(topic);

    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    const sent = Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 4}`, value: `v${i}` }));
    await producer.send({ topic, acks: -1, messages: sent });
    await producer.disconnect();

    const groupId = `${ctx.config.TOPIC_PREFIX}smoke-group`;
    const consumer = ctx.kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received: { key: string; value: string; partition: number }[] = [];
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        received.push({ key: String(message.key), value: String(message.value), partition });
        return Promise.resolve();
      },
    });
    await waitFor(
      async () => Promise.resolve(received.length),
      (n) => n >= sent.length,
      { what: '20 records' },
    );
    await consumer.stop();
    await consumer.disconnect();

    expect(received.map((r) => r.value).sort()).toEqual(sent.map((s) => s.value).sort());
    // Same key, same partition: per-key order is what every processor relies on.
    const partitionOfKey = new Map<string, Set<number>>();
    for (const r of received) partitionOfKey.set(r.key, (partitionOfKey.get(r.key) ?? new Set()).add(r.partition));
    for (const parts of partitionOfKey.values()) expect(parts.size).toBe(1);

    const committed = await ctx.admin.fetchOffsets({ groupId, topics: [topic] });
    const total = committed[0]?.partitions.reduce((n, p) => n + Number(p.offset), 0);
    expect(total).toBe(sent.length);
    await ctx.admin.deleteTopics({ topics: [topic] });
  });
});
