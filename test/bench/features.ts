/**
 * `npm run bench -- features`: the feature processor on the local stack (or configured endpoints) over ≥ 1 million
 * generated resolved events, against a kafkajs consumer that only decodes the same topics in the same run.
 *
 * Events: `BENCH_FEATURE_EVENTS` (default 1,000,000) clicks and transactions of `BENCH_FEATURE_CUSTOMERS` (default
 * 50,000) customers over 30 days in event-time order, keyed by global id as the resolver publishes them. Figures:
 * events/s from the processor's first batch to its last commit, and per-event latency from the moment its batch was
 * handed to the processor to the commit of its offsets (state, features and score written), p50/p99. The processor is
 * built by FeatureApp, the same wiring as `npm run start:feature-processor`; it scores when a model is current.
 * `BENCH_CPU_PROFILE=<file.cpuprofile>` writes a V8 CPU profile of the processor phase alone (open it in Chrome
 * DevTools or speedscope).
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { Redis } from 'ioredis';
import { FeatureApp } from '../../processors/features/app.js';
import type { FlushTiming } from '../../processors/features/processor.js';
import { decodeOnlyRate } from '../../processors/tools/bench-tools.js';
import { openScratchRun } from '../../processors/tools/scratch-run.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import { produceResolvedEvents, trafficOf } from './resolved-events.js';

/**
 * Weighted percentile of per-flush latencies: a record folded right after the previous flush took its snapshot waits
 * at most until this flush commits, so each flush counts `committed − previous snapshot` once per record in it.
 */
function percentile(timings: readonly FlushTiming[], q: number): number {
  const sorted = timings
    .map((t, i) => ({ ms: t.committedAtMs - (timings[i - 1]?.startedAtMs ?? t.startedAtMs), n: t.records }))
    .sort((a, b) => a.ms - b.ms);
  const total = sorted.reduce((n, t) => n + t.n, 0);
  let seen = 0;
  for (const t of sorted) {
    seen += t.n;
    if (seen >= q * total) return t.ms;
  }
  return sorted.at(-1)?.ms ?? 0;
}

export async function featuresBench(): Promise<Record<string, unknown>> {
  const total = Number(process.env['BENCH_FEATURE_EVENTS'] ?? 1_000_000);
  const customers = Number(process.env['BENCH_FEATURE_CUSTOMERS'] ?? 50_000);
  const traffic = trafficOf(process.env);
  const run = await openScratchRun('bench-features');
  const { config, kafka, serde, topics } = run;
  const redis = new Redis(config.REDIS_URL, { enableAutoPipelining: true });
  try {
    // 1. Produce the events (not timed as part of either figure).
    const produceStarted = Date.now();
    await produceResolvedEvents(run, total, customers, traffic);
    const produceSeconds = (Date.now() - produceStarted) / 1000;
    console.log(
      `produced           ${total} events for ${customers} customers (${traffic} traffic) in ${produceSeconds.toFixed(1)} s`,
    );

    // 2. The raw limit: decode only, same topics, same run.
    const inputs = [topics.customerTransactions, topics.customerClicks];
    const raw = await decodeOnlyRate(kafka, serde, inputs, total, `${config.TOPIC_PREFIX}decode-only`);
    console.log(`decode-only        ${raw} events/s (kafkajs consumer that only decodes)`);

    // 3. The feature processor.
    const timings: FlushTiming[] = [];
    const failure: { error?: Error } = {};
    const app = new FeatureApp({
      config,
      kafka,
      serde,
      topics,
      log: createLogger('warn', { processor: 'feature-processor' }),
      metrics: createMetrics(),
      onFlushed: (t) => timings.push(t),
      onFatal: (e) => (failure.error = e),
    });
    const processor = app.processor;
    const redisCpu = async () => {
      const cpu = await redis.info('cpu');
      const num = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(cpu)?.[1] ?? 0);
      return num('used_cpu_user') + num('used_cpu_sys');
    };
    const profileFile = process.env['BENCH_CPU_PROFILE'];
    const profiler = profileFile ? new Session() : null;
    if (profiler) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    const redisCpuBefore = await redisCpu();
    const cpuBefore = process.cpuUsage();
    const started = Date.now();
    await app.start();
    const model = app.models.current?.version ?? null;
    while (processor.processedCount < total) {
      if (failure.error) throw failure.error;
      if (Date.now() - started > 900_000) throw new Error(`feature processor stalled at ${processor.processedCount}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const lastCommit = Math.max(...timings.map((t) => t.committedAtMs));
    const seconds = (lastCommit - (processor.firstBatchAtMs ?? started)) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    if (profiler && profileFile) {
      const { profile } = await profiler.post('Profiler.stop');
      await writeFile(profileFile, JSON.stringify(profile));
      profiler.disconnect();
      console.log(`cpu profile        ${profileFile}`);
    }
    const nodeCpuShare = (cpu.user + cpu.system) / 1e6 / seconds;
    // CPU per event is what the processor's own code costs; events/s also depends on what else the cores run.
    const cpuUsPerEvent = Math.round((cpu.user + cpu.system) / total);
    const redisCpuShare = ((await redisCpu()) - redisCpuBefore) / seconds;
    await app.stop();
    const rate = Math.round(total / seconds);
    const p50 = percentile(timings, 0.5);
    const p99 = percentile(timings, 0.99);
    const ratio = Number((rate / Math.max(raw, 1)).toFixed(3));
    const info = await redis.info('memory');
    const usedMemory = /used_memory_human:(\S+)/.exec(info)?.[1] ?? '?';
    console.log(
      `feature processor  ${rate} events/s (${total} events, ${timings.length} flushes, ${seconds.toFixed(1)} s, model ${model ?? 'none: features only'})`,
    );
    console.log(
      `latency            p50 ${p50} ms, p99 ${p99} ms (batch handed over → state, hash, score written and offsets committed)`,
    );
    const mean = (f: (t: FlushTiming) => number) => Math.round(timings.reduce((n, t) => n + f(t), 0) / timings.length);
    console.log(
      `flushes            ${timings.length}, ${timings.filter((t) => t.checkpoint).length} checkpoints; mean ${mean((t) => t.records)} records, ${mean((t) => t.customers)} customer writes, snapshot ${mean((t) => t.snapshotMs)} ms, writes ${mean((t) => t.writeMs)} ms (Redis ${mean((t) => t.redisMs)}, Kafka ${mean((t) => t.kafkaMs)}, in parallel), commit ${mean((t) => t.commitMs)} ms`,
    );
    console.log(`ratio              ${ratio} (goal ≥ 0.5 and ≥ 25,000 events/s)`);
    console.log(`redis memory       ${usedMemory} after the run`);
    console.log(
      `cpu                processor ${nodeCpuShare.toFixed(2)} cores (${cpuUsPerEvent} µs per event), redis ${redisCpuShare.toFixed(2)} cores`,
    );
    return {
      bench: 'features',
      events: total,
      customers,
      traffic,
      model,
      flushes: timings.length,
      processorEventsPerSecond: rate,
      decodeOnlyEventsPerSecond: raw,
      ratio,
      latencyP50Ms: p50,
      latencyP99Ms: p99,
      processorCpuCores: Number(nodeCpuShare.toFixed(2)),
      processorCpuUsPerEvent: cpuUsPerEvent,
      redisCpuCores: Number(redisCpuShare.toFixed(2)),
      goalRatio: 0.5,
      goalEventsPerSecond: 25_000,
    };
  } finally {
    redis.disconnect();
    await run.dispose();
  }
}
