/**
 * Semantic rules of the event contracts: what Avro cannot say. Pure; producers call it to fail fast, processors call
 * it to dead-letter what other producers let through. Each violation is a sentence a platform engineer can act on.
 */
import type { BehaviorEvent, IdentityAttributes, Transaction } from './generated/types.js';

export interface RuleOptions {
  /** Reference "now" in epoch ms; events later than now + maxFutureMs are clock errors. */
  readonly nowMs: number;
  /** @default 3_600_000 */
  readonly maxFutureMs?: number;
}

/** Longest accepted string field; protects the warehouse and Redis from megabyte "names". */
export const MAX_STRING_LENGTH = 512;
/** Longest accepted review text (BehaviorEvent.reviewText): reviews are prose, longer than any other field. */
export const MAX_REVIEW_LENGTH = 4_096;
/** Events before this are certainly corrupt timestamps (seconds sent as ms, zero dates). */
export const MIN_EVENT_TIME_MS = Date.UTC(2000, 0, 1);
/**
 * Largest amount in minor units (10 billion in major units): far above any real order, and far below 2^53, so sums of
 * amounts in features and the warehouse stay exact. A larger amount is a unit error or a hostile record.
 */
export const MAX_AMOUNT_MINOR = 1e12;
// Real invoices reach ~1,100 lines (Online Retail 573585); the cap only stops runaway payloads.
const MAX_LINE_ITEMS = 10_000;
const PLATFORM = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

let currencies: ReadonlySet<string> | undefined;
/** ISO 4217 codes as known to the runtime's ICU data (Node ships full ICU). */
export function isKnownCurrency(code: string): boolean {
  currencies ??= new Set(Intl.supportedValuesOf('currency'));
  return currencies.has(code);
}

function checkCommon(
  e: { eventId: string; eventTimeMs: number; platform: string },
  options: RuleOptions,
  problems: string[],
): void {
  if (!e.eventId.trim()) problems.push('eventId is empty');
  if (!PLATFORM.test(e.platform)) problems.push(`platform "${e.platform.slice(0, 80)}" must match ${PLATFORM.source}`);
  const maxFuture = options.nowMs + (options.maxFutureMs ?? 3_600_000);
  if (!Number.isSafeInteger(e.eventTimeMs) || e.eventTimeMs < MIN_EVENT_TIME_MS) {
    problems.push(`eventTimeMs ${e.eventTimeMs} is before 2000-01-01: not an epoch-millisecond timestamp`);
  } else if (e.eventTimeMs > maxFuture) {
    problems.push(
      `eventTimeMs ${new Date(e.eventTimeMs).toISOString()} is in the future (now ${new Date(options.nowMs).toISOString()})`,
    );
  }
}

/**
 * Every string field of a (nested) event at most MAX_STRING_LENGTH characters (reviewText: MAX_REVIEW_LENGTH). Runs on
 * every record at every door, so a field's path is only spelled out for a string long enough to be a problem.
 */
function checkStringLengths(value: unknown, path: string, problems: string[]): void {
  if (typeof value === 'string') {
    const max = path === 'reviewText' ? MAX_REVIEW_LENGTH : MAX_STRING_LENGTH;
    if (value.length > max) problems.push(`${path} is ${value.length} characters (max ${max})`);
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      if (mayBreakLimit(value[i])) checkStringLengths(value[i], `${path}[${i}]`, problems);
    }
  } else if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    for (const k of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[k];
      if (mayBreakLimit(v)) checkStringLengths(v, path ? `${path}.${k}` : k, problems);
    }
  }
}

const SHORTEST_LIMIT = Math.min(MAX_STRING_LENGTH, MAX_REVIEW_LENGTH);

/** A string over the shortest limit, or something that may hold one: worth spelling out its path for. */
function mayBreakLimit(v: unknown): boolean {
  return typeof v === 'string' ? v.length > SHORTEST_LIMIT : v !== null && typeof v === 'object';
}

function checkIdentity(identity: IdentityAttributes | null, problems: string[]): void {
  if (!identity) return;
  for (const field of ['emailSha256', 'phoneSha256'] as const) {
    const v = identity[field];
    if (v !== null && !SHA256_HEX.test(v)) {
      problems.push(`identity.${field} must be a salted SHA-256 (64 lowercase hex); raw values must never be sent`);
    }
  }
  if (
    identity.birthDate !== null &&
    (!ISO_DATE.test(identity.birthDate) || Number.isNaN(Date.parse(identity.birthDate)))
  ) {
    problems.push(`identity.birthDate "${identity.birthDate.slice(0, 40)}" is not an ISO date YYYY-MM-DD`);
  }
}

