/**
 * `npm run bench -- scale`: the feature processor on 8 partitions with 1, 2 and 4 instances, each instance a process
 * of its own built the way deployments build it (pipeline-part.ts → Pipeline → FeatureApp), all in one consumer group.
 *
 * BENCH_SCALE_EVENTS (default 400,000) resolved events of BENCH_SCALE_CUSTOMERS (default 40,000) customers are
 * produced once; each round starts from empty state (Redis keys deleted, the group rewound) and times the group from
 * the first batch any instance received to every event served (the joins of the instances that came later included;
 * the final checkpoint left out). Served: state, features and score written, as each instance reports its partitions'
 * positions (FeatureProcessor.servedPositions), the highest per partition counted once. Neither commits nor a 10–90 %
 * window can time it: commits come with checkpoints (every FEATURES_CHECKPOINT_MS), and while behind one flush can
 * serve most of a run of this size at once.
 * Then the restore figure: with the instances of the largest round running and half the events in, one instance is
 * killed with SIGKILL; the survivors take its partitions over after the session timeout (KAFKA_SESSION_TIMEOUT_MS,
 * 6 s here) and the rebalance. Reported: kill → group rebalanced (detection), rebalanced → every moved partition
 * served past where the killed instance had served it (the restore proper: claim, lazy state loads, the repeat of the
 * tail after its last commit), and kill → every event served.
 * The machine's cores bound the total: on 2 cores, more than 2 instances can only share them.
 */
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { splitTp } from '../../processors/runtime/ordered-intake.js';
import { deleteKeysByPattern } from '../../processors/tools/bench-tools.js';
import { openScratchRun, type ScratchRun } from '../../processors/tools/scratch-run.js';
import type { TopicSpec } from '../../topics/catalog.js';
import { startParts, stopParts } from './pipeline.js';
import { produceResolvedEvents } from './resolved-events.js';

const PARTITIONS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const sum = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

async function resetRound(run: ScratchRun, groupId: string, specs: readonly TopicSpec[]): Promise<void> {
  const redis = new Redis(run.config.REDIS_URL);
  const p = run.config.TOPIC_PREFIX;
  for (const pattern of [`${p}features:*`, `${p}score:*`, `${p}scores:*`]) await deleteKeysByPattern(redis, pattern);
  redis.disconnect();
  const groups = await run.admin.listGroups();
  if (groups.groups.some((g) => g.groupId === groupId)) {
    for (const spec of specs) await run.admin.resetOffsets({ groupId, topic: spec.name, earliest: true });
  }
}

interface Instance {
  child: ChildProcess;
  partitions: readonly number[];
  /** The latest served positions it reported (`topic:partition` → next offset). */
  served: Readonly<Record<string, number>>;
  /** When it received its first batch (epoch ms), as it last reported; null before. */
  firstBatchAtMs: number | null;
}

/** Asks every live instance for its served positions and waits briefly for the answers. */
async function askServed(instances: readonly Instance[]): Promise<void> {
  for (const i of instances) if (i.child.connected) i.child.send({ type: 'served' });
  await sleep(50);
}

/**
 * Asks the instances for their served positions (of `topics`, the highest per partition) every ~50 ms until `done`
 * holds of them; returns when it did. Throws `what` after `timeoutMs`.
 */
async function servedUntil(
  instances: readonly Instance[],
  topics: readonly string[],
  done: (served: ReadonlyMap<string, number>) => boolean,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    await askServed(instances);
    if (done(servedBy(instances, topics))) return Date.now();
    if (Date.now() - started > timeoutMs) throw new Error(what);
  }
}

/** Per `topic:partition` of `topics`, the highest served position any of `instances` reported. */
function servedBy(instances: readonly Instance[], topics: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const i of instances) {
    for (const [tp, offset] of Object.entries(i.served)) {
      if (!topics.includes(splitTp(tp).topic)) continue;
      out.set(tp, Math.max(out.get(tp) ?? 0, offset));
    }
  }
  return out;
}

