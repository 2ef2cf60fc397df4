/**
 * Resolved events for the feature benchmarks: `total` clicks and transactions of `customers` customers over 30 days in
 * event-time order, keyed by global id as the resolver publishes them (customers drawn uniformly, seeded: every run
 * produces the same events).
 */
import { DAY_MS } from '../../processors/features/definitions.js';
import { seededRandom } from '../../processors/identity/model.js';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import type { ScratchRun } from '../../processors/tools/scratch-run.js';
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';

const CATEGORIES = ['books', 'electronics', 'fashion', 'garden', 'home', 'sports', 'toys', 'beauty'];
const TYPES = ['VIEW', 'VIEW', 'VIEW', 'VIEW', 'VIEW', 'SEARCH', 'SEARCH', 'ADD_TO_CART', 'CHECKOUT_START'] as const;

export async function produceResolvedEvents(
  run: Pick<ScratchRun, 'kafka' | 'serde' | 'topics'>,
  total: number,
  customers: number,
): Promise<void> {
  const { kafka, serde, topics } = run;
  const producer = createIdempotentProducer(kafka);
  await producer.connect();
  const rnd = seededRandom(7);
  const start = Date.UTC(2026, 9, 1);
  const chunk = 20_000;
  for (let i = 0; i < total; i += chunk) {
    const txs: { key: string; value: Buffer }[] = [];
    const clicks: { key: string; value: Buffer }[] = [];
    for (let j = i; j < Math.min(total, i + chunk); j++) {
      const c = Math.floor(rnd() * customers);
      const key = `c-${c}`;
      const eventTimeMs = start + Math.floor((j / total) * 30 * DAY_MS);
      const category = CATEGORIES[Math.floor(rnd() * CATEGORIES.length)] ?? 'books';
      const sessionId = `s-${c}-${Math.floor(eventTimeMs / (3 * 3_600_000))}`;
      if (rnd() < 0.05) {
        const price = 500 + Math.floor(rnd() * 20_000);
        const tx: Transaction = {
          eventId: `tx-${j}`,
          eventTimeMs,
          platform: 'bench',
          platformCustomerId: key,
          orderId: `o-${j}`,
          kind: rnd() < 0.05 ? 'RETURN' : 'PURCHASE',
          lineItems: [
            {
              productId: `p-${j % 997}`,
              productName: null,
              category,
              brand: null,
              quantity: 1,
              unitPriceMinor: price,
            },
          ],
          totalMinor: price,
          currency: 'GBP',
          sessionId,
          deviceId: null,
          identity: null,
        };
        if (tx.kind === 'RETURN') {
          Object.assign(tx, { totalMinor: -price, lineItems: [{ ...tx.lineItems[0], quantity: -1 }] });
        }
        txs.push({ key, value: await serde.encode(topics.customerTransactions, tx) });
      } else {
        const ev: BehaviorEvent = {
          eventId: `ev-${j}`,
          eventTimeMs,
          platform: 'bench',
          platformCustomerId: key,
          sessionId,
          deviceId: null,
          type: TYPES[Math.floor(rnd() * TYPES.length)] ?? 'VIEW',
          productId: `p-${j % 997}`,
          category,
          searchQuery: null,
          quantity: null,
          priceMinor: null,
          currency: null,
          orderId: null,
          identity: null,
        };
        clicks.push({ key, value: await serde.encode(topics.customerClicks, ev) });
      }
    }
    await producer.sendBatch({
      acks: -1,
      topicMessages: [
        { topic: topics.customerTransactions.name, messages: txs },
        { topic: topics.customerClicks.name, messages: clicks },
      ],
    });
  }
  await producer.disconnect();
}
