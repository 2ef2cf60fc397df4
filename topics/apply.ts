/** Makes a cluster match the topic catalog, idempotently, and registers each topic's value schema. */
import kafkajs, { type Admin } from 'kafkajs';
import type { EventSerde } from '../processors/runtime/serde.js';
import type { TopicSpec } from './catalog.js';
import { describeAction, managedConfigs, planTopics, type ActualTopic, type TopicAction } from './plan.js';

// kafkajs is CommonJS and Node's named-export detection misses ConfigResourceTypes.
const { ConfigResourceTypes } = kafkajs;

/** Reads what the cluster has for the catalog's topics. */
export async function readActual(admin: Admin, specs: readonly TopicSpec[]): Promise<Map<string, ActualTopic>> {
  const existing = new Set(await admin.listTopics());
  const names = specs.map((s) => s.name).filter((n) => existing.has(n));
  const actual = new Map<string, ActualTopic>();
  if (names.length === 0) return actual;
  const metadata = await admin.fetchTopicMetadata({ topics: names });
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: names.map((name) => ({
      type: ConfigResourceTypes.TOPIC,
      name,
      configNames: ['cleanup.policy', 'retention.ms', 'max.compaction.lag.ms', 'delete.retention.ms'],
    })),
  });
  const configs = new Map(
    described.resources.map((r) => [
      r.resourceName,
      Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue])),
    ]),
  );
  for (const t of metadata.topics) {
    actual.set(t.name, {
      name: t.name,
      partitions: t.partitions.length,
      replicationFactor: t.partitions[0]?.replicas.length ?? 0,
      configs: configs.get(t.name) ?? {},
    });
  }
  return actual;
}

/** Applies the plan; returns the actions taken (conflicts are reported, never forced). */
export async function applyTopics(
  admin: Admin,
  specs: readonly TopicSpec[],
  options: { serde?: EventSerde; dryRun?: boolean; log?: (line: string) => void } = {},
): Promise<TopicAction[]> {
  const log = options.log ?? (() => undefined);
  const plan = planTopics(specs, await readActual(admin, specs));
  for (const action of plan) log(describeAction(action));
  if (options.dryRun) return plan;
  const creates = plan.flatMap((a) => (a.kind === 'create' ? [a.spec] : []));
  if (creates.length > 0) {
    await admin.createTopics({
      // kafkajs' own leader wait gives up on UNKNOWN_TOPIC_OR_PARTITION, which a freshly started KRaft broker answers
      // while new topics propagate; waitForLeaders() below retries it.
      waitForLeaders: false,
      topics: creates.map((s) => ({
        topic: s.name,
        numPartitions: s.partitions,
        replicationFactor: s.replicationFactor,
        configEntries: Object.entries(managedConfigs(s)).map(([name, value]) => ({ name, value })),
      })),
    });
  }
  await waitForLeaders(
    admin,
    creates.map((s) => s.name),
  );
  const grow = plan.flatMap((a) => (a.kind === 'add-partitions' ? [a.spec] : []));
  if (grow.length > 0) {
    await admin.createPartitions({ topicPartitions: grow.map((s) => ({ topic: s.name, count: s.partitions })) });
  }
  const alters = plan.flatMap((a) => (a.kind === 'alter-config' ? [a.spec] : []));
  if (alters.length > 0) {
    // AlterConfigs replaces a topic's dynamic configs as a set: send every managed config, not only the changed ones.
    await admin.alterConfigs({
      validateOnly: false,
      resources: alters.map((s) => ({
        type: ConfigResourceTypes.TOPIC,
        name: s.name,
        configEntries: Object.entries(managedConfigs(s)).map(([name, value]) => ({ name, value })),
      })),
    });
  }
  if (options.serde) {
    for (const spec of specs) await options.serde.register(spec);
  }
  return plan;
}

/** Polls metadata until every partition of `topics` has a leader; metadata errors count as "not yet". */
export async function waitForLeaders(admin: Admin, topics: readonly string[], timeoutMs = 60_000): Promise<void> {
  if (topics.length === 0) return;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics: [...topics] });
      const ready = found.filter((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
      if (ready.length === topics.length) return;
      last = `${ready.length}/${topics.length} topics have leaders`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`topics not ready after ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
