/**
 * How the identity graph keeps personal data at rest: what the comparators read is sealed, what is only tested for
 * equality is a keyed hash. Both come from one secret, `IDENTITY_PII_KEY` (32 bytes), through HKDF-SHA256 subkeys.
 *
 * - Records (names, street address, city, postcode, birth date, age group, device fingerprint, the email and phone
 *   hashes): Jaro–Winkler, edit distance and date arithmetic need the normalized strings themselves, so the record is
 *   encrypted whole with AES-256-GCM and decrypted only in the resolver's process, for comparison. The identity key is
 *   the additional authenticated data: a sealed record copied onto another identity does not open.
 *   Stored form: `s1.<keyId>.<base64url(12-byte IV | ciphertext | 16-byte tag)>`.
 * - Blocking keys and the email/phone indexes: sets are only looked up by equality, so their names carry
 *   HMAC-SHA256(kind:value) truncated to 128 bits (base64url), after the key's non-personal kind (`ln:`, `bd:`, ...).
 *   Equal values still meet in one set; the names say nothing without the key.
 *
 * `keyId` (8 hex characters of an HMAC of a constant) names the key without revealing it: every sealed value and the
 * graph's format marker carry it, so a process with another key fails with a message naming both ids instead of
 * treating undecryptable records as unknown people.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomFillSync } from 'node:crypto';
import { DEV_IDENTITY_PII_KEY, type Config } from '../runtime/config.js';
import { AppError } from '../runtime/errors.js';
import type { IdentityRecord } from './types.js';

/** Version tag of sealed records: the first field of every stored value. */
export const SEALED_FORMAT = 's1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** HMAC bytes kept in set names: 128 bits, collisions out of reach for any realistic number of values. */
const MAC_BYTES = 16;
/**
 * Entries of the in-process cache of opened records before it is dropped whole. Candidate clusters are read again
 * while their block neighbours arrive, and AES-GCM plus JSON costs several times a JSON parse alone; a record opened
 * from the same sealed value is also the same object, so compare.ts's per-object preparation (names compacted,
 * phonetic codes) is reused too.
 */
const CACHE_ENTRIES = 50_000;
/**
 * Entries of the cache of set names (an HMAC each, ~5–15 µs). Blocking keys repeat across a person's records and
 * households: the messy benchmark's 48,713 records use 294,817 blocking keys, 83,872 distinct; at 50,000 entries the
 * cache was dropped before most repeats came back. ~150 bytes an entry.
 */
const NAME_CACHE_ENTRIES = 250_000;
/**
 * IVs are cut from a pool of CSPRNG bytes refilled every this many records: the same random IVs, without a
 * randomBytes call (and its Buffer) per record, which cost about a third of sealing one.
 */
const IVS_PER_FILL = 1024;
/** Characters of an IV in base64url (12 bytes, no padding): the start of a sealed value's payload. */
const IV_CHARS = 16;
/**
 * Entries of the cache of records by the name of their sealing ({@link PiiCodec.recordOfTag}): as many as the graph
 * cache holds member records (graph-cache.ts), ~120 bytes each besides the record, which the graph cache shares.
 */
const TAGGED_ENTRIES = 250_000;

/**
 * The 32 key bytes from 64 hex characters or base64 (44 characters with padding); throws naming the expected forms.
 * `openssl rand -hex 32` makes one.
 */
export function parsePiiKey(text: string): Buffer {
  const value = text.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(value)
    ? Buffer.from(value, 'hex')
    : /^[A-Za-z0-9+/_-]{43}=?$/.test(value)
      ? Buffer.from(value, 'base64')
      : null;
  if (!bytes || bytes.length !== 32) {
    throw new AppError(
      'CONFIG_INVALID',
      'IDENTITY_PII_KEY must be 32 bytes as 64 hex characters or base64 (e.g. `openssl rand -hex 32`)',
    );
  }
  return bytes;
}

