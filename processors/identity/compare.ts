/**
 * Comparison levels of two identity records, per attribute: the γ vector of the Fellegi–Sunter model in model.ts.
 * Pure: no I/O.
 *
 * Every attribute has ordered levels, 0 = strongest agreement, the last = disagreement, plus {@link NULL_LEVEL} when
 * either side lacks the value (it then contributes weight 0: missing is not evidence). The thresholds are the usual
 * generic ones from the record-linkage literature (Jaro–Winkler 0.92 / 0.8, one edit, one date component), not tuned
 * to any dataset; how much each level is worth is learnt per dataset by EM (m and u in the model), never set here.
 *
 * Two things keep the sum of weights honest where attributes are not independent:
 * - Location is one fact at three precisions: when the address agrees (any agreeing level), agreement of postcode and
 *   city is implied and recorded as null; when the postcode agrees exactly, so is the city's. Disagreement always
 *   counts. Without this, two members of one household collect the address, postcode and city weights three times.
 * - First and last name are also compared crosswise, and the better orientation is used (names entered swapped).
 *
 * String comparators and phonetic keys come from libraries: Jaro–Winkler and Damerau–Levenshtein from `talisman`
 * (reference implementations; declarations in talisman.d.ts), Double Metaphone from `double-metaphone` (typed ESM).
 *
 * Derived values (compacted names, phonetic codes, address tokens, date parts) are computed once per record object by
 * {@link prepare} and cached in a WeakMap, so scoring a record against many candidates does not redo them. Names,
 * cities and addresses are also interned as {@link Term}s that remember the level they were found at against other
 * terms: the same few thousand names and the addresses of one household meet again and again (the messy benchmark
 * scores ~950,000 pairs), and a Jaro–Winkler of two strings is then computed once, not once per pair of records.
 */
import { doubleMetaphone } from 'double-metaphone';
import damerauLevenshtein from 'talisman/metrics/damerau-levenshtein.js';
import jaroWinkler from 'talisman/metrics/jaro-winkler.js';
import type { IdentityRecord } from './types.js';

/** The attributes compared, in the order of a comparison vector. */
export const ATTRIBUTES = [
  'firstName',
  'lastName',
  'address',
  'city',
  'postcode',
  'birthDate',
  'deviceFingerprint',
  'emailSha256',
  'phoneSha256',
] as const;
/** One compared attribute. */
export type Attribute = (typeof ATTRIBUTES)[number];

const NAME_LEVELS = ['exact', 'jw>=0.92', 'jw>=0.8|initial', 'different'] as const;
const EQUALITY_LEVELS = ['equal', 'different'] as const;

/** Level names per attribute, strongest agreement first; a level's index is its value in a comparison vector. */
export const LEVELS: Readonly<Record<Attribute, readonly string[]>> = {
  firstName: NAME_LEVELS,
  lastName: NAME_LEVELS,
  address: ['exact', 'jw>=0.9', 'token-overlap', 'different'],
  city: NAME_LEVELS,
  postcode: ['exact', 'one-edit', 'different'],
  birthDate: ['exact', 'one-component|day-month-swap', 'within-31-days', 'age-group-equal', 'different'],
  deviceFingerprint: EQUALITY_LEVELS,
  emailSha256: EQUALITY_LEVELS,
  phoneSha256: EQUALITY_LEVELS,
};

/** The level of an attribute that is missing on either side: no evidence either way. */
export const NULL_LEVEL = -1;
const ADDRESS_DIFFERENT = LEVELS.address.length - 1;

/** Index of each attribute in a comparison vector. */
export const ATTRIBUTE_INDEX: Readonly<Record<Attribute, number>> = Object.fromEntries(
  ATTRIBUTES.map((a, i) => [a, i]),
) as Record<Attribute, number>;

/** A record plus the derived values comparison and blocking need, computed once. */
export interface PreparedRecord {
  readonly record: IdentityRecord;
  /** Names without spaces: "mary ann" and "maryann", or an OCR-split "elk i", compare as written together. */
  readonly first: string | null;
  readonly last: string | null;
  /** Primary Double Metaphone code of the compacted name (the name itself when it has no consonant code). */
  readonly firstCode: string | null;
  readonly lastCode: string | null;
  /** Address tokens that contain a digit (house and flat numbers) and those that do not (street, locality). */
  readonly addressNumbers: readonly string[];
  readonly addressWords: readonly string[];
  /** Birth date parts [year, month, day] as written. */
  readonly birth: readonly [string, string, string] | null;
  /** The birth date as Date.UTC milliseconds (NaN when its parts are not numbers), for the within-31-days level. */
  readonly birthMs: number;
  /** The compacted first and last name and the city as name terms, the address as an address term. */
  readonly firstTerm: Term | null;
  readonly lastTerm: Term | null;
  readonly cityTerm: Term | null;
  readonly addressTerm: Term | null;
}

