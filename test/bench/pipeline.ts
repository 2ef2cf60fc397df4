/**
 * `npm run bench -- pipeline`: the whole stream (identity resolver → features → scorer, with the warehouse sink
 * running beside it) on the local stack, fed the generated sample platforms' raw events. As deployed, each part runs
 * in a process of its own (`pipeline-part.ts`), and the platforms' producer (this process) in another.
 *
 * 0. Warm-up: BENCH_PIPELINE_WARMUP events (default 15,000) at the offered rate, not measured (group joins, first
 *    model runs, JIT).
 * 1. Fixed offered load: BENCH_PIPELINE_RATE events/s (default 5,000) for the next BENCH_PIPELINE_PACED events
 *    (default 50,000), sent in 10 ms ticks by the platform producer library.
 * 2. Maximum throughput: the rest of the sample and a second sample of other customers (BENCH_PIPELINE_MAX_EVENTS in
 *    all, default 200,000) sent as fast as the producer goes, the parts working meanwhile; with
 *    BENCH_PIPELINE_MAX=backlog, produced while the parts are stopped and then worked off by fresh ones (no producer on
 *    the same cores; the rate counts from the resolver's first batch, so group joins are left out). Two rates: over
 *    the whole run (its start to the last score: filling and draining the pipeline included) and steady, while the
 *    middle 80 % of the events were scored (10th to 90th percentile of their score times).
 * The paced latency is also printed by when the events were sent, per BENCH_PIPELINE_WINDOW_S (default 10) seconds:
 * whether the run measured a steady state or one still warming up (JIT compilation, customers seen for the first time).
 * Latency of an event = from the moment the platform hands it to the producer to the moment a score reflecting it is
 * in Redis: the flush's Redis write acknowledged (the scorer reports each score with the ids of the events behind it
 * and that moment); printed beside it, to the flush being done (the scores also sent to their topic, the offsets
 * committed), which the ad server does not wait for. Also measured in the same run: the raw rate of a kafkajs consumer
 * that only decodes the same raw topics.
 * Needs a current model (`npm run train`, or `npm run eval`, which trains one when there is none).
 * BENCH_PIPELINE_SINK=0 leaves the warehouse sink out (to see what ClickHouse inserts on the same cores cost);
 * BENCH_PIPELINE_PROCESSES=1 runs all parts in one process (as the demo and the evaluation do).
 * BENCH_PART_CPU_PROFILE_DIR=<dir> writes a V8 CPU profile of each part's process into <dir> when it exits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitUntilCaughtUp, type PipelinePart } from '../../processors/pipeline.js';
import { PROCESSOR_NODE_FLAGS } from '../../processors/runtime/node-flags.js';
import { generateSample } from '../../processors/producers/generate.js';
import { PlatformProducer, type PlatformEvent } from '../../processors/producers/platform-producer.js';
import { decodeOnlyRate } from '../../processors/tools/bench-tools.js';
import { hold } from '../../processors/tools/interrupt.js';
import { openScratchRun, type ScratchRun } from '../../processors/tools/scratch-run.js';
import type { TopicSpec } from '../../topics/catalog.js';
import { currentVersion } from '../../processors/scoring/model.js';
import type { PartMessage } from './pipeline-part.js';
import { latencyWindows, percentile } from './pipeline-logic.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The machine's clock in ms with sub-ms resolution, comparable between processes. */
const clock = () => performance.timeOrigin + performance.now();
const PART_ENTRY = fileURLToPath(new URL('./pipeline-part.ts', import.meta.url));

/** Node options of each part: BENCH_PART_CPU_PROFILE_DIR=<dir> writes a V8 CPU profile of each when it exits. */
function partArgs(): string[] {
  const dir = process.env['BENCH_PART_CPU_PROFILE_DIR'];
  return ['--import', 'tsx', ...PROCESSOR_NODE_FLAGS, ...(dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [])];
}

