// The serde's encoders on the real registry: byte for byte what the Confluent client library writes for the registered
// schema id, one at a time and in batches across the slabs they write into (test/unit/frame-writer.test.ts: slab
// boundaries), and a value that does not fit the contract is refused naming the field.
import { afterAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/context.js';
import { sampleBehavior, sampleTransaction, T0 } from '../fixtures/events.js';

const contexts: TestContext[] = [];
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
});

describe('EventSerde.encodeMany', () => {
  it('writes the bytes the Confluent client writes, one at a time and in batches, and they decode back', async () => {
    const ctx = await createTestContext();
    contexts.push(ctx);
    const spec = ctx.topics.transactionsRaw;
    const id = await ctx.serde.register(spec);
    // 2,000 records (~200 bytes each) fill many 16 KiB slabs.
    const values = Array.from({ length: 2_000 }, (_, i) =>
      sampleTransaction({ eventId: `tx-${i}`, eventTimeMs: T0 + i, totalMinor: 100 * i }),
    );
    const reference = await Promise.all(values.map((v) => ctx.serde.registry.encode(id, v)));
    const many = await ctx.serde.encodeMany(spec, values);
    const one = await Promise.all(values.map((v) => ctx.serde.encode(spec, v)));
    const hex = (list: Buffer[]) => list.map((b) => b.toString('hex'));
    expect(hex(many)).toEqual(hex(reference));
    expect(hex(one)).toEqual(hex(reference));
    expect(await Promise.all(many.map((b) => ctx.serde.decode(spec, b)))).toEqual(values);
  });

  it('refuses a value that does not fit, naming the field', async () => {
    const ctx = await createTestContext();
    contexts.push(ctx);
    const bad = { ...sampleBehavior(), eventTimeMs: 'yesterday' };
    await expect(ctx.serde.encodeMany(ctx.topics.clicksRaw, [sampleBehavior(), bad])).rejects.toThrow(/eventTimeMs/);
  });
});
