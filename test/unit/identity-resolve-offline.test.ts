import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { generateMessy } from '../../processors/identity/messy-logic.js';
import { loadModel, scorePair, trainEm } from '../../processors/identity/model.js';
import { febrlEvents } from '../../processors/producers/replay.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import {
  blockingRecall,
  pairwiseMetrics,
  resolveIncrementally,
  resolveIncrementallyWithStats,
} from '../../processors/identity/resolve-offline.js';
import { readFebrlRecords } from '../../processors/identity/train-cli.js';
import type { IdentityRecord } from '../../processors/identity/types.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

const model = loadModel(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8'));
const EMAIL = 'e'.repeat(64);
const PHONE = 'f'.repeat(64);

const rec = (id: string, fields: Partial<IdentityAttributes>): IdentityRecord =>
  toIdentityRecord('p', id, {
    ...NO_ATTRIBUTES,
    ...fields,
  });

describe('resolveIncrementally', () => {
  it('links a later record to an earlier one of the same person and leaves strangers alone', () => {
    const records = [
      rec('1', { firstName: 'Ada', lastName: 'Lovelace', address: '12 St James Sq', postcode: 'SW1Y 4JH' }),
      rec('2', { firstName: 'Charles', lastName: 'Babbage', address: '1 Dorset St', postcode: 'W1U 4EG' }),
      rec('3', { firstName: 'Ada', lastName: 'Lovelace', address: '12 St. James Square', postcode: 'SW1Y4JH' }),
    ];
    const clusters = resolveIncrementally(records, model);
    expect(clusters).toEqual(
      new Map([
        ['p:1', 'p:1'],
        ['p:2', 'p:2'],
        ['p:3', 'p:1'],
      ]),
    );
  });

  it('merges two earlier clusters when a later record links to both, the oldest surviving', () => {
    // 1 and 2 have nothing in common (no shared key, no shared value); 3 carries 1's email and 2's phone.
    const records = [
      rec('1', { firstName: 'Grace', lastName: 'Hopper', emailSha256: EMAIL }),
      rec('2', { address: '80 Broad St', postcode: 'NY10004', city: 'New York', phoneSha256: PHONE }),
      rec('3', {
        firstName: 'Grace',
        lastName: 'Hopper',
        address: '80 Broad St',
        postcode: 'NY10004',
        emailSha256: EMAIL,
        phoneSha256: PHONE,
      }),
    ];
    const before = resolveIncrementally(records.slice(0, 2), model);
    expect(before.get('p:1')).not.toBe(before.get('p:2'));
    const { clusters, stats } = resolveIncrementallyWithStats(records, model);
    expect([...clusters.values()]).toEqual(['p:1', 'p:1', 'p:1']);
    expect(stats.merges).toBe(1);
  });

  it('does not join a cluster through one member when it conflicts with another member', () => {
    const home = { lastName: 'Okuneva', address: '136 Nolan Place', postcode: 'E13 5AS', city: 'London' };
    const records = [
      rec('1', { ...home, firstName: 'Alexander', birthDate: '1950-11-02', emailSha256: EMAIL }),
      rec('2', { ...home, firstName: 'Alexander' }), // no email, no birth date: links to 1
      rec('3', { ...home, firstName: 'Alexandra', birthDate: '1984-03-30', emailSha256: 'd'.repeat(64) }),
    ];
    // On its own, 3 would link to 2 (same surname and address, a similar first name)...
    expect(scorePair(model, records[2]!, records[1]!)).toMatchObject({ conflict: false });
    expect(scorePair(model, records[2]!, records[1]!).probability).toBeGreaterThanOrEqual(model.threshold);
    // ...but 2 is in 1's cluster, and 3 has another email and another birthday than 1.
    expect(scorePair(model, records[2]!, records[0]!).conflict).toBe(true);
    const clusters = resolveIncrementally(records, model);
    expect(clusters.get('p:2')).toBe('p:1');
    expect(clusters.get('p:3')).toBe('p:3');
  });

  it('refuses merges beyond maxClusterSize and rejects duplicate keys', () => {
    const same = { firstName: 'Alan', lastName: 'Turing', address: '2 Hampton Rd', postcode: 'TW11 0LA' };
    const records = ['1', '2', '3'].map((id) => rec(id, same));
    const { clusters, stats } = resolveIncrementallyWithStats(records, model, { maxClusterSize: 2 });
    expect(clusters.get('p:2')).toBe('p:1');
    expect(clusters.get('p:3')).toBe('p:3');
    expect(stats.refusedMerges).toBeGreaterThan(0);
    expect(() => resolveIncrementally([records[0]!, records[0]!], model)).toThrow(/duplicate record key/);
  });

  it('resolves the FEBRL fixture: rec-444-org and its duplicate together, everyone else alone', async () => {
    const fixture = fileURLToPath(new URL('../fixtures/febrl-sample.csv', import.meta.url));
    const records = await readFebrlRecords([fixture], 'unit-test-salt');
    expect(records).toHaveLength(8);
    const clusters = resolveIncrementally(records, model);
    const org = 'febrl-sample:rec-444-org';
    const dup = 'febrl-sample:rec-444-dup-0';
    expect(clusters.get(org)).toBe(clusters.get(dup));
    expect(clusters.get(org)).toBe(dup); // the duplicate comes first in the file, so its cluster survives
    expect(new Set(clusters.values()).size).toBe(7);
    expect(blockingRecall(records, [[org, dup]])).toBe(1);
  });
});

describe('pairwiseMetrics and blockingRecall', () => {
  it('count every pair inside a predicted cluster', () => {
    const predicted = new Map([
      ['a', 'a'],
      ['b', 'a'],
      ['c', 'a'],
      ['d', 'd'],
    ]);
    const m = pairwiseMetrics(predicted, [
      ['a', 'b'],
      ['b', 'a'], // the same pair again
      ['c', 'd'],
    ]);
    expect(m).toMatchObject({ truePairs: 2, predictedPairs: 3, truePositives: 1 });
    expect(m.precision).toBeCloseTo(1 / 3);
    expect(m.recall).toBeCloseTo(1 / 2);
    expect(m.f1).toBeCloseTo(0.4);
  });

  it('measure the share of true pairs sharing a key or a hash', () => {
    const records = [
      rec('1', { firstName: 'Ada', lastName: 'Lovelace' }),
      rec('2', { firstName: 'Ada', lastName: 'Lovelace' }),
      rec('3', { phoneSha256: PHONE }),
      rec('4', { phoneSha256: PHONE }),
      rec('5', { birthDate: '1815-12-10' }),
    ];
    expect(
      blockingRecall(records, [
        ['p:1', 'p:2'],
        ['p:3', 'p:4'],
        ['p:1', 'p:5'],
        ['p:1', 'p:missing'],
      ]),
    ).toBe(0.5);
  });
});

describe('stable customer ids', () => {
  it('keeps every id of earlier people when records of unrelated people arrive after them', () => {
    const { rows } = generateMessy({ people: 160, seed: 4 });
    const person = (recId: string) => Number(/^rec-(\d+)-/.exec(recId)?.[1]);
    const records = febrlEvents(rows, 'm', { salt: 's', baseTimeMs: Date.UTC(2026, 0, 1) }).map((e) =>
      toIdentityRecord('m', e.platformCustomerId ?? '', e.identity ?? NO_ATTRIBUTES),
    );
    const earlier = records.filter((r) => person(r.key.slice(2)) < 80);
    const later = records.filter((r) => person(r.key.slice(2)) >= 80);
    const trained = trainEm(records, { randomPairs: 50_000 });
    const before = resolveIncrementally(earlier, trained);
    const after = resolveIncrementally([...earlier, ...later], trained);
    const changed = earlier.filter((r) => after.get(r.key) !== before.get(r.key));
    expect(changed).toEqual([]);
    // And the later people did get linked among themselves (the check is not vacuous).
    expect(new Set(later.map((r) => after.get(r.key))).size).toBeLessThan(later.length / 3);
  }, 30_000); // EM on 1,500 records: a few seconds on a loaded machine
});
