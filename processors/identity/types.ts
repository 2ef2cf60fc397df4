/**
 * Shared shapes of identity resolution. A platform identity (`<platform>:<platformCustomerId>`) belongs to exactly one
 * global customer at a time; global customers merge when evidence links them. Pure types, no I/O.
 */

/** What is known about one platform identity, normalized for comparison (latest non-null value per field wins). */
export interface IdentityRecord {
  /** `<platform>:<platformCustomerId>` */
  readonly key: string;
  readonly platform: string;
  readonly emailSha256: string | null;
  readonly phoneSha256: string | null;
  /** Lowercased, accents folded, punctuation removed, whitespace collapsed. */
  readonly firstName: string | null;
  readonly lastName: string | null;
  readonly address: string | null;
  readonly city: string | null;
  /** Uppercased, spaces removed. */
  readonly postcode: string | null;
  /** YYYY-MM-DD */
  readonly birthDate: string | null;
  readonly ageGroup: string | null;
  readonly deviceFingerprint: string | null;
}

/** How a link was made; the same names as the Avro MappingMethod enum. */
export type LinkMethod = 'NEW' | 'PLATFORM_ID' | 'EMAIL_HASH' | 'PHONE_HASH' | 'PROBABILISTIC' | 'MERGE';

/** A probabilistic comparison of two records. */
export interface MatchScore {
  /** Fellegi–Sunter match weight: sum over attributes of log2(m/u) of the observed comparison level. */
  readonly weight: number;
  /** Posterior match probability from the weight and the model's prior. */
  readonly probability: number;
  /** Strong contradicting evidence (e.g. different hashed emails and different birth dates): never merge on this. */
  readonly conflict: boolean;
}

/** Two global customers became one: `mergedId` is retired into `survivorId` (the older of the two). */
export interface MergeEntry {
  /** Deterministic from (survivorId, mergedId), so a re-emitted merge is recognisable downstream. */
  readonly mergeId: string;
  readonly survivorId: string;
  readonly mergedId: string;
  readonly method: LinkMethod;
  readonly confidence: number;
  readonly matchWeight: number | null;
  readonly sourceEventId: string;
  readonly eventTimeMs: number;
  /**
   * The identities that moved: the merged-away cluster's members at the merge. Only their global id changed, so only
   * they get new links (absent in entries written before this field existed: then every survivor member is re-linked).
   */
  readonly movedKeys?: readonly string[];
}
