// The partitioner must place every key where kafkajs' DefaultPartitioner (the Java client's murmur2 placement) does:
// co-partitioned topics and keys produced by other clients depend on it.
import { randomBytes } from 'node:crypto';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { JavaCompatiblePartitioner, murmur2 } from '../../processors/runtime/partitioner.js';

const metadata = (n: number, leaderless: readonly number[] = []): PartitionMetadata[] =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: leaderless.includes(partitionId) ? -1 : 0,
    replicas: [0],
    isr: [0],
  }));

describe('JavaCompatiblePartitioner', () => {
  it("places every key as kafkajs' DefaultPartitioner does, strings and buffers, any length", () => {
    const ours = JavaCompatiblePartitioner();
    const theirs = Partitioners.DefaultPartitioner();
    const keys: (string | Buffer)[] = [
      '',
      'a',
      'ab',
      'abc',
      'abcd',
      'c-1',
      'c-123456',
      'shop:ünïcødé ✓ 𝄞',
      'x'.repeat(5000),
    ];
    for (let i = 0; i < 3000; i++) {
      const bytes = randomBytes(i % 41);
      keys.push(i % 2 === 0 ? bytes : `c-${i}-${bytes.toString(i % 3 === 0 ? 'latin1' : 'hex')}`);
    }
    for (const n of [1, 3, 8, 12, 64]) {
      const partitionMetadata = metadata(n);
      for (const key of keys) {
        const message = { key, value: null };
        expect(ours({ topic: 't', partitionMetadata, message })).toBe(
          theirs({ topic: 't', partitionMetadata, message }),
        );
      }
    }
  });

  it('matches the Java client on its published test vectors', () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ];
    for (const [key, hash] of cases) expect(murmur2(Buffer.from(key))).toBe(hash);
  });

  it('keeps an explicit partition, and spreads keyless records over the partitions that have a leader', () => {
    const partitioner = JavaCompatiblePartitioner();
    const partitionMetadata = metadata(4, [1]);
    expect(partitioner({ topic: 't', partitionMetadata, message: { key: 'k', value: null, partition: 3 } })).toBe(3);
    const seen = new Set<number>();
    for (let i = 0; i < 30; i++) seen.add(partitioner({ topic: 't', partitionMetadata, message: { value: null } }));
    expect([...seen].sort()).toEqual([0, 2, 3]);
  });
});
