import { describe, expect, it } from 'vitest';
import { ERASURE_BOUND_MS, topicCatalog } from '../../topics/catalog.js';
import { describeAction, managedConfigs, planTopics, type ActualTopic } from '../../topics/plan.js';

const catalog = topicCatalog({ prefix: 'p.' });
const asActual = (partitions = 3, rf = 1): Map<string, ActualTopic> =>
  new Map(
    catalog.all.map((s) => [
      s.name,
      {
        name: s.name,
        partitions: s.partitions === 1 ? 1 : partitions,
        replicationFactor: rf,
        configs: managedConfigs(s),
      },
    ]),
  );

describe('topic catalog', () => {
  it('gives every consumed raw and resolved topic a dead-letter topic that lives at least as long', () => {
    for (const t of [
      catalog.transactionsRaw,
      catalog.clicksRaw,
      catalog.customerTransactions,
      catalog.customerClicks,
    ]) {
      const dlq = catalog.all.find((d) => d.name === t.deadLetterTopic);
      expect(dlq?.schema).toBe('deadLetter');
      expect(dlq!.retentionMs).toBeGreaterThanOrEqual(t.retentionMs);
    }
    expect(catalog.identityLinks.cleanupPolicy).toBe('compact');
    expect(catalog.customerScores.cleanupPolicy).toBe('compact');
    expect(new Set(catalog.all.map((t) => t.name)).size).toBe(catalog.all.length);
    expect(catalog.all.every((t) => t.name.startsWith('p.'))).toBe(true);
  });

  it('bounds how long any topic keeps a record (erasure): retention, or compaction lag plus tombstone retention', () => {
    for (const t of catalog.all) {
      if (t.cleanupPolicy === 'delete') {
        expect(t.retentionMs, t.name).toBeGreaterThan(0);
        expect(t.retentionMs, t.name).toBeLessThanOrEqual(ERASURE_BOUND_MS);
      } else {
        expect(t.compaction, t.name).toBeDefined();
        expect(managedConfigs(t)['max.compaction.lag.ms']).toBe(String(t.compaction?.maxLagMs));
        expect(managedConfigs(t)['delete.retention.ms']).toBe(String(t.compaction?.tombstoneRetentionMs));
      }
    }
  });
});

describe('topic plan', () => {
  it('creates what is missing and leaves what matches', () => {
    expect(planTopics(catalog.all, new Map()).every((a) => a.kind === 'create')).toBe(true);
    expect(planTopics(catalog.all, asActual()).every((a) => a.kind === 'unchanged')).toBe(true);
  });

  it('grows partitions, alters drifted configs, and never shrinks or reassigns', () => {
    const actual = asActual();
    const raw = catalog.transactionsRaw.name;
    actual.set(raw, {
      ...actual.get(raw)!,
      partitions: 1,
      configs: { 'cleanup.policy': 'compact', 'retention.ms': '5' },
    });
    actual.set(catalog.clicksRaw.name, { ...actual.get(catalog.clicksRaw.name)!, partitions: 9 });
    actual.set(catalog.identityMerges.name, { ...actual.get(catalog.identityMerges.name)!, replicationFactor: 3 });
    const lines = planTopics(catalog.all, actual)
      .filter((a) => a.kind !== 'unchanged')
      .map(describeAction);
    expect(lines).toEqual([
      '~ p.transactions.raw.v1: partitions 1 -> 3',
      expect.stringMatching(
        /^~ p\.transactions\.raw\.v1: cleanup\.policy compact -> delete, retention\.ms 5 -> 2592000000$/,
      ),
      expect.stringMatching(/^! p\.clicks\.raw\.v1: has 9 partitions, catalog says 3/),
      expect.stringMatching(/^! p\.identity\.merges\.v1: replication factor 3, catalog says 1/),
    ]);
  });
});
