/**
 * `npm run bench -- api`: the prediction API as production runs it (`processors/api/main.ts`, its own process) under
 * autocannon, on customers the real feature processor scored in the same run.
 *
 * Setup: `BENCH_API_EVENTS` (default 40,000) generated resolved events of `BENCH_API_CUSTOMERS` (4,000) customers go
 * through the feature processor (FeatureApp) with the current model, so every customer has a feature hash and a score
 * hash. A tenth of them then lose their score hash: requests for them are scored on demand ("computed").
 *
 * Scenarios, each at 1,000 requests/s offered (`BENCH_API_RATE`, over the fewest keep-alive connections that carry
 * it: autocannon's pacing bursts across connections) and at the maximum autocannon reaches with
 * `BENCH_API_CONNECTIONS` (32) connections, for `BENCH_API_SECONDS` (8) s: a cached predict-intent, a computed one,
 * a batch of 100 cached customers, an ad decision (its exposure acknowledged by Kafka before the answer). Latencies
 * are every response's own time as autocannon measured it (sub-millisecond resolution), p50/p99.
 * Floors in the same run: GET /health through the same HTTP stack at the same rate, and a bare Redis HGETALL of a
 * score hash from this process (sequential, 10,000 calls). Goal: cached predictions p99 ≤ 5 ms at 1,000 requests/s.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon, { type Options } from 'autocannon';
import { Redis } from 'ioredis';
import { FeatureApp } from '../../processors/features/app.js';
import { hold } from '../../processors/tools/interrupt.js';
import { openScratchRun, type ScratchRun } from '../../processors/tools/scratch-run.js';
import { createLogger } from '../../processors/runtime/log.js';
import { createMetrics } from '../../processors/runtime/metrics.js';
import { produceResolvedEvents } from './resolved-events.js';

const API_ENTRY = fileURLToPath(new URL('../../processors/api/main.ts', import.meta.url));
const KEY = 'bench-api-key-0123456789abcdef';

interface Figures {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

const quantile = (sorted: readonly number[], q: number) =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
const round = (ms: number) => Number(ms.toFixed(2));

/** Runs one autocannon scenario and measures every 2xx response's own latency. */
async function load(options: Options): Promise<Figures> {
  const latencies: number[] = [];
  let errors = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (err: Error | null, r: autocannon.Result) => {
      if (err) reject(err);
      else resolve(r);
    });
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
      else errors++;
    });
  });
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: Math.round(latencies.length / Math.max(result.duration, 0.001)),
    p50Ms: round(quantile(latencies, 0.5)),
    p99Ms: round(quantile(latencies, 0.99)),
    errors: errors + result.errors + result.timeouts,
  };
}

/** Starts the API entrypoint in its own process; resolves with its URL once it listens. */
async function startApi(env: Record<string, string | undefined>): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(API_ENTRY, [], {
    env,
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  // Stopped on an interrupt too (interrupt.ts): the API is a server and would outlive this benchmark.
  const unhold = hold('the API process', async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  });
  child.once('exit', unhold);
  const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => {
      reject(new Error(`the API exited with ${code} before listening`));
    });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string; level?: string };
        if (entry.msg === 'listening' && entry.url) resolve(entry.url);
        else if (entry.level === 'error') process.stderr.write(`${line}\n`);
      } catch {
        process.stderr.write(`${line}\n`);
      }
    });
  });
  return { child, url };
}