/** Seals and opens identity records and derives the keyed hashes of set names. One per process and key. */
export class PiiCodec {
  /** Names the key (not secret): stored with every sealed value and in the graph's format marker. */
  readonly keyId: string;
  private readonly encKey: Buffer;
  private readonly macKey: Buffer;
  /** Sealed value → its identity key and record (the key is checked on a hit: the AAD binds the two). */
  private readonly opened = new Map<string, { readonly key: string; readonly record: IdentityRecord }>();
  private readonly names = new Map<string, string>();
  /** {@link tagOf} a sealed value → its identity key and record (those this process sealed or opened). */
  private readonly tagged = new Map<string, { readonly key: string; readonly record: IdentityRecord }>();
  private readonly ivPool = Buffer.alloc(IV_BYTES * IVS_PER_FILL);
  private ivAt = this.ivPool.length;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new AppError('CONFIG_INVALID', 'IDENTITY_PII_KEY must be 32 bytes');
    const derive = (info: string) => Buffer.from(hkdfSync('sha256', key, 'patternos identity graph', info, 32));
    this.encKey = derive('record encryption');
    this.macKey = derive('set name hmac');
    this.keyId = createHmac('sha256', derive('key id')).update('key id').digest('hex').slice(0, 8);
  }

  /** From the key as configured (hex or base64, see {@link parsePiiKey}). */
  static fromText(text: string): PiiCodec {
    return new PiiCodec(parsePiiKey(text));
  }

  /** From `IDENTITY_PII_KEY` (the development key unless set; config.ts refuses that in production). */
  static fromConfig(config: Pick<Config, 'IDENTITY_PII_KEY'>): PiiCodec {
    return PiiCodec.fromText(config.IDENTITY_PII_KEY.reveal());
  }

  /** True when this is the documented development key. */
  get isDevelopmentKey(): boolean {
    return this.keyId === developmentKeyId();
  }

  /**
   * The record as stored: AES-256-GCM over its JSON, bound to its identity key. `remember` (default) keeps it for
   * {@link openRecord} and {@link recordOfTag}; a caller that holds its records itself passes false.
   */
  sealRecord(record: IdentityRecord, remember = true): string {
    if (this.ivAt === this.ivPool.length) {
      randomFillSync(this.ivPool);
      this.ivAt = 0;
    }
    // Each IV is used once: the pool is refilled before any byte of it is cut twice.
    const iv = this.ivPool.subarray(this.ivAt, this.ivAt + IV_BYTES);
    this.ivAt += IV_BYTES;
    const cipher = createCipheriv('aes-256-gcm', this.encKey, iv);
    cipher.setAAD(Buffer.from(record.key, 'utf8'));
    const body = Buffer.concat([
      iv,
      cipher.update(JSON.stringify(record), 'utf8'),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    const sealed = `${SEALED_FORMAT}.${this.keyId}.${body.toString('base64url')}`;
    // Read back as written (the resolver reads the members it registered again and again): no decryption then. A value
    // altered in Redis is another string, which is decrypted and checked as ever.
    if (remember) this.remember(sealed, record.key, record);
    return sealed;
  }

  /**
   * The record of `identityKey` from its stored form. Throws (CONFIG_INVALID) on a value sealed with another key, on
   * one that does not authenticate (wrong key, altered value, or sealed for another identity), and on a plain-JSON
   * record of a graph written before sealing: each of those needs a person, never a guess.
   */
  openRecord(identityKey: string, stored: string): IdentityRecord {
    const hit = this.opened.get(stored);
    if (hit?.key === identityKey) return hit.record;
    const record = this.decrypt(identityKey, stored);
    this.remember(stored, identityKey, record);
    return record;
  }

  private remember(stored: string, identityKey: string, record: IdentityRecord): void {
    if (this.opened.size >= CACHE_ENTRIES) this.opened.clear();
    const entry = { key: identityKey, record };
    this.opened.set(stored, entry);
    if (this.tagged.size >= TAGGED_ENTRIES) this.tagged.clear();
    this.tagged.set(stored.slice(0, this.tagLength), entry);
  }

  /**
   * Length of a sealed value's tag: its first characters, `s1.<keyId>.` and the IV. The IV is 96 random bits drawn
   * for each sealing and never reused, so the tag names one sealed value: the graph can send it instead of the value
   * (~300 characters) when the reader already holds the record, which it does for every record it sealed or opened.
   */
  get tagLength(): number {
    return SEALED_FORMAT.length + 1 + this.keyId.length + 1 + IV_CHARS;
  }

  /**
   * The record of `identityKey` sealed in the value whose tag ({@link tagLength}) is `tag`, when this process sealed
   * or opened that value (and has not dropped it since); undefined otherwise: read the value whole then. A value
   * altered in Redis behind an unchanged tag is not noticed this way: the record returned is the one sealed.
   */
  recordOfTag(identityKey: string, tag: string): IdentityRecord | undefined {
    const hit = this.tagged.get(tag);
    return hit?.key === identityKey ? hit.record : undefined;
  }

  private decrypt(identityKey: string, stored: string): IdentityRecord {
    if (stored.startsWith('{')) {
      throw new AppError(
        'CONFIG_INVALID',
        `identity ${identityKey} is stored as plain JSON by an older version: migrate the graph ` +
          '(npm run identity:graph -- migrate) before running this version',
      );
    }
    const [format, keyId, payload, extra] = stored.split('.');
    if (format !== SEALED_FORMAT || keyId === undefined || payload === undefined || extra !== undefined) {
      throw new AppError('CONFIG_INVALID', `identity ${identityKey}: stored record is not in format ${SEALED_FORMAT}`);
    }
    if (keyId !== this.keyId) {
      throw new AppError(
        'CONFIG_INVALID',
        `identity ${identityKey} was sealed with key id ${keyId}, but IDENTITY_PII_KEY has key id ${this.keyId}: ` +
          'run with the key the graph was written with',
      );
    }
    const body = Buffer.from(payload, 'base64url');
    if (body.length < IV_BYTES + TAG_BYTES) {
      throw new AppError('CONFIG_INVALID', `identity ${identityKey}: sealed record is truncated`);
    }
    const decipher = createDecipheriv('aes-256-gcm', this.encKey, body.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(identityKey, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    let json: string;
    try {
      json =
        decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES), undefined, 'utf8') + decipher.final('utf8');
    } catch (err) {
      throw new AppError(
        'CONFIG_INVALID',
        `identity ${identityKey}: sealed record does not authenticate with key id ${this.keyId} ` +
          '(altered, or sealed for another identity)',
        { cause: err },
      );
    }
    const record = JSON.parse(json) as IdentityRecord;
    if (record.key !== identityKey) {
      throw new AppError('CONFIG_INVALID', `identity ${identityKey}: sealed record names identity ${record.key}`);
    }
    return record;
  }

  /**
   * The stored name of a blocking set: `<kind>:<mac>` for a `<kind>:<value>` key (the kind is the blocking key's
   * non-personal prefix, kept for block statistics and debugging), else `<mac>`.
   */
  blockName(logicalKey: string): string {
    let name = this.names.get(logicalKey);
    if (name === undefined) {
      const colon = logicalKey.indexOf(':');
      const kind = colon > 0 && colon <= 4 ? logicalKey.slice(0, colon + 1) : '';
      name = `${kind}${this.mac(logicalKey)}`;
      if (this.names.size >= NAME_CACHE_ENTRIES) this.names.clear();
      this.names.set(logicalKey, name);
    }
    return name;
  }

  /** The stored name of an email or phone index set: the keyed hash of the (already salted-SHA-256) value. */
  hashIndexName(kind: 'email' | 'phone', sha256: string): string {
    return this.mac(`${kind}:${sha256}`);
  }

  private mac(text: string): string {
    return createHmac('sha256', this.macKey).update(text, 'utf8').digest().subarray(0, MAC_BYTES).toString('base64url');
  }
}

let devKeyId: string | undefined;
function developmentKeyId(): string {
  devKeyId ??= PiiCodec.fromText(DEV_IDENTITY_PII_KEY).keyId;
  return devKeyId;
}
