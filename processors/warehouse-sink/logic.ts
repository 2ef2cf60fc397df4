/**
 * Pure mapping from decoded events to warehouse rows (one star-schema row set per event). Deterministic: the same event
 * always gives the same rows, which is what makes re-inserts after a redelivery harmless (ReplacingMergeTree keyed by
 * event id). Times go to ClickHouse as unix seconds (DateTime) plus exact milliseconds (UInt64) where they matter.
 */
import type {
  AdDecision,
  BehaviorEvent,
  DeadLetter,
  IdentityLink,
  IdentityMerge,
  IdentityMergeRejection,
  IntentScore,
  Transaction,
} from '../../schemas/generated/types.js';
import { reviewSentimentOf } from '../features/sentiment.js';

/** Where a record came from; stored with facts so any row can be traced back to its Kafka record. */
export interface Source {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export type Row = Record<string, string | number | readonly string[] | readonly number[]>;

/** The warehouse tables the sink writes, in insert order (dimensions before facts). */
export const sinkTables = [
  'dim_platform',
  'dim_category',
  'dim_product',
  'fact_transaction',
  'fact_transaction_line',
  'fact_event',
  'dim_customer_identity',
  'identity_merge',
  'identity_merge_rejected',
  'intent_score',
  'fact_ad_decision',
  'dead_letter',
] as const;
export type SinkTable = (typeof sinkTables)[number];

/** Rows of one event, by table. */
export type RowSet = Partial<Record<SinkTable, Row[]>>;

/** Sorting key of a dimension row, used to keep one row per key within a flush (the newest version). */
export const dimensionKey: Partial<Record<SinkTable, (r: Row) => string>> = {
  dim_platform: (r) => String(r['platform_id']),
  dim_category: (r) => String(r['category_id']),
  dim_product: (r) => `${String(r['platform_id'])}\u0000${String(r['product_id'])}`,
};

const seconds = (ms: number) => Math.floor(ms / 1000);
/** ClickHouse Date from epoch ms, as YYYY-MM-DD in UTC. */
const date = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const text = (v: string | null | undefined) => v ?? '';

function platformRow(platform: string): Row {
  return { platform_id: platform, display_name: platform, version: 1 };
}

function categoryRow(category: string): Row {
  return { category_id: category, name: category, parent_id: '', version: 1 };
}

export function transactionRows(tx: Transaction, source: Source, ingestedAtMs: number): RowSet {
  const eventDate = date(tx.eventTimeMs);
  const fact: Row = {
    event_id: tx.eventId,
    platform_id: tx.platform,
    platform_customer_id: text(tx.platformCustomerId),
    order_id: tx.orderId,
    kind: tx.kind,
    total_minor: tx.totalMinor,
    currency: tx.currency,
    item_count: tx.lineItems.length,
    units: tx.lineItems.reduce((n, l) => n + l.quantity, 0),
    session_id: text(tx.sessionId),
    device_id: text(tx.deviceId),
    coupon_code: text(tx.couponCode),
    event_time: seconds(tx.eventTimeMs),
    event_time_ms: tx.eventTimeMs,
    event_date: eventDate,
    ingested_at: seconds(ingestedAtMs),
    source_topic: source.topic,
    source_partition: source.partition,
    source_offset: source.offset,
  };
  const lines = tx.lineItems.map<Row>((l, i) => ({
    event_id: tx.eventId,
    line_no: i,
    platform_id: tx.platform,
    platform_customer_id: text(tx.platformCustomerId),
    order_id: tx.orderId,
    kind: tx.kind,
    product_id: l.productId,
    category_id: l.category,
    brand: text(l.brand),
    quantity: l.quantity,
    unit_price_minor: l.unitPriceMinor,
    amount_minor: l.quantity * l.unitPriceMinor,
    currency: tx.currency,
    event_time: seconds(tx.eventTimeMs),
    event_date: eventDate,
  }));
  const products = tx.lineItems.map<Row>((l) => ({
    platform_id: tx.platform,
    product_id: l.productId,
    product_name: text(l.productName),
    category_id: l.category,
    brand: text(l.brand),
    version: tx.eventTimeMs, // the newest description wins, whatever order events are replayed in
  }));
  return {
    dim_platform: [platformRow(tx.platform)],
    dim_category: [...new Set(tx.lineItems.map((l) => l.category))].map(categoryRow),
    dim_product: products,
    fact_transaction: [fact],
    fact_transaction_line: lines,
  };
}

export function behaviorRows(ev: BehaviorEvent, source: Source, ingestedAtMs: number): RowSet {
  const fact: Row = {
    event_id: ev.eventId,
    platform_id: ev.platform,
    platform_customer_id: text(ev.platformCustomerId),
    session_id: text(ev.sessionId),
    device_id: text(ev.deviceId),
    event_type: ev.type,
    product_id: text(ev.productId),
    category_id: text(ev.category),
    search_query: text(ev.searchQuery),
    quantity: ev.quantity ?? 0,
    price_minor: ev.priceMinor ?? 0,
    currency: text(ev.currency),
    order_id: text(ev.orderId),
    // Scored here from the text, as the resolver scores the resolved click: a raw record's own value is not trusted.
    review_text: text(ev.reviewText),
    review_sentiment: reviewSentimentOf(ev.reviewText) ?? 0,
    event_time: seconds(ev.eventTimeMs),
    event_time_ms: ev.eventTimeMs,
    event_date: date(ev.eventTimeMs),
    ingested_at: seconds(ingestedAtMs),
    source_topic: source.topic,
    source_partition: source.partition,
    source_offset: source.offset,
  };
  return {
    dim_platform: [platformRow(ev.platform)],
    ...(ev.category ? { dim_category: [categoryRow(ev.category)] } : {}),
    fact_event: [fact],
  };
}

export function identityLinkRows(link: IdentityLink): RowSet {
  return {
    dim_customer_identity: [
      {
        identity_id: `${link.platform}:${link.platformCustomerId}`,
        global_customer_id: link.globalCustomerId,
        platform_id: link.platform,
        platform_customer_id: link.platformCustomerId,
        mapping_method: link.method,
        mapping_confidence: link.confidence,
        match_weight: link.matchWeight ?? 0,
        valid_from: seconds(link.eventTimeMs),
        valid_from_ms: link.eventTimeMs,
        source_event_id: link.sourceEventId,
        link_version: link.linkVersion ?? 0,
        matched_identity_id: link.evidence?.matchedIdentityKey ?? '',
        comparison_attributes: link.evidence?.comparisons.map((c) => c.attribute) ?? [],
        comparison_levels: link.evidence?.comparisons.map((c) => c.level ?? '') ?? [],
        comparison_weights: link.evidence?.comparisons.map((c) => c.weight) ?? [],
        adjustment_weight: link.evidence?.adjustmentWeight ?? 0,
        cluster_log_odds: link.evidence?.clusterLogOdds ?? 0,
      },
    ],
  };
}

export function identityMergeRows(merge: IdentityMerge): RowSet {
  return {
    identity_merge: [
      {
        event_id: merge.eventId,
        survivor_id: merge.survivorId,
        merged_id: merge.mergedId,
        method: merge.method,
        confidence: merge.confidence,
        event_time: seconds(merge.eventTimeMs),
        event_time_ms: merge.eventTimeMs,
        source_event_id: merge.sourceEventId,
      },
    ],
  };
}

export function mergeRejectionRows(r: IdentityMergeRejection): RowSet {
  return {
    identity_merge_rejected: [
      {
        event_id: r.eventId,
        identity_id: r.identityKey,
        global_customer_id: r.globalCustomerId,
        candidate_identity_id: text(r.candidateKey),
        candidate_global_customer_id: text(r.candidateGlobalId),
        reason: r.reason,
        match_probability: r.matchProbability ?? 0,
        match_weight: r.matchWeight ?? 0,
        event_time: seconds(r.eventTimeMs),
        event_date: date(r.eventTimeMs),
        source_event_id: r.sourceEventId,
      },
    ],
  };
}

export function intentScoreRows(score: IntentScore): RowSet {
  return {
    intent_score: [
      {
        global_customer_id: score.customerId,
        intent_score: score.intentScore,
        intent_level: score.intentLevel,
        predicted_category: text(score.predictedCategory),
        purchase_probability_7d: score.purchaseProbability7d,
        model_version: score.modelVersion,
        feature_time: seconds(score.featureTimeMs),
        feature_time_ms: score.featureTimeMs,
        scored_at: seconds(score.scoredAtMs),
        event_id: score.eventId,
      },
    ],
  };
}

/** An exposure: the API's ad decision, as the experiments read it. */
export function adDecisionRows(d: AdDecision): RowSet {
  return {
    fact_ad_decision: [
      {
        decision_id: d.eventId,
        global_customer_id: d.customerId,
        requested_id: d.requestedId,
        decided_at: seconds(d.eventTimeMs),
        decided_at_ms: d.eventTimeMs,
        decided_date: date(d.eventTimeMs),
        ad_type: d.adType,
        creative_id: d.creativeId,
        category: text(d.category),
        placement: text(d.placement),
        intent_score: d.intentScore,
        intent_level: d.intentLevel,
        predicted_category: text(d.predictedCategory),
        model_version: d.modelVersion,
        score_source: d.scoreSource,
        experiment: text(d.experiment),
        variant: text(d.variant),
      },
    ],
  };
}

export function deadLetterRows(dl: DeadLetter): RowSet {
  return {
    dead_letter: [
      {
        event_id: dl.eventId,
        processor: dl.processor,
        source_topic: dl.sourceTopic,
        source_partition: dl.sourcePartition,
        source_offset: dl.sourceOffset,
        error_code: dl.errorCode,
        reason: dl.reason,
        failed_at: seconds(dl.eventTimeMs),
        original_key: dl.originalKey ? dl.originalKey.toString('utf8') : '',
        original_value_base64: dl.originalValue ? dl.originalValue.toString('base64') : '',
      },
    ],
  };
}
