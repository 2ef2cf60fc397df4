// Identity resolver: consumes raw platform transactions and clicks; keeps the identity graph in Redis (atomic Lua);
// emits each event re-keyed by its global customer id, identity links (compacted) and identity merges.
import type { EachBatchPayload, Kafka, Message, Producer } from 'kafkajs';
import { Counter, Histogram } from 'prom-client';
import type { BehaviorEvent, IdentityMergeRejection, Transaction } from '../../schemas/generated/types.js';
import { behaviorProblems, transactionProblems } from '../../schemas/rules.js';
import type { TopicCatalog, TopicSpec } from '../../topics/catalog.js';
import type { Config } from '../runtime/config.js';
import { DeadLetterPublisher } from '../runtime/dead-letter.js';
import { decodeBatch } from '../runtime/decode-batch.js';
import { forEachLimited } from '../runtime/concurrency.js';
import { createIdempotentProducer } from '../runtime/kafka.js';
import type { Logger } from '../runtime/log.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { blockingKeys } from './blocking.js';
import type { IdentityGraph } from './graph-store.js';
import { attributesOf, identityOf, linkRecord, mergeEvent, splitIdentityKey, type RawEvent } from './logic.js';
import { scorePair, type MatchModel } from './model.js';
import { mergeRecord, sameRecord, toIdentityRecord } from './record.js';
import type { IdentityRecord, LinkMethod, MergeEntry } from './types.js';

export const PROCESSOR = 'identity-resolver';

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
  readonly eventId: string;
  readonly eventTimeMs: number;
}

export class IdentityResolver {
  private readonly routes: ReadonlyMap<string, Route>;
  private readonly consumer;
  private readonly producer: Producer;
  private readonly deadLetters: DeadLetterPublisher;
  private readonly threshold: number;
  private readonly identityMetrics;
  /**
   * Records this instance itself fully resolved (registered AND searched): most events repeat such an identity and need
   * no graph work. A record merely read back from Redis does not qualify: an instance killed between registering and
   * searching leaves it stored but never matched, and the redelivered event must finish that work.
   */
  private readonly known = new Map<string, IdentityRecord>();
  private processed = 0;

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
    this.identityMetrics = {
      links: new Counter({
        name: 'identity_links_total',
        help: 'Platform identities linked or re-linked, by rule',
        labelNames: ['method'],
        registers,
      }),
      merges: new Counter({ name: 'identity_merges_total', help: 'Global customers merged', registers }),
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
    this.producer = createIdempotentProducer(deps.kafka);
    const dlq = new Map<string, TopicSpec>();
    for (const route of this.routes.values()) {
      const spec = topics.all.find((t) => t.name === route.spec.deadLetterTopic);
      if (spec) dlq.set(route.spec.name, spec);
    }
    this.deadLetters = new DeadLetterPublisher(PROCESSOR, this.producer, deps.serde, dlq);
  }

  /** When this instance received its first batch (epoch ms), for throughput figures that exclude the group join. */
  firstBatchAtMs: number | null = null;

