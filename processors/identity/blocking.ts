/**
 * Blocking keys: which earlier records a new record is compared with at all. Pure: no I/O.
 *
 * Every key combines two attributes (or is one highly specific one), and the keys use disjoint attribute pairs where
 * possible, so a true match still shares at least one key when any single field is missing, misspelt or changed; an
 * incremental matcher has no second pass to rescue a pair blocking missed. Phonetic codes (Double Metaphone) absorb
 * most spelling variation in names; the other parts are exact, which keeps blocks small.
 *
 * {@link blockingKeys} holds the fuzzy keys; hashed email and phone are exact identifiers that the identity graph
 * indexes on its own (a shared hash is a link candidate with no other agreement needed), so they are returned
 * separately by {@link exactKeys}. {@link candidateKeys} is both, for the offline simulator and EM training.
 */
import { phoneticCode, prepare, type PreparedRecord } from './compare.js';
import type { IdentityRecord } from './types.js';

/** Key prefixes: the kind of each key, for block statistics and debugging. */
export const KEY_KINDS = {
  /** phonetic(last name) + first initial + first character of the postcode */
  ln: 'phonetic(last)+first initial+postcode region',
  /** phonetic(first name) + postcode */
  fp: 'phonetic(first)+postcode',
  /** full birth date */
  bd: 'birth date',
  /** postcode + house number */
  pa: 'postcode+house number',
  /** last name + birth year */
  ly: 'last name+birth year',
  /** phonetic(first) + phonetic(last), order-free (so swapped names still meet) */
  nm: 'phonetic(first)+phonetic(last)',
  /** house number + phonetic(first street word) + first character of the postcode */
  st: 'house number+phonetic(street)+postcode region',
  /** device fingerprint */
  dv: 'device fingerprint',
  /** hashed email (exact index) */
  em: 'email hash',
  /** hashed phone (exact index) */
  ph: 'phone hash',
} as const;
/** One kind of key. */
export type KeyKind = keyof typeof KEY_KINDS;

/** The kind of a key produced here ('ln', 'fp', ...). */
export function keyKind(key: string): KeyKind {
  return key.slice(0, key.indexOf(':')) as KeyKind;
}

function streetCode(p: PreparedRecord): string | null {
  // The first word after the house number is the street name proper; later words (street type, locality) are often
  // abbreviated or dropped. Phonetic, so one typo in it usually keeps the key.
  const word = p.addressWords[0];
  return word === undefined ? null : phoneticCode(word);
}

/**
 * The fuzzy blocking keys of a record (email and phone hashes excluded, see {@link exactKeys}). Keys are
 * `<kind>:<value>` strings; two records are candidates when they share one.
 */
export function blockingKeys(r: IdentityRecord): string[] {
  const p = prepare(r);
  const keys: string[] = [];
  const initial = p.first?.charAt(0) ?? '';
  const year = p.birth?.[0];
  const number = p.addressNumbers[0];
  const region = r.postcode?.charAt(0) ?? '';
  // Common surnames make big blocks; the postcode's first character (a region almost everywhere) splits them by area.
  if (p.lastCode) keys.push(`ln:${p.lastCode}|${initial}|${region}`);
  if (p.firstCode && r.postcode) keys.push(`fp:${p.firstCode}|${r.postcode}`);
  if (r.birthDate) keys.push(`bd:${r.birthDate}`);
  if (r.postcode && number) keys.push(`pa:${r.postcode}|${number}`);
  if (p.last && year) keys.push(`ly:${p.last}|${year}`);
  if (p.firstCode && p.lastCode) {
    const [x, y] = p.firstCode < p.lastCode ? [p.firstCode, p.lastCode] : [p.lastCode, p.firstCode];
    keys.push(`nm:${x}|${y}`);
  }
  const street = streetCode(p);
  // The region keeps "1 High Street" of every town apart; a typo later in the postcode or another spelling of the city
  // still finds the street.
  if (number && street) keys.push(`st:${number}|${street}|${region}`);
  if (r.deviceFingerprint) keys.push(`dv:${r.deviceFingerprint}`);
  return keys;
}

/** Exact identifier keys (hashed email, hashed phone): a shared one makes two records candidates on its own. */
export function exactKeys(r: IdentityRecord): string[] {
  const keys: string[] = [];
  if (r.emailSha256) keys.push(`em:${r.emailSha256}`);
  if (r.phoneSha256) keys.push(`ph:${r.phoneSha256}`);
  return keys;
}

/** Every key under which a record is indexed: {@link blockingKeys} then {@link exactKeys}. */
export function candidateKeys(r: IdentityRecord): string[] {
  return [...blockingKeys(r), ...exactKeys(r)];
}

/** Size distribution of the blocks of one key kind. */
export interface BlockStats {
  readonly kind: KeyKind | 'all';
  /** Distinct keys. */
  readonly blocks: number;
  /** Records with at least one key of this kind. */
  readonly records: number;
  readonly meanSize: number;
  readonly p99Size: number;
  readonly maxSize: number;
  /** Σ size·(size−1)/2: comparisons a batch matcher would make for this kind. */
  readonly pairs: number;
}

/** Block-size statistics per key kind and overall (for reports; blocks are counted over all given records). */
export function blockStats(records: readonly IdentityRecord[]): BlockStats[] {
  const blocks = new Map<string, number>();
  const recordsPerKind = new Map<KeyKind, number>();
  for (const r of records) {
    const kinds = new Set<KeyKind>();
    for (const key of candidateKeys(r)) {
      blocks.set(key, (blocks.get(key) ?? 0) + 1);
      kinds.add(keyKind(key));
    }
    for (const kind of kinds) recordsPerKind.set(kind, (recordsPerKind.get(kind) ?? 0) + 1);
  }
  const sizesByKind = new Map<KeyKind | 'all', number[]>([['all', []]]);
  for (const [key, size] of blocks) {
    const kind = keyKind(key);
    const list = sizesByKind.get(kind) ?? [];
    list.push(size);
    sizesByKind.set(kind, list);
    sizesByKind.get('all')?.push(size);
  }
  const stats: BlockStats[] = [];
  for (const [kind, sizes] of sizesByKind) {
    if (sizes.length === 0) continue;
    sizes.sort((a, b) => a - b);
    stats.push({
      kind,
      blocks: sizes.length,
      records: kind === 'all' ? records.length : (recordsPerKind.get(kind) ?? 0),
      meanSize: sizes.reduce((s, x) => s + x, 0) / sizes.length,
      p99Size: sizes[Math.min(sizes.length - 1, Math.floor(sizes.length * 0.99))] ?? 0,
      maxSize: sizes[sizes.length - 1] ?? 0,
      pairs: sizes.reduce((s, x) => s + (x * (x - 1)) / 2, 0),
    });
  }
  return stats;
}
