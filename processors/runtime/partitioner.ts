/**
 * The Java client's default partitioner (murmur2 of the key, positive, modulo the partition count; round robin for a
 * record without a key), as kafkajs' `Partitioners.DefaultPartitioner` computes it, in 32-bit integer arithmetic.
 *
 * Why not kafkajs' own: it hashes through a 64-bit Long emulation (four object allocations per four key bytes) and
 * filters the partition list on every message, keyed or not. In CPU profiles of the resolver that was ~4 µs per
 * record sent, a few per cent of the process. The partition a key lands on must not change (co-partitioned topics,
 * keys produced by other clients), so the unit test checks this one against kafkajs' on many keys.
 */
import { randomBytes } from 'node:crypto';
import type { ICustomPartitioner } from 'kafkajs';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 of `(data[0, length)` as a signed 32-bit integer (org.apache.kafka.common.utils.Utils.murmur2). */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k =
      (data[i] as number) |
      ((data[i + 1] as number) << 8) |
      ((data[i + 2] as number) << 16) |
      ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= (data[whole + 2] as number) << 16;
    if (rest >= 2) h ^= (data[whole + 1] as number) << 8;
    h ^= data[whole] as number;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

// Keys are short ids: encoded into one scratch buffer instead of a new Buffer per message.
const scratch = Buffer.allocUnsafe(4096);

/** The partition of `key` among `partitions`, as the Java client's default partitioner picks it. */
export function partitionOfKey(key: string | Buffer, partitions: number): number {
  let hash: number;
  if (typeof key === 'string') {
    const written = key.length * 3 < scratch.length ? scratch.write(key, 0, 'utf8') : -1;
    hash = written >= 0 ? murmur2(scratch, written) : murmur2(Buffer.from(key));
  } else hash = murmur2(key);
  return (hash & 0x7fffffff) % partitions;
}

/** A kafkajs `createPartitioner` with the Java client's placement (see the module comment). */
export const JavaCompatiblePartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key !== null && message.key !== undefined) {
      return partitionOfKey(message.key, partitionMetadata.length);
    }
    // No key: round robin over the partitions that have a leader, from a random start per topic (any partition when
    // none has one).
    const next = (counters.get(topic) ?? randomBytes(4).readUInt32BE(0)) + 1;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    const at = next & 0x7fffffff;
    return available[at % available.length]?.partitionId ?? at % partitionMetadata.length;
  };
};
