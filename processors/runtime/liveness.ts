/**
 * No silent stalls: a processor that can no longer make progress must say so and end, so its supervisor (systemd,
 * Kubernetes, the demo) restarts it or pages someone. kafkajs alone does not guarantee that:
 *
 * - A non-retriable error (a `KafkaJSNonRetriableError`, a `TypeError`, an idempotent producer's out-of-order
 *   sequence number) crashes the consumer for good: it emits CRASH with `restart: false`, disconnects, and the
 *   process stays alive doing nothing.
 * - A retriable error that is in fact deterministic (corrupt state, a bug on one record) is retried, the consumer
 *   restarted, and the same batch fails again, forever.
 *
 * `superviseConsumer` turns both into one `onFatal` call: the first at once, the second once the same batch position
 * has failed `maxBatchAttempts` times over at least `minStallMs`, and a consumer that kafkajs keeps restarting without
 * ever joining its group or finishing a batch after `maxRestarts` restarts. A failure that is a dependency outage
 * (Redis, Kafka or ClickHouse down or restarting: `outageOf`) is ridden out for `maxOutageMs` instead, whatever the
 * number of attempts, and shows meanwhile in `processor_dependency_outage_seconds{processor,dependency}`; a member
 * dropped from its group (UNKNOWN_MEMBER_ID after a broker restart) is no failure of the batch at all. Every crash is
 * counted in `processor_crashes_total{processor,restart}` and logged with its cause; giving up is counted in
 * `processor_fatal_total{processor,kind}` and logged. Entrypoints pass `exitOnFatal`: a bounded best-effort shutdown,
 * then exit code 1.
 */
import type { Consumer, EachBatchPayload } from 'kafkajs';
import type { Registry } from 'prom-client';
import { sharedCounter, sharedGauge } from './metrics.js';
import { describeError } from './errors.js';
import type { Logger } from './log.js';
import { membershipError, outageOf } from './outage.js';

/** Default of `maxOutageMs`: long enough for a restart or a failover of a dependency, short enough to page someone. */
export const DEFAULT_MAX_OUTAGE_MS = 300_000;

/** Why a processor gave up. */
export interface FatalFailure {
  /** One line for logs and exit messages. */
  readonly reason: string;
  readonly error: unknown;
  /** How it was detected. */
  readonly kind: 'crash' | 'stalled-batch' | 'stuck-step' | 'restart-loop' | 'dependency-outage';
}

export interface SupervisionLimits {
  /** A batch failing this many times in a row at one position may be declared stalled. @default 5 */
  readonly maxBatchAttempts?: number;
  /** …once its first failure is at least this old (ms): short outages are ridden out. @default 30_000 */
  readonly minStallMs?: number;
  /** kafkajs restarts without a group join or a finished batch in between before giving up. @default 5 */
  readonly maxRestarts?: number;
  /** How long failures that are dependency outages are ridden out (PROCESSOR_OUTAGE_MAX_MS). @default 300_000 */
  readonly maxOutageMs?: number;
}

export interface SuperviseOptions extends SupervisionLimits {
  /** The `processor` label and log field. */
  readonly processor: string;
  readonly log: Logger;
  /** Where `processor_crashes_total` lives (shared by every supervised consumer of the registry). */
  readonly registry: Registry;
  /** Called once, on the first fatal failure. Entrypoints pass `exitOnFatal(...)`. */
  readonly onFatal: (failure: FatalFailure) => void;
  /** @default Date.now */
  readonly now?: () => number;
}

export interface ConsumerSupervisor {
  /**
   * Wraps an eachBatch handler: counts consecutive failures at one (topic, partition, first offset); when the batch
   * is stalled it reports the failure and throws a non-retriable error, so kafkajs stops instead of retrying it.
   */
  eachBatch(handler: (payload: EachBatchPayload) => Promise<void>): (payload: EachBatchPayload) => Promise<void>;
  /**
   * The same accounting for work the processor drives itself (a round of records taken from its own buffer): a failure
   * of the work starting at `at` is counted, logged and ridden out like a failing batch, or reported as fatal, and then
   * it throws a {@link ProcessorStalledError}: the caller stops.
   */
  failed(at: { topic: string; partition: number; offset: string }, err: unknown): void;
  /** The work of `topic`/`partition` succeeded: its failure count is cleared. */
  succeeded(topic: string, partition: number): void;
  /** Reports a failure found elsewhere as fatal (once: later reports are ignored). */
  fail(failure: FatalFailure): void;
  /** The fatal failure reported, if any. */
  readonly failure: FatalFailure | undefined;
  /** Removes the event listeners. */
  dispose(): void;
}

/** Thrown out of eachBatch when a batch is stalled; `retriable: false` makes kafkajs crash without restarting. */
export class ProcessorStalledError extends Error {
  override name = 'ProcessorStalledError';
  readonly retriable = false;
}