async function scoreEveryone(run: ScratchRun, events: number, customers: number): Promise<string | null> {
  await produceResolvedEvents(run, events, customers);
  const app = new FeatureApp({
    config: run.config,
    kafka: run.kafka,
    serde: run.serde,
    topics: run.topics,
    log: createLogger('warn', { processor: 'feature-processor' }),
    metrics: createMetrics(),
  });
  await app.start();
  const model = app.models.current?.version ?? null;
  const started = Date.now();
  try {
    if (!model) throw new Error('no current model: run `npm run demo` (or `npm run train`) first, or set MODEL_DIR');
    while (app.processor.processedCount < events) {
      if (Date.now() - started > 600_000)
        throw new Error(`feature processor stalled at ${app.processor.processedCount}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500)); // the last flush's writes
  } finally {
    await app.stop();
  }
  return model;
}

export async function apiBench(): Promise<Record<string, unknown>> {
  const events = Number(process.env['BENCH_API_EVENTS'] ?? 40_000);
  const customers = Number(process.env['BENCH_API_CUSTOMERS'] ?? 4_000);
  const rate = Number(process.env['BENCH_API_RATE'] ?? 1_000);
  const connections = Number(process.env['BENCH_API_CONNECTIONS'] ?? 32);
  // autocannon paces each connection in ticks, so many paced connections fire together and it measures its own
  // bursts (a bare node:http server measured 2.2 ms p50 / 19 ms p99 at 1,000/s over 16 connections, 0.36 / 2.7 ms
  // over 2). So each paced scenario gets the fewest keep-alive connections that carry the rate at its latency.
  const pacedConnections: Record<string, number> = {
    health: 2,
    predictCached: 2,
    predictComputed: 8,
    batch100: 16,
    adDecision: 16,
  };
  const seconds = Number(process.env['BENCH_API_SECONDS'] ?? 8);
  const run = await openScratchRun('bench-api', {
    env: { API_PORT: '0', API_KEYS: KEY, API_RATE_LIMIT_PER_MINUTE: '1000000000', API_BATCH_MAX: '100' },
  });
  const redis = new Redis(run.config.REDIS_URL);
  let api: ChildProcess | undefined;
  try {
    const model = await scoreEveryone(run, events, customers);
    const prefix = run.config.TOPIC_PREFIX;
    const ids = Array.from({ length: customers }, (_, i) => `c-${i}`);
    const scored: string[] = [];
    for (const id of ids) if ((await redis.exists(`${prefix}score:{${id}}`)) === 1) scored.push(id);
    const computedIds = scored.filter((_, i) => i % 10 === 0);
    const cachedIds = scored.filter((_, i) => i % 10 !== 0);
    if (computedIds.length > 0) await redis.del(...computedIds.map((id) => `${prefix}score:{${id}}`));
    console.log(
      `setup              ${events} events → ${scored.length} customers scored with model ${model}; ${computedIds.length} without a cached score`,
    );

    // The floor: a bare HGETALL of a score hash from this machine, one at a time.
    const floor: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const t = process.hrtime.bigint();
      await redis.hgetall(`${prefix}score:{${cachedIds[i % cachedIds.length] ?? 'c-0'}}`);
      floor.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    floor.sort((a, b) => a - b);
    const redisFloor = { p50Ms: round(quantile(floor, 0.5)), p99Ms: round(quantile(floor, 0.99)) };

    const started = await startApi({ ...run.env, API_PORT: '0', LOG_LEVEL: 'info' });
    api = started.child;
    const url = started.url;
    const headers = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
    let n = 0;
    const next = (list: readonly string[]) => list[n++ % list.length] ?? 'c-0';
    const post = (path: string, body: () => unknown): Options['requests'] => [
      {
        method: 'POST',
        path,
        headers,
        setupRequest: (req) => ({ ...req, body: JSON.stringify(body()) }),
      },
    ];
    const scenarios: Record<string, Options['requests']> = {
      predictCached: post('/predict-intent', () => ({ customer_id: next(cachedIds) })),
      predictComputed: post('/predict-intent', () => ({ customer_id: next(computedIds) })),
      batch100: post('/predict-intent/batch', () => ({
        customers: Array.from({ length: 100 }, () => ({ customer_id: next(cachedIds) })),
      })),
      adDecision: post('/ad-decision', () => ({ customer_id: next(cachedIds), placement: 'bench' })),
    };
    const base = { url, duration: seconds };
    // Warm-up: connections, JIT, the registry id of the exposure schema.
    for (const requests of Object.values(scenarios)) await load({ ...base, duration: 2, connections: 8, requests });

    const health = await load({
      ...base,
      connections: pacedConnections['health'] ?? 2,
      overallRate: rate,
      requests: [{ method: 'GET', path: '/health' }],
    });
    const results: Record<string, { atRate: Figures; atMax: Figures }> = {};
    for (const [name, requests] of Object.entries(scenarios)) {
      const atRate = await load({ ...base, connections: pacedConnections[name] ?? 16, overallRate: rate, requests });
      const atMax = await load({ ...base, connections, requests });
      results[name] = { atRate, atMax };
    }

    const line = (label: string, f: Figures) =>
      `${label.padEnd(34)} ${String(f.requestsPerSecond).padStart(6)}/s  p50 ${f.p50Ms.toFixed(2).padStart(6)} ms  p99 ${f.p99Ms.toFixed(2).padStart(6)} ms${f.errors ? `  (${f.errors} errors)` : ''}`;
    console.log(line(`GET /health at ${rate}/s (HTTP floor)`, health));
    for (const [name, r] of Object.entries(results)) {
      console.log(line(`${name} at ${rate}/s`, r.atRate));
      console.log(line(`${name} at max (${connections} conns)`, r.atMax));
    }
    console.log(
      `redis HGETALL (floor)              p50 ${redisFloor.p50Ms} ms, p99 ${redisFloor.p99Ms} ms (sequential, this process)`,
    );
    const cachedP99 = results['predictCached']?.atRate.p99Ms ?? 0;
    const ratio = Number((cachedP99 / Math.max(redisFloor.p99Ms, 0.001)).toFixed(1));
    console.log(
      `ratio              cached predict p99 at ${rate}/s is ${ratio}× the bare HGETALL p99 (goal: p99 ≤ 5 ms)`,
    );
    return {
      bench: 'api',
      model,
      offeredRate: rate,
      connectionsAtMax: connections,
      secondsPerScenario: seconds,
      redisHgetallFloor: redisFloor,
      healthAtRate: health,
      ...results,
      cachedP99OverRedisP99: ratio,
      goalCachedP99Ms: 5,
    };
  } finally {
    if (api && api.exitCode === null) {
      const exited = new Promise((r) => api?.once('exit', r));
      api.kill('SIGTERM');
      await exited;
    }
    redis.disconnect();
    await run.dispose();
  }
}
