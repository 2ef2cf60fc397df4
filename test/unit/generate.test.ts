import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSample, summarizeSample, typo, type GeneratedSample } from '../../processors/producers/generate.js';
import { behaviorProblems, transactionProblems } from '../../schemas/rules.js';
import type { BehaviorEvent, IdentityAttributes, Transaction } from '../../schemas/generated/types.js';

const SALT = 'unit-test-salt';
const END = Date.UTC(2026, 9, 1);
const DAY = 86_400_000;
const HEX64 = /^[0-9a-f]{64}$/;
const PLATFORM = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const digest = (sample: GeneratedSample) => createHash('sha256').update(JSON.stringify(sample)).digest('hex');

/** The event rules of the brief, checked independently of schemas/rules.ts. */
function problemsOf(event: Transaction | BehaviorEvent): string[] {
  const problems: string[] = [];
  const strings = (value: unknown, path: string): void => {
    if (typeof value === 'string' && value.length > 512) problems.push(`${path} longer than 512`);
    else if (Array.isArray(value))
      value.forEach((v, i) => {
        strings(v, `${path}[${i}]`);
      });
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) strings(v, `${path}.${k}`);
  };
  strings(event, '');
  if (!event.eventId.trim()) problems.push('empty eventId');
  if (!PLATFORM.test(event.platform)) problems.push('platform');
  if (!Number.isSafeInteger(event.eventTimeMs)) problems.push('eventTimeMs');
  const identity: IdentityAttributes | null = event.identity;
  if (identity) {
    for (const h of [identity.emailSha256, identity.phoneSha256])
      if (h !== null && !HEX64.test(h)) problems.push('hash');
    for (const v of [identity.firstName, identity.lastName, identity.address, identity.city, identity.postcode]) {
      if (v?.includes('@') || /0\d{3}[\s-]?\d{3}[\s-]?\d{3}/.test(v ?? '')) problems.push(`raw contact data in ${v}`);
    }
    if (identity.birthDate !== null && !/^\d{4}-\d{2}-\d{2}$/.test(identity.birthDate)) problems.push('birthDate');
  }
  if ('kind' in event) {
    if (!/^[A-Z]{3}$/.test(event.currency)) problems.push('currency');
    if (event.lineItems.length === 0) problems.push('no lines');
    for (const line of event.lineItems) {
      if (event.kind === 'PURCHASE' && !(line.quantity > 0)) problems.push('purchase quantity');
      if (event.kind === 'RETURN' && !(line.quantity < 0)) problems.push('return quantity');
      if (!Number.isInteger(line.unitPriceMinor) || line.unitPriceMinor < 0) problems.push('unitPriceMinor');
      if (!Number.isInteger(line.quantity)) problems.push('quantity');
    }
    const total = event.lineItems.reduce((s, l) => s + l.quantity * l.unitPriceMinor, 0);
    if (event.totalMinor !== total) problems.push('totalMinor is not the sum of the lines');
    if (event.kind === 'RETURN' && !(event.totalMinor < 0)) problems.push('return total');
  } else {
    if (!event.platformCustomerId && !event.sessionId && !event.deviceId) problems.push('no identifier');
    if (event.type === 'IDENTIFY' && (!event.platformCustomerId || !event.identity)) problems.push('IDENTIFY');
    if (event.type === 'SEARCH' && !event.searchQuery) problems.push('SEARCH without query');
    if (event.priceMinor !== null && (!Number.isInteger(event.priceMinor) || event.priceMinor < 0))
      problems.push('price');
    if (event.priceMinor !== null && event.currency !== 'GBP') problems.push('price without currency');
  }
  return problems;
}