/** Supervises one kafkajs consumer; call before `consumer.run`, and wrap its eachBatch with the result. */
export function superviseConsumer(consumer: Consumer, options: SuperviseOptions): ConsumerSupervisor {
  const { processor, log, onFatal } = options;
  const maxBatchAttempts = options.maxBatchAttempts ?? 5;
  const minStallMs = options.minStallMs ?? 30_000;
  const maxRestarts = options.maxRestarts ?? 5;
  const maxOutageMs = options.maxOutageMs ?? DEFAULT_MAX_OUTAGE_MS;
  const now = options.now ?? Date.now;
  const outageGauge = outageSeconds(options.registry);
  const fatalCounter = fatalTotal(options.registry);
  const crashes = sharedCounter(
    options.registry,
    'processor_crashes_total',
    'Consumer crashes reported by kafkajs; restart=false means kafkajs gave the consumer up',
    ['processor', 'restart'],
  );
  const lag = sharedGauge(
    options.registry,
    'kafka_consumer_lag',
    "Records behind the partition's high watermark after the consumer's last finished batch",
    ['processor', 'topic', 'partition'],
  );
  /** Per `topic|partition`: the position failing and since when. Cleared by any finished batch of the partition. */
  const failing = new Map<string, { offset: string; attempts: number; sinceMs: number }>();
  let restartsWithoutProgress = 0;
  /** When the current run of restarts without progress began (ms), for outages. */
  let restartingSinceMs = 0;
  let failure: FatalFailure | undefined;
  /** Dependencies failing batches now, and since when. */
  const outages = new Map<string, number>();
  const outageSeen = (dependency: string, sinceMs: number) => {
    const first = Math.min(outages.get(dependency) ?? sinceMs, sinceMs);
    outages.set(dependency, first);
    outageGauge.set({ processor, dependency }, (now() - first) / 1000);
  };
  const outagesOver = () => {
    for (const dependency of outages.keys()) outageGauge.set({ processor, dependency }, 0);
    outages.clear();
  };

  const fatal = (f: FatalFailure) => {
    if (failure) return;
    failure = f;
    fatalCounter.inc({ processor, kind: f.kind });
    log.error('processor cannot make progress', { processor, kind: f.kind, reason: f.reason });
    onFatal(f);
  };

  const removers = [
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      const { error, restart } = payload;
      crashes.inc({ processor, restart: String(restart) });
      const cause = describeError(error);
      if (!restart) {
        fatal({ kind: 'crash', error, reason: `consumer crashed and will not be restarted: ${cause}` });
        return;
      }
      if (restartsWithoutProgress === 0) restartingSinceMs = now();
      restartsWithoutProgress++;
      const outage = outageOf(error);
      log.warn('consumer crashed; kafkajs restarts it', {
        processor,
        error: cause,
        restartsWithoutProgress,
        ...(outage ? { outage } : {}),
      });
      if (outage) {
        // A broker restart can take minutes; kafkajs restarts the consumer until the broker answers again.
        outageSeen(outage, restartingSinceMs);
        const forMs = now() - restartingSinceMs;
        if (forMs >= maxOutageMs) {
          fatal({
            kind: 'dependency-outage',
            error,
            reason: `${outage} unavailable for ${Math.round(forMs / 1000)} s (${restartsWithoutProgress} consumer restarts): ${cause}`,
          });
        }
        return;
      }
      if (restartsWithoutProgress > maxRestarts) {
        fatal({
          kind: 'restart-loop',
          error,
          reason: `consumer restarted ${restartsWithoutProgress} times without joining its group or finishing a batch: ${cause}`,
        });
      }
    }),
    consumer.on(consumer.events.GROUP_JOIN, () => {
      restartsWithoutProgress = 0;
    }),
  ];

  /** A failure of the work at `at` (see ConsumerSupervisor.failed); returns when it is to be retried. */
  function failed(at: { topic: string; partition: number; offset: string }, err: unknown): void {
    const { topic, partition, offset } = at;
    if (membershipError(err)) {
      // Not the batch's failure: kafkajs joins the group again and whoever owns the partition repeats it.
      log.info('member left the group (a rebalance or broker restart); joining again', {
        processor,
        topic,
        partition,
        error: describeError(err),
      });
      return;
    }
    const key = `${topic}|${partition}`;
    const prev = failing.get(key);
    const entry =
      prev?.offset === offset ? { ...prev, attempts: prev.attempts + 1 } : { offset, attempts: 1, sinceMs: now() };
    failing.set(key, entry);
    const forMs = now() - entry.sinceMs;
    const outage = outageOf(err);
    if (outage) {
      outageSeen(outage, entry.sinceMs);
      if (forMs >= maxOutageMs) {
        const reason =
          `${outage} unavailable for ${Math.round(forMs / 1000)} s (batch ${topic}/${partition}@${offset}, ` +
          `${entry.attempts} attempts): ${describeError(err)}`;
        fatal({ kind: 'dependency-outage', error: err, reason });
        throw new ProcessorStalledError(reason);
      }
      log.warn('dependency unavailable; the batch will be retried', {
        processor,
        dependency: outage,
        topic,
        partition,
        offset,
        attempt: entry.attempts,
        forSeconds: Math.round(forMs / 1000),
        error: describeError(err),
      });
      return;
    }
    if (entry.attempts >= maxBatchAttempts && forMs >= minStallMs) {
      const reason =
        `batch ${topic}/${partition}@${offset} failed ${entry.attempts} times over ${Math.round(forMs / 1000)} s: ` +
        describeError(err);
      fatal({ kind: 'stalled-batch', error: err, reason });
      throw new ProcessorStalledError(reason);
    }
    log.warn('batch failed; it will be retried', {
      processor,
      topic,
      partition,
      offset,
      attempt: entry.attempts,
      error: describeError(err),
    });
  }

  function succeeded(topic: string, partition: number): void {
    failing.delete(`${topic}|${partition}`);
    restartsWithoutProgress = 0;
    if (outages.size > 0 && failing.size === 0) outagesOver();
  }

  return {
    get failure() {
      return failure;
    },
    dispose() {
      for (const remove of removers) remove();
    },
    failed,
    succeeded,
    fail: fatal,
    eachBatch(handler) {
      return async (payload) => {
        const { topic, partition } = payload.batch;
        const offset = payload.batch.firstOffset() ?? payload.batch.messages[0]?.offset ?? '';
        try {
          await handler(payload);
        } catch (err) {
          failed({ topic, partition, offset }, err);
          throw err;
        }
        succeeded(topic, partition);
        const behind = Number(payload.batch.offsetLag());
        if (Number.isFinite(behind)) lag.set({ processor, topic, partition: String(partition) }, Math.max(0, behind));
      };
    },
  };
}

