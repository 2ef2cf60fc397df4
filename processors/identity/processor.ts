// Identity resolver: consumes raw platform transactions and clicks; keeps the identity graph in Redis (atomic Lua);
// emits each event re-keyed by its global customer id, identity links (compacted) and identity merges.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Consumer, EachBatchPayload, Kafka, Message } from 'kafkajs';
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
import { DeadLetterPublisher } from '../runtime/dead-letter.js';
import { SOURCE_HEADER } from '../runtime/headers.js';
import { decodeBatch } from '../runtime/decode-batch.js';
import { forEachLimited } from '../runtime/concurrency.js';
import { describeError } from '../runtime/errors.js';
import { commitOrRejoin, SerialProducer } from '../runtime/kafka.js';
import { membershipError } from '../runtime/outage.js';
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
import { PublicationLog } from './graph-store.js';
import type {
  CandidateClusterRecords,
  IdentityGraph,
  RegisterResult,
  RegisterSearchItem,
  RegisterSearchResult,
  StoredIdentity,
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
import { decideLinks, type LinkDecision } from './cluster-link.js';
import type { MatchModel } from './model.js';
import { mergeRecord, sameRecord, toIdentityRecord } from './record.js';
import { RootCache } from './root-cache.js';
import type { IdentityRecord, LinkMethod, MergeEntry } from './types.js';

export const PROCESSOR = 'identity-resolver';
/** One send stays well below the broker's default message.max.bytes (1 MiB), headers and compression aside. */
/** Members of one candidate cluster a changed identity is compared with (honest clusters are far smaller). */
const MAX_MEMBERS_COMPARED = 60;
/** Groups of identities of one batch being resolved at once (see onBatch). */
const GROUPS_IN_FLIGHT = 1;
/** Judge-and-union attempts of one record while the clusters it judged keep changing under it; then it stays alone. */
const MAX_JUDGE_ATTEMPTS = 4;
/** Attempts at an offset commit before the next batch fails with its error (see commitInBackground). */
const COMMIT_ATTEMPTS = 3;

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
  /** Offset commits not waited for by their batch (see commitInBackground). */
  private readonly commitsInFlight = new Set<Promise<void>>();
  /** A commit that failed: the next batch fails with it. */
  private commitFailure: Error | undefined;
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
  private processed = 0;
  /**
   * Input partitions (`topic:partition`) whose publication log this instance knows to be empty: it committed their last
   * batch and has owned them since. Their next batch needs no read of it (graph-store.ts publications).
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
      candidates: new Histogram({
        name: 'identity_candidates',
        help: 'Candidates scored per changed identity',
        buckets: [0, 1, 2, 5, 10, 20, 50, 100, 500],
        registers,
      }),
    };
    this.consumer = deps.kafka.consumer({
      groupId: deps.groupId ?? `${config.TOPIC_PREFIX}${PROCESSOR}`,
      allowAutoTopicCreation: false,
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
      this.commitFailure = undefined; // of the generation before: the group has rejoined since
      this.publicationLogEmpty.clear(); // another member may have published batches of them since
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
    // The follower must hold its position on identity.merges before the first root is read from the graph: a merge
    // written after that read is then published after that position, and reaches the cache.
    await this.followMerges();
    await this.consumer.connect();
    for (const name of this.routes.keys()) await this.consumer.subscribe({ topic: name, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Partitions in parallel: each identity's records stay in order within its partition, and the graph's scripts
      // are atomic, so concurrent partitions are as safe as concurrent instances.
      partitionsConsumedConcurrently: this.deps.config.PROCESSOR_PARTITION_CONCURRENCY,
      eachBatch: this.supervisor.eachBatch((payload) => this.onBatch(payload)),
    });
  }

  async stop(): Promise<void> {
    const { log } = this.deps;
    this.stopping = true;
    await boundedStep(log, 'resolver consumer stop', () => this.consumer.stop());
    await boundedStep(log, 'offset commits in flight', async () => {
      await Promise.allSettled([...this.commitsInFlight]);
    });
    await boundedStep(log, 'resolver consumer disconnect', () => this.consumer.disconnect());
    await boundedStep(log, 'identity-merges follower disconnect', () => this.mergeFollower.disconnect());
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

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    if (this.commitFailure !== undefined) {
      const err = this.commitFailure;
      this.commitFailure = undefined;
      throw err;
    }
    const started = process.hrtime.bigint();
    this.firstBatchAtMs ??= Date.now();
    const { batch } = payload;
    const route = this.routes.get(batch.topic);
    if (!route) throw new Error(`no route for ${batch.topic}`);
    const isLive = () => payload.isRunning() && !payload.isStale();
    const nowMs = Date.now();
    // Ids an earlier attempt at these offsets published under (a crash or failure before the commit): read while the
    // batch decodes, used in step 3.
    const logName = `${batch.topic}:${batch.partition}`;
    const earlierAttempt = this.publicationLogEmpty.delete(logName)
      ? Promise.resolve(PublicationLog.empty)
      : this.deps.graph.publications(batch.topic, batch.partition);
    earlierAttempt.catch(() => undefined); // awaited below; a batch that fails before then must not leave it unhandled
    const { records, failed } = await decodeBatch<RawEvent>(
      batch,
      route.spec,
      this.deps.serde,
      (v) => route.check(v, nowMs),
      isLive,
    );
    this.freshness.observe(
      batch.topic,
      records.map((r) => r.value.eventTimeMs),
    );
    const last = batch.messages.at(-1);
    if (!last || !isLive()) return;

    // 1. Resolve the batch's changed identities together: each registers before any of them searches (records of one
    // person in one batch see each other, as concurrent instances do), in groups of one script each.
    const changes = new Map<string, LinkChange>();
    const rejections: IdentityMergeRejection[] = [];
    const identified = records.map((r) => ({ ...r, identity: identityOf(r.value) }));
    const unknown = [
      ...new Set(
        identified.flatMap((r) =>
          r.identity.kind === 'identified' && !this.known.has(r.identity.key) ? [r.identity.key] : [],
        ),
      ),
    ];
    // The base to merge into, not proof of resolution (that is the graph's `judged` mark, read at registration).
    const stored = new Map<string, StoredIdentity>();
    if (unknown.length > 0) {
      for (const [key, s] of await this.deps.graph.records(unknown)) stored.set(key, s);
    }
    // Records of one identity stay in offset order. The watermark is per identity, because a per-partition offset would
    // let a later record's write hide an earlier one still in flight.
    const byKey = new Map<string, typeof identified>();
    for (const r of identified) {
      if (r.identity.kind !== 'identified') continue;
      const list = byKey.get(r.identity.key);
      if (list) list.push(r);
      else byKey.set(r.identity.key, [r]);
    }
    // Resolved in this batch: `known` learns them only once the batch's outputs are published. A batch that fails
    // before that (Redis or the broker going away mid-batch) is retried by this same process, and must emit the links
    // of identities it had already resolved then (seen: 230 identities without a link after a Redis restart).
    const resolvedHere = new Map<string, IdentityRecord>();
    // Each identity's records of the batch fold, in offset order, into the one record it registers (with the blocking
    // keys of every version it went through, as registering each version would have indexed them), at the offset of
    // the last record that changed it. Records that change nothing about a person this instance resolved are skipped.
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
          watermark: { field: `${batch.topic}|${key}`, offset: Number(changedBy.message.offset) },
        },
      });
    }
    // Whether this batch's scripts merged clusters: only then does the outbox hold merges of its own to publish now.
    const merged = { count: 0 };
    // GROUPS_IN_FLIGHT groups at a time, the next starting when one ends: a record is judged against clusters that
    // already hold the batch's earlier records (all but those of groups still in flight), not against a whole batch of
    // unjoined singletons (tried: F1 0.978 instead of 0.981 on 1,000 messy people). Three in flight measured 948
    // instead of ~650 records/s on the messy bench with the same F1, but the clustering then depends on timing: a record
    // that joins nothing is final though a cluster it was judged against may be growing in another group meanwhile
    // (unions check only the clusters they join), and the crash-restart test's run then differed by one link once in
    // two runs. Several in flight needs every judged cluster's version checked at the union, and unions applied in
    // group order.
    const groupSize = this.deps.config.IDENTITY_KEY_CONCURRENCY;
    const groups: IdentityJob[][] = [];
    for (let i = 0; i < jobs.length; i += groupSize) groups.push(jobs.slice(i, i + groupSize));
    await forEachLimited(groups, GROUPS_IN_FLIGHT, async (group) => {
      for (const [key, change] of await this.resolveIdentities(group, rejections, merged, () => payload.heartbeat()))
        changes.set(key, change);
      for (const job of group) resolvedHere.set(job.record.key, job.record);
    });
    if (this.known.size > 200_000) this.known.clear(); // a cache, not state: Redis holds the truth

    // 2. Merges from the graph's outbox (written atomically with the merge itself) and the identities they moved. Every
    // script that merges writes the outbox and reports the merge, so a batch whose scripts merged reads it, and any
    // batch does at least every outboxSweepMs: that publishes what an instance merged and died before publishing. (It
    // used to be read on every batch, then on every batch that wrote to the graph: most of those register identities
    // that join nothing, and the read was one of their round trips.)
    const pending = merged.count > 0 || this.outboxSweepDue() ? await this.readOutbox() : [];
    const moved = new Map<string, MergeEntry>(); // member -> the merge that moved it (the latest wins)
    for (const entry of pending) {
      this.roots.merged(entry.mergedId, entry.survivorId);
      // Only the merged-away cluster's members changed their global id; the survivor's keep theirs and their links.
      for (const member of entry.movedKeys ?? (await this.deps.graph.members(entry.survivorId)))
        moved.set(member, entry);
    }

    // 3. Roots for all outputs. After a graph write or with links to emit: one atomic snapshot after every write of
    // the batch, which also stamps the links' version. Otherwise (the common case: known identities, nothing new)
    // from the root cache, reading only the identities it lacks.
    const keys = [...new Set(identified.flatMap((r) => (r.identity.kind === 'identified' ? [r.identity.key] : [])))];
    const roots = new Map<string, string | null>();
    let version: number | null = null;
    if (changes.size > 0 || moved.size > 0) {
      const snapshot = await this.deps.graph.linkSnapshot([...keys, ...moved.keys()]);
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
    // Encoded a whole topic's values at once (one registry lookup, no promise per record).
    // A record an earlier attempt published keeps the id it had then, even when a merge has moved its identity since:
    // its copy then reaches the survivor as the redelivery it is (graph-store.ts publications).
    const earlier = await earlierAttempt;
    const published = new Map<number, string>();
    const resolvedKeys: string[] = [];
    for (const r of identified) {
      if (r.identity.kind !== 'identified') {
        resolvedKeys.push(r.identity.key);
        continue;
      }
      const offset = Number(r.message.offset);
      const gid = earlier.idAt(offset) ?? roots.get(r.identity.key);
      if (!gid) throw new Error(`identity ${r.identity.key} has no global id after registration`);
      resolvedKeys.push(gid);
      published.set(offset, gid);
    }
    const resolvedValues = await this.deps.serde.encodeMany(
      route.output,
      identified.map((r) => withReviewSentiment(r.value)),
    );
    // Where each event came from: downstream watermarks key on it, so a batch this resolver publishes again after a
    // crash before its commit (new offsets in the resolved topic) is recognised as the redelivery it is.
    const resolved: Message[] = identified.map((r, i) => ({
      key: resolvedKeys[i] ?? null,
      value: resolvedValues[i] ?? null,
      headers: { [SOURCE_HEADER]: `${batch.topic}:${batch.partition}:${r.message.offset}` },
    }));
    outputs.push({ topic: route.output.name, messages: resolved });
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
          rejections.map(async (r) => ({ key: r.identityKey, value: await this.deps.serde.encode(spec, r) })),
        ),
      });
    }

    // 4. Dead letters, then the ids published under, outputs (acks=all), the outbox ack, and only then the offset.
    await this.deadLetters.publish(failed);
    const publication = await this.deps.graph.recordPublication(batch.topic, batch.partition, published);
    for (const topicMessages of chunkTopicMessages(outputs)) {
      await this.producer.sendBatch({ acks: -1, topicMessages });
    }
    for (const [key, record] of resolvedHere) this.known.set(key, record);
    if (pending.length > 0) await this.deps.graph.ackMerges(pending.map((m) => m.mergeId));
    this.identityMetrics.merges.inc(pending.length);
    for (const change of changes.values()) this.identityMetrics.links.inc({ method: change.method });
    payload.resolveOffset(last.offset);
    // The commit is not waited for: the next batch starts while it travels (one Kafka round trip less per batch). The
    // outputs are acknowledged already, so a crash before it lands repeats the batch as a crash before any commit does.
    this.commitInBackground(
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
      [...earlier.fieldsBelow(Number(last.offset) + 1), ...(publication ? [publication] : [])],
    );
    this.publicationLogEmpty.add(logName);
    await payload.heartbeat();
    this.processed += records.length + failed.length;
    const { metrics } = this.deps;
    metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'ok' }, records.length);
    metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'dead_letter' }, failed.length);
    metrics.batchDuration.observe({ processor: PROCESSOR }, Number(process.hrtime.bigint() - started) / 1e9);
  }

  /**
   * Commits `offset` while the next batch runs, then forgets the batch's publications (below the committed offset,
   * never read again). Commits of one partition go out in order on the coordinator's connection. A commit that fails
   * (after two retries, or at once when this member left the group) fails the next batch, so the runner rejoins or
   * retries from the last commit; a rejoin meanwhile makes it moot.
   */
  private commitInBackground(
    offset: { topic: string; partition: number; offset: string },
    publications: string[],
  ): void {
    const run = (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          await commitOrRejoin(this.consumer, [offset]);
          break;
        } catch (err) {
          if (membershipError(err) || attempt >= COMMIT_ATTEMPTS || this.stopping) {
            this.commitFailure ??= err instanceof Error ? err : new Error(String(err));
            this.deps.log.warn('offset commit failed; the next batch fails with it', {
              topic: offset.topic,
              partition: offset.partition,
              error: describeError(err),
            });
            return;
          }
          await sleep(100 * attempt);
        }
      }
      // Not waited for: a field left behind is below the committed offset, never read for a record again.
      this.deps.graph.forgetPublications(offset.topic, offset.partition, publications).catch((err: unknown) => {
        this.deps.log.warn('committed publications not forgotten; they are below the committed offset, never read', {
          error: describeError(err),
        });
      });
    })();
    this.commitsInFlight.add(run);
    void run.finally(() => this.commitsInFlight.delete(run));
  }

  private outboxSweepDue(): boolean {
    return Date.now() - this.lastOutboxReadMs >= (this.deps.outboxSweepMs ?? 5_000);
  }

  private async readOutbox(): Promise<MergeEntry[]> {
    this.lastOutboxReadMs = Date.now();
    return this.deps.graph.pendingMerges(1_000);
  }

  /**
   * Registers the identities (deterministic rules run atomically inside the graph), then looks for probabilistic
   * matches among the candidates their blocking keys find and unions each with every cluster that matches. Every
   * identity of a group registers before any of them searches, which is what makes concurrent records and instances
   * safe: of two records of one person processed at once, each search sees the other's registration. Round trips are
   * per group, not per identity: one script registers and searches a group, one applies its unions.
   */
  private async resolveIdentities(
    jobs: readonly IdentityJob[],
    rejections: IdentityMergeRejection[],
    merged: { count: number },
    heartbeat: () => Promise<void>,
  ): Promise<Map<string, LinkChange>> {
    const { graph, model, config } = this.deps;
    const changes = new Map<string, LinkChange>();
    const reject = (
      job: IdentityJob,
      reason: IdentityMergeRejection['reason'],
      globalCustomerId: string,
      candidate?: { key: string; globalId: string; probability: number; weight: number },
    ) => {
      const { record, meta } = job;
      this.identityMetrics.blocked.inc({ reason: reason === 'CONFLICT' ? 'conflict' : 'cluster_cap' });
      rejections.push({
        eventId: `reject:${meta.eventId}:${record.key}:${candidate?.key ?? reason}:${rejections.length}`,
        eventTimeMs: meta.eventTimeMs,
        identityKey: record.key,
        globalCustomerId,
        candidateKey: candidate?.key ?? null,
        candidateGlobalId: candidate?.globalId ?? null,
        reason,
        matchProbability: candidate?.probability ?? null,
        matchWeight: candidate?.weight ?? null,
        sourceEventId: meta.eventId,
      });
    };
    const search = { maxBlockSize: config.IDENTITY_MAX_BLOCK_SIZE, maxMembers: MAX_MEMBERS_COMPARED };
    const found = await graph.registerAndSearch(jobs, { register: true, ...search });
    await heartbeat();

    interface Judged {
      readonly job: IdentityJob;
      readonly registered: RegisterResult;
      candidates: RegisterSearchResult;
      decision: LinkDecision | null;
      own: CandidateClusterRecords | undefined;
      others: CandidateClusterRecords[];
    }
    const finish = (j: Judged, united: UnionResult | null) => {
      const { job, registered, decision } = j;
      for (const refusal of decision?.refusals ?? []) {
        if (refusal.probability < this.threshold) continue; // never a link on its own: nothing was refused
        reject(job, 'CONFLICT', registered.globalId ?? '', {
          key: refusal.key,
          globalId: refusal.id,
          probability: refusal.probability,
          weight: refusal.weight,
        });
      }
      if (!united || !decision || decision.joins.length === 0) return;
      merged.count += united.merges.length;
      for (const m of united.merges) this.roots.merged(m.mergedId, m.survivorId);
      if (united.refused > 0)
        this.deps.log.warn('merge refused: cluster cap', { key: job.record.key, refused: united.refused });
      const strongest = decision.joins.reduce((a, b) => (b.matchWeight > a.matchWeight ? b : a));
      if (registered.isNew || united.merges.length > 0) {
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
    // Judged identities not yet marked so (graph-store.ts markJudged): each attempt's go in the script that applies its
    // unions, so a crash cannot fall between a union and its mark; what is left, at the end.
    const toMark: { key: string; recordSha: string }[] = [];
    jobs.forEach((job, i) => {
      const candidates = found[i];
      const registered = candidates?.registered;
      if (!candidates || !registered) throw new Error(`identity graph: no registration for ${job.record.key}`);
      merged.count += registered.merges.length;
      for (const m of registered.merges) this.roots.merged(m.mergedId, m.survivorId);
      for (let r = 0; r < registered.refused; r++) reject(job, 'CLUSTER_CAP', registered.globalId ?? '');
      changes.set(job.record.key, {
        method: registered.method,
        confidence: 1,
        matchWeight: null,
        eventId: job.meta.eventId,
        eventTimeMs: job.meta.eventTimeMs,
      });
      // Judged before as it is stored now (its first attempt before a crash, or before a restart): not judged again, so
      // clusters do not depend on where batches, crashes and restarts fell.
      if (candidates.judged) this.identityMetrics.alreadyJudged.inc();
      else if (job.blockingKeys.length > 0)
        pending.push({ job, registered, candidates, decision: null, own: undefined, others: [] });
      else toMark.push({ key: job.record.key, recordSha: candidates.recordSha }); // nothing to judge it against
    });

    // Judged against whole clusters (cluster-link.ts): a member the record contradicts, or clusters that disagree on
    // average, keep it out; merging two clusters needs evidence across both. A union then applies only if every
    // cluster judged is still what it was (root and size): a concurrent change means judging again, so a record never
    // joins a cluster through members it was not compared with (two records could otherwise each join the other's
    // singleton while those merge elsewhere: a chain nobody judged).
    for (let attempt = 0; attempt < MAX_JUDGE_ATTEMPTS && pending.length > 0; attempt++) {
      const toUnite: Judged[] = [];
      for (const j of pending) {
        const { candidates } = j;
        this.identityMetrics.skippedBlocks.inc(candidates.skippedBlocks);
        j.own = candidates.clusters.find((c) => c.id === candidates.own);
        j.others = candidates.clusters.filter((c) => c.id !== candidates.own);
        if (attempt === 0) this.identityMetrics.candidates.observe(j.others.reduce((n, c) => n + c.members.length, 0));
        if (j.others.length === 0) {
          toMark.push({ key: j.job.record.key, recordSha: j.candidates.recordSha }); // stays where it is
          continue;
        }
        j.decision = decideLinks(model, j.job.record, j.others, {
          threshold: this.threshold,
          maxMembers: MAX_MEMBERS_COMPARED,
          ...(j.own && j.own.size > 1 ? { own: j.own } : {}),
        });
        if (j.decision.joins.length === 0) {
          finish(j, null);
          toMark.push({ key: j.job.record.key, recordSha: j.candidates.recordSha });
        } else toUnite.push(j);
      }
      const united = await graph.unionMany(
        toUnite.map((j) => {
          const sizes = new Map(j.others.map((c) => [c.id, c.size]));
          return {
            key: j.job.record.key,
            matches: (j.decision?.joins ?? []).map((m) => ({
              key: m.key,
              confidence: m.confidence,
              matchWeight: m.matchWeight,
              expected: { root: m.id, size: sizes.get(m.id) ?? 0 },
            })),
            meta: j.job.meta,
            recordSha: j.candidates.recordSha,
            ...(j.own ? { expectedOwn: { root: j.own.id, size: j.own.size } } : {}),
          };
        }),
        toMark.splice(0),
      );
      const stale: Judged[] = [];
      toUnite.forEach((j, i) => {
        const result = united[i];
        if (result && !result.stale) finish(j, result);
        else {
          this.identityMetrics.staleJudgements.inc();
          stale.push(j);
        }
      });
      pending = stale;
      if (stale.length > 0 && attempt + 1 < MAX_JUDGE_ATTEMPTS) {
        const again = await graph.registerAndSearch(
          stale.map((j) => j.job),
          { register: false, ...search },
        );
        stale.forEach((j, i) => {
          const candidates = again[i];
          if (candidates) j.candidates = candidates;
        });
      }
      await heartbeat();
    }
    for (const j of pending) {
      finish(j, null); // clusters kept changing under it: it stays where it is
      toMark.push({ key: j.job.record.key, recordSha: j.candidates.recordSha });
    }
    await graph.markJudged(toMark);
    return changes;
  }
}

/** One changed identity of a batch: its record folded from the batch's records, and the event it registers under. */
interface IdentityJob extends RegisterSearchItem {
  readonly meta: { eventId: string; eventTimeMs: number; watermark: { field: string; offset: number } };
}
