// Warehouse sink: consumes the raw, identity, score and dead-letter topics; keeps a bounded in-memory row buffer;
// emits batched inserts into the ClickHouse star schema, committing offsets only after ClickHouse has the rows.
import type { ClickHouseClient } from '@clickhouse/client';
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import type {
  AdDecision,
  BehaviorEvent,
  DeadLetter,
  IdentityLink,
  IdentityMerge,
  IdentityMergeRejection,
  IntentScore,
  Transaction,
} from '../../schemas/generated/types.js';
import { behaviorProblems, transactionProblems } from '../../schemas/rules.js';
import type { TopicCatalog, TopicSpec } from '../../topics/catalog.js';
import { isTransientClickHouseError, quoteString } from '../runtime/clickhouse.js';
import type { Config } from '../runtime/config.js';
import { decodeBatch } from '../runtime/decode-batch.js';
import { DeadLetterPublisher } from '../runtime/dead-letter.js';
import { fatalKindOf, FetchWatch } from '../runtime/fetch-watch.js';
import { AppError, describeError } from '../runtime/errors.js';
import { SerialProducer } from '../runtime/kafka.js';
import {
  fatalTotal,
  outageSeconds,
  superviseConsumer,
  type ConsumerSupervisor,
  type FatalFailure,
  type SupervisionLimits,
} from '../runtime/liveness.js';
import type { Logger } from '../runtime/log.js';
import type { ProcessorMetrics } from '../runtime/metrics.js';
import type { EventSerde } from '../runtime/serde.js';
import { boundedStep } from '../runtime/shutdown.js';
import {
  behaviorRows,
  deadLetterRows,
  dimensionKey,
  identityLinkRows,
  identityMergeRows,
  intentScoreRows,
  adDecisionRows,
  mergeRejectionRows,
  sinkTables,
  transactionRows,
  type Row,
  type RowSet,
  type SinkTable,
  type Source,
} from './logic.js';

export const PROCESSOR = 'warehouse-sink';

/** Bytes a sink fetch waits for (up to its wait bound) before the broker answers it. */
const SINK_FETCH_MIN_BYTES = 256 * 1024;

/**
 * The topics the sink consumes: what "caught up" (pipeline.ts) and erasure's wait for the sink (erasure/erase.ts) are
 * measured on. The constructor refuses routes that differ from it.
 */
export function sinkInputs(topics: TopicCatalog): TopicSpec[] {
  return [
    topics.transactionsRaw,
    topics.clicksRaw,
    topics.identityLinks,
    topics.identityMerges,
    topics.identityMergeRejections,
    topics.customerScores,
    topics.adDecisions,
    ...topics.all.filter((t) => t.schema === 'deadLetter'),
  ];
}

/** How the sink maps each topic it reads; `check` returns domain problems (a non-empty list dead-letters). */
interface Route {
  readonly spec: TopicSpec;
  readonly rows: (value: never, source: Source, nowMs: number) => RowSet;
  readonly check?: (value: never, nowMs: number) => string[];
}

export interface WarehouseSinkDeps {
  readonly config: Config;
  readonly kafka: Kafka;
  readonly serde: EventSerde;
  readonly clickhouse: ClickHouseClient;
  readonly topics: TopicCatalog;
  readonly log: Logger;
  readonly metrics: ProcessorMetrics;
  /** @default 'warehouse-sink' (+ TOPIC_PREFIX); tests pass their own. */
  readonly groupId?: string;
  /** Give up retrying an unreachable ClickHouse after this long and report the sink fatal. @default PROCESSOR_OUTAGE_MAX_MS */
  readonly maxRetryMs?: number;
  /**
   * Called once when the sink can no longer make progress (its consumer was given up, or one batch keeps failing);
   * entrypoints exit (`exitOnFatal`). Without it the failure is logged, counted and kept in `failure`.
   */
  readonly onFatal?: (failure: FatalFailure) => void;
  /** Bounds of the consumer supervision (tests shorten them). */
  readonly supervision?: SupervisionLimits;
}

