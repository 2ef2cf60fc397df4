// Group commit of Kafka sends (processors/runtime/group-commit.ts), as the platform producer and the API's exposures
// use it: records that arrive while a send is in flight all go in the next send (not one queued send each), sends stay
// one at a time and in order, split by bytes, and a refused send fails only its own records.
import { describe, expect, it, vi } from 'vitest';
import type { ProducerBatch } from 'kafkajs';
import { GroupCommitSender } from '../../processors/runtime/group-commit.js';
import { manualProducer } from './manual-producer.js';

const keysOf = (batch: ProducerBatch | undefined) =>
  (batch?.topicMessages ?? []).flatMap((t) => t.messages.map((m) => `${t.topic}/${String(m.key)}`));
const tick = () => new Promise((r) => setTimeout(r, 5));
/** Waits for what must happen (a send after the linger or after the one in flight), however loaded the machine. */
const until = (check: () => void) => vi.waitFor(check, { timeout: 5_000, interval: 1 });

describe('group commit sender', () => {
  it('sends everything that arrived during a send as one next send, in order, one send at a time', async () => {
    const { producer, sends, maxInFlight } = manualProducer();
    const sender = new GroupCommitSender(producer, { lingerMs: 1, maxBatch: 3 });
    const acked: string[] = [];
    const send = (topic: string, key: string) => sender.send(topic, { key, value: 'v' }).then(() => acked.push(key));
    const first = send('a', 'k1');
    await until(() => {
      expect(sends).toHaveLength(1);
    });
    // Ten records while the first send is in flight: more than maxBatch, still one send after it, not four.
    const rest = Array.from({ length: 10 }, (_, i) => send(i % 2 ? 'a' : 'b', `k${i + 2}`));
    await tick();
    expect(sends).toHaveLength(1);
    expect(sender.waiting).toBe(10);
    sends[0]?.settle();
    await first;
    await until(() => {
      expect(sends).toHaveLength(2);
    });
    expect(keysOf(sends[1]?.batch).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `${i % 2 ? 'a' : 'b'}/k${i + 2}`).sort(),
    );
    // Within a topic, in the order sent.
    expect(sends[1]?.batch.topicMessages?.find((t) => t.topic === 'a')?.messages.map((m) => m.key)).toEqual([
      'k3',
      'k5',
      'k7',
      'k9',
      'k11',
    ]);
    expect(sends[1]?.batch.acks).toBe(-1);
    sends[1]?.settle();
    await Promise.all(rest);
    expect(acked).toHaveLength(11);
    expect(maxInFlight()).toBe(1);
  });

  it('splits a large gathering into sends of at most maxBytes, and flush waits for records that arrive meanwhile', async () => {
    const { producer, sends } = manualProducer();
    const sender = new GroupCommitSender(producer, { lingerMs: 1_000, maxBatch: 1_000, maxBytes: 1_000 });
    const value = Buffer.alloc(300);
    const all = Array.from({ length: 7 }, (_, i) => sender.send('t', { key: `k${i}`, value }));
    const flushed = sender.flush();
    let done = false;
    void flushed.then(() => (done = true));
    expect(sends).toHaveLength(1); // at once, not after the 1 s linger
    expect(keysOf(sends[0]?.batch)).toEqual(['t/k0', 't/k1']); // 2 × (300 + key + overhead) fit in 1,000 bytes
    const late = sender.send('t', { key: 'late', value });
    for (let i = 0; i < 5; i++) {
      sends[i]?.settle();
      if (i < 4)
        await until(() => {
          expect(sends).toHaveLength(i + 2);
        });
    }
    expect(sends.map((s) => keysOf(s.batch))).toEqual([
      ['t/k0', 't/k1'],
      ['t/k2', 't/k3'],
      ['t/k4', 't/k5'],
      ['t/k6'],
      ['t/late'],
    ]);
    await Promise.all([...all, late]);
    await flushed;
    expect(done).toBe(true);
  });

  it('fails only the records of a refused send; the next ones still go out', async () => {
    const { producer, sends } = manualProducer();
    const sender = new GroupCommitSender(producer, { lingerMs: 1 });
    const refused = sender.send('t', { key: 'x', value: 'v' });
    await until(() => {
      expect(sends).toHaveLength(1);
    });
    const later = sender.send('t', { key: 'y', value: 'v' });
    sends[0]?.settle(new Error('broker refused'));
    await expect(refused).rejects.toThrow('broker refused');
    await until(() => {
      expect(sends).toHaveLength(2);
    });
    expect(keysOf(sends[1]?.batch)).toEqual(['t/y']);
    sends[1]?.settle();
    await expect(later).resolves.toBeUndefined();
  });
});
