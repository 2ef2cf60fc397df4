/**
 * A messy person-record benchmark, reproducible from a seed: the kind of data FEBRL is not (no identifier, many
 * duplicates per person, households, common names). Pure: no I/O, no clock, no Math.random.
 *
 * What it makes (defaults in {@link MessyOptions}):
 * - `people` distinct persons, each written 3–21 times (skewed towards few copies, mean ≈ 10): `rec-<N>-org` and
 *   `rec-<N>-dup-<k>`, FEBRL's rec-id convention, so the evaluation knows the truth; rows are shuffled.
 * - Names from faker's English first-name and surname lists (pinned version), with a quarter of surnames and a fifth
 *   of first names drawn from short lists of very common ones, and `commonNameShare` of persons given one of five full
 *   names ("john smith" …): many distinct people share a name and only their address and birth date tell them apart.
 * - Households (`householdShare` of persons live with 1–3 others): same surname, street address, suburb and postcode,
 *   different first names and birth dates (a partner within a few years, children 20–40 years younger). They must
 *   not merge.
 * - Per copy, independently: a nickname or the formal name behind one (NICKNAMES), an initial, first and last name
 *   swapped, one typo (substitution, deletion, insertion, transposition) in a name, street or suburb, street type
 *   abbreviated, missing fields, a birth date moved by 1–30 days, a mistyped digit, day and month swapped, a
 *   made-up postcode, and (rarely) another address altogether: people move.
 * - No identifier: `soc_sec_id` is always empty.
 *
 * Optionally `brokenLines` rows carry a given name that starts with an unescaped double quote (`"bob" jr`), as
 * hand-edited exports do: a strict CSV parser rejects those lines, a tolerant reader reports them by line number.
 */
import { fakerEN, fakerEN_AU } from '@faker-js/faker';
import { seededRandom } from './model.js';

/** Options of {@link generateMessy}. */
export interface MessyOptions {
  /** Distinct persons. @default 5_000 */
  readonly people?: number;
  /** Seed of every random choice: the same seed and options give the same file. @default 1 */
  readonly seed?: number;
  /** Fewest and most records per person. @default [3, 21] */
  readonly copies?: readonly [min: number, max: number];
  /** Share of persons who live in a household with 1–3 others. @default 0.25 */
  readonly householdShare?: number;
  /** Share of persons given one of five very common full names. @default 0.03 */
  readonly commonNameShare?: number;
  /** Rows written with an unescaped leading double quote in the given name. @default 0 */
  readonly brokenLines?: number;
}

/** The columns of a FEBRL file, in order. */
export const FEBRL_COLUMNS = [
  'rec_id',
  'given_name',
  'surname',
  'street_number',
  'address_1',
  'address_2',
  'suburb',
  'postcode',
  'state',
  'date_of_birth',
  'soc_sec_id',
] as const;

/** One FEBRL-format row; empty strings are missing values. */
export type MessyRow = Record<(typeof FEBRL_COLUMNS)[number], string>;

/** A generated file's rows (shuffled) and what went into it. */
export interface MessyDataset {
  readonly rows: readonly MessyRow[];
  /** Rows whose given name starts with an unescaped quote (their 0-based indexes in `rows`). */
  readonly brokenRows: ReadonlySet<number>;
  readonly people: number;
  readonly households: number;
  /** Size of the largest true cluster. */
  readonly largestCluster: number;
}

/**
 * Nickname ↔ formal name, both directions used: a person registered as "william" appears as "bill" or "will", and one
 * registered as "bill" as "william". Common English forms only; a nickname may belong to two names ("alex").
 */
