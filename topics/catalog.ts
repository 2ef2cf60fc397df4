import type { SchemaName } from '../schemas/catalog.js';

const DAY_MS = 86_400_000;

/**
 * The longest any delete-policy topic keeps a record: an erased person's records on raw and derived topics are gone
 * from Kafka at most this long after they were produced (retention bound rather than crypto-shredding; README Erasure).
 */
export const ERASURE_BOUND_MS = 30 * DAY_MS;
/** Compacted topics: a value superseded by an erasure tombstone is cleaned within a day, the tombstone a day later. */
export const ERASURE_COMPACTION = { maxLagMs: DAY_MS, tombstoneRetentionMs: DAY_MS } as const;

/** One Kafka topic as code. `npm run topics -- apply` makes the cluster match this. */
export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** retention.ms; -1 keeps records forever (compacted topics keep the latest per key regardless). */
  readonly retentionMs: number;
  readonly cleanupPolicy: 'delete' | 'compact';
  /**
   * Compacted topics: max.compaction.lag.ms, the longest a record superseded by a newer value or a tombstone stays
   * readable (the broker rolls and cleans the segment by then), and delete.retention.ms, how long the tombstone itself
   * (it carries the key) is kept after that. Together they bound how long an erased person's records outlive erasure.
   */
  readonly compaction?: { readonly maxLagMs: number; readonly tombstoneRetentionMs: number };
  /** What the record key is: the entity whose state the record changes. */
  readonly key: string;
  /** Avro contract of the value, registered under `<name>-value` (TopicNameStrategy). */
  readonly schema: SchemaName;
  /** Where processors park records of this topic they cannot read or accept. */
  readonly deadLetterTopic?: string;
  readonly doc: string;
}

/** Logical names used in code; the physical name carries the deployment's TOPIC_PREFIX. */
export type TopicId =
  | 'transactionsRaw'
  | 'clicksRaw'
  | 'customerTransactions'
  | 'customerClicks'
  | 'identityLinks'
  | 'identityMerges'
  | 'identityMergeRejections'
  | 'customerScores'
  | 'featureHandoff'
  | 'adDecisions'
  | 'customerErasures';

export type TopicCatalog = Readonly<Record<TopicId, TopicSpec>> & {
  /** Every topic including the dead-letter topics, in apply order. */
  readonly all: readonly TopicSpec[];
};

export interface CatalogOptions {
  /** @default '' */
  readonly prefix?: string;
  /** @default 1 (the single-node local stack) */
  readonly replicationFactor?: number;
  /**
   * Partitions of every keyed topic (dead-letter topics keep 1). The customer-keyed topics are co-partitioned: a
   * customer's transactions, clicks, merges and hand-offs share one partition number, so one instance owns its state.
   * @default 3
   */
  readonly partitions?: number;
}

/** The catalog a deployment's config describes (structural, so topics/ does not depend on the processors' config). */
export function topicCatalogOf(config: {
  readonly TOPIC_PREFIX: string;
  readonly KAFKA_REPLICATION_FACTOR: number;
  readonly KAFKA_PARTITIONS: number;
}): TopicCatalog {
  return topicCatalog({
    prefix: config.TOPIC_PREFIX,
    replicationFactor: config.KAFKA_REPLICATION_FACTOR,
    partitions: config.KAFKA_PARTITIONS,
  });
}

/**
 * The topic catalog. Partition counts suit the 2-core local stack; raise them per deployment before first use, since a
 * keyed topic's partition count is part of its contract (state stores are keyed per partition).
 */
