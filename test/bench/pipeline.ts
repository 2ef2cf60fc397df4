/**
 * `npm run bench -- pipeline`: the whole stream (identity resolver → features → scorer, with the warehouse sink
 * running beside it) on the local stack, fed the generated sample platforms' raw events.
 *
 * 1. Fixed offered load: BENCH_PIPELINE_RATE events/s (default 5,000) for the first BENCH_PIPELINE_PACED events
 *    (default 50,000), sent in 10 ms ticks by the platform producer library.
 * 2. Maximum throughput: the rest of the sample sent as fast as the producer goes.
 * Latency of an event = from the moment the platform hands it to the producer to the moment a score reflecting it is
 * in Redis (the scorer reports each score with the ids of the events behind it). Also measured in the same run: the
 * raw rate of a kafkajs consumer that only decodes the same raw topics.
 * Needs a current model (`npm run train`, or `npm run eval`, which trains one when there is none).
 * BENCH_PIPELINE_SINK=0 leaves the warehouse sink out (to see what ClickHouse inserts on the same cores cost).
 */
import { Pipeline } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { PlatformProducer, type PlatformEvent } from '../../processors/producers/platform-producer.js';
import { decodeOnlyRate } from '../../processors/runtime/bench-tools.js';
import { openScratchRun } from '../../processors/scratch-run.js';
import { currentVersion } from '../../processors/scoring/model.js';

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function pipelineBench(): Promise<Record<string, unknown>> {
  const rate = Number(process.env['BENCH_PIPELINE_RATE'] ?? 5_000);
  const pacedCount = Number(process.env['BENCH_PIPELINE_PACED'] ?? 50_000);
  const run = await openScratchRun('bench-pipeline', {
    warehouse: true,
    // Live behaviour: no event-time rescoring storms while old sample data streams through.
    env: { SCORING_CLOCK: 'wall', FEATURES_SNAPSHOT_PERIOD_DAYS: '0' },
  });
  const { config, kafka, admin, serde, topics, clickhouse } = run;
  const model = await currentVersion(config.MODEL_DIR);
  if (!model) {
    await run.dispose();
    throw new Error(`no current model in ${config.MODEL_DIR}: run npm run train (or npm run eval) first`);
  }
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let lastScoreAt = 0;
  const warehouse = process.env['BENCH_PIPELINE_SINK'] !== '0';
  const pipeline = new Pipeline({
    warehouse,
    config,
    kafka,
    serde,
    topics,
    clickhouse,
    onScores: (_scores, causes) => {
      const now = performance.now();
      lastScoreAt = now;
      for (const ids of causes) {
        for (const eventId of ids) {
          const t = sentAt.get(eventId);
          if (t === undefined) continue;
          latencies.push(now - t);
          sentAt.delete(eventId); // the first score reflecting an event is when it became visible
        }
      }
    },
  });
  try {
    const sample = generateSample({ seed: 42, salt: config.IDENTITY_HASH_SALT.reveal() });
    const events: PlatformEvent[] = [
      ...sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
      ...sample.behaviors.map((event) => ({ kind: 'behavior' as const, event })),
    ].sort((a, b) => a.event.eventTimeMs - b.event.eventTimeMs);
    const producer = await PlatformProducer.connect(config, { kafka, serde, topics, lingerMs: 0 });
    await pipeline.start();
    // Warm-up: group joins and the first model run are start-up cost, not latency.
    await producer.publishAll(events.slice(0, 500));
    await pipeline.waitUntilCaughtUp(admin, 120_000);
    latencies.length = 0;

    // 1. Fixed offered load.
    const paced = events.slice(500, 500 + pacedCount);
    const tick = 10;
    const perTick = Math.max(1, Math.round((rate * tick) / 1000));
    const pacedStart = performance.now();
    const inFlight: Promise<unknown>[] = [];
    for (let i = 0; i < paced.length; i += perTick) {
      const due = pacedStart + (i / perTick) * tick;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const chunk = paced.slice(i, i + perTick);
      const now = performance.now();
      for (const e of chunk) sentAt.set(e.event.eventId, now);
      inFlight.push(producer.publishAll(chunk));
    }
    await Promise.all(inFlight);
    const offeredSeconds = (performance.now() - pacedStart) / 1000;
    await pipeline.waitUntilCaughtUp(admin, 300_000);
    const pacedLatencies = [...latencies].sort((a, b) => a - b);
    const pacedScored = pacedLatencies.length;
    const pacedRate = Math.round(paced.length / ((lastScoreAt - pacedStart) / 1000));

    // 2. Maximum throughput: everything left, as fast as the producer goes.
    latencies.length = 0;
    const rest = events.slice(500 + pacedCount);
    const maxStart = performance.now();
    for (const e of rest) sentAt.set(e.event.eventId, maxStart);
    await producer.publishAll(rest);
    await pipeline.waitUntilCaughtUp(admin, 600_000);
    const maxLatencies = [...latencies].sort((a, b) => a - b);
    const maxRate = Math.round(rest.length / ((lastScoreAt - maxStart) / 1000));
    await producer.disconnect();
    await pipeline.stop();

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
      pacedEvents: paced.length,
      pacedScored,
      pacedEventsPerSecond: pacedRate,
      pacedLatencyP50Ms: f(percentile(pacedLatencies, 0.5)),
      pacedLatencyP99Ms: f(percentile(pacedLatencies, 0.99)),
      maxEvents: rest.length,
      maxEventsPerSecond: maxRate,
      maxLatencyP50Ms: f(percentile(maxLatencies, 0.5)),
      maxLatencyP99Ms: f(percentile(maxLatencies, 0.99)),
      decodeOnlyEventsPerSecond: raw,
      maxToRawRatio: Number((maxRate / Math.max(raw, 1)).toFixed(3)),
      goalP99MsAt5000: 50,
      warehouseSink: warehouse,
    };
    console.log(`offered load       ${rate} events/s for ${paced.length} events (${summary.offeredSeconds} s)`);
    console.log(
      `  event → score    p50 ${summary.pacedLatencyP50Ms} ms, p99 ${summary.pacedLatencyP99Ms} ms (${pacedScored} events scored; goal p99 ≤ 50 ms)`,
    );
    console.log(`maximum throughput ${maxRate} events/s end to end (${rest.length} events)`);
    console.log(
      `  event → score    p50 ${summary.maxLatencyP50Ms} ms, p99 ${summary.maxLatencyP99Ms} ms (queueing included)`,
    );
    console.log(`decode-only        ${raw} events/s (raw topics, same run); ratio ${summary.maxToRawRatio}`);
    return summary;
  } finally {
    await pipeline.stop().catch(() => undefined);
    await run.dispose();
  }
}
