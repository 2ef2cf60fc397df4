// kafkajs 2.2.4 keeps a 1 ms timer loop alive on every idle broker connection; the fix schedules a check only while
// requests wait or a broker throttle runs.
import { afterEach, describe, expect, it } from 'vitest';
import { applyKafkajsIdleFix, kafkajsRequestQueue } from '../../processors/runtime/kafkajs-idle-fix.js';

const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const queues: InstanceType<typeof kafkajsRequestQueue>[] = [];
const queue = () => {
  const q = new kafkajsRequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 1_000,
    clientId: 't',
    broker: 'b',
    logger,
  });
  queues.push(q);
  return q;
};

afterEach(() => {
  for (const q of queues.splice(0)) if (q.throttleCheckTimeoutId) clearTimeout(q.throttleCheckTimeoutId);
});

describe('kafkajs idle fix', () => {
  it('schedules nothing when no request waits and no throttle runs', () => {
    applyKafkajsIdleFix();
    const q = queue();
    q.checkPendingRequests();
    expect(q.throttleCheckTimeoutId).toBe(null);
  });

  it('still schedules the check while a broker throttle runs', () => {
    applyKafkajsIdleFix();
    const q = queue();
    q.throttledUntil = Date.now() + 60_000;
    q.checkPendingRequests();
    expect(q.throttleCheckTimeoutId).not.toBe(null);
  });

  it('is applied by the runtime module every processor builds its clients with', async () => {
    await import('../../processors/runtime/kafka.js');
    const q = queue();
    q.checkPendingRequests();
    expect(q.throttleCheckTimeoutId).toBe(null);
  });
});
