/**
 * `npm run chaos`: does a processor crash change what the pipeline computes? The same generated raw events go through
 * two scratch runs of the real pipeline, each part (identity resolver, feature processor with its scoring stage,
 * warehouse sink) in a process of its own (`pipeline-part.ts`):
 *
 * - clean: no kills;
 * - chaos: CHAOS_KILLS (default 10) times a random part is killed with SIGKILL at a random moment and started again
 *   (seeded by CHAOS_SEED, default 1; the moments are spread over the clean run's duration).
 *
 * Then every customer's features hash and score hash in Redis (timing fields left out), the newest warehouse score per
 * customer and the ClickHouse row counts (raw, and deduplicated the way each ReplacingMergeTree collapses re-inserts)
 * are compared. It prints what it compared and one JSON line, and exits non-zero on any difference.
 *
 * Settings: CHAOS_EVENTS (default 1,000,000), CHAOS_KILLS, CHAOS_SEED, CHAOS_SESSION_TIMEOUT_MS (default 8000: a killed
 * member's partitions move quickly, and a busy one on two shared cores is not dropped for a late heartbeat),
 * CHAOS_STALL_MS (default 60,000: a part that commits nothing that long while records wait is reported as stalled, then
 * killed and started again so the run can finish; counted apart from the planned kills), CHAOS_LATE_GRACE_MS (default
 * 400 days, longer than the sample: in a replay, which events are late would otherwise depend on timing),
 * CHAOS_ORDER_IDLE_MS (default 2,000: the resolver's IDENTITY_ORDER_IDLE_MS, how long a caught-up partition holds its
 * rounds back, so the rounds do not depend on which fetch came first), CHAOS_PARTS (the parts that may be killed,
 * default identity,features,sink: to tell which part's crash causes a difference), CHAOS_INSTANCES (processes per part
 * in both runs, e.g. `features=2,identity=2`, default one each: instances share their part's consumer group, and a kill
 * picks one instance of a killable part). Both runs score with SCORING_CLOCK=event and time-driven rescoring off, so a
 * score is a function of its customer's events (as of the newest one). Scores need a current model in MODEL_DIR (`npm
 * run demo` trains one); without one, features are compared alone. The parts' logs go to a file per run (printed).
 *
 * Dependency restarts: CHAOS_DEPENDENCIES=redis,kafka,clickhouse (any of them, in the order wanted) brings up a private
 * stack of this run's own (CHAOS_STACK_DIR, default <tmpdir>/patternos-chaos-stack; every port CHAOS_STACK_PORT_OFFSET,
 * default 10,000, above the default stack's; the default stack's downloads), runs both replays on it, and in the chaos
 * run stops each service in turn (as `npm run stack -- down` does) once the slowest part is 1/(n+1), 2/(n+1), … through
 * the events, keeps it down CHAOS_OUTAGE_MS (default 15,000) and starts it again; then it measures how long until every
 * part commits again. The parts are left to recover by themselves: an exit counts as an unexpected exit. Defaults in
 * this mode: CHAOS_EVENTS 50,000 and CHAOS_KILLS 0. The private stack is stopped at the end (its data kept).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Admin } from 'kafkajs';
import { decodeState, FeatureStore } from '../../processors/features/store.js';
import { PROCESSOR_NODE_FLAGS } from '../../processors/runtime/node-flags.js';
import { PROCESSOR as IDENTITY } from '../../processors/identity/processor.js';
import { groupLag, partInputs, waitUntilCaughtUp, type PipelinePart } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { PlatformProducer, type PlatformEvent } from '../../processors/producers/platform-producer.js';
import { loadConfig } from '../../processors/runtime/config.js';
import { openScratchRun, type ScratchRun } from '../../processors/tools/scratch-run.js';
import { currentVersion } from '../../processors/scoring/model.js';
import { startService, stackConfig, stopService, upStack, stopStack } from '../../processors/tools/stack/stack.js';
import type { TopicSpec } from '../../topics/catalog.js';
import {
  compareRedis,
  compareTable,
  instancesOf,
  killPlan,
  parseInstances,
  outagePlan,
  parseDependencies,
  type Dependency,
  type Hash,
  type PartInstance,
  type PlannedKill,
  type PlannedOutage,
  type RunState,
  type TableComparison,
  type TableCounts,
  type WarehouseScore,
} from './chaos-logic.js';
import type { PartMessage } from './pipeline-part.js';
import { stopParts } from './pipeline.js';

const PART_ENTRY = fileURLToPath(new URL('./pipeline-part.ts', import.meta.url));
const PARTS: readonly PipelinePart[] = ['identity', 'features', 'sink'];
/** Larger than any epoch-ms clock reading: the event-time clock never crosses a rescoring period. */
const NO_RESCORE_MS = 10_000_000_000_000;
/** Events per person of the default generated sample (87,976 events of 1,247 persons), to size the sample. */
const EVENTS_PER_PERSON = 70;
const TRANSACTIONS_PER_PERSON = 3891 / 1247;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const n = (x: number) => x.toLocaleString('en-GB');
const seconds = (ms: number) => (ms / 1000).toFixed(1);

