import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { describe, expect, it } from 'vitest';
import { blockingKeys, blockStats, candidateKeys, exactKeys, keyKind } from '../../processors/identity/blocking.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import type { IdentityRecord } from '../../processors/identity/types.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

type Fields = Omit<IdentityAttributes, 'emailSha256' | 'phoneSha256' | 'ageGroup'>;
const rec = (fields: Partial<IdentityAttributes>, id = 'x'): IdentityRecord =>
  toIdentityRecord('p', id, {
    ...NO_ATTRIBUTES,
    ...fields,
  });
const share = (a: IdentityRecord, b: IdentityRecord) => blockingKeys(a).some((k) => blockingKeys(b).includes(k));

const PEOPLE: Fields[] = [
  {
    firstName: 'Courtney',
    lastName: 'Painter',
    address: '12 Pinkerton Circuit, Bega Flats',
    city: 'Richlands',
    postcode: '4560',
    birthDate: '1916-12-14',
    deviceFingerprint: null,
  },
  {
    firstName: 'Mohammed',
    lastName: 'Okafor-Reilly',
    address: 'Flat 4, 221 Station Road',
    city: 'Milton Keynes',
    postcode: 'MK9 3BZ',
    birthDate: '1988-02-29',
    deviceFingerprint: 'dev-5c493ecdf84f1b3e',
  },
];

/** Ways a single field goes wrong: a typo in the middle, a dropped character, a swapped pair, or no value at all. */
function corruptions(value: string): (string | null)[] {
  const mid = Math.max(1, Math.floor(value.length / 2));
  const c = value.charAt(mid);
  return [
    value.slice(0, mid) + (c === 'x' ? 'q' : 'x') + value.slice(mid + 1),
    value.slice(0, mid) + value.slice(mid + 1),
    value.slice(0, mid - 1) + value.charAt(mid) + value.charAt(mid - 1) + value.slice(mid + 1),
    value.charAt(0) === 'Z' ? 'A' + value.slice(1) : 'Z' + value.slice(1),
    null,
  ];
}

describe('blocking keys', () => {
  it('keep hashed email and phone out of the fuzzy keys and in the exact ones', () => {
    const r = rec({ ...PEOPLE[0], emailSha256: 'e'.repeat(64), phoneSha256: 'f'.repeat(64) });
    expect(blockingKeys(r).some((k) => k.includes('e'.repeat(64)) || k.includes('f'.repeat(64)))).toBe(false);
    expect(exactKeys(r)).toEqual([`em:${'e'.repeat(64)}`, `ph:${'f'.repeat(64)}`]);
    expect(candidateKeys(r)).toEqual([...blockingKeys(r), ...exactKeys(r)]);
    expect(new Set(blockingKeys(r).map(keyKind))).toEqual(new Set(['ln', 'fp', 'bd', 'pa', 'ly', 'nm', 'st']));
  });

  it('still share a key when any single field is misspelt, mangled or missing', () => {
    for (const person of PEOPLE) {
      const original = rec(person, 'a');
      for (const field of Object.keys(person) as (keyof Fields)[]) {
        const value = person[field];
        if (!value) continue;
        for (const bad of corruptions(value)) {
          const changed = rec({ ...person, [field]: bad }, 'b');
          expect(share(original, changed), `${field}: ${value} → ${bad}`).toBe(true);
        }
      }
    }
  });

  it('still share a key when first and last name are swapped', () => {
    const person = PEOPLE[0]!;
    const swapped = rec({ ...person, firstName: person.lastName, lastName: person.firstName, postcode: null });
    expect(share(rec(person), swapped)).toBe(true);
  });

  it('do not put unrelated people together', () => {
    expect(share(rec(PEOPLE[0]!), rec(PEOPLE[1]!))).toBe(false);
  });

  it('report block sizes per key kind', () => {
    const records = [rec(PEOPLE[0]!, '1'), rec(PEOPLE[0]!, '2'), rec(PEOPLE[1]!, '3')];
    const stats = blockStats(records);
    const ln = stats.find((s) => s.kind === 'ln')!;
    expect(ln).toMatchObject({ blocks: 2, records: 3, maxSize: 2, pairs: 1 });
    expect(stats.find((s) => s.kind === 'all')!.records).toBe(3);
  });
});
