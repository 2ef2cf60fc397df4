// A flush's Kafka sends stay below the broker's message size: kafkajs puts one send's messages for a partition in one
// record batch, and a 1M-event benchmark run failed with "message larger than the max message size" before this.
import { describe, expect, it } from 'vitest';
import { chunksByBytes, MAX_SEND_BYTES } from '../../processors/runtime/send-chunks.js';

const message = (i: number, valueBytes: number) => ({ key: `c-${i}`, value: Buffer.alloc(valueBytes, 1) });

describe('chunksByBytes', () => {
  it('splits a flush of 20,000 score-sized messages into sends under the limit, in order, losing none', () => {
    const messages = Array.from({ length: 20_000 }, (_, i) => message(i, 150));
    const chunks = chunksByBytes(messages);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.flat()).toEqual(messages);
    for (const chunk of chunks) {
      const bytes = chunk.reduce((n, m) => n + m.key.length + m.value.length, 0);
      expect(bytes).toBeLessThanOrEqual(MAX_SEND_BYTES);
    }
  });

  it('keeps a small flush in one send, sends an oversized message alone, and sends nothing for no messages', () => {
    expect(chunksByBytes([message(1, 10), message(2, 10)])).toHaveLength(1);
    const big = message(3, 2 * MAX_SEND_BYTES);
    expect(chunksByBytes([message(1, 10), big, message(2, 10)], MAX_SEND_BYTES)).toEqual([
      [message(1, 10)],
      [big],
      [message(2, 10)],
    ]);
    expect(chunksByBytes([])).toEqual([]);
  });
});
