import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { describe, expect, it } from 'vitest';
import {
  addressLevel,
  ATTRIBUTES,
  birthLevel,
  comparePreparedInto,
  compareRecords,
  describeVector,
  equalityLevel,
  nameLevel,
  NULL_LEVEL,
  postcodeLevel,
  prepare,
} from '../../processors/identity/compare.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import type { IdentityRecord } from '../../processors/identity/types.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

let serial = 0;
const rec = (over: Partial<IdentityAttributes> = {}): IdentityRecord =>
  toIdentityRecord('p', String(++serial), {
    ...NO_ATTRIBUTES,
    ...over,
  });
const address = (a: string | null, b: string | null) =>
  addressLevel(prepare(rec({ address: a })), prepare(rec({ address: b })));
const birth = (a: Partial<IdentityAttributes>, b: Partial<IdentityAttributes>) =>
  birthLevel(prepare(rec(a)), prepare(rec(b)));

describe('comparison levels', () => {
  it('names: exact / Jaro–Winkler ≥ 0.92 / ≥ 0.8 or an initial / different / null', () => {
    expect(nameLevel('catherine', 'catherine')).toBe(0);
    expect(nameLevel('catherine', 'cathrine')).toBe(1);
    expect(nameLevel('jon', 'jonathan')).toBe(2);
    expect(nameLevel('j', 'james')).toBe(2);
    expect(nameLevel('k', 'james')).toBe(3);
    expect(nameLevel('catherine', 'margaret')).toBe(3);
    expect(nameLevel(null, 'margaret')).toBe(NULL_LEVEL);
  });

  it('names compare without their spaces and also crosswise when entered swapped', () => {
    const v = compareRecords(
      rec({ firstName: 'Elk I', lastName: 'Menzies' }),
      rec({ firstName: 'elki', lastName: 'menzies' }),
    );
    expect(describeVector(v)).toMatchObject({ firstName: 'exact', lastName: 'exact' });
    const swapped = compareRecords(
      rec({ firstName: 'Paterson', lastName: 'Madeleine' }),
      rec({ firstName: 'Madeleine', lastName: 'Paterson' }),
    );
    expect(describeVector(swapped)).toMatchObject({ firstName: 'exact', lastName: 'exact' });
  });

  it('address: exact / Jaro–Winkler ≥ 0.9 / token overlap / different / null', () => {
    expect(address('12 High Street', '12 high street')).toBe(0);
    expect(address('12 pinkerton circuit', '12 pinkertn circuit')).toBe(1);
    expect(address('26 chant street durraween', '26 durraween chant st')).toBe(2);
    expect(address('Flat 3, 26 Chant Street', '26 chant street')).toBe(2); // a dropped flat
    // Same street, another house: the numbers disagree, so word overlap alone is not enough.
    expect(address('26 chant street durraween', '40 durraween chant st')).toBe(3);
    expect(address('26 chant street', '9 oak avenue')).toBe(3);
    expect(address(null, '9 oak avenue')).toBe(NULL_LEVEL);
  });

  it('postcode: exact / one edit (including a transposition) / different / null', () => {
    expect(postcodeLevel('LS62QT', 'LS62QT')).toBe(0);
    expect(postcodeLevel('2673', '2763')).toBe(1);
    expect(postcodeLevel('2673', '2674')).toBe(1);
    expect(postcodeLevel('LS62QT', 'LS62Q')).toBe(1);
    expect(postcodeLevel('2673', '3762')).toBe(2);
    expect(postcodeLevel(null, '3762')).toBe(NULL_LEVEL);
  });

  it('birth date: exact / one component or day-month swap / within 31 days / age group equal / different / null', () => {
    expect(birth({ birthDate: '1980-03-07' }, { birthDate: '1980-03-07' })).toBe(0);
    expect(birth({ birthDate: '1980-03-07' }, { birthDate: '1980-03-17' })).toBe(1);
    expect(birth({ birthDate: '1980-03-07' }, { birthDate: '1908-03-07' })).toBe(1);
    expect(birth({ birthDate: '1980-03-07' }, { birthDate: '1980-07-03' })).toBe(1);
    expect(birth({ birthDate: '1980-01-31' }, { birthDate: '1980-02-03' })).toBe(2); // day and month differ
    expect(birth({ birthDate: '1979-12-20' }, { birthDate: '1980-01-20' })).toBe(2); // across a year end
    expect(birth({ birthDate: '1980-01-31' }, { birthDate: '1980-03-03' })).toBe(4); // 32 days
    expect(birth({ birthDate: '1980-03-07' }, { birthDate: '1981-04-07' })).toBe(4);
    expect(birth({ birthDate: '1980-03-07', ageGroup: '45-54' }, { ageGroup: '45-54' })).toBe(3);
    expect(birth({ ageGroup: '45-54' }, { ageGroup: '25-34' })).toBe(4);
    expect(birth({ birthDate: '1980-03-07' }, {})).toBe(NULL_LEVEL);
  });

  it('device and hashes: equal / different / null', () => {
    expect(equalityLevel('x', 'x')).toBe(0);
    expect(equalityLevel('x', 'y')).toBe(1);
    expect(equalityLevel('x', null)).toBe(NULL_LEVEL);
  });

  it('counts one location once: an agreeing address implies postcode and city, a disagreeing one still counts', () => {
    const home = { address: '12 High St', postcode: 'LS6 2QT', city: 'Leeds' };
    expect(describeVector(compareRecords(rec(home), rec(home)))).toMatchObject({
      address: 'exact',
      postcode: null,
      city: null,
    });
    expect(describeVector(compareRecords(rec(home), rec({ ...home, postcode: 'LS6 9ZZ' })))).toMatchObject({
      address: 'exact',
      postcode: 'different',
      city: null,
    });
    expect(describeVector(compareRecords(rec(home), rec({ ...home, address: null })))).toMatchObject({
      address: null,
      postcode: 'exact',
      city: null,
    });
    expect(describeVector(compareRecords(rec(home), rec({ ...home, address: null, postcode: null })))).toMatchObject({
      city: 'exact',
    });
  });

  it('remembers the levels of names and addresses per pair of values, and gives the levels it would compute', () => {
    const people: Partial<IdentityAttributes>[] = [
      { firstName: 'Catherine', lastName: 'Smith', address: '26 chant street durraween', city: 'Leeds' },
      { firstName: 'Cathrine', lastName: 'Smith', address: '26 durraween chant st', city: 'leeds' },
      { firstName: 'Smith', lastName: 'Catherine', address: '40 durraween chant st', city: 'Otley' },
      { firstName: 'C', lastName: 'Smyth', address: 'Flat 3, 26 Chant Street', city: 'Leeds' },
      { firstName: 'Jon', lastName: 'Smithers', address: '9 oak avenue', city: 'Leads' },
    ];
    // Computed first, by comparePrepared, which never remembers (only the resolver's path does): in this file nothing
    // has remembered a level yet, so these are the levels as computed.
    const expected = people.map((a) => people.map((b) => [...compareRecords(rec(a), rec(b))]));
    const vector = new Int8Array(ATTRIBUTES.length);
    for (let round = 0; round < 3; round++) {
      people.forEach((a, i) => {
        people.forEach((b, j) => {
          const got = [...comparePreparedInto(prepare(rec(a)), prepare(rec(b)), vector)];
          expect(got).toEqual(expected[i]?.[j]);
        });
      });
    }
  });
});