/** Forks one process per group of parts and resolves once all of them consume. */
export async function startParts(
  groups: readonly (readonly PipelinePart[])[],
  env: Readonly<Record<string, string | undefined>>,
  /** Every message of part group `index`, from its first (an assignment can arrive before 'ready'). */
  onMessage: (message: PartMessage, index: number) => void,
): Promise<ChildProcess[]> {
  const children = groups.map((parts) =>
    fork(PART_ENTRY, [parts.join(',')], { env: { ...env }, execArgv: partArgs(), stdio: 'inherit' }),
  );
  // Stopped on an interrupt too (interrupt.ts), before the run whose topics they consume is disposed.
  const unhold = hold(`pipeline parts ${groups.map((g) => g.join('+')).join(', ')}`, () => stopParts(children, 5_000));
  let exited = 0;
  for (const child of children) {
    child.once('exit', () => {
      if (++exited === children.length) unhold();
    });
  }
  await Promise.all(
    children.map(
      (child, i) =>
        new Promise<void>((resolve, reject) => {
          child.on('message', (message: PartMessage) => {
            if (message.type === 'ready') resolve();
            else if (message.type === 'failed') reject(new Error(`${groups[i]?.join(',')}: ${message.error}`));
            onMessage(message, i);
          });
          child.on('exit', (code) => {
            reject(new Error(`${groups[i]?.join(',')} exited with ${code} before starting`));
          });
        }),
    ),
  ).catch(async (err: unknown) => {
    await stopParts(children);
    throw err;
  });
  return children;
}

/** Cores each group of parts used between two cpuOf readings `wallUs` apart. */
function coresOf(
  groups: readonly (readonly PipelinePart[])[],
  before: readonly number[],
  after: readonly number[],
  wallUs: number,
): Record<string, number> {
  return Object.fromEntries(groups.map((g, i) => [g.join('+'), ((after[i] ?? 0) - (before[i] ?? 0)) / wallUs]));
}

/** `name 0.42 cores (48 µs/event), …` for `events` events over `wallUs`. */
function cpuLine(cores: Readonly<Record<string, number>>, wallUs: number, events: number): string {
  return Object.entries(cores)
    .map(([k, v]) => `${k} ${v.toFixed(2)} cores (${Math.round((v * wallUs) / events)} µs/event)`)
    .join(', ');
}

const rounded = (cores: Readonly<Record<string, number>>) =>
  Object.fromEntries(Object.entries(cores).map(([k, v]) => [k, Number(v.toFixed(2))]));

/** Sends a part `{ type }` and resolves with its reply of the same type. */
function ask<T extends 'usage' | 'started'>(child: ChildProcess, type: T): Promise<Extract<PartMessage, { type: T }>> {
  return new Promise((resolve) => {
    const onMessage = (message: PartMessage) => {
      if (message.type !== type) return;
      child.off('message', onMessage);
      resolve(message as Extract<PartMessage, { type: T }>);
    };
    child.on('message', onMessage);
    child.send({ type });
  });
}

/** CPU time (µs) each part's process has used so far. */
function cpuOf(children: readonly ChildProcess[]): Promise<number[]> {
  return Promise.all(children.map(async (child) => (await ask(child, 'usage')).cpuUs));
}

/** When the resolver (in the part group holding it) received its first batch, on this process's clock. */
async function resolverStartedAt(
  children: readonly ChildProcess[],
  groups: readonly (readonly PipelinePart[])[],
): Promise<number> {
  const child = children[groups.findIndex((g) => g.includes('identity'))];
  const { atMs } = child ? await ask(child, 'started') : { atMs: null };
  if (atMs === null) throw new Error('the resolver never received a batch');
  return atMs + (clock() - Date.now()); // Date.now() in the part; on this clock within a millisecond
}

/** Asks each part to stop cleanly, SIGKILLs it after `graceMs` (or when the request cannot be sent), waits for all. */
export async function stopParts(children: readonly ChildProcess[], graceMs = 30_000): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            resolve();
            return;
          }
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.send({ type: 'stop' }, (err) => {
            if (err) child.kill('SIGKILL');
          });
        }),
    ),
  );
}

/**
 * A consumer on `specs` that reports when each event reached them, to split the latency per stage (the platform
 * producer, the resolver, the feature processor). Costs this process a decode per event.
 */
