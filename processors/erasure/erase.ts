/**
 * Erasure of one person everywhere (`npm run erase`, `POST /erasure` on the prediction API). The person is the whole
 * merged cluster: every platform identity and every global id under its root. In order:
 *
 * 1. Identity graph: one checked script removes the cluster (identities, records, retired ids, unpublished merges,
 *    watermarks) after a SCAN sweep of every index set; a later event of one of the identities starts a new customer.
 * 2. Kafka: one command per global id on customer.erasures.v1 (the feature-state owner drops the customer from memory,
 *    deletes its keys under the epoch fence and tombstones its score; resolvers clear their root caches), tombstones on
 *    the compacted topics (identity.links.v1 per identity, customer.scores.v1 per global id).
 * 3. Redis: the feature state, features and score hashes and rescoring-index entries of every global id (again after
 *    the waits, in case a flush of state held in memory landed in between).
 * 4. Waits (unless `wait: false`) until the feature processor has committed past the commands and the warehouse sink
 *    past everything produced before the erasure, so no row of the person lands after the deletions.
 * 5. ClickHouse: one `ALTER TABLE … DELETE` mutation per table holding people, waited for in system.mutations.
 * 6. The commands themselves are deleted from their topic (DeleteRecords up to the feature processor's commit).
 * 7. One `erasure_log` row: a keyed digest of the request, times, status and counts; nothing that names the person.
 *
 * Raw and resolved delete-policy topics are not rewritten: their records age out within the catalog's retention bound
 * (ERASURE_BOUND_MS, 30 days; README "Erasure"). A replay of those topics within that time would bring the person back.
 */
import { createHmac, randomUUID } from 'node:crypto';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Redis } from 'ioredis';
import type { Admin, Kafka, RecordMetadata } from 'kafkajs';
import type { CustomerErasure } from '../../schemas/generated/types.js';
import type { TopicCatalog, TopicSpec } from '../../topics/catalog.js';
import { PROCESSOR as FEATURES } from '../features/processor.js';
import { FeatureStore } from '../features/store.js';
import { IdentityGraph } from '../identity/graph-store.js';
import { quoteIdentifier, quoteString } from '../runtime/clickhouse.js';
import type { Config } from '../runtime/config.js';
import { createIdempotentProducer } from '../runtime/kafka.js';
import type { Logger } from '../runtime/log.js';
import type { EventSerde } from '../runtime/serde.js';
import { PROCESSOR as SINK, sinkInputs } from '../warehouse-sink/processor.js';
import {
  deletionStatement,
  erasureLogRow,
  identityKeyOf,
  requestText,
  warehouseDeletions,
  type ErasureCounts,
  type ErasureSubject,
  type PersonIds,
} from './logic.js';

export interface ErasureDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly serde: EventSerde;
  readonly topics: TopicCatalog;
  readonly redis: Redis;
  /** Bound to the warehouse database (`config.CLICKHOUSE_DATABASE`). */
  readonly clickhouse: ClickHouseClient;
  readonly log: Logger;
}

export interface ErasureOptions {
  /** Wait for the processors and the warehouse mutations before answering. @default true */
  readonly wait?: boolean;
  /** How long each wait may take before the erasure is reported as pending. @default 120_000 */
  readonly timeoutMs?: number;
}

export interface ErasureReport {
  readonly erasureId: string;
  /** done: removed everywhere; not_found: nothing held the person; pending: a wait timed out (see `pending`). */
  readonly status: 'done' | 'not_found' | 'pending';
  readonly counts: ErasureCounts;
  /** What is not finished yet, in words (a processor not running, a mutation still running). */
  readonly pending: readonly string[];
}

const POLL_MS = 250;

