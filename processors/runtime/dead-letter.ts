/**
 * The dead-letter path: a record a processor cannot read or accept goes to its source topic's `<topic>.dlq` as a
 * DeadLetter Avro record holding the untouched original key, value and headers plus the reason and the source
 * coordinates, so it can be inspected and re-published after a fix. Produced (acks=all) before offsets move.
 */
import { createHash } from 'node:crypto';
import type { IHeaders, KafkaMessage, Producer } from 'kafkajs';
import type { Counter, Registry } from 'prom-client';
import { sharedCounter } from './metrics.js';
import type { DeadLetter } from '../../schemas/generated/types.js';
import type { TopicSpec } from '../../topics/catalog.js';
import type { ErrorCode } from './errors.js';
import type { EventSerde } from './serde.js';

/** A record that failed, with where it came from and why. */
export interface FailedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  readonly code: ErrorCode;
  readonly reason: string;
}

function headerList(headers: IHeaders | undefined): DeadLetter['originalHeaders'] {
  if (!headers) return [];
  return Object.entries(headers).flatMap(([key, value]) => {
    const values = Array.isArray(value) ? value : [value];
    return values.map((v) => ({ key, value: v === undefined ? null : Buffer.from(v) }));
  });
}

/** Builds the DeadLetter record. Its eventId is derived from the source coordinates, so a re-park is recognisable. */
export function deadLetterOf(processor: string, failed: FailedRecord, failedAtMs: number): DeadLetter {
  const source = `${failed.topic}/${failed.partition}@${failed.message.offset}`;
  return {
    eventId: createHash('sha256').update(`${processor}|${source}`).digest('hex').slice(0, 32),
    eventTimeMs: failedAtMs,
    processor,
    sourceTopic: failed.topic,
    sourcePartition: failed.partition,
    sourceOffset: Number(failed.message.offset),
    sourceTimestampMs: Number(failed.message.timestamp),
    errorCode: failed.code,
    reason: failed.reason.slice(0, 4_000),
    originalKey: failed.message.key ?? null,
    originalValue: failed.message.value ?? null,
    originalHeaders: headerList(failed.message.headers),
  };
}

export class DeadLetterPublisher {
  private readonly counter: Counter<'processor' | 'source_topic' | 'reason'> | undefined;

  constructor(
    private readonly processor: string,
    private readonly producer: Producer,
    private readonly serde: EventSerde,
    private readonly dlqSpecs: ReadonlyMap<string, TopicSpec>,
    /** Where dead_letters_total is counted (the dead-letter spike alert reads it). */
    registry?: Registry,
  ) {
    this.counter = registry
      ? sharedCounter(
          registry,
          'dead_letters_total',
          'Records parked on a dead-letter topic, by processor, source topic and reason (the error code)',
          ['processor', 'source_topic', 'reason'],
        )
      : undefined;
  }

  /** Produces every failed record to its source topic's DLQ and waits for acks=all. */
  async publish(failed: readonly FailedRecord[], nowMs = Date.now()): Promise<void> {
    if (failed.length === 0) return;
    const byTopic = new Map<TopicSpec, { key: Buffer | null; value: Buffer; headers: IHeaders }[]>();
    for (const f of failed) {
      const dlq = this.dlqSpecs.get(f.topic);
      if (!dlq) throw new Error(`no dead-letter topic for ${f.topic}: add one to topics/catalog.ts`);
      const record = deadLetterOf(this.processor, f, nowMs);
      const messages = byTopic.get(dlq) ?? [];
      messages.push({
        key: f.message.key ?? null,
        value: await this.serde.encode(dlq, record),
        headers: {
          'dlq.processor': this.processor,
          'dlq.error.code': f.code,
          'dlq.error.message': record.reason.slice(0, 500),
          'dlq.source': `${f.topic}/${f.partition}@${f.message.offset}`,
          'dlq.failed-at': new Date(nowMs).toISOString(),
        },
      });
      byTopic.set(dlq, messages);
    }
    await this.producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([spec, messages]) => ({ topic: spec.name, messages })),
    });
    for (const f of failed) this.counter?.inc({ processor: this.processor, source_topic: f.topic, reason: f.code });
  }
}
