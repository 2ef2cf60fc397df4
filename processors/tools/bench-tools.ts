/** Helpers shared by the evaluation CLIs and benchmarks: the raw consume limit and key clean-up. */
import type { Kafka } from 'kafkajs';
import type { Redis } from 'ioredis';
import type { TopicSpec } from '../../topics/catalog.js';
import type { EventSerde } from '../runtime/serde.js';

/**
 * Records/s of a kafkajs consumer that only decodes `specs` from the beginning until `expected` records were seen:
 * the raw limit a processor on the same topics is compared with, timed from its first batch.
 */
export async function decodeOnlyRate(
  kafka: Kafka,
  serde: EventSerde,
  specs: readonly TopicSpec[],
  expected: number,
  groupId: string,
): Promise<number> {
  const consumer = kafka.consumer({ groupId, maxBytesPerPartition: 4 << 20 });
  await consumer.connect();
  for (const spec of specs) await consumer.subscribe({ topic: spec.name, fromBeginning: true });
  const byName = new Map(specs.map((s) => [s.name, s]));
  let decoded = 0;
  let started = 0;
  await consumer.run({
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch }) => {
      started ||= Date.now();
      const spec = byName.get(batch.topic);
      if (!spec) throw new Error(`unexpected topic ${batch.topic}`);
      for (const m of batch.messages) await serde.decode(spec, m.value);
      decoded += batch.messages.length;
    },
  });
  while (decoded < expected) await new Promise((r) => setTimeout(r, 20));
  const seconds = (Date.now() - started) / 1000;
  await consumer.disconnect();
  return Math.round(decoded / Math.max(seconds, 0.001));
}

/** Deletes every key matching `pattern` (SCAN + UNLINK, never KEYS). */
export async function deleteKeysByPattern(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (found.length > 0) await redis.unlink(...found);
  } while (cursor !== '0');
}
