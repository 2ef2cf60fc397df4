/**
 * `npm run bench -- restore`: the two ways a feature-processor instance can get a partition's state back when it takes
 * the partition over, measured on the same states in the same run, on the real stack:
 *
 * - lazily from the Redis checkpoint (what the processor does): the first chunk that touches customers loads their
 *   checkpoints with `FeatureStore.fetch`, one pipelined round trip per chunk of 2,000 customers;
 * - from a compacted changelog topic (Kafka Streams' way): the new owner replays the partition's changelog whole,
 *   decoding every state into memory, before it folds its first event.
 *
 * States: BENCH_RESTORE_EVENTS (default 1,000,000) generated events of BENCH_RESTORE_CUSTOMERS (default 50,000)
 * customers (the features bench's traffic) folded in process. All of them are checkpointed both ways (what a
 * checkpoint costs on each side: the processor's fenced script per customer in pipelined flushes of 2,000, against
 * acks=all sends of key = customer, value = state JSON); one partition's share (an eighth, as with 8 partitions) is then
 * restored both ways. The changelog is the best case, fully compacted (one record per customer); a real one also holds
 * the versions its active segment has not compacted yet. Group joins are left out of the replay time.
 */
import { Redis } from 'ioredis';
import type { Message } from 'kafkajs';
import { clickEvent, foldEvents, transactionEvent, type SourcedEvent } from '../../processors/features/logic.js';
import { emptyState, prune, type FeatureState } from '../../processors/features/state.js';
import { decodeState, encodeState, FeatureStore, type CustomerWrite } from '../../processors/features/store.js';
import { chunksByBytes } from '../../processors/runtime/send-chunks.js';
import { openScratchRun } from '../../processors/tools/scratch-run.js';
import { resolvedEvents } from './resolved-events.js';

const CHUNK = 2_000;
const PARTITIONS = 8;
const GRACE_MS = 3 * 86_400_000;

function foldAll(total: number, customers: number): Map<string, FeatureState> {
  const states = new Map<string, FeatureState>();
  let offset = 0;
  for (const e of resolvedEvents(total, customers)) {
    let state = states.get(e.key);
    if (!state) {
      state = emptyState();
      states.set(e.key, state);
    }
    const event = e.kind === 'transaction' ? transactionEvent(e.value) : clickEvent(e.value);
    const record: SourcedEvent = { event, source: 'bench:0', offset: offset++, stream: `c|${e.key}` };
    foldEvents(state, [record], GRACE_MS);
  }
  for (const state of states.values()) prune(state); // as the processor's flush leaves them
  return states;
}

