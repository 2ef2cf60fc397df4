/**
 * From wire attributes to the normalized {@link IdentityRecord} that blocking and comparison work on. Pure: no I/O.
 *
 * Normalization is deliberately shallow and language-neutral (case, accents, punctuation, spacing): anything smarter,
 * such as nickname tables or street-type abbreviations, would encode one country's conventions, and the fuzzy
 * comparators in compare.ts absorb what is left.
 */
import type { IdentityAttributes } from '../../schemas/generated/types.js';
import type { IdentityRecord } from './types.js';

// Combining marks left behind by NFKD ("é" → "e" + U+0301).
const COMBINING_MARKS = /\p{M}+/gu;
// Apostrophes join the parts of a name (o'brien → obrien, as most systems store it); every other non-alphanumeric
// character separates words (smith-jones → "smith jones", "12/3 high st." → "12 3 high st").
const APOSTROPHES = /['\u2019\u02bc`]/g;
const NOT_WORD = /[^\p{L}\p{N}]+/gu;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * Lowercases, folds accents (NFKD, combining marks dropped), removes punctuation and collapses whitespace; null when
 * nothing is left.
 */
export function normalizeText(value: string | null | undefined): string | null {
  if (value == null) return null;
  const text = value
    .normalize('NFKD')
    .replace(COMBINING_MARKS, '')
    .toLowerCase()
    .replace(APOSTROPHES, '')
    .replace(NOT_WORD, ' ')
    .trim();
  return text === '' ? null : text;
}

/** Uppercased with everything but letters and digits removed ("ls6 2qt" → "LS62QT"); null when nothing is left. */
export function normalizePostcode(value: string | null | undefined): string | null {
  if (value == null) return null;
  const code = value.normalize('NFKD').replace(COMBINING_MARKS, '').toUpperCase().replace(NOT_WORD, '');
  return code === '' ? null : code;
}

/** An ISO YYYY-MM-DD that is a real calendar date, else null (a broken date must not look like a disagreement). */
export function normalizeBirthDate(value: string | null | undefined): string | null {
  const m = ISO_DATE.exec(value?.trim() ?? '');
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  return `${m[1]}-${m[2]}-${m[3]}`;
}

/** Trimmed, null when blank; for opaque values (hashes, device fingerprints, age brackets) compared exactly. */
function opaque(value: string | null | undefined): string | null {
  const v = value?.trim();
  return v ? v : null;
}

/**
 * The normalized record of one platform identity. Email and phone hashes are kept as given: they were normalized
 * before hashing by the producers (identity-hash.ts), and re-normalizing a hash could only break equality.
 */
export function toIdentityRecord(
  platform: string,
  platformCustomerId: string,
  attrs: IdentityAttributes,
): IdentityRecord {
  return {
    key: `${platform}:${platformCustomerId}`,
    platform,
    emailSha256: opaque(attrs.emailSha256),
    phoneSha256: opaque(attrs.phoneSha256),
    firstName: normalizeText(attrs.firstName),
    lastName: normalizeText(attrs.lastName),
    address: normalizeText(attrs.address),
    city: normalizeText(attrs.city),
    postcode: normalizePostcode(attrs.postcode),
    birthDate: normalizeBirthDate(attrs.birthDate),
    ageGroup: opaque(attrs.ageGroup)?.toLowerCase() ?? null,
    deviceFingerprint: opaque(attrs.deviceFingerprint),
  };
}

/**
 * What is known after `next` arrives: per field the latest non-null value wins, so an event that omits a field (a
 * checkout without a birth date) does not erase what an earlier one told us. Key and platform come from `next`.
 */
export function mergeRecord(prev: IdentityRecord | undefined, next: IdentityRecord): IdentityRecord {
  if (!prev) return next;
  return {
    key: next.key,
    platform: next.platform,
    emailSha256: next.emailSha256 ?? prev.emailSha256,
    phoneSha256: next.phoneSha256 ?? prev.phoneSha256,
    firstName: next.firstName ?? prev.firstName,
    lastName: next.lastName ?? prev.lastName,
    address: next.address ?? prev.address,
    city: next.city ?? prev.city,
    postcode: next.postcode ?? prev.postcode,
    birthDate: next.birthDate ?? prev.birthDate,
    ageGroup: next.ageGroup ?? prev.ageGroup,
    deviceFingerprint: next.deviceFingerprint ?? prev.deviceFingerprint,
  };
}

/** True when every field is equal: the caller can skip re-blocking and re-scoring an unchanged identity. */
export function sameRecord(a: IdentityRecord, b: IdentityRecord): boolean {
  return (
    a.key === b.key &&
    a.platform === b.platform &&
    a.emailSha256 === b.emailSha256 &&
    a.phoneSha256 === b.phoneSha256 &&
    a.firstName === b.firstName &&
    a.lastName === b.lastName &&
    a.address === b.address &&
    a.city === b.city &&
    a.postcode === b.postcode &&
    a.birthDate === b.birthDate &&
    a.ageGroup === b.ageGroup &&
    a.deviceFingerprint === b.deviceFingerprint
  );
}
