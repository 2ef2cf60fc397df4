// Real data through the real pipeline: the Online Retail fixture (rows of the UCI dataset, see test/fixtures/README.md)
// replayed as platform events, through Kafka and the warehouse sink. Nothing may be lost: every invoice ends up either
// as a warehouse fact or as a dead letter carrying its reason.
import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlatformProducer } from '../../processors/producers/platform-producer.js';
import { csvRecords, onlineRetailTransactions } from '../../processors/producers/replay.js';
import type { Transaction } from '../../schemas/generated/types.js';
import { createTestContext, startWarehouseSink, waitFor, type TestContext } from '../helpers/context.js';

const fixture = fileURLToPath(new URL('../fixtures/online-retail-sample.csv', import.meta.url));
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ topics: true, warehouse: true, env: { SINK_MAX_WAIT_MS: '200' } });
});
afterAll(async () => {
  await ctx?.close(); // undefined when beforeAll failed: report that error, not this one
});

const rows = async <T>(query: string) => (await ctx.clickhouse.query({ query, format: 'JSONEachRow' })).json<T>();

describe('Online Retail replay', () => {
  it('lands valid invoices as facts (cancellations as returns) and dead-letters anomalies with reasons', async () => {
    const transactions: Transaction[] = [];
    for await (const tx of onlineRetailTransactions(csvRecords(createReadStream(fixture)))) transactions.push(tx);
    expect(transactions.length).toBeGreaterThan(10);

    // Schema-only validation at the source, as `npm run replay` does: anomalies must reach the processors.
    const producer = await PlatformProducer.connect(ctx.config, {
      kafka: ctx.kafka,
      serde: ctx.serde,
      topics: ctx.topics,
      validation: 'schema',
    });
    await Promise.all(transactions.map((t) => producer.sendTransaction(t)));
    await producer.disconnect();
    const { sink } = await startWarehouseSink(ctx);
    try {
      const total = async () =>
        (
          await rows<{ n: number }>(
            `SELECT (SELECT count() FROM fact_transaction FINAL) + (SELECT count() FROM dead_letter FINAL) AS n`,
          )
        )[0]?.n;
      await waitFor(total, (n) => Number(n) === transactions.length, { what: 'every invoice stored or parked' });
    } finally {
      await sink.stop();
    }

    const facts = await rows<{ event_id: string; kind: string; platform_customer_id: string; total_minor: number }>(
      'SELECT event_id, kind, platform_customer_id, total_minor FROM fact_transaction FINAL',
    );
    const letters = await rows<{ original_key: string; reason: string }>(
      'SELECT original_key, reason FROM dead_letter FINAL',
    );
    const factIds = new Set(facts.map((f) => f.event_id));
    expect(factIds.size + letters.length).toBe(transactions.length);

    const cancellation = facts.find((f) => f.event_id === 'online-retail:C536379');
    expect(cancellation?.kind).toBe('RETURN');
    expect(Number(cancellation?.total_minor)).toBeLessThan(0);
    const guest = transactions.find((t) => t.platformCustomerId === null && factIds.has(t.eventId));
    expect(guest).toBeDefined();
    expect(facts.find((f) => f.event_id === guest?.eventId)?.platform_customer_id).toBe('');

    const reasons = letters.map((l) => l.reason).join('\n');
    expect(reasons).toMatch(/quantity -\d+ must be > 0 in a PURCHASE/); // 536589: a stock adjustment
    expect(reasons).toMatch(/unitPriceMinor -\d+ is negative/); // A563185..7: bad-debt adjustments
    expect(factIds.has('online-retail:536589')).toBe(false);
  });
});
