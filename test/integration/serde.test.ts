// The serde's batch encoder on the real registry: byte for byte what the one-at-a-time encoder writes (the feature
// processor's flush encodes its scores with it), and a value that does not fit the contract is refused naming the field.
import { afterAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/context.js';
import { sampleBehavior, sampleTransaction, T0 } from '../fixtures/events.js';

const contexts: TestContext[] = [];
afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
});

describe('EventSerde.encodeMany', () => {
  it('writes the same bytes as encode, and decodes back to the same values', async () => {
    const ctx = await createTestContext();
    contexts.push(ctx);
    const spec = ctx.topics.transactionsRaw;
    const values = Array.from({ length: 50 }, (_, i) =>
      sampleTransaction({ eventId: `tx-${i}`, eventTimeMs: T0 + i, totalMinor: 100 * i }),
    );
    const many = await ctx.serde.encodeMany(spec, values);
    const one = await Promise.all(values.map((v) => ctx.serde.encode(spec, v)));
    expect(many.map((b) => b.toString('hex'))).toEqual(one.map((b) => b.toString('hex')));
    expect(await Promise.all(many.map((b) => ctx.serde.decode(spec, b)))).toEqual(
      await Promise.all(one.map((b) => ctx.serde.decode(spec, b))),
    );
  });

  it('refuses a value that does not fit, naming the field', async () => {
    const ctx = await createTestContext();
    contexts.push(ctx);
    const bad = { ...sampleBehavior(), eventTimeMs: 'yesterday' };
    await expect(ctx.serde.encodeMany(ctx.topics.clicksRaw, [sampleBehavior(), bad])).rejects.toThrow(/eventTimeMs/);
  });
});