/** `processor_dependency_outage_seconds`: how long a dependency has been failing this processor's work (0: not now). */
export function outageSeconds(registry: Registry) {
  return sharedGauge(
    registry,
    'processor_dependency_outage_seconds',
    'How long a dependency (redis, kafka, clickhouse) has been failing this processor, ridden out up to PROCESSOR_OUTAGE_MAX_MS; 0 when it answers',
    ['processor', 'dependency'],
  );
}

/** `processor_fatal_total`: the processor gave up (it exits non-zero right after), by how it was detected. */
export function fatalTotal(registry: Registry) {
  return sharedCounter(
    registry,
    'processor_fatal_total',
    'Times the processor found it could not make progress and gave up (the entrypoint then exits 1), by kind',
    ['processor', 'kind'],
  );
}

/**
 * Starts a processor from its entrypoint, bounded by PROCESSOR_STEP_MAX_MS like every step of its work: a dependency
 * that takes a request and never answers would otherwise leave the process alive and idle before its first record. A
 * start that fails (a graph sealed with another key, say) or does not end in time is logged as `cannot start`, and
 * the process exits 1.
 */
export async function startOrExit<T>(
  log: Logger,
  maxMs: number,
  start: () => Promise<T>,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new Error(
          `the start has run for ${Math.round(maxMs / 1000)} s without ending (PROCESSOR_STEP_MAX_MS): something ` +
            'it waits on took the request and never answered',
        ),
      );
    }, maxMs);
  });
  try {
    return await Promise.race([start(), late]);
  } catch (err) {
    log.error('cannot start', { error: describeError(err) });
    exit(1);
    throw err; // an exit that returns (tests)
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The onFatal of an entrypoint: runs `close` (stop consumers, flush, disconnect) for at most `timeoutMs`, then exits
 * with code 1 whatever happened. A second fatal report while closing is ignored.
 */
export function exitOnFatal(
  log: Logger,
  close: () => Promise<void>,
  {
    timeoutMs = 10_000,
    exit = (code: number): void => process.exit(code),
  }: { timeoutMs?: number; exit?: (code: number) => void } = {},
): (failure: FatalFailure) => void {
  let closing = false;
  return (failure) => {
    if (closing) return;
    closing = true;
    log.error('exiting: the processor cannot make progress', { reason: failure.reason, kind: failure.kind });
    const timer = setTimeout(() => {
      log.error('shutdown did not finish in time; exiting anyway', { timeoutMs });
      exit(1);
    }, timeoutMs); // not unref'd: an idle event loop must not end the process with code 0 before it
    close().then(
      () => {
        clearTimeout(timer);
        exit(1);
      },
      (err: unknown) => {
        clearTimeout(timer);
        log.error('shutdown after a fatal failure failed', { error: describeError(err) });
        exit(1);
      },
    );
  };
}
