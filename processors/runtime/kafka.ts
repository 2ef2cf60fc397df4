/** The one place that builds kafkajs clients, so every processor shares retry, logging and idempotence settings. */
import {
  Kafka,
  logLevel,
  type Consumer,
  type Producer,
  type ProducerBatch,
  type ProducerRecord,
  type RecordMetadata,
} from 'kafkajs';
import type { Config } from './config.js';
import { applyKafkajsIdleFix } from './kafkajs-idle-fix.js';
import { createLogger } from './log.js';
import { JavaCompatiblePartitioner } from './partitioner.js';
import { membershipError } from './outage.js';

applyKafkajsIdleFix();

const kafkaLevel = { debug: logLevel.DEBUG, info: logLevel.WARN, warn: logLevel.WARN, error: logLevel.ERROR } as const;

/** A kafkajs client for the configured brokers; kafkajs' own logs go through our JSON logger. */
export function createKafka(config: Config, clientId = config.KAFKA_CLIENT_ID): Kafka {
  const log = createLogger(config.LOG_LEVEL, { component: 'kafkajs' });
  return new Kafka({
    clientId,
    brokers: [...config.KAFKA_BROKERS],
    logLevel: kafkaLevel[config.LOG_LEVEL],
    logCreator:
      () =>
      ({ level, log: entry }) => {
        const { message, ...rest } = entry;
        const fields = rest as Record<string, unknown>;
        // Bounded retries on the idempotent producer are deliberate: a send that still fails rejects the caller's
        // promise (nothing is acknowledged that was not written), and event ids make a whole-batch resend harmless.
        // A new cluster creates its internal topics on first use; kafkajs logs the coordinator's "loading" answers as
        // errors but retries them. They are expected, not actionable.
        const error = fields['error'];
        const retriable = typeof error === 'string' && /coordinator is (loading|not available)/.test(error);
        if (retriable || message.startsWith('Limiting retries for the idempotent producer')) {
          log.debug(message, fields);
          return;
        }
        if (level <= logLevel.ERROR) log.error(message, fields);
        else if (level === logLevel.WARN) log.warn(message, fields);
        else log.debug(message, fields);
      },
    retry: { initialRetryTime: 300, retries: 8 },
  });
}

/**
 * An idempotent producer (acks=all, one in-flight request per broker so retries cannot reorder a partition): a retried
 * send never duplicates or reorders records within a partition.
 */
export function createIdempotentProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // The murmur2 placement of the Java client (kafkajs' DefaultPartitioner, without its per-message Long
    // arithmetic): a key lands on the same partition whichever client produced it.
    createPartitioner: JavaCompatiblePartitioner,
  });
}

/**
 * An idempotent producer that never has two sends in flight, in call order, for every caller that shares it (the
 * partitions a consumer processes concurrently, a flush timer). Use it wherever one producer serves concurrent work.
 *
 * Why: kafkajs numbers each partition's records itself and, when a produce request fails (a request timeout, a
 * dropped connection), rolls the numbers back and retries. The broker may already have written that request. If
 * another send takes the rolled-back numbers first, the broker answers OUT_OF_ORDER_SEQUENCE_NUMBER (non-retriable:
 * `KafkaJSNonRetriableError: The broker received an out of order sequence number`), or, when the count happens to
 * match a written batch, takes the new records for a duplicate and drops them. With one send at a time the retry of a
 * written request carries the same numbers, and the broker acknowledges it as the duplicate it is.
 *
 * A send that still fails (retries exhausted) leaves the partition numbers unknowable, so the next send starts on a
 * fresh producer (a new producer id, numbers from 0) instead of reusing them. The caller's retry may then write
 * records twice; every event carries its id, which is what makes a whole-batch resend harmless downstream.
 *
 * Transactions are not supported (nothing here uses them). Listeners added with `on` stay with the producer in use
 * when they were added.
 */
export class SerialProducer implements Producer {
  private current: Producer;
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private renewNeeded = false;
  private connected = false;
  /** Producers replaced after a failed send (for tests and logs). */
  renewals = 0;

  constructor(
    private readonly create: () => Producer,
    private readonly onSendFailed?: (reason: unknown) => void,
  ) {
    this.current = create();
  }

  /** A serial idempotent producer on `kafka` (see createIdempotentProducer). */
  static idempotent(kafka: Kafka, onSendFailed?: (reason: unknown) => void): SerialProducer {
    return new SerialProducer(() => createIdempotentProducer(kafka), onSendFailed);
  }

  /** Sends queued behind the one in flight. */
  get queued(): number {
    return this.waiting;
  }

  get events(): Producer['events'] {
    return this.current.events;
  }

  readonly on = ((eventName: never, listener: never) => this.current.on(eventName, listener)) as Producer['on'];

  logger(): ReturnType<Producer['logger']> {
    return this.current.logger();
  }

  isIdempotent(): boolean {
    return this.current.isIdempotent();
  }

  async connect(): Promise<void> {
    await this.current.connect();
    this.connected = true;
  }

  /** Waits for queued sends to settle, then disconnects. */
  async disconnect(): Promise<void> {
    await this.tail;
    this.connected = false;
    await this.current.disconnect();
  }

  transaction(): ReturnType<Producer['transaction']> {
    return Promise.reject(new Error('SerialProducer does not support transactions'));
  }

  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    return this.enqueue((p) => p.send(record));
  }

  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    return this.enqueue((p) => p.sendBatch(batch));
  }

  private enqueue<T>(send: (producer: Producer) => Promise<T>): Promise<T> {
    this.waiting++;
    const run = this.tail.then(async () => {
      this.waiting--;
      if (this.renewNeeded) await this.renew();
      try {
        return await send(this.current);
      } catch (err) {
        this.renewNeeded = true;
        this.onSendFailed?.(err);
        throw err;
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Replaces the producer whose sequence numbers a failed send left unknowable. A failure leaves renewNeeded set. */
  private async renew(): Promise<void> {
    const old = this.current;
    await old.disconnect().catch(() => undefined);
    this.current = this.create();
    this.renewals++;
    if (this.connected) await this.current.connect();
    this.renewNeeded = false;
  }
}

/**
 * `consumer.commitOffsets` inside eachBatch, for consumers that commit themselves. kafkajs wraps a commit refused
 * with UNKNOWN_MEMBER_ID (this member was dropped from the group: a broker restart, a batch longer than the session
 * timeout) in a KafkaJSNonRetriableError without its type, so the runner does not see it, crashes the consumer for
 * good and the process has to exit. Thrown as the protocol error itself, it makes the runner join the group again and
 * the partitions resume from their last commit (what was processed but not committed is redelivered, as after a
 * crash). Other failures are thrown as they are.
 */
export async function commitOrRejoin(
  consumer: Pick<Consumer, 'commitOffsets'>,
  offsets: Parameters<Consumer['commitOffsets']>[0],
): Promise<void> {
  try {
    await consumer.commitOffsets(offsets);
  } catch (err) {
    throw membershipError(err) ?? err;
  }
}
