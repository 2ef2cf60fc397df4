import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { describe, expect, it } from 'vitest';
import {
  mergeRecord,
  normalizeBirthDate,
  normalizePostcode,
  normalizeText,
  sameRecord,
  toIdentityRecord,
} from '../../processors/identity/record.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

const HASH = 'a'.repeat(64);
const attrs = (over: Partial<IdentityAttributes> = {}): IdentityAttributes => ({
  ...NO_ATTRIBUTES,
  ...over,
});

describe('identity record normalization', () => {
  it('lowercases, folds accents, drops apostrophes, splits on other punctuation and collapses spaces', () => {
    expect(normalizeText('  José  O’Brien-SMITH ')).toBe('jose obrien smith');
    expect(normalizeText('Flat 3, 12/B  High St.')).toBe('flat 3 12 b high st');
    expect(normalizeText('Ångström Crescent')).toBe('angstrom crescent');
    expect(normalizeText(' .,- ')).toBeNull();
    expect(normalizeText(null)).toBeNull();
  });

  it('uppercases postcodes and removes spaces and punctuation', () => {
    expect(normalizePostcode(' ls6 2qt ')).toBe('LS62QT');
    expect(normalizePostcode('SW1A-1AA')).toBe('SW1A1AA');
    expect(normalizePostcode('0800')).toBe('0800');
    expect(normalizePostcode('  ')).toBeNull();
  });

  it('keeps only real ISO calendar dates', () => {
    expect(normalizeBirthDate('1937-12-23')).toBe('1937-12-23');
    expect(normalizeBirthDate('1937-12-33')).toBeNull();
    expect(normalizeBirthDate('1900-02-29')).toBeNull();
    expect(normalizeBirthDate('19371223')).toBeNull();
  });

  it('builds the record: key, normalized text, hashes and device as given', () => {
    const r = toIdentityRecord(
      'shopwave',
      'SH-1',
      attrs({
        emailSha256: HASH,
        firstName: ' Zoë ',
        lastName: "D'Arcy",
        address: '12, High St.',
        city: 'London',
        postcode: 'e1 6an',
        birthDate: '1990-05-06',
        ageGroup: '35-44',
        deviceFingerprint: 'dev-ABC',
      }),
    );
    expect(r).toEqual({
      key: 'shopwave:SH-1',
      platform: 'shopwave',
      emailSha256: HASH,
      phoneSha256: null,
      firstName: 'zoe',
      lastName: 'darcy',
      address: '12 high st',
      city: 'london',
      postcode: 'E16AN',
      birthDate: '1990-05-06',
      ageGroup: '35-44',
      deviceFingerprint: 'dev-ABC',
    });
  });

  it('merges field by field: the latest non-null value wins', () => {
    const first = toIdentityRecord('p', '1', attrs({ firstName: 'Ann', city: 'York', emailSha256: HASH }));
    const next = toIdentityRecord('p', '1', attrs({ firstName: 'Anne', postcode: 'YO1 7HH' }));
    const merged = mergeRecord(first, next);
    expect(merged).toMatchObject({ firstName: 'anne', city: 'york', postcode: 'YO17HH', emailSha256: HASH });
    expect(mergeRecord(undefined, next)).toBe(next);
  });

  it('compares records field by field', () => {
    const a = toIdentityRecord('p', '1', attrs({ firstName: 'Ann' }));
    expect(sameRecord(a, toIdentityRecord('p', '1', attrs({ firstName: ' ANN ' })))).toBe(true);
    expect(sameRecord(a, toIdentityRecord('p', '1', attrs({ firstName: 'Anne' })))).toBe(false);
    expect(sameRecord(a, toIdentityRecord('p', '2', attrs({ firstName: 'Ann' })))).toBe(false);
  });
});
