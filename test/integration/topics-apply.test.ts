// Topics as code against the real broker: create, re-apply as a no-op, and converge drifted settings.
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTopics, readActual } from '../../topics/apply.js';
import { createTestContext, waitFor, type TestContext } from '../helpers/context.js';

const { ConfigResourceTypes } = kafkajs;
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(async () => {
  if (!ctx) return; // beforeAll failed: its error is the one to read
  await ctx.admin.deleteTopics({ topics: ctx.topics.all.map((t) => t.name) }).catch(() => undefined);
  await ctx.close();
});

describe('npm run topics -- apply', () => {
  it('creates every catalog topic with its settings, then is idempotent, then repairs drift', async () => {
    const first = await applyTopics(ctx.admin, ctx.topics.all);
    expect(first.every((a) => a.kind === 'create')).toBe(true);
    const actual = await readActual(ctx.admin, ctx.topics.all);
    for (const spec of ctx.topics.all) {
      const have = actual.get(spec.name);
      expect(have?.partitions).toBe(spec.partitions);
      expect(have?.configs['cleanup.policy']).toBe(spec.cleanupPolicy);
      expect(have?.configs['retention.ms']).toBe(String(spec.retentionMs));
    }
    expect(actual.get(ctx.topics.identityLinks.name)?.configs['cleanup.policy']).toBe('compact');

    const second = await applyTopics(ctx.admin, ctx.topics.all);
    expect(second.every((a) => a.kind === 'unchanged')).toBe(true);

    // Someone changes retention by hand and the catalog grows a topic's partitions: apply converges both.
    await ctx.admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: ctx.topics.clicksRaw.name,
          configEntries: [
            { name: 'retention.ms', value: '1000' },
            { name: 'cleanup.policy', value: 'delete' },
          ],
        },
      ],
    });
    // KRaft propagates config changes through the metadata log: wait until the broker reports the drift.
    await waitFor(
      async () => (await readActual(ctx.admin, ctx.topics.all)).get(ctx.topics.clicksRaw.name)?.configs['retention.ms'],
      (v) => v === '1000',
      { what: 'the hand-made retention change to be visible' },
    );
    const grown = ctx.topics.all.map((t) => (t.name === ctx.topics.transactionsRaw.name ? { ...t, partitions: 4 } : t));
    const third = await applyTopics(ctx.admin, grown);
    expect(third.filter((a) => a.kind !== 'unchanged').map((a) => `${a.kind} ${a.spec.name}`)).toEqual([
      `add-partitions ${ctx.topics.transactionsRaw.name}`,
      `alter-config ${ctx.topics.clicksRaw.name}`,
    ]);
    const after = await waitFor(
      () => readActual(ctx.admin, grown),
      (a) => a.get(ctx.topics.clicksRaw.name)?.configs['retention.ms'] === String(ctx.topics.clicksRaw.retentionMs),
      { what: 'retention restored' },
    );
    expect(after.get(ctx.topics.transactionsRaw.name)?.partitions).toBe(4);
  });
});