describe('generateSample', () => {
  let sample: GeneratedSample;
  // Generating ~90k events takes about a second; give slow CI machines room.
  beforeAll(() => {
    sample = generateSample({ salt: SALT });
  }, 60_000);

  it('is deterministic: the same seed gives identical output, another seed different output', () => {
    expect(digest(generateSample({ salt: SALT }))).toBe(digest(sample));
    const other = generateSample({ salt: SALT, seed: 7 });
    expect(digest(other)).not.toBe(digest(sample));
    expect(other.transactions[0]?.eventId).not.toBe(sample.transactions[0]?.eventId);
  }, 60_000);

  it('meets the size targets', () => {
    const summary = summarizeSample(sample);
    expect(summary.persons).toBe(1247);
    expect(summary.transactions).toBeGreaterThanOrEqual(Math.floor(3891 * 0.95));
    expect(summary.transactions).toBeLessThanOrEqual(Math.ceil(3891 * 1.05));
    expect(summary.crossPlatformShare).toBeGreaterThanOrEqual(0.25);
    expect(summary.crossPlatformShare).toBeLessThanOrEqual(0.35);
    expect(summary.platforms).toBeGreaterThanOrEqual(3);
    expect(summary.returns / summary.purchases).toBeGreaterThan(0.03);
    expect(summary.returns / summary.purchases).toBeLessThan(0.08);
    // Some persons on all three platforms.
    const perPerson = new Map<string, number>();
    for (const row of sample.groundTruth) perPerson.set(row.personId, (perPerson.get(row.personId) ?? 0) + 1);
    expect([...perPerson.values()].filter((n) => n === 3).length).toBeGreaterThan(20);
  });

  it('spans at least 90 days ending before endTimeMs, sorted by event time', () => {
    const summary = summarizeSample(sample);
    expect(summary.lastEventTimeMs! - summary.firstEventTimeMs!).toBeGreaterThanOrEqual(90 * DAY);
    expect(summary.firstEventTimeMs!).toBeGreaterThanOrEqual(END - 120 * DAY);
    expect(summary.lastEventTimeMs!).toBeLessThan(END);
    for (const list of [sample.transactions, sample.behaviors]) {
      const unsorted = list.filter((e, i) => i > 0 && e.eventTimeMs < list[i - 1]!.eventTimeMs);
      expect(unsorted).toEqual([]);
    }
  });

  it('produces only events that satisfy the contract rules', () => {
    const bad: string[] = [];
    const options = { nowMs: END };
    for (const tx of sample.transactions) {
      for (const p of [...problemsOf(tx), ...transactionProblems(tx, options)]) bad.push(`${tx.eventId}: ${p}`);
    }
    for (const ev of sample.behaviors) {
      for (const p of [...problemsOf(ev), ...behaviorProblems(ev, options)]) bad.push(`${ev.eventId}: ${p}`);
    }
    expect(bad.slice(0, 10)).toEqual([]);
    const ids = [...sample.transactions, ...sample.behaviors].map((e) => e.eventId);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('never lets a raw email or phone number out', () => {
    const text = JSON.stringify(sample);
    expect(text).not.toContain('@');
    expect(text).not.toMatch(/"07\d{3}[ -]?\d{3}-?\d{3}"/);
  });

  it('has ground truth for exactly the accounts that appear, each with an IDENTIFY', () => {
    const truth = new Map(sample.groundTruth.map((r) => [`${r.platform}:${r.platformCustomerId}`, r.personId]));
    expect(truth.size).toBe(sample.groundTruth.length);
    const seen = new Set<string>();
    for (const e of [...sample.transactions, ...sample.behaviors]) {
      if (e.platformCustomerId !== null) seen.add(`${e.platform}:${e.platformCustomerId}`);
    }
    expect([...seen].filter((k) => !truth.has(k))).toEqual([]);
    const identified = new Set(
      sample.behaviors.filter((b) => b.type === 'IDENTIFY').map((b) => `${b.platform}:${b.platformCustomerId}`),
    );
    expect([...truth.keys()].filter((k) => !identified.has(k))).toEqual([]);
    // Each platform has its own id format.
    const formats = new Map<string, Set<string>>();
    for (const r of sample.groundTruth) {
      const shape = r.platformCustomerId.replace(/[a-z]/g, 'a').replace(/[A-Z]/g, 'A').replace(/\d/g, '9');
      formats.set(r.platform, (formats.get(r.platform) ?? new Set()).add(shape.slice(0, 3)));
    }
    const shapes = [...formats.values()].map((s) => [...s].join('|'));
    expect(new Set(shapes).size).toBe(formats.size);
  });

  it('links every purchase to its click session and every return to an earlier purchase', () => {
    const purchases = new Map(sample.transactions.filter((t) => t.kind === 'PURCHASE').map((t) => [t.orderId, t]));
    const clicks = sample.behaviors.filter((b) => b.type === 'PURCHASE');
    const sessions = new Map<string, BehaviorEvent[]>();
    for (const b of sample.behaviors)
      if (b.sessionId) sessions.set(b.sessionId, [...(sessions.get(b.sessionId) ?? []), b]);
    expect(clicks.length).toBe(purchases.size);
    for (const click of clicks) {
      const tx = purchases.get(click.orderId ?? '');
      expect(tx?.sessionId).toBe(click.sessionId);
      expect(tx?.totalMinor).toBe(click.priceMinor);
      const session = (sessions.get(click.sessionId ?? '') ?? []).map((b) => b.type);
      expect(session).toContain('ADD_TO_CART');
      expect(session.indexOf('CHECKOUT_START')).toBeLessThan(session.indexOf('PURCHASE'));
    }
    for (const ret of sample.transactions.filter((t) => t.kind === 'RETURN')) {
      const original = purchases.get(ret.orderId.replace(/-R\d+$/, ''));
      expect(original).toBeDefined();
      expect(ret.eventTimeMs).toBeGreaterThan(original!.eventTimeMs);
      expect(ret.platformCustomerId).toBe(original!.platformCustomerId);
      for (const line of ret.lineItems) {
        const bought = original!.lineItems.find((l) => l.productId === line.productId);
        expect(bought && -line.quantity <= bought.quantity).toBe(true);
      }
    }
  });

  it('has abandoned carts and browse-only sessions, some anonymous', () => {
    const sessions = new Map<string, BehaviorEvent[]>();
    for (const b of sample.behaviors) sessions.set(b.sessionId!, [...(sessions.get(b.sessionId!) ?? []), b]);
    const list = [...sessions.values()];
    const abandoned = list.filter(
      (s) => s.some((e) => e.type === 'ADD_TO_CART') && !s.some((e) => e.type === 'PURCHASE'),
    );
    const browseOnly = list.filter((s) => s.every((e) => e.type === 'VIEW' || e.type === 'SEARCH'));
    expect(abandoned.length).toBeGreaterThan(500);
    expect(browseOnly.length).toBeGreaterThan(2000);
    expect(browseOnly.filter((s) => s[0]!.platformCustomerId === null).length).toBeGreaterThan(100);
  });

  it('puts realistic identity noise across the accounts of one person', () => {
    const truth = new Map(sample.groundTruth.map((r) => [`${r.platform}:${r.platformCustomerId}`, r.personId]));
    const identities = new Map<string, IdentityAttributes[]>(); // personId -> one identity per account
    const accountSeen = new Set<string>();
    const devicePersons = new Map<string, Set<string>>();
    for (const b of sample.behaviors) {
      if (b.type !== 'IDENTIFY' || !b.identity) continue;
      const key = `${b.platform}:${b.platformCustomerId}`;
      const person = truth.get(key)!;
      if (b.identity.deviceFingerprint) {
        devicePersons.set(
          b.identity.deviceFingerprint,
          (devicePersons.get(b.identity.deviceFingerprint) ?? new Set()).add(person),
        );
      }
      if (accountSeen.has(key)) continue;
      accountSeen.add(key);
      identities.set(person, [...(identities.get(person) ?? []), b.identity]);
    }
    const multi = [...identities.values()].filter((ids) => ids.length > 1);
    const differ = (field: keyof IdentityAttributes) =>
      multi.filter((ids) => ids.every((i) => i[field] !== null) && new Set(ids.map((i) => i[field])).size > 1).length;
    expect(differ('firstName')).toBeGreaterThan(10); // typos, nicknames, initials
    expect(differ('lastName')).toBeGreaterThan(5);
    expect(differ('address')).toBeGreaterThan(30); // Street/St, missing flat
    expect(differ('emailSha256')).toBeGreaterThan(10); // work vs personal
    expect(multi.filter((ids) => new Set(ids.map((i) => i.emailSha256)).size === 1).length).toBeGreaterThan(50);
    const all = [...identities.values()].flat();
    expect(all.filter((i) => i.phoneSha256 === null).length).toBeGreaterThan(100);
    expect(all.filter((i) => i.birthDate === null && i.ageGroup !== null).length).toBeGreaterThan(100);
    // Households sharing a device.
    expect([...devicePersons.values()].filter((s) => s.size > 1).length).toBeGreaterThan(5);
    // Hard negatives: different persons, same name, same city.
    const byName = new Map<string, Set<string>>();
    for (const [person, ids] of identities) {
      const main = ids[0]!;
      const key = `${main.firstName}|${main.lastName}|${main.city}`;
      byName.set(key, (byName.get(key) ?? new Set()).add(person));
    }
    expect([...byName.values()].filter((s) => s.size > 1).length).toBeGreaterThanOrEqual(5);
  });

  it('rejects a window shorter than 90 days and bad platform ids', () => {
    expect(() => generateSample({ salt: SALT, days: 60 })).toThrow(RangeError);
    expect(() => generateSample({ salt: SALT, platforms: ['Bad Platform'] })).toThrow(RangeError);
  });

  it('honours smaller custom options', () => {
    const small = generateSample({
      salt: SALT,
      seed: 3,
      customers: 50,
      platforms: ['a', 'b'],
      targetTransactions: 150,
    });
    const summary = summarizeSample(small);
    expect(summary.persons).toBe(50);
    expect(summary.platforms).toBe(2);
    expect(summary.transactions).toBeGreaterThan(100);
    expect(summary.transactions).toBeLessThan(200);
  });
});

describe('typo', () => {
  it('makes exactly one edit and keeps the first letter', () => {
    let state = 0.123;
    const random = () => (state = (state * 9301 + 0.49297) % 1);
    for (let i = 0; i < 200; i++) {
      const out = typo('Katherine', random);
      expect(out.charAt(0)).toBe('K');
      expect(Math.abs(out.length - 'Katherine'.length)).toBeLessThanOrEqual(1);
      expect(out).not.toBe('Katherine');
    }
  });
});
