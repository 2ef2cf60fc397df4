/**
 * Feature processor: consumes resolved transactions and clicks (keyed by global customer id), identity merges (keyed
 * by the merged-away id) and its own hand-off topic, all co-partitioned. Like a Kafka Streams task, the instance that
 * owns partition p keeps p's customers in process memory (owned.ts) and folds events there; Redis holds a checkpoint
 * of each customer's state (restored lazily, on first touch after an assignment) and what the ad server reads.
 *
 * A flush runs whenever work is waiting and the previous flush is done (and at least every FEATURES_FLUSH_MAX_MS); while
 * the processor is behind, once FEATURES_FLUSH_MAX_RECORDS records are folded (coalescing a customer's events):
 *   snapshot every changed customer (features, state checkpoint) → one ONNX run (the scoring stage) → hand-offs to other
 *   partitions (only when a merge needs them) → in parallel: one pipelined Redis round trip (state + features hash +
 *   score per customer, fenced by the partition's owner epoch) and one Kafka batch (scores, dead letters) → commit.
 * A crash repeats at most the work since the last commit, and the state's watermarks make the repeat a no-op. An
 * instance that lost a partition is fenced: the new owner raised the partition's epoch before its first write, and
 * every customer write refuses an older epoch.
 */
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import { exhaustMap, interval, merge, Subject, type Subscription } from 'rxjs';
import { Counter, Gauge, Histogram } from 'prom-client';
import type {
  BehaviorEvent,
  CustomerErasure,
  FeatureHandoff,
  IdentityMerge,
  IntentScore,
  Transaction,
} from '../../schemas/generated/types.js';
import type { TopicCatalog, TopicSpec } from '../../topics/catalog.js';
import type { Config } from '../runtime/config.js';
import { copartitionedAssigner } from '../runtime/copartition.js';
import { DeadLetterPublisher, type FailedRecord } from '../runtime/dead-letter.js';
import { decodeBatch } from '../runtime/decode-batch.js';
import { fatalKindOf, FetchWatch } from '../runtime/fetch-watch.js';
import { SOURCE_HEADER } from '../runtime/headers.js';
import { fatalTotal, outageSeconds, superviseConsumer, type ConsumerSupervisor } from '../runtime/liveness.js';
import { splitTp } from '../runtime/ordered-intake.js';
import { outageOf } from '../runtime/outage.js';
import { boundedStep } from '../runtime/shutdown.js';
import { SerialProducer } from '../runtime/kafka.js';
import { chunksByBytes } from '../runtime/send-chunks.js';
import type { Logger } from '../runtime/log.js';
import { InputFreshness, type ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { scoreHashFields } from '../scoring/logic.js';
import type { Scorer, ScoreRow } from '../scoring/scorer.js';
import type { CustomerFeatures, RfmCutPoints } from './definitions.js';
import { clickEvent, currentFeatures, hashChanges, transactionEvent, type SourcedEvent } from './logic.js';
import { prune } from './state.js';
import { PartitionTable, type Entry } from './owned.js';
import { encodeState, type CustomerWrite, type FeatureStore } from './store.js';

export const PROCESSOR = 'feature-processor';

/**
 * Scores of a flush, called once the flush is done (in Redis, on the scores topic, offsets committed), with the ids of
 * the events behind each score (empty for a rescore) and `inRedisAtMs`: when the flush's Redis write was acknowledged
 * (epoch ms, sub-millisecond: performance.timeOrigin + performance.now()), the moment the ad server could read them.
 * The Kafka send and the offset commit run after or beside it and do not delay what the ad server sees.
 */
export type ScoresListener = (
  scores: readonly IntentScore[],
  eventIds: readonly (readonly string[])[],
  timing: { readonly inRedisAtMs: number },
) => void;

/** Timing of one flush, for benchmarks. */
export interface FlushTiming {
  readonly records: number;
  readonly customers: number;
  readonly startedAtMs: number;
  readonly committedAtMs: number;
  /** Kafka append time of each record the flush committed. */
  readonly appendTimesMs: readonly number[];
  /** Whether it checkpointed states and committed offsets. */
  readonly checkpoint: boolean;
  /** Phases: snapshot (features, state encoding, scoring), writes (Redis and Kafka), commit. */
  readonly snapshotMs: number;
  readonly writeMs: number;
  readonly commitMs: number;
  /** Of the writes' last attempt: until the Redis round trip and until the Kafka sends were done (they overlap). */
  readonly redisMs: number;
  readonly kafkaMs: number;
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
  /** The scoring stage; without it the processor keeps features only. */
  readonly scorer?: Scorer;
  /** Every score once its flush is done (see {@link ScoresListener}). */
  readonly onScores?: ScoresListener;
  readonly onFlushed?: (timing: FlushTiming) => void;
  /** The partition numbers this instance owns, after every rebalance. */
  readonly onAssigned?: (partitions: readonly number[]) => void;
  /** The processor cannot make progress (a flush kept failing, the consumer crashed for good). */
  readonly onFatal?: (error: Error) => void;
  /** @default '<TOPIC_PREFIX>feature-processor' */
  readonly groupId?: string;
}

interface Snapshot {
  readonly startedAtMs: number;
  readonly checkpoint: boolean;
  readonly writes: CustomerWrite[];
  readonly scored: Map<number, [string, number][]>;
  readonly unscored: Map<number, string[]>;
  readonly forget: Map<number, string[]>;
  readonly messages: { topic: string; messages: Message[] }[];
  readonly handoffs: Message[];
  readonly failed: FailedRecord[];
  readonly commits: { topic: string; partition: number; offset: string }[];
  /** Per `topic:partition`: the next offset after everything folded into this snapshot (served once it is written). */
  readonly folded: Map<string, bigint>;
  readonly scores: IntentScore[];
  readonly causes: (readonly string[])[];
  readonly partitionOf: Map<string, number>;
  readonly appendTimesMs: number[];
  readonly records: number;
  readonly newestEventMs: number;
}

const FLUSH_ATTEMPTS = 8;
/** Fewest checkpoint states a flush writes while a checkpoint is in progress (snapshot). */
const CHECKPOINT_SLICE = 200;
const RESCORE_CHUNK = 2_000;
const REBALANCE_ERRORS =
  /REBALANCE_IN_PROGRESS|ILLEGAL_GENERATION|UNKNOWN_MEMBER_ID|NOT_COORDINATOR|not aware of this member|rebalanc|generation|not running/i;
const MAX_FAILED_COMMITS = 20;

export class FeatureProcessor {
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly deadLetters: DeadLetterPublisher;
  private readonly tables = new Map<number, PartitionTable>();
  private readonly claiming = new Map<number, Promise<PartitionTable | null>>();
  private assigned = new Set<number>();
  /**
   * servedPositions(): per `topic:partition` of a partition this instance holds, the next offset after what its last
   * written flush served (entries of partitions it lost go with their tables).
   */
  private readonly served = new Map<string, bigint>();
  private readonly kick$ = new Subject<void>();
  private flushes: Subscription | undefined;
  private supervisor: ConsumerSupervisor | undefined;
  private buffered = 0;
  /** When the first record not yet in a flush was folded (epoch ms; 0: none). */
  private bufferedSinceMs = 0;
  /** Records left in Kafka after the last folded chunk, per `<topic>:<partition>` (from the fetch's high watermark). */
  private readonly lag = new Map<string, { partition: number; records: number }>();
  private failedCommits = 0;
  private failedRecords: FailedRecord[] = [];
  private appendTimes: number[] = [];
  private waiting: (() => void)[] = [];
  private inFlushWaiting: (() => void)[] = [];
  private inBatch = 0;
  private lastCheckpointMs = Date.now();
  private forceCheckpoint = false;
  private stopping = false;
  private fatal: Error | null = null;
  private eventClockMs = 0;
  private rescoreTimer: NodeJS.Timeout | undefined;
  /** A partition the consumer stopped fetching ends the processor (runtime/fetch-watch.ts). */
  private readonly fetchWatch: FetchWatch;
  private rescoring: Promise<unknown> = Promise.resolve();
  private readonly m;
  private readonly freshness: InputFreshness;
  private processed = 0;
  /** When this instance received its first batch (epoch ms). */
  firstBatchAtMs: number | null = null;

  constructor(private readonly deps: FeatureProcessorDeps) {
    const { config, topics } = deps;
    const registers = [deps.metrics.registry];
    this.freshness = new InputFreshness(deps.metrics.registry, PROCESSOR);
    this.m = {
      events: new Counter({
        name: 'features_events_total',
        help: 'Resolved events by effect on state: applied, duplicate (redelivered, skipped), late (older than grace), forwarded (merged-away id), erased (the customer was erased: dropped)',
        labelNames: ['outcome'],
        registers,
      }),
      merges: new Counter({
        name: 'features_merges_total',
        help: 'Merges: handed-off (merged-away side), absorbed (survivor side), duplicate',
        labelNames: ['outcome'],
        registers,
      }),
      erasures: new Counter({
        name: 'features_erasures_total',
        help: 'Erasure commands: erased (state dropped, keys deleted, score tombstoned), duplicate (already erased here)',
        labelNames: ['outcome'],
        registers,
      }),
      fenced: new Counter({
        name: 'features_fenced_total',
        help: 'Partitions dropped because a newer owner wrote them (this instance lost them in a rebalance)',
        registers,
      }),
      // Shared with the consumer's supervisor (one series per processor and dependency).
      outage: outageSeconds(deps.metrics.registry),
      fatal: fatalTotal(deps.metrics.registry),
      latency: new Histogram({
        name: 'features_event_latency_seconds',
        help: 'From Kafka append time of a resolved event to its state, features and score being written',
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
        registers,
      }),
      flush: new Histogram({
        name: 'features_flush_seconds',
        help: 'One flush: snapshot, scoring, Redis and Kafka writes, commit',
        buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
        registers,
      }),
      customers: new Gauge({
        name: 'features_customers_in_memory',
        help: 'Customers held in process memory for the partitions this instance owns',
        registers,
      }),
    };
    const groupId = deps.groupId ?? `${config.TOPIC_PREFIX}${PROCESSOR}`;
    this.fetchWatch = FetchWatch.ownAdmin(deps.kafka, config, {
      groupId,
      log: deps.log,
      onStall: (reason, kind) => {
        this.m.fatal.inc({ processor: PROCESSOR, kind: fatalKindOf(kind) });
        this.fail(new Error(reason));
      },
    });
    this.consumer = deps.kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: Math.floor(config.KAFKA_SESSION_TIMEOUT_MS / 10),
      maxBytesPerPartition: 4 << 20,
      partitionAssigners: [copartitionedAssigner(() => [...this.tables.keys()])],
    });
    // A flush sends one batch at a time anyway; the serial producer also starts afresh after a send that failed.
    this.producer = SerialProducer.idempotent(deps.kafka, (err) => {
      deps.log.warn('send failed; the next send starts on a fresh producer', { error: String(err) });
    });
    const dlq = new Map<string, TopicSpec>();
    for (const spec of this.inputs()) {
      const target = topics.all.find((t) => t.name === spec.deadLetterTopic);
      if (target) dlq.set(spec.name, target);
    }
    this.deadLetters = new DeadLetterPublisher(PROCESSOR, this.producer, deps.serde, dlq, deps.metrics.registry);
  }

  private inputs(): TopicSpec[] {
    const { topics } = this.deps;
    return [
      topics.identityMerges,
      topics.featureHandoff,
      topics.customerTransactions,
      topics.customerClicks,
      topics.customerErasures,
    ];
  }

  get processedCount(): number {
    return this.processed;
  }

  /**
   * Per `topic:partition` of the partitions owned now: the next offset after every record whose state, features and
   * score are written (served; committed later, with a checkpoint). Progress that a rebalance's repeats do not inflate.
   */
  servedPositions(): Map<string, bigint> {
    return new Map(this.served);
  }

  /** Partition numbers this instance owns now. */
  get ownedPartitions(): number[] {
    return [...this.assigned].sort((a, b) => a - b);
  }

  async start(): Promise<void> {
    const { consumer } = this;
    await this.producer.connect();
    await this.fetchWatch.connect();
    await consumer.connect();
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      this.onAssigned(payload.memberAssignment);
    });
    this.fetchWatch.follow(consumer);
    // Never alive and idle: a crash kafkajs will not restart, a batch failing at one offset, a restart loop.
    this.supervisor = superviseConsumer(consumer, {
      processor: PROCESSOR,
      log: this.deps.log,
      registry: this.deps.metrics.registry,
      maxOutageMs: this.deps.config.PROCESSOR_OUTAGE_MAX_MS,
      onFatal: (failure) => {
        this.fail(new Error(failure.reason));
      },
    });
    for (const spec of this.inputs()) await consumer.subscribe({ topic: spec.name, fromBeginning: true });
    const maxMs = this.deps.config.FEATURES_FLUSH_MAX_MS;
    this.flushes = merge(this.kick$, interval(maxMs))
      .pipe(exhaustMap(() => this.drain()))
      .subscribe({
        error: (err: unknown) => {
          this.m.fatal.inc({ processor: PROCESSOR, kind: outageOf(err) ? 'dependency-outage' : 'flush-failed' });
          this.fail(err);
        },
      });
    if (this.deps.config.SCORING_CLOCK === 'wall') {
      // Live, nothing else moves time for customers without events: look for due rescoring once a minute.
      this.rescoreTimer = setInterval(() => {
        this.scheduleRescore();
      }, 60_000);
    }
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.deps.config.PROCESSOR_PARTITION_CONCURRENCY,
      eachBatch: this.supervisor.eachBatch((payload) => this.fetchWatch.handle(() => this.onBatch(payload))),
    });
  }

  /** Stops fetching, writes and commits what was folded, then leaves the group. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.rescoreTimer);
    this.fetchWatch.stop();
    this.consumer.pause(this.inputs().map((s) => ({ topic: s.name })));
    for (let i = 0; i < 200 && this.inBatch > 0; i++) await sleep(10);
    if (!this.fatal) {
      try {
        await this.flushNow(true);
      } catch (err) {
        this.deps.log.warn('final flush failed; the next owner repeats the unflushed records', {
          error: String(err),
        });
      }
    }
    this.flushes?.unsubscribe();
    this.supervisor?.dispose();
    await boundedStep(this.deps.log, 'feature consumer disconnect', () => this.consumer.disconnect());
    await boundedStep(this.deps.log, 'fetch watch disconnect', () => this.fetchWatch.disconnect());
    await boundedStep(this.deps.log, 'producer disconnect', () => this.producer.disconnect());
  }

  /** Resolves once a flush that started after this call has been written (and, with `checkpoint`, committed). */
  flushNow(checkpoint = false): Promise<void> {
    if (checkpoint) this.forceCheckpoint = true;
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.kick$.next();
    });
  }

  /** Why the processor stopped making progress, or null. */
  failure(): Error | null {
    return this.fatal;
  }

  private fail(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.fatal) return;
    this.fatal = error;
    this.deps.log.error('feature processor cannot make progress', { error: error.message });
    for (const w of [...this.waiting, ...this.inFlushWaiting]) w();
    this.waiting = [];
    this.inFlushWaiting = [];
    if (this.deps.onFatal) this.deps.onFatal(error);
  }

  private onAssigned(assignment: Record<string, number[] | undefined>): void {
    const mine = new Set<number>();
    for (const spec of this.inputs()) for (const p of assignment[spec.name] ?? []) mine.add(p);
    for (const [p, table] of this.tables) {
      if (!mine.has(p)) {
        this.tables.delete(p); // revoked: unflushed folds are repeated by the new owner from the last commit
      } else {
        table.verified = false; // still ours, unless another instance held it in between (checked on next use)
      }
    }
    this.assigned = mine;
    for (const [key, { partition }] of this.lag) if (!mine.has(partition)) this.lag.delete(key);
    for (const tp of this.served.keys()) if (!mine.has(splitTp(tp).partition)) this.served.delete(tp);
    this.deps.log.info('partitions assigned', { partitions: this.ownedPartitions });
    this.deps.onAssigned?.(this.ownedPartitions);
  }

  /** The table of partition `p`, claiming it (new epoch) or verifying it is still ours first. */
  private tableFor(p: number): Promise<PartitionTable | null> {
    const table = this.tables.get(p);
    if (table?.verified) return Promise.resolve(table);
    let claim = this.claiming.get(p);
    if (!claim) {
      claim = (async () => {
        const { store } = this.deps;
        if (table && (await store.currentEpoch(p)) === table.epoch) {
          table.verified = true;
          return table;
        }
        const fresh = new PartitionTable(p, await store.claimEpoch(p), this.deps.onScores !== undefined);
        if (!this.assigned.has(p)) return null;
        this.tables.set(p, fresh);
        this.deps.log.debug('partition claimed', { partition: p, epoch: fresh.epoch });
        return fresh;
      })().finally(() => this.claiming.delete(p));
      this.claiming.set(p, claim);
    }
    return claim;
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const live = () => payload.isRunning() && !payload.isStale() && !this.stopping;
    const failure = this.failure();
    if (failure) throw failure;
    if (batch.messages.length === 0 || !live()) return;
    this.firstBatchAtMs ??= Date.now();
    // A fetch can hold tens of thousands of records: fold it in chunks, so a flush never waits for a whole fetch and
    // backpressure applies within it.
    const chunk = Math.max(1, Math.min(2_000, this.deps.config.FEATURES_FLUSH_MAX_RECORDS));
    for (let i = 0; i < batch.messages.length; i += chunk) {
      if (!live() || !this.assigned.has(batch.partition)) return;
      const messages = batch.messages.slice(i, i + chunk);
      const last = messages.at(-1) as KafkaMessage;
      this.inBatch++;
      try {
        const table = await this.tableFor(batch.partition);
        if (!table || !live() || this.tables.get(batch.partition) !== table) return;
        // Recorded in the same synchronous step as the fold (apply calls it right after): a flush that snapshots the
        // folded customers must also see their offsets and records, not only the next flush.
        const folded = () => {
          if (!live() || this.tables.get(batch.partition) !== table) return;
          table.pending.set(batch.topic, BigInt(last.offset) + 1n);
          for (const m of messages) this.appendTimes.push(Number(m.timestamp));
          if (this.buffered === 0) this.bufferedSinceMs = Date.now();
          this.buffered += messages.length;
          const left = Number(BigInt(batch.highWatermark) - 1n - BigInt(last.offset));
          this.lag.set(`${batch.topic}:${batch.partition}`, { partition: batch.partition, records: Math.max(0, left) });
          payload.resolveOffset(last.offset);
          this.fetchWatch.deliveredUpTo(`${batch.topic}:${batch.partition}`, last.offset);
        };
        await this.apply(table, batch.topic, batch.partition, messages, live, folded);
        if (!live() || this.tables.get(batch.partition) !== table) return;
      } finally {
        this.inBatch--;
      }
      this.kick$.next();
      // Backpressure: do not fold further ahead of Redis and Kafka than two flushes' worth (one being written, the next
      // one folding meanwhile), and keep heartbeating while waiting (kafkajs heartbeats only between batches: a long
      // wait would cost the group membership).
      if (this.buffered >= 2 * this.deps.config.FEATURES_FLUSH_MAX_RECORDS) {
        let flushed = false;
        const done = this.flushNow().then(() => (flushed = true));
        while (!flushed && live()) {
          await Promise.race([done, sleep(1_000)]);
          await payload.heartbeat();
        }
      }
      await payload.heartbeat();
    }
  }

  /**
   * Decodes one partition's records and folds them into the table (loading customers it does not hold yet), then calls
   * `folded` with no await in between.
   */
  private async apply(
    table: PartitionTable,
    topic: string,
    partition: number,
    messages: KafkaMessage[],
    live: () => boolean,
    folded: () => void,
  ): Promise<void> {
    const { topics, serde, config } = this.deps;
    const part = { topic, partition, messages };
    const grace = config.FEATURES_LATE_GRACE_MS;
    const load = (ids: Iterable<string>) =>
      table.hold(ids, async (missing) => (await this.deps.store.fetch(missing)).values());
    // Every branch decodes and loads (the awaits), then folds; the failures and `folded` follow in the same step.
    let failed: FailedRecord[];
    if (topic === topics.identityMerges.name) {
      const decoded = await decodeBatch<IdentityMerge>(part, topics.identityMerges, serde, mergeProblems, live);
      failed = [...decoded.failed];
      const ok = decoded.records.filter((r) => {
        if (r.message.key?.toString() === r.value.mergedId) return true;
        const reason = `merge keyed by ${String(r.message.key)}, not by its mergedId ${r.value.mergedId}: it would reach another partition's owner`;
        failed.push({ ...part, message: r.message, code: 'RECORD_INVALID', reason });
        return false;
      });
      await load(ok.map((r) => r.value.mergedId));
      for (const r of ok) {
        const outcome = table.merge(r.value.mergedId, r.value.survivorId, r.value.eventTimeMs, r.value.eventId);
        this.m.merges.inc({ outcome });
      }
    } else if (topic === topics.customerErasures.name) {
      const spec = topics.customerErasures;
      const decoded = await decodeBatch<CustomerErasure>(part, spec, serde, erasureProblems, live);
      failed = [...decoded.failed];
      for (const r of decoded.records) {
        if (r.message.key?.toString() !== r.value.customerId) {
          const reason = `erasure keyed by ${String(r.message.key)}, not by its customerId: it would reach another partition's owner`;
          failed.push({ ...part, message: r.message, code: 'RECORD_INVALID', reason });
          continue;
        }
        this.m.erasures.inc({ outcome: table.erase(r.value.customerId) });
      }
    } else if (topic === topics.featureHandoff.name) {
      const decoded = await decodeBatch<FeatureHandoff>(part, topics.featureHandoff, serde, handoffProblems, live);
      failed = [...decoded.failed];
      await load(decoded.records.map((r) => r.value.toId));
      for (const r of decoded.records) {
        const outcome = table.receive(r.value, grace);
        if (outcome === 'erased') this.m.events.inc({ outcome });
        else if (typeof outcome === 'string') {
          if (outcome !== 'forwarded' || r.value.kind === 'STATE') this.m.merges.inc({ outcome });
        } else this.countFold(outcome);
      }
    } else {
      const isTx = topic === topics.customerTransactions.name;
      const spec = isTx ? topics.customerTransactions : topics.customerClicks;
      const decoded = await decodeBatch<Transaction | BehaviorEvent>(part, spec, serde, undefined, live);
      this.freshness.observe(
        topic,
        decoded.records.map((r) => r.value.eventTimeMs),
      );
      failed = [...decoded.failed];
      const source = `${topic}:${partition}`;
      const origins = new Origins();
      const byCustomer = new Map<string, SourcedEvent[]>();
      for (const r of decoded.records) {
        const id = r.message.key?.toString();
        if (!id) {
          const reason = 'resolved record without a key: no customer to attribute it to';
          failed.push({ ...part, message: r.message, code: 'RECORD_INVALID', reason });
          continue;
        }
        const event = isTx ? transactionEvent(r.value as Transaction) : clickEvent(r.value as BehaviorEvent);
        const origin = origins.of(r.message); // the raw record's coordinates when the resolver published it
        let records = byCustomer.get(id);
        if (!records) byCustomer.set(id, (records = []));
        records.push({
          event,
          source: origin?.source ?? source,
          offset: origin?.offset ?? Number(r.message.offset),
          // One string per customer and chunk: the fold looks it up per record, and a string hashes once.
          stream: records[0]?.stream ?? `${isTx ? 't' : 'c'}|${id}`,
        });
      }
      await load(byCustomer.keys());
      for (const [id, records] of byCustomer) {
        const outcome = table.fold(id, records, grace);
        if (outcome === 'forwarded' || outcome === 'erased') this.m.events.inc({ outcome }, records.length);
        else this.countFold(outcome);
      }
    }
    this.failedRecords.push(...failed);
    folded();
  }

  private countFold(fold: { applied: number; duplicates: number; late: number }): void {
    if (fold.applied > 0) this.m.events.inc({ outcome: 'applied' }, fold.applied);
    if (fold.duplicates > 0) this.m.events.inc({ outcome: 'duplicate' }, fold.duplicates);
    if (fold.late > 0) this.m.events.inc({ outcome: 'late' }, fold.late);
  }

  /**
   * Every FEATURES_CHECKPOINT_MS, or sooner once the states changed since the last checkpoint reach half of
   * FEATURES_CACHE_SIZE: those cannot be evicted until written, so without the bound the interval (and the traffic's
   * number of distinct customers in it) would decide how far memory grows past the cache size.
   */
  private checkpointDue(): boolean {
    const { FEATURES_CHECKPOINT_MS, FEATURES_CACHE_SIZE } = this.deps.config;
    if (this.forceCheckpoint || Date.now() - this.lastCheckpointMs >= FEATURES_CHECKPOINT_MS) return true;
    let unsaved = 0;
    for (const t of this.tables.values()) unsaved += t.unsaved.size;
    return unsaved >= FEATURES_CACHE_SIZE / 2;
  }

  private waitingInKafka(): number {
    let records = 0;
    for (const lag of this.lag.values()) records += lag.records;
    return records;
  }

  private hasWork(): boolean {
    if (this.waiting.length > 0 || this.failedRecords.length > 0) return true;
    const due = this.checkpointDue();
    let changed = false;
    let saving = false;
    for (const t of this.tables.values()) {
      if (t.erasures.length > 0 || (due && (t.unsaved.size > 0 || t.pending.size > 0))) return true;
      if (t.changed.size > 0) changed = true;
      if (t.checkpointing) saving = true;
    }
    // A checkpoint in progress goes on by itself when nothing else is folded; else with the flushes (behind, those wait
    // to coalesce).
    return changed ? this.flushDue() : saving;
  }

  /**
   * Caught up, changed customers are flushed at once (latency). Behind, a flush waits for FEATURES_FLUSH_MAX_RECORDS
   * folded records (or FEATURES_FLUSH_BEHIND_MAX_MS): a customer with several of them is then written and scored once,
   * the coalescing Kafka Streams' record cache does, which is what lets a backlog be worked off faster than it grew.
   */
  private flushDue(): boolean {
    return flushDue({
      buffered: this.buffered,
      bufferedForMs: Date.now() - this.bufferedSinceMs,
      waitingInKafka: this.waitingInKafka(),
      maxRecords: this.deps.config.FEATURES_FLUSH_MAX_RECORDS,
      behindMaxMs: this.deps.config.FEATURES_FLUSH_BEHIND_MAX_MS,
    });
  }

  /** Flushes until nothing is waiting (rxjs' exhaustMap keeps one drain at a time). */
  private async drain(): Promise<void> {
    while (!this.fatal && this.hasWork()) {
      this.inFlushWaiting = this.waiting;
      this.waiting = [];
      const checkpoint = this.checkpointDue();
      const forced = this.forceCheckpoint;
      if (checkpoint) {
        this.forceCheckpoint = false;
        this.lastCheckpointMs = Date.now();
      }
      // Each flush is a step the fetch watch bounds (a drain under steady traffic can go on for hours).
      await this.fetchWatch.step('a flush', async () => this.write(await this.snapshot(checkpoint, forced)));
      for (const w of this.inFlushWaiting) w();
      this.inFlushWaiting = [];
    }
  }

  /**
   * Takes everything changed since the last flush, computes features and scores (no I/O but the ONNX run). A checkpoint
   * (every FEATURES_CHECKPOINT_MS) takes every state changed since the last one and the offsets to commit once they are
   * written; it writes them a slice per flush, about as many as the flush serves (at least CHECKPOINT_SLICE), so
   * the flush that starts it is not one long pause for the events waiting behind it. `forced` (a stop, flushNow(true))
   * widens a checkpoint in progress to everything folded so far and writes all of it now.
   */
  private async snapshot(checkpoint: boolean, forced = false): Promise<Snapshot> {
    const startedAtMs = Date.now();
    const { topics, serde, scorer } = this.deps;
    const cuts = this.deps.cutPoints();
    const writes: CustomerWrite[] = [];
    const served: { write: Extract<CustomerWrite, { kind: 'write' }>; row: ScoreRow | null; eventIds: string[] }[] = [];
    const forget = new Map<number, string[]>();
    const commits: Snapshot['commits'] = [];
    const handoffRecords: Message[] = [];
    const tombstones: Message[] = [];
    const partitionOf = new Map<string, number>();
    let newestEventMs = 0;
    // Checkpoint states this flush writes, all partitions together: about as many as it serves customers.
    let changedCount = 0;
    for (const table of this.tables.values()) changedCount += table.changed.size;
    let slice = forced ? Infinity : Math.max(CHECKPOINT_SLICE, changedCount);
    const folded = new Map<string, bigint>();
    for (const [p, table] of this.tables) {
      for (const offsets of [table.savingCommits, table.pending]) {
        for (const [topic, offset] of offsets) {
          const tp = `${topic}:${p}`;
          if (offset > (folded.get(tp) ?? -1n)) folded.set(tp, offset);
        }
      }
      if (forced || (checkpoint && !table.checkpointing)) table.beginCheckpoint();
      for (const id of table.erasures.splice(0)) {
        partitionOf.set(id, p);
        writes.push({ kind: 'erase', id, epoch: table.epoch });
        append(forget, p, id);
        tombstones.push({ key: id, value: null }); // after any score of it this instance sent: the serial producer
      }
      for (const e of table.changed) {
        partitionOf.set(e.id, p);
        if (e.alias) {
          writes.push({ kind: 'alias', id: e.id, epoch: table.epoch, version: ++e.version, survivor: e.alias });
          append(forget, p, e.id);
        } else if (e.state) {
          if (e.dirty) prune(e.state); // once per flush (folds do not prune)
          const features = currentFeatures(e.state, cuts, e.rescoreAt ?? undefined);
          const version = e.dirty ? ++e.version : e.version;
          if (e.dirty) newestEventMs = Math.max(newestEventMs, e.state.l);
          const saving = table.saving.has(e);
          if (saving) {
            table.saved(e);
            slice--;
          }
          const changes = features && e.dirty ? hashChanges(features, e.served, version, startedAtMs) : null;
          if (changes) e.served = changes.next;
          served.push({
            write: {
              kind: 'write',
              id: e.id,
              epoch: table.epoch,
              version,
              checkpoint: saving ? encodeState(e.state) : null,
              absorbed: e.absorbed,
              hash: changes?.set ?? [],
              replaceHash: changes?.replace ?? false,
              deleteFields: changes?.del ?? [],
              score: [],
            },
            row: features ? { customerId: e.id, features, cause: e.dirty ? 'update' : 'rescore' } : null,
            eventIds: e.eventIds,
          });
        }
        resetEntry(e);
      }
      table.changed.clear();
      for (const e of table.saving) {
        if (slice <= 0) break;
        table.saved(e);
        if (!e.state || e.alias) continue;
        slice--;
        partitionOf.set(e.id, p);
        writes.push({
          kind: 'write',
          id: e.id,
          epoch: table.epoch,
          version: e.version,
          checkpoint: encodeState(e.state),
          absorbed: e.absorbed,
          hash: [],
          replaceHash: false,
          deleteFields: [],
          score: [],
        });
      }
      // Every state the checkpoint took is written (by this flush or one before): its offsets commit with this flush.
      if (table.saving.size === 0) {
        for (const [topic, offset] of table.savingCommits)
          commits.push({ topic, partition: p, offset: offset.toString() });
        table.savingCommits.clear();
      }
      for (const h of table.takeHandoffs()) {
        const value = await serde.encode(topics.featureHandoff, { ...h, payload: Buffer.from(h.payload) });
        handoffRecords.push({ key: h.toId, value });
      }
    }
    const records = this.buffered;
    this.buffered = 0;
    this.bufferedSinceMs = 0;
    const failed = this.failedRecords;
    this.failedRecords = [];
    const appendTimesMs = this.appendTimes;
    this.appendTimes = [];

    // The scoring stage: one model run for every changed or aged customer of the flush.
    const rows: ScoreRow[] = [];
    for (const s of served) if (s.row) rows.push(s.row);
    const scored = scorer && rows.length > 0 ? await scorer.score(rows, startedAtMs) : null;
    let next = 0; // scores come back in row order
    const scoredIdx = new Map<number, [string, number][]>();
    const unscored = new Map<number, string[]>();
    const scores: IntentScore[] = [];
    const causes: (readonly string[])[] = [];
    for (const s of served) {
      const id = s.write.id;
      const score = s.row ? scored?.[next++] : undefined;
      writes.push(score ? withScore(s.write, scoreHashFields(score)) : s.write);
      if (!s.row) continue;
      const p = partitionOf.get(id) as number;
      if (score) {
        append(scoredIdx, p, [id, score.eventTimeMs]);
        scores.push(score);
        causes.push(s.eventIds);
      } else {
        append(unscored, p, id);
      }
    }
    const messages: Snapshot['messages'] = [];
    if (scores.length > 0 || tombstones.length > 0) {
      const spec = topics.customerScores;
      const values = await serde.encodeMany(spec, scores);
      const encoded: Message[] = scores.map((s, i) => ({ key: s.customerId, value: values[i] ?? null }));
      messages.push({ topic: spec.name, messages: [...encoded, ...tombstones] });
    }
    return {
      startedAtMs,
      checkpoint: commits.length > 0,
      writes,
      scored: scoredIdx,
      unscored,
      forget,
      messages,
      handoffs: handoffRecords,
      failed,
      commits,
      folded,
      scores,
      causes,
      partitionOf,
      appendTimesMs,
      records,
      newestEventMs,
    };
  }

  /** Writes a snapshot: hand-offs, then Redis and Kafka together, then the commit. Retries, then gives up loudly. */
  private async write(s: Snapshot): Promise<void> {
    const end = this.m.flush.startTimer();
    const writeStarted = Date.now();
    let failingSinceMs: number | undefined;
    let failingDependency: string | undefined;
    let fenced: readonly string[] = [];
    let redisMs = 0;
    let kafkaMs = 0;
    /** When the Redis write of the attempt that succeeded was acknowledged (what the ad server sees from then on). */
    let inRedisAtMs = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        if (s.handoffs.length > 0) {
          // Before the aliases are written: a crash in between repeats the merge, never loses the state it moves.
          for (const messages of chunksByBytes(s.handoffs)) {
            await this.producer.sendBatch({
              acks: -1,
              topicMessages: [{ topic: this.deps.topics.featureHandoff.name, messages }],
            });
          }
        }
        const sent = Date.now();
        const redis = this.deps.store
          .flush(s.writes, { scored: s.scored, unscored: s.unscored, forget: s.forget })
          .finally(() => {
            redisMs = Date.now() - sent;
            inRedisAtMs = performance.timeOrigin + performance.now(); // the last attempt's: the one that succeeded
          });
        const kafka = (async () => {
          await this.deadLetters.publish(s.failed); // its own batch, but never concurrent with another send
          for (const { topic, messages } of s.messages) {
            for (const chunk of chunksByBytes(messages)) {
              await this.producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages: chunk }] });
            }
          }
        })().finally(() => (kafkaMs = Date.now() - sent));
        const [result] = await Promise.all([redis, kafka]);
        fenced = result.fenced;
        break;
      } catch (err) {
        // A dependency outage (Redis or Kafka restarting) is ridden out for PROCESSOR_OUTAGE_MAX_MS; anything else
        // gets FLUSH_ATTEMPTS attempts. Either way the flush is repeated whole, which the fencing script and the
        // watermarks make idempotent.
        const outage = outageOf(err);
        failingSinceMs ??= Date.now();
        const forMs = Date.now() - failingSinceMs;
        if (outage ? forMs >= this.deps.config.PROCESSOR_OUTAGE_MAX_MS : attempt >= FLUSH_ATTEMPTS) {
          const what = outage ? `${outage} unavailable for ${Math.round(forMs / 1000)} s: ` : '';
          throw new Error(`${what}flush failed ${attempt} times: ${String(err)}`);
        }
        if (outage) {
          failingDependency = outage;
          this.m.outage.set({ processor: PROCESSOR, dependency: outage }, forMs / 1000);
        }
        this.deps.log.warn('flush failed; retrying', {
          attempt,
          error: String(err),
          ...(outage ? { dependency: outage, forSeconds: Math.round(forMs / 1000) } : {}),
        });
        await sleep(Math.min(5_000, 100 * 2 ** attempt));
      }
    }
    if (failingDependency) this.m.outage.set({ processor: PROCESSOR, dependency: failingDependency }, 0);
    const lost = new Set<number>();
    for (const id of fenced) lost.add(s.partitionOf.get(id) as number);
    for (const p of lost) {
      this.tables.delete(p);
      this.m.fenced.inc();
      this.deps.log.warn('partition fenced: a newer owner wrote it; dropping its state', { partition: p });
    }
    for (const [tp, offset] of s.folded) {
      // Partitions still held (not fenced, not revoked since the snapshot), and only forward: after a rebalance that
      // left a partition here, it is fetched again from its last commit.
      if (this.tables.has(splitTp(tp).partition) && offset > (this.served.get(tp) ?? -1n)) this.served.set(tp, offset);
    }
    const commits = s.commits.filter((c) => !lost.has(c.partition));
    const commitStarted = Date.now();
    if (commits.length > 0) {
      try {
        await this.consumer.commitOffsets(commits);
        this.failedCommits = 0;
      } catch (err) {
        // Nothing is lost: the next checkpoint commits later offsets, and a new owner resumes from the last commit
        // with the state's watermarks turning the repeat into no-ops. Usually the group is rebalancing (this member
        // was dropped or the generation moved on); only a commit that keeps failing means no progress.
        this.failedCommits++;
        const rebalancing = REBALANCE_ERRORS.test(`${String(err)} ${(err as { type?: string }).type ?? ''}`);
        this.deps.log[rebalancing ? 'info' : 'warn']('offset commit failed; the next checkpoint commits again', {
          error: String(err),
          consecutive: this.failedCommits,
        });
        if (this.failedCommits >= MAX_FAILED_COMMITS) {
          throw new Error(`${this.failedCommits} offset commits failed in a row, the last: ${String(err)}`);
        }
      }
    }
    const committedAtMs = Date.now();
    end();
    this.processed += s.records;
    if (s.scores.length > 0) this.deps.onScores?.(s.scores, s.causes, { inRedisAtMs });
    for (const t of s.appendTimesMs) this.m.latency.observe(Math.max(0, committedAtMs - t) / 1000);
    const customers = s.writes.length;
    this.deps.onFlushed?.({
      records: s.records,
      customers,
      startedAtMs: s.startedAtMs,
      committedAtMs,
      appendTimesMs: s.appendTimesMs,
      checkpoint: s.checkpoint,
      snapshotMs: writeStarted - s.startedAtMs,
      writeMs: commitStarted - writeStarted,
      commitMs: committedAtMs - commitStarted,
      redisMs,
      kafkaMs,
    });
    this.afterFlush(s.newestEventMs);
  }

  private afterFlush(newestEventMs: number): void {
    let inMemory = 0;
    const max = Math.max(1, Math.floor(this.deps.config.FEATURES_CACHE_SIZE / Math.max(1, this.tables.size)));
    for (const t of this.tables.values()) {
      t.evict(max);
      inMemory += t.entries.size;
    }
    this.m.customers.set(inMemory);
    const period = this.deps.config.SCORING_RESCORE_EVERY_MS;
    const crossed =
      this.eventClockMs > 0 && Math.floor(newestEventMs / period) > Math.floor(this.eventClockMs / period);
    this.eventClockMs = Math.max(this.eventClockMs, newestEventMs);
    // Driven by event time (replays): the clock crossed a period boundary. Live, a wall-clock timer does this.
    if (crossed && this.deps.config.SCORING_CLOCK === 'event') this.scheduleRescore();
  }

  /** The time rescoring works to: the event-time clock, or the wall clock when that is later and SCORING_CLOCK=wall. */
  nowMs(): number {
    return this.deps.config.SCORING_CLOCK === 'wall' ? Math.max(Date.now(), this.eventClockMs) : this.eventClockMs;
  }

  private scheduleRescore(): void {
    this.rescoring = this.rescoring
      .then(() => this.rescoreDue())
      .catch((err: unknown) => {
        this.deps.log.warn('rescoring failed, will retry at the next period', { error: String(err) });
      });
  }

  /** Rescores every owned customer whose last score is older than one period before now. */
  async rescoreDue(): Promise<number> {
    const now = this.nowMs();
    if (now <= 0) return 0;
    return this.rescoreAsOf(now, now - this.deps.config.SCORING_RESCORE_EVERY_MS);
  }

  /**
   * Rescores, as of `asOfMs`, every customer of the partitions this instance owns whose last score is as of
   * `olderThanMs` or earlier (default: before `asOfMs`). Customers with an event after `asOfMs` keep their newer score.
   */
  async rescoreAsOf(asOfMs: number, olderThanMs = asOfMs - 1): Promise<number> {
    if (!this.deps.scorer?.modelVersion) return 0; // nothing to score with: they stay due
    let total = 0;
    for (const p of this.ownedPartitions) {
      let skip = 0;
      for (;;) {
        const table = await this.tableFor(p);
        if (!table || this.fatal) break;
        const ids = await this.deps.store.dueForRescore(p, olderThanMs, skip, RESCORE_CHUNK);
        if (ids.length === 0) break;
        await table.hold(ids, async (missing) => (await this.deps.store.fetch(missing)).values());
        const gone: string[] = [];
        let marked = 0;
        for (const id of ids) {
          const e = table.entries.get(id);
          if (!e?.state || e.alias)
            gone.push(id); // merged away or expired: the survivor has its own entry
          else if (e.state.l > asOfMs)
            skip++; // a newer event scored it already
          else if (table.markRescore(id, asOfMs)) marked++;
        }
        await this.deps.store.forgetAsOf(p, gone);
        if (marked === 0 && gone.length === 0) continue;
        await this.flushNow();
        const failure = this.failure();
        if (failure) throw failure;
        total += marked;
        if (!this.deps.scorer.modelVersion) break; // the model went away: they stay due
      }
    }
    return total;
  }
}

