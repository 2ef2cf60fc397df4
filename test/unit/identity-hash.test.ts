import { describe, expect, it } from 'vitest';
import {
  ageGroupOf,
  hashIdentifier,
  hashIdentity,
  normalizeEmail,
  normalizePhone,
} from '../../processors/producers/identity-hash.js';

describe('identity hashing', () => {
  it('normalizes emails so the same mailbox hashes the same on every platform', () => {
    expect(normalizeEmail('  Ada.Lovelace+shop@Example.ORG ')).toBe('ada.lovelace@example.org');
    expect(normalizeEmail('not-an-email')).toBeNull();
    expect(normalizeEmail('@example.org')).toBeNull();
    expect(normalizeEmail('')).toBeNull();
  });

  it('normalizes phones to digits, international 00 prefix dropped', () => {
    expect(normalizePhone('+44 (0)20 7946-0958')).toBe('440207946' + '0958');
    expect(normalizePhone('0044 20 7946 0958')).toBe('4420' + '79460958');
    expect(normalizePhone('12-34')).toBeNull();
  });

  it('hashes with the salt, as 64 lowercase hex, and never ships the raw value', () => {
    const a = hashIdentity({ email: 'Ada@Example.org', phone: '+44 20 7946 0958', firstName: ' Ada ' }, 'salt-one-1');
    const b = hashIdentity({ email: 'ada@example.org' }, 'salt-one-1');
    const c = hashIdentity({ email: 'ada@example.org' }, 'salt-two-2');
    expect(a.emailSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(a.emailSha256).toBe(b.emailSha256);
    expect(a.emailSha256).not.toBe(c.emailSha256);
    expect(a.emailSha256).toBe(hashIdentifier('salt-one-1', 'ada@example.org'));
    expect(JSON.stringify(a)).not.toMatch(/example|7946/);
    expect(a.firstName).toBe('Ada');
    expect(a.lastName).toBeNull();
  });

  it('buckets ages', () => {
    const at = Date.UTC(2026, 0, 1);
    const groupAt = (age: number) => ageGroupOf(`${2026 - age - 1}-06-01`, at);
    expect([17, 18, 24, 25, 34, 35, 50, 64, 65].map(groupAt)).toEqual([
      'under-18',
      '18-24',
      '18-24',
      '25-34',
      '25-34',
      '35-44',
      '45-54',
      '55-64',
      '65+',
    ]);
    expect(ageGroupOf('1990-13-45', at)).toBeNull();
  });
});
