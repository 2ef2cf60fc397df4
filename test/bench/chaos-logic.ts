/**
 * Pure parts of `npm run chaos` (no I/O): the seeded kill plan, and the comparison of a clean run with a chaos run of
 * the same events.
 *
 * Global customer ids are `c-<sequence>` in registration order, so two runs of the same events may name the same
 * customer differently. Customers are therefore matched by their identity cluster: the sorted platform identity keys
 * (`<platform>:<platformCustomerId>`) whose root is that id. A cluster present in one run only is an identity
 * difference, not a feature difference. Anonymous ids (`anon:…`, events without a platform customer id) are the same in
 * every run and stand for themselves.
 */
import type { FeatureName } from '../../processors/features/definitions.js';
import { seededRandom } from '../../processors/identity/model.js';

export interface PlannedKill<P extends string> {
  readonly part: P;
  /** When, as a share of the clean run's duration (ascending over the plan). */
  readonly at: number;
}

/** `kills` SIGKILLs of random parts at random moments between `from` and `to` of the clean run's duration. */
export function killPlan<P extends string>(
  seed: number,
  kills: number,
  parts: readonly P[],
  from = 0.05,
  to = 0.85,
): PlannedKill<P>[] {
  if (parts.length === 0) throw new RangeError('no parts to kill');
  const next = seededRandom(seed);
  const plan: PlannedKill<P>[] = [];
  for (let i = 0; i < kills; i++) {
    const part = parts[Math.floor(next() * parts.length)] as P;
    plan.push({ part, at: from + next() * (to - from) });
  }
  return plan.sort((x, y) => x.at - y.at);
}

/**
 * How many processes of each part a run starts (CHAOS_INSTANCES, e.g. `features=2,identity=2`; a part not named runs
 * one). Instances of a part share its consumer group, so they split its partitions and take over a killed one's.
 */
export function parseInstances<P extends string>(text: string | undefined, parts: readonly P[]): Map<P, number> {
  const counts = new Map<P, number>(parts.map((p) => [p, 1]));
  for (const entry of (text ?? '').split(',').map((e) => e.trim())) {
    if (entry === '') continue;
    const match = /^([a-z]+)=(\d+)$/.exec(entry);
    const part = match?.[1] as P | undefined;
    const count = Number(match?.[2]);
    if (!part || !parts.includes(part) || !Number.isSafeInteger(count) || count < 1 || count > 8) {
      throw new RangeError(`CHAOS_INSTANCES: "${entry}" is not <part>=<1..8> with a part among ${parts.join(', ')}`);
    }
    counts.set(part, count);
  }
  return counts;
}

/** One process of a part: `part` alone when the part runs one, else `part#1`, `part#2`, … */
export interface PartInstance<P extends string> {
  readonly name: string;
  readonly part: P;
}

/** Every instance of every part, in part order. */
export function instancesOf<P extends string>(counts: ReadonlyMap<P, number>): PartInstance<P>[] {
  const out: PartInstance<P>[] = [];
  for (const [part, count] of counts) {
    for (let i = 1; i <= count; i++) out.push({ name: count === 1 ? part : `${part}#${i}`, part });
  }
  return out;
}

/** The stack services `npm run chaos` can stop and start again during a replay (CHAOS_DEPENDENCIES). */
export const DEPENDENCIES = ['redis', 'kafka', 'clickhouse'] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

export interface PlannedOutage {
  readonly service: Dependency;
  /** Starts once the slowest part is this far through the replay (its share of the events committed). */
  readonly progress: number;
}

/** CHAOS_DEPENDENCIES (`redis,kafka,clickhouse`, in the order wanted) → the services, checked; '' or unset: none. */
export function parseDependencies(raw: string | undefined): Dependency[] {
  if (raw === undefined || raw.trim() === '') return [];
  const out: Dependency[] = [];
  for (const part of raw.split(',').map((s) => s.trim())) {
    if (!(DEPENDENCIES as readonly string[]).includes(part)) {
      throw new Error(`CHAOS_DEPENDENCIES: unknown service "${part}" (known: ${DEPENDENCIES.join(', ')})`);
    }
    out.push(part as Dependency);
  }
  return out;
}

