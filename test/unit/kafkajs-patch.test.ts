// patches/kafkajs+2.2.4.patch (applied by `npm ci` through patch-package): a send's messages grouped per partition in
// one pass, varints written in place, encoder buffers not zero-filled, records encoded into one exact buffer with
// their headers and without a copy of each message, batches checksummed natively (@node-rs/crc32), consumed records'
// headers gathered in one object, and their offsets and timestamps summed as numbers.
// What goes on the wire must not change, so the encodings are checked against LEB128 of the zig-zag value and the
// record layout written here from the protocol, the grouping against its definition, whole record batches against
// the same batches encoded from zeroed buffers, and decoded offsets and timestamps against BigInt sums.
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

/** kafkajs' record encoder (record batch v0). */
function recordEncoder() {
  return require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (args: {
    offsetDelta: number;
    timestampDelta: number;
    key: Buffer | null;
    value: Buffer | null;
    headers: Record<string, string>;
  }) => Encoder;
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
    expect(readFileSync(require.resolve('kafkajs/src/protocol/encoder.js'), 'utf8')).not.toContain('Buffer.alloc(');
  });

  it('encodes record batches byte for byte the same from buffers full of garbage as from zeroed ones', async () => {
    const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
      RecordBatch: (args: {
        firstTimestamp: number;
        maxTimestamp: number;
        lastOffsetDelta: number;
        records: Buffer[] | unknown[];
      }) => Promise<Encoder>;
    };
    const Record = recordEncoder();
    const at = 1_733_500_000_000;
    const encode = async () => {
      const records = Array.from({ length: 300 }, (_, i) =>
        Record({
          offsetDelta: i,
          timestampDelta: i * 37,
          key: i % 7 === 0 ? null : Buffer.from(`customer-${i}`),
          value: i % 11 === 0 ? null : Buffer.alloc(i * 5, i % 251), // from empty to larger than the initial 512
          headers: i % 3 === 0 ? { source: `raw:${i % 8}:${i}` } : {},
        }),
      );
      const batch = await RecordBatch({
        firstTimestamp: at,
        maxTimestamp: at + 300 * 37,
        lastOffsetDelta: 299,
        records,
      });
      return Buffer.concat([...records.map((r) => r.buffer), batch.buffer]);
    };
    const allocUnsafe = Buffer.allocUnsafe.bind(Buffer);
    const filled = (byte: number) => (size: number) => allocUnsafe(size).fill(byte);
    try {
      Buffer.allocUnsafe = filled(0xa5);
      const fromGarbage = await encode();
      Buffer.allocUnsafe = filled(0);
      const fromZeroes = await encode();
      expect(fromGarbage.length).toBeGreaterThan(300 * 10);
      expect(fromGarbage.equals(fromZeroes)).toBe(true);
    } finally {
      Buffer.allocUnsafe = allocUnsafe;
    }
  });

  it('decodes record offsets and timestamps as base + delta, in numbers and past where numbers stop', () => {
    const Decoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => {
      readVarLongNumber(): number | null;
      readVarLong(): { toString(): string };
      readVarIntBytes(): Buffer;
    };
    const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as (
      decoder: InstanceType<typeof Decoder>,
      context: { firstOffset: string; firstTimestamp: string; magicByte: number; timestampType: number },
    ) => { offset: string; timestamp: string; key: Buffer | null; value: Buffer | null };
    const Record = recordEncoder();
    // varlongs: every value the number path reads (up to 7 bytes) and longer ones, which it leaves to readVarLong
    for (const v of [
      ...values,
      2 ** 47,
      -(2 ** 47),
      2 ** 48 - 1,
      -(2 ** 48),
      2 ** 48,
      1_733_500_000_000,
      2 ** 53 - 1,
    ]) {
      const bytes = Buffer.from(zigzagVarint(v));
      const decoder = new Decoder(Buffer.concat([bytes, Buffer.from([0x2a])]));
      const n = decoder.readVarLongNumber();
      if (bytes.length <= 7) expect(n).toBe(v);
      else {
        expect(n).toBeNull();
        expect(decoder.readVarLong().toString()).toBe(String(v));
      }
    }
    const bases = ['0', '42', '1733500000000', '999999999999999', '9007199254740990', '4611686018427387904', '-1'];
    const deltas = [0, 1, 37, 2 ** 31 - 1, -(2 ** 31), 2 ** 47, 2 ** 53 - 1];
    for (const firstOffset of bases)
      for (const firstTimestamp of bases)
        for (const delta of deltas) {
          const offsetDelta = delta | 0; // offset deltas are varints (32-bit)
          const record = Record({
            offsetDelta,
            timestampDelta: delta,
            key: Buffer.from('k'),
            value: null,
            headers: {},
          });
          const context = { firstOffset, firstTimestamp, magicByte: 2, timestampType: 0 };
          // a record is its length (a varint) and its body, which the record decoder reads
          const body = new Decoder(record.buffer).readVarIntBytes();
          const decoded = decodeRecord(new Decoder(body), context);
          expect(decoded.offset).toBe((BigInt(firstOffset) + BigInt(offsetDelta)).toString());
          expect(decoded.timestamp).toBe((BigInt(firstTimestamp) + BigInt(delta)).toString());
          expect(decoded.key?.toString()).toBe('k');
          expect(decoded.value).toBeNull();
        }
  });

  it('encodes records (headers in place, one exact buffer) as the protocol lays them out', () => {
    // The record layout of the Kafka protocol (record batch v2), written here from the spec, not from kafkajs.
    const varint = (v: number) => zigzagVarint(v);
    const bytes = (v: Buffer | string | null) => {
      if (v === null) return varint(-1);
      const b = Buffer.from(v);
      return [...varint(b.length), ...b];
    };
    const reference = (r: {
      offsetDelta: number;
      timestampDelta: number;
      key: Buffer | string | null;
      value: Buffer | string | null;
      headers: [string, Buffer | string][];
    }) => {
      const body = [
        0, // attributes
        ...varint(r.timestampDelta),
        ...varint(r.offsetDelta),
        ...bytes(r.key),
        ...bytes(r.value),
        ...varint(r.headers.length),
        ...r.headers.flatMap(([k, v]) => [...bytes(k), ...bytes(v)]),
      ];
      return [...varint(body.length), ...body];
    };
    interface RecordArgs {
      offsetDelta: number;
      timestampDelta: number;
      key: Buffer | string | null;
      value: Buffer | string | null;
      headers?: Record<string, string | Buffer | (string | Buffer)[]>;
    }
    const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (args: RecordArgs) => Encoder;
    const cases: RecordArgs[] = [
      { offsetDelta: 0, timestampDelta: 0, key: null, value: null, headers: {} },
      { offsetDelta: 5, timestampDelta: 1_733_500_000_000, key: 'ké', value: 'välue' }, // no headers
      {
        offsetDelta: 299,
        timestampDelta: -3,
        key: Buffer.alloc(130, 7), // a length of two varint bytes
        value: Buffer.alloc(20_000, 9), // past the encoder's initial 512 bytes
        headers: { source: 'raw:3:1234', multi: ['a', Buffer.from([0, 1]), 'ç'], empty: '' },
      },
    ];
    for (const c of cases) {
      const headers = Object.entries(c.headers ?? {}).flatMap(([k, v]) =>
        (Array.isArray(v) ? v : [v]).map((each): [string, Buffer | string] => [k, each]),
      );
      const encoded = Record(c).buffer;
      expect([...encoded]).toEqual(reference({ ...c, headers }));
    }
    // The produce request passes each message's key, value and headers, not a spread copy of it (measured: the copy
    // cost more than the record's encoding).
    const produce = readFileSync(require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js'), 'utf8');
    expect(produce).not.toContain('...message,');
  });

  it('decodes record headers into one object: repeated keys as arrays, __proto__ as an own property', () => {
    const Decoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => {
      readVarIntBytes(): Buffer;
    };
    const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as (
      decoder: InstanceType<typeof Decoder>,
      context: { firstOffset: string; firstTimestamp: string; magicByte: number; timestampType: number },
    ) => { headers: Record<string, Buffer | Buffer[]> };
    const Record = recordEncoder() as unknown as (args: {
      offsetDelta: number;
      timestampDelta: number;
      key: Buffer | null;
      value: Buffer | null;
      headers: Record<string, string | string[]>;
    }) => Encoder;
    const decode = (headers: Record<string, string | string[]>) => {
      const record = Record({ offsetDelta: 0, timestampDelta: 0, key: null, value: null, headers });
      const body = new Decoder(record.buffer).readVarIntBytes();
      const context = { firstOffset: '0', firstTimestamp: '0', magicByte: 2, timestampType: 0 };
      return decodeRecord(new Decoder(body), context).headers;
    };
    const text = (h: Record<string, Buffer | Buffer[]>) =>
      Object.fromEntries(
        Object.entries(h).map(([k, v]) => [k, Array.isArray(v) ? v.map((b) => b.toString()) : v.toString()]),
      );
    expect(text(decode({}))).toEqual({});
    expect(text(decode({ source: 'raw:1:2' }))).toEqual({ source: 'raw:1:2' });
    expect(text(decode({ a: 'x', multi: ['1', '2', '3'], pair: ['p', 'q'] }))).toEqual({
      a: 'x',
      multi: ['1', '2', '3'],
      pair: ['p', 'q'],
    });
    // Headers named like Object.prototype members are data like any other (they came out as [member, value]), and
    // __proto__ does not become the object's prototype.
    const hostile = decode({ ['__proto__']: 'x', constructor: 'c', toString: ['t', 'u'], after: 'y' });
    expect(Object.getPrototypeOf(hostile)).toBe(Object.prototype);
    expect(Object.keys(hostile)).toEqual(['__proto__', 'constructor', 'toString', 'after']);
    expect(text(hostile)).toEqual({ ['__proto__']: 'x', constructor: 'c', toString: ['t', 'u'], after: 'y' });
  });

  it('checksums record batches with CRC-32C, natively, as the table loop does', () => {
    const checksum = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (b: Buffer) => number;
    const tableLoop = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (b: Buffer) => number;
    const source = readFileSync(require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js'), 'utf8');
    expect(source).toContain("require('@node-rs/crc32')");
    expect(checksum(Buffer.from('123456789'))).toBe(0xe3069283); // the CRC-32C check value
    expect(checksum(Buffer.alloc(0))).toBe(0);
    const big = Buffer.alloc(40_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + (i >> 8)) & 255;
    for (const [from, to] of [
      [0, 1],
      [3, 300],
      [1_000, 31_000],
      [39_999, 40_000],
      [0, 40_000],
    ] as const) {
      const view = big.subarray(from, to); // record batches are views into a larger buffer
      expect(checksum(view)).toBe(tableLoop(view) >>> 0);
    }
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