export const NICKNAMES: Readonly<Record<string, readonly string[]>> = {
  william: ['bill', 'will', 'billy', 'liam'],
  robert: ['bob', 'rob', 'bobby', 'bert'],
  richard: ['rick', 'dick', 'rich'],
  james: ['jim', 'jimmy', 'jamie'],
  john: ['jack', 'johnny'],
  joseph: ['joe', 'joey'],
  michael: ['mike', 'mick', 'mikey'],
  thomas: ['tom', 'tommy'],
  charles: ['charlie', 'chuck'],
  christopher: ['chris', 'kit'],
  daniel: ['dan', 'danny'],
  matthew: ['matt'],
  anthony: ['tony'],
  andrew: ['andy', 'drew'],
  edward: ['ed', 'eddie', 'ted', 'ned'],
  benjamin: ['ben', 'benny'],
  samuel: ['sam', 'sammy'],
  alexander: ['alex', 'sandy'],
  nicholas: ['nick', 'nicky'],
  jonathan: ['jon'],
  stephen: ['steve'],
  steven: ['steve'],
  timothy: ['tim'],
  peter: ['pete'],
  patrick: ['pat', 'paddy'],
  david: ['dave', 'davy'],
  henry: ['harry', 'hank'],
  lawrence: ['larry'],
  gregory: ['greg'],
  kenneth: ['ken', 'kenny'],
  ronald: ['ron', 'ronnie'],
  donald: ['don', 'donny'],
  raymond: ['ray'],
  elizabeth: ['liz', 'beth', 'betty', 'eliza', 'lizzie'],
  margaret: ['maggie', 'peggy', 'meg', 'marge'],
  katherine: ['kate', 'kathy', 'katie', 'kat'],
  catherine: ['cathy', 'kate', 'cat'],
  jennifer: ['jen', 'jenny'],
  jessica: ['jess', 'jessie'],
  rebecca: ['becky', 'becca'],
  susan: ['sue', 'susie'],
  patricia: ['pat', 'patty', 'trish'],
  deborah: ['deb', 'debbie'],
  victoria: ['vicky', 'tori'],
  christine: ['chris', 'chrissy'],
  alexandra: ['alex', 'sandra', 'lexi'],
  samantha: ['sam', 'sammy'],
  abigail: ['abby'],
  jacqueline: ['jackie'],
  kimberly: ['kim'],
  pamela: ['pam'],
  dorothy: ['dot', 'dottie'],
  barbara: ['barb', 'babs'],
  theresa: ['terry', 'tess'],
  mary: ['molly', 'polly', 'mae'],
  sarah: ['sally', 'sadie'],
  ann: ['annie', 'nan'],
  emily: ['em', 'emmy'],
  olivia: ['liv', 'livvy'],
  isabella: ['bella', 'izzy'],
};

const FORMAL_OF: ReadonlyMap<string, readonly string[]> = (() => {
  const m = new Map<string, string[]>();
  for (const [formal, nicks] of Object.entries(NICKNAMES))
    for (const n of nicks) m.set(n, [...(m.get(n) ?? []), formal]);
  return m;
})();

const COMMON_SURNAMES = [
  'smith',
  'jones',
  'williams',
  'brown',
  'taylor',
  'wilson',
  'johnson',
  'lee',
  'martin',
  'white',
  'anderson',
  'thompson',
  'nguyen',
  'walker',
  'harris',
];
const COMMON_FIRST = ['john', 'james', 'michael', 'david', 'robert', 'mary', 'sarah', 'jessica', 'emily', 'elizabeth'];
const COMMON_FULL: readonly (readonly [string, string])[] = [
  ['john', 'smith'],
  ['mary', 'jones'],
  ['david', 'brown'],
  ['sarah', 'williams'],
  ['michael', 'taylor'],
];
const STREET_TYPES: Readonly<Record<string, string>> = {
  street: 'st',
  road: 'rd',
  avenue: 'ave',
  drive: 'dr',
  place: 'pl',
  crescent: 'cres',
  court: 'ct',
  circuit: 'cct',
  parade: 'pde',
  lane: 'ln',
};
const STATES = ['nsw', 'vic', 'qld', 'wa', 'sa', 'tas', 'act', 'nt'];

const lower = (xs: readonly string[]) => [...new Set(xs.map((x) => x.toLowerCase().replace(/[^a-z ]/g, '')))];
const FIRST_NAMES = lower([
  ...(fakerEN.definitions.person.first_name.female ?? []),
  ...(fakerEN.definitions.person.first_name.male ?? []),
]).filter((n) => n.length > 1 && !n.includes(' '));
const SURNAMES = lower([
  ...(fakerEN.definitions.person.last_name.generic ?? []),
  ...(fakerEN_AU.definitions.person.last_name.generic ?? []),
]).filter((n) => n.length > 1 && !n.includes(' '));
const STREET_NAMES = SURNAMES;
const SUBURBS = lower(fakerEN_AU.definitions.location.city_name ?? []);

interface Person {
  readonly id: number;
  first: string;
  last: string;
  number: string;
  street: string;
  streetType: string;
  suburb: string;
  postcode: string;
  state: string;
  /** YYYYMMDD */
  birth: string;
}

type Random = () => number;
const pick = <T>(random: Random, xs: readonly T[]): T => {
  const x = xs[Math.floor(random() * xs.length)];
  if (x === undefined) throw new RangeError('pick from an empty list');
  return x;
};
const chance = (random: Random, p: number) => random() < p;
const int = (random: Random, min: number, max: number) => min + Math.floor(random() * (max - min + 1));

