/**
 * Exposures: every ad decision becomes an `ad.decisions.v1` record before the API answers it, so what the ad server
 * shows is what experiments count. Decisions arriving together share one Kafka send (group commit): each waits at most
 * API_EXPOSURE_LINGER_MS for company, then for the broker's acknowledgement of its batch (acks=all, idempotent). A send
 * that fails fails every decision in it (the API answers 503 and the ad server shows its own fallback), so no ad is
 * shown without its exposure on record.
 */
import type { Message } from 'kafkajs';
import type { AdDecision } from '../../schemas/generated/types.js';
import type { TopicSpec } from '../../topics/catalog.js';
import type { SerialProducer } from '../runtime/kafka.js';
import type { EventSerde } from '../runtime/serde.js';

interface Waiting {
  readonly message: Message;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export interface ExposureOptions {
  readonly lingerMs: number;
  /** A batch is sent at once when this many decisions wait. @default 500 */
  readonly maxBatch?: number;
}

export class ExposurePublisher {
  private queue: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The send in flight: while it lasts, decisions gather for the next one (one send at a time, as large as waits). */
  private sending: Promise<void> | undefined;

  constructor(
    private readonly producer: SerialProducer,
    private readonly serde: EventSerde,
    private readonly topic: TopicSpec,
    private readonly options: ExposureOptions,
  ) {}

  /** Resolves once the decision's record is acknowledged by the broker. */
  async publish(decision: AdDecision): Promise<void> {
    const value = await this.serde.encode(this.topic, decision);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ message: { key: decision.customerId, value }, resolve, reject });
      if (this.queue.length >= (this.options.maxBatch ?? 500)) this.flush();
      else
        this.timer ??= setTimeout(() => {
          this.flush();
        }, this.options.lingerMs);
    });
  }

  /** Sends what waits now as one batch, unless a send is in flight (its end sends what gathered meanwhile). */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sending || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.options.maxBatch ?? 500);
    this.sending = this.producer
      .send({ topic: this.topic.name, messages: batch.map((w) => w.message) })
      .then(
        () => {
          for (const w of batch) w.resolve();
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(() => {
        this.sending = undefined;
        if (this.queue.length > 0) this.flush();
      });
  }

  /** Sends what waits and settles every send. */
  async close(): Promise<void> {
    this.flush();
    while (this.sending) await this.sending;
  }
}