export async function restoreBench(): Promise<Record<string, unknown>> {
  const total = Number(process.env['BENCH_RESTORE_EVENTS'] ?? 1_000_000);
  const customers = Number(process.env['BENCH_RESTORE_CUSTOMERS'] ?? 50_000);
  const run = await openScratchRun('bench-restore', { env: { LOG_LEVEL: 'error' } });
  const { config, kafka, admin } = run;
  const redis = new Redis(config.REDIS_URL);
  const store = new FeatureStore(redis, {
    prefix: config.TOPIC_PREFIX,
    stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
    featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
    scoresTtlSeconds: config.SCORES_TTL_SECONDS,
  });
  const changelog = `${config.TOPIC_PREFIX}bench.feature-state-changelog`;
  const restoreTopic = `${config.TOPIC_PREFIX}bench.feature-state-changelog-p0`;
  const producer = kafka.producer();
  try {
    const folded = Date.now();
    const states = foldAll(total, customers);
    const encoded = [...states].map(([id, state]) => ({ id, bytes: encodeState(state) }));
    const meanBytes = Math.round(encoded.reduce((n, e) => n + e.bytes.length, 0) / encoded.length);
    console.log(
      `states             ${encoded.length} customers from ${total} events in ${((Date.now() - folded) / 1000).toFixed(1)} s; checkpoint ${meanBytes} bytes on average`,
    );
    await admin.createTopics({
      waitForLeaders: true,
      topics: [changelog, restoreTopic].map((topic, i) => ({
        topic,
        numPartitions: i === 0 ? PARTITIONS : 1,
        replicationFactor: 1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      })),
    });
    await producer.connect();

    // Checkpoint every state both ways.
    const epoch = await store.claimEpoch(0);
    const none = { scored: new Map(), unscored: new Map(), forget: new Map() };
    let started = performance.now();
    for (let i = 0; i < encoded.length; i += CHUNK) {
      const writes: CustomerWrite[] = encoded.slice(i, i + CHUNK).map((e) => ({
        kind: 'write',
        id: e.id,
        epoch,
        version: 1,
        checkpoint: e.bytes,
        absorbed: [],
        hash: [],
        replaceHash: false,
        deleteFields: [],
        score: [],
      }));
      await store.flush(writes, none);
    }
    const redisWriteUs = ((performance.now() - started) * 1000) / encoded.length;
    const messages: Message[] = encoded.map((e) => ({ key: e.id, value: e.bytes }));
    started = performance.now();
    for (let i = 0; i < messages.length; i += CHUNK) {
      for (const part of chunksByBytes(messages.slice(i, i + CHUNK)))
        await producer.sendBatch({ acks: -1, topicMessages: [{ topic: changelog, messages: part }] });
    }
    const changelogWriteUs = ((performance.now() - started) * 1000) / encoded.length;
    console.log(
      `checkpoint write   Redis ${redisWriteUs.toFixed(1)} µs per state (fenced script, pipelined by ${CHUNK}); changelog ${changelogWriteUs.toFixed(1)} µs per state (acks=all)`,
    );

    // One partition's share, restored both ways.
    const share = encoded.filter((_, i) => i % PARTITIONS === 0);
    for (const part of chunksByBytes(share.map((e) => ({ key: e.id, value: e.bytes }))))
      await producer.sendBatch({ acks: -1, topicMessages: [{ topic: restoreTopic, messages: part }] });

    started = performance.now();
    let firstChunkMs = 0;
    let loaded = 0;
    for (let i = 0; i < share.length; i += CHUNK) {
      const got = await store.fetch(share.slice(i, i + CHUNK).map((e) => e.id));
      for (const c of got.values()) if (c.state) loaded++;
      if (i === 0) firstChunkMs = performance.now() - started;
    }
    const redisRestoreMs = performance.now() - started;
    if (loaded !== share.length) throw new Error(`Redis gave back ${loaded} of ${share.length} states`);

    const table = new Map<string, FeatureState>();
    const consumer = kafka.consumer({ groupId: `${config.TOPIC_PREFIX}bench-restore` });
    await consumer.connect();
    await consumer.subscribe({ topic: restoreTopic, fromBeginning: true });
    let firstRecordAt = 0;
    let lastRecordAt = 0;
    const replayed = new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachBatch: async ({ batch }) => {
            firstRecordAt ||= performance.now();
            for (const m of batch.messages) {
              if (m.key && m.value) table.set(m.key.toString('utf8'), decodeState(m.value));
            }
            if (table.size >= share.length) {
              lastRecordAt = performance.now();
              resolve();
            }
            await Promise.resolve();
          },
        })
        .catch(reject);
    });
    await replayed;
    await consumer.disconnect();
    const changelogReplayMs = lastRecordAt - firstRecordAt;
    const ratio = changelogReplayMs / Math.max(redisRestoreMs, 0.001);
    console.log(
      `restore            ${share.length} customers (1 of ${PARTITIONS} partitions): Redis ${redisRestoreMs.toFixed(0)} ms in all, first chunk of ${CHUNK} ready after ${firstChunkMs.toFixed(1)} ms; changelog replay ${changelogReplayMs.toFixed(0)} ms before the first event (join excluded)`,
    );
    console.log(`ratio              changelog replay / Redis restore ${ratio.toFixed(2)}`);
    return {
      bench: 'restore',
      events: total,
      customers: encoded.length,
      stateBytes: meanBytes,
      partitionCustomers: share.length,
      redisWriteUsPerState: Number(redisWriteUs.toFixed(1)),
      changelogWriteUsPerState: Number(changelogWriteUs.toFixed(1)),
      redisRestoreMs: Math.round(redisRestoreMs),
      redisFirstChunkMs: Number(firstChunkMs.toFixed(1)),
      changelogReplayMs: Math.round(changelogReplayMs),
      changelogToRedisRatio: Number(ratio.toFixed(2)),
    };
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [changelog, restoreTopic] }).catch(() => undefined);
    redis.disconnect();
    await run.dispose();
  }
}