/** Problems with a transaction; empty when it is acceptable. */
export function transactionProblems(tx: Transaction, options: RuleOptions): string[] {
  const problems: string[] = [];
  checkCommon(tx, options, problems);
  checkStringLengths(tx, '', problems);
  if (!tx.orderId.trim()) problems.push('orderId is empty');
  if (tx.platformCustomerId !== null && !tx.platformCustomerId.trim()) {
    problems.push('platformCustomerId is blank: send null for an anonymous order');
  }
  if (!isKnownCurrency(tx.currency)) problems.push(`currency "${tx.currency.slice(0, 16)}" is not an ISO 4217 code`);
  if (tx.lineItems.length === 0) problems.push('lineItems is empty');
  if (tx.lineItems.length > MAX_LINE_ITEMS) problems.push(`${tx.lineItems.length} line items (max ${MAX_LINE_ITEMS})`);
  tx.lineItems.forEach((line, i) => {
    if (!line.productId.trim()) problems.push(`lineItems[${i}].productId is empty`);
    if (!line.category.trim()) problems.push(`lineItems[${i}].category is empty`);
    if (tx.kind === 'PURCHASE' && line.quantity <= 0) {
      problems.push(`lineItems[${i}].quantity ${line.quantity} must be > 0 in a PURCHASE (returns use kind RETURN)`);
    }
    if (tx.kind === 'RETURN' && line.quantity >= 0) {
      problems.push(`lineItems[${i}].quantity ${line.quantity} must be < 0 in a RETURN`);
    }
    if (line.unitPriceMinor < 0) problems.push(`lineItems[${i}].unitPriceMinor ${line.unitPriceMinor} is negative`);
    if (line.unitPriceMinor > MAX_AMOUNT_MINOR) {
      problems.push(`lineItems[${i}].unitPriceMinor ${line.unitPriceMinor} is above ${MAX_AMOUNT_MINOR}`);
    }
  });
  if (Math.abs(tx.totalMinor) > MAX_AMOUNT_MINOR)
    problems.push(`totalMinor ${tx.totalMinor} is beyond ±${MAX_AMOUNT_MINOR}`);
  if (tx.kind === 'RETURN' && tx.totalMinor > 0) problems.push(`totalMinor ${tx.totalMinor} must be <= 0 in a RETURN`);
  if (tx.kind === 'PURCHASE' && tx.totalMinor < 0)
    problems.push(`totalMinor ${tx.totalMinor} must be >= 0 in a PURCHASE`);
  checkIdentity(tx.identity, problems);
  return problems;
}

/** Problems with a behavior event; empty when it is acceptable. */
export function behaviorProblems(ev: BehaviorEvent, options: RuleOptions): string[] {
  const problems: string[] = [];
  checkCommon(ev, options, problems);
  checkStringLengths(ev, '', problems);
  const blank = (v: string | null) => v === null || !v.trim();
  if (blank(ev.platformCustomerId) && blank(ev.sessionId) && blank(ev.deviceId)) {
    problems.push('no identifier: one of platformCustomerId, sessionId, deviceId is required');
  }
  if (ev.type === 'IDENTIFY' && (blank(ev.platformCustomerId) || !ev.identity)) {
    problems.push('IDENTIFY needs platformCustomerId and identity');
  }
  if (ev.type === 'SEARCH' && blank(ev.searchQuery)) problems.push('SEARCH needs searchQuery');
  if (ev.quantity !== null && ev.quantity < 0) problems.push(`quantity ${ev.quantity} is negative`);
  if (ev.priceMinor !== null && ev.priceMinor < 0) problems.push(`priceMinor ${ev.priceMinor} is negative`);
  if (ev.priceMinor !== null && ev.priceMinor > MAX_AMOUNT_MINOR) {
    problems.push(`priceMinor ${ev.priceMinor} is above ${MAX_AMOUNT_MINOR}`);
  }
  if (ev.currency !== null && !isKnownCurrency(ev.currency)) {
    problems.push(`currency "${ev.currency.slice(0, 16)}" is not an ISO 4217 code`);
  }
  checkIdentity(ev.identity, problems);
  return problems;
}

/** The Kafka key of a raw transaction: the platform identity, or an anonymous key per order. */
export function transactionKey(tx: Transaction): string {
  return tx.platformCustomerId ? `${tx.platform}:${tx.platformCustomerId}` : `${tx.platform}:anon:${tx.orderId}`;
}

/** The Kafka key of a raw behavior event: the platform identity, or an anonymous key per session/device. */
export function behaviorKey(ev: BehaviorEvent): string {
  if (ev.platformCustomerId) return `${ev.platform}:${ev.platformCustomerId}`;
  return `${ev.platform}:anon:${ev.sessionId || ev.deviceId || ev.eventId}`; // blank = absent, as in the warehouse
}
