import { describe, expect, it } from 'vitest';
import { behaviorKey, behaviorProblems, transactionKey, transactionProblems } from '../../schemas/rules.js';
import { invalidPaths } from '../../processors/runtime/serde.js';
import { sampleBehavior, sampleTransaction, T0 } from '../fixtures/events.js';

const options = { nowMs: T0 + 1_000 };

describe('transaction rules', () => {
  it('accepts the fixture, which also fits the Avro contract', () => {
    expect(transactionProblems(sampleTransaction(), options)).toEqual([]);
    expect(invalidPaths('transaction', sampleTransaction())).toEqual([]);
    expect(invalidPaths('behaviorEvent', sampleBehavior())).toEqual([]);
  });

  it('names each semantic problem', () => {
    const line = sampleTransaction().lineItems[0]!;
    const cases: [Partial<Parameters<typeof sampleTransaction>[0]>, RegExp][] = [
      [{ lineItems: [{ ...line, quantity: -1 }] }, /quantity -1 must be > 0 in a PURCHASE/],
      [{ kind: 'RETURN', totalMinor: -100, lineItems: [{ ...line, quantity: 1 }] }, /must be < 0 in a RETURN/],
      [{ currency: 'EURO' }, /not an ISO 4217/],
      [{ eventTimeMs: T0 + 2 * 3_600_000 }, /in the future/],
      [{ eventTimeMs: 1_700_000_000 }, /before 2000-01-01/], // seconds sent as milliseconds
      [{ platform: 'Shop Wave' }, /platform "Shop Wave" must match/],
      [{ orderId: ' ' }, /orderId is empty/],
      [{ lineItems: [] }, /lineItems is empty/],
      [{ totalMinor: 2 ** 52 }, /totalMinor 4503599627370496 is beyond ±1000000000000/], // hostile or a unit error
      [{ lineItems: [{ ...line, unitPriceMinor: 1e13 }] }, /unitPriceMinor 10000000000000 is above/],
      [{ lineItems: [{ ...line, productId: 'x'.repeat(600) }] }, /lineItems\[0\]\.productId is 600 characters/],
      [{ platformCustomerId: '' }, /blank: send null/],
      [{ identity: { ...sampleTransaction().identity!, emailSha256: 'ada@example.org' } }, /raw values must never/],
      [{ identity: { ...sampleTransaction().identity!, birthDate: '31/12/1990' } }, /not an ISO date/],
    ];
    for (const [override, expected] of cases) {
      expect(transactionProblems(sampleTransaction(override), options).join('; ')).toMatch(expected);
    }
  });

  it('accepts a return with negative quantities and total', () => {
    const line = sampleTransaction().lineItems[0]!;
    const ret = sampleTransaction({
      kind: 'RETURN',
      totalMinor: -line.unitPriceMinor,
      lineItems: [{ ...line, quantity: -1 }],
    });
    expect(transactionProblems(ret, options)).toEqual([]);
  });

  it('keys by platform identity, anonymous orders by order id', () => {
    expect(transactionKey(sampleTransaction({ platformCustomerId: 'c-9' }))).toBe('shopwave:c-9');
    expect(transactionKey(sampleTransaction({ platformCustomerId: null, orderId: 'o-1' }))).toBe('shopwave:anon:o-1');
  });
});

describe('behavior rules', () => {
  it('limits string fields at every depth, reviews at their own length', () => {
    const at = (o: Parameters<typeof sampleBehavior>[0]) => behaviorProblems(sampleBehavior(o), options).join('; ');
    expect(at({ reviewText: 'y'.repeat(1_000) })).toBe('');
    expect(at({ reviewText: 'y'.repeat(5_000) })).toMatch(/^reviewText is 5000 characters \(max 4096\)$/);
    expect(at({ productId: 'p'.repeat(513) })).toMatch(/^productId is 513 characters \(max 512\)$/);
    expect(at({ productId: 'p'.repeat(512) })).toBe('');
    const identity = { ...sampleTransaction().identity!, city: 'c'.repeat(600) };
    expect(at({ identity })).toMatch(/identity\.city is 600 characters/);
  });

  it('requires some identifier, and identity on IDENTIFY', () => {
    const none = sampleBehavior({ platformCustomerId: null, sessionId: null, deviceId: null });
    expect(behaviorProblems(none, options).join()).toMatch(/no identifier/);
    expect(behaviorProblems(sampleBehavior({ type: 'IDENTIFY' }), options).join()).toMatch(/IDENTIFY needs/);
    expect(behaviorProblems(sampleBehavior({ type: 'SEARCH' }), options).join()).toMatch(/SEARCH needs searchQuery/);
    expect(behaviorProblems(sampleBehavior({ type: 'SEARCH', searchQuery: 'shoes' }), options)).toEqual([]);
  });

  it('keys anonymous clicks by session', () => {
    expect(behaviorKey(sampleBehavior({ platformCustomerId: null, sessionId: 's-9' }))).toBe('shopwave:anon:s-9');
  });
});

describe('limits', () => {
  it('accepts a real-sized large invoice (Online Retail 573585 has 1,114 lines)', () => {
    const line = sampleTransaction().lineItems[0]!;
    const big = sampleTransaction({ lineItems: Array.from({ length: 1_114 }, () => line), totalMinor: 1_114 * 9_998 });
    expect(transactionProblems(big, options)).toEqual([]);
  });
});