function birthDate(random: Random, fromYear: number, toYear: number): string {
  const start = Date.UTC(fromYear, 0, 1);
  const end = Date.UTC(toYear, 11, 31);
  return ymd(start + Math.floor(random() * ((end - start) / 86_400_000)) * 86_400_000);
}
const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
const msOf = (d: string) => Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)));

const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');
/** One keyboard-style typo: substitution, deletion, insertion or transposition of adjacent letters. */
export function typo(random: Random, word: string): string {
  if (word.length < 3) return word;
  const i = int(random, 1, word.length - 2); // the first letter is rarely wrong in practice
  switch (int(random, 0, 3)) {
    case 0:
      return word.slice(0, i) + pick(random, LETTERS) + word.slice(i + 1);
    case 1:
      return word.slice(0, i) + word.slice(i + 1);
    case 2:
      return word.slice(0, i) + pick(random, LETTERS) + word.slice(i);
    default:
      return word.slice(0, i) + (word[i + 1] ?? '') + (word[i] ?? '') + word.slice(i + 2);
  }
}

/** A birth date as a clerk might mistype or misremember it; always a real calendar date. */
function perturbBirth(random: Random, birth: string): string {
  const r = random();
  if (r < 0.45) return ymd(msOf(birth) + (chance(random, 0.5) ? 1 : -1) * int(random, 1, 30) * 86_400_000);
  if (r < 0.75) {
    // One digit of the month-day or the year's last two digits mistyped.
    for (let attempt = 0; attempt < 10; attempt++) {
      const i = pick(random, [2, 3, 4, 5, 6, 7]);
      const out = birth.slice(0, i) + String(int(random, 0, 9)) + birth.slice(i + 1);
      if (out !== birth && validYmd(out)) return out;
    }
    return birth;
  }
  if (r < 0.9) {
    const swapped = birth.slice(0, 4) + birth.slice(6, 8) + birth.slice(4, 6);
    return validYmd(swapped) ? swapped : birth;
  }
  return String(Number(birth.slice(0, 4)) + (chance(random, 0.5) ? 1 : -1)) + birth.slice(4);
}
function validYmd(d: string): boolean {
  if (!/^\d{8}$/.test(d)) return false;
  return ymd(msOf(d)) === d;
}

function firstVariant(random: Random, first: string): string {
  const nicks = NICKNAMES[first];
  const formal = FORMAL_OF.get(first);
  if (nicks && chance(random, 0.8)) return pick(random, nicks);
  if (formal) return pick(random, formal);
  return first;
}

function newAddress(
  random: Random,
  p: Pick<Person, 'number' | 'street' | 'streetType' | 'suburb' | 'postcode' | 'state'>,
) {
  p.number = String(int(random, 1, 250));
  p.street = pick(random, STREET_NAMES);
  p.streetType = pick(random, Object.keys(STREET_TYPES));
  p.suburb = pick(random, SUBURBS);
  p.postcode = String(int(random, 2000, 7999));
  p.state = pick(random, STATES);
}

/** One copy of a person as some platform recorded it. */
function messyCopy(random: Random, p: Person, recId: string, original: boolean): MessyRow {
  let first = p.first;
  let last = p.last;
  let number = p.number;
  let street = `${p.street} ${p.streetType}`;
  let suburb = p.suburb;
  let postcode = p.postcode;
  let birth = p.birth;
  let state = p.state;
  // The original is clean but still may lack fields; each duplicate adds errors independently.
  if (!original) {
    if (chance(random, 0.06)) {
      // Moved house (kept for this record only): the name and birth date must carry the link.
      const moved = { ...p };
      newAddress(random, moved);
      ({ number, suburb, postcode, state } = moved);
      street = `${moved.street} ${moved.streetType}`;
    }
    if (chance(random, 0.15)) first = firstVariant(random, first);
    if (chance(random, 0.12)) first = typo(random, first);
    if (chance(random, 0.12)) last = typo(random, last);
    if (chance(random, 0.05)) first = first.charAt(0);
    if (chance(random, 0.05)) [first, last] = [last, first];
    if (chance(random, 0.1)) street = typo(random, street);
    if (chance(random, 0.2)) street = street.replace(/\b(\w+)$/, (t) => STREET_TYPES[t] ?? t);
    if (chance(random, 0.08)) suburb = typo(random, suburb);
    if (chance(random, 0.1)) postcode = String(int(random, 2000, 7999));
    if (chance(random, 0.2)) birth = perturbBirth(random, birth);
    if (chance(random, 0.05)) number = String(Number(number) + int(random, 1, 3));
  }
  const keep = (value: string, pMissing: number) => (chance(random, pMissing) ? '' : value);
  return {
    rec_id: recId,
    given_name: keep(first, 0.04),
    surname: keep(last, 0.03),
    street_number: keep(number, 0.1),
    address_1: keep(street, 0.08),
    address_2: '',
    suburb: keep(suburb, 0.12),
    postcode: keep(postcode, 0.12),
    state: keep(state, 0.2),
    date_of_birth: keep(birth, 0.15),
    soc_sec_id: '',
  };
}

