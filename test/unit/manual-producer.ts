// A Kafka producer for unit tests of what sits on top of one (group commit, exposures): its sends settle when the
// test says so (the broker's acknowledgement, or its refusal), and it counts how many were in flight at once.
import type { ProducerBatch, RecordMetadata } from 'kafkajs';

export interface ManualSend {
  readonly batch: ProducerBatch;
  readonly settle: (err?: Error) => void;
}

export function manualProducer() {
  const sends: ManualSend[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const producer = {
    sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return new Promise<RecordMetadata[]>((resolve, reject) => {
        sends.push({
          batch,
          settle: (err) => {
            inFlight--;
            if (err) reject(err);
            else resolve([]);
          },
        });
      });
    },
  };
  return { producer, sends, maxInFlight: () => maxInFlight };
}
