/**
 * The dead-letter path: a record a processor cannot read or accept goes to its source topic's `<topic>.dlq` as a
 * DeadLetter Avro record holding the untouched original key, value and headers plus the reason and the source
 * coordinates, so it can be inspected and re-published after a fix. Produced (acks=all) before offsets move.
 *
 * A dead letter never fails for its own size: the broker refuses a record batch above its message.max.bytes (1 MiB by
 * default), and an original close to that size plus the reason would be refused, the producer error is not retriable,
 * and the processor could no longer move past the record. So an original larger than its budget (value 256 KiB, key
 * 8 KiB, headers 8 KiB) is cut to it, and the dead letter records what was cut: `dlq.original.cut` (what and why),
 * and always the original value's size and sha256 (`dlq.original.size`, `dlq.original.sha256`), so the cut record can
 * still be matched to the platform's copy. The reason says it too (it reaches the warehouse's dead_letter table).
 * Dead letters go out in sends of at most 512 KiB, so many of them in one batch do not add up to a refused batch.
 */
import { createHash } from 'node:crypto';
import type { IHeaders, KafkaMessage, Message, Producer } from 'kafkajs';
import type { Counter, Registry } from 'prom-client';
import { sharedCounter } from './metrics.js';
import type { DeadLetter } from '../../schemas/generated/types.js';
import type { TopicSpec } from '../../topics/catalog.js';
import type { ErrorCode } from './errors.js';
import type { EventSerde } from './serde.js';
import { sendsOf } from './send-chunks.js';

/** Bytes of the original value a dead letter keeps; a larger value is cut to this. */
export const MAX_ORIGINAL_VALUE_BYTES = 256 * 1024;
/** Bytes of the original key a dead letter keeps (in its value and as its own key). */
export const MAX_ORIGINAL_KEY_BYTES = 8 * 1024;
/** Bytes of original headers (names and values) a dead letter keeps; headers beyond it are dropped, in order. */
export const MAX_ORIGINAL_HEADER_BYTES = 8 * 1024;

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

const sha256 = (bytes: Buffer | null | undefined) =>
  createHash('sha256')
    .update(bytes ?? Buffer.alloc(0))
    .digest('hex');

/** What a dead letter keeps of its original, and what it had to cut to stay within the broker's message size. */
export interface KeptOriginal {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: DeadLetter['originalHeaders'];
  /** Bytes and sha256 of the original value (null value: 0 bytes, the digest of no bytes). */
  readonly valueBytes: number;
  readonly valueSha256: string;
  /** What was cut, e.g. `value 921600 → 262144 bytes`; empty when the original is whole. */
  readonly cuts: readonly string[];
}

/** The original key, value and headers of `message`, each cut to its budget (see the top of this file). */
export function keptOriginal(message: KafkaMessage): KeptOriginal {
  const cuts: string[] = [];
  const cut = (what: string, bytes: Buffer | null | undefined, max: number): Buffer | null => {
    if (!bytes) return null;
    if (bytes.length <= max) return bytes;
    cuts.push(`${what} ${bytes.length} → ${max} bytes (sha256 ${sha256(bytes)})`);
    return bytes.subarray(0, max);
  };
  const headers: DeadLetter['originalHeaders'][number][] = [];
  let headerBytes = 0;
  let dropped = 0;
  for (const h of headerList(message.headers)) {
    const size = Buffer.byteLength(h.key) + (h.value?.length ?? 0);
    if (headerBytes + size > MAX_ORIGINAL_HEADER_BYTES) dropped++;
    else {
      headers.push(h);
      headerBytes += size;
    }
  }
  if (dropped > 0) cuts.push(`${dropped} headers dropped beyond ${MAX_ORIGINAL_HEADER_BYTES} bytes`);
  const key = cut('key', message.key, MAX_ORIGINAL_KEY_BYTES);
  const value = cut('value', message.value, MAX_ORIGINAL_VALUE_BYTES);
  return {
    key,
    value,
    headers,
    valueBytes: message.value?.length ?? 0,
    valueSha256: sha256(message.value),
    cuts,
  };
}

/** Builds the DeadLetter record. Its eventId is derived from the source coordinates, so a re-park is recognisable. */
export function deadLetterOf(
  processor: string,
  failed: FailedRecord,
  failedAtMs: number,
  kept: KeptOriginal = keptOriginal(failed.message),
): DeadLetter {
  const source = `${failed.topic}/${failed.partition}@${failed.message.offset}`;
  const cutNote = kept.cuts.length > 0 ? ` [original cut to fit the broker: ${kept.cuts.join('; ')}]` : '';
  return {
    eventId: createHash('sha256').update(`${processor}|${source}`).digest('hex').slice(0, 32),
    eventTimeMs: failedAtMs,
    processor,
    sourceTopic: failed.topic,
    sourcePartition: failed.partition,
    sourceOffset: Number(failed.message.offset),
    sourceTimestampMs: Number(failed.message.timestamp),
    errorCode: failed.code,
    reason: failed.reason.slice(0, 4_000) + cutNote,
    originalKey: kept.key,
    originalValue: kept.value,
    originalHeaders: kept.headers,
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

  /** Produces every failed record to its source topic's DLQ and waits for acks=all (in sends of at most 512 KiB). */
  async publish(failed: readonly FailedRecord[], nowMs = Date.now()): Promise<void> {
    if (failed.length === 0) return;
    const messages: { topic: string; message: Message }[] = [];
    for (const f of failed) {
      const dlq = this.dlqSpecs.get(f.topic);
      if (!dlq) throw new Error(`no dead-letter topic for ${f.topic}: add one to topics/catalog.ts`);
      const kept = keptOriginal(f.message);
      const record = deadLetterOf(this.processor, f, nowMs, kept);
      const headers: IHeaders = {
        'dlq.processor': this.processor,
        'dlq.error.code': f.code,
        'dlq.error.message': record.reason.slice(0, 500),
        'dlq.source': `${f.topic}/${f.partition}@${f.message.offset}`,
        'dlq.failed-at': new Date(nowMs).toISOString(),
        'dlq.original.size': String(kept.valueBytes),
        'dlq.original.sha256': kept.valueSha256,
      };
      if (kept.cuts.length > 0) {
        headers['dlq.original.cut'] =
          `${kept.cuts.join('; ')}: a dead letter must stay under the broker's message size`;
      }
      messages.push({
        topic: dlq.name,
        message: { key: kept.key, value: await this.serde.encode(dlq, record), headers },
      });
    }
    for (const chunk of sendsOf(messages)) await this.producer.sendBatch({ acks: -1, topicMessages: chunk });
    for (const f of failed) this.counter?.inc({ processor: this.processor, source_topic: f.topic, reason: f.code });
  }
}
