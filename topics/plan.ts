/** Pure diff between the topic catalog and what a cluster has: what `npm run topics -- apply` will do, and why. */
import type { TopicSpec } from './catalog.js';

/** What the cluster has for one topic. */
export interface ActualTopic {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly configs: Readonly<Record<string, string>>;
}

export type TopicAction =
  | { readonly kind: 'create'; readonly spec: TopicSpec }
  | { readonly kind: 'add-partitions'; readonly spec: TopicSpec; readonly from: number }
  | {
      readonly kind: 'alter-config';
      readonly spec: TopicSpec;
      readonly changes: readonly { name: string; from: string | undefined; to: string }[];
    }
  | { readonly kind: 'unchanged'; readonly spec: TopicSpec }
  | { readonly kind: 'conflict'; readonly spec: TopicSpec; readonly reason: string };

/** The topic-level configs the catalog manages; anything else on the cluster is left alone. */
export function managedConfigs(spec: TopicSpec): Record<string, string> {
  const base = { 'cleanup.policy': spec.cleanupPolicy, 'retention.ms': String(spec.retentionMs) };
  if (!spec.compaction) return base;
  return {
    ...base,
    'max.compaction.lag.ms': String(spec.compaction.maxLagMs),
    'delete.retention.ms': String(spec.compaction.tombstoneRetentionMs),
  };
}

/** Plans the actions that make `actual` match `desired`, in catalog order. Never plans a destructive change. */
export function planTopics(desired: readonly TopicSpec[], actual: ReadonlyMap<string, ActualTopic>): TopicAction[] {
  const actions: TopicAction[] = [];
  for (const spec of desired) {
    const have = actual.get(spec.name);
    if (!have) {
      actions.push({ kind: 'create', spec });
      continue;
    }
    let changed = false;
    if (have.partitions > spec.partitions) {
      actions.push({
        kind: 'conflict',
        spec,
        reason: `has ${have.partitions} partitions, catalog says ${spec.partitions}: Kafka cannot remove partitions (left as is)`,
      });
      changed = true;
    } else if (have.partitions < spec.partitions) {
      actions.push({ kind: 'add-partitions', spec, from: have.partitions });
      changed = true;
    }
    if (have.replicationFactor !== spec.replicationFactor) {
      actions.push({
        kind: 'conflict',
        spec,
        reason: `replication factor ${have.replicationFactor}, catalog says ${spec.replicationFactor}: needs a partition reassignment (left as is)`,
      });
      changed = true;
    }
    const changes = Object.entries(managedConfigs(spec))
      .filter(([name, to]) => have.configs[name] !== to)
      .map(([name, to]) => ({ name, from: have.configs[name], to }));
    if (changes.length > 0) {
      actions.push({ kind: 'alter-config', spec, changes });
      changed = true;
    }
    if (!changed) actions.push({ kind: 'unchanged', spec });
  }
  return actions;
}

/** One human-readable line per action, `+` create, `~` change, `=` unchanged, `!` needs a person. */
export function describeAction(a: TopicAction): string {
  switch (a.kind) {
    case 'create':
      return `+ ${a.spec.name}: create (partitions=${a.spec.partitions}, replication=${a.spec.replicationFactor}, ${Object.entries(
        managedConfigs(a.spec),
      )
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')})`;
    case 'add-partitions':
      return `~ ${a.spec.name}: partitions ${a.from} -> ${a.spec.partitions}`;
    case 'alter-config':
      return `~ ${a.spec.name}: ${a.changes.map((c) => `${c.name} ${c.from ?? '(unset)'} -> ${c.to}`).join(', ')}`;
    case 'unchanged':
      return `= ${a.spec.name}`;
    case 'conflict':
      return `! ${a.spec.name}: ${a.reason}`;
  }
}
