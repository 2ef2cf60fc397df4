// The real schema registry through @kafkajs/confluent-schema-registry: TopicNameStrategy subjects, BACKWARD
// compatibility enforced, wire-format round trips, and classification of bytes that can never decode.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSchema } from '../../schemas/catalog.js';
import type { Transaction } from '../../schemas/generated/types.js';
import { AppError } from '../../processors/runtime/errors.js';
import { subjectOf } from '../../processors/runtime/serde.js';
import { createTestContext, type TestContext } from '../helpers/context.js';
import { sampleTransaction } from '../fixtures/events.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  await ctx?.close(); // undefined when beforeAll failed: report that error, not this one
});

describe('schema registry', () => {
  it('registers every contract under <topic>-value and round-trips a transaction', async () => {
    for (const spec of ctx.topics.all) expect(await ctx.serde.register(spec)).toBeGreaterThan(0);
    const versions = await fetch(
      `${ctx.config.SCHEMA_REGISTRY_URL}/subjects/${subjectOf(ctx.topics.transactionsRaw)}/versions`,
    );
    expect(versions.ok).toBe(true);
    expect(((await versions.json()) as number[]).length).toBeGreaterThan(0);
    const tx = sampleTransaction();
    const bytes = await ctx.serde.encode(ctx.topics.transactionsRaw, tx);
    expect(bytes[0]).toBe(0); // Confluent wire format: magic byte, then the 4-byte schema id
    const decoded = await ctx.serde.decode<Transaction>(ctx.topics.transactionsRaw, bytes);
    expect({
      ...decoded,
      lineItems: decoded.lineItems.map((l) => ({ ...l })),
      identity: { ...decoded.identity },
    }).toEqual(tx);
  });

  it('accepts a backward-compatible change and refuses an incompatible one', async () => {
    const subject = `${ctx.config.TOPIC_PREFIX}compat-value`;
    const v1 = loadSchema('transaction');
    const fields = v1['fields'] as object[];
    await ctx.serde.registerSchema(subject, v1);
    // New optional field with a default: old data still reads.
    const v2 = { ...v1, fields: [...fields, { name: 'channel', type: ['null', 'string'], default: null }] };
    expect(await ctx.serde.registerSchema(subject, v2)).toBeGreaterThan(0);
    // New required field without a default: records written with v2 could not be read. BACKWARD must refuse it.
    const v3 = { ...v2, fields: [...v2.fields, { name: 'loyaltyTier', type: 'string' }] };
    const refused = await ctx.serde.registerSchema(subject, v3).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe('CONFIG_INVALID');
  });

  it('adopts a subject created elsewhere without a compatibility rule, and then enforces BACKWARD on it', async () => {
    const subject = `${ctx.config.TOPIC_PREFIX}foreign-value`;
    const url = ctx.config.SCHEMA_REGISTRY_URL;
    const v1 = loadSchema('behaviorEvent');
    const created = await fetch(`${url}/subjects/${subject}/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ schema: JSON.stringify(v1) }),
    });
    expect(created.ok).toBe(true);
    expect(await ctx.serde.registerSchema(subject, v1)).toBeGreaterThan(0);
    const config = (await (await fetch(`${url}/config/${subject}`)).json()) as { compatibilityLevel: string };
    expect(config.compatibilityLevel).toBe('BACKWARD');
    const breaking = { ...v1, fields: [...(v1['fields'] as object[]), { name: 'required', type: 'int' }] };
    await expect(ctx.serde.registerSchema(subject, breaking)).rejects.toThrow(/refused by the registry/);
  });

  it('refuses to encode a value that does not fit the contract, naming the field', async () => {
    const bad = { ...sampleTransaction(), totalMinor: 'ten pounds' };
    const err = await ctx.serde.encode(ctx.topics.transactionsRaw, bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('RECORD_INVALID');
    expect((err as AppError).message).toMatch(/totalMinor/);
  });

  it('classifies undecodable bytes as dead letters, not retries', async () => {
    const spec = ctx.topics.transactionsRaw;
    await ctx.serde.register(spec);
    const codeOf = async (bytes: Buffer) =>
      ctx.serde.decode(spec, bytes).then(
        () => 'decoded',
        (e: unknown) => (e instanceof AppError ? e.code : String(e)),
      );
    expect(await codeOf(Buffer.from('{"json": "not avro"}'))).toBe('RECORD_UNDECODABLE');
    expect(await codeOf(Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0, 1, 2, 3]))).toBe('RECORD_UNDECODABLE'); // unknown id
    const good = await ctx.serde.encode(spec, sampleTransaction());
    expect(await codeOf(good.subarray(0, 12))).toBe('RECORD_UNDECODABLE'); // truncated
  });
});