/** Copies of one person: 3 + 18·r^1.6 on [3, 21] gives a mean of about 10 and a long tail. */
function copiesOf(random: Random, [min, max]: readonly [number, number]): number {
  return min + Math.round((max - min) * random() ** 1.6);
}

/** Generates the benchmark (see the module comment). Deterministic in `options`. */
export function generateMessy(options: MessyOptions = {}): MessyDataset {
  const n = options.people ?? 5_000;
  const random = seededRandom(options.seed ?? 1);
  const householdShare = options.householdShare ?? 0.25;
  const commonShare = options.commonNameShare ?? 0.03;
  const copies = options.copies ?? [3, 21];
  if (copies[0] < 1 || copies[1] < copies[0]) throw new RangeError(`copies must be 1 ≤ min ≤ max: ${copies.join('–')}`);

  const people: Person[] = [];
  let households = 0;
  while (people.length < n) {
    const id = people.length;
    const common = chance(random, commonShare) ? pick(random, COMMON_FULL) : null;
    const head: Person = {
      id,
      first: common?.[0] ?? (chance(random, 0.2) ? pick(random, COMMON_FIRST) : pick(random, FIRST_NAMES)),
      last: common?.[1] ?? (chance(random, 0.25) ? pick(random, COMMON_SURNAMES) : pick(random, SURNAMES)),
      number: '',
      street: '',
      streetType: '',
      suburb: '',
      postcode: '',
      state: '',
      birth: birthDate(random, 1940, 2004),
    };
    newAddress(random, head);
    people.push(head);
    if (!chance(random, householdShare / 2)) continue; // a household of k holds k persons: about half the share heads one
    households++;
    const size = int(random, 1, 3);
    const headYear = Number(head.birth.slice(0, 4));
    const taken = new Set([head.first]);
    for (let k = 0; k < size && people.length < n; k++) {
      let first = pick(random, FIRST_NAMES);
      while (taken.has(first)) first = pick(random, FIRST_NAMES);
      taken.add(first);
      // The first other member is a partner of about the same age, the rest are children.
      const year = k === 0 ? headYear + int(random, -5, 5) : Math.min(2006, headYear + int(random, 20, 40));
      people.push({ ...head, id: people.length, first, birth: birthDate(random, year, year) });
    }
  }

  const rows: MessyRow[] = [];
  let largestCluster = 0;
  for (const p of people) {
    const k = copiesOf(random, copies);
    largestCluster = Math.max(largestCluster, k);
    rows.push(messyCopy(random, p, `rec-${p.id}-org`, true));
    for (let d = 0; d < k - 1; d++) rows.push(messyCopy(random, p, `rec-${p.id}-dup-${d}`, false));
  }
  // Fisher–Yates: a stream sees a person's records spread over time, in no particular order.
  for (let i = rows.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = rows[i];
    const b = rows[j];
    if (a && b) [rows[i], rows[j]] = [b, a];
  }
  const brokenRows = new Set<number>();
  const broken = Math.min(options.brokenLines ?? 0, rows.length);
  while (brokenRows.size < broken) brokenRows.add(Math.floor(random() * rows.length));
  return { rows, brokenRows, people: people.length, households, largestCluster };
}

/**
 * The dataset as FEBRL-style CSV text (header, `, ` separators as FEBRL writes them). Generated values hold only
 * lowercase letters, digits and spaces, so no field needs quoting; broken rows get `"<given name>" jr` unescaped.
 */
export function messyCsv(dataset: MessyDataset): string {
  const lines = [FEBRL_COLUMNS.join(', ')];
  dataset.rows.forEach((row, i) => {
    const values = FEBRL_COLUMNS.map((c) => row[c]);
    if (dataset.brokenRows.has(i)) values[1] = `"${row.given_name || 'x'}" jr`;
    lines.push(values.join(', '));
  });
  return `${lines.join('\n')}\n`;
}
