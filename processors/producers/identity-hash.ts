/**
 * Producer-side identity helpers: platforms call these so raw emails and phone numbers never reach Kafka. Every
 * platform must use the same normalization and the same salt (IDENTITY_HASH_SALT), or exact matching across platforms
 * fails silently; that is why the rules live here, in one place, and are unit-tested.
 */
import { createHash } from 'node:crypto';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

/**
 * Lowercases and trims; drops a `+tag` from the local part (user+shop@x.com and user@x.com reach one mailbox).
 * Returns null for anything that is not an address, so a junk value hashes to nothing instead of a false match.
 */
export function normalizeEmail(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const email = raw.trim().toLowerCase();
  const at = email.lastIndexOf('@');
  if (at <= 0 || at === email.length - 1 || /\s/.test(email)) return null;
  const local = email.slice(0, at).replace(/\+.*$/, '');
  return local ? `${local}@${email.slice(at + 1)}` : null;
}

/**
 * Keeps digits only; a leading `00` becomes the international form, a national leading `0` is kept as written (we do
 * not guess countries). Fewer than 6 digits is not a phone number: null.
 */
export function normalizePhone(raw: string | null | undefined): string | null {
  if (!raw) return null;
  let digits = raw.replace(/\D/g, '');
  if (digits.startsWith('00')) digits = digits.slice(2);
  return digits.length >= 6 ? digits : null;
}

/** sha256(salt + ':' + normalized) as 64 lowercase hex characters. */
export function hashIdentifier(salt: string, normalized: string): string {
  return createHash('sha256').update(`${salt}:${normalized}`).digest('hex');
}

/** Identity attributes as a platform holds them, before hashing. */
export interface RawIdentity {
  readonly email?: string | null;
  readonly phone?: string | null;
  readonly firstName?: string | null;
  readonly lastName?: string | null;
  readonly address?: string | null;
  readonly city?: string | null;
  readonly postcode?: string | null;
  readonly birthDate?: string | null;
  readonly ageGroup?: string | null;
  readonly deviceFingerprint?: string | null;
}

const clean = (v: string | null | undefined): string | null => {
  const t = v?.trim();
  return t ? t : null;
};

/** Turns raw attributes into the wire form: email and phone hashed, blanks as null, everything else as given. */
export function hashIdentity(raw: RawIdentity, salt: string): IdentityAttributes {
  const email = normalizeEmail(raw.email);
  const phone = normalizePhone(raw.phone);
  return {
    emailSha256: email ? hashIdentifier(salt, email) : null,
    phoneSha256: phone ? hashIdentifier(salt, phone) : null,
    firstName: clean(raw.firstName),
    lastName: clean(raw.lastName),
    address: clean(raw.address),
    city: clean(raw.city),
    postcode: clean(raw.postcode),
    birthDate: clean(raw.birthDate),
    ageGroup: clean(raw.ageGroup) ?? ageGroupOf(clean(raw.birthDate), null),
    deviceFingerprint: clean(raw.deviceFingerprint),
  };
}

/** The age bucket of an ISO birth date at a reference time (default: now); null when the date is unusable. */
export function ageGroupOf(birthDate: string | null, atMs: number | null): string | null {
  if (!birthDate || !/^\d{4}-\d{2}-\d{2}$/.test(birthDate)) return null;
  const born = Date.parse(`${birthDate}T00:00:00Z`);
  if (Number.isNaN(born)) return null;
  const age = Math.floor(((atMs ?? Date.now()) - born) / (365.2425 * 86_400_000));
  if (age < 0 || age > 120) return null;
  if (age < 18) return 'under-18';
  if (age >= 65) return '65+';
  const lower = age < 25 ? 18 : Math.floor(age / 10) * 10 + 5 - (age % 10 < 5 ? 10 : 0);
  return `${lower}-${lower + (lower === 18 ? 6 : 9)}`;
}
