/**
 * `npm run identity:eval -- --out <clusters.csv> <file.csv> [<file2.csv> …]`: measures identity resolution through the
 * real resolver. Reads FEBRL-format files (one file = one platform), trains the Fellegi–Sunter model on them by EM (no
 * labels), publishes every record as an IDENTIFY event to Kafka, runs the identity resolver on its own topics and Redis
 * prefix until it has processed them all, then writes `rec_id,global_customer_id` for every record. When rec ids follow
 * FEBRL's `rec-N-org` / `rec-N-dup-K` convention it also prints pairwise precision, recall, F1, blocking recall and
 * records/s as one JSON line. Brings up the local stack when no endpoints are configured; leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { Redis } from 'ioredis';
import { ensureStack } from '../tools/stack/stack.js';
import { applyTopics } from '../../topics/apply.js';
import { topicCatalogOf } from '../../topics/catalog.js';
import type { BehaviorEvent } from '../../schemas/generated/types.js';
import { PlatformProducer } from '../producers/platform-producer.js';
import { febrlEvents, platformFromFileName } from '../producers/replay.js';
import { loadConfig } from '../runtime/config.js';
import { AppError, describeError } from '../runtime/errors.js';
import { createKafka } from '../runtime/kafka.js';
import { createLogger } from '../runtime/log.js';
import { createMetrics } from '../runtime/metrics.js';
import { EventSerde } from '../runtime/serde.js';
import { decodeOnlyRate, deleteKeysByPattern } from '../tools/bench-tools.js';
import { hold, releaseOnInterrupt } from '../tools/interrupt.js';
import { readFebrlFile, type BadLine } from './febrl-file.js';
import { IdentityGraph } from './graph-store.js';
import { trainEm } from './model.js';
import { NO_ATTRIBUTES } from './logic.js';
import { PiiCodec } from './pii-codec.js';
import { IdentityResolver } from './processor.js';
import { toIdentityRecord } from './record.js';
import { blockingRecall, pairwiseMetrics, resolveIncrementallyWithStats } from './resolve-offline.js';

const USAGE = 'usage: npm run identity:eval -- --out <clusters.csv> <file.csv> [<file2.csv> …]';
const BASE_TIME_MS = Date.UTC(2026, 0, 1);

/** FEBRL's convention: rec-N-org and rec-N-dup-K are the same person N. */
function personOf(recId: string): string | null {
  return /^rec-(\d+)-(org|dup-\d+)$/.exec(recId)?.[1] ?? null;
}

/** True pairs among `keys` by the rec-id convention; null when any rec id does not follow it. */
function truePairsOf(recIdByKey: ReadonlyMap<string, string>): [string, string][] | null {
  const byPerson = new Map<string, string[]>();
  for (const [key, recId] of recIdByKey) {
    const person = personOf(recId);
    if (person === null) return null;
    byPerson.set(person, [...(byPerson.get(person) ?? []), key]);
  }
  const pairs: [string, string][] = [];
  for (const keys of byPerson.values()) {
    keys.forEach((a, i) => {
      for (const b of keys.slice(i + 1)) pairs.push([a, b]);
    });
  }
  return pairs;
}

/** Figures of one evaluation run; metrics only when the rec ids follow FEBRL's convention. */
export interface EvaluationResult {
  readonly records: number;
  readonly clusters: Map<string, string>;
  readonly recIdByKey: Map<string, string>;
  readonly metrics: Record<string, number> | null;
  readonly recordsPerSecond: number;
  /** Rate of a kafkajs consumer that only decodes the same records (the raw limit), when asked for. */
  readonly rawDecodePerSecond: number | null;
  /** Lines that could not be read (skipped), with their numbers. */
  readonly badLines: readonly BadLine[];
  /** Identities in the largest resolved cluster. */
  readonly largestCluster: number;
  /**
   * CPU time (user + system) of this process per record while the resolver ran, in µs: the resolver's own cost, less
   * sensitive to other work on the machine than records/s (Redis's CPU is not in it).
   */
  readonly cpuMicrosPerRecord: number;
  /** Merge events the resolver published (the identity-merges topic's length): clusters of published people joined. */
  readonly mergesPublished: number;
  /**
   * The same records and match model through the same judging on a graph held in this process (resolve-offline.ts,
   * no Redis, no Kafka), timed after the resolver: how far the stream is from its rules' own cost. When asked for.
   */
  readonly inMemory: { readonly recordsPerSecond: number; readonly f1: number | null } | null;
}

/** Options of {@link evaluateFiles}. */
export interface EvaluateOptions {
  /** Also measure a consumer that only decodes the same records. @default false */
  readonly measureRawConsumer?: boolean;
  /** Also resolve the same records in memory (resolve-offline.ts) and time it. @default false */
  readonly measureInMemory?: boolean;
  /** Show a progress bar on stderr while the resolver works. @default false */
  readonly progress?: boolean;
  /** Called for each unreadable line (it is skipped). @default print it on stderr */
  readonly onBadLine?: (bad: BadLine) => void;
}

/** The evaluation gives up when the resolver makes no progress for this long. */
const STALL_MS = 180_000;