export function topicCatalog(options: CatalogOptions = {}): TopicCatalog {
  const prefix = options.prefix ?? '';
  const replicationFactor = options.replicationFactor ?? 1;
  const partitions = options.partitions ?? 3;
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be >= 1: ${partitions}`);
  const raw = 'platform identity: <platform>:<platformCustomerId>, or <platform>:anon:<orderId|sessionId|deviceId>';
  const specs: Record<TopicId, Omit<TopicSpec, 'replicationFactor' | 'name'> & { name: string }> = {
    transactionsRaw: {
      name: 'transactions.raw.v1',
      partitions,
      retentionMs: 30 * DAY_MS,
      cleanupPolicy: 'delete',
      key: raw,
      schema: 'transaction',
      deadLetterTopic: 'transactions.raw.v1.dlq',
      doc: 'Purchases and returns as platforms produce them',
    },
    clicksRaw: {
      name: 'clicks.raw.v1',
      partitions,
      retentionMs: 14 * DAY_MS,
      cleanupPolicy: 'delete',
      key: raw,
      schema: 'behaviorEvent',
      deadLetterTopic: 'clicks.raw.v1.dlq',
      doc: 'Click-stream and identify events as platforms produce them',
    },
    customerTransactions: {
      name: 'customer.transactions.v1',
      partitions,
      retentionMs: 30 * DAY_MS,
      cleanupPolicy: 'delete',
      key: 'global customer id',
      schema: 'transaction',
      deadLetterTopic: 'customer.transactions.v1.dlq',
      doc: 'Transactions re-keyed by the resolved global customer id',
    },
    customerClicks: {
      name: 'customer.clicks.v1',
      partitions,
      retentionMs: 14 * DAY_MS,
      cleanupPolicy: 'delete',
      key: 'global customer id',
      schema: 'behaviorEvent',
      deadLetterTopic: 'customer.clicks.v1.dlq',
      doc: 'Behavior events re-keyed by the resolved global customer id',
    },
    identityLinks: {
      name: 'identity.links.v1',
      partitions,
      retentionMs: -1,
      cleanupPolicy: 'compact',
      compaction: ERASURE_COMPACTION,
      key: 'platform identity: <platform>:<platformCustomerId>',
      schema: 'identityLink',
      doc: 'Current global customer of each platform identity (latest wins)',
    },
    identityMerges: {
      name: 'identity.merges.v1',
      partitions,
      // Bounded like every topic holding people's ids (erasure): as long as the longest resolved-event topic, so a
      // rebuild from the topics still sees every merge of the events it can read.
      retentionMs: ERASURE_BOUND_MS,
      cleanupPolicy: 'delete',
      key: 'merged-away global customer id (its owner hands the state on to the survivor)',
      schema: 'identityMerge',
      deadLetterTopic: 'identity.merges.v1.dlq',
      doc: 'Two global customers found to be one person',
    },
    identityMergeRejections: {
      name: 'identity.merge-rejections.v1',
      partitions,
      retentionMs: ERASURE_BOUND_MS, // the warehouse keeps them for audit (and erasure reaches it there)
      cleanupPolicy: 'delete',
      key: 'platform identity being resolved',
      schema: 'identityMergeRejection',
      doc: 'Links the resolver refused (conflicting evidence, cluster cap): for audit and tuning',
    },
    customerScores: {
      name: 'customer.scores.v1',
      partitions,
      retentionMs: -1,
      cleanupPolicy: 'compact',
      compaction: ERASURE_COMPACTION,
      key: 'global customer id',
      schema: 'intentScore',
      doc: 'Latest intent score per customer',
    },
    featureHandoff: {
      name: 'features.handoff.v1',
      partitions, // co-partitioned with customer.transactions.v1, customer.clicks.v1 and identity.merges.v1
      retentionMs: 7 * DAY_MS,
      cleanupPolicy: 'delete',
      key: 'global customer id that absorbs the payload (the survivor)',
      schema: 'featureHandoff',
      deadLetterTopic: 'features.handoff.v1.dlq',
      doc: "Feature processor's internal repartition topic: merged-away customers' state and in-flight events, to the survivor's partition",
    },
    adDecisions: {
      name: 'ad.decisions.v1',
      partitions,
      retentionMs: 30 * DAY_MS, // the warehouse keeps them for experiments; the topic only has to outlive a sink outage
      cleanupPolicy: 'delete',
      key: 'global customer id',
      schema: 'adDecision',
      deadLetterTopic: 'ad.decisions.v1.dlq',
      doc: 'Every ad decision the prediction API made: the exposures A/B experiments count',
    },
    customerErasures: {
      name: 'customer.erasures.v1',
      partitions, // co-partitioned: the erased customer's feature-state owner reads it
      retentionMs: 7 * DAY_MS, // `npm run erase` deletes each command once the feature processor committed past it
      cleanupPolicy: 'delete',
      key: 'global customer id to erase',
      schema: 'customerErasure',
      deadLetterTopic: 'customer.erasures.v1.dlq',
      doc: 'Erasure commands: the owner of the customer drops its in-memory state and keys; resolvers forget cached roots',
    },
  };
  const withPrefix = (name: string) => `${prefix}${name}`;
  const entries = Object.entries(specs).map(([id, s]) => {
    const spec: TopicSpec = {
      ...s,
      name: withPrefix(s.name),
      replicationFactor,
      ...(s.deadLetterTopic ? { deadLetterTopic: withPrefix(s.deadLetterTopic) } : {}),
    };
    return [id, spec] as const;
  });
  const byId = Object.fromEntries(entries) as Record<TopicId, TopicSpec>;
  const deadLetters: TopicSpec[] = entries.flatMap(([, s]) =>
    s.deadLetterTopic
      ? [
          {
            name: s.deadLetterTopic,
            partitions: 1,
            replicationFactor,
            retentionMs: ERASURE_BOUND_MS, // original records hold personal data: no longer than any source
            cleanupPolicy: 'delete' as const,
            key: `the original record's key`,
            schema: 'deadLetter' as const,
            doc: `Records of ${s.name} a processor could not read or accept, with the reason`,
          },
        ]
      : [],
  );
  return Object.freeze({ ...byId, all: Object.freeze([...entries.map(([, s]) => s), ...deadLetters]) });
}