  /** Records handled so far (accepted or dead-lettered) by this instance. */
  get processedCount(): number {
    return this.processed;
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.consumer.connect();
    for (const name of this.routes.keys()) await this.consumer.subscribe({ topic: name, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Partitions in parallel: each identity's records stay in order within its partition, and the graph's scripts
      // are atomic, so concurrent partitions are as safe as concurrent instances.
      partitionsConsumedConcurrently: this.deps.config.PROCESSOR_PARTITION_CONCURRENCY,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
    await this.producer.disconnect();
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const started = process.hrtime.bigint();
    this.firstBatchAtMs ??= Date.now();
    const { batch } = payload;
    const route = this.routes.get(batch.topic);
    if (!route) throw new Error(`no route for ${batch.topic}`);
    const isLive = () => payload.isRunning() && !payload.isStale();
    const nowMs = Date.now();
    const { records, failed } = await decodeBatch<RawEvent>(
      batch,
      route.spec,
      this.deps.serde,
      (v) => route.check(v, nowMs),
      isLive,
    );
    const last = batch.messages.at(-1);
    if (!last || !isLive()) return;

    // 1. Resolve each identity in offset order: a later record must see what earlier ones registered.
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
    const stored = new Map<string, IdentityRecord>(); // the base to merge into, not proof of resolution
    if (unknown.length > 0) {
      for (const [key, s] of await this.deps.graph.records(unknown)) stored.set(key, s.record);
    }
    // Records of one identity stay in offset order; different identities resolve concurrently. That is as safe as
    // concurrent instances (each record registers before it searches), and the watermark is per identity, because a
    // per-partition offset would let a later record's write hide an earlier one still in flight.
    const byKey = new Map<string, typeof identified>();
    for (const r of identified) {
      if (r.identity.kind !== 'identified') continue;
      const list = byKey.get(r.identity.key);
      if (list) list.push(r);
      else byKey.set(r.identity.key, [r]);
    }
    await forEachLimited([...byKey.values()], this.deps.config.IDENTITY_KEY_CONCURRENCY, async (list) => {
      for (const r of list) {
        if (r.identity.kind !== 'identified') continue;
        const { key, platform, platformCustomerId } = r.identity;
        const resolved = this.known.get(key);
        const incoming = toIdentityRecord(platform, platformCustomerId, attributesOf(r.value));
        const merged = mergeRecord(resolved ?? stored.get(key), incoming);
        if (resolved && sameRecord(resolved, merged)) continue; // nothing new about this person
        const change = await this.resolveIdentity(
          merged,
          {
            eventId: r.value.eventId,
            eventTimeMs: r.value.eventTimeMs,
            watermark: { field: `${batch.topic}|${key}`, offset: Number(r.message.offset) },
          },
          rejections,
        );
        this.known.set(key, merged);
        changes.set(key, change);
      }
    });
    if (this.known.size > 200_000) this.known.clear(); // a cache, not state: Redis holds the truth

    // 2. Merges from the graph's outbox (written atomically with the merge itself) and the identities they moved.
    const pending = await this.deps.graph.pendingMerges(1_000);
    const moved = new Map<string, MergeEntry>(); // member -> the merge that moved it (the latest wins)
    for (const entry of pending) {
      for (const member of await this.deps.graph.members(entry.survivorId)) moved.set(member, entry);
    }

    // 3. One atomic snapshot after every write of the batch: current roots for all outputs, and the link version.
    const keys = [...new Set(identified.flatMap((r) => (r.identity.kind === 'identified' ? [r.identity.key] : [])))];
    const { version, roots } = await this.deps.graph.linkSnapshot([...keys, ...moved.keys()]);
    const outputs: { topic: string; messages: Message[] }[] = [];
    const resolved: Message[] = [];
    for (const r of identified) {
      const gid = r.identity.kind === 'identified' ? roots.get(r.identity.key) : r.identity.key;
      if (!gid) throw new Error(`identity ${r.identity.key} has no global id after registration`);
      resolved.push({ key: gid, value: await this.deps.serde.encode(route.output, r.value) });
    }
    outputs.push({ topic: route.output.name, messages: resolved });
    const links: Message[] = [];
    const linkOf = async (key: string, how: Omit<LinkChange, 'eventId' | 'eventTimeMs'>, source: LinkChange) => {
      const gid = roots.get(key);
      if (!gid) return;
      const link = linkRecord(splitIdentityKey(key), gid, how, source, version);
      links.push({ key, value: await this.deps.serde.encode(this.deps.topics.identityLinks, link) });
    };
    for (const [key, change] of changes) await linkOf(key, change, change);
    for (const [member, entry] of moved) {
      if (changes.has(member)) continue;
      const how = { method: 'MERGE' as const, confidence: entry.confidence, matchWeight: entry.matchWeight };
      await linkOf(member, how, { ...how, eventId: entry.mergeId, eventTimeMs: entry.eventTimeMs });
    }
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

    // 4. Dead letters, then outputs (acks=all), then the outbox ack, and only then the offset.
    await this.deadLetters.publish(failed);
    await this.producer.sendBatch({ acks: -1, topicMessages: outputs });
    if (pending.length > 0) await this.deps.graph.ackMerges(pending.map((m) => m.mergeId));
    this.identityMetrics.merges.inc(pending.length);
    for (const change of changes.values()) this.identityMetrics.links.inc({ method: change.method });
    payload.resolveOffset(last.offset);
    await this.consumer.commitOffsets([
      { topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
    ]);
    await payload.heartbeat();
    this.processed += records.length + failed.length;
    const { metrics } = this.deps;
    metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'ok' }, records.length);
    metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'dead_letter' }, failed.length);
    metrics.batchDuration.observe({ processor: PROCESSOR }, Number(process.hrtime.bigint() - started) / 1e9);
  }

  /**
   * Registers the identity (deterministic rules run atomically inside the graph), then looks for probabilistic
   * matches among the candidates its blocking keys find and unions with every cluster that matches. Registering before
   * searching is what makes concurrent instances safe: of two records of one person processed at once, the later
   * registration's search sees the earlier one.
   */
  private async resolveIdentity(
    record: IdentityRecord,
    meta: { eventId: string; eventTimeMs: number; watermark: { field: string; offset: number } },
    rejections: IdentityMergeRejection[],
  ): Promise<LinkChange> {
    const reject = (
      reason: IdentityMergeRejection['reason'],
      globalCustomerId: string,
      candidate?: { key: string; globalId: string; probability: number; weight: number },
    ) => {
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
    const { graph, model, config } = this.deps;
    const keys = blockingKeys(record);
    const registered = await graph.register(record, keys, meta);
    for (let i = 0; i < registered.refused; i++) reject('CLUSTER_CAP', registered.globalId ?? '');
    let change: LinkChange = {
      method: registered.method,
      confidence: 1,
      matchWeight: null,
      eventId: meta.eventId,
      eventTimeMs: meta.eventTimeMs,
    };
    if (keys.length === 0) return change;
    const { records: candidates, skippedBlocks } = await graph.candidateRecords(
      keys,
      record.key,
      config.IDENTITY_MAX_BLOCK_SIZE,
    );
    this.identityMetrics.skippedBlocks.inc(skippedBlocks);
    this.identityMetrics.candidates.observe(candidates.size);
    if (candidates.size === 0) return change;
    const best = new Map<string, { key: string; confidence: number; matchWeight: number }>(); // per cluster
    const scored = new Map<string, { key: string; record: IdentityRecord }[]>(); // members seen, per cluster
    const vetoed = new Set<string>();
    for (const [key, candidate] of candidates) {
      if (candidate.globalId === registered.globalId) continue;
      const members = scored.get(candidate.globalId) ?? [];
      members.push({ key, record: candidate.record });
      scored.set(candidate.globalId, members);
      const score = scorePair(model, record, candidate.record);
      // A record never joins a cluster holding a member it contradicts: one such member outweighs a good match with
      // another (stops one household member being chained into another's cluster through a record missing fields).
      if (score.conflict) {
        if (!vetoed.has(candidate.globalId) && score.probability >= this.threshold) {
          reject('CONFLICT', registered.globalId ?? '', {
            key,
            globalId: candidate.globalId,
            probability: score.probability,
            weight: score.weight,
          });
        }
        vetoed.add(candidate.globalId);
        continue;
      }
      if (score.probability < this.threshold) continue;
      const prev = best.get(candidate.globalId);
      if (!prev || score.weight > prev.matchWeight) {
        best.set(candidate.globalId, { key, confidence: score.probability, matchWeight: score.weight });
      }
    }
    for (const gid of vetoed) best.delete(gid);
    // A record missing the contradicting fields may match two customers that contradict each other (father and son at
    // one address): join the strongest, and no other cluster that conflicts with one already joined.
    const accepted: string[] = [];
    for (const [gid, match] of [...best].sort(([, x], [, y]) => y.matchWeight - x.matchWeight)) {
      const clash = accepted.some((other) =>
        (scored.get(gid) ?? []).some((m) =>
          (scored.get(other) ?? []).some((o) => scorePair(model, m.record, o.record).conflict),
        ),
      );
      if (clash) {
        best.delete(gid);
        reject('CONFLICT', registered.globalId ?? '', {
          key: match.key,
          globalId: gid,
          probability: match.confidence,
          weight: match.matchWeight,
        });
      } else {
        accepted.push(gid);
      }
    }
    if (best.size === 0) return change;
    const matches = [...best.values()];
    const united = await graph.union(record.key, matches, { eventId: meta.eventId, eventTimeMs: meta.eventTimeMs });
    if (united.refused > 0)
      this.deps.log.warn('merge refused: cluster cap', { key: record.key, refused: united.refused });
    const strongest = matches.reduce((a, b) => (b.matchWeight > a.matchWeight ? b : a));
    if (registered.isNew || united.merges.length > 0) {
      change = {
        ...change,
        method: 'PROBABILISTIC',
        confidence: strongest.confidence,
        matchWeight: strongest.matchWeight,
      };
    }
    return change;
  }
}
