/**
 * Exposures: every ad decision becomes an `ad.decisions.v1` record before the API answers it, so what the ad server
 * shows is what experiments count. Decisions arriving together share one Kafka send (group commit): each waits at most
 * API_EXPOSURE_LINGER_MS for company, then for the broker's acknowledgement of its batch (acks=all, idempotent). A send
 * that fails fails every decision in it (the API answers 503 and the ad server shows its own fallback), so no ad is
 * shown without its exposure on record.
 */
import type { AdDecision } from '../../schemas/generated/types.js';
import type { TopicSpec } from '../../topics/catalog.js';
import { GroupCommitSender } from '../runtime/group-commit.js';
import type { SerialProducer } from '../runtime/kafka.js';
import type { EventSerde } from '../runtime/serde.js';

export interface ExposureOptions {
  readonly lingerMs: number;
  /** A batch is sent at once when this many decisions wait. @default 500 */
  readonly maxBatch?: number;
}

export class ExposurePublisher {
  private readonly sender: GroupCommitSender;

  constructor(
    producer: SerialProducer,
    private readonly serde: EventSerde,
    private readonly topic: TopicSpec,
    options: ExposureOptions,
  ) {
    this.sender = new GroupCommitSender(producer, options);
  }

  /** Resolves once the decision's record is acknowledged by the broker. */
  async publish(decision: AdDecision): Promise<void> {
    const value = await this.serde.encode(this.topic, decision);
    return this.sender.send(this.topic.name, { key: decision.customerId, value });
  }

  /** Sends what waits and settles every send. */
  close(): Promise<void> {
    return this.sender.flush();
  }
}
