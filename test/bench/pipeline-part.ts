/**
 * One part of the pipeline in a process of its own, for `npm run bench -- pipeline` (forked with an IPC channel and the
 * scratch run's settings as its environment): `pipeline-part.ts <part>[,<part>…]` with parts identity, features, sink.
 *
 * Messages to the parent: `{ type: 'ready' }` once consuming; from the features part, `{ type: 'scores', atMs,
 * doneAtMs, eventIds }` after each flush with scores (atMs: when its Redis write was acknowledged, doneAtMs: when the
 * flush was done, its scores sent and offsets committed; both on the machine's clock, performance.timeOrigin + now,
 * comparable across processes); from the features part, `{ type: 'assigned', partitions }` after each rebalance. The
 * parent sends `{ type: 'usage' }` (answered with the CPU time used so far), `{ type: 'started' }` (answered by the
 * identity part with when its resolver received its first batch), `{ type: 'served' }` (answered with the features
 * part's served positions) and `{ type: 'stop' }`; the part stops cleanly and exits.
 */
import { Pipeline, PIPELINE_PARTS, type PipelinePart } from '../../processors/pipeline.js';
import { createClickHouse } from '../../processors/runtime/clickhouse.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { createKafka } from '../../processors/runtime/kafka.js';
import { EventSerde } from '../../processors/runtime/serde.js';
import { topicCatalogOf } from '../../topics/catalog.js';

export type PartMessage =
  | { readonly type: 'ready' }
  /** atMs: when the scores' Redis write was acknowledged; doneAtMs: when their flush was done (sent, committed). */
  | { readonly type: 'scores'; readonly atMs: number; readonly doneAtMs: number; readonly eventIds: readonly string[] }
  | { readonly type: 'assigned'; readonly partitions: readonly number[] }
  | { readonly type: 'failed'; readonly error: string }
  /** Reply to `{ type: 'started' }`, from the identity part: when its resolver received its first batch (epoch ms). */
  | { readonly type: 'started'; readonly atMs: number | null }
  /** Reply to `{ type: 'usage' }`: CPU time this process has used so far (user + system, µs). */
  | { readonly type: 'usage'; readonly cpuUs: number }
  /**
   * Reply to `{ type: 'served' }`: the features part's served positions (FeatureProcessor.servedPositions) and when it
   * received its first batch (epoch ms, null before).
   */
  | {
      readonly type: 'served';
      readonly positions: Readonly<Record<string, number>>;
      readonly firstBatchAtMs: number | null;
    };

const send = (message: PartMessage) => process.send?.(message);

async function main(): Promise<void> {
  const parts = (process.argv[2] ?? '').split(',') as PipelinePart[];
  if (parts.length === 0 || !parts.every((p) => PIPELINE_PARTS.includes(p))) {
    throw new Error(`usage: pipeline-part.ts <part>[,<part>…] (parts: ${PIPELINE_PARTS.join(', ')})`);
  }
  const config = loadConfig(process.env);
  const clickhouse = createClickHouse(config);
  const pipeline = new Pipeline({
    config,
    kafka: createKafka(config),
    serde: EventSerde.forUrl(config.SCHEMA_REGISTRY_URL),
    topics: topicCatalogOf(config),
    clickhouse,
    parts,
    onScores: (_scores, causes, { inRedisAtMs }) => {
      const doneAtMs = performance.timeOrigin + performance.now();
      send({ type: 'scores', atMs: inRedisAtMs, doneAtMs, eventIds: causes.flat() });
    },
    onAssigned: (partitions) => send({ type: 'assigned', partitions }),
    onFatal: (error) => {
      send({ type: 'failed', error: error.message });
      process.exit(1);
    },
  });
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'usage') {
      const { user, system } = process.cpuUsage();
      send({ type: 'usage', cpuUs: user + system });
    }
    if (message.type === 'served') {
      const positions = Object.fromEntries(
        [...pipeline.features.processor.servedPositions()].map(([tp, offset]) => [tp, Number(offset)]),
      );
      send({ type: 'served', positions, firstBatchAtMs: pipeline.features.processor.firstBatchAtMs });
    }
    if (message.type === 'started') send({ type: 'started', atMs: pipeline.identity.resolver.firstBatchAtMs });
    if (message.type !== 'stop') return;
    void pipeline
      .stop()
      .then(() => clickhouse.close())
      .finally(() => process.exit(0));
  });
  // The benchmark that forked this part is gone (killed before it could stop us): nothing reads what we measure, and a
  // part left running would consume and write on the run's topics and keys after they were removed.
  process.once('disconnect', () => {
    void pipeline
      .stop()
      .then(() => clickhouse.close())
      .finally(() => process.exit(1));
  });
  await pipeline.start();
  send({ type: 'ready' });
}

main().catch((err: unknown) => {
  send({ type: 'failed', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  process.exit(1);
});
