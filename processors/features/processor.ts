// Feature processor: consumes resolved transactions and clicks (keyed by global customer id) and identity merges; keeps
// each customer's bucketed feature state and the ad server's feature hash in Redis (compare-and-set Lua scripts).
//
// Per batch: decode (bad records → dead letters) → fold each customer's records into its state, skipping anything at
// or below the state's per-partition offset watermark → write state + hash atomically → hand the updates to the
// listener (the scorer) → dead letters → commit offsets. A crash anywhere repeats work and the watermark makes the
// repeat a no-op, so the effect on state is exactly once under at-least-once delivery.
import type { EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { Counter, Histogram } from 'prom-client';
import type { BehaviorEvent, IdentityMerge, Transaction } from '../../schemas/generated/types.js';
import type { TopicCatalog, TopicSpec } from '../../topics/catalog.js';
import { forEachLimited, KeyedMutex } from '../runtime/concurrency.js';
import type { Config } from '../runtime/config.js';
import { DeadLetterPublisher } from '../runtime/dead-letter.js';
import { decodeBatch } from '../runtime/decode-batch.js';
import { createIdempotentProducer } from '../runtime/kafka.js';
import type { Logger } from '../runtime/log.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import type { CustomerFeatures, RfmCutPoints } from './definitions.js';
import { clickEvent, currentFeatures, foldEvents, hashFields, transactionEvent, type SourcedEvent } from './logic.js';
import { emptyState, mergeStates, prune, type FeatureState } from './state.js';
import { StaleStateError, type FeatureStore } from './store.js';

export const PROCESSOR = 'feature-processor';

/** A customer whose state changed, after the write: what the scorer consumes. */
export interface FeatureUpdate {
  readonly customerId: string;
  readonly version: number;
  readonly state: FeatureState;
  readonly features: CustomerFeatures;
  /** Ids of the events this update applied (none for a merge). */
  readonly eventIds: readonly string[];
}

/** Timing of one committed batch, for benchmarks. */
export interface BatchTiming {
  readonly records: number;
  /** Wall clock when the batch was handed to the processor and when its offsets were committed. */
  readonly fetchedAtMs: number;
  readonly committedAtMs: number;
  /** Kafka append time of each record. */
  readonly appendTimesMs: readonly number[];
}

export interface FeatureProcessorDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly store: FeatureStore;
  readonly topics: TopicCatalog;
  readonly log: Logger;
  readonly metrics: ProcessorMetrics;
  /** The RFM cut points to use now (reloaded by the caller as they change). */
  readonly cutPoints: () => RfmCutPoints;
  /** Called with every batch's changed customers after their state is written and before offsets move. */
  readonly onUpdated?: (updates: readonly FeatureUpdate[]) => Promise<void>;
  readonly onCommitted?: (timing: BatchTiming) => void;
  /** @default '<TOPIC_PREFIX>feature-processor' */
  readonly groupId?: string;
}

const MAX_ATTEMPTS = 20;

export class FeatureProcessor {
  private readonly consumer;
  private readonly producer: Producer;
  private readonly deadLetters: DeadLetterPublisher;
  private readonly mutex = new KeyedMutex();
  /** Last written state per root id (a cache: Redis holds the truth and compare-and-set catches a stale entry). */
  private readonly cache = new Map<string, { version: number; state: FeatureState }>();
  /** Merged-away ids seen, to their survivor. */
  private readonly aliases = new Map<string, string>();
  private readonly featureMetrics;
  private processed = 0;
  /** When this instance received its first batch (epoch ms). */
  firstBatchAtMs: number | null = null;

  constructor(private readonly deps: FeatureProcessorDeps) {
    const { config, topics } = deps;
    const registers = [deps.metrics.registry];
    this.featureMetrics = {
      events: new Counter({
        name: 'features_events_total',
        help: 'Resolved events by effect on state: applied, duplicate (redelivered, skipped), late (older than grace)',
        labelNames: ['outcome'],
        registers,
      }),
      merges: new Counter({ name: 'features_merges_total', help: 'Customer states merged', registers }),
      conflicts: new Counter({
        name: 'features_write_conflicts_total',
        help: 'State writes retried because another writer changed the customer first',
        registers,
      }),
      latency: new Histogram({
        name: 'features_event_latency_seconds',
        help: 'From Kafka append time of a resolved event to its state being written',
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
        registers,
      }),
    };
    this.consumer = deps.kafka.consumer({
      groupId: deps.groupId ?? `${config.TOPIC_PREFIX}${PROCESSOR}`,
      allowAutoTopicCreation: false,
      sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: Math.floor(config.KAFKA_SESSION_TIMEOUT_MS / 10),
      maxBytesPerPartition: 4 << 20,
    });
    this.producer = createIdempotentProducer(deps.kafka);
    const dlq = new Map<string, TopicSpec>();
    for (const spec of [topics.customerTransactions, topics.customerClicks, topics.identityMerges]) {
      const target = topics.all.find((t) => t.name === spec.deadLetterTopic);
      if (target) dlq.set(spec.name, target);
    }
    this.deadLetters = new DeadLetterPublisher(PROCESSOR, this.producer, deps.serde, dlq);
  }