const preparedCache = new WeakMap<IdentityRecord, PreparedRecord>();

/**
 * An interned value (a name, a city, an address) with the comparison levels found so far against other terms of its
 * kind, by their ids. A level is a pure function of the two strings (nameLevel, addressLevel), so a remembered one is
 * the one that would be computed. Ids are never reused, so a term dropped from its table (see {@link TermTable}) stays
 * a valid, distinct memo key.
 */
export class Term {
  /** Levels against other terms (by id); belongs to memo generation {@link generation}. */
  levels: Map<number, number> | null = null;
  generation = -1;
  constructor(
    readonly value: string,
    readonly id: number,
  ) {}
}

/**
 * Past this many remembered levels (over all terms, ~40 bytes each) every memo is forgotten lazily: each term drops
 * its levels when it next remembers one. Interned values past TERMS_PER_TABLE start a new table.
 */
const MAX_REMEMBERED_LEVELS = 2_000_000;
const TERMS_PER_TABLE = 500_000;
let nextTermId = 0;
let memoGeneration = 0;
let rememberedLevels = 0;

class TermTable {
  private terms = new Map<string, Term>();
  /** The term of a value; null for none (or an empty string, which the comparators treat as none). */
  of(value: string | null): Term | null {
    if (value === null || value === '') return null;
    let term = this.terms.get(value);
    if (term === undefined) {
      if (this.terms.size >= TERMS_PER_TABLE) this.terms = new Map();
      term = new Term(value, nextTermId++);
      this.terms.set(value, term);
    }
    return term;
  }
}
/** First names, last names and cities: one table, since names are also compared crosswise and all by nameLevel. */
const nameTerms = new TermTable();
const addressTerms = new TermTable();

function recalled(a: Term, b: Term): number | undefined {
  return a.generation === memoGeneration ? a.levels?.get(b.id) : undefined;
}

function remember(a: Term, b: Term, level: number): number {
  if (rememberedLevels >= MAX_REMEMBERED_LEVELS) {
    memoGeneration++;
    rememberedLevels = 0;
  }
  if (a.generation !== memoGeneration || a.levels === null) {
    a.levels = new Map();
    a.generation = memoGeneration;
  }
  a.levels.set(b.id, level);
  rememberedLevels++;
  return level;
}

/** Phonetic key of a (compacted) name: primary Double Metaphone, falling back to the name for vowel-only names. */
export function phoneticCode(name: string): string {
  const [primary] = doubleMetaphone(name);
  return primary === '' ? name : primary;
}

/** The record's derived values (cached per record object). */
export function prepare(record: IdentityRecord): PreparedRecord {
  let p = preparedCache.get(record);
  if (p) return p;
  const first = record.firstName?.replace(/ /g, '') || null;
  const last = record.lastName?.replace(/ /g, '') || null;
  const tokens = record.address?.split(' ') ?? [];
  const birth = record.birthDate?.split('-');
  p = {
    record,
    first,
    last,
    firstCode: first ? phoneticCode(first) : null,
    lastCode: last ? phoneticCode(last) : null,
    addressNumbers: tokens.filter((t) => /\d/.test(t)),
    addressWords: tokens.filter((t) => !/\d/.test(t)),
    birth: birth?.length === 3 ? [birth[0] ?? '', birth[1] ?? '', birth[2] ?? ''] : null,
    birthMs: birth?.length === 3 ? Date.UTC(+(birth[0] ?? ''), +(birth[1] ?? '') - 1, +(birth[2] ?? '')) : NaN,
    firstTerm: nameTerms.of(first),
    lastTerm: nameTerms.of(last),
    cityTerm: nameTerms.of(record.city),
    addressTerm: addressTerms.of(record.address),
  };
  preparedCache.set(record, p);
  return p;
}

/**
 * Names (and city names): exact / Jaro–Winkler ≥ 0.92 (one typo in a longer name) / Jaro–Winkler ≥ 0.8 or one side
 * is the other's initial ("j" vs "james") / different.
 */