function intSetting(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got ${raw}`);
  return value;
}

/**
 * Warehouse tables the pipeline writes, and what one row of each stands for independently of timing (`dedup`).
 * `exact`: the deduplicated count is a function of the events alone, so the runs must agree on it. Not exact:
 * identity_merge (which clusters exist when a link arrives, hence which unions happen, depends on how partitions
 * interleave), identity_merge_rejected (its event id holds the rejection's position in its batch), intent_score (one
 * row per flush that changed the customer; the newest score per customer is compared instead).
 */
const TABLES: readonly { table: string; dedup: string; exact: boolean }[] = [
  { table: 'dim_platform', dedup: 'FINAL', exact: true },
  { table: 'dim_category', dedup: 'FINAL', exact: true },
  { table: 'dim_product', dedup: 'FINAL', exact: true },
  { table: 'fact_transaction', dedup: 'uniqExact(event_id)', exact: true },
  { table: 'fact_transaction_line', dedup: 'uniqExact(event_id, line_no)', exact: true },
  { table: 'fact_event', dedup: 'uniqExact(event_id)', exact: true },
  { table: 'dim_customer_identity', dedup: 'uniqExact(identity_id)', exact: true },
  { table: 'identity_merge', dedup: 'FINAL', exact: false },
  { table: 'identity_merge_rejected', dedup: 'FINAL', exact: false },
  { table: 'intent_score', dedup: 'FINAL', exact: false },
  { table: 'dead_letter', dedup: 'FINAL', exact: true },
];

/** The sample: `count` events of a generated sample sized to hold them, in event-time order (ties by id). */
function sampleEvents(count: number, salt: string): { events: PlatformEvent[]; persons: number } {
  const persons = Math.max(20, Math.ceil((count * 1.05) / EVENTS_PER_PERSON));
  const sample = generateSample({
    seed: 42,
    customers: persons,
    targetTransactions: Math.round(persons * TRANSACTIONS_PER_PERSON),
    salt,
  });
  const events: PlatformEvent[] = [
    ...sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
    ...sample.behaviors.map((event) => ({ kind: 'behavior' as const, event })),
  ].sort(
    (a, b) =>
      a.event.eventTimeMs - b.event.eventTimeMs ||
      (a.event.eventId < b.event.eventId ? -1 : a.event.eventId > b.event.eventId ? 1 : 0),
  );
  return { events: events.slice(0, count), persons };
}

/** The parts of one run, each in its own process; restarts a part that exits on its own (and counts it). */
class PartProcesses {
  /** By instance name (chaos-logic.ts instancesOf). */
  private readonly children = new Map<string, ChildProcess>();
  private readonly instances = new Map<string, PartInstance<PipelinePart>>();
  /** Every process ever forked, so none can outlive the run. */
  private readonly forked = new Set<ChildProcess>();
  private readonly killed = new Set<ChildProcess>();
  private readonly restarts = new Set<Promise<unknown>>();
  private readonly busy = new Map<string, Promise<number>>();
  private stopping = false;
  readonly unexpectedExits: string[] = [];

  constructor(
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly logFd: number,
    private readonly say: (line: string) => void,
  ) {}

  pid(name: string): number | undefined {
    return this.children.get(name)?.pid;
  }

  /** Forks `instance` and resolves with the ms it took to report ready. */
  async start(instance: PartInstance<PipelinePart>): Promise<number> {
    const { name } = instance;
    this.instances.set(name, instance);
    const started = Date.now();
    const child = fork(PART_ENTRY, [instance.part], {
      env: { ...this.env },
      execArgv: ['--import', 'tsx', ...PROCESSOR_NODE_FLAGS],
      stdio: ['ignore', this.logFd, this.logFd, 'ipc'],
    });
    this.children.set(name, child);
    this.forked.add(child);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: PartMessage) => {
        if (message.type === 'ready') done();
        else if (message.type === 'failed') done(new Error(`${name} failed to start: ${message.error}`));
      };
      const onExit = (code: number | null, signal: string | null) => {
        done(new Error(`${name} exited (${code ?? signal}) before it was ready`));
      };
      const done = (err?: Error) => {
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      child.on('message', onMessage);
      child.on('exit', onExit);
    });
    child.on('exit', (code, signal) => {
      if (this.stopping || this.killed.has(child) || this.children.get(name) !== child) return;
      const what = `${name} (pid ${child.pid}) exited on its own with ${code ?? signal}`;
      this.unexpectedExits.push(what);
      this.say(`  ! ${what}; starting it again`);
      const restart = this.exclusive(name, () => this.startWithRetries(name)).catch((err: unknown) => {
        this.say(`  ! ${name} could not be started again: ${String(err)}`);
      });
      this.restarts.add(restart);
      void restart.finally(() => this.restarts.delete(restart));
    });
    return Date.now() - started;
  }

  private async startWithRetries(name: string, attempts = 3): Promise<number> {
    const instance = this.instances.get(name);
    if (!instance) throw new Error(`${name} was never started`);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.start(instance);
      } catch (err) {
        if (attempt >= attempts || this.stopping) throw err;
        this.say(`  ! ${String(err)}; retrying`);
        await sleep(1_000);
      }
    }
  }

  /** Whether instance `name` is being killed and started again right now. */
  restarting(name: string): boolean {
    return this.busy.has(name);
  }

  /** Runs `work` on instance `name` after whatever kill or restart of it is under way (one at a time per instance). */
  private async exclusive(name: string, work: () => Promise<number>): Promise<number> {
    const run = (this.busy.get(name) ?? Promise.resolve(0)).catch(() => 0).then(work);
    this.busy.set(name, run);
    try {
      return await run;
    } finally {
      if (this.busy.get(name) === run) this.busy.delete(name);
    }
  }

  /** SIGKILLs instance `name`, waits for it to be gone, starts it again; resolves with the ms until it was ready. */
  kill(name: string): Promise<number> {
    return this.exclusive(name, async () => {
      const child = this.children.get(name);
      if (!child) throw new Error(`${name} is not running`);
      this.killed.add(child);
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await gone;
      }
      return this.startWithRetries(name);
    });
  }

  /** On an interrupt: no more restarts, every part SIGKILLed at once. */
  abort(): void {
    this.stopping = true;
    for (const child of this.forked) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  /** Asks every part to stop cleanly (SIGKILL after 60 s) and waits until all have exited. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.restarts, ...this.busy.values()]);
    await stopParts([...this.forked], 60_000);
  }
}

/** Every run's parts, for an interrupt to kill before the scratch runs are disposed. */
const live = new Set<PartProcesses>();

/** The consumer group and input topics of each part (as processors/pipeline.ts waits for them). */
/** Offsets a group has committed on `specs` (summed), and the records it still has to read. */
async function progressOf(admin: Admin, group: string, specs: readonly TopicSpec[]) {
  const committed = await admin.fetchOffsets({ groupId: group, topics: specs.map((s) => s.name) });
  let done = 0;
  let lag = 0;
  for (const spec of specs) {
    const mine = committed.find((c) => c.topic === spec.name)?.partitions ?? [];
    for (const end of await admin.fetchTopicOffsets(spec.name)) {
      const at = Number(mine.find((p) => p.partition === end.partition)?.offset ?? -1);
      done += Math.max(0, at);
      lag += Number(end.high) - (at < 0 ? Number(end.low) : at);
    }
  }
  return { done, lag };
}

/**
 * Reads `specs` from the beginning and counts their records and distinct event ids: a resolved topic holding an event
 * more than once means the identity resolver published a batch again (a crash or failed commit after the send), and the
 * feature processor, whose watermarks are input offsets, applies such a copy as a new event.
 */
async function eventCopies(run: ScratchRun, specs: readonly TopicSpec[]): Promise<{ records: number; events: number }> {
  const { kafka, admin, serde, config } = run;
  let expected = 0;
  for (const spec of specs) {
    for (const p of await admin.fetchTopicOffsets(spec.name)) expected += Number(p.high) - Number(p.low);
  }
  const groupId = `${config.TOPIC_PREFIX}chaos-audit`;
  const consumer = kafka.consumer({ groupId, maxBytesPerPartition: 4 << 20 });
  const byName = new Map(specs.map((s) => [s.name, s]));
  const ids = new Set<string>();
  let records = 0;
  await consumer.connect();
  try {
    for (const spec of specs) await consumer.subscribe({ topic: spec.name, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const spec = byName.get(batch.topic);
        if (!spec) return;
        for (const m of batch.messages) {
          ids.add((await serde.decode<{ eventId: string }>(spec, m.value)).eventId);
          records++;
        }
      },
    });
    const deadline = Date.now() + 300_000;
    while (records < expected && Date.now() < deadline) await sleep(100);
  } finally {
    await consumer.disconnect();
    await admin.deleteGroups([groupId]).catch(() => undefined);
  }
  return { records, events: ids.size };
}

interface KillRecord {
  /** The instance killed (chaos-logic.ts instancesOf). */
  readonly part: string;
  readonly atMs: number;
  readonly restartMs: number;
}

interface OutageRecord {
  readonly service: Dependency;
  /** When it was stopped, ms after the replay started. */
  readonly atMs: number;
  /** The slowest part's share of the events committed when it was stopped. */
  readonly progress: number;
  /** From the stop request until it answered again (stop, the outage, start and its readiness). */
  readonly downMs: number;
  /** From its readiness until every part had committed again (or had nothing left); null: not within 5 min. */
  readonly recoveryMs: number | null;
  /** Per part, from its readiness until that part's first commit after it (0: it had nothing left). */
  readonly partRecoveryMs: Readonly<Record<PipelinePart, number | null>>;
}

interface ReplayResult {
  readonly ms: number;
  readonly kills: readonly KillRecord[];
  readonly outages: readonly OutageRecord[];
  readonly unexpectedExits: readonly string[];
  /** Parts restarted because they stopped committing while records waited (alive, but doing nothing). */
  readonly stalls: readonly string[];
}

/** The private stack of CHAOS_DEPENDENCIES: its services are stopped and started during the chaos run. */
interface PrivateStack {
  /** STACK_DIR, ports, STACK_INSTALL_DIR of the private stack, and no endpoint variables (so it starts its own). */
  readonly env: NodeJS.ProcessEnv;
  readonly dir: string;
}

/**
 * Brings up a second local stack (own STACK_DIR, every port CHAOS_STACK_PORT_OFFSET above the default, the default
 * stack's downloads) and points this process's endpoint variables at it, so the scratch runs and the parts use it and
 * nothing of a shared stack is ever stopped. Prometheus is left out.
 */
async function upPrivateStack(say: (line: string) => void): Promise<PrivateStack> {
  const offset = intSetting('CHAOS_STACK_PORT_OFFSET', 10_000, 1);
  const dir = process.env['CHAOS_STACK_DIR'] ?? join(tmpdir(), 'patternos-chaos-stack');
  const shared = stackConfig(process.env);
  const endpointVars = new Set(['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'REDIS_URL', 'CLICKHOUSE_URL']);
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !endpointVars.has(k)));
  env['STACK_DIR'] = dir;
  env['STACK_INSTALL_DIR'] = shared.installRoot;
  const ports: Record<string, number> = {
    STACK_KAFKA_PORT: shared.ports.kafka,
    STACK_KAFKA_CONTROLLER_PORT: shared.ports.kafkaController,
    STACK_REGISTRY_PORT: shared.ports.registry,
    STACK_REGISTRY_MANAGEMENT_PORT: shared.ports.registryManagement,
    STACK_REDIS_PORT: shared.ports.redis,
    STACK_CLICKHOUSE_HTTP_PORT: shared.ports.clickhouseHttp,
    STACK_CLICKHOUSE_TCP_PORT: shared.ports.clickhouseTcp,
    STACK_CLICKHOUSE_INTERSERVER_PORT: shared.ports.clickhouseInterserver,
    STACK_PROMETHEUS_PORT: shared.ports.prometheus,
  };
  for (const [name, port] of Object.entries(ports)) {
    if (port + offset > 65_535) throw new Error(`CHAOS_STACK_PORT_OFFSET=${offset} puts ${name} past 65535`);
    env[name] = String(port + offset);
  }
  // Not needed by the runs: "external" keeps the stack from starting one.
  env['PROMETHEUS_URL'] = `http://127.0.0.1:${shared.ports.prometheus + offset}`;
  say(`private stack in ${dir} (ports +${offset}; installs from ${shared.installRoot})`);
  const started = Date.now();
  const up = await upStack({
    env,
    log: (line) => {
      say(`  [private stack] ${line}`);
    },
  });
  say(`  private stack up in ${seconds(Date.now() - started)} s`);
  process.env['KAFKA_BROKERS'] = up.endpoints.kafkaBrokers.join(',');
  process.env['SCHEMA_REGISTRY_URL'] = up.endpoints.schemaRegistryUrl;
  process.env['REDIS_URL'] = up.endpoints.redisUrl;
  process.env['CLICKHOUSE_URL'] = up.endpoints.clickhouseUrl;
  process.env['PROMETHEUS_URL'] = env['PROMETHEUS_URL'];
  return { env, dir };
}

