// patches/kafkajs+2.2.4.patch (applied by `npm ci` through patch-package): a send's messages grouped per partition in
// one pass, and varints written in place. What goes on the wire must not change, so the encodings are checked against
// LEB128 of the zig-zag value computed here independently, and the grouping against its definition.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
type Encoder = {
  writeVarInt(v: number): Encoder;
  writeVarLong(v: number): Encoder;
  readonly buffer: Buffer;
};
const EncoderClass = require('kafkajs/src/protocol/encoder.js') as {
  new (): Encoder;
  sizeOfVarInt(v: number): number;
  sizeOfVarLong(v: number): number;
};
const groupMessagesPerPartition = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (args: {
  topic: string;
  partitionMetadata: unknown[];
  messages: { key: string }[];
  partitioner: (args: { message: { key: string } }) => number;
}) => Record<string, { key: string }[]>;

/** LEB128 of the zig-zag encoding of v (64-bit). */
function zigzagVarint(v: number): number[] {
  let z = BigInt.asUintN(64, (BigInt(v) << 1n) ^ (BigInt(v) >> 63n));
  const out: number[] = [];
  while (z >= 0x80n) {
    out.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  out.push(Number(z));
  return out;
}

describe('kafkajs patch', () => {
  const values = [
    0,
    1,
    -1,
    63,
    -64,
    64,
    -65,
    127,
    128,
    300,
    -300,
    8191,
    16384,
    2 ** 20,
    -(2 ** 20),
    2 ** 30,
    2 ** 31 - 1,
    -(2 ** 31),
  ];
  it('writes varints and varlongs as LEB128 of their zig-zag value, and sizes them alike', () => {
    for (const v of values) {
      expect([...new EncoderClass().writeVarInt(v).buffer]).toEqual(zigzagVarint(v));
      expect(EncoderClass.sizeOfVarInt(v)).toBe(zigzagVarint(v).length);
    }
    // varlongs: the 32-bit range takes the varint path, larger values (timestamps) the Long path
    for (const v of [...values, 2 ** 31, -(2 ** 31) - 1, 1_733_500_000_000, -1_733_500_000_000, 2 ** 53 - 1]) {
      expect([...new EncoderClass().writeVarLong(v).buffer]).toEqual(zigzagVarint(v));
      expect(EncoderClass.sizeOfVarLong(v)).toBe(zigzagVarint(v).length);
    }
    // many in one encoder: each written after the other, the buffer grown as needed
    const encoder = new EncoderClass();
    for (const v of values) encoder.writeVarInt(v).writeVarLong(v);
    expect([...encoder.buffer]).toEqual(values.flatMap((v) => [...zigzagVarint(v), ...zigzagVarint(v)]));
  });

  it('is applied (npm ci runs patch-package)', () => {
    const source = readFileSync(require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js'), 'utf8');
    expect(source).not.toContain('[...current, message]');
  });

  it('groups a send per partition in message order', () => {
    const messages = Array.from({ length: 50_000 }, (_, i) => ({ key: `k${i}` }));
    const grouped = groupMessagesPerPartition({
      topic: 't',
      partitionMetadata: [{}, {}, {}],
      messages,
      partitioner: ({ message }) => Number(message.key.slice(1)) % 3,
    });
    expect(Object.keys(grouped).sort()).toEqual(['0', '1', '2']);
    for (const p of [0, 1, 2]) expect(grouped[p]).toEqual(messages.filter((_, i) => i % 3 === p));
    expect(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual(
      {},
    );
  });
});