  get processedCount(): number {
    return this.processed;
  }

  async start(): Promise<void> {
    const { topics } = this.deps;
    await this.producer.connect();
    await this.consumer.connect();
    for (const spec of [topics.identityMerges, topics.customerTransactions, topics.customerClicks]) {
      await this.consumer.subscribe({ topic: spec.name, fromBeginning: true });
    }
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Partitions in parallel: a customer's writers are serialized in-process by the mutex and across processes by
      // the store's compare-and-set.
      partitionsConsumedConcurrently: this.deps.config.PROCESSOR_PARTITION_CONCURRENCY,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
    await this.producer.disconnect();
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const fetchedAtMs = Date.now();
    this.firstBatchAtMs ??= fetchedAtMs;
    const { batch } = payload;
    const chunk = this.deps.config.FEATURES_COMMIT_EVERY;
    // A large fetch is worked and committed in chunks: a record's latency is one chunk, not the whole fetch, and a
    // crash repeats at most one chunk.
    for (let i = 0; i < batch.messages.length; i += chunk) {
      if (!payload.isRunning() || payload.isStale()) return;
      await this.processChunk(payload, batch.messages.slice(i, i + chunk), fetchedAtMs);
    }
  }

  private async processChunk(payload: EachBatchPayload, messages: KafkaMessage[], fetchedAtMs: number): Promise<void> {
    const started = process.hrtime.bigint();
    const { batch } = payload;
    const { topics, serde } = this.deps;
    const isLive = () => payload.isRunning() && !payload.isStale();
    const last = messages.at(-1);
    if (!last) return;
    const part = { topic: batch.topic, partition: batch.partition, messages };
    const source = `${batch.topic}:${batch.partition}`;
    let updates: FeatureUpdate[] = [];
    let failed;
    if (batch.topic === topics.identityMerges.name) {
      const decoded = await decodeBatch<IdentityMerge>(part, topics.identityMerges, serde, mergeProblems, isLive);
      failed = decoded.failed;
      if (!isLive()) return;
      for (const r of decoded.records) {
        const update = await this.applyMerge(r.value.survivorId, r.value.mergedId);
        if (update) updates.push(update);
      }
    } else {
      const isTx = batch.topic === topics.customerTransactions.name;
      const spec = isTx ? topics.customerTransactions : topics.customerClicks;
      const decoded = await decodeBatch<Transaction | BehaviorEvent>(part, spec, serde, undefined, isLive);
      failed = decoded.failed;
      if (!isLive()) return;
      const byCustomer = new Map<string, SourcedEvent[]>();
      for (const r of decoded.records) {
        const id = r.message.key?.toString();
        if (!id) {
          const reason = 'resolved record without a key: no customer to attribute it to';
          failed.push({ ...part, message: r.message, code: 'RECORD_INVALID', reason });
          continue;
        }
        const event = isTx ? transactionEvent(r.value as Transaction) : clickEvent(r.value as BehaviorEvent);
        const list = byCustomer.get(id) ?? [];
        list.push({ event, source, offset: Number(r.message.offset), stream: `${isTx ? 't' : 'c'}|${id}` });
        byCustomer.set(id, list);
      }
      const collected: FeatureUpdate[] = [];
      await forEachLimited([...byCustomer], this.deps.config.FEATURES_KEY_CONCURRENCY, async ([id, records]) => {
        const update = await this.applyEvents(id, records);
        if (update) collected.push(update);
      });
      updates = collected;
    }
    if (updates.length > 0 && this.deps.onUpdated) await this.deps.onUpdated(updates);
    await this.deadLetters.publish(failed);
    payload.resolveOffset(last.offset);
    await this.consumer.commitOffsets([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
    ]);
    await payload.heartbeat();
    const committedAtMs = Date.now();
    const count = messages.length;
    this.processed += count;
    const { metrics } = this.deps;
    metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'ok' }, count - failed.length);
    metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'dead_letter' }, failed.length);
    metrics.batchDuration.observe({ processor: PROCESSOR }, Number(process.hrtime.bigint() - started) / 1e9);
    const appendTimesMs = messages.map((m) => Number(m.timestamp));
    for (const t of appendTimesMs) this.featureMetrics.latency.observe(Math.max(0, committedAtMs - t) / 1000);
    this.deps.onCommitted?.({ records: count, fetchedAtMs, committedAtMs, appendTimesMs });
  }

  private rootOf(id: string): string {
    let current = id;
    for (let hop = 0; hop < 64; hop++) {
      const next = this.aliases.get(current);
      if (!next) return current;
      current = next;
    }
    return current;
  }

  private async loadRoot(id: string): Promise<{ id: string; version: number; state: FeatureState | null }> {
    const root = this.rootOf(id);
    const cached = this.cache.get(root);
    if (cached) return { id: root, ...cached };
    const stored = await this.deps.store.load(root);
    if (stored.id !== root) this.aliases.set(root, stored.id);
    return stored;
  }

  private remember(id: string, version: number, state: FeatureState): void {
    if (this.cache.size >= this.deps.config.FEATURES_CACHE_SIZE) this.cache.clear(); // a cache, not state
    this.cache.set(id, { version, state });
  }

  /** Folds one customer's records of a batch into its (root's) state and writes it; retries lost races. */
  private async applyEvents(id: string, records: readonly SourcedEvent[]): Promise<FeatureUpdate | null> {
    const grace = this.deps.config.FEATURES_LATE_GRACE_MS;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const root = this.rootOf(id);
      const outcome = await this.mutex.run([root], async () => {
        const loaded = await this.loadRoot(root);
        if (loaded.id !== root) return 'moved' as const; // discovered a merge: lock the survivor instead
        const state = loaded.state ?? emptyState();
        this.cache.delete(root); // `state` is mutated below; only a successful write puts it back
        const fold = foldEvents(state, records, grace);
        this.featureMetrics.events.inc({ outcome: 'duplicate' }, fold.duplicates);
        if (fold.applied === 0 && fold.late === 0) {
          if (loaded.state) this.remember(root, loaded.version, state);
          return null;
        }
        const features = currentFeatures(state, this.deps.cutPoints());
        const hash = features ? hashFields(features, loaded.version + 1, Date.now()) : [];
        try {
          const version = await this.deps.store.write(root, loaded.version, state, hash);
          this.remember(root, version, state);
          this.featureMetrics.events.inc({ outcome: 'applied' }, fold.applied);
          this.featureMetrics.events.inc({ outcome: 'late' }, fold.late);
          if (fold.late > 0) this.deps.log.debug('late events not applied', { customer: root, late: fold.late });
          const eventIds = records.map((r) => r.event.eventId);
          return features ? { customerId: root, version, state, features, eventIds } : null;
        } catch (err) {
          if (err instanceof StaleStateError) return 'retry' as const;
          throw err;
        }
      });
      if (outcome === 'retry') this.featureMetrics.conflicts.inc();
      if (outcome !== 'moved' && outcome !== 'retry') return outcome;
    }
    throw new Error(`feature state of ${id}: gave up after ${MAX_ATTEMPTS} conflicting writes`);
  }

  /** Combines the merged-away customer's state into the survivor's and aliases it. Idempotent. */
  private async applyMerge(survivorId: string, mergedId: string): Promise<FeatureUpdate | null> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const survivorRoot = this.rootOf(survivorId);
      const loserRoot = this.rootOf(mergedId);
      const outcome = await this.mutex.run([survivorRoot, loserRoot], async () => {
        // Always from Redis: a merge is rare, and both sides must be current.
        this.cache.delete(survivorRoot);
        this.cache.delete(loserRoot);
        const survivor = await this.deps.store.load(survivorRoot);
        const loser = await this.deps.store.load(loserRoot);
        if (survivor.id !== survivorRoot || loser.id !== loserRoot) {
          if (survivor.id !== survivorRoot) this.aliases.set(survivorRoot, survivor.id);
          if (loser.id !== loserRoot) this.aliases.set(loserRoot, loser.id);
          return 'moved' as const;
        }
        if (survivor.id === loser.id) return null; // already one customer (a redelivered merge)
        const combined = survivor.state ?? emptyState();
        if (loser.state) mergeStates(combined, loser.state);
        prune(combined);
        const features = currentFeatures(combined, this.deps.cutPoints());
        const hash = features ? hashFields(features, survivor.version + 1, Date.now()) : [];
        try {
          const version = await this.deps.store.writeMerge(survivor, loser, combined, hash);
          this.aliases.set(loser.id, survivor.id);
          this.remember(survivor.id, version, combined);
          this.featureMetrics.merges.inc();
          return features ? { customerId: survivor.id, version, state: combined, features, eventIds: [] } : null;
        } catch (err) {
          if (err instanceof StaleStateError) return 'retry' as const;
          throw err;
        }
      });
      if (outcome === 'retry') this.featureMetrics.conflicts.inc();
      if (outcome !== 'moved' && outcome !== 'retry') return outcome;
    }
    throw new Error(`merge of ${mergedId} into ${survivorId}: gave up after ${MAX_ATTEMPTS} conflicting writes`);
  }
}

function mergeProblems(m: IdentityMerge): string[] {
  const problems: string[] = [];
  if (!m.survivorId) problems.push('survivorId is empty');
  if (!m.mergedId) problems.push('mergedId is empty');
  if (m.survivorId === m.mergedId) problems.push('survivorId equals mergedId');
  return problems;
}