/** Replays `events` into `run` with every part in its own process, killing parts as `plan` says; waits until done. */
async function replay(
  run: ScratchRun,
  label: string,
  events: readonly PlatformEvent[],
  instances: readonly PartInstance<PipelinePart>[],
  plan: readonly PlannedKill<string>[],
  planBaseMs: number,
  stallMs: number,
  outages: readonly PlannedOutage[] = [],
  stack?: PrivateStack,
  outageMs = 0,
): Promise<ReplayResult> {
  const { config, kafka, serde, topics, admin } = run;
  const logPath = join(tmpdir(), `chaos-${run.id}-${label}.log`);
  const logFd = openSync(logPath, 'a');
  const say = (line: string) => {
    console.log(line);
  };
  say(`${label} run: parts' logs in ${logPath}`);
  const parts = new PartProcesses(run.env, logFd, say);
  live.add(parts);
  const stalls: string[] = [];
  let watching = true;
  let watchdog: Promise<void> = Promise.resolve();
  try {
    await Promise.all(instances.map((i) => parts.start(i)));
    const instancesOfPart = (part: PipelinePart) => instances.filter((i) => i.part === part).map((i) => i.name);
    const producer = await PlatformProducer.connect(config, { kafka, serde, topics });
    const started = Date.now();
    let produced = 0;
    const producing = (async () => {
      const result = await producer.publishAll(events, {
        onAcknowledged: () => {
          produced++;
        },
      });
      await producer.disconnect();
      if (result.refused > 0) throw new Error(`${result.refused} generated events were refused by the producer`);
      say(`  produced ${n(result.acknowledged)} events in ${seconds(Date.now() - started)} s`);
    })();
    // A part that commits nothing for stallMs while records wait is alive but stuck (e.g. a consumer that crashed for
    // good in a process that did not exit): say so, and kill and start it, so the run can still be compared.
    let outageUnderWay = false;
    watchdog = (async () => {
      const last = new Map<PipelinePart, { done: number; sinceMs: number }>();
      while (watching) {
        await sleep(5_000);
        for (const part of PARTS) {
          if (!watching) break;
          const now = Date.now();
          // A part waiting for a stopped dependency is not stalled: the outage and its recovery are measured instead.
          if (instancesOfPart(part).some((name) => parts.restarting(name)) || outageUnderWay) {
            last.delete(part);
            continue;
          }
          const { group, specs } = partInputs(topics, config.TOPIC_PREFIX)[part];
          const { done, lag } = await progressOf(admin, group, specs).catch(() => ({ done: -1, lag: 0 }));
          const seen = last.get(part);
          if (!seen || done !== seen.done || lag === 0) {
            last.set(part, { done, sinceMs: now });
            continue;
          }
          if (now - seen.sinceMs < stallMs) continue;
          const names = instancesOfPart(part);
          const pids = names.map((name) => parts.pid(name)).join(', ');
          const what = `${part} (pid ${pids}) committed nothing for ${seconds(now - seen.sinceMs)} s with ${n(lag)} records waiting`;
          stalls.push(what);
          say(`  ! stalled: ${what}; SIGKILL and start again`);
          last.delete(part);
          for (const name of names) {
            await parts.kill(name).catch((err: unknown) => {
              say(`  ! ${name} could not be started again: ${String(err)}`);
            });
          }
        }
      }
    })();
    const killing = (async () => {
      const records: KillRecord[] = [];
      let previousAt = 0;
      for (const [i, k] of plan.entries()) {
        await sleep((k.at - previousAt) * planBaseMs);
        previousAt = k.at;
        const atMs = Date.now() - started;
        const backlog = await groupLag(admin, `${config.TOPIC_PREFIX}${IDENTITY}`, [
          topics.transactionsRaw,
          topics.clicksRaw,
        ]);
        const pid = parts.pid(k.part);
        const restartMs = await parts.kill(k.part);
        records.push({ part: k.part, atMs, restartMs });
        say(
          `  kill ${i + 1}/${plan.length} at ${seconds(atMs)} s: ${k.part} (pid ${pid}) SIGKILL ` +
            `(${n(produced)} produced, ${n(backlog)} not yet resolved); consuming again after ${seconds(restartMs)} s`,
        );
      }
      return records;
    })();
    // Each planned outage: once the slowest part is that far through the events, the service is stopped (as `stack
    // down` does), kept down outageMs, started again; then how long until every part commits again.
    const progressOfRun = async (): Promise<number> => {
      const inputs = partInputs(topics, config.TOPIC_PREFIX);
      const raw = [topics.transactionsRaw, topics.clicksRaw];
      const resolvedSpecs = [topics.customerTransactions, topics.customerClicks];
      const shares = await Promise.all([
        progressOf(admin, inputs.identity.group, raw),
        progressOf(admin, inputs.features.group, resolvedSpecs),
        progressOf(admin, inputs.sink.group, raw),
      ]);
      return Math.min(...shares.map((p) => p.done / events.length));
    };
    const partProgress = async () => {
      const inputs = partInputs(topics, config.TOPIC_PREFIX);
      const out = new Map<PipelinePart, { done: number; lag: number }>();
      for (const part of PARTS) out.set(part, await progressOf(admin, inputs[part].group, inputs[part].specs));
      return out;
    };
    const producingSettled = producing.catch(() => undefined);
    const disrupting = (async () => {
      const records: OutageRecord[] = [];
      if (outages.length === 0) return records;
      if (!stack) throw new Error('outages need the private stack');
      for (const outage of outages) {
        let progress = 0;
        for (;;) {
          progress = await progressOfRun().catch(() => 0);
          if (progress >= outage.progress) break;
          await sleep(500);
        }
        // The bench's own producer is no processor: it is not asked to ride out a broker outage.
        if (outage.service === 'kafka') await producingSettled;
        const atMs = Date.now() - started;
        outageUnderWay = true;
        const stopped = await stopService(outage.service, { env: stack.env, log: () => undefined });
        say(
          `  outage at ${seconds(atMs)} s: ${outage.service} ${stopped.outcome} (pid ${stopped.pid ?? '-'}, ` +
            `${seconds(stopped.ms)} s) with the slowest part ${(progress * 100).toFixed(0)} % through; down for ` +
            `${seconds(outageMs)} s`,
        );
        await sleep(outageMs);
        const up = await startService(outage.service, { env: stack.env, log: () => undefined });
        const readyAt = Date.now();
        const downMs = readyAt - started - atMs;
        let before: Map<PipelinePart, { done: number; lag: number }> | undefined;
        while (!before) before = await partProgress().catch(() => undefined);
        const partRecoveryMs: Record<PipelinePart, number | null> = { identity: null, features: null, sink: null };
        for (const part of PARTS) if ((before.get(part)?.lag ?? 0) === 0) partRecoveryMs[part] = 0;
        while (PARTS.some((p) => partRecoveryMs[p] === null) && Date.now() - readyAt < 300_000) {
          await sleep(500);
          const now = await partProgress().catch(() => undefined);
          for (const part of PARTS) {
            const p = now?.get(part);
            if (partRecoveryMs[part] !== null || !p) continue;
            if (p.done > (before.get(part)?.done ?? 0) || p.lag === 0) partRecoveryMs[part] = Date.now() - readyAt;
          }
        }
        outageUnderWay = false;
        const recovered = PARTS.every((p) => partRecoveryMs[p] !== null);
        const recoveryMs = recovered ? Math.max(...PARTS.map((p) => partRecoveryMs[p] ?? 0)) : null;
        records.push({ service: outage.service, atMs, progress, downMs, recoveryMs, partRecoveryMs });
        say(
          `  ${outage.service} ready again (pid ${up.pid ?? '-'}) ${seconds(downMs)} s after the stop; every part ` +
            (recoveryMs === null
              ? 'had NOT committed again 300 s later'
              : `committing again ${seconds(recoveryMs)} s later (` +
                PARTS.map((p) => `${p} ${seconds(partRecoveryMs[p] ?? 0)} s`).join(', ') +
                ')'),
        );
      }
      return records;
    })();
    const [, kills, outageRecords] = await Promise.all([producing, killing, disrupting]);
    await waitUntilCaughtUp(admin, { config, topics, warehouse: true }, 600_000 + events.length * 5);
    const ms = Date.now() - started;
    say(`  caught up after ${seconds(ms)} s (${n(Math.round(events.length / (ms / 1000)))} events/s end to end)`);
    return { ms, kills, outages: outageRecords, unexpectedExits: parts.unexpectedExits, stalls };
  } finally {
    watching = false;
    await watchdog;
    await parts.stopAll();
    live.delete(parts);
    closeSync(logFd);
  }
}

