import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { prepare } from '../../processors/identity/compare.js';
import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { chunkTopicMessages } from '../../processors/runtime/send-chunks.js';
import { loadModel, scorePair, termFrequencies, trainEm, type MatchModel } from '../../processors/identity/model.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import type { IdentityRecord } from '../../processors/identity/types.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

const committed = loadModel(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8'));
/** The committed m/u without its term-frequency tables. */
const plain = loadModel({ ...committed, termFrequencies: undefined });
let serial = 0;
const rec = (fields: Partial<IdentityAttributes>): IdentityRecord =>
  toIdentityRecord('p', String(++serial), { ...NO_ATTRIBUTES, ...fields });

describe('term-frequency adjustment', () => {
  const withTf: MatchModel = loadModel({
    ...plain,
    termFrequencies: {
      lastName: { floor: 0.0001, values: { smith: 0.02, roepstorff: 0.0001 } },
      firstName: { floor: 0.0001, values: { john: 0.03 } },
    },
  });
  const pair = (first: string, last: string) => {
    const a = rec({ firstName: first, lastName: last, postcode: 'G12 8QQ' });
    const b = rec({ firstName: first, lastName: last, postcode: 'G12 8QQ' });
    const lastOnly = loadModel({ ...plain, termFrequencies: { lastName: withTf.termFrequencies?.lastName } });
    return [scorePair(plain, a, b).weight, scorePair(lastOnly, a, b).weight] as const;
  };

  it('says less for agreement on a common name than on a rare one', () => {
    const [plainSmith, tfSmith] = pair('mary', 'smith');
    const [plainRare, tfRare] = pair('mary', 'roepstorff');
    expect(plainSmith).toBe(plainRare); // without tables the value does not matter
    expect(tfSmith).toBeLessThan(plainSmith);
    expect(tfRare).toBeGreaterThan(plainRare);
    // log2(u_exact / tf): the exact level's u against the value's own frequency, capped at +3 bits upwards.
    const uExact = plain.attributes['lastName']!.u[0]!;
    expect(tfSmith - plainSmith).toBeCloseTo(Math.log2(uExact / 0.02));
    expect(tfRare - plainRare).toBeCloseTo(Math.min(3, Math.log2(uExact / 0.0001)));
  });

  it('adjusts only exact agreement, also on swapped names', () => {
    const a = rec({ firstName: 'john', lastName: 'smith' });
    const typo = rec({ firstName: 'john', lastName: 'smyth' });
    const swapped = rec({ firstName: 'smith', lastName: 'john' });
    const johnTf = Math.log2(plain.attributes['firstName']!.u[0]! / 0.03);
    expect(scorePair(withTf, a, typo).weight - scorePair(plain, a, typo).weight).toBeCloseTo(johnTf);
    expect(scorePair(withTf, a, swapped).weight).toBeLessThan(scorePair(plain, a, swapped).weight);
  });

  it('is learned from the training records: shares of the non-null values seen at least twice', () => {
    const records = [
      ...Array.from({ length: 6 }, () => rec({ lastName: 'Smith', city: 'Leeds' })),
      rec({ lastName: 'Roepstorff' }),
      rec({ lastName: 'Kershaw', city: 'York' }),
      rec({ lastName: 'Kershaw' }),
      rec({ firstName: 'Ann' }),
    ];
    const tables = termFrequencies(records.map(prepare), 2);
    expect(tables.lastName).toEqual({ floor: 1 / 9, values: { kershaw: 2 / 9, smith: 6 / 9 } });
    expect(tables.city).toEqual({ floor: 1 / 7, values: { leeds: 6 / 7 } });
    expect(tables.firstName).toEqual({ floor: 1, values: {} });
    expect(trainEm(records, { randomPairs: 100 }).termFrequencies?.lastName?.values['smith']).toBeCloseTo(6 / 9);
  });

  it('refuses a table value that is not a probability', () => {
    expect(() => loadModel({ ...plain, termFrequencies: { city: { floor: 0, values: {} } } })).toThrow(/floor/);
  });
});

describe('chunkTopicMessages', () => {
  it('splits sends by size, keeping each topic in order and a too-large message alone', () => {
    const msg = (n: number, size: number) => ({ key: `k${n}`, value: Buffer.alloc(size) });
    const chunks = chunkTopicMessages(
      [
        { topic: 'a', messages: [msg(1, 100), msg(2, 100), msg(3, 5_000)] },
        { topic: 'b', messages: [msg(4, 100)] },
      ],
      1_000,
    );
    expect(chunks.map((c) => c.map((t) => [t.topic, t.messages.map((m) => m.key)]))).toEqual([
      [['a', ['k1', 'k2']]],
      [['a', ['k3']]],
      [['b', ['k4']]],
    ]);
    expect(chunkTopicMessages([{ topic: 'a', messages: [] }], 1_000)).toEqual([]);
  });
});