const trace = (line: string) => {
  if (process.env['BENCH_SCALE_TRACE']) console.log(`${new Date().toISOString()} ${line}`);
};

async function startInstances(n: number, env: Record<string, string>): Promise<Instance[]> {
  trace(`starting ${n} instance(s)`);
  // Partitions are recorded from the first message on: a member joins the group (and reports its assignment) before
  // it reports ready, and an assignment missed then is not repeated until the next rebalance.
  const partitions: (readonly number[])[] = Array.from({ length: n }, () => []);
  const served: Record<string, number>[] = Array.from({ length: n }, () => ({}));
  const firstBatch: (number | null)[] = Array.from({ length: n }, () => null);
  const children = await startParts(
    Array.from({ length: n }, () => ['features'] as const),
    env,
    (m, index) => {
      if (m.type === 'assigned') {
        partitions[index] = m.partitions;
        trace(`instance ${index} assigned [${m.partitions.join(',')}]`);
      }
      if (m.type === 'served') {
        served[index] = { ...m.positions };
        firstBatch[index] = m.firstBatchAtMs;
      }
      if (m.type === 'failed') console.log(`instance ${index} failed: ${m.error}`);
    },
  );
  children.forEach((child, index) => {
    child.on('exit', (code, signal) => {
      trace(`instance ${index} exited ${code ?? signal}`);
    });
  });
  trace(`${n} instance(s) ready`);
  return children.map((child, index) => ({
    child,
    get partitions() {
      return partitions[index] ?? [];
    },
    get served() {
      return served[index] ?? {};
    },
    get firstBatchAtMs() {
      return firstBatch[index] ?? null;
    },
  }));
}

/** Waits until the instances' latest assignments split the partitions between all of them, each partition once. */
async function stableAssignment(instances: readonly Instance[]): Promise<void> {
  const started = Date.now();
  for (;;) {
    const all = instances.flatMap((i) => i.partitions);
    if (
      instances.every((i) => i.partitions.length > 0) &&
      all.length === PARTITIONS &&
      new Set(all).size === PARTITIONS
    )
      return;
    if (Date.now() - started > 120_000) {
      const seen = instances.map((i, n) => `instance ${n} [${i.partitions.join(',')}]`).join(', ');
      throw new Error(`the instances never agreed on an assignment of every partition in 120 s (latest: ${seen})`);
    }
    await sleep(50);
  }
}