export class WarehouseSink {
  private readonly routes: ReadonlyMap<string, Route>;
  private readonly consumer: Consumer;
  /** Dead letters of concurrent work (batches, the flush timer) share it: one send in flight keeps sequence order. */
  private readonly producer: SerialProducer;
  private readonly supervisor: ConsumerSupervisor;
  /** A partition the consumer stopped fetching ends the sink (runtime/fetch-watch.ts). */
  private readonly fetchWatch: FetchWatch;
  private fatal: FatalFailure | undefined;
  private readonly deadLetters: DeadLetterPublisher;
  private buffer = new Map<SinkTable, Row[]>();
  private bufferedRows = 0;
  private oldestBufferedAt = 0;
  /** Highest processed offset per `topic\u0000partition`, committed after the next successful flush. */
  private pendingOffsets = new Map<string, { topic: string; partition: number; offset: string }>();
  private lock: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Batches being worked on: stop() lets them finish before the final flush. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: WarehouseSinkDeps) {
    const { topics, config } = deps;
    const routes: Route[] = [
      {
        spec: topics.transactionsRaw,
        rows: transactionRows,
        check: (tx: Transaction, nowMs: number) =>
          transactionProblems(tx, { nowMs, maxFutureMs: config.EVENT_MAX_FUTURE_MS }),
      },
      {
        spec: topics.clicksRaw,
        rows: behaviorRows,
        check: (ev: BehaviorEvent, nowMs: number) =>
          behaviorProblems(ev, { nowMs, maxFutureMs: config.EVENT_MAX_FUTURE_MS }),
      },
      { spec: topics.identityLinks, rows: (l: IdentityLink) => identityLinkRows(l) },
      { spec: topics.identityMerges, rows: (m: IdentityMerge) => identityMergeRows(m) },
      { spec: topics.identityMergeRejections, rows: (r: IdentityMergeRejection) => mergeRejectionRows(r) },
      { spec: topics.customerScores, rows: (s: IntentScore) => intentScoreRows(s) },
      { spec: topics.adDecisions, rows: (d: AdDecision) => adDecisionRows(d) },
    ];
    // Every dead-letter topic is warehoused too, so analysts see what was refused and why.
    for (const dlq of topics.all.filter((t) => t.schema === 'deadLetter')) {
      routes.push({ spec: dlq, rows: (d: DeadLetter) => deadLetterRows(d) });
    }
    this.routes = new Map(routes.map((r) => [r.spec.name, r]));
    const inputs = sinkInputs(topics).map((t) => t.name);
    if (inputs.join('\n') !== [...this.routes.keys()].join('\n'))
      throw new Error(
        `warehouse sink routes ${[...this.routes.keys()].join(', ')} differ from sinkInputs ${inputs.join(', ')}`,
      );
    const groupId = deps.groupId ?? `${config.TOPIC_PREFIX}${PROCESSOR}`;
    this.consumer = deps.kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      maxBytesPerPartition: 4 << 20,
      // Rows wait up to SINK_MAX_WAIT_MS for their insert anyway: a fetch may wait for company too, instead of being
      // answered (and handled as a batch) for every few records while the topics trickle.
      minBytes: SINK_FETCH_MIN_BYTES,
      maxWaitTimeInMs: Math.max(10, Math.min(500, Math.floor(config.SINK_MAX_WAIT_MS / 2))),
    });
    this.producer = SerialProducer.idempotent(deps.kafka, (err) => {
      deps.log.warn('send failed; the next send starts on a fresh producer', { error: describeError(err) });
    });
    this.supervisor = superviseConsumer(this.consumer, {
      processor: PROCESSOR,
      log: deps.log,
      registry: deps.metrics.registry,
      maxOutageMs: config.PROCESSOR_OUTAGE_MAX_MS,
      onFatal: (failure) => {
        this.fatal ??= failure;
        deps.onFatal?.(failure);
      },
      ...deps.supervision,
    });
    this.fetchWatch = FetchWatch.ownAdmin(deps.kafka, config, {
      groupId,
      log: deps.log,
      onStall: (reason, kind) => {
        this.supervisor.fail({
          kind: fatalKindOf(kind),
          error: new Error(reason),
          reason,
        });
      },
    });
    const dlqByTopic = new Map<string, TopicSpec>();
    for (const t of topics.all) {
      const dlq = topics.all.find((d) => d.name === t.deadLetterTopic);
      if (dlq) dlqByTopic.set(t.name, dlq);
    }
    this.deadLetters = new DeadLetterPublisher(PROCESSOR, this.producer, deps.serde, dlqByTopic, deps.metrics.registry);
  }

  /** Reports that ClickHouse stayed unreachable for the whole outage bound (once; counted, logged, onFatal). */
  private giveUp(error: AppError, forMs: number): void {
    if (this.fatal) return;
    const failure: FatalFailure = {
      kind: 'dependency-outage',
      error,
      reason: `clickhouse unavailable for ${Math.round(forMs / 1000)} s: ${describeError(error)}`,
    };
    this.fatal = failure;
    fatalTotal(this.deps.metrics.registry).inc({ processor: PROCESSOR, kind: failure.kind });
    this.deps.log.error('processor cannot make progress', {
      processor: PROCESSOR,
      kind: failure.kind,
      reason: failure.reason,
    });
    this.deps.onFatal?.(failure);
  }

  /** Why the sink stopped making progress, once it has. */
  get failure(): FatalFailure | undefined {
    return this.fatal;
  }

  /** Connects, subscribes from the earliest retained record, and starts consuming in the background. */
  async start(): Promise<void> {
    await this.producer.connect();
    await this.fetchWatch.connect();
    await this.consumer.connect();
    for (const name of this.routes.keys()) await this.consumer.subscribe({ topic: name, fromBeginning: true });
    const { GROUP_JOIN } = this.consumer.events;
    this.fetchWatch.follow(this.consumer);
    this.consumer.on(GROUP_JOIN, ({ payload }) => {
      // Offsets of partitions we no longer own must not be committed by us (the new owner re-reads; the rows we
      // already inserted are deduplicated by event id).
      const owned = new Set(
        Object.entries(payload.memberAssignment).flatMap(([t, parts]) => parts.map((p) => `${t}\u0000${p}`)),
      );
      for (const key of [...this.pendingOffsets.keys()]) if (!owned.has(key)) this.pendingOffsets.delete(key);
    });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: this.supervisor.eachBatch(async (payload) => {
        const work = this.fetchWatch.handle(() => this.onBatch(payload));
        this.inFlight.add(work);
        try {
          await work;
        } finally {
          this.inFlight.delete(work);
        }
      }),
    });
    const tick = Math.max(50, Math.floor(this.deps.config.SINK_MAX_WAIT_MS / 2));
    this.timer = setInterval(() => {
      // Offsets of batches that gave no row (tombstones, dead letters only) are committed too, or the group would
      // stay behind them until the next row arrives (an erasure waits for the sink to pass them).
      const due = Date.now() - this.oldestBufferedAt >= this.deps.config.SINK_MAX_WAIT_MS;
      if ((this.bufferedRows > 0 && due) || (this.bufferedRows === 0 && this.pendingOffsets.size > 0)) {
        this.fetchWatch
          .step('a timed flush', () => this.flush())
          .catch((err: unknown) => {
            this.deps.log.error('timed flush failed', { error: describeError(err) });
          });
      }
    }, tick);
  }

  /** Flushes what is buffered, then disconnects. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.fetchWatch.stop();
    // Stop fetching but stay in the group until the last rows are inserted and their offsets committed: a consumer
    // that has left cannot commit, and everything it inserted would be read and inserted again on restart.
    try {
      this.consumer.pause([...this.routes.keys()].map((topic) => ({ topic })));
    } catch {
      // never started (or already gone): nothing fetched that a commit could cover
    }
    await Promise.allSettled([...this.inFlight]);
    await this.flush().catch((err: unknown) => {
      this.deps.log.warn('final flush failed; the rows will be re-read on restart', { error: describeError(err) });
    });
    await boundedStep(this.deps.log, 'sink consumer disconnect', () => this.consumer.disconnect());
    await boundedStep(this.deps.log, 'fetch watch disconnect', () => this.fetchWatch.disconnect());
    await boundedStep(this.deps.log, 'producer disconnect', () => this.producer.disconnect());
    this.supervisor.dispose();
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const isLive = () => payload.isRunning() && !payload.isStale();
    const started = process.hrtime.bigint();
    const route = this.routes.get(batch.topic);
    if (!route) throw new Error(`no route for ${batch.topic}`);
    const nowMs = Date.now();
    // A tombstone on a compacted topic is how erasure (and compaction) deletes a key: nothing to store, nothing wrong.
    const messages =
      route.spec.cleanupPolicy === 'compact'
        ? batch.messages.filter((m) => m.value !== null && m.value.length > 0)
        : batch.messages;
    const { records, failed } = await decodeBatch<never>(
      { topic: batch.topic, partition: batch.partition, messages },
      route.spec,
      this.deps.serde,
      route.check && ((value) => route.check?.(value, nowMs) ?? []),
      isLive,
    );
    const sets = records.map(({ message, value }) =>
      route.rows(value, { topic: batch.topic, partition: batch.partition, offset: message.offset }, nowMs),
    );
    this.deps.metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'ok' }, records.length);
    this.deps.metrics.records.inc({ processor: PROCESSOR, topic: batch.topic, outcome: 'dead_letter' }, failed.length);
    const last = batch.messages.at(-1);
    if (!last || !isLive()) return;
    // Dead letters first (acks=all), so an offset never moves past a record that is neither stored nor parked.
    await this.deadLetters.publish(failed);
    await this.withLock(() => {
      for (const set of sets) this.add(set);
      this.pendingOffsets.set(`${batch.topic}\u0000${batch.partition}`, {
        topic: batch.topic,
        partition: batch.partition,
        offset: last.offset,
      });
      return Promise.resolve();
    });
    // Moves the fetch position on; nothing is committed until the rows are in ClickHouse (autoCommit is off).
    payload.resolveOffset(last.offset);
    this.fetchWatch.deliveredUpTo(`${batch.topic}:${batch.partition}`, last.offset);
    if (this.bufferedRows >= this.deps.config.SINK_MAX_ROWS) await this.flush(() => payload.heartbeat());
    await payload.heartbeat();
    this.deps.metrics.batchDuration.observe({ processor: PROCESSOR }, Number(process.hrtime.bigint() - started) / 1e9);
  }

  private add(set: RowSet): void {
    if (this.bufferedRows === 0) this.oldestBufferedAt = Date.now();
    for (const [table, rows] of Object.entries(set) as [SinkTable, Row[]][]) {
      const list = this.buffer.get(table);
      if (list) list.push(...rows);
      else this.buffer.set(table, [...rows]);
      this.bufferedRows += rows.length;
    }
    this.deps.metrics.sinkBufferedRows.set({ processor: PROCESSOR }, this.bufferedRows);
  }

  /** Serializes buffer mutations and flushes (the timer and batches both flush). */
  private withLock(fn: () => Promise<void>): Promise<void> {
    const run = this.lock.then(fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Inserts everything buffered (dimensions first), retrying transient ClickHouse failures with capped exponential
   * backoff, then commits the offsets the rows came from. A failure leaves the buffer and offsets in place.
   */
  flush(heartbeat?: () => Promise<void>): Promise<void> {
    return this.withLock(async () => {
      if (this.bufferedRows === 0 && this.pendingOffsets.size === 0) return;
      const started = process.hrtime.bigint();
      const buffer = this.buffer;
      const offsets = [...this.pendingOffsets.values()];
      const touched = touchedCustomers(buffer);
      for (const table of sinkTables) {
        const rows = buffer.get(table);
        if (!rows || rows.length === 0) continue;
        const keyOf = dimensionKey[table];
        const unique = keyOf ? newestPerKey(rows, keyOf) : rows;
        await this.insertWithRetry(table, unique, heartbeat);
        buffer.delete(table); // inserted: a retry of a later table must not insert this one again
        this.deps.metrics.sinkRows.inc({ table }, unique.length);
      }
      this.bufferedRows = 0;
      this.deps.metrics.sinkBufferedRows.set({ processor: PROCESSOR }, 0);
      await this.refreshCustomers(touched);
      if (offsets.length > 0) {
        try {
          await this.consumer.commitOffsets(
            offsets.map((o) => ({
              topic: o.topic,
              partition: o.partition,
              offset: (BigInt(o.offset) + 1n).toString(),
            })),
          );
          for (const o of offsets) {
            const key = `${o.topic}\u0000${o.partition}`;
            if (this.pendingOffsets.get(key)?.offset === o.offset) this.pendingOffsets.delete(key);
          }
        } catch (err) {
          // A rebalance between insert and commit: the next owner re-reads and re-inserts; event ids deduplicate.
          this.deps.log.warn('offset commit failed after insert', { error: describeError(err) });
        }
      }
      this.deps.metrics.sinkFlushDuration.observe(
        { processor: PROCESSOR },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
    });
  }

  /**
   * Recomputes dim_customer for customers whose identities or merges were just inserted: first/last link time,
   * platforms used and identity count from each identity's current mapping; merged ids point at their survivor. Runs
   * after the rows are in, so it reads them; re-running it gives the same rows (newer version, same values).
   */
  private async refreshCustomers({
    customers,
    merged,
  }: {
    customers: Set<string>;
    merged: Set<string>;
  }): Promise<void> {
    const version = Date.now();
    const list = (ids: Set<string>) => [...ids].map(quoteString).join(', ');
    for (const chunk of chunks([...customers], 1_000)) {
      const ids = list(new Set(chunk));
      await this.commandWithRetry(`
        INSERT INTO dim_customer
          (global_customer_id, first_seen, last_seen, total_platforms_used, identity_count, merged_into, version)
        SELECT cur_gid, min(first_from), max(last_from), uniqExact(platform_id), count(), '', ${version}
        FROM
        (
          SELECT identity_id, argMax(global_customer_id, (link_version, valid_from_ms, source_event_id)) AS cur_gid,
                 any(platform_id) AS platform_id, min(valid_from) AS first_from, max(valid_from) AS last_from
          FROM dim_customer_identity
          WHERE identity_id IN (SELECT identity_id FROM dim_customer_identity WHERE global_customer_id IN (${ids}))
          GROUP BY identity_id
        )
        WHERE cur_gid IN (${ids})
        GROUP BY cur_gid`);
    }
    for (const chunk of chunks([...merged], 1_000)) {
      await this.commandWithRetry(`
        INSERT INTO dim_customer
          (global_customer_id, first_seen, last_seen, total_platforms_used, identity_count, merged_into, version)
        SELECT merged_id, min(event_time), max(event_time), 0, 0, argMax(survivor_id, event_time_ms), ${version + 1}
        FROM identity_merge
        WHERE merged_id IN (${list(new Set(chunk))})
        GROUP BY merged_id`);
    }
  }

  private async commandWithRetry(query: string): Promise<void> {
    await this.retrying('dim_customer', () => this.deps.clickhouse.command({ query }).then(() => undefined));
  }

  private async insertWithRetry(table: SinkTable, rows: Row[], heartbeat?: () => Promise<void>): Promise<void> {
    await this.retrying(
      table,
      () => this.deps.clickhouse.insert({ table, values: rows, format: 'JSONEachRow' }).then(() => undefined),
      heartbeat,
    );
  }

  /** Runs a ClickHouse call, retrying transient failures with capped exponential backoff until maxRetryMs. */
  private async retrying(what: string, call: () => Promise<void>, heartbeat?: () => Promise<void>): Promise<void> {
    const started = Date.now();
    const deadline = started + (this.deps.maxRetryMs ?? this.deps.config.PROCESSOR_OUTAGE_MAX_MS);
    const outage = outageSeconds(this.deps.metrics.registry);
    for (let attempt = 0; ; attempt++) {
      try {
        await call();
        if (attempt > 0) outage.set({ processor: PROCESSOR, dependency: 'clickhouse' }, 0);
        return;
      } catch (err) {
        if (!isTransientClickHouseError(err)) throw err; // a schema or type error is a bug: crash loudly
        if (Date.now() > deadline || this.stopped) {
          const error = new AppError('DEPENDENCY_UNAVAILABLE', `ClickHouse write to ${what} kept failing`, {
            cause: err,
          });
          // Retried for the whole outage bound already: the sink cannot make progress. Said once, then the process
          // exits (a consumer restart would only wait out the same bound again, idle meanwhile).
          if (!this.stopped) this.giveUp(error, Date.now() - started);
          throw error;
        }
        outage.set({ processor: PROCESSOR, dependency: 'clickhouse' }, (Date.now() - started) / 1000);
        this.deps.metrics.retries.inc({ processor: PROCESSOR, dependency: 'clickhouse' });
        const waitMs = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
        this.deps.log.warn('ClickHouse unavailable; retrying', { what, attempt, waitMs, error: describeError(err) });
        await new Promise((r) => setTimeout(r, waitMs));
        // Keep group membership while we wait, so the outage does not also cause a rebalance storm.
        await heartbeat?.().catch(() => undefined);
      }
    }
  }
}

function newestPerKey(rows: Row[], keyOf: (r: Row) => string): Row[] {
  const newest = new Map<string, Row>();
  for (const r of rows) {
    const k = keyOf(r);
    const prev = newest.get(k);
    if (!prev || Number(r['version']) >= Number(prev['version'])) newest.set(k, r);
  }
  return [...newest.values()];
}

/** Customers whose dim_customer row must be recomputed after these rows are inserted. */
function touchedCustomers(buffer: ReadonlyMap<SinkTable, Row[]>): { customers: Set<string>; merged: Set<string> } {
  const customers = new Set<string>();
  const merged = new Set<string>();
  for (const r of buffer.get('dim_customer_identity') ?? []) customers.add(String(r['global_customer_id']));
  for (const r of buffer.get('identity_merge') ?? []) {
    customers.add(String(r['survivor_id']));
    merged.add(String(r['merged_id']));
  }
  return { customers, merged };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
