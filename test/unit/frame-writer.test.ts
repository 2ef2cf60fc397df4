// FrameWriter (runtime/serde.ts): Confluent-framed Avro records written into shared slabs are byte for byte the header
// plus avsc's own encoding, across slab boundaries and for records larger than a slab, and none is touched by the ones
// framed after it.
import { describe, expect, it } from 'vitest';
import { FrameWriter, avroType } from '../../processors/runtime/serde.js';
import { sampleTransaction } from '../fixtures/events.js';

describe('FrameWriter', () => {
  it('frames records across slab boundaries and larger than a slab without touching earlier ones', () => {
    const type = avroType('transaction');
    const frames = new FrameWriter(1024);
    const values = [1, 1, 1, 40, 1, 2, 1, 300, 1, 1, 1, 7, 1_000, 3, 1].map((items, i) =>
      sampleTransaction({
        eventId: `tx-big-${i}`,
        lineItems: Array.from({ length: items }, (_, k) => ({
          productId: `p-${k}`,
          productName: `product ${k}`,
          category: 'sports',
          brand: null,
          quantity: 1,
          unitPriceMinor: k,
        })),
      }),
    );
    const framed = values.map((v) => frames.frame(type, 7, v));
    // Small records share slabs (and some slab ends), large ones have their own; records sharing one never overlap.
    expect(new Set(framed.map((b) => b.buffer)).size).toBeLessThan(framed.length - 3);
    const bySlab = new Map<ArrayBufferLike, Buffer[]>();
    for (const b of framed) bySlab.set(b.buffer, [...(bySlab.get(b.buffer) ?? []), b]);
    for (const records of bySlab.values()) {
      records.sort((x, y) => x.byteOffset - y.byteOffset);
      records.slice(1).forEach((b, i) => {
        const before = records[i] as Buffer;
        expect(b.byteOffset).toBeGreaterThanOrEqual(before.byteOffset + before.length);
      });
    }
    framed.forEach((bytes, i) => {
      expect(bytes.subarray(0, 5).toString('hex')).toBe('0000000007');
      expect(bytes.subarray(5).toString('hex')).toBe(type.toBuffer(values[i]).toString('hex'));
    });
  });
});
