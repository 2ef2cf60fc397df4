/**
 * Pure parts of erasure (no I/O): who is asked for, which warehouse rows hold the person, and the erasure log's record,
 * which carries no personal data. The shell is erase.ts; the CLI and the prediction API both call it.
 */
import { quoteIdentifier, quoteString } from '../runtime/clickhouse.js';
import { splitIdentityKey } from '../identity/logic.js';

/** Who to erase: a platform identity, or a global customer id (a root or a merged-away id). */
export type ErasureSubject =
  | { readonly kind: 'platform'; readonly platform: string; readonly platformCustomerId: string }
  | { readonly kind: 'global'; readonly globalId: string };

/** The person as found: every global id (root first) and every platform identity key (`<platform>:<id>`). */
export interface PersonIds {
  readonly globalIds: readonly string[];
  readonly identityKeys: readonly string[];
}

/** One warehouse deletion: the table and the condition its rows of the person meet. */
export interface WarehouseDeletion {
  readonly table: string;
  readonly where: string;
}

/** The identity key the graph and the raw topics use for a platform identity. */
export function identityKeyOf(platform: string, platformCustomerId: string): string {
  return `${platform}:${platformCustomerId}`;
}

/** Parses `--platform <p> --customer <id>` or `--global <gid>` (also `--customer-id`); throws a usage message. */
export function parseErasureArgs(argv: readonly string[]): { subject: ErasureSubject; wait: boolean } {
  const values = new Map<string, string>();
  let wait = true;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--no-wait') {
      wait = false;
      continue;
    }
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (!['--platform', '--customer', '--global'].includes(name)) {
      throw new Error(`unknown argument ${arg}`);
    }
    const value = inline ?? argv[++i];
    if (value === undefined || value.trim() === '') throw new Error(`${name} needs a value`);
    values.set(name, value.trim());
  }
  const platform = values.get('--platform');
  const customer = values.get('--customer');
  const globalId = values.get('--global');
  if (globalId !== undefined) {
    if (platform !== undefined || customer !== undefined) {
      throw new Error('give either --global <id> or --platform <p> --customer <id>, not both');
    }
    return { subject: { kind: 'global', globalId }, wait };
  }
  if (platform === undefined || customer === undefined) {
    throw new Error('usage: npm run erase -- --platform <platform> --customer <platform customer id> | --global <id>');
  }
  if (platform.includes(':')) throw new Error(`a platform name has no ':' (${platform})`);
  return { subject: { kind: 'platform', platform, platformCustomerId: customer }, wait };
}

const list = (values: readonly string[]) => values.map(quoteString).join(', ');

/**
 * The warehouse tables that hold people and the condition their rows of this person meet. Facts hold platform ids
 * (the raw events), dimensions and scores hold global ids, dead letters the original Kafka key (a platform identity
 * on raw topics, a global id on resolved ones). Tables of aggregates (cut points, model registry and monitoring,
 * products, categories, platforms) hold nobody. Every condition is plain `=`/`IN`/`OR`, which ClickHouse 18.16 runs.
 */
export function warehouseDeletions(person: PersonIds): WarehouseDeletion[] {
  const gids = person.globalIds.length > 0 ? list(person.globalIds) : null;
  const keys = person.identityKeys.length > 0 ? list(person.identityKeys) : null;
  const pairs = person.identityKeys.map((key) => {
    const { platform, platformCustomerId } = splitIdentityKey(key);
    return `(platform_id = ${quoteString(platform)} AND platform_customer_id = ${quoteString(platformCustomerId)})`;
  });
  const anyOf = (...conditions: (string | null)[]) => {
    const present = conditions.filter((c): c is string => c !== null);
    return present.length > 0 ? present.join(' OR ') : null;
  };
  const inGids = (column: string) => (gids ? `${column} IN (${gids})` : null);
  const inKeys = (column: string) => (keys ? `${column} IN (${keys})` : null);
  const byPlatformId = pairs.length > 0 ? pairs.join(' OR ') : null;
  const everyId = [...person.globalIds, ...person.identityKeys];
  const tables: [string, string | null][] = [
    ['dim_customer', anyOf(inGids('global_customer_id'), inGids('merged_into'))],
    ['dim_customer_identity', anyOf(inGids('global_customer_id'), inKeys('identity_id'), byPlatformId)],
    ['identity_merge', anyOf(inGids('survivor_id'), inGids('merged_id'))],
    [
      'identity_merge_rejected',
      anyOf(
        inKeys('identity_id'),
        inKeys('candidate_identity_id'),
        inGids('global_customer_id'),
        inGids('candidate_global_customer_id'),
      ),
    ],
    ['fact_transaction', byPlatformId],
    ['fact_transaction_line', byPlatformId],
    ['fact_event', byPlatformId],
    ['intent_score', inGids('global_customer_id')],
    ['feat_customer_rfm', inGids('global_customer_id')],
    [
      'fact_ad_decision',
      anyOf(inGids('global_customer_id'), everyId.length > 0 ? `requested_id IN (${list(everyId)})` : null),
    ],
    ['dead_letter', everyId.length > 0 ? `original_key IN (${list(everyId)})` : null],
  ];
  return tables.flatMap(([table, where]) => (where ? [{ table, where }] : []));
}

/** `ALTER TABLE … DELETE WHERE …`: a mutation, on 18.16 and current ClickHouse alike (asynchronous: wait for it). */
export function deletionStatement(database: string, d: WarehouseDeletion): string {
  return `ALTER TABLE ${quoteIdentifier(database)}.${quoteIdentifier(d.table)} DELETE WHERE ${d.where}`;
}

/** The text of a request the erasure log digests (with a secret: erase.ts `requestDigest`). */
export function requestText(subject: ErasureSubject): string {
  return subject.kind === 'platform'
    ? `platform\u0000${subject.platform}\u0000${subject.platformCustomerId}`
    : `global\u0000${subject.globalId}`;
}

/** What an erasure removed, by place; the erasure log keeps these counts and nothing that names the person. */
export interface ErasureCounts {
  readonly found: boolean;
  readonly globalIds: number;
  readonly identities: number;
  readonly graphIndexEntries: number;
  readonly redisKeys: number;
  readonly tombstones: number;
  readonly commands: number;
  /** Rows the warehouse held for the person before the deletions, by table. */
  readonly warehouseRows: Readonly<Record<string, number>>;
}

/** One row of `erasure_log`. */
export interface ErasureLogRow {
  readonly erasure_id: string;
  readonly request_digest: string;
  readonly subject_kind: string;
  readonly requested_at_ms: number;
  readonly finished_at_ms: number;
  readonly status: string;
  readonly counts_json: string;
}

export function erasureLogRow(
  erasureId: string,
  subject: ErasureSubject,
  requestDigest: string,
  times: { requestedAtMs: number; finishedAtMs: number },
  status: 'done' | 'not_found' | 'pending',
  counts: ErasureCounts,
): ErasureLogRow {
  return {
    erasure_id: erasureId,
    request_digest: requestDigest,
    subject_kind: subject.kind,
    requested_at_ms: times.requestedAtMs,
    finished_at_ms: times.finishedAtMs,
    status,
    counts_json: JSON.stringify(counts),
  };
}
