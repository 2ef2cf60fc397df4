/**
 * Pure parts of the identity resolver: which platform identity an event speaks for, and the records it emits. The
 * decisions that need the graph (who matches whom) live in processor.ts around the atomic graph store.
 */
import type {
  BehaviorEvent,
  IdentityAttributes,
  IdentityLink,
  IdentityMerge,
  LinkEvidence,
  Transaction,
} from '../../schemas/generated/types.js';
import { ATTRIBUTES, describeVector } from './compare.js';
import { attributeWeights, type MatchModel } from './model.js';
import type { LinkMethod, MergeEntry } from './types.js';

export type RawEvent = Transaction | BehaviorEvent;

/** A platform identity, or the anonymous key of an event that has none. */
export type EventIdentity =
  | {
      readonly kind: 'identified';
      readonly key: string;
      readonly platform: string;
      readonly platformCustomerId: string;
    }
  | { readonly kind: 'anonymous'; readonly key: string };

/** The identity an event belongs to. Anonymous events keep a stable anonymous key so their order is preserved. */
export function identityOf(event: RawEvent): EventIdentity {
  if (event.platformCustomerId) {
    return {
      kind: 'identified',
      key: `${event.platform}:${event.platformCustomerId}`,
      platform: event.platform,
      platformCustomerId: event.platformCustomerId,
    };
  }
  // A blank id is no id (the warehouse stores null as ''), so both sides derive the same key.
  const anon =
    'orderId' in event && 'lineItems' in event ? event.orderId : event.sessionId || event.deviceId || event.eventId;
  return { kind: 'anonymous', key: `anon:${event.platform}:${anon}` };
}

export const NO_ATTRIBUTES: IdentityAttributes = {
  emailSha256: null,
  phoneSha256: null,
  firstName: null,
  lastName: null,
  address: null,
  city: null,
  postcode: null,
  birthDate: null,
  ageGroup: null,
  deviceFingerprint: null,
};

/** The identity attributes an event carries (none for most clicks: they only name the platform identity). */
export function attributesOf(event: RawEvent): IdentityAttributes {
  return event.identity ?? NO_ATTRIBUTES;
}

/**
 * The evidence of a probabilistic link from the cluster it joined: the member that matched best, each attribute's
 * level and log2(m/u), and what the term-frequency adjustment and household penalty added, so that the comparisons'
 * weights plus `adjustmentWeight` give the link's match weight.
 */
export function linkEvidence(
  model: MatchModel,
  join: { key: string; matchWeight: number; levels: readonly number[]; clusterLogOdds: number },
): LinkEvidence {
  const weights = attributeWeights(model, join.levels);
  const described = describeVector(join.levels);
  const comparisons = ATTRIBUTES.map((attribute, i) => ({
    attribute,
    level: described[attribute],
    weight: weights[i] ?? 0,
  }));
  const sum = comparisons.reduce((n, c) => n + c.weight, 0);
  return {
    matchedIdentityKey: join.key,
    clusterLogOdds: join.clusterLogOdds,
    adjustmentWeight: join.matchWeight - sum,
    comparisons,
  };
}

/** The compacted link record of one platform identity. */
export function linkRecord(
  identity: { platform: string; platformCustomerId: string },
  globalCustomerId: string,
  how: { method: LinkMethod; confidence: number; matchWeight: number | null; evidence?: LinkEvidence | null },
  source: { eventId: string; eventTimeMs: number },
  linkVersion: number | null = null,
): IdentityLink {
  return {
    eventId: `link:${identity.platform}:${identity.platformCustomerId}:${globalCustomerId}:${source.eventId}`,
    eventTimeMs: source.eventTimeMs,
    platform: identity.platform,
    platformCustomerId: identity.platformCustomerId,
    globalCustomerId,
    method: how.method,
    confidence: how.confidence,
    matchWeight: how.matchWeight,
    sourceEventId: source.eventId,
    linkVersion,
    evidence: how.evidence ?? null,
  };
}

/** The merge event downstream state follows; its id is the merge's deterministic id. */
export function mergeEvent(entry: MergeEntry): IdentityMerge {
  return {
    eventId: entry.mergeId,
    eventTimeMs: entry.eventTimeMs,
    survivorId: entry.survivorId,
    mergedId: entry.mergedId,
    method: entry.method,
    confidence: entry.confidence,
    matchWeight: entry.matchWeight,
    sourceEventId: entry.sourceEventId,
  };
}

/** Splits `<platform>:<platformCustomerId>` (the platform id never contains a colon; the customer id may). */
export function splitIdentityKey(key: string): { platform: string; platformCustomerId: string } {
  const at = key.indexOf(':');
  return { platform: key.slice(0, at), platformCustomerId: key.slice(at + 1) };
}