export async function scaleBench(): Promise<Record<string, unknown>> {
  const total = Number(process.env['BENCH_SCALE_EVENTS'] ?? 400_000);
  const customers = Number(process.env['BENCH_SCALE_CUSTOMERS'] ?? 40_000);
  const counts = (process.env['BENCH_SCALE_INSTANCES'] ?? '1,2,4').split(',').map(Number);
  const run = await openScratchRun('bench-scale', {
    env: { KAFKA_PARTITIONS: String(PARTITIONS), KAFKA_SESSION_TIMEOUT_MS: '6000', LOG_LEVEL: 'error' },
  });
  const { topics, config, admin } = run;
  const groupId = `${config.TOPIC_PREFIX}feature-processor`;
  const inputs = [topics.customerTransactions, topics.customerClicks, topics.identityMerges, topics.featureHandoff];
  const events = [topics.customerTransactions.name, topics.customerClicks.name];
  const env = { ...run.env } as Record<string, string>;
  const rounds: { instances: number; eventsPerSecond: number; perInstance: number }[] = [];
  let restore: Record<string, number> | null = null;
  try {
    const produced = Date.now();
    await produceResolvedEvents(run, total, customers);
    console.log(
      `produced           ${total} events for ${customers} customers on ${PARTITIONS} partitions in ${((Date.now() - produced) / 1000).toFixed(1)} s`,
    );
    for (const n of counts) {
      await resetRound(run, groupId, inputs);
      const instances = await startInstances(n, env);
      const allServedAt = await servedUntil(
        instances,
        events,
        (served) => sum(served) >= total,
        900_000,
        `${n} instance(s) did not serve every event in 15 minutes`,
      );
      const firsts = instances.flatMap((i) => (i.firstBatchAtMs === null ? [] : [i.firstBatchAtMs]));
      const rate = Math.round(total / ((allServedAt - Math.min(...firsts)) / 1000));
      const perInstance = Math.round(rate / n);
      rounds.push({ instances: n, eventsPerSecond: rate, perInstance });
      console.log(`${n} instance(s)      ${rate} events/s in total, ${perInstance} per instance`);
      const last = n === counts.at(-1);
      if (!last || n < 2) {
        await stopParts(instances.map((i) => i.child));
        continue;
      }
      // Restore: the largest round again from the start, one instance killed half-way.
      await stopParts(instances.map((i) => i.child));
      await resetRound(run, groupId, inputs);
      const again = await startInstances(n, env);
      // The victim's partitions are only known once every instance has joined: a fast run can pass half-way while the
      // group is still forming, and a kill then would be judged against an assignment the survivors never see again.
      await stableAssignment(again);
      await servedUntil(again, events, (served) => sum(served) >= 0.5 * total, 900_000, 'never half-way');
      const victim = again[0] as Instance;
      const moved = victim.partitions;
      await askServed(again);
      const before = servedBy([victim], events);
      const ends = new Map<string, number>();
      for (const topic of events) {
        for (const p of await admin.fetchTopicOffsets(topic)) ends.set(`${topic}:${p.partition}`, Number(p.high));
      }
      const killedAt = Date.now();
      victim.child.kill('SIGKILL');
      const survivors = again.slice(1);
      let rebalancedAt = 0;
      while (!rebalancedAt) {
        if (survivors.some((s) => moved.some((p) => s.partitions.includes(p)))) rebalancedAt = Date.now();
        else await sleep(20);
        if (Date.now() - killedAt > 120_000) throw new Error('the survivors never took the partitions over');
      }
      // Restored: every moved partition served past where the killed instance had (or to its end, if it had all).
      const past = (now: ReadonlyMap<string, number>, tp: string) =>
        (now.get(tp) ?? 0) > (before.get(tp) ?? 0) || (now.get(tp) ?? 0) >= (ends.get(tp) ?? 0);
      const restoredAt = await servedUntil(
        survivors,
        events,
        (now) => moved.every((p) => events.every((topic) => past(now, `${topic}:${p}`))),
        180_000,
        'the moved partitions were never served again',
      );
      const caughtUpAt = await servedUntil(
        survivors,
        events,
        (now) => [...ends].every(([tp, end]) => (now.get(tp) ?? 0) >= end),
        300_000,
        'the survivors never served every event',
      );
      restore = {
        instances: n,
        movedPartitions: moved.length,
        detectionMs: rebalancedAt - killedAt,
        restoreMs: restoredAt - rebalancedAt,
        caughtUpMs: caughtUpAt - killedAt,
      };
      console.log(
        `restore            killed 1 of ${n} (${moved.length} partitions): rebalanced after ${restore['detectionMs']} ms (session timeout), every moved partition served past the killed instance ${restore['restoreMs']} ms later, every event served ${restore['caughtUpMs']} ms after the kill`,
      );
      await stopParts(survivors.map((i) => i.child));
    }
    const one = rounds.find((r) => r.instances === 1)?.eventsPerSecond ?? 0;
    for (const r of rounds)
      console.log(`speed-up ${r.instances}×       ${(r.eventsPerSecond / Math.max(one, 1)).toFixed(2)}`);
    return {
      bench: 'scale',
      events: total,
      customers,
      partitions: PARTITIONS,
      cores: (await import('node:os')).cpus().length,
      rounds: rounds.map((r) => ({ ...r, speedUp: Number((r.eventsPerSecond / Math.max(one, 1)).toFixed(2)) })),
      restore,
    };
  } finally {
    await run.dispose();
  }
}