/**
 * A customer's write with its score fields. Field by field: an object spread followed by another property takes V8's
 * slow clone path in Node 20 (~1.5 µs, against a few ns), paid here once per customer served.
 */
function withScore(w: Extract<CustomerWrite, { kind: 'write' }>, score: readonly string[]): CustomerWrite {
  const { kind, id, epoch, version, checkpoint, absorbed, hash, replaceHash, deleteFields } = w;
  // Required<…>: a field added to writes, even an optional one, fails to compile until it is copied here.
  return { kind, id, epoch, version, checkpoint, absorbed, hash, replaceHash, deleteFields, score } satisfies Required<
    Extract<CustomerWrite, { kind: 'write' }>
  >;
}

/**
 * Whether changed customers should be flushed now: at once when caught up (fewer than a quarter of `maxRecords` waiting
 * in Kafka) or with nothing folded since the last flush (rescoring, merges); while behind, once `maxRecords` records
 * are folded or the first of them waited `behindMaxMs`.
 */
export function flushDue(s: {
  readonly buffered: number;
  readonly bufferedForMs: number;
  readonly waitingInKafka: number;
  readonly maxRecords: number;
  readonly behindMaxMs: number;
}): boolean {
  if (s.buffered === 0 || s.buffered >= s.maxRecords) return true;
  if (s.waitingInKafka < s.maxRecords / 4) return true;
  return s.bufferedForMs >= s.behindMaxMs;
}

