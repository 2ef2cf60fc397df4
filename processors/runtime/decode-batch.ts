/**
 * The first step of every processor's batch: decode each record with the topic's contract and check its semantic rules.
 * Records that can never be accepted become FailedRecords for the dead-letter topic; a dependency failure (registry
 * down) or a bug is thrown, so the batch is retried from the last committed offset instead of parking healthy data.
 */
import type { Batch, KafkaMessage } from 'kafkajs';
import type { TopicSpec } from '../../topics/catalog.js';
import type { FailedRecord } from './dead-letter.js';
import { AppError, describeError, dispositionOf } from './errors.js';
import type { EventSerde } from './serde.js';

export interface Decoded<T> {
  readonly message: KafkaMessage;
  readonly value: T;
}

export interface DecodedBatch<T> {
  /** Accepted records, in offset order. */
  readonly records: Decoded<T>[];
  readonly failed: FailedRecord[];
}

/**
 * Decodes `messages` of one partition. `check` returns the value's rule violations (empty: accepted).
 * `isLive` stops early when the consumer is stopping or the batch went stale in a rebalance.
 */
export async function decodeBatch<T>(
  batch: Pick<Batch, 'topic' | 'partition' | 'messages'>,
  spec: TopicSpec,
  serde: EventSerde,
  check: ((value: T) => string[]) | undefined,
  isLive: () => boolean = () => true,
): Promise<DecodedBatch<T>> {
  const records: Decoded<T>[] = [];
  const failed: FailedRecord[] = [];
  for (const message of batch.messages) {
    if (!isLive()) break;
    try {
      const value = await serde.decode<T>(spec, message.value);
      const problems = check?.(value) ?? [];
      if (problems.length > 0) throw new AppError('RECORD_INVALID', problems.join('; '));
      records.push({ message, value });
    } catch (err) {
      if (dispositionOf(err) !== 'dead-letter') throw err;
      failed.push({
        topic: batch.topic,
        partition: batch.partition,
        message,
        code: (err as AppError).code,
        reason: describeError(err),
      });
    }
  }
  return { records, failed };
}