export async function erasePerson(
  deps: ErasureDeps,
  subject: ErasureSubject,
  options: ErasureOptions = {},
): Promise<ErasureReport> {
  const { config, topics, redis, log } = deps;
  const wait = options.wait ?? true;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const erasureId = randomUUID();
  const requestedAtMs = Date.now();
  const pending: string[] = [];
  const graph = IdentityGraph.open(redis, {
    prefix: config.TOPIC_PREFIX,
    maxClusterSize: config.IDENTITY_MAX_CLUSTER_SIZE,
  });
  const store = new FeatureStore(redis, {
    prefix: config.TOPIC_PREFIX,
    stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
    featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
    scoresTtlSeconds: config.SCORES_TTL_SECONDS,
  });

  // 1. The graph: who the person is, and their removal from it.
  const askedKey = subject.kind === 'platform' ? identityKeyOf(subject.platform, subject.platformCustomerId) : null;
  const root =
    subject.kind === 'platform'
      ? ((await graph.globalIdOf([askedKey as string])).get(askedKey as string) ?? null)
      : ((await graph.rootOf([subject.globalId])).get(subject.globalId) ?? null);
  const erased = root ? await graph.erase(root, [topics.transactionsRaw.name, topics.clicksRaw.name]) : null;
  const globalIds = new Set<string>(erased?.globalIds ?? (subject.kind === 'global' ? [subject.globalId] : []));
  const identityKeys = new Set<string>([...(erased?.identityKeys ?? []), ...(askedKey ? [askedKey] : [])]);
  // Ids the feature state absorbed by merges (the graph knows them too, unless it lost them): erase those as well.
  for (const stored of (await store.fetch([...globalIds])).values()) {
    for (const id of stored.absorbed) globalIds.add(id);
  }
  const person: PersonIds = { globalIds: [...globalIds], identityKeys: [...identityKeys].sort() };

  // 2. Kafka: commands to the processors and tombstones on the compacted topics.
  const producer = createIdempotentProducer(deps.kafka); // the partitioner every processor uses: same key, same partition
  await producer.connect();
  let commandOffsets: RecordMetadata[] = [];
  try {
    const commands = await Promise.all(
      person.globalIds.map(async (customerId) => {
        const command: CustomerErasure = {
          eventId: `${erasureId}|${customerId}`,
          eventTimeMs: requestedAtMs,
          erasureId,
          customerId,
        };
        return { key: customerId, value: await deps.serde.encode(topics.customerErasures, command) };
      }),
    );
    if (commands.length > 0) {
      commandOffsets = await producer.send({ topic: topics.customerErasures.name, acks: -1, messages: commands });
    }
    const tombstones = [
      { topic: topics.identityLinks.name, messages: person.identityKeys.map((key) => ({ key, value: null })) },
      { topic: topics.customerScores.name, messages: person.globalIds.map((key) => ({ key, value: null })) },
    ].filter((t) => t.messages.length > 0);
    if (tombstones.length > 0) await producer.sendBatch({ acks: -1, topicMessages: tombstones });
  } finally {
    await producer.disconnect();
  }
  const tombstoneCount = person.identityKeys.length + person.globalIds.length;

  // 3. Redis: the customer keys (the owner deletes them again when it handles the command).
  const partitions = config.KAFKA_PARTITIONS;
  let redisKeys = await store.eraseCustomers(person.globalIds, partitions);

  // 4. Waits: the feature processor past the commands, the sink past everything produced before now.
  const featureGroup = `${config.TOPIC_PREFIX}${FEATURES}`;
  const commandTargets = commandOffsets.map((m) => ({
    topic: m.topicName,
    partition: m.partition,
    offset: BigInt(m.baseOffset ?? '0') + 1n,
  }));
  const sinkGroup = `${config.TOPIC_PREFIX}${SINK}`;
  // What the sink must have read past before rows are deleted.
  const sinkTargets = await endOffsets(deps.admin, sinkInputs(topics));
  if (wait && commandTargets.length > 0) {
    const reached = await waitCommitted(deps.admin, featureGroup, commandTargets, timeoutMs);
    if (reached === 'timeout') pending.push('the feature processor has not yet handled the erasure commands');
    if (reached === 'no-group') log.info('no feature processor has consumed yet: nothing of the person in memory');
  }
  if (wait) {
    const reached = await waitCommitted(deps.admin, sinkGroup, sinkTargets, timeoutMs);
    if (reached === 'timeout') pending.push('the warehouse sink has not yet caught up with the erasure');
  }
  redisKeys += await store.eraseCustomers(person.globalIds, partitions);

  // 5. The warehouse.
  const database = config.CLICKHOUSE_DATABASE;
  const deletions = warehouseDeletions(person);
  const warehouseRows: Record<string, number> = {};
  const existing = new Set(await listTables(deps.clickhouse, database));
  const started: string[] = [];
  for (const d of deletions) {
    if (!existing.has(d.table)) continue;
    const rows = await queryNumber(
      deps.clickhouse,
      `SELECT count() AS n FROM ${quoteIdentifier(d.table)} WHERE ${d.where}`,
    );
    warehouseRows[d.table] = rows;
    if (rows === 0) continue;
    await deps.clickhouse.command({ query: deletionStatement(database, d) });
    started.push(d.table);
  }
  if (wait && started.length > 0 && !(await waitMutations(deps.clickhouse, database, started, timeoutMs))) {
    pending.push(`warehouse deletions still running on ${started.join(', ')}`);
  }

  // 6. The commands leave their topic once the feature processor committed past them.
  if (commandTargets.length > 0) await deleteHandledCommands(deps.admin, featureGroup, topics.customerErasures);

  // 7. The log.
  const counts: ErasureCounts = {
    found: erased !== null || redisKeys > 0 || Object.values(warehouseRows).some((n) => n > 0),
    globalIds: person.globalIds.length,
    identities: person.identityKeys.length,
    graphIndexEntries: erased?.removed.indexEntries ?? 0,
    redisKeys,
    tombstones: tombstoneCount,
    commands: commandOffsets.length > 0 ? person.globalIds.length : 0,
    warehouseRows,
  };
  const status = pending.length > 0 ? 'pending' : counts.found ? 'done' : 'not_found';
  const row = erasureLogRow(
    erasureId,
    subject,
    requestDigest(subject, config.IDENTITY_HASH_SALT.reveal()),
    { requestedAtMs, finishedAtMs: Date.now() },
    status,
    counts,
  );
  if (existing.has('erasure_log')) {
    await deps.clickhouse.insert({
      table: 'erasure_log',
      values: [{ ...row, requested_at: Math.floor(requestedAtMs / 1000) }],
      format: 'JSONEachRow',
    });
  } else {
    pending.push('no erasure_log table in the warehouse (run npm run migrate): the log row was not written');
  }
  log.info('erasure finished', { erasureId, status, ...counts, pending });
  return { erasureId, status, counts, pending };
}