async function tapStage(
  run: ScratchRun,
  name: string,
  specs: readonly TopicSpec[],
  onEvent: (eventId: string, atMs: number) => void,
): Promise<{ disconnect: () => Promise<void> }> {
  const { kafka, serde, config } = run;
  const consumer = kafka.consumer({ groupId: `${config.TOPIC_PREFIX}tap-${name}`, maxWaitTimeInMs: 500 }); // a long poll: data is answered at once
  await consumer.connect();
  for (const spec of specs) await consumer.subscribe({ topic: spec.name, fromBeginning: true });
  const byName = new Map(specs.map((s) => [s.name, s]));
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      const atMs = clock();
      const spec = byName.get(batch.topic);
      if (!spec) return;
      for (const m of batch.messages) {
        const event = await serde.decode<{ eventId?: unknown }>(spec, m.value);
        if (typeof event.eventId === 'string') onEvent(event.eventId, atMs);
      }
    },
  });
  return { disconnect: () => consumer.disconnect() };
}

export async function pipelineBench(): Promise<Record<string, unknown>> {
  const rate = Number(process.env['BENCH_PIPELINE_RATE'] ?? 5_000);
  const pacedCount = Number(process.env['BENCH_PIPELINE_PACED'] ?? 50_000);
  const warmupCount = Number(process.env['BENCH_PIPELINE_WARMUP'] ?? 15_000);
  const warehouse = process.env['BENCH_PIPELINE_SINK'] !== '0';
  const oneProcess = process.env['BENCH_PIPELINE_PROCESSES'] === '1';
  const backlog = process.env['BENCH_PIPELINE_MAX'] === 'backlog';
  const maxCount = Number(process.env['BENCH_PIPELINE_MAX_EVENTS'] ?? 200_000);
  const windowMs = 1000 * Number(process.env['BENCH_PIPELINE_WINDOW_S'] ?? 10);
  if (!(windowMs > 0)) throw new Error('BENCH_PIPELINE_WINDOW_S must be a number of seconds > 0');
  const parts: PipelinePart[] = warehouse ? ['identity', 'features', 'sink'] : ['identity', 'features'];
  const groups = oneProcess ? [parts] : parts.map((p) => [p]);
  const run = await openScratchRun('bench-pipeline', {
    warehouse: true,
    // Live behaviour: no event-time rescoring storms while old sample data streams through.
    env: { SCORING_CLOCK: 'wall', FEATURES_SNAPSHOT_PERIOD_DAYS: '0' },
  });
  const { config, kafka, admin, serde, topics } = run;
  const model = await currentVersion(config.MODEL_DIR);
  if (!model) {
    await run.dispose();
    throw new Error(`no current model in ${config.MODEL_DIR}: run npm run train (or npm run eval) first`);
  }
  const scope = { config, topics, warehouse };
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  /** Event → its flush done (scores also on their topic, offsets committed): beyond what the ad server waits for. */
  const doneLatencies: number[] = [];
  /** When each event of `latencies` was sent (same index): the paced latency over time. */
  const latencySentAt: number[] = [];
  /** When each event reached the resolved topics (the stage tap below), to split the latency per stage. */
  const rawAt = new Map<string, number>();
  const resolvedAt = new Map<string, number>();
  const toRaw: number[] = [];
  const toResolved: number[] = [];
  const resolvedToScore: number[] = [];
  let lastScoreAt = 0;
  /** When each event was first scored (the maximum-throughput run's steady rate). */
  const scoredAt: number[] = [];
  const onMessage = (message: PartMessage) => {
    if (message.type !== 'scores') return;
    for (const eventId of message.eventIds) {
      const t = sentAt.get(eventId);
      if (t === undefined) continue;
      // Only scores of the events sent count for the rates: a rescore (no events behind it) that comes while the
      // groups' commits catch up would otherwise stretch the run by seconds.
      lastScoreAt = message.atMs;
      scoredAt.push(message.atMs);
      latencies.push(message.atMs - t);
      latencySentAt.push(t);
      doneLatencies.push(message.doneAtMs - t);
      sentAt.delete(eventId); // the first score reflecting an event is when it became visible
      const raw = rawAt.get(eventId);
      const r = resolvedAt.get(eventId);
      rawAt.delete(eventId);
      resolvedAt.delete(eventId);
      if (raw === undefined || r === undefined) continue;
      toRaw.push(raw - t);
      toResolved.push(r - raw);
      resolvedToScore.push(message.atMs - r);
    }
  };
  let children: ChildProcess[] = [];
  try {
    const sample = generateSample({ seed: 42, salt: config.IDENTITY_HASH_SALT.reveal() });
    const eventsOf = (s: typeof sample): PlatformEvent[] =>
      [
        ...s.transactions.map((event) => ({ kind: 'transaction' as const, event })),
        ...s.behaviors.map((event) => ({ kind: 'behavior' as const, event })),
      ].sort((a, b) => a.event.eventTimeMs - b.event.eventTimeMs);
    const events = eventsOf(sample);
    // The maximum-throughput run needs more than the sample's rest (~24,000 events: about a second of work, mostly the
    // pipeline filling and draining): a second sample of other customers, whose 120 days end a month after the first's.
    const extra = Math.max(0, maxCount - (events.length - warmupCount - pacedCount));
    if (extra > 0) {
      const scale = Math.ceil(extra / events.length);
      const more = generateSample({
        seed: 43,
        salt: config.IDENTITY_HASH_SALT.reveal(),
        customers: 1_247 * scale,
        targetTransactions: 3_891 * scale,
        endTimeMs: Date.UTC(2026, 10, 1),
      });
      for (const e of eventsOf(more).slice(0, extra)) events.push(e);
    }
    const producer = await PlatformProducer.connect(config, { kafka, serde, topics, lingerMs: 0 });
    children = await startParts(groups, run.env, onMessage);
    const taps = [
      await tapStage(run, 'raw', [topics.transactionsRaw, topics.clicksRaw], (eventId, atMs) => {
        if (sentAt.has(eventId)) rawAt.set(eventId, atMs);
      }),
      await tapStage(run, 'resolved', [topics.customerTransactions, topics.customerClicks], (eventId, atMs) => {
        if (sentAt.has(eventId)) resolvedAt.set(eventId, atMs);
      }),
    ];
    // Scores travel to this process over IPC; give the last ones a moment after the groups report caught up.
    const caughtUp = async (timeoutMs: number) => {
      await waitUntilCaughtUp(admin, scope, timeoutMs);
      await sleep(250);
    };
    /** Sends `batch` at `rate` events/s in 10 ms ticks; resolves when all are scored, with latencies and rate. */
    const paced = async (batch: readonly PlatformEvent[]) => {
      latencies.length = 0;
      latencySentAt.length = 0;
      doneLatencies.length = 0;
      toRaw.length = 0;
      toResolved.length = 0;
      resolvedToScore.length = 0;
      const tick = 10;
      const perTick = Math.max(1, Math.round((rate * tick) / 1000));
      const start = clock();
      const inFlight: Promise<unknown>[] = [];
      for (let i = 0; i < batch.length; i += perTick) {
        const wait = start + (i / perTick) * tick - clock();
        if (wait > 0) await sleep(wait);
        const chunk = batch.slice(i, i + perTick);
        const now = clock();
        for (const e of chunk) sentAt.set(e.event.eventId, now);
        inFlight.push(producer.publishAll(chunk));
      }
      await Promise.all(inFlight);
      const seconds = (clock() - start) / 1000;
      await caughtUp(300_000);
      const sorted = [...latencies].sort((x, y) => x - y);
      const done = [...doneLatencies].sort((x, y) => x - y);
      const windows = latencyWindows(latencySentAt, latencies, windowMs);
      const stages = {
        raw: [...toRaw].sort((x, y) => x - y),
        resolved: [...toResolved].sort((x, y) => x - y),
        scored: [...resolvedToScore].sort((x, y) => x - y),
      };
      return {
        seconds,
        sorted,
        done,
        windows,
        stages,
        rate: Math.round(batch.length / ((lastScoreAt - start) / 1000)),
      };
    };
    // Warm-up at the offered rate: group joins, the first model runs and the JIT are start-up cost, not latency.
    await paced(events.slice(0, warmupCount));

    // 1. Fixed offered load, with the CPU each process used meanwhile (which part limits the rate).
    const cpuBefore = await cpuOf(children);
    const ownBefore = process.cpuUsage();
    const pacedStart = clock();
    const measured = await paced(events.slice(warmupCount, warmupCount + pacedCount));
    const pacedWallUs = (clock() - pacedStart) * 1000;
    const cpuAfter = await cpuOf(children);
    const own = process.cpuUsage(ownBefore);
    const partCpu = {
      ...coresOf(groups, cpuBefore, cpuAfter, pacedWallUs),
      producer: (own.user + own.system) / pacedWallUs,
    };
    const offeredSeconds = measured.seconds;
    const pacedLatencies = measured.sorted;
    const pacedScored = pacedLatencies.length;
    const pacedRate = measured.rate;

    // 2. Maximum throughput: everything left, as fast as the producer goes (live), or produced while the parts are
    // stopped and worked off by fresh ones (backlog: no producer on the same cores, the rate from the resolver's first
    // batch on).
    for (const tap of taps) await tap.disconnect(); // their decoding would take cores from the parts
    latencies.length = 0;
    scoredAt.length = 0;
    const rest = events.slice(warmupCount + pacedCount);
    if (rest.length === 0)
      throw new Error(`nothing left for the maximum-throughput run: the sample has ${events.length} events`);
    let maxStart: number;
    // CPU of each part over the run (which part a faster pipeline needs cheaper); in backlog mode from when the fresh
    // parts consume (their start-up left out).
    let maxCpuBefore: number[];
    let maxCpuFrom: number;
    if (backlog) {
      await stopParts(children);
      await producer.publishAll(rest);
      const started = clock();
      for (const e of rest) sentAt.set(e.event.eventId, started);
      children = await startParts(groups, run.env, onMessage);
      maxCpuBefore = await cpuOf(children);
      maxCpuFrom = clock();
      await caughtUp(600_000);
      // From the resolver's first batch: group joins left out, its first round's work (before any score) counted.
      maxStart = await resolverStartedAt(children, groups);
    } else {
      maxCpuBefore = await cpuOf(children);
      maxCpuFrom = clock();
      maxStart = clock();
      for (const e of rest) sentAt.set(e.event.eventId, maxStart);
      await producer.publishAll(rest);
      await caughtUp(600_000);
    }
    const maxCpuAfter = await cpuOf(children);
    const maxWallUs = (clock() - maxCpuFrom) * 1000;
    const maxCpu = coresOf(groups, maxCpuBefore, maxCpuAfter, maxWallUs);
    const maxLatencies = [...latencies].sort((a, b) => a - b);
    // Sent, caught up, and still without a score naming them: lost, or scored without being named (a bug either way).
    const pacedUnscored = events.slice(warmupCount, warmupCount + pacedCount).length - pacedScored;
    const maxUnscored = rest.length - maxLatencies.length;
    const maxRate = Math.round(rest.length / ((lastScoreAt - maxStart) / 1000));
    const times = [...scoredAt].sort((a, b) => a - b);
    const steadyMs = percentile(times, 0.9) - percentile(times, 0.1);
    const maxSteadyRate = Math.round((0.8 * times.length) / (steadyMs / 1000));
    await producer.disconnect();
    await stopParts(children);

    // 3. The raw limit on the same raw topics.
    const raw = await decodeOnlyRate(
      kafka,
      serde,
      [topics.transactionsRaw, topics.clicksRaw],
      events.length,
      `${config.TOPIC_PREFIX}decode-only`,
    );
    const f = (x: number) => Number(x.toFixed(1));
    const summary = {
      bench: 'pipeline',
      model,
      events: events.length,
      offeredRate: rate,
      offeredSeconds: f(offeredSeconds),
      warmupEvents: warmupCount,
      pacedEvents: pacedCount,
      pacedScored,
      pacedUnscored,
      pacedEventsPerSecond: pacedRate,
      pacedLatencyP50Ms: f(percentile(pacedLatencies, 0.5)),
      pacedLatencyP99Ms: f(percentile(pacedLatencies, 0.99)),
      pacedFlushDoneP50Ms: f(percentile(measured.done, 0.5)),
      pacedFlushDoneP99Ms: f(percentile(measured.done, 0.99)),
      pacedWindows: measured.windows.map((w) => ({ ...w, p50Ms: f(w.p50Ms), p99Ms: f(w.p99Ms) })),
      pacedToRawP50Ms: f(percentile(measured.stages.raw, 0.5)),
      pacedToRawP99Ms: f(percentile(measured.stages.raw, 0.99)),
      pacedRawToResolvedP50Ms: f(percentile(measured.stages.resolved, 0.5)),
      pacedRawToResolvedP99Ms: f(percentile(measured.stages.resolved, 0.99)),
      pacedResolvedToScoreP50Ms: f(percentile(measured.stages.scored, 0.5)),
      pacedResolvedToScoreP99Ms: f(percentile(measured.stages.scored, 0.99)),
      maxEvents: rest.length,
      maxUnscored,
      maxEventsPerSecond: maxRate,
      maxSteadyEventsPerSecond: maxSteadyRate,
      maxCpuCores: rounded(maxCpu),
      maxLatencyP50Ms: f(percentile(maxLatencies, 0.5)),
      maxLatencyP99Ms: f(percentile(maxLatencies, 0.99)),
      maxMode: backlog ? 'backlog' : 'live',
      decodeOnlyEventsPerSecond: raw,
      maxToRawRatio: Number((maxRate / Math.max(raw, 1)).toFixed(3)),
      maxSteadyToRawRatio: Number((maxSteadyRate / Math.max(raw, 1)).toFixed(3)),
      goalMaxEventsPerSecond: 20_000,
      goalP99MsAt5000: 50,
      warehouseSink: warehouse,
      processes: groups.map((g) => g.join('+')),
      pacedCpuCores: rounded(partCpu),
    };
    console.log(
      `offered load       ${rate} events/s for ${pacedCount} events (${summary.offeredSeconds} s, after ${warmupCount} to warm up)`,
    );
    console.log(
      `  event → score    p50 ${summary.pacedLatencyP50Ms} ms, p99 ${summary.pacedLatencyP99Ms} ms (${pacedScored} events scored, in Redis; goal p99 ≤ 50 ms)`,
    );
    console.log(
      `  → flush done     p50 ${summary.pacedFlushDoneP50Ms} ms, p99 ${summary.pacedFlushDoneP99Ms} ms (also on the scores topic, offsets committed)`,
    );
    console.log(
      `  per stage        p50/p99 ms: producer → raw topics ${summary.pacedToRawP50Ms}/${summary.pacedToRawP99Ms}, resolver → resolved topics ${summary.pacedRawToResolvedP50Ms}/${summary.pacedRawToResolvedP99Ms}, features → score in Redis ${summary.pacedResolvedToScoreP50Ms}/${summary.pacedResolvedToScoreP99Ms} (seen by consumers tapping each topic)`,
    );
    console.log(
      `  by send time     p50/p99 ms per ${windowMs / 1000} s: ` +
        summary.pacedWindows.map((w) => `${w.fromS} s ${w.p50Ms}/${w.p99Ms}`).join(', '),
    );
    console.log(`  cpu per part     ${cpuLine(partCpu, pacedWallUs, pacedCount)}`);
    console.log(
      `maximum throughput ${maxRate} events/s end to end (${rest.length} events, ${backlog ? 'a backlog worked off by fresh parts, from their first batch' : 'sent as fast as the producer goes meanwhile'})`,
    );
    console.log(
      `  steady           ${maxSteadyRate} events/s while the middle 80 % of them were scored (goal ≥ 20,000/s)`,
    );
    console.log(`  cpu per part     ${cpuLine(maxCpu, maxWallUs, rest.length)}`);
    console.log(
      `  event → score    p50 ${summary.maxLatencyP50Ms} ms, p99 ${summary.maxLatencyP99Ms} ms (${backlog ? "from the parts' start" : 'queueing included'})`,
    );
    if (pacedUnscored > 0 || maxUnscored > 0) {
      console.log(
        `WARNING            ${pacedUnscored} paced and ${maxUnscored} maximum-run events were never named by a score ` +
          '(lost, or scored without their ids): the figures above leave them out',
      );
    }
    console.log(
      `decode-only        ${raw} events/s (raw topics, same run); ratio ${summary.maxToRawRatio} (steady ${summary.maxSteadyToRawRatio})`,
    );
    return summary;
  } finally {
    await stopParts(children);
    await run.dispose();
  }
}
