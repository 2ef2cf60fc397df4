/**
 * `npm run bench -- <name>`: benchmarks on the real local stack (or the configured endpoints). Each prints its figures,
 * a ratio to a peer or to the raw limit measured in the same run, and ends with one JSON line.
 *
 * - identity: FEBRL4 (10,000 records, two platforms) through the real identity resolver, against a kafkajs consumer
 *   that only decodes the same records.
 * - identity-messy: the generated messy benchmark (~50,000 records of ~5,000 people, no identifier) through the real
 *   identity resolver: precision, recall, F1, the largest cluster, records/s against the same decode-only consumer.
 * - features: ≥ 1 million generated resolved events through the feature processor, against a decode-only consumer.
 * - features-cpu: the feature processor's per-update CPU in process (fold, features, hash, score record, checkpoint).
 * - pipeline: raw events → resolver → features → scorer → Redis at 5,000 events/s and at maximum throughput: event-to-
 *   score latency and events/s, against a decode-only consumer of the raw topics.
 * - scale: the feature processor on 8 partitions with 1, 2 and 4 instances (processes), and the time to restore a
 *   killed instance's partitions on the survivors.
 * - restore: a partition's feature state restored lazily from the Redis checkpoint (what the processor does) against
 *   a compacted changelog replay, and what a checkpoint costs each way, on the same states.
 * - api: the prediction API (its own process) under autocannon at 1,000 requests/s and at maximum: cached and computed
 *   predictions, batches of 100, ad decisions, against a bare Redis HGETALL and GET /health.
 */
import { fileURLToPath } from 'node:url';
import { apiBench } from './api.js';
import { evaluateFiles } from '../../processors/identity/eval-cli.js';
import { featuresBench } from './features.js';
import { identityMessyBench } from './identity-messy.js';
import { featuresCpuBench } from './features-cpu.js';
import { pipelineBench } from './pipeline.js';
import { releaseOnInterrupt } from '../../processors/tools/interrupt.js';
import { restoreBench } from './restore.js';
import { scaleBench } from './scale.js';

const dataDir = fileURLToPath(new URL('../../../shared/data/', import.meta.url));

const benches: Record<string, () => Promise<Record<string, unknown>>> = {
  api: apiBench,
  features: featuresBench,
  'features-cpu': featuresCpuBench,
  pipeline: pipelineBench,
  scale: scaleBench,
  restore: restoreBench,
  'identity-messy': identityMessyBench,
  async identity() {
    const files = [`${dataDir}febrl4/dataset4a.csv`, `${dataDir}febrl4/dataset4b.csv`];
    const result = await evaluateFiles(files, { measureRawConsumer: true });
    const raw = result.rawDecodePerSecond ?? 0;
    console.log(
      `identity resolver  ${result.recordsPerSecond} records/s (${result.records} records, FEBRL4), ` +
        `${result.cpuMicrosPerRecord} µs of process CPU per record`,
    );
    console.log(`decode-only        ${raw} records/s (same topic, same run: the raw limit)`);
    console.log(`ratio              ${(result.recordsPerSecond / Math.max(raw, 1)).toFixed(3)}`);
    if (result.metrics)
      console.log(
        `quality            F1 ${result.metrics['f1']} (precision ${result.metrics['precision']}, recall ${result.metrics['recall']})`,
      );
    return {
      bench: 'identity',
      dataset: 'febrl4',
      records: result.records,
      resolverRecordsPerSecond: result.recordsPerSecond,
      resolverCpuMicrosPerRecord: result.cpuMicrosPerRecord,
      decodeOnlyRecordsPerSecond: raw,
      ratio: Number((result.recordsPerSecond / Math.max(raw, 1)).toFixed(3)),
      goalRecordsPerSecond: 5_000,
      f1: result.metrics?.['f1'] ?? null,
    };
  },
};

const name = process.argv[2];
const bench = name ? benches[name] : undefined;
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}>`);
  process.exit(2);
}
releaseOnInterrupt(); // an interrupted benchmark removes its scratch run and stops the processes it forked
bench().then(
  (summary) => {
    console.log(JSON.stringify(summary));
    process.exit(0);
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
