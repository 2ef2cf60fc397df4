// The messy benchmark through the real identity resolver (Kafka, schema registry, Redis): households and people with
// common names stay apart, no cluster grows past the largest true one, and unreadable lines are reported by number.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { evaluateFiles } from '../../processors/identity/eval-cli.js';
import type { BadLine } from '../../processors/identity/febrl-file.js';
import { generateMessy, messyCsv } from '../../processors/identity/messy-logic.js';

describe('identity:eval on the messy benchmark', () => {
  it('resolves without chaining and skips bad lines, naming them', async () => {
    const endpoints = inject('endpoints');
    process.env['KAFKA_BROKERS'] = endpoints.kafkaBrokers.join(',');
    process.env['SCHEMA_REGISTRY_URL'] = endpoints.schemaRegistryUrl;
    process.env['REDIS_URL'] = endpoints.redisUrl;
    const dataset = generateMessy({ people: 200, seed: 11, brokenLines: 3 });
    const file = join(mkdtempSync(join(tmpdir(), 'messy-')), 'messy.csv');
    writeFileSync(file, messyCsv(dataset));

    const bad: BadLine[] = [];
    const result = await evaluateFiles([file], { onBadLine: (b) => bad.push(b) });

    // Line 1 is the header: row i is on line i + 2.
    expect(bad.map((b) => b.line)).toEqual([...dataset.brokenRows].sort((a, b) => a - b).map((i) => i + 2));
    expect(result.records).toBe(dataset.rows.length - 3);
    // No blob: the resolver before cluster-level linking made a cluster of 47 from this file (true clusters ≤ 21).
    expect(result.largestCluster).toBeLessThanOrEqual(dataset.largestCluster + 5);
    expect(result.metrics?.['precision']).toBeGreaterThan(0.95);
    expect(result.metrics?.['recall']).toBeGreaterThan(0.85);
    // A record that links before its identity was ever published joins without a merge (graph-lib.lua mergeInto):
    // merges are only the clusters of people already published, joined. Every link was a merge before (~1,700 here).
    expect(result.mergesPublished).toBeLessThan(dataset.people / 4);
  }, 300_000); // a hang guard, not a performance bound: ~1,000 records took over 120 s on a 2-core machine under load
});
