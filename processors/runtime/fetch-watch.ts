/**
 * A consumer's fetching, watched from outside kafkajs: a processor that stops receiving a partition's records while
 * the broker holds them is alive and idle, which nothing else notices (the feature processor's customers would go
 * stale, the resolver's rounds wait for ever). A partition that goes `stallMs` without a delivered record, not paused
 * and while no fetched batch is being handled or has failed within `stallMs`, is checked against the broker; if the
 * broker holds records past what was delivered, `onStall` is called with a reason naming each such partition, its
 * position and its high watermark (the processors give up: the entrypoint exits non-zero). A broker that does not
 * answer is an outage and a batch whose handling fails is the consumer supervisor's: both keep their own rules.
 *
 * It also bounds the work itself: a step (a fetched batch handled, a resolver round, a flush) still running after
 * `stepMaxMs` is stuck (a dependency that took the request and never answers: a hung server, a network that drops
 * without a reset, none of which any client timeout here bounds), and `onStall` is called with the step and its age.
 * A bound above PROCESSOR_OUTAGE_MAX_MS leaves a ridden-out outage its own rules and reason.
 */
import type { Admin, Consumer, Kafka } from 'kafkajs';
import type { Config } from './config.js';
import { describeError } from './errors.js';
import type { Logger } from './log.js';
import { splitTp } from './ordered-intake.js';

export interface FetchWatchOptions {
  /** Connected by the owner. */
  readonly admin: Admin;
  readonly groupId: string;
  readonly stallMs: number;
  readonly log: Logger;
  /** Called once per stall found: `fetch` (a partition not delivered), `step` (work that does not end). */
  readonly onStall: (reason: string, kind: StallKind) => void;
  /** Partitions the owner paused on purpose (not a stall); none when absent. */
  readonly paused?: (tp: string) => boolean;
  /** How long one step of work may run before it is stuck (PROCESSOR_STEP_MAX_MS); unbounded when absent. */
  readonly stepMaxMs?: number;
}

/** What the watch found: a partition the consumer stopped delivering, or a step of work that does not end. */
export type StallKind = 'fetch' | 'step';

/** The `kind` a stall is reported with (FatalFailure, `processor_fatal_total`). */
export function fatalKindOf(kind: StallKind): 'stalled-batch' | 'stuck-step' {
  return kind === 'step' ? 'stuck-step' : 'stalled-batch';
}

/**
 * Where the group `groupId` stands on each of `tps` (`topic:partition`) by the broker: its committed offset (the
 * partition's low watermark when it has none) and the partition's high watermark. One offsets request for the group,
 * one per topic.
 */
export async function committedPositions(
  admin: Admin,
  groupId: string,
  tps: readonly string[],
): Promise<Map<string, { committed: bigint; high: bigint }>> {
  const topics = [...new Set(tps.map((tp) => splitTp(tp).topic))];
  const offsets = await admin.fetchOffsets({ groupId, topics });
  const out = new Map<string, { committed: bigint; high: bigint }>();
  for (const topic of topics) {
    const mine = offsets.find((c) => c.topic === topic)?.partitions ?? [];
    for (const end of await admin.fetchTopicOffsets(topic)) {
      const tp = `${topic}:${end.partition}`;
      if (!tps.includes(tp)) continue;
      const at = BigInt(mine.find((c) => c.partition === end.partition)?.offset ?? '-1');
      out.set(tp, { committed: at >= 0n ? at : BigInt(end.low), high: BigInt(end.high) });
    }
  }
  return out;
}