export function nameLevel(a: string | null, b: string | null): number {
  if (!a || !b) return NULL_LEVEL;
  if (a === b) return 0;
  const jw = jaroWinkler(a, b);
  if (jw >= 0.92) return 1;
  if (jw >= 0.8) return 2;
  // An initial agrees with the full name it abbreviates, and with nothing else.
  if ((a.length === 1 || b.length === 1) && a.charAt(0) === b.charAt(0)) return 2;
  return 3;
}

/** {@link nameLevel} of two name terms; remembered for the pair when `memo` (else only recalled). */
function termNameLevel(a: Term | null, b: Term | null, memo: boolean): number {
  if (a === null || b === null) return NULL_LEVEL;
  if (a === b) return 0;
  const known = recalled(a, b);
  if (known !== undefined) return known;
  const level = nameLevel(a.value, b.value);
  return memo ? remember(a, b, level) : level;
}

/**
 * Address: exact / Jaro–Winkler ≥ 0.9 / token overlap (house numbers agree where both have one, and at least half of
 * the shorter side's words appear in the other: a dropped locality line or flat, a reordered line) / different.
 */
export function addressLevel(a: PreparedRecord, b: PreparedRecord): number {
  const x = a.record.address;
  const y = b.record.address;
  if (!x || !y) return NULL_LEVEL;
  if (x === y) return 0;
  if (jaroWinkler(x, y) >= 0.9) return 1;
  const numbersAgree =
    a.addressNumbers.length === 0 || b.addressNumbers.length === 0 || overlap(a.addressNumbers, b.addressNumbers) > 0;
  const words = Math.min(a.addressWords.length, b.addressWords.length);
  if (numbersAgree && words > 0 && overlap(a.addressWords, b.addressWords) * 2 >= words) return 2;
  return 3;
}

/** {@link addressLevel} (it reads nothing but the two addresses), remembered as {@link termNameLevel}. */
function termAddressLevel(a: PreparedRecord, b: PreparedRecord, memo: boolean): number {
  const x = a.addressTerm;
  const y = b.addressTerm;
  if (x === null || y === null) return NULL_LEVEL;
  if (x === y) return 0;
  const known = recalled(x, y);
  if (known !== undefined) return known;
  const level = addressLevel(a, b);
  return memo ? remember(x, y, level) : level;
}

/** Number of distinct tokens of `a` that also occur in `b` (token lists are a handful long: a scan beats a Set). */
function overlap(a: readonly string[], b: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const t = a[i];
    if (t !== undefined && b.includes(t) && a.indexOf(t) === i) n++;
  }
  return n;
}

/** Postcode: exact / one edit (a substitution, insertion, deletion or adjacent transposition) / different. */
export function postcodeLevel(a: string | null, b: string | null): number {
  if (!a || !b) return NULL_LEVEL;
  if (a === b) return 0;
  return damerauLevenshtein.limited(1, a, b) <= 1 ? 1 : 2;
}

/**
 * Birth date: exact / one of year, month, day differs or day and month are swapped / within 31 days (a date moved by
 * days often changes day and month) / (without a date on both sides)
 * equal age groups / different dates or different age groups.
 */
export function birthLevel(a: PreparedRecord, b: PreparedRecord): number {
  const x = a.birth;
  const y = b.birth;
  if (x && y) {
    const [ya, ma, da] = x;
    const [yb, mb, db] = y;
    const differing = (ya === yb ? 0 : 1) + (ma === mb ? 0 : 1) + (da === db ? 0 : 1);
    if (differing === 0) return 0;
    if (differing === 1 || (ya === yb && ma === db && da === mb)) return 1;
    // A date misremembered or mistyped by days often changes both day and month (31 Jan vs 2 Feb).
    const days = Math.abs(a.birthMs - b.birthMs) / 86_400_000;
    return days <= 31 ? 2 : 4;
  }
  const ga = a.record.ageGroup;
  const gb = b.record.ageGroup;
  if (!ga || !gb) return NULL_LEVEL;
  return ga === gb ? 3 : 4;
}

/** Opaque values (hashes, device fingerprints): equal / different. */
export function equalityLevel(a: string | null, b: string | null): number {
  if (!a || !b) return NULL_LEVEL;
  return a === b ? 0 : 1;
}

/**
 * First and last name levels, also trying them swapped (a surname entered as the given name and vice versa): the
 * orientation that agrees better wins, and it must agree better on both names together.
 */