/** One outage per service in the given order, spread evenly over the replay: at 1/(n+1), 2/(n+1), … of its progress. */
export function outagePlan(services: readonly Dependency[]): PlannedOutage[] {
  return services.map((service, i) => ({ service, progress: (i + 1) / (services.length + 1) }));
}

/** A Redis hash as HGETALL returns it. */
export type Hash = Readonly<Record<string, string>>;

/** What one run left in Redis, by the run's own global ids. */
export interface RunState {
  /** Identity key → root global id (the identity graph's `idc` hash); an anonymous id maps to itself. */
  readonly roots: ReadonlyMap<string, string>;
  /** Root global id → the ad server's features hash (absent: none). */
  readonly features: ReadonlyMap<string, Hash>;
  /** Root global id → the score hash (absent: none). */
  readonly scores: ReadonlyMap<string, Hash>;
  /** Root global id → newest intent_score row in the warehouse (absent: none). */
  readonly warehouseScores: ReadonlyMap<string, WarehouseScore>;
  /** Root global id → events its feature state holds as late (older than its stream's newest − grace; not applied). */
  readonly late?: ReadonlyMap<string, number>;
}

export interface WarehouseScore {
  readonly featureTimeMs: string;
  readonly intentScore: string;
}

/** Fields that depend on when a write happened, not on the events: left out of the comparison. */
export const IGNORED_FEATURE_FIELDS: ReadonlySet<string> = new Set(['updated_at_ms', 'state_version']);
export const IGNORED_SCORE_FIELDS: ReadonlySet<string> = new Set(['scored_at_ms']);

/**
 * Features that only grow with every event applied (counts and sums over the windows as of the newest event, and that
 * event's time): lower in the chaos run means events were lost, higher means some were applied twice.
 */
export const COUNT_FIELDS: readonly (FeatureName | 'feature_time_ms')[] = [
  'feature_time_ms',
  'orders_lifetime',
  'monetary_lifetime_minor',
  'frequency_7d',
  'frequency_30d',
  'frequency_90d',
  'monetary_7d_minor',
  'monetary_30d_minor',
  'monetary_90d_minor',
  'active_days_90d',
  'active_weeks_90d',
  'categories_90d',
  'sessions_30d',
  'views_1h',
  'views_24h',
  'views_7d',
  'searches_1h',
  'searches_24h',
  'searches_7d',
  'add_to_carts_1h',
  'add_to_carts_24h',
  'add_to_carts_7d',
];

/** A cluster's key: its identity keys, sorted (JSON, so no separator can be ambiguous). */
export function clusterKey(identityKeys: readonly string[]): string {
  return JSON.stringify([...identityKeys].sort());
}

/** Root global id → its cluster's key. */
export function clustersOf(roots: ReadonlyMap<string, string>): Map<string, string> {
  const members = new Map<string, string[]>();
  for (const [identity, root] of roots) {
    const list = members.get(root);
    if (list) list.push(identity);
    else members.set(root, [identity]);
  }
  const out = new Map<string, string>();
  for (const [root, keys] of members) out.set(root, clusterKey(keys));
  return out;
}

/** Fields whose values differ (a field missing on one side differs), minus `ignored`, sorted. */
export function differingFields(a: Hash | undefined, b: Hash | undefined, ignored: ReadonlySet<string>): string[] {
  const fields = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  const out: string[] = [];
  for (const f of fields) if (!ignored.has(f) && a?.[f] !== b?.[f]) out.push(f);
  return out.sort();
}

export type DifferenceKind = 'lost' | 'double-counted' | 'other';

/**
 * What a feature difference means: `lost` when some count is lower in the chaos run and none higher (or the chaos run
 * has no features at all), `double-counted` when some count is higher and none lower, `other` otherwise.
 */
