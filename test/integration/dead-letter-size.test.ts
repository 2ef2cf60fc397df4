// A dead letter never fails for its own size (issue 14): a 900 KB record on clicks.raw.v1, followed in the same
// partition by a thousand small hostile records, used to make the resolver's dead-letter send larger than the broker
// accepts; the producer failed non-retriably and the resolver stopped for good. Every processor that dead-letters
// (resolver and warehouse sink on the raw topic, the feature processor on the resolved one) must park them all, with
// the large original cut and its size and digest recorded, and go on to process the records after them.
import { createHash, randomBytes } from 'node:crypto';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pipeline } from '../../processors/pipeline.js';
import { MAX_ORIGINAL_VALUE_BYTES } from '../../processors/runtime/dead-letter.js';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import type { DeadLetter } from '../../schemas/generated/types.js';
import { createTestContext, waitFor, type TestContext } from '../helpers/context.js';
import { sampleBehavior } from '../fixtures/events.js';

let ctx: TestContext;
let pipeline: Pipeline | undefined;
beforeAll(async () => {
  ctx = await createTestContext({ topics: true, warehouse: true, env: { SINK_MAX_WAIT_MS: '200' } });
});
afterAll(async () => {
  await pipeline?.stop();
  await ctx?.close();
});

interface Parked {
  readonly letter: DeadLetter;
  readonly headers: IHeaders;
}

/** Every record of `topic` until `expected` have arrived. */
async function readAll(topic: string, expected: number): Promise<KafkaMessage[]> {
  const consumer = ctx.kafka.consumer({
    groupId: `${ctx.config.TOPIC_PREFIX}reader-${randomBytes(3).toString('hex')}`,
  });
  const found: KafkaMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: ({ message }) => {
      found.push(message);
      return Promise.resolve();
    },
  });
  try {
    await waitFor(
      () => Promise.resolve(found.length),
      (n) => n >= expected || pipeline?.fatal != null,
      { timeoutMs: 180_000, what: `${expected} records on ${topic}` },
    );
  } finally {
    await consumer.disconnect();
  }
  return found;
}

describe('dead letters of oversized records', () => {
  it('parks a 900 KB record and a thousand small hostile ones after it, then processes the next valid record', async () => {
    const { topics, serde } = ctx;
    const producer = createIdempotentProducer(ctx.kafka);
    await producer.connect();
    const huge = await serde.encode(
      topics.clicksRaw,
      sampleBehavior({ type: 'SEARCH', searchQuery: 'x'.repeat(900 * 1024) }),
    );
    const small = Array.from({ length: 1_000 }, (_, i) => ({
      key: `shop:hostile-${i}`,
      value: i % 3 === 0 ? randomBytes(40) : i % 3 === 1 ? Buffer.from([0]) : null,
    }));
    const valid = sampleBehavior({ platformCustomerId: 'after-the-corpus' });
    // One partition for all, so the large record and the small ones meet in the processors' batches.
    for (const topic of [topics.clicksRaw.name, topics.customerClicks.name]) {
      await producer.send({ topic, messages: [{ key: 'shop:huge', value: huge, partition: 0 }] });
      await producer.send({ topic, messages: small.map((m) => ({ ...m, partition: 0 })) });
    }
    await producer.send({
      topic: topics.clicksRaw.name,
      messages: [
        { key: 'shopwave:after-the-corpus', value: await serde.encode(topics.clicksRaw, valid), partition: 0 },
      ],
    });
    await producer.disconnect();

    pipeline = new Pipeline({ ...ctx, scoring: false });
    await pipeline.start();

    const decode = async (messages: KafkaMessage[]): Promise<Parked[]> =>
      Promise.all(
        messages.map(async (m) => ({
          letter: await serde.decode<DeadLetter>(
            topics.all.find((t) => t.schema === 'deadLetter')!,
            m.value,
          ),
          headers: m.headers ?? {},
        })),
      );
    // The resolver and the sink each park all 1,001 raw records; the feature processor its 1,001 resolved ones.
    const raw = await decode(await readAll(topics.clicksRaw.deadLetterTopic!, 2 * 1_001));
    const resolved = await decode(await readAll(topics.customerClicks.deadLetterTopic!, 1_001));
    expect(pipeline.fatal).toBeNull();
    const byProcessor = (parked: Parked[]) =>
      parked.reduce<Record<string, number>>(
        (n, p) => ({ ...n, [p.letter.processor]: (n[p.letter.processor] ?? 0) + 1 }),
        {},
      );
    expect(byProcessor(raw)).toEqual({ 'identity-resolver': 1_001, 'warehouse-sink': 1_001 });
    expect(byProcessor(resolved)).toEqual({ 'feature-processor': 1_001 });

    const digest = createHash('sha256').update(huge).digest('hex');
    for (const p of [...raw, ...resolved].filter((p) => p.letter.sourceOffset === 0)) {
      expect(p.letter.errorCode).toBe('RECORD_INVALID');
      expect(p.letter.originalValue?.length).toBe(MAX_ORIGINAL_VALUE_BYTES);
      expect(huge.subarray(0, MAX_ORIGINAL_VALUE_BYTES).equals(p.letter.originalValue!)).toBe(true);
      expect(p.letter.reason).toContain(`value ${huge.length} → ${MAX_ORIGINAL_VALUE_BYTES} bytes (sha256 ${digest})`);
      expect(String(p.headers['dlq.original.size'])).toBe(String(huge.length));
      expect(String(p.headers['dlq.original.sha256'])).toBe(digest);
      expect(String(p.headers['dlq.original.cut'])).toContain('value');
    }
    const small0 = raw.find((p) => p.letter.sourceOffset === 1)!;
    expect(small0.headers['dlq.original.cut']).toBeUndefined();
    expect(String(small0.headers['dlq.original.size'])).toBe('40');

    // The valid record after them all is processed: resolved, and in the warehouse.
    await pipeline.waitUntilCaughtUp(ctx.admin, 180_000);
    const rows = await ctx.clickhouse.query({
      query: `SELECT count() AS n FROM fact_event FINAL WHERE event_id = '${valid.eventId}'`,
      format: 'JSONEachRow',
    });
    expect(Number((await rows.json<{ n: string }>())[0]?.n)).toBe(1);
    const warehoused = await ctx.clickhouse.query({
      query: 'SELECT processor, count() AS n FROM dead_letter FINAL GROUP BY processor ORDER BY processor',
      format: 'JSONEachRow',
    });
    expect(await warehoused.json()).toEqual([
      { processor: 'feature-processor', n: '1001' },
      { processor: 'identity-resolver', n: '1001' },
      { processor: 'warehouse-sink', n: '1001' },
    ]);
  });
});