export class FetchWatch {
  /** Per assigned partition (`topic:partition`): when records of it were last delivered, and the next offset. */
  private readonly delivered = new Map<string, { atMs: number; next: bigint }>();
  private assigned: string[] = [];
  private assignedAtMs = Date.now();
  private generation = 0;
  private handling = 0;
  private lastFailureMs = -Infinity;
  /** Steps of work running now, each with what it is and since when ({@link step}). */
  private readonly steps = new Set<{ readonly what: string; readonly sinceMs: number }>();
  private stuckReported = false;
  private check = { running: false, lastMs: 0 };
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: FetchWatchOptions) {}

  /** A watch with an admin client of its own (connect / disconnect it with the consumer), bound by the config. */
  static ownAdmin(
    kafka: Kafka,
    config: Pick<Config, 'PROCESSOR_FETCH_STALL_MS' | 'PROCESSOR_STEP_MAX_MS'>,
    options: Omit<FetchWatchOptions, 'admin' | 'stallMs' | 'stepMaxMs'>,
  ): FetchWatch {
    return new FetchWatch({
      ...options,
      admin: kafka.admin(),
      stallMs: config.PROCESSOR_FETCH_STALL_MS,
      stepMaxMs: config.PROCESSOR_STEP_MAX_MS,
    });
  }

  async connect(): Promise<void> {
    await this.options.admin.connect();
  }

  async disconnect(): Promise<void> {
    this.stop();
    await this.options.admin.disconnect();
  }

  /**
   * Watches `consumer`: each assignment it joins with starts every partition's quiet time, and a check runs every
   * second (at most every min(stallMs / 4, 30 s) against the broker) until {@link stop}.
   */
  follow(consumer: Consumer): void {
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      this.generation++;
      this.assigned = Object.entries(payload.memberAssignment).flatMap(([topic, ps]) => ps.map((p) => `${topic}:${p}`));
      this.assignedAtMs = Date.now();
      this.delivered.clear();
    });
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      this.poll();
    }, 1_000);
    this.timer.unref();
  }

  /** Handles a fetched batch: counted while it runs, its failure remembered, a step while it runs. */
  async handle<T>(work: () => Promise<T>): Promise<T> {
    this.handling++;
    try {
      return await this.step('handling a fetched batch', work);
    } catch (err) {
      this.lastFailureMs = Date.now();
      throw err;
    } finally {
      this.handling--;
    }
  }

  /**
   * Runs one step of the processor's work (`what`: how the stall reason names it), watched while it runs: one still
   * running after stepMaxMs is reported stuck. Steps run beside fetched batches (rounds, flushes) do not hold back the
   * fetch check as {@link handle} does.
   */
  async step<T>(what: string, work: () => Promise<T>): Promise<T> {
    const entry = { what, sinceMs: Date.now() };
    this.steps.add(entry);
    try {
      return await work();
    } finally {
      this.steps.delete(entry);
    }
  }

  /** Records of `tp` up to `lastOffset` were delivered (and taken). */
  deliveredUpTo(tp: string, lastOffset: string): void {
    this.delivered.set(tp, { atMs: Date.now(), next: BigInt(lastOffset) + 1n });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** Looks for a stuck step every second; checks fetching at most every min(stallMs / 4, 30 s), in the background. */
  private poll(): void {
    const { stallMs } = this.options;
    const now = Date.now();
    if (this.stopped) return;
    this.checkSteps(now);
    if (this.check.running || now - this.check.lastMs < Math.min(stallMs / 4, 30_000)) return;
    const candidates = this.quiet(now);
    if (this.handling > 0 || now - this.lastFailureMs < stallMs || candidates.length === 0) return;
    this.check = { running: true, lastMs: now };
    const generation = this.generation;
    void this.behind(candidates)
      .then((behind) => {
        // Still so now: nothing delivered meanwhile, no batch being handled, the same assignment.
        const still = new Set(this.quiet(Date.now()));
        const stalled = behind.filter((b) => still.has(b.tp));
        if (stalled.length === 0 || this.handling > 0 || this.stopped || generation !== this.generation) return;
        const where = stalled.map((b) => `${b.tp} (delivered up to ${b.position}, high watermark ${b.high})`);
        this.options.onStall(
          `the consumer delivered no record of ${where.join(', ')} for ${Math.round(stallMs / 1000)} s ` +
            'although the broker holds records there: its fetching has stalled',
          'fetch',
        );
      })
      .catch((err: unknown) => {
        this.options.log.debug('fetch liveness check failed; asked again later', { error: describeError(err) });
      })
      .finally(() => {
        this.check.running = false;
      });
  }

  /** Reports the oldest step running past stepMaxMs (once: the owner gives up). */
  private checkSteps(now: number): void {
    const bound = this.options.stepMaxMs;
    if (bound === undefined || this.stuckReported) return;
    let oldest: { what: string; sinceMs: number } | undefined;
    for (const s of this.steps) if (!oldest || s.sinceMs < oldest.sinceMs) oldest = s;
    if (!oldest || now - oldest.sinceMs < bound) return;
    this.stuckReported = true;
    this.options.onStall(
      `${oldest.what} has run for ${Math.round((now - oldest.sinceMs) / 1000)} s without ending ` +
        `(PROCESSOR_STEP_MAX_MS ${Math.round(bound / 1000)} s): something it waits on took the request and never ` +
        'answered, and the processor can no longer make progress',
      'step',
    );
  }

  private quiet(at: number): string[] {
    const paused = this.options.paused ?? (() => false);
    return this.assigned.filter(
      (tp) => !paused(tp) && at - (this.delivered.get(tp)?.atMs ?? this.assignedAtMs) >= this.options.stallMs,
    );
  }

  /** Of `tps`, those whose high watermark is past what was delivered (or, with nothing delivered, past the commit). */
  private async behind(tps: readonly string[]): Promise<{ tp: string; position: bigint; high: bigint }[]> {
    const out: { tp: string; position: bigint; high: bigint }[] = [];
    for (const [tp, { committed, high }] of await committedPositions(this.options.admin, this.options.groupId, tps)) {
      const position = this.delivered.get(tp)?.next ?? committed;
      if (high > position) out.push({ tp, position, high });
    }
    return out;
  }
}