/** What the run left in Redis and the warehouse, by its own global ids. */
async function readRunState(run: ScratchRun): Promise<RunState & { featureKeys: number }> {
  const { config } = run;
  const prefix = config.TOPIC_PREFIX;
  const redis = new Redis(config.REDIS_URL);
  try {
    const store = new FeatureStore(redis, {
      prefix,
      stateTtlSeconds: config.FEATURES_STATE_TTL_SECONDS,
      featuresTtlSeconds: config.FEATURES_TTL_SECONDS,
      scoresTtlSeconds: config.SCORES_TTL_SECONDS,
    });
    // The identity graph's identity → root cluster hash (layout: processors/identity/graph-store.ts).
    const idc = await redis.hgetall(`${prefix}idg:v1:{${prefix}idg}:idc`);
    const roots = new Map(Object.entries(idc));
    // Events without a platform customer id belong to an anonymous id (`anon:<platform>:<order|session|…>`), the same
    // in every run and outside the graph: each is a customer of its own.
    let featureKeys = 0;
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}features:{*`, 'COUNT', 1_000);
      cursor = next;
      featureKeys += found.length;
      for (const key of found) {
        const id = key.slice(key.indexOf('{') + 1, key.lastIndexOf('}'));
        if (id.startsWith('anon:') && !roots.has(id)) roots.set(id, id);
      }
    } while (cursor !== '0');
    const ids = [...new Set(roots.values())];
    const features = new Map<string, Hash>();
    const scores = new Map<string, Hash>();
    for (let i = 0; i < ids.length; i += 1_000) {
      const chunk = ids.slice(i, i + 1_000);
      const pipeline = redis.pipeline();
      for (const id of chunk) pipeline.hgetall(store.featuresKey(id)).hgetall(store.scoreKey(id));
      const replies = (await pipeline.exec()) ?? [];
      chunk.forEach((id, j) => {
        const [fErr, f] = replies[2 * j] ?? [new Error('missing reply'), null];
        const [sErr, s] = replies[2 * j + 1] ?? [new Error('missing reply'), null];
        if (fErr) throw fErr;
        if (sErr) throw sErr;
        if (Object.keys(f as Hash).length > 0) features.set(id, f as Hash);
        if (Object.keys(s as Hash).length > 0) scores.set(id, s as Hash);
      });
    }
    const late = new Map<string, number>();
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const pipeline = redis.pipeline();
      for (const id of chunk) pipeline.hgetBuffer(store.stateKey(id), 's');
      const replies = (await pipeline.exec()) ?? [];
      chunk.forEach((id, j) => {
        const stored = replies[j]?.[1];
        if (Buffer.isBuffer(stored) && stored.length > 0) late.set(id, decodeState(stored).late);
      });
    }
    const result = await run.clickhouse.query({
      query: `SELECT global_customer_id AS id, toString(max(feature_time_ms)) AS t,
                     toString(argMax(intent_score, feature_time_ms)) AS s
              FROM intent_score FINAL GROUP BY global_customer_id`,
      format: 'JSONEachRow',
    });
    const warehouseScores = new Map<string, WarehouseScore>();
    for (const row of await result.json<{ id: string; t: string; s: string }>()) {
      warehouseScores.set(row.id, { featureTimeMs: row.t, intentScore: row.s });
    }
    return { roots, features, scores, warehouseScores, late, featureKeys };
  } finally {
    redis.disconnect();
  }
}

async function tableCounts(run: ScratchRun): Promise<Map<string, TableCounts>> {
  const out = new Map<string, TableCounts>();
  for (const { table, dedup } of TABLES) {
    const dedupSql = dedup === 'FINAL' ? `SELECT count() FROM ${table} FINAL` : `SELECT ${dedup} FROM ${table}`;
    const result = await run.clickhouse.query({
      query: `SELECT toUInt64((SELECT count() FROM ${table})) AS raw, toUInt64((${dedupSql})) AS dedup`,
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ raw: string; dedup: string }>();
    out.set(table, { raw: Number(row?.raw ?? 0), dedup: Number(row?.dedup ?? 0) });
  }
  return out;
}

async function main(): Promise<number> {
  const dependencies = parseDependencies(process.env['CHAOS_DEPENDENCIES']);
  const eventCount = intSetting('CHAOS_EVENTS', dependencies.length > 0 ? 50_000 : 1_000_000, 1);
  // With dependency outages the parts are not killed unless asked: each difference then has one cause.
  const killCount = intSetting('CHAOS_KILLS', dependencies.length > 0 ? 0 : 10, 0);
  const outageMs = intSetting('CHAOS_OUTAGE_MS', 15_000, 0);
  const seed = intSetting('CHAOS_SEED', 1, 0);
  const sessionTimeoutMs = intSetting('CHAOS_SESSION_TIMEOUT_MS', 8_000, 6_000);
  const stallMs = intSetting('CHAOS_STALL_MS', 60_000, 10_000);
  // The replay pushes 120 days of event time through in minutes, so source partitions drift apart by days of event
  // time; with the default 3-day grace, which events of a multi-identity customer count as late depends on that drift,
  // and so do the features (seen: differences between two runs without kills). Longer than the whole sample: nothing
  // is late, and any difference left is the crashes' doing. CHAOS_LATE_GRACE_MS sets another grace to see the effect.
  const killable = (process.env['CHAOS_PARTS'] ?? PARTS.join(',')).split(',') as PipelinePart[];
  if (killable.length === 0 || !killable.every((p) => PARTS.includes(p))) {
    throw new Error(`CHAOS_PARTS must list parts among ${PARTS.join(', ')}`);
  }
  const instances = instancesOf(parseInstances(process.env['CHAOS_INSTANCES'], PARTS));
  const killableInstances = instances.filter((i) => killable.includes(i.part)).map((i) => i.name);
  const graceMs = intSetting('CHAOS_LATE_GRACE_MS', 400 * 86_400_000, 0);
  // The resolver waits for a partition with records on the broker anyway; a caught-up one (the replay's producer not
  // yet there, at the start, or after a broker restart) holds rounds back this long, so which records share a round
  // does not depend on which partition's fetch came first. A replay's setting, as the grace above.
  const orderIdleMs = intSetting('CHAOS_ORDER_IDLE_MS', 2_000, 0);
  // Outages only ever hit a private stack of this run's own, never services others use.
  const stack =
    dependencies.length > 0
      ? await upPrivateStack((line) => {
          console.log(line);
        })
      : undefined;
  const stopPrivateStack = async () => {
    if (!stack) return;
    const stopped = await stopStack({ env: stack.env, log: () => undefined });
    console.log(
      `private stack stopped (${stopped.map((s) => `${s.name} ${s.outcome}`).join(', ')}); data in ${stack.dir}`,
    );
  };
  const base = loadConfig(process.env);
  const model = await currentVersion(base.MODEL_DIR);
  const env = {
    KAFKA_SESSION_TIMEOUT_MS: String(sessionTimeoutMs),
    SCORING_CLOCK: 'event',
    SCORING_RESCORE_EVERY_MS: String(NO_RESCORE_MS),
    FEATURES_SNAPSHOT_PERIOD_DAYS: '0',
    FEATURES_LATE_GRACE_MS: String(graceMs),
    IDENTITY_ORDER_IDLE_MS: String(orderIdleMs),
  };

  const generating = Date.now();
  const { events, persons } = sampleEvents(eventCount, base.IDENTITY_HASH_SALT.reveal());
  console.log(
    `chaos: ${n(events.length)} generated events (seed 42, ${n(persons)} persons, generated once in ` +
      `${seconds(Date.now() - generating)} s), the same list into a clean run and a chaos run`,
  );
  if (events.length < eventCount) console.log(`  (the sample held ${n(events.length)} events, not ${n(eventCount)})`);
  console.log(
    `  each part in its own process (${instances.map((i) => i.name).join(', ')}); ${killCount} SIGKILLs of random ` +
      `ones (of ${killableInstances.join(', ')}) in the ` +
      `chaos run (seed ${seed}); ` +
      `KAFKA_SESSION_TIMEOUT_MS=${sessionTimeoutMs}`,
  );
  if (dependencies.length > 0) {
    console.log(
      `  dependency outages in the chaos run: ${dependencies.join(', ')} each stopped for ${seconds(outageMs)} s ` +
        `(CHAOS_OUTAGE_MS), one after the other, at ${outagePlan(dependencies)
          .map((o) => `${(o.progress * 100).toFixed(0)} %`)
          .join(', ')} of the replay`,
    );
  }
  console.log(
    `  IDENTITY_ORDER_IDLE_MS=${orderIdleMs} (CHAOS_ORDER_IDLE_MS): the resolver merges its partitions by event time ` +
      `and holds a round that long for a caught-up partition`,
  );
  console.log(
    `  FEATURES_LATE_GRACE_MS=${graceMs} (${seconds(graceMs / 86_400)} days): a replay needs more than the event-time ` +
      `drift between source partitions, or which events are late depends on timing`,
  );
  console.log(
    model
      ? `  scores are deterministic: SCORING_CLOCK=event and SCORING_RESCORE_EVERY_MS=${NO_RESCORE_MS} (no time-driven ` +
          `rescoring), so each score is as of its customer's newest event; model ${model}`
      : `  no current model in ${base.MODEL_DIR}: features are compared, scores are not (npm run demo trains one)`,
  );

  const runs: ScratchRun[] = [];
  const disposeAll = async () => {
    for (const run of runs.splice(0)) {
      await run.dispose().catch((err: unknown) => {
        console.error(`could not dispose scratch run ${run.id}: ${String(err)}`);
      });
    }
  };
  // A run still being opened is disposed too once it is open (else its topics and database would outlive us).
  const opening = new Set<Promise<unknown>>();
  const open = (name: string) => {
    const pending = openScratchRun(name, { warehouse: true, env }).then((run) => {
      runs.push(run);
      return run;
    });
    opening.add(pending);
    return pending.finally(() => opening.delete(pending));
  };
  const interrupted = () => {
    console.error('interrupted: killing the parts, disposing the scratch runs');
    for (const parts of live) parts.abort();
    void Promise.allSettled([...opening])
      .then(disposeAll)
      .then(stopPrivateStack)
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    const clean = await open('chaos-clean');
    const chaos = await open('chaos-kill');

    const cleanResult = await replay(clean, 'clean', events, instances, [], 0, stallMs);
    const plan = killPlan(seed, killCount, killableInstances);
    const chaosResult = await replay(
      chaos,
      'chaos',
      events,
      instances,
      plan,
      cleanResult.ms,
      stallMs,
      outagePlan(dependencies),
      stack,
      outageMs,
    );

    const resolved = (run: ScratchRun) =>
      eventCopies(run, [run.topics.customerTransactions, run.topics.customerClicks]);
    const [cleanCopies, chaosCopies] = [await resolved(clean), await resolved(chaos)];
    const [cleanState, chaosState] = [await readRunState(clean), await readRunState(chaos)];
    const redis = compareRedis(cleanState, chaosState);
    const [cleanTables, chaosTables] = [await tableCounts(clean), await tableCounts(chaos)];
    const tables = new Map<string, TableComparison>();
    for (const { table, exact } of TABLES) {
      const c = cleanTables.get(table) ?? { raw: 0, dedup: 0 };
      const k = chaosTables.get(table) ?? { raw: 0, dedup: 0 };
      tables.set(table, compareTable(c, k, exact));
    }
    const warehouseEvents = (t: Map<string, TableCounts>) =>
      (t.get('fact_transaction')?.dedup ?? 0) + (t.get('fact_event')?.dedup ?? 0);
    const cleanComplete = warehouseEvents(cleanTables) === events.length;

    const copies = (c: { records: number; events: number }) =>
      `${n(c.records)} records of ${n(c.events)} events (${n(c.records - c.events)} published again)`;
    console.log(`resolved topics: clean run ${copies(cleanCopies)}; chaos run ${copies(chaosCopies)}`);
    const liveness = (r: ReplayResult) =>
      `${r.unexpectedExits.length} exits on their own, ${r.stalls.length} stalls restarted`;
    console.log(`liveness: clean run ${liveness(cleanResult)}; chaos run ${liveness(chaosResult)}`);
    for (const o of chaosResult.outages) {
      console.log(
        `outage    ${o.service}: down ${seconds(o.downMs)} s at ${(o.progress * 100).toFixed(0)} % of the replay; ` +
          (o.recoveryMs === null
            ? 'the parts did not all commit again'
            : `all parts committing ${seconds(o.recoveryMs)} s after it was back`),
      );
    }
    console.log('compared');
    console.log(
      `  customers   ${n(redis.customersCompared)} matched by identity cluster (${n(redis.identities)} identities; ` +
        `${n(redis.identitiesMissing)} missing and ${n(redis.identitiesExtra)} extra in the chaos run; clusters in ` +
        `one run only: ${n(redis.clustersOnlyClean)} clean, ${n(redis.clustersOnlyChaos)} chaos)`,
    );
    for (const c of redis.clusterExamples.clean) console.log(`    cluster of the clean run only: ${c}`);
    for (const c of redis.clusterExamples.chaos) console.log(`    cluster of the chaos run only: ${c}`);
    console.log(
      `  features    ${n(redis.featureFieldsCompared)} fields of ${n(cleanState.features.size)} / ` +
        `${n(chaosState.features.size)} hashes (updated_at_ms, state_version ignored; ${n(cleanState.featureKeys)} / ` +
        `${n(chaosState.featureKeys)} features keys with merged-away aliases): ${n(redis.featureDifferences)} ` +
        `customers differ (${redis.lostCustomers} lost events, ${redis.doubleCountedCustomers} double-counted, ` +
        `${redis.otherCustomers} other)`,
    );
    console.log(
      `              of those, ${n(redis.differencesInMergedClusters)} are customers formed by merges and ` +
        `${n(redis.differencesWithLateMismatch)} hold a different number of late events (not applied: older than ` +
        `their stream's newest − FEATURES_LATE_GRACE_MS); late events in all: clean ${n(redis.lateClean)}, chaos ` +
        n(redis.lateChaos),
    );
    for (const e of redis.examples) console.log(`    ${e.kind}: ${e.cluster} fields ${e.fields.join(', ')}`);
    console.log(
      model
        ? `  scores      ${n(redis.scoreFieldsCompared)} fields of ${n(cleanState.scores.size)} / ` +
            `${n(chaosState.scores.size)} hashes (scored_at_ms ignored): ${n(redis.scoreDifferences)} customers differ`
        : `  scores      not compared (no current model)`,
    );
    console.log(
      `  warehouse   newest intent_score of ${n(redis.warehouseScoresCompared)} customers: ` +
        `${n(redis.warehouseScoreDifferences)} differ`,
    );
    console.log(
      `  tables      ${TABLES.length} (raw rows clean / chaos; deduplicated clean / chaos; * = judged on the dedup)`,
    );
    for (const { table, dedup, exact } of TABLES) {
      const t = tables.get(table);
      if (!t) continue;
      const flag = t.lost + t.doubleCounted > 0 ? `  ← ${t.lost} lost, ${t.doubleCounted} double-counted` : '';
      console.log(
        `    ${exact ? '*' : ' '} ${table.padEnd(24)} ${n(t.clean.raw).padStart(10)} / ${n(t.chaos.raw).padEnd(10)} ` +
          `${n(t.clean.dedup).padStart(10)} / ${n(t.chaos.dedup).padEnd(10)} (${dedup})${flag}`,
      );
    }
    if (!cleanComplete) {
      console.log(
        `  ! the clean run's warehouse holds ${n(warehouseEvents(cleanTables))} of ${n(events.length)} events`,
      );
    }
    const tableLost = [...tables.values()].reduce((s, t) => s + t.lost, 0);
    const tableDouble = [...tables.values()].reduce((s, t) => s + t.doubleCounted, 0);
    const lost = redis.lostCustomers + redis.identitiesMissing + tableLost;
    const doubleCounted = redis.doubleCountedCustomers + redis.identitiesExtra + tableDouble;
    const identityDifferences = redis.clustersOnlyClean + redis.clustersOnlyChaos;
    const summary = {
      bench: 'chaos',
      events: events.length,
      kills: chaosResult.kills.length,
      instances: Object.fromEntries(PARTS.map((p) => [p, instances.filter((i) => i.part === p).length])),
      customersCompared: redis.customersCompared,
      featureDifferences: redis.featureDifferences,
      scoreDifferences: model ? redis.scoreDifferences : null,
      lost,
      doubleCounted,
      tableCounts: Object.fromEntries(
        [...tables].map(([table, t]) => [
          table,
          { raw: [t.clean.raw, t.chaos.raw], dedup: [t.clean.dedup, t.chaos.dedup], judged: t.exact },
        ]),
      ),
      identityDifferences,
      warehouseScoreDifferences: redis.warehouseScoreDifferences,
      lateEvents: { clean: redis.lateClean, chaos: redis.lateChaos },
      resolvedRepublished: {
        clean: cleanCopies.records - cleanCopies.events,
        chaos: chaosCopies.records - chaosCopies.events,
      },
      lateGraceMs: graceMs,
      killed: chaosResult.kills.map((k) => k.part),
      outages: chaosResult.outages.map((o) => ({
        service: o.service,
        progress: Number(o.progress.toFixed(3)),
        downSeconds: Number(seconds(o.downMs)),
        recoverySeconds: o.recoveryMs === null ? null : Number(seconds(o.recoveryMs)),
        partRecoverySeconds: Object.fromEntries(
          PARTS.map((p) => [p, o.partRecoveryMs[p] === null ? null : Number(seconds(o.partRecoveryMs[p] ?? 0))]),
        ),
      })),
      unexpectedExits: cleanResult.unexpectedExits.length + chaosResult.unexpectedExits.length,
      stalls: { clean: cleanResult.stalls.length, chaos: chaosResult.stalls.length },
      cleanSeconds: Number(seconds(cleanResult.ms)),
      chaosSeconds: Number(seconds(chaosResult.ms)),
      model,
      seed,
    };
    console.log(JSON.stringify(summary));
    const differences =
      redis.featureDifferences +
      (model ? redis.scoreDifferences : 0) +
      redis.warehouseScoreDifferences +
      identityDifferences +
      lost +
      doubleCounted;
    const unrecovered = chaosResult.outages.filter((o) => o.recoveryMs === null).length;
    return differences === 0 && cleanComplete && unrecovered === 0 ? 0 : 1;
  } finally {
    await disposeAll();
    console.log('scratch runs disposed (topics, registry subjects, Redis keys, databases)');
    await stopPrivateStack();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
