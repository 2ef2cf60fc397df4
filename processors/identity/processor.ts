// Identity resolver: consumes raw platform transactions and clicks; keeps the identity graph in Redis (atomic Lua);
// emits each event re-keyed by its global customer id, identity links (compacted) and identity merges.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Message } from 'kafkajs';
import { Counter, Histogram } from 'prom-client';
import type {
  BehaviorEvent,
  IdentityMerge,
  IdentityMergeRejection,
  LinkEvidence,
  Transaction,
} from '../../schemas/generated/types.js';
import { behaviorProblems, transactionProblems } from '../../schemas/rules.js';
import type { TopicCatalog, TopicSpec } from '../../topics/catalog.js';
import type { Config } from '../runtime/config.js';
import { DeadLetterPublisher, type FailedRecord } from '../runtime/dead-letter.js';
import { SOURCE_HEADER } from '../runtime/headers.js';
import { decodeBatch, type Decoded } from '../runtime/decode-batch.js';
import { describeError } from '../runtime/errors.js';
import { committedPositions, fatalKindOf, FetchWatch } from '../runtime/fetch-watch.js';
import { commitOrRejoin, SerialProducer } from '../runtime/kafka.js';
import { membershipError } from '../runtime/outage.js';
import {
  isRound,
  OrderedIntake,
  partitionsToResume,
  splitTp,
  type IntakeRecord,
  type IntakeWait,
  type Round,
} from '../runtime/ordered-intake.js';
import { chunkTopicMessages } from '../runtime/send-chunks.js';
import {
  superviseConsumer,
  type ConsumerSupervisor,
  type FatalFailure,
  type SupervisionLimits,
} from '../runtime/liveness.js';
import { withReviewSentiment } from '../features/sentiment.js';
import type { Logger } from '../runtime/log.js';
import { boundedStep } from '../runtime/shutdown.js';
import { InputFreshness, type ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { blockingKeys } from './blocking.js';
import { PublicationLog, StoredIdentitiesFound, type PublicationEntry } from './graph-store.js';
import { GraphPicture, PictureMoved } from './graph-picture.js';
import type {
  IdentityGraph,
  PartGraph,
  RegisterResult,
  RegisterSearchItem,
  RegisterSearchResult,
  StoredIdentity,
  UnionItem,
  UnionResult,
} from './graph-store.js';
import {
  attributesOf,
  identityOf,
  linkEvidence,
  linkRecord,
  mergeEvent,
  splitIdentityKey,
  type RawEvent,
} from './logic.js';
import { JudgingPicture } from './judging-picture.js';
import { decideLinks, type LinkDecision } from './cluster-link.js';
import type { MatchModel } from './model.js';
import { mergeRecord, sameRecord, toIdentityRecord } from './record.js';
import { RootCache } from './root-cache.js';
import type { IdentityRecord, LinkMethod, MergeEntry } from './types.js';

export const PROCESSOR = 'identity-resolver';
/** One send stays well below the broker's default message.max.bytes (1 MiB), headers and compression aside. */
/** Members of one candidate cluster a changed identity is compared with (honest clusters are far smaller). */
const MAX_MEMBERS_COMPARED = 60;
/** Judge-and-union attempts of one record while the clusters it judged keep changing under it; then it stays alone. */
const MAX_JUDGE_ATTEMPTS = 4;
/** Attempts at a round's offset commit before it is carried into the next round's (see commitInBackground). */
const COMMIT_ATTEMPTS = 3;
/** How long after a picture of the graph was dropped (or could not be read) the next one is tried, at first. */
const PICTURE_RETRY_MS = 30_000;
/** The longest pause between pictures (see backOffPicture). */
const PICTURE_RETRY_MAX_MS = 600_000;
/** Round commits failing in a row before the resolver gives up. */
const MAX_FAILED_COMMITS = 5;

export interface IdentityResolverDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly graph: IdentityGraph;
  readonly model: MatchModel;
  readonly topics: TopicCatalog;
  readonly log: Logger;
  readonly metrics: ProcessorMetrics;
  /** @default '<TOPIC_PREFIX>identity-resolver' */
  readonly groupId?: string;
  /**
   * Called once when the resolver can no longer make progress (its consumer was given up, or one batch keeps failing);
   * entrypoints exit (`exitOnFatal`). Without it the failure is logged, counted and kept in `failure`.
   */
  readonly onFatal?: (failure: FatalFailure) => void;
  /** Bounds of the consumer supervision (tests shorten them). */
  readonly supervision?: SupervisionLimits;
  /**
   * How often (ms) a batch that changed nothing in the graph still reads the merge outbox, to publish merges an
   * instance wrote and died before publishing. A batch that wrote to the graph always reads it. @default 5_000
   */
  readonly outboxSweepMs?: number;
}

interface Route {
  readonly spec: TopicSpec;
  readonly output: TopicSpec;
  readonly check: (value: RawEvent, nowMs: number) => string[];
}

/** How one identity of the batch got its current global id, for its link record. */
interface LinkChange {
  readonly method: LinkMethod;
  readonly confidence: number;
  readonly matchWeight: number | null;
  /** Why a probabilistic link was made (null for deterministic rules and merges). */
  readonly evidence?: LinkEvidence | null;
  readonly eventId: string;
  readonly eventTimeMs: number;
}

export class IdentityResolver {
  private readonly routes: ReadonlyMap<string, Route>;
  private readonly consumer: Consumer;
  /** One send in flight: partitions run concurrently on this one idempotent producer. */
  private readonly producer: SerialProducer;
  private readonly supervisor: ConsumerSupervisor;
  /** Follows identity.merges (every instance's merges) into `roots`; its own group per instance, no commits. */
  private readonly mergeFollower: Consumer;
  private readonly mergeSupervisor: ConsumerSupervisor;
  /**
   * Platform identity → global id, so a batch of known identities resolves with no Redis round trip. Corrected by
   * this instance's merges (as the graph returns them), by the merges it publishes from the outbox, and by every
   * merge on the identity-merges topic (`mergeFollower`). How stale a root can be: a merge made by another instance
   * reaches this cache once that instance publishes it, at the end of the batch that made it (or, if it died first,
   * when any instance's next outbox sweep publishes it: within outboxSweepMs of that instance's next batch), plus the
   * follower's fetch (ms). Meanwhile events of the merged-away customer leave keyed by its retired id, and the
   * feature processor forwards those to the survivor. Roots never change any other way (the graph never splits).
   */
  private readonly roots = new RootCache();
  private lastOutboxReadMs = 0;
  /** The graph held in process while this instance is its only writer (graph-picture.ts); undefined when not held. */
  private picture: GraphPicture | undefined;
  /** No new picture is read before this time (after one was dropped or could not be read). */
  private pictureRetryAtMs = 0;
  /** The next pause (backOffPicture); back to PICTURE_RETRY_MS once a picture's part is written. */
  private pictureRetryMs = PICTURE_RETRY_MS;
  /** Offset commits not waited for by their round (see commitInBackground). */
  private readonly commitsInFlight = new Set<Promise<void>>();
  private lastCommit: Promise<void> = Promise.resolve();
  /** Offsets of rounds whose commit failed, carried into the next commit (`topic:partition` → offset). */
  private readonly uncommitted = new Map<string, string>();
  private failedCommits = 0;
  /** The input partitions merged into one sequence by event time, cut into rounds (ordered-intake.ts). */
  private readonly intake: OrderedIntake<Fetched>;
  /** Partitions paused because the intake holds enough of them; resumed as rounds drain them. */
  private readonly paused = new Set<string>();
  private readonly pauseAt: number;
  private readonly resumeAt: number;
  private readonly admin: Admin;
  private readonly groupId: string;
  private probing = false;
  private lastProbeMs = 0;
  /** The consumer's fetching, which the intake cannot see (runtime/fetch-watch.ts). */
  private readonly fetchWatch: FetchWatch;
  private rounds: Promise<void> = Promise.resolve();
  private waker: (() => void) | undefined;
  private waiting = { key: '', sinceMs: 0, saidMs: 0 };
  /** The consumer's heartbeat (kafkajs sends none while every partition is paused or a round is long). */
  private heartbeat: (() => Promise<void>) | undefined;
  private stopping = false;
  private readonly deadLetters: DeadLetterPublisher;
  private readonly threshold: number;
  private readonly identityMetrics;
  private readonly freshness: InputFreshness;
  /**
   * Records this instance itself fully resolved (registered AND searched): most events repeat such an identity and need
   * no graph work. A record merely read back from Redis does not qualify: an instance killed between registering and
   * searching leaves it stored but never matched, and the redelivered event must finish that work.
   */
  private readonly known = new Map<string, IdentityRecord>();
  /**
   * Whether the last read of stored records for identities this process had not seen found none of them (live
   * traffic: new customers). While it holds, that read is skipped and registration checks it instead (onRound).
   */
  private unseenAreNew = false;
  private processed = 0;
  /** The graph's read counts as of the last round (the metric takes the difference). */
  private readsCounted = { clusters: 0, records: 0 };
  /**
   * Input partitions (`topic:partition`) whose publication log this instance knows to be empty: it committed their last
   * batch and has owned them since, and no earlier attempt (an instance that died) published past that batch. Their next
   * batch needs no read of it (graph-store.ts publications).
   */
  private readonly publicationLogEmpty = new Set<string>();