function nameLevels(a: PreparedRecord, b: PreparedRecord, v: Int8Array, memo: boolean): void {
  const first = termNameLevel(a.firstTerm, b.firstTerm, memo);
  const last = termNameLevel(a.lastTerm, b.lastTerm, memo);
  v[0] = first;
  v[1] = last;
  if (first <= 1 && last <= 1) return;
  if (first === NULL_LEVEL || last === NULL_LEVEL) return;
  // Swapped names share initials crosswise; checking that first skips two Jaro–Winkler calls for almost every pair.
  if (a.first?.charAt(0) !== b.last?.charAt(0) && a.last?.charAt(0) !== b.first?.charAt(0)) return;
  const crossFirst = termNameLevel(a.firstTerm, b.lastTerm, memo);
  const crossLast = termNameLevel(a.lastTerm, b.firstTerm, memo);
  if (crossFirst + crossLast < first + last) {
    v[0] = crossFirst;
    v[1] = crossLast;
  }
}

/** The comparison vector of two records: one level per attribute in {@link ATTRIBUTES} order. */
export function compareRecords(a: IdentityRecord, b: IdentityRecord): Int8Array {
  return comparePrepared(prepare(a), prepare(b));
}

/**
 * {@link compareRecords} on already prepared records. Levels are recalled but not remembered: EM training compares a
 * million random pairs that never meet again, where remembering cost more than it saved.
 */
export function comparePrepared(a: PreparedRecord, b: PreparedRecord): Int8Array {
  return levelsInto(a, b, new Int8Array(ATTRIBUTES.length), false);
}

/**
 * {@link comparePrepared} into a vector of the caller's (scoring many pairs allocates none), remembering the levels of
 * names and addresses for the next pair of the same values: the resolver's path. Returns `v`.
 */
export function comparePreparedInto(a: PreparedRecord, b: PreparedRecord, v: Int8Array): Int8Array {
  return levelsInto(a, b, v, true);
}

function levelsInto(a: PreparedRecord, b: PreparedRecord, v: Int8Array, memo: boolean): Int8Array {
  levelsButAddressInto(a, b, v, memo);
  return locateInto(termAddressLevel(a, b, memo), v);
}

/**
 * Every level of {@link comparePreparedInto} but the address's, which is left {@link NULL_LEVEL}, with city and
 * postcode as compared (not yet made null by an agreeing address): with {@link locateInto} and the address level it
 * is the whole vector. The resolver's bound on a pair's weight (model.ts weightBoundPreparedInto) tries the address
 * levels instead of comparing addresses, the one comparison that is rarely remembered (different people's addresses
 * meet once).
 */
export function levelsButAddressInto(a: PreparedRecord, b: PreparedRecord, v: Int8Array, memo: boolean): Int8Array {
  const ra = a.record;
  const rb = b.record;
  nameLevels(a, b, v, memo);
  v[2] = NULL_LEVEL;
  v[3] = termNameLevel(a.cityTerm, b.cityTerm, memo);
  v[4] = postcodeLevel(ra.postcode, rb.postcode);
  v[5] = birthLevel(a, b);
  v[6] = equalityLevel(ra.deviceFingerprint, rb.deviceFingerprint);
  v[7] = equalityLevel(ra.emailSha256, rb.emailSha256);
  v[8] = equalityLevel(ra.phoneSha256, rb.phoneSha256);
  return v;
}

/**
 * Puts the address level into a vector of {@link levelsButAddressInto} and makes city and postcode null where it
 * implies their agreement. Address, postcode and city describe one location at decreasing precision: once a finer one
 * agrees, agreement of a coarser one is implied, not new evidence (two people at one address always share its
 * postcode), so it is recorded as null instead of being counted twice. A coarser one that disagrees still counts
 * against the match. Returns `v`.
 */
export function locateInto(address: number, v: Int8Array): Int8Array {
  const addressAgrees = address !== NULL_LEVEL && address < ADDRESS_DIFFERENT;
  const city = v[3];
  const postcode = v[4];
  if ((addressAgrees || postcode === 0) && (city === 0 || city === 1)) v[3] = NULL_LEVEL;
  if (addressAgrees && postcode === 0) v[4] = NULL_LEVEL;
  v[2] = address;
  return v;
}

/** A comparison vector as `{ attribute: level name | null }`, for logs and the CLIs. */
export function describeVector(v: ArrayLike<number>): Record<Attribute, string | null> {
  return Object.fromEntries(
    ATTRIBUTES.map((attr, i) => {
      const level = v[i] ?? NULL_LEVEL;
      return [attr, level === NULL_LEVEL ? null : (LEVELS[attr][level] ?? null)];
    }),
  ) as Record<Attribute, string | null>;
}