export function classifyFeatureDifference(clean: Hash | undefined, chaos: Hash | undefined): DifferenceKind {
  if (clean && !chaos) return 'lost';
  if (chaos && !clean) return 'double-counted';
  let lower = 0;
  let higher = 0;
  for (const f of COUNT_FIELDS) {
    const x = Number(clean?.[f] ?? 0);
    const y = Number(chaos?.[f] ?? 0);
    if (y < x) lower++;
    else if (y > x) higher++;
  }
  if (lower > 0 && higher === 0) return 'lost';
  if (higher > 0 && lower === 0) return 'double-counted';
  return 'other';
}

export interface CustomerDifference {
  readonly cluster: string;
  readonly kind: DifferenceKind;
  readonly fields: readonly string[];
}

export interface RedisComparison {
  /** Clusters (customers) present in both runs, whose hashes were compared. */
  readonly customersCompared: number;
  /** Identities in the clean run's graph, and of those, missing from the chaos run's graph. */
  readonly identities: number;
  readonly identitiesMissing: number;
  /** Identities in the chaos run only. */
  readonly identitiesExtra: number;
  /** Clusters in one run only (the same identities grouped differently), per side. */
  readonly clustersOnlyClean: number;
  readonly clustersOnlyChaos: number;
  /** Field values compared (features and scores, ignored fields left out). */
  readonly featureFieldsCompared: number;
  readonly scoreFieldsCompared: number;
  readonly featureDifferences: number;
  readonly scoreDifferences: number;
  /** Newest warehouse score per customer (time and value) differs. */
  readonly warehouseScoreDifferences: number;
  readonly warehouseScoresCompared: number;
  /** Events held as late (not applied), summed over the compared customers, per run. */
  readonly lateClean: number;
  readonly lateChaos: number;
  /** Customers whose features differ and whose late count differs too (lateness, not a crash, may explain them). */
  readonly differencesWithLateMismatch: number;
  /** Customers whose features differ and whose cluster holds more than one identity (formed by merges). */
  readonly differencesInMergedClusters: number;
  /** Feature differences by kind. */
  readonly lostCustomers: number;
  readonly doubleCountedCustomers: number;
  readonly otherCustomers: number;
  /** The first few differences, for the report. */
  readonly examples: readonly CustomerDifference[];
  /** The first few clusters found in one run only, per side. */
  readonly clusterExamples: { readonly clean: readonly string[]; readonly chaos: readonly string[] };
}

const EXAMPLES = 5;