  constructor(private readonly deps: IdentityResolverDeps) {
    const { topics, config } = deps;
    const rules = { maxFutureMs: config.EVENT_MAX_FUTURE_MS };
    this.routes = new Map<string, Route>([
      [
        topics.transactionsRaw.name,
        {
          spec: topics.transactionsRaw,
          output: topics.customerTransactions,
          check: (v, nowMs) => transactionProblems(v as Transaction, { ...rules, nowMs }),
        },
      ],
      [
        topics.clicksRaw.name,
        {
          spec: topics.clicksRaw,
          output: topics.customerClicks,
          check: (v, nowMs) => behaviorProblems(v as BehaviorEvent, { ...rules, nowMs }),
        },
      ],
    ]);
    this.threshold = config.IDENTITY_MATCH_THRESHOLD ?? deps.model.threshold;
    const registers = [deps.metrics.registry];
    this.freshness = new InputFreshness(deps.metrics.registry, PROCESSOR);
    this.identityMetrics = {
      links: new Counter({
        name: 'identity_links_total',
        help: 'Platform identities linked or re-linked, by rule',
        labelNames: ['method'],
        registers,
      }),
      merges: new Counter({ name: 'identity_merges_total', help: 'Global customers merged', registers }),
      rootLookups: new Counter({
        name: 'identity_root_lookups_total',
        help: 'Roots of the identities of unchanged batches: from the in-process cache, or read from the graph',
        labelNames: ['source'],
        registers,
      }),
      unseenStored: new Counter({
        name: 'identity_unseen_stored_total',
        help: 'Identities registered as new without a read that turned out stored (their round read them and registered again)',
        registers,
      }),
      mergesFollowed: new Counter({
        name: 'identity_merges_followed_total',
        help: 'Merge events applied to the root cache from the identity-merges topic',
        registers,
      }),
      blocked: new Counter({
        name: 'identity_merges_blocked_total',
        help: 'Probabilistic links not made: conflicting strong evidence, or the cluster size cap',
        labelNames: ['reason'],
        registers,
      }),
      skippedBlocks: new Counter({
        name: 'identity_blocks_skipped_total',
        help: 'Blocking sets too large to use as candidate sources (IDENTITY_MAX_BLOCK_SIZE)',
        registers,
      }),
      alreadyJudged: new Counter({
        name: 'identity_judgements_repeated_skipped_total',
        help: 'Identities not judged again: their stored record was judged before (a repeated batch, a restart)',
        registers,
      }),
      staleJudgements: new Counter({
        name: 'identity_stale_judgements_total',
        help: 'Unions not applied because a judged cluster changed meanwhile (the record is judged again)',
        registers,
      }),
      graphReads: new Counter({
        name: 'identity_graph_reads_total',
        help: 'Clusters and member records searches read from the graph, not current in the in-process cache',
        labelNames: ['kind'],
        registers,
      }),
      picture: new Counter({
        name: 'identity_graph_picture_total',
        help: 'The graph held in process: loaded, unavailable (too large or moving), refused (another writer), failed, too_large',
        labelNames: ['event'],
        registers,
      }),
      candidates: new Histogram({
        name: 'identity_candidates',
        help: 'Candidates scored per changed identity',
        buckets: [0, 1, 2, 5, 10, 20, 50, 100, 500],
        registers,
      }),
    };
    this.groupId = deps.groupId ?? `${config.TOPIC_PREFIX}${PROCESSOR}`;
    const roundRecords = config.IDENTITY_ROUND_MAX_RECORDS;
    this.intake = new OrderedIntake<Fetched>({ maxRecords: roundRecords, idleMs: config.IDENTITY_ORDER_IDLE_MS });
    // Fetching a partition pauses at two rounds' worth and resumes at one (one partition can make a whole round when
    // the others are caught up); a partition a round waits for is resumed whatever it holds (resumeDrained).
    this.pauseAt = Math.max(2 * roundRecords, 2_000);
    this.resumeAt = Math.max(roundRecords, 500);
    this.admin = deps.kafka.admin();
    // A consumer that stops fetching a partition would leave the rounds waiting for it, alive and idle: give up instead.
    this.fetchWatch = new FetchWatch({
      admin: this.admin,
      groupId: this.groupId,
      stallMs: config.PROCESSOR_FETCH_STALL_MS,
      stepMaxMs: config.PROCESSOR_STEP_MAX_MS,
      log: deps.log,
      paused: (tp) => this.paused.has(tp),
      onStall: (reason, kind) => {
        this.supervisor.fail({
          kind: fatalKindOf(kind),
          error: new Error(reason),
          reason,
        });
      },
    });
    this.consumer = deps.kafka.consumer({
      groupId: this.groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: config.IDENTITY_FETCH_MAX_WAIT_MS,
      sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: Math.floor(config.KAFKA_SESSION_TIMEOUT_MS / 10),
    });
    this.producer = SerialProducer.idempotent(deps.kafka, (err) => {
      deps.log.warn('send failed; the next send starts on a fresh producer', { error: describeError(err) });
    });
    const supervise = (consumer: Consumer) =>
      superviseConsumer(consumer, {
        processor: PROCESSOR,
        log: deps.log,
        registry: deps.metrics.registry,
        maxOutageMs: config.PROCESSOR_OUTAGE_MAX_MS,
        onFatal: (failure) => {
          this.fatal ??= failure;
          deps.onFatal?.(failure);
        },
        ...deps.supervision,
      });
    this.supervisor = supervise(this.consumer);
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      this.assigned = payload.memberAssignment;
      // kafkajs fetches every assigned partition again from its committed offset: what the intake held is dropped, and
      // a round of the assignment before is neither repeated nor committed (the same round comes again).
      const tps = Object.entries(payload.memberAssignment).flatMap(([topic, ps]) => ps.map((p) => `${topic}:${p}`));
      this.intake.assign(tps, Date.now());
      this.uncommitted.clear();
      for (const tp of this.paused) {
        const { topic, partition } = splitTp(tp);
        this.consumer.resume([{ topic, partitions: [partition] }]);
      }
      this.paused.clear();
      this.publicationLogEmpty.clear(); // another member may have published rounds of them since
      this.wake();
    });
    this.mergeFollower = deps.kafka.consumer({
      groupId: `${deps.groupId ?? `${config.TOPIC_PREFIX}${PROCESSOR}`}.roots.${randomUUID()}`,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 500,
    });
    this.mergeSupervisor = supervise(this.mergeFollower);
    const dlq = new Map<string, TopicSpec>();
    for (const route of this.routes.values()) {
      const spec = topics.all.find((t) => t.name === route.spec.deadLetterTopic);
      if (spec) dlq.set(route.spec.name, spec);
    }
    this.deadLetters = new DeadLetterPublisher(PROCESSOR, this.producer, deps.serde, dlq, deps.metrics.registry);
  }

  /** When this instance received its first batch (epoch ms), for throughput figures that exclude the group join. */
  firstBatchAtMs: number | null = null;

  private fatal: FatalFailure | undefined;
  private assigned: Readonly<Record<string, readonly number[]>> = {};

  /** Input partitions this instance was given at its last group join, per topic. */
  get assignedPartitions(): Readonly<Record<string, readonly number[]>> {
    return this.assigned;
  }

  /** Why the resolver stopped making progress, once it has. */
  get failure(): FatalFailure | undefined {
    return this.fatal;
  }

  /** The root this instance would give `identityKey` without asking the graph; undefined when it is not cached. */
  cachedRootOf(identityKey: string): string | undefined {
    return this.roots.get(identityKey);
  }

  /** Records handled so far (accepted or dead-lettered) by this instance. */
  get processedCount(): number {
    return this.processed;
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.admin.connect();
    // The follower must hold its position on identity.merges before the first root is read from the graph: a merge
    // written after that read is then published after that position, and reaches the cache.
    await this.followMerges();
    await this.consumer.connect();
    for (const name of this.routes.keys()) await this.consumer.subscribe({ topic: name, fromBeginning: true });
    this.fetchWatch.follow(this.consumer);
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Fetched batches only go into the ordered intake (decoded), so partitions may arrive at once; the rounds that
      // resolve them run one after the other (roundLoop).
      partitionsConsumedConcurrently: this.deps.config.PROCESSOR_PARTITION_CONCURRENCY,
      eachBatch: this.supervisor.eachBatch((payload) => this.onFetch(payload)),
    });
    this.rounds = this.roundLoop().catch((err: unknown) => {
      this.supervisor.fail({ kind: 'crash', error: err, reason: `round loop failed: ${describeError(err)}` });
    });
  }

  async stop(): Promise<void> {
    const { log } = this.deps;
    this.stopping = true;
    this.fetchWatch.stop();
    this.wake();
    await boundedStep(log, 'resolver consumer stop', () => this.consumer.stop());
    await boundedStep(log, 'resolver round in flight', () => this.rounds);
    await boundedStep(log, 'offset commits in flight', async () => {
      await Promise.allSettled([...this.commitsInFlight]);
    });
    await boundedStep(log, 'resolver consumer disconnect', () => this.consumer.disconnect());
    await boundedStep(log, 'identity-merges follower disconnect', () => this.mergeFollower.disconnect());
    await boundedStep(log, 'admin disconnect', () => this.admin.disconnect());
    await boundedStep(log, 'producer disconnect', () => this.producer.disconnect());
    this.supervisor.dispose();
    this.mergeSupervisor.dispose();
  }

  /** Starts following identity.merges from its end; resolves once the follower's position is fixed (its first fetch). */
  private async followMerges(): Promise<void> {
    const follower = this.mergeFollower;
    const spec = this.deps.topics.identityMerges;
    await follower.connect();
    await follower.subscribe({ topic: spec.name, fromBeginning: false });
    // Erasures too: an erased person's identities must not resolve from this cache (or from `known`) to an id the
    // graph no longer has. Erasures are rare, so every cached root and record is forgotten; the graph refills them.
    await follower.subscribe({ topic: this.deps.topics.customerErasures.name, fromBeginning: false });
    let removeListener: () => void = () => undefined;
    const positioned = new Promise<void>((resolve) => {
      removeListener = follower.on(follower.events.FETCH, () => {
        resolve();
      });
    });
    await follower.run({
      autoCommit: false,
      eachBatch: this.mergeSupervisor.eachBatch(async ({ batch }) => {
        if (batch.topic === this.deps.topics.customerErasures.name) {
          if (batch.messages.length > 0) {
            this.roots.clear();
            this.known.clear();
            this.deps.log.info('erasure heard of; root cache and known records cleared', {
              commands: batch.messages.length,
            });
          }
          return;
        }
        for (const message of batch.messages) {
          if (!message.value) continue;
          let merge: IdentityMerge;
          try {
            merge = await this.deps.serde.decode<IdentityMerge>(spec, message.value);
          } catch (err) {
            // A merge this instance cannot read could leave a root stale forever: forget every root instead.
            this.roots.clear();
            this.deps.log.warn('unreadable identity merge; root cache cleared', {
              offset: message.offset,
              error: describeError(err),
            });
            continue;
          }
          this.roots.merged(merge.mergedId, merge.survivorId);
          this.identityMetrics.mergesFollowed.inc();
        }
      }),
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        positioned,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`the identity-merges follower did not start fetching ${spec.name} within 60 s`));
          }, 60_000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      removeListener();
    }
  }

  /** A fetched batch: decoded (bad records become dead letters in their place) and handed to the ordered intake. */
  private async onFetch(payload: EachBatchPayload): Promise<void> {
    await this.fetchWatch.handle(() => this.intakeBatch(payload));
  }

  private async intakeBatch(payload: EachBatchPayload): Promise<void> {
    this.heartbeat = () => payload.heartbeat();
    if (this.fatal) throw new Error(`resolver gave up: ${this.fatal.reason}`);
    const { batch } = payload;
    const route = this.routes.get(batch.topic);
    if (!route) throw new Error(`no route for ${batch.topic}`);
    const generation = this.intake.generation;
    const isLive = () => payload.isRunning() && !payload.isStale() && generation === this.intake.generation;
    const last = batch.messages.at(-1);
    if (!last || !isLive()) return;
    const nowMs = Date.now();
    const { records, failed } = await decodeBatch<RawEvent>(
      batch,
      route.spec,
      this.deps.serde,
      (v) => route.check(v, nowMs),
      isLive,
    );
    if (!isLive()) return;
    const items = new Map<string, IntakeRecord<Fetched>>();
    for (const r of records) {
      items.set(r.message.offset, {
        offset: r.message.offset,
        timeMs: r.value.eventTimeMs,
        item: { topic: batch.topic, partition: batch.partition, message: r.message, value: r.value },
      });
    }
    for (const f of failed) {
      items.set(f.message.offset, {
        offset: f.message.offset,
        timeMs: null,
        item: { topic: batch.topic, partition: batch.partition, message: f.message, failed: f },
      });
    }
    const ordered = batch.messages.flatMap((m) => {
      const item = items.get(m.offset);
      return item ? [item] : [];
    });
    if (ordered.length !== batch.messages.length) throw new Error('decode lost records of the batch');
    const tp = `${batch.topic}:${batch.partition}`;
    const caughtUp = BigInt(last.offset) + 1n >= BigInt(batch.highWatermark);
    if (!this.intake.add(tp, ordered, caughtUp, Date.now(), generation)) return; // not ours now: fetched again
    this.fetchWatch.deliveredUpTo(tp, last.offset);
    this.firstBatchAtMs ??= Date.now();
    // The fetch goes on from here; the offset is committed once the round that resolves these records is published.
    payload.resolveOffset(last.offset);
    if (this.intake.buffered(tp) >= this.pauseAt && !this.paused.has(tp)) {
      this.paused.add(tp);
      this.consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
    }
    this.wake();
  }

  private wake(): void {
    const w = this.waker;
    this.waker = undefined;
    w?.();
  }

  /** Resolves rounds of the ordered intake one after the other until the resolver stops or gives up. */
  private async roundLoop(): Promise<void> {
    while (!this.stopping && !this.fatal) {
      const next = this.intake.take(Date.now());
      if (isRound(next)) {
        await this.fetchWatch.step('a resolver round', () => this.resolveRound(next));
        this.resumeDrained();
        continue;
      }
      if (next && next.unknown.length > 0) this.probe(next.unknown);
      if (next) this.resumeDrained(next.waitingFor);
      this.reportWait(next);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 20);
        this.waker = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      await this.heartbeat?.().catch(() => undefined);
    }
  }

  /** Says (every 30 s) which partitions a round has been waiting for that long: an operator's first question. */
  private reportWait(wait: IntakeWait | null): void {
    const key = wait ? wait.waitingFor.join(',') : '';
    const now = Date.now();
    if (key !== this.waiting.key) this.waiting = { key, sinceMs: now, saidMs: now };
    else if (key !== '' && now - this.waiting.saidMs >= 30_000) {
      this.waiting.saidMs = now;
      this.deps.log.warn('round waiting for partitions with records still to come', {
        partitions: wait?.waitingFor,
        forSeconds: Math.round((now - this.waiting.sinceMs) / 1000),
        buffered: this.intake.totalBuffered,
        paused: [...this.paused],
      });
    }
  }

  /** Fetches again the paused partitions drained to resumeAt, and those the next round waits for. */
  private resumeDrained(waitingFor: readonly string[] = []): void {
    for (const tp of partitionsToResume(this.paused, (p) => this.intake.buffered(p), this.resumeAt, waitingFor)) {
      this.paused.delete(tp);
      const { topic, partition } = splitTp(tp);
      this.consumer.resume([{ topic, partitions: [partition] }]);
    }
  }

  /**
   * Asks the broker whether partitions the intake knows nothing of yet (none of their records fetched since the
   * assignment) have records to come: their committed offset against their high watermark. At most every 500 ms.
   */
  private probe(tps: readonly string[]): void {
    if (this.probing || Date.now() - this.lastProbeMs < 500) return;
    this.probing = true;
    this.lastProbeMs = Date.now();
    const generation = this.intake.generation;
    void (async () => {
      for (const [tp, { committed, high }] of await committedPositions(this.admin, this.groupId, tps))
        this.intake.setCaughtUp(tp, committed >= high, generation);
    })()
      .catch((err: unknown) => {
        this.deps.log.debug('partition probe failed; asked again later', { error: describeError(err) });
      })
      .finally(() => {
        this.probing = false;
        this.wake();
      });
  }

  /**
   * One round, retried whole until it succeeds, under the consumer supervisor's rules for a failing batch (a
   * dependency outage ridden out for PROCESSOR_OUTAGE_MAX_MS, any other failure given up after its attempts; then the
   * entrypoint exits). Repeating a round is safe: the graph's watermarks, judged marks and publication log make it a
   * no-op where it was done.
   */
  private async resolveRound(round: Round<Fetched>): Promise<void> {
    const first = round.entries[0];
    if (!first) return;
    const at = { ...splitTp(first.tp), offset: first.offset };
    for (let attempt = 1; ; attempt++) {
      if (this.stopping || round.generation !== this.intake.generation) return;
      try {
        await this.onRound(round);
        this.supervisor.succeeded(at.topic, at.partition);
        return;
      } catch (err) {
        try {
          this.supervisor.failed(at, err);
        } catch {
          return; // given up: reported as fatal
        }
        await sleep(Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
        await this.heartbeat?.().catch(() => undefined);
      }
    }
  }

  private async onRound(round: Round<Fetched>): Promise<void> {
    const started = process.hrtime.bigint();
    const generation = round.generation;
    const isLive = () => !this.stopping && generation === this.intake.generation;
    const tps = [...round.commits.keys()].map(splitTp);
    // Ids an earlier attempt at these offsets published under (a crash or failure before the commit): read while the
    // round is prepared, used in step 3.
    const unknownLogs = tps.filter(({ topic, partition }) => !this.publicationLogEmpty.has(`${topic}:${partition}`));
    const earlierAttempt = this.deps.graph.publicationsOf(unknownLogs).then((logs) => {
      const byTp = new Map<string, PublicationLog>();
      unknownLogs.forEach(({ topic, partition }, i) =>
        byTp.set(`${topic}:${partition}`, logs[i] ?? PublicationLog.empty),
      );
      return byTp;
    });
    earlierAttempt.catch(() => undefined); // awaited below; a round that fails before then must not leave it unhandled
    // Each record with its identity, built once (a spread copy per record, {...r, identity}, cost ~4 µs a record here).
    const identified: (Decoded<RawEvent> & {
      topic: string;
      partition: number;
      identity: ReturnType<typeof identityOf>;
    })[] = [];
    const failed: FailedRecord[] = [];
    for (const { item } of round.entries) {
      if (item.failed) failed.push(item.failed);
      else if (item.value) {
        const { message, value, topic, partition } = item;
        identified.push({ message, value, topic, partition, identity: identityOf(value) });
      }
    }
    for (const topic of this.routes.keys()) {
      const times: number[] = [];
      for (const r of identified) if (r.topic === topic) times.push(r.value.eventTimeMs);
      if (times.length > 0) this.freshness.observe(topic, times);
    }

    // 1. Resolve the round's changed identities: all register (one script), then each is judged in round order against
    // the graph as the ones before it left it (resolveIdentities).
    const changes = new Map<string, LinkChange>();
    const rejections: IdentityMergeRejection[] = [];
    const unknownKeys = new Set<string>();
    for (const r of identified)
      if (r.identity.kind === 'identified' && !this.known.has(r.identity.key)) unknownKeys.add(r.identity.key);
    const unknown = [...unknownKeys];
    // The base to merge into, not proof of resolution (that is the graph's `judged` mark, read at registration). Not
    // read while the identities this process has not seen keep turning out new (live traffic: new customers): the
    // registration then checks they have no stored record, and only if one has are they read and registered again.
    const stored = new Map<string, StoredIdentity>();
    const readFirst = unknown.length > 0 && !this.unseenAreNew;
    if (readFirst) {
      for (const [key, s] of await this.deps.graph.records(unknown)) stored.set(key, s);
      this.unseenAreNew = stored.size === 0;
    }
    // Records of one identity stay in round order (which keeps each partition's offset order).
    const byKey = new Map<string, typeof identified>();
    for (const r of identified) {
      if (r.identity.kind !== 'identified') continue;
      const list = byKey.get(r.identity.key);
      if (list) list.push(r);
      else byKey.set(r.identity.key, [r]);
    }
    // Resolved in this round: `known` learns them only once the round's outputs are published. A round that fails
    // before that (Redis or the broker going away) is repeated, and must emit the links of identities it had already
    // resolved then (seen: 230 identities without a link after a Redis restart).
    const resolvedHere = new Map<string, IdentityRecord>();
    // Each identity's records of the round fold, in order, into the one record it registers (with the blocking keys of
    // every version it went through, as registering each version would have indexed them), at the offset of the last
    // record that changed it. Records that change nothing about a person this instance resolved are skipped.
    const jobsOf = (stored: ReadonlyMap<string, StoredIdentity>): IdentityJob[] => {
      const jobs: IdentityJob[] = [];
      for (const [key, list] of byKey) {
        const known = this.known.get(key);
        let current = known ?? stored.get(key)?.record;
        let changedBy: (typeof list)[number] | undefined;
        const keys = new Set<string>();
        for (const r of list) {
          if (r.identity.kind !== 'identified') continue;
          const { platform, platformCustomerId } = r.identity;
          const merged = mergeRecord(current, toIdentityRecord(platform, platformCustomerId, attributesOf(r.value)));
          if ((known || changedBy) && current && sameRecord(current, merged)) continue; // nothing new about this person
          current = merged;
          changedBy = r;
          for (const k of blockingKeys(merged)) keys.add(k);
        }
        if (!current || !changedBy) continue;
        // Unchanged from what the graph stores (an identity this process has not resolved yet): registered in its stored
        // form, so the graph can tell it was judged before (after a crash or restart) and it is not judged again.
        const storedForm = stored.get(key);
        jobs.push({
          ...(storedForm && sameRecord(storedForm.record, current) ? { sealed: storedForm.sealed } : {}),
          record: current,
          blockingKeys: [...keys],
          meta: {
            eventId: changedBy.value.eventId,
            eventTimeMs: changedBy.value.eventTimeMs,
            watermark: { field: `${changedBy.topic}|${key}`, offset: Number(changedBy.message.offset) },
          },
        });
      }
      return jobs;
    };
    // Whether this round's scripts merged clusters: only then does the outbox hold merges of its own to publish now.
    const merged = { count: 0, rejections: 0 };
    // The changed identities in round order, IDENTITY_SCRIPT_MAX_IDENTITIES per registration script (each part
    // registered and judged before the next registers, as consecutive rounds would be).
    const unseen = new Set(unknown);
    let absentUnread = !readFirst;
    let jobs = jobsOf(stored);
    const perScript = this.deps.config.IDENTITY_SCRIPT_MAX_IDENTITIES;
    for (let from = 0; from < jobs.length;) {
      const part = jobs.slice(from, from + perScript);
      const absent = absentUnread ? part.flatMap((job) => (unseen.has(job.record.key) ? [job.record.key] : [])) : [];
      let resolved: Map<string, LinkChange>;
      const graph = await this.partGraph();
      const attempt: PartAttempt = { rejections: [], merged: { count: 0, rejections: 0 }, landed: [] };
      try {
        resolved = await this.resolveIdentities(graph, part, absent, attempt);
        if (graph instanceof GraphPicture) {
          await graph.commit();
          this.pictureRetryMs = PICTURE_RETRY_MS; // a picture that writes: the next drop pauses briefly again
        }
      } catch (err) {
        if (graph instanceof GraphPicture && !(err instanceof StoredIdentitiesFound)) {
          // The picture may hold what was never written: drop it. A refused part wrote nothing: run it again through
          // the scripts, which check the graph as it is.
          this.dropPicture(err instanceof PictureMoved ? 'refused' : 'failed', err);
          if (err instanceof PictureMoved) continue;
        }
        if (!(err instanceof StoredIdentitiesFound)) throw err;
        // Nothing of this part was written: read what the graph stores for the round's unseen identities and go on
        // from this part with the jobs made from it (the same identities, in the same order).
        this.unseenAreNew = false;
        this.identityMetrics.unseenStored.inc(err.keys.length);
        for (const [key, s] of await this.deps.graph.records(unknown)) stored.set(key, s);
        jobs = jobsOf(stored);
        absentUnread = false;
        continue;
      }
      rejections.push(...attempt.rejections);
      merged.count += attempt.merged.count;
      merged.rejections += attempt.merged.rejections;
      for (const effect of attempt.landed) effect();
      for (const [key, change] of resolved) changes.set(key, change);
      for (const job of part) resolvedHere.set(job.record.key, job.record);
      from += part.length;
    }
    if (this.known.size > 200_000) this.known.clear(); // a cache, not state: Redis holds the truth
    if (!isLive()) return;

    // 2. Merges from the graph's outbox (written atomically with the merge itself) and the identities they moved. Every
    // script that merges writes the outbox and reports the merge, so a round whose scripts merged reads it, and any
    // round does at least every outboxSweepMs: that publishes what an instance merged and died before publishing.
    const sweep = this.outboxSweepDue();
    const [pending, refused] = await Promise.all([
      merged.count > 0 || sweep ? this.readOutbox() : [],
      merged.rejections > 0 || sweep ? this.deps.graph.pendingRejections(1_000) : [],
    ]);
    // Rejections of this round's judgements and of any before it whose outputs were never sent (a crash).
    const outboxRejections = refused as IdentityMergeRejection[];
    rejections.push(...outboxRejections);
    const moved = new Map<string, MergeEntry>(); // member -> the merge that moved it (the latest wins)
    for (const entry of pending) {
      this.roots.merged(entry.mergedId, entry.survivorId);
      // Only the merged-away cluster's members changed their global id; the survivor's keep theirs and their links.
      for (const member of entry.movedKeys ?? (await this.deps.graph.members(entry.survivorId)))
        moved.set(member, entry);
    }

    // 3. Roots for all outputs. After a graph write or with links to emit: one atomic snapshot after every write of
    // the round, which also stamps the links' version. Otherwise (the common case: known identities, nothing new)
    // from the root cache, reading only the identities it lacks.
    const identifiedKeys = new Set<string>();
    for (const r of identified) if (r.identity.kind === 'identified') identifiedKeys.add(r.identity.key);
    const keys = [...identifiedKeys];
    const roots = new Map<string, string | null>();
    let version: number | null = null;
    // A record an earlier attempt published keeps the id it had then, even when a merge has moved its identity since:
    // its copy then reaches the survivor as the redelivery it is (graph-store.ts publications).
    const earlier = await earlierAttempt;
    // The publication log's fields when the snapshot wrote it (one round trip less before the send).
    let logged: (string | null)[] | null = null;
    if (changes.size > 0 || moved.size > 0) {
      const byTp = new Map<string, { offset: number; key: string; earlier: string | undefined }[]>();
      for (const r of identified) {
        if (r.identity.kind !== 'identified') continue;
        const tp = `${r.topic}:${r.partition}`;
        const offset = Number(r.message.offset);
        const entry = { offset, key: r.identity.key, earlier: earlier.get(tp)?.idAt(offset) };
        const list = byTp.get(tp);
        if (list) list.push(entry);
        else byTp.set(tp, [entry]);
      }
      const publish: PublicationEntry[] = tps.map(({ topic, partition }) => ({
        topic,
        partition,
        records: byTp.get(`${topic}:${partition}`) ?? [],
      }));
      const snapshot = await this.deps.graph.linkSnapshot([...keys, ...moved.keys()], publish);
      logged = snapshot.fields;
      version = snapshot.version;
      for (const [key, root] of snapshot.roots) {
        roots.set(key, root);
        if (root) this.roots.set(key, root);
      }
    } else {
      const missing: string[] = [];
      for (const key of keys) {
        const root = this.roots.get(key);
        if (root === undefined) missing.push(key);
        else roots.set(key, root);
      }
      this.identityMetrics.rootLookups.inc({ source: 'cache' }, keys.length - missing.length);
      if (missing.length > 0) {
        this.identityMetrics.rootLookups.inc({ source: 'graph' }, missing.length);
        for (const [key, root] of await this.deps.graph.globalIdOf(missing)) {
          roots.set(key, root);
          if (root) this.roots.set(key, root);
        }
      }
    }
    const outputs: { topic: string; messages: Message[] }[] = [];
    // The ids the records go out under: as the snapshot logged them, when it did (the same rule, the same roots).
    const published = new Map<string, Map<number, string>>(
      tps.map(({ topic, partition }) => [`${topic}:${partition}`, new Map()]),
    );
    const resolvedKeys: string[] = [];
    for (const r of identified) {
      if (r.identity.kind !== 'identified') {
        resolvedKeys.push(r.identity.key);
        continue;
      }
      const tp = `${r.topic}:${r.partition}`;
      const offset = Number(r.message.offset);
      const gid = earlier.get(tp)?.idAt(offset) ?? roots.get(r.identity.key);
      if (!gid) throw new Error(`identity ${r.identity.key} has no global id after registration`);
      resolvedKeys.push(gid);
      published.get(tp)?.set(offset, gid);
    }
    // Each input topic's events go to its output topic, in round order; encoded a whole topic's values at once (one
    // registry lookup, no promise per record).
    for (const [topic, route] of this.routes) {
      const at: number[] = [];
      identified.forEach((r, i) => {
        if (r.topic === topic) at.push(i);
      });
      if (at.length === 0) continue;
      const values = await this.deps.serde.encodeMany(
        route.output,
        at.map((i) => withReviewSentiment((identified[i] as (typeof identified)[number]).value)),
      );
      // Where each event came from: downstream watermarks key on it, so a round this resolver publishes again after a
      // crash before its commit (new offsets in the resolved topic) is recognised as the redelivery it is.
      const messages: Message[] = at.map((i, k) => {
        const r = identified[i] as (typeof identified)[number];
        return {
          key: resolvedKeys[i] ?? null,
          value: values[k] ?? null,
          headers: { [SOURCE_HEADER]: `${r.topic}:${r.partition}:${r.message.offset}` },
        };
      });
      outputs.push({ topic: route.output.name, messages });
    }
    const linkKeys: string[] = [];
    const linkValues: ReturnType<typeof linkRecord>[] = [];
    const linkOf = (key: string, how: Omit<LinkChange, 'eventId' | 'eventTimeMs'>, source: LinkChange) => {
      const gid = roots.get(key);
      if (!gid) return;
      linkKeys.push(key);
      linkValues.push(linkRecord(splitIdentityKey(key), gid, how, source, version));
    };
    for (const [key, change] of changes) linkOf(key, change, change);
    for (const [member, entry] of moved) {
      if (changes.has(member)) continue;
      const how = { method: 'MERGE' as const, confidence: entry.confidence, matchWeight: entry.matchWeight };
      linkOf(member, how, { ...how, eventId: entry.mergeId, eventTimeMs: entry.eventTimeMs });
    }
    const links: Message[] = (await this.deps.serde.encodeMany(this.deps.topics.identityLinks, linkValues)).map(
      (value, i) => ({ key: linkKeys[i] ?? null, value }),
    );
    const merges: Message[] = [];
    for (const entry of pending) {
      // Keyed by the merged-away id: the merge lands on that customer's partition, whose owner hands its state on.
      merges.push({
        key: entry.mergedId,
        value: await this.deps.serde.encode(this.deps.topics.identityMerges, mergeEvent(entry)),
      });
    }
    if (links.length > 0) outputs.push({ topic: this.deps.topics.identityLinks.name, messages: links });
    if (merges.length > 0) outputs.push({ topic: this.deps.topics.identityMerges.name, messages: merges });
    if (rejections.length > 0) {
      const spec = this.deps.topics.identityMergeRejections;
      outputs.push({
        topic: spec.name,
        messages: await Promise.all(
          rejections.map(async (r) => {
            // A cap refusal at registration names the cluster the identity is published under: the one registration
            // made may have been a fresh one, retired since without a merge (graph-lib.lua mergeInto).
            const named = r.reason === 'CLUSTER_CAP' ? { ...r, globalCustomerId: roots.get(r.identityKey) ?? '' } : r;
            return { key: r.identityKey, value: await this.deps.serde.encode(spec, named) };
          }),
        ),
      });
    }

    // 4. Dead letters, then the ids published under (unless the snapshot logged them), outputs (acks=all), the outbox
    // ack, and only then the offsets.
    if (!isLive()) return;
    await this.deadLetters.publish(failed);
    const fields =
      logged ??
      (await this.deps.graph.recordPublications(
        tps.map(({ topic, partition }) => ({
          topic,
          partition,
          ids: published.get(`${topic}:${partition}`) ?? new Map<number, string>(),
        })),
      ));
    for (const topicMessages of chunkTopicMessages(outputs)) {
      await this.producer.sendBatch({ acks: -1, topicMessages });
    }
    for (const [key, record] of resolvedHere) this.known.set(key, record);
    if (pending.length > 0) await this.deps.graph.ackMerges(pending.map((m) => m.mergeId));
    if (outboxRejections.length > 0) await this.deps.graph.ackRejections(outboxRejections.map((r) => r.eventId));
    this.identityMetrics.merges.inc(pending.length);
    for (const change of changes.values()) this.identityMetrics.links.inc({ method: change.method });
    // Every partition of the round in one commit, at the round's end: a restart resumes at a round boundary, so it
    // cuts the same rounds. Not waited for: the next round starts while it travels (the outputs are acknowledged
    // already, so a crash before it lands repeats the round as a crash before any commit does).
    this.commitInBackground(
      generation,
      tps.map(({ topic, partition }, i) => {
        const tp = `${topic}:${partition}`;
        const offset = round.commits.get(tp) as string;
        const field = fields[i];
        return {
          topic,
          partition,
          offset,
          publications: [...(earlier.get(tp)?.fieldsBelow(Number(offset)) ?? []), ...(field ? [field] : [])],
        };
      }),
    );
    for (const { topic, partition } of tps) {
      // Empty from here on, unless an earlier attempt (an instance that died) published rounds past this one too.
      const tp = `${topic}:${partition}`;
      if ((earlier.get(tp)?.lastOffset ?? -1) < Number(round.commits.get(tp))) this.publicationLogEmpty.add(tp);
    }
    this.processed += identified.length + failed.length;
    const { metrics } = this.deps;
    for (const topic of this.routes.keys()) {
      const ok = identified.filter((r) => r.topic === topic).length;
      const bad = failed.filter((f) => f.topic === topic).length;
      if (ok > 0) metrics.records.inc({ processor: PROCESSOR, topic, outcome: 'ok' }, ok);
      if (bad > 0) metrics.records.inc({ processor: PROCESSOR, topic, outcome: 'dead_letter' }, bad);
    }
    metrics.batchDuration.observe({ processor: PROCESSOR }, Number(process.hrtime.bigint() - started) / 1e9);
    const { reads } = this.deps.graph;
    this.identityMetrics.graphReads.inc({ kind: 'clusters' }, reads.clusters - this.readsCounted.clusters);
    this.identityMetrics.graphReads.inc({ kind: 'records' }, reads.records - this.readsCounted.records);
    this.readsCounted = { ...reads };
  }

  /**
   * Commits a round's offsets (every partition in one request) while the next round runs, then forgets the round's
   * publications (below the committed offsets, never read again). A commit that fails after two retries is carried
   * into the next round's (commits only move forward); MAX_FAILED_COMMITS rounds in a row without one landing end the
   * resolver (no progress is being kept). A round of an earlier assignment is not committed at all (the partitions were fetched again from the last commit, so
   * the round is repeated whole, as the same round).
   */
  private commitInBackground(
    generation: number,
    offsets: { topic: string; partition: number; offset: string; publications: string[] }[],
  ): void {
    const previous = this.lastCommit;
    const run = (async () => {
      await previous; // commits go out in round order
      if (generation !== this.intake.generation) return;
      for (const o of offsets) this.uncommitted.set(`${o.topic}:${o.partition}`, o.offset);
      const all = [...this.uncommitted].map(([tp, offset]) => ({ ...splitTp(tp), offset }));
      for (let attempt = 1; ; attempt++) {
        try {
          await commitOrRejoin(this.consumer, all);
          for (const { topic, partition, offset } of all) {
            const tp = `${topic}:${partition}`;
            if (this.uncommitted.get(tp) === offset) this.uncommitted.delete(tp);
          }
          this.failedCommits = 0;
          break;
        } catch (err) {
          if (membershipError(err)) {
            this.uncommitted.clear(); // the group moved on: the partitions are fetched again from the last commit
            return;
          }
          if (attempt >= COMMIT_ATTEMPTS || this.stopping) {
            this.failedCommits++;
            this.deps.log.warn('offset commit failed; the next round commits these offsets with its own', {
              partitions: all.length,
              consecutive: this.failedCommits,
              error: describeError(err),
            });
            if (this.failedCommits >= MAX_FAILED_COMMITS && !this.stopping) {
              this.supervisor.fail({
                kind: 'stalled-batch',
                error: err,
                reason: `${this.failedCommits} round commits failed in a row: ${describeError(err)}`,
              });
            }
            return;
          }
          await sleep(100 * attempt);
        }
      }
      for (const { topic, partition, publications } of offsets) {
        // Not waited for: a field left behind is below the committed offset, never read for a record again.
        this.deps.graph.forgetPublications(topic, partition, publications).catch((err: unknown) => {
          this.deps.log.warn('committed publications not forgotten; they are below the committed offset, never read', {
            error: describeError(err),
          });
        });
      }
    })();
    this.lastCommit = run;
    this.commitsInFlight.add(run);
    void run.finally(() => this.commitsInFlight.delete(run));
  }

  /**
   * The graph a part runs on: this instance's picture of it while it holds one (graph-picture.ts); else, unless the
   * last try is more recent than its pause (backOffPicture), a new picture when the graph holds at most
   * IDENTITY_PICTURE_MAX_IDENTITIES identities and stands still while it is read; else the graph's scripts.
   */
  private async partGraph(): Promise<PartGraph> {
    const { graph, config, log } = this.deps;
    const max = config.IDENTITY_PICTURE_MAX_IDENTITIES;
    if (this.picture) {
      if (this.picture.identities <= max) return this.picture;
      this.dropPicture('too_large', new Error(`it holds more than ${max} identities`));
    }
    if (max === 0 || Date.now() < this.pictureRetryAtMs) return graph;
    const started = Date.now();
    const source = await graph.readPicture(max);
    if (!source) {
      this.pictureRetryAtMs = Date.now() + this.backOffPicture();
      this.identityMetrics.picture.inc({ event: 'unavailable' });
      log.info('identity graph not held in process: larger than IDENTITY_PICTURE_MAX_IDENTITIES, or kept moving', {
        max,
      });
      return graph;
    }
    this.picture = GraphPicture.load(source, graph.maxClusterSize, (writes, next, commands) =>
      graph.writePicture(writes, next, commands),
    );
    this.identityMetrics.picture.inc({ event: 'loaded' });
    log.info('identity graph held in process', { identities: this.picture.identities, ms: Date.now() - started });
    return this.picture;
  }

  /** Forgets the picture (it may hold what was never written); the next part reads the graph again after a pause. */
  private dropPicture(event: 'refused' | 'failed' | 'too_large', reason: unknown): void {
    this.picture = undefined;
    this.pictureRetryAtMs = Date.now() + this.backOffPicture();
    this.identityMetrics.picture.inc({ event });
    this.deps.log.info('identity graph picture dropped; parts run through the graph scripts', {
      event,
      reason: describeError(reason),
    });
  }

  /**
   * The pause before the next picture is read: PICTURE_RETRY_MS, doubling while pictures keep being dropped without a
   * part written in between (several instances writing one graph: each refuses the others' pictures), up to
   * PICTURE_RETRY_MAX_MS, so that reading whole graphs does not become the instances' main work.
   */
  private backOffPicture(): number {
    const pause = this.pictureRetryMs;
    this.pictureRetryMs = Math.min(2 * pause, PICTURE_RETRY_MAX_MS);
    return pause;
  }

  private outboxSweepDue(): boolean {
    return Date.now() - this.lastOutboxReadMs >= (this.deps.outboxSweepMs ?? 5_000);
  }

  private async readOutbox(): Promise<MergeEntry[]> {
    this.lastOutboxReadMs = Date.now();
    return this.deps.graph.pendingMerges(1_000);
  }

  /**
   * Registers the round's identities (deterministic rules run atomically inside the graph), then judges each, in round
   * order, against the clusters its blocking keys find, and unions it with every cluster that matches. Every identity
   * registers before any is judged (records of one person in one round see each other, as concurrent instances do).
   * Judging is sequential in effect: each identity is judged on the search's snapshot as the unions before it leave it
   * (judging-picture.ts), and the script that applies the unions checks the snapshot still holds and each lands where
   * expected; the first that does not is set aside with every later one, and those are searched and judged again. So a
   * record is judged against the graph as every record before it left it, and how the round was cut into scripts (or
   * repeated after a crash) changes nothing. Round trips: one script registers and searches the round, one applies its
   * unions, plus two more only when another instance wrote the same clusters meanwhile.
   */
  private async resolveIdentities(
    /** The graph, or the picture of it this instance holds (graph-picture.ts): the same answers. */
    graph: PartGraph,
    jobs: readonly IdentityJob[],
    /** Keys registered without a read of their stored records (throws StoredIdentitiesFound, nothing done, if any has one). */
    absent: readonly string[],
    /** What the part gives besides its links, applied by the caller once its writes landed. */
    attempt: PartAttempt,
  ): Promise<Map<string, LinkChange>> {
    const { model, config } = this.deps;
    const { rejections, merged, landed } = attempt;
    const changes = new Map<string, LinkChange>();
    // One rejection per identity, event and candidate (or reason and count): the same judgement names it the same.
    const rejection = (
      job: IdentityJob,
      reason: IdentityMergeRejection['reason'],
      globalCustomerId: string,
      candidate: { key: string; globalId: string; probability: number; weight: number } | undefined,
      suffix: string,
    ): IdentityMergeRejection => {
      const { record, meta } = job;
      return {
        eventId: `reject:${meta.eventId}:${record.key}:${suffix}`,
        eventTimeMs: meta.eventTimeMs,
        identityKey: record.key,
        globalCustomerId,
        candidateKey: candidate?.key ?? null,
        candidateGlobalId: candidate?.globalId ?? null,
        reason,
        matchProbability: candidate?.probability ?? null,
        matchWeight: candidate?.weight ?? null,
        sourceEventId: meta.eventId,
      };
    };
    const search = { maxBlockSize: config.IDENTITY_MAX_BLOCK_SIZE, maxMembers: MAX_MEMBERS_COMPARED };
    const found = await graph.registerAndSearch(jobs, { register: true, absent, ...search });
    await this.heartbeat?.().catch(() => undefined);

    interface Judged {
      readonly job: IdentityJob;
      readonly registered: RegisterResult;
      candidates: RegisterSearchResult;
      attempts: number;
    }
    // The links a decision refused that would have been links on their own (at least the threshold): rejections.
    // `root`: the cluster the identity is in once its union applies (its registration's may be retired by then).
    const conflictsOf = (
      j: Judged,
      decision: LinkDecision | null,
      root: string | undefined,
    ): IdentityMergeRejection[] =>
      (decision?.refusals ?? [])
        .filter((refusal) => refusal.probability >= this.threshold)
        .map((refusal) =>
          rejection(
            j.job,
            'CONFLICT',
            root ?? j.registered.globalId ?? '',
            { key: refusal.key, globalId: refusal.id, probability: refusal.probability, weight: refusal.weight },
            refusal.key,
          ),
        );
    // `refused`: the rejections that went to the graph's rejection outbox with the union (UnionItem.rejections).
    const finish = (j: Judged, decision: LinkDecision | null, united: UnionResult | null, refused: number) => {
      const { job, registered } = j;
      if (!united) return;
      if (refused > 0) {
        merged.rejections += refused;
        landed.push(() => {
          this.identityMetrics.blocked.inc({ reason: 'conflict' }, refused);
        });
      }
      if (!decision || decision.joins.length === 0) return;
      merged.count += united.merges.length;
      landed.push(() => {
        for (const m of united.merges) this.roots.merged(m.mergedId, m.survivorId);
        if (united.refused > 0)
          this.deps.log.warn('merge refused: cluster cap', { key: job.record.key, refused: united.refused });
      });
      const strongest = decision.joins.reduce((a, b) => (b.matchWeight > a.matchWeight ? b : a));
      // Linked: a merge, or the identity's fresh cluster retired as it joined (graph-lib.lua mergeInto: no merge).
      if (registered.isNew || united.merges.length > 0 || united.globalId !== j.candidates.own) {
        changes.set(job.record.key, {
          ...(changes.get(job.record.key) as LinkChange),
          method: 'PROBABILISTIC',
          confidence: strongest.confidence,
          matchWeight: strongest.matchWeight,
          evidence: linkEvidence(model, strongest),
        });
      }
    };

    let pending: Judged[] = [];
    // Judged identities not yet marked so (graph-store.ts markJudged): they go in the next script that applies unions,
    // so a crash cannot fall between a union and its mark; what is left, at the end.
    const toMark: { key: string; recordSha: string }[] = [];
    jobs.forEach((job, i) => {
      const candidates = found[i];
      const registered = candidates?.registered;
      if (!candidates || !registered) throw new Error(`identity graph: no registration for ${job.record.key}`);
      merged.count += registered.merges.length;
      landed.push(() => {
        for (const m of registered.merges) this.roots.merged(m.mergedId, m.survivorId);
        if (registered.refused > 0) this.identityMetrics.blocked.inc({ reason: 'cluster_cap' }, registered.refused);
      });
      for (let r = 0; r < registered.refused; r++) {
        rejections.push(rejection(job, 'CLUSTER_CAP', registered.globalId ?? '', undefined, `CLUSTER_CAP:${r}`));
      }
      changes.set(job.record.key, {
        method: registered.method,
        confidence: 1,
        matchWeight: null,
        eventId: job.meta.eventId,
        eventTimeMs: job.meta.eventTimeMs,
      });
      // Judged before as it is stored now (its first attempt before a crash, or before a restart): not judged again, so
      // clusters do not depend on where rounds, crashes and restarts fell.
      if (candidates.judged)
        landed.push(() => {
          this.identityMetrics.alreadyJudged.inc();
        });
      else if (job.blockingKeys.length > 0) pending.push({ job, registered, candidates, attempts: 0 });
      else toMark.push({ key: job.record.key, recordSha: candidates.recordSha }); // nothing to judge it against
    });

    // Judged against whole clusters (cluster-link.ts): a member the record contradicts, or clusters that disagree on
    // average, keep it out; merging two clusters needs evidence across both. The pending identities are judged in
    // order on the one search's snapshot as the unions before each leave it (judging-picture.ts), and the unions go in
    // one script that checks the snapshot still holds and each union lands where expected (union-batch.lua, sequenced):
    // the first that does not is set aside with every later one, and those are searched and judged again, in order,
    // until none is left. That is the graph judging one record after the other makes.
    let first = true;
    while (pending.length > 0) {
      const decisions: (LinkDecision | null)[] = [];
      const items: UnionItem[] = [];
      const itemOf: Judged[] = [];
      const picture = new JudgingPicture(graph.maxClusterSize, MAX_MEMBERS_COMPARED);
      const later: Judged[] = []; // not judged on this snapshot: searched again
      for (const j of pending) {
        const { candidates } = j;
        if (first) {
          const compared = candidates.clusters.reduce(
            (n, c) => (c.id === candidates.own ? n : n + c.members.length),
            0,
          );
          landed.push(() => {
            this.identityMetrics.skippedBlocks.inc(candidates.skippedBlocks);
            this.identityMetrics.candidates.observe(compared);
          });
        }
        if (later.length > 0) {
          later.push(j);
          continue;
        }
        if (candidates.clusters.every((c) => c.id === candidates.own)) {
          // Nothing to join whatever the unions before it do (they cannot add members to its blocking sets).
          toMark.push({ key: j.job.record.key, recordSha: candidates.recordSha });
          continue;
        }
        const view = picture.view(candidates.own, candidates.clusters);
        if (!view) {
          later.push(j);
          continue;
        }
        const { own, others } = view;
        const decision =
          others.length === 0
            ? null
            : decideLinks(model, j.job.record, others, {
                threshold: this.threshold,
                maxMembers: MAX_MEMBERS_COMPARED,
                ...(own && own.size > 1 ? { own } : {}),
              });
        const joins = decision?.joins ?? [];
        const sizes = new Map(others.map((c) => [c.id, c.size]));
        // An identity erased since the search has no cluster: its union fails as unregistered.
        const after = own
          ? picture.unite(
              own,
              others.filter((c) => joins.some((m) => m.id === c.id)),
            )
          : undefined;
        decisions.push(decision);
        itemOf.push(j);
        items.push({
          key: j.job.record.key,
          matches: joins.map((m) => ({
            key: m.key,
            confidence: m.confidence,
            matchWeight: m.matchWeight,
            expected: { root: m.id, size: sizes.get(m.id) ?? 0 },
          })),
          meta: j.job.meta,
          recordSha: candidates.recordSha,
          ...(own && after ? { expectedOwn: { root: own.id, size: own.size }, expectedAfter: after } : {}),
          judgedClusters: candidates.clusters.map((c) => ({ id: c.id, version: c.version ?? '0' })),
          rejections: conflictsOf(j, decision, after),
        });
      }
      first = false;
      const united = await graph.unionMany(items, toMark.splice(0), { sequenced: true });
      // All landed where the picture expected: the graph is now the picture, and the graph's cache keeps it (a graph
      // held in process has nothing to keep).
      if (graph.rememberClusters && later.length === 0 && united.every((r) => !r.stale))
        graph.rememberClusters(picture.settle(items.map((item, i) => ({ key: item.key, result: united[i] }))));
      const again: Judged[] = [];
      for (let i = 0; i < items.length; i++) {
        const result = united[i];
        const j = itemOf[i] as Judged;
        if (result && !result.stale) {
          finish(j, decisions[i] ?? null, result, items[i]?.rejections?.length ?? 0);
          continue;
        }
        landed.push(() => {
          this.identityMetrics.staleJudgements.inc();
        });
        // The script's first item is stale only when something else changed its clusters (another instance): after
        // MAX_JUDGE_ATTEMPTS of those, it stays where it is. Every other is stale behind an earlier one of the round.
        if (i === 0 && ++j.attempts >= MAX_JUDGE_ATTEMPTS) {
          finish(j, null, null, 0);
          toMark.push({ key: j.job.record.key, recordSha: j.candidates.recordSha });
          continue;
        }
        again.push(j);
      }
      pending = [...again, ...later];
      if (pending.length === 0) break;
      const found = await graph.registerAndSearch(
        pending.map((j) => j.job),
        { register: false, ...search },
      );
      found.forEach((candidates, i) => {
        const j = pending[i];
        if (j) j.candidates = candidates;
      });
      await this.heartbeat?.().catch(() => undefined);
    }
    await graph.markJudged(toMark);
    return changes;
  }
}

/** What resolving one part of a round gives besides its links: applied to the round once the part's writes landed. */
interface PartAttempt {
  /** Merge rejections to publish. */
  readonly rejections: IdentityMergeRejection[];
  /** Merges and outbox rejections the part's scripts made (the round then reads the outboxes). */
  readonly merged: { count: number; rejections: number };
  /**
   * What this instance learns and counts of the part (merges into the root cache, metrics, warnings), so that a part
   * run again (a picture that was refused) counts once.
   */
  readonly landed: (() => void)[];
}

/** A fetched record in the ordered intake: decoded, or the dead letter it becomes. */
interface Fetched {
  readonly topic: string;
  readonly partition: number;
  readonly message: KafkaMessage;
  readonly value?: RawEvent;
  readonly failed?: FailedRecord;
}

/** One changed identity of a round: its record folded from the round's records, and the event it registers under. */
interface IdentityJob extends RegisterSearchItem {
  readonly meta: { eventId: string; eventTimeMs: number; watermark: { field: string; offset: number } };
}
