/**
 * `npm run bench -- features-cpu`: the feature processor's per-update CPU in process, without Redis or Kafka, on the
 * same generated traffic as `bench -- features` (so on a shared machine it is far less noisy than the end-to-end rate).
 * Events are folded in flushes of `BENCH_CPU_FLUSH_RECORDS` (default 5,000) records grouped by customer as the
 * processor groups a chunk; every changed customer then gets its features, its hash changes and its score record's
 * pure parts, and every `BENCH_CPU_CHECKPOINT_EVERY` (default 5) flushes every state changed since the last
 * checkpoint is encoded as the checkpoint. The first 20 % of the events warm up and are not counted. Phases are timed
 * in process CPU time (GC included), so the figures hold on a machine shared with other work.
 */
import { DEFAULT_CUT_POINTS } from '../../processors/features/definitions.js';
import {
  clickEvent,
  currentFeatures,
  foldEvents,
  hashChanges,
  transactionEvent,
  type ServedHash,
  type SourcedEvent,
} from '../../processors/features/logic.js';
import { emptyState, prune, type FeatureState } from '../../processors/features/state.js';
import { encodeState } from '../../processors/features/store.js';
import { intentScoreRecord, scoreHashFields } from '../../processors/scoring/logic.js';
import { scoreId } from '../../processors/scoring/scorer.js';
import { resolvedEvents, trafficOf } from './resolved-events.js';

interface Customer {
  state: FeatureState;
  served: ServedHash | null;
  version: number;
}

/** CPU time of this process in µs (not wall time: the machine is shared, and other processes' load must not count). */
const now = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

export function featuresCpuBench(): Promise<Record<string, unknown>> {
  const total = Number(process.env['BENCH_FEATURE_EVENTS'] ?? 1_000_000);
  const customers = Number(process.env['BENCH_FEATURE_CUSTOMERS'] ?? 50_000);
  const traffic = trafficOf(process.env);
  const flushRecords = Number(process.env['BENCH_CPU_FLUSH_RECORDS'] ?? 5_000);
  const checkpointEvery = Number(process.env['BENCH_CPU_CHECKPOINT_EVERY'] ?? 5);
  const warmup = Math.floor(total * 0.2);
  const grace = 3 * 86_400_000;
  const cuts = DEFAULT_CUT_POINTS;
  const table = new Map<string, Customer>();
  const unsaved = new Set<Customer>();
  const us = { fold: 0, features: 0, hash: 0, score: 0, checkpoint: 0 };
  let updates = 0;
  let checkpointed = 0;
  let counted = 0;
  let bytes = 0;
  let flushes = 0;
  let buffer: { key: string; record: SourcedEvent }[] = [];
  let offset = 0;

  const flush = (measure: boolean) => {
    flushes++;
    const t0 = now();
    const byCustomer = new Map<string, SourcedEvent[]>();
    for (const { key, record } of buffer) {
      const list = byCustomer.get(key);
      if (list) list.push(record);
      else byCustomer.set(key, [record]);
    }
    const changed: Customer[] = [];
    for (const [key, records] of byCustomer) {
      let c = table.get(key);
      if (!c) {
        c = { state: emptyState(), served: null, version: 0 };
        table.set(key, c);
      }
      if (foldEvents(c.state, records, grace).applied > 0) {
        changed.push(c);
        unsaved.add(c);
      }
    }
    for (const c of changed) prune(c.state); // once per changed customer and flush, as the processor's snapshot
    const t1 = now();
    const features = changed.map((c) => currentFeatures(c.state, cuts));
    const t2 = now();
    const nowMs = Date.now();
    changed.forEach((c, i) => {
      const f = features[i];
      if (!f) return;
      const changes = hashChanges(f, c.served, ++c.version, nowMs);
      c.served = changes.next;
    });
    const t3 = now();
    changed.forEach((c, i) => {
      const f = features[i];
      if (!f) return;
      const id = String(i);
      const score = intentScoreRecord({
        eventId: scoreId(id, f.refMs, 'bench'),
        customerId: id,
        features: f,
        probability: 0.5,
        modelVersion: 'bench',
        calibration: [],
        thresholds: { high: 0.7, medium: 0.4 },
        scoredAtMs: nowMs,
      });
      scoreHashFields(score);
    });
    const t4 = now();
    let saved = 0;
    if (flushes % checkpointEvery === 0) {
      for (const c of unsaved) {
        bytes += measure ? encodeState(c.state).length : 0;
        saved++;
      }
      unsaved.clear();
    }
    const t5 = now();
    if (measure) {
      us.fold += t1 - t0;
      us.features += t2 - t1;
      us.hash += t3 - t2;
      us.score += t4 - t3;
      us.checkpoint += t5 - t4;
      updates += changed.length;
      checkpointed += saved;
      counted += buffer.length;
    }
    buffer = [];
  };

  for (const ev of resolvedEvents(total, customers, traffic)) {
    // Decoded events become FeatureEvents as the processor's apply() makes them (not timed: decoding is Kafka's part).
    const event = ev.kind === 'transaction' ? transactionEvent(ev.value) : clickEvent(ev.value);
    const stream = `${ev.kind === 'transaction' ? 't' : 'c'}|${ev.key}`;
    buffer.push({ key: ev.key, record: { event, source: 'bench:0', offset: offset++, stream } });
    if (buffer.length >= flushRecords) flush(offset > warmup);
  }
  if (buffer.length > 0) flush(true);

  const perUpdate = (v: number) => Number((v / Math.max(updates, 1)).toFixed(2));
  const totalUs = us.fold + us.features + us.hash + us.score + us.checkpoint;
  const result = {
    bench: 'features-cpu',
    events: counted,
    customers,
    traffic,
    updates,
    updatesPerEvent: Number((updates / Math.max(counted, 1)).toFixed(3)),
    foldUsPerUpdate: perUpdate(us.fold),
    featuresUsPerUpdate: perUpdate(us.features),
    hashUsPerUpdate: perUpdate(us.hash),
    scoreRecordUsPerUpdate: perUpdate(us.score),
    checkpointUsPerState: Number((us.checkpoint / Math.max(checkpointed, 1)).toFixed(2)),
    checkpointBytesPerState: Math.round(bytes / Math.max(checkpointed, 1)),
    pureEventsPerSecond: Math.round(counted / (totalUs / 1e6)),
  };
  console.log(
    `per update         fold ${result.foldUsPerUpdate} µs, features ${result.featuresUsPerUpdate} µs, hash changes ${result.hashUsPerUpdate} µs, score record ${result.scoreRecordUsPerUpdate} µs (${result.updatesPerEvent} updates per event)`,
  );
  console.log(
    `checkpoint         ${result.checkpointUsPerState} µs and ${result.checkpointBytesPerState} bytes per state (${checkpointed} states)`,
  );
  console.log(`pure path          ${result.pureEventsPerSecond} events/s on one core (no Redis, no Kafka)`);
  return Promise.resolve(result);
}
