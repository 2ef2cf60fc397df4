/** Records as a buggy platform would send them; the demo publishes them to show the dead-letter path end to end. */
import type { Message } from 'kafkajs';
import type { Transaction } from '../schemas/generated/types.js';
import type { TopicCatalog } from '../topics/catalog.js';
import type { EventSerde } from './runtime/serde.js';

export async function sampleBadRecords(
  serde: EventSerde,
  topics: TopicCatalog,
): Promise<{ topic: string; message: Message }[]> {
  const line = { productId: 'x', productName: null, category: 'other', brand: null, quantity: 1, unitPriceMinor: 100 };
  const base: Transaction = {
    eventId: 'demo-bad-1',
    eventTimeMs: Date.UTC(2026, 8, 1),
    platform: 'shopwave',
    platformCustomerId: 'demo-bad',
    orderId: 'demo-bad-order',
    kind: 'PURCHASE',
    lineItems: [line],
    totalMinor: 100,
    currency: 'GBP',
    sessionId: null,
    deviceId: null,
    identity: null,
    couponCode: null,
  };
  const tx = topics.transactionsRaw.name;
  return [
    { topic: tx, message: { key: 'shopwave:demo-bad', value: Buffer.from('{"orderId": "sent as JSON, not Avro"}') } },
    {
      topic: tx,
      message: {
        key: 'shopwave:demo-bad',
        value: await serde.encode(topics.transactionsRaw, { ...base, eventId: 'demo-bad-2', currency: 'ABC' }),
      },
    },
    {
      topic: tx,
      message: {
        key: 'shopwave:demo-bad',
        value: await serde.encode(topics.transactionsRaw, {
          ...base,
          eventId: 'demo-bad-3',
          lineItems: [{ ...line, quantity: -2 }],
        }),
      },
    },
  ];
}
