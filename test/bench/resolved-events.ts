/**
 * Resolved events for the feature benchmarks: `total` clicks and transactions of `customers` customers over 30 days in
 * event-time order, keyed by global id as the resolver publishes them (seeded: every run produces the same events).
 *
 * Traffic (`BENCH_FEATURE_TRAFFIC`): `uniform` (default) draws every event's customer uniformly, the worst case for a
 * processor that coalesces a customer's events (nearly every event of a flush is its own customer); `sessions` is
 * shaped like shoppers': `SESSION_CONCURRENCY` sessions are open at a time, each a uniformly drawn customer's burst of
 * 5–40 events, and every event comes from one of the open sessions.
 */
import { DAY_MS } from '../../processors/features/definitions.js';
import { seededRandom } from '../../processors/identity/model.js';
import { createIdempotentProducer } from '../../processors/runtime/kafka.js';
import type { ScratchRun } from '../../processors/tools/scratch-run.js';
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';

const CATEGORIES = ['books', 'electronics', 'fashion', 'garden', 'home', 'sports', 'toys', 'beauty'];
const TYPES = ['VIEW', 'VIEW', 'VIEW', 'VIEW', 'VIEW', 'SEARCH', 'SEARCH', 'ADD_TO_CART', 'CHECKOUT_START'] as const;

/** One generated resolved event, keyed by its global customer id. */
export type ResolvedEvent =
  | { readonly key: string; readonly kind: 'transaction'; readonly value: Transaction }
  | { readonly key: string; readonly kind: 'click'; readonly value: BehaviorEvent };

export const TRAFFIC_SHAPES = ['uniform', 'sessions'] as const;
export type Traffic = (typeof TRAFFIC_SHAPES)[number];
const SESSION_CONCURRENCY = 2_000;

/** The traffic shape `BENCH_FEATURE_TRAFFIC` asks for (default uniform); anything else is an error. */
export function trafficOf(env: Readonly<Record<string, string | undefined>>): Traffic {
  const asked = env['BENCH_FEATURE_TRAFFIC'] ?? 'uniform';
  if (!(TRAFFIC_SHAPES as readonly string[]).includes(asked))
    throw new Error(`BENCH_FEATURE_TRAFFIC must be one of ${TRAFFIC_SHAPES.join(', ')}, not ${asked}`);
  return asked as Traffic;
}

/** Which customer each event belongs to, in order. */
function customerPicker(traffic: Traffic, customers: number, rnd: () => number): () => number {
  if (traffic === 'uniform') return () => Math.floor(rnd() * customers);
  const pick = seededRandom(11);
  const open = Array.from({ length: SESSION_CONCURRENCY }, () => ({
    customer: Math.floor(pick() * customers),
    left: 5 + Math.floor(pick() * 36),
  }));
  return () => {
    const i = Math.floor(pick() * open.length);
    const session = open[i] as { customer: number; left: number };
    const { customer } = session;
    if (--session.left === 0) open[i] = { customer: Math.floor(pick() * customers), left: 5 + Math.floor(pick() * 36) };
    return customer;
  };
}

/** The benchmark's events in publishing order (the same seed, so the same events, as every other run). */
export function* resolvedEvents(
  total: number,
  customers: number,
  traffic: Traffic = 'uniform',
): Generator<ResolvedEvent> {
  const rnd = seededRandom(7);
  const nextCustomer = customerPicker(traffic, customers, rnd);
  const start = Date.UTC(2026, 9, 1);
  for (let j = 0; j < total; j++) {
    const c = nextCustomer();
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
        couponCode: null,
      };
      if (tx.kind === 'RETURN') {
        Object.assign(tx, { totalMinor: -price, lineItems: [{ ...tx.lineItems[0], quantity: -1 }] });
      }
      yield { key, kind: 'transaction', value: tx };
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
        reviewText: null,
        reviewSentiment: null,
      };
      yield { key, kind: 'click', value: ev };
    }
  }
}

export async function produceResolvedEvents(
  run: Pick<ScratchRun, 'kafka' | 'serde' | 'topics'>,
  total: number,
  customers: number,
  traffic: Traffic = 'uniform',
): Promise<void> {
  const { kafka, serde, topics } = run;
  const producer = createIdempotentProducer(kafka);
  await producer.connect();
  const chunk = 20_000;
  let txs: { key: string; value: Buffer }[] = [];
  let clicks: { key: string; value: Buffer }[] = [];
  const send = async () => {
    await producer.sendBatch({
      acks: -1,
      topicMessages: [
        { topic: topics.customerTransactions.name, messages: txs },
        { topic: topics.customerClicks.name, messages: clicks },
      ],
    });
    txs = [];
    clicks = [];
  };
  let n = 0;
  for (const ev of resolvedEvents(total, customers, traffic)) {
    if (ev.kind === 'transaction') {
      txs.push({ key: ev.key, value: await serde.encode(topics.customerTransactions, ev.value) });
    } else {
      clicks.push({ key: ev.key, value: await serde.encode(topics.customerClicks, ev.value) });
    }
    if (++n % chunk === 0) await send();
  }
  if (txs.length + clicks.length > 0) await send();
  await producer.disconnect();
}