/**
 * Runs FEBRL-format files through the real identity resolver on fresh topics and a fresh Redis prefix (both removed
 * afterwards) and returns the clustering and its figures.
 */
export async function evaluateFiles(
  positionals: readonly string[],
  options: EvaluateOptions = {},
): Promise<EvaluationResult> {
  const endpoints = await ensureStack({ log: () => undefined });
  const id = randomBytes(4).toString('hex');
  const base = loadConfig();
  const config = loadConfig({
    ...process.env,
    KAFKA_BROKERS: process.env['KAFKA_BROKERS'] ?? endpoints.kafkaBrokers.join(','),
    SCHEMA_REGISTRY_URL: process.env['SCHEMA_REGISTRY_URL'] ?? endpoints.schemaRegistryUrl,
    REDIS_URL: process.env['REDIS_URL'] ?? endpoints.redisUrl,
    TOPIC_PREFIX: `${base.TOPIC_PREFIX}identity-eval-${id}.`,
    LOG_LEVEL: 'warn',
  });
  const salt = config.IDENTITY_HASH_SALT.reveal();

  // Records, one platform per file (a single file is deduplication within one platform).
  const events: BehaviorEvent[] = [];
  const recIdByKey = new Map<string, string>();
  const platforms = new Set<string>();
  const badLines: BadLine[] = [];
  const onBadLine =
    options.onBadLine ??
    ((bad: BadLine) => {
      console.error(`${bad.file}:${bad.line}: skipped: ${bad.reason}`);
    });
  for (const [i, file] of positionals.entries()) {
    let platform = platformFromFileName(file);
    if (platforms.has(platform)) platform = `${platform}-${i + 1}`;
    platforms.add(platform);
    const rows = await readFebrlFile(file, (bad) => {
      badLines.push(bad);
      onBadLine(bad);
    });
    const fileEvents = febrlEvents(rows, platform, { salt, baseTimeMs: BASE_TIME_MS });
    for (const ev of fileEvents)
      recIdByKey.set(`${platform}:${ev.platformCustomerId ?? ''}`, ev.platformCustomerId ?? '');
    for (const ev of fileEvents) events.push(ev); // not push(...): a file of ~125,000+ records overflows the stack
  }
  events.sort((a, b) => a.eventTimeMs - b.eventTimeMs); // files interleave, as platforms' traffic would
  const records = events.map((e) =>
    toIdentityRecord(e.platform, e.platformCustomerId ?? '', e.identity ?? NO_ATTRIBUTES),
  );
  const model = trainEm(records);

  const kafka = createKafka(config, `identity-eval-${id}`);
  const serde = EventSerde.forUrl(config.SCHEMA_REGISTRY_URL);
  const topics = topicCatalogOf(config);
  const admin = kafka.admin();
  await admin.connect();
  const redis = new Redis(config.REDIS_URL);
  const graphPrefix = config.TOPIC_PREFIX;
  const cleanUp = async () => {
    await admin.deleteTopics({ topics: topics.all.map((t) => t.name), timeout: 30_000 }).catch(() => undefined);
    await admin.disconnect();
    await deleteKeysByPattern(redis, `${graphPrefix}*`);
    redis.disconnect();
  };
  const unhold = hold(`the evaluation's topics and keys (${graphPrefix}*)`, cleanUp); // on an interrupt too
  try {
    await applyTopics(admin, topics.all, { serde });
    const producer = await PlatformProducer.connect(config, { kafka, serde, topics });
    const { refused } = await producer.publishAll(events.map((event) => ({ kind: 'behavior' as const, event })));
    await producer.disconnect();
    if (refused > 0) throw new Error(`${refused} records were refused by the producer`);
    const rawDecodePerSecond = options.measureRawConsumer
      ? await decodeOnlyRate(kafka, serde, [topics.clicksRaw], events.length, `${config.TOPIC_PREFIX}decode-only`)
      : null;

    const graph = IdentityGraph.open(redis, {
      prefix: graphPrefix,
      maxClusterSize: config.IDENTITY_MAX_CLUSTER_SIZE,
      codec: PiiCodec.fromConfig(config),
    });
    const resolver = new IdentityResolver({
      config,
      kafka,
      serde,
      graph,
      model,
      topics,
      log: createLogger('warn', { processor: 'identity-resolver' }),
      metrics: createMetrics(),
    });
    const started = Date.now();
    const bar = options.progress
      ? new cliProgress.SingleBar(
          {
            format: 'resolving [{bar}] {percentage}% | {value}/{total} records | ETA {eta_formatted}',
            hideCursor: true,
            stream: process.stderr,
            // Piped or logged (no terminal): a line every 10 s, so a long run is never silent.
            noTTYOutput: true,
            notTTYSchedule: 10_000,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
    bar?.start(events.length, 0);
    const cpuAtStart = process.cpuUsage();
    // Stopped before the topics and keys go on an interrupt, or it would write keys after they were removed.
    const unholdResolver = hold('the resolver', () => resolver.stop());
    await resolver.start();
    let lastProgress = { count: 0, atMs: Date.now() };
    try {
      while (resolver.processedCount < events.length) {
        const count = resolver.processedCount;
        if (resolver.failure)
          throw new Error(`resolver failed at ${count} of ${events.length}${describeFailure(resolver)}`);
        if (count > lastProgress.count) lastProgress = { count, atMs: Date.now() };
        else if (Date.now() - lastProgress.atMs > STALL_MS) {
          throw new Error(`resolver stalled at ${count} of ${events.length} records${describeFailure(resolver)}`);
        }
        bar?.update(count);
        await new Promise((r) => setTimeout(r, 200));
      }
      bar?.update(events.length);
    } finally {
      bar?.stop();
    }
    // Throughput from the first batch: the consumer-group join is startup cost, not resolution.
    const seconds = (Date.now() - (resolver.firstBatchAtMs ?? started)) / 1000;
    const cpu = process.cpuUsage(cpuAtStart);
    unholdResolver();
    await resolver.stop();
    const mergeOffsets = await admin.fetchTopicOffsets(topics.identityMerges.name);
    const mergesPublished = mergeOffsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);

    const keys = [...recIdByKey.keys()];
    const roots = await graph.globalIdOf(keys);
    const clusters = new Map<string, string>();
    for (const key of keys) {
      const gid = roots.get(key);
      if (!gid) throw new Error(`record ${key} was not resolved`);
      clusters.set(key, gid);
    }
    const sizes = new Map<string, number>();
    for (const gid of clusters.values()) sizes.set(gid, (sizes.get(gid) ?? 0) + 1);
    let largestCluster = 0;
    for (const size of sizes.values()) largestCluster = Math.max(largestCluster, size);
    const truePairs = truePairsOf(recIdByKey);
    let inMemory: EvaluationResult['inMemory'] = null;
    if (options.measureInMemory) {
      const at = performance.now();
      const offline = resolveIncrementallyWithStats(records, model, {
        maxClusterSize: config.IDENTITY_MAX_CLUSTER_SIZE,
      });
      inMemory = {
        recordsPerSecond: Math.round(records.length / ((performance.now() - at) / 1000)),
        f1: truePairs ? round(pairwiseMetrics(offline.clusters, truePairs).f1) : null,
      };
    }
    let metrics: Record<string, number> | null = null;
    if (truePairs) {
      const m = pairwiseMetrics(clusters, truePairs);
      metrics = {
        clusters: new Set(clusters.values()).size,
        precision: round(m.precision),
        recall: round(m.recall),
        f1: round(m.f1),
        truePairs: m.truePairs,
        predictedPairs: m.predictedPairs,
        blockingRecall: round(blockingRecall(records, truePairs)),
      };
    }
    return {
      records: keys.length,
      clusters,
      recIdByKey,
      metrics,
      recordsPerSecond: Math.round(keys.length / seconds),
      cpuMicrosPerRecord: Math.round((cpu.user + cpu.system) / Math.max(keys.length, 1)),
      rawDecodePerSecond,
      badLines,
      largestCluster,
      mergesPublished,
      inMemory,
    };
  } finally {
    unhold();
    await cleanUp();
  }
}

const round = (x: number) => Math.round(x * 10_000) / 10_000;

const describeFailure = (resolver: IdentityResolver) =>
  resolver.failure ? ` (${resolver.failure.kind}: ${resolver.failure.reason})` : '';

/** A consumer that only decodes: the raw limit the resolver is compared with. */
async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { out: { type: 'string' } },
    allowPositionals: true,
  });
  if (!values.out || positionals.length === 0) throw new AppError('USAGE', USAGE);
  releaseOnInterrupt();
  const result = await evaluateFiles(positionals, { progress: true });
  const lines = ['rec_id,global_customer_id'];
  for (const [key, gid] of result.clusters) lines.push(`${result.recIdByKey.get(key) ?? ''},${gid}`);
  writeFileSync(values.out, `${lines.join('\n')}\n`);
  console.error(`wrote ${result.records} records to ${values.out}`);
  if (result.badLines.length > 0) console.error(`${result.badLines.length} unreadable lines skipped (listed above)`);
  const m = result.metrics;
  if (m) {
    console.log(
      `precision ${m['precision']}  recall ${m['recall']}  F1 ${m['f1']}  blocking recall ${m['blockingRecall']}  ` +
        `largest cluster ${result.largestCluster}  ${result.recordsPerSecond} records/s  ` +
        `${result.cpuMicrosPerRecord} µs of CPU per record  ${result.mergesPublished} merges published`,
    );
  }
  console.log(
    JSON.stringify({
      files: positionals.length,
      records: result.records,
      badLines: result.badLines.length,
      largestCluster: result.largestCluster,
      ...m,
      recordsPerSecond: result.recordsPerSecond,
      cpuMicrosPerRecord: result.cpuMicrosPerRecord,
      mergesPublished: result.mergesPublished,
    }),
  );
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // A usage or input problem says what to change; anything else is a bug: where it happened.
      console.error(
        err instanceof Error && !(err instanceof AppError) ? (err.stack ?? describeError(err)) : describeError(err),
      );
      process.exit(err instanceof AppError && err.code === 'USAGE' ? 2 : 1);
    },
  );
}
