// Group commit of exposures: decisions that arrive while a send is in flight share the next send; one send at a
// time; a failed send fails every decision in it (the API then answers 503), and later sends still go out.
import { describe, expect, it, vi } from 'vitest';
import { ExposurePublisher } from '../../processors/api/exposures.js';
import type { SerialProducer } from '../../processors/runtime/kafka.js';
import type { EventSerde } from '../../processors/runtime/serde.js';
import type { AdDecision } from '../../schemas/generated/types.js';
import { topicCatalog } from '../../topics/catalog.js';
import { manualProducer, type ManualSend } from './manual-producer.js';

/** A send's only topic and its messages (the publisher sends one topic). */
const recordOf = (send: ManualSend | undefined) => {
  const [only, ...others] = send?.batch.topicMessages ?? [];
  if (others.length > 0) throw new Error('expected one topic per send');
  return only;
};
const producerOf = (p: ReturnType<typeof manualProducer>['producer']) => p as unknown as SerialProducer;

const serde = {
  encode: (_topic: unknown, v: AdDecision) => Promise.resolve(Buffer.from(v.eventId)),
} as unknown as EventSerde;
const topic = topicCatalog().adDecisions;
const decision = (id: string): AdDecision => ({
  eventId: id,
  eventTimeMs: 1,
  customerId: `c-${id}`,
  requestedId: `c-${id}`,
  adType: 'BRAND',
  creativeId: 'brand-a',
  category: null,
  placement: null,
  intentScore: 0.1,
  intentLevel: 'LOW',
  predictedCategory: null,
  modelVersion: 'v1',
  scoreSource: 'CACHE',
  experiment: null,
  variant: null,
});
const tick = () => new Promise((r) => setTimeout(r, 5));
/** Waits for what must happen (a send after the linger or after the one in flight), however loaded the machine. */
const until = (check: () => void) => vi.waitFor(check, { timeout: 5_000, interval: 1 });

describe('exposure publisher', () => {
  it('sends decisions that gather during a send as one batch, one send at a time', async () => {
    const { producer, sends, maxInFlight } = manualProducer();
    const publisher = new ExposurePublisher(producerOf(producer), serde, topic, { lingerMs: 1 });
    const settled: string[] = [];
    const track = (id: string) => publisher.publish(decision(id)).then(() => settled.push(id));
    const first = track('a');
    await until(() => {
      expect(sends).toHaveLength(1);
    });
    const rest = ['b', 'c', 'd'].map(track);
    await tick();
    expect(sends).toHaveLength(1); // b, c, d wait for the send in flight
    expect(settled).toEqual([]);
    sends[0]?.settle();
    await first;
    await until(() => {
      expect(sends).toHaveLength(2);
    });
    expect(recordOf(sends[1])?.messages.map((m) => m.key)).toEqual(['c-b', 'c-c', 'c-d']);
    expect(recordOf(sends[1])?.topic).toBe(topic.name);
    sends[1]?.settle();
    await Promise.all(rest);
    expect(settled).toEqual(['a', 'b', 'c', 'd']);
    expect(maxInFlight()).toBe(1);
  });

  it('fails every decision of a refused send, and later decisions still go out', async () => {
    const { producer, sends } = manualProducer();
    const publisher = new ExposurePublisher(producerOf(producer), serde, topic, { lingerMs: 1 });
    const refused = [publisher.publish(decision('x')), publisher.publish(decision('y'))];
    await until(() => {
      expect(sends).toHaveLength(1);
    });
    sends[0]?.settle(new Error('broker refused'));
    for (const p of refused) await expect(p).rejects.toThrow('broker refused');
    const later = publisher.publish(decision('z'));
    await until(() => {
      expect(sends).toHaveLength(2);
    });
    sends[1]?.settle();
    await expect(later).resolves.toBeUndefined();
    await publisher.close();
  });
});