/**
 * A digest of the request that names no one: HMAC-SHA256 with the deployment's secret salt. The same request gives the
 * same digest (a repeated request can be recognised in the log), but without the secret it cannot be tested against a
 * guessed id.
 */
export function requestDigest(subject: ErasureSubject, secret: string): string {
  return createHmac('sha256', secret).update(requestText(subject)).digest('hex');
}

interface Target {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

async function endOffsets(admin: Admin, specs: readonly TopicSpec[]): Promise<Target[]> {
  const out: Target[] = [];
  for (const spec of specs) {
    for (const p of await admin.fetchTopicOffsets(spec.name)) {
      if (BigInt(p.high) > BigInt(p.low))
        out.push({ topic: spec.name, partition: p.partition, offset: BigInt(p.high) });
    }
  }
  return out;
}

/**
 * Waits until `groupId` has committed at least `targets` (its next offset to read is at or past each). 'no-group'
 * when the group never committed on these topics (no such processor has run: nothing of the person to wait for).
 */
async function waitCommitted(
  admin: Admin,
  groupId: string,
  targets: readonly Target[],
  timeoutMs: number,
): Promise<'reached' | 'no-group' | 'timeout'> {
  if (targets.length === 0) return 'reached';
  const topics = [...new Set(targets.map((t) => t.topic))];
  const deadline = Date.now() + timeoutMs;
  for (let first = true; ; first = false) {
    const committed = await admin.fetchOffsets({ groupId, topics });
    const at = new Map<string, bigint>();
    for (const t of committed) for (const p of t.partitions) at.set(`${t.topic}:${p.partition}`, BigInt(p.offset));
    if (first && [...at.values()].every((o) => o < 0n)) return 'no-group';
    if (targets.every((t) => (at.get(`${t.topic}:${t.partition}`) ?? -1n) >= t.offset)) return 'reached';
    if (Date.now() > deadline) return 'timeout';
    await sleep(POLL_MS);
  }
}

/** Deletes each partition's commands the feature processor has committed past (DeleteRecords moves the log start). */
async function deleteHandledCommands(admin: Admin, groupId: string, spec: TopicSpec): Promise<void> {
  const [committed] = await admin.fetchOffsets({ groupId, topics: [spec.name] });
  const partitions = (committed?.partitions ?? [])
    .filter((p) => BigInt(p.offset) > 0n)
    .map((p) => ({ partition: p.partition, offset: p.offset }));
  if (partitions.length > 0) await admin.deleteTopicRecords({ topic: spec.name, partitions });
}

async function listTables(clickhouse: ClickHouseClient, database: string): Promise<string[]> {
  const result = await clickhouse.query({
    query: `SELECT name FROM system.tables WHERE database = ${quoteString(database)}`,
    format: 'JSONEachRow',
  });
  return (await result.json<{ name: string }>()).map((r) => r.name);
}

async function queryNumber(clickhouse: ClickHouseClient, query: string): Promise<number> {
  const result = await clickhouse.query({ query, format: 'JSONEachRow' });
  const [row] = await result.json<{ n: string | number }>();
  return Number(row?.n ?? 0);
}

/** Waits until no mutation of `tables` in `database` is left undone (system.mutations, 18.16 and current). */
async function waitMutations(
  clickhouse: ClickHouseClient,
  database: string,
  tables: readonly string[],
  timeoutMs: number,
): Promise<boolean> {
  const quoted = quoteString;
  const query =
    `SELECT count() AS n FROM system.mutations WHERE database = ${quoted(database)} ` +
    `AND table IN (${tables.map(quoted).join(', ')}) AND is_done = 0`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await queryNumber(clickhouse, query)) === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