/**
 * The raw record a resolved one re-keys (the resolver's SOURCE_HEADER): watermarks on it make a batch the resolver
 * published twice (a crash between its send and its commit) a redelivery, not new events. Null for records without it.
 */
class Origins {
  /** The source of the record before: a chunk's records nearly all come from one raw partition, so one string. */
  private last = '';

  of(message: KafkaMessage): { source: string; offset: number } | null {
    const raw = message.headers?.[SOURCE_HEADER];
    const text = Buffer.isBuffer(raw) ? raw.toString('latin1') : typeof raw === 'string' ? raw : null;
    if (!text) return null;
    // `<topic>:<partition>:<offset>`, read without a regular expression (once per record on the hot path).
    const last = text.lastIndexOf(':');
    const middle = last > 0 ? text.lastIndexOf(':', last - 1) : -1;
    if (middle <= 0 || !isDigits(text, middle + 1, last) || !isDigits(text, last + 1, text.length)) return null;
    if (this.last.length !== last || !text.startsWith(this.last)) this.last = text.slice(0, last);
    return { source: this.last, offset: Number(text.slice(last + 1)) };
  }
}

function isDigits(text: string, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function append<K, V>(lists: Map<K, V[]>, key: K, value: V): void {
  const list = lists.get(key);
  if (list) list.push(value);
  else lists.set(key, [value]);
}

function resetEntry(e: Entry): void {
  e.dirty = false;
  e.rescoreAt = null;
  if (e.eventIds.length > 0) e.eventIds = [];
}

function mergeProblems(m: IdentityMerge): string[] {
  const problems: string[] = [];
  if (!m.survivorId) problems.push('survivorId is empty');
  if (!m.mergedId) problems.push('mergedId is empty');
  if (m.survivorId === m.mergedId) problems.push('survivorId equals mergedId');
  return problems;
}

function erasureProblems(e: CustomerErasure): string[] {
  return e.customerId ? [] : ['customerId is empty'];
}

function handoffProblems(h: FeatureHandoff): string[] {
  const problems: string[] = [];
  if (!h.toId || !h.fromId) problems.push('toId and fromId must not be empty');
  if (h.payloadVersion !== 1) problems.push(`payloadVersion ${h.payloadVersion} is not one this processor reads`);
  return problems;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type { CustomerFeatures };