/** Compares every customer the two runs share (matched by cluster), and counts what cannot be matched. */
export function compareRedis(clean: RunState, chaos: RunState): RedisComparison {
  const cleanClusters = clustersOf(clean.roots);
  const chaosClusters = clustersOf(chaos.roots);
  const chaosRootOf = new Map<string, string>();
  for (const [root, key] of chaosClusters) chaosRootOf.set(key, root);
  let identitiesMissing = 0;
  for (const identity of clean.roots.keys()) if (!chaos.roots.has(identity)) identitiesMissing++;
  let identitiesExtra = 0;
  for (const identity of chaos.roots.keys()) if (!clean.roots.has(identity)) identitiesExtra++;
  const cleanKeys = new Set(cleanClusters.values());
  let clustersOnlyChaos = 0;
  const clusterExamples = { clean: [] as string[], chaos: [] as string[] };
  for (const key of chaosClusters.values()) {
    if (cleanKeys.has(key)) continue;
    clustersOnlyChaos++;
    if (clusterExamples.chaos.length < EXAMPLES) clusterExamples.chaos.push(key);
  }

  let customersCompared = 0;
  let clustersOnlyClean = 0;
  let featureFieldsCompared = 0;
  let scoreFieldsCompared = 0;
  let featureDifferences = 0;
  let scoreDifferences = 0;
  let warehouseScoreDifferences = 0;
  let warehouseScoresCompared = 0;
  let lateClean = 0;
  let lateChaos = 0;
  let differencesWithLateMismatch = 0;
  let differencesInMergedClusters = 0;
  const kinds: Record<DifferenceKind, number> = { lost: 0, 'double-counted': 0, other: 0 };
  const examples: CustomerDifference[] = [];
  const countFields = (a: Hash | undefined, b: Hash | undefined, ignored: ReadonlySet<string>) => {
    const fields = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
    let n = 0;
    for (const f of fields) if (!ignored.has(f)) n++;
    return n;
  };
  for (const [cleanRoot, key] of cleanClusters) {
    const chaosRoot = chaosRootOf.get(key);
    if (chaosRoot === undefined) {
      clustersOnlyClean++;
      if (clusterExamples.clean.length < EXAMPLES) clusterExamples.clean.push(key);
      continue;
    }
    customersCompared++;
    const late1 = clean.late?.get(cleanRoot) ?? 0;
    const late2 = chaos.late?.get(chaosRoot) ?? 0;
    lateClean += late1;
    lateChaos += late2;
    const f1 = clean.features.get(cleanRoot);
    const f2 = chaos.features.get(chaosRoot);
    featureFieldsCompared += countFields(f1, f2, IGNORED_FEATURE_FIELDS);
    const featureDiff = differingFields(f1, f2, IGNORED_FEATURE_FIELDS);
    if (featureDiff.length > 0) {
      featureDifferences++;
      const kind = classifyFeatureDifference(f1, f2);
      kinds[kind]++;
      if (late1 !== late2) differencesWithLateMismatch++;
      if ((JSON.parse(key) as string[]).length > 1) differencesInMergedClusters++;
      if (examples.length < EXAMPLES) examples.push({ cluster: key, kind, fields: featureDiff });
    }
    const s1 = clean.scores.get(cleanRoot);
    const s2 = chaos.scores.get(chaosRoot);
    scoreFieldsCompared += countFields(s1, s2, IGNORED_SCORE_FIELDS);
    if (differingFields(s1, s2, IGNORED_SCORE_FIELDS).length > 0) scoreDifferences++;
    const w1 = clean.warehouseScores.get(cleanRoot);
    const w2 = chaos.warehouseScores.get(chaosRoot);
    if (w1 || w2) {
      warehouseScoresCompared++;
      if (w1?.featureTimeMs !== w2?.featureTimeMs || w1?.intentScore !== w2?.intentScore) {
        warehouseScoreDifferences++;
      }
    }
  }
  return {
    customersCompared,
    identities: clean.roots.size,
    identitiesMissing,
    identitiesExtra,
    clustersOnlyClean,
    clustersOnlyChaos,
    featureFieldsCompared,
    scoreFieldsCompared,
    featureDifferences,
    scoreDifferences,
    warehouseScoreDifferences,
    warehouseScoresCompared,
    lateClean,
    lateChaos,
    differencesWithLateMismatch,
    differencesInMergedClusters,
    lostCustomers: kinds.lost,
    doubleCountedCustomers: kinds['double-counted'],
    otherCustomers: kinds.other,
    examples,
    clusterExamples,
  };
}

/** One warehouse table's counts in both runs. */
export interface TableCounts {
  readonly raw: number;
  readonly dedup: number;
}

export interface TableComparison {
  readonly clean: TableCounts;
  readonly chaos: TableCounts;
  /** Whether the deduplicated count is a function of the events alone (else it is reported, not judged). */
  readonly exact: boolean;
  /** Deduplicated rows the chaos run lacks, and has in excess (exact tables only). */
  readonly lost: number;
  readonly doubleCounted: number;
}

/** Judges an exact table by its deduplicated count: re-inserted rows the table collapses are not double counts. */
export function compareTable(clean: TableCounts, chaos: TableCounts, exact: boolean): TableComparison {
  const delta = chaos.dedup - clean.dedup;
  return {
    clean,
    chaos,
    exact,
    lost: exact ? Math.max(0, -delta) : 0,
    doubleCounted: exact ? Math.max(0, delta) : 0,
  };
}
