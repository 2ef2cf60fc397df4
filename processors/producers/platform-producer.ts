/**
 * The library platforms use to publish events: schema- and rule-validated before anything is sent (a bad event fails
 * the caller's promise with every problem named, instead of becoming a dead letter later), keyed by platform identity,
 * batched (group commit: what arrives while a send is in flight goes out together in the next; otherwise up to
 * `maxBatchSize` records or `lingerMs`), over an idempotent producer so retries never duplicate.
 */
import type { Kafka, Producer } from 'kafkajs';
import type { BehaviorEvent, Transaction } from '../../schemas/generated/types.js';
import { behaviorKey, behaviorProblems, transactionKey, transactionProblems } from '../../schemas/rules.js';
import { topicCatalogOf, type TopicCatalog, type TopicSpec } from '../../topics/catalog.js';
import type { Config } from '../runtime/config.js';
import { AppError } from '../runtime/errors.js';
import { createIdempotentProducer, createKafka } from '../runtime/kafka.js';
import { GroupCommitSender } from '../runtime/group-commit.js';
import { EventSerde } from '../runtime/serde.js';

export interface PlatformProducerOptions {
  /**
   * 'full' checks the Avro contract and the semantic rules (schemas/rules.ts); 'schema' only the contract, for
   * replaying real data whose anomalies should reach the processors and be dead-lettered with a reason.
   * @default 'full'
   */
  readonly validation?: 'full' | 'schema';
  /** @default 500 */
  readonly maxBatchSize?: number;
  /** How long a record may wait for company while no send is in flight. @default 20 */
  readonly lingerMs?: number;
  /** Injected for tests and tools that already hold clients. */
  readonly kafka?: Kafka;
  readonly serde?: EventSerde;
  readonly topics?: TopicCatalog;
}

/** An event tagged with its contract, as generators, replays and files stream them. */
export type PlatformEvent =
  | { readonly kind: 'transaction'; readonly event: Transaction }
  | { readonly kind: 'behavior'; readonly event: BehaviorEvent };

export interface PublishAllOptions {
  /** Unacknowledged events allowed at once; bounds memory on large inputs. @default 2000 */
  readonly maxInFlight?: number;
  readonly onAcknowledged?: (item: PlatformEvent) => void;
  /** A refused event (invalid, or not acknowledged) is reported here and the stream goes on. */
  readonly onRefused?: (item: PlatformEvent, err: unknown) => void;
}

export class PlatformProducer {
  private readonly sender: GroupCommitSender;
  private readonly validation: 'full' | 'schema';

  private constructor(
    private readonly producer: Producer,
    private readonly serde: EventSerde,
    readonly topics: TopicCatalog,
    private readonly config: Config,
    options: PlatformProducerOptions,
  ) {
    this.sender = new GroupCommitSender(producer, {
      lingerMs: options.lingerMs ?? 20,
      maxBatch: options.maxBatchSize ?? 500,
    });
    this.validation = options.validation ?? 'full';
  }

  /** Connects an idempotent producer and registers the raw topics' contracts. */
  static async connect(config: Config, options: PlatformProducerOptions = {}): Promise<PlatformProducer> {
    const topics = options.topics ?? topicCatalogOf(config);
    const serde = options.serde ?? EventSerde.forUrl(config.SCHEMA_REGISTRY_URL);
    await serde.register(topics.transactionsRaw);
    await serde.register(topics.clicksRaw);
    const producer = createIdempotentProducer(
      options.kafka ?? createKafka(config, `${config.KAFKA_CLIENT_ID}-platform`),
    );
    await producer.connect();
    return new PlatformProducer(producer, serde, topics, config, options);
  }

  /** Publishes a transaction; resolves once the broker has acknowledged it (acks=all). */
  async sendTransaction(tx: Transaction): Promise<void> {
    const value = await this.encodeChecked(this.topics.transactionsRaw, tx, () =>
      transactionProblems(tx, this.ruleOptions()),
    );
    await this.enqueue(this.topics.transactionsRaw.name, transactionKey(tx), value);
  }

  /** Publishes a behavior event; resolves once acknowledged. */
  async sendBehavior(ev: BehaviorEvent): Promise<void> {
    const value = await this.encodeChecked(this.topics.clicksRaw, ev, () => behaviorProblems(ev, this.ruleOptions()));
    await this.enqueue(this.topics.clicksRaw.name, behaviorKey(ev), value);
  }

  /** Publishes one tagged event; resolves once acknowledged. */
  send(item: PlatformEvent): Promise<void> {
    return item.kind === 'transaction' ? this.sendTransaction(item.event) : this.sendBehavior(item.event);
  }

  /**
   * Publishes a stream in order with at most `maxInFlight` events unacknowledged, reporting each outcome; returns the
   * counts once everything sent has been acknowledged or refused.
   */
  async publishAll(
    items: Iterable<PlatformEvent> | AsyncIterable<PlatformEvent>,
    options: PublishAllOptions = {},
  ): Promise<{ acknowledged: number; refused: number }> {
    const maxInFlight = options.maxInFlight ?? 2_000;
    let acknowledged = 0;
    let refused = 0;
    let window: Promise<void>[] = [];
    for await (const item of items) {
      window.push(
        this.send(item).then(
          () => {
            acknowledged++;
            options.onAcknowledged?.(item);
          },
          (err: unknown) => {
            refused++;
            options.onRefused?.(item, err);
          },
        ),
      );
      if (window.length >= maxInFlight) {
        await this.sender.flush(); // do not wait out the linger of a batch we already know is full enough
        await Promise.all(window);
        window = [];
      }
    }
    await this.flush();
    await Promise.all(window);
    return { acknowledged, refused };
  }

  /** Sends whatever is queued and waits for every acknowledgement. */
  flush(): Promise<void> {
    return this.sender.flush();
  }

  async disconnect(): Promise<void> {
    await this.flush();
    await this.producer.disconnect();
  }

  private ruleOptions() {
    return { nowMs: Date.now(), maxFutureMs: this.config.EVENT_MAX_FUTURE_MS };
  }

  /**
   * Encodes (the contract is checked while serializing; a misfit names its fields), then applies the semantic rules,
   * which may assume a value that fits the contract.
   */
  private async encodeChecked(topic: TopicSpec, value: unknown, rules: () => string[]): Promise<Buffer> {
    const encoded = await this.serde.encode(topic, value);
    if (this.validation === 'full') {
      const problems = rules();
      if (problems.length > 0) throw new AppError('RECORD_INVALID', problems.join('; '));
    }
    return encoded;
  }

  private enqueue(topic: string, key: string, value: Buffer): Promise<void> {
    return this.sender.send(topic, { key, value });
  }
}
