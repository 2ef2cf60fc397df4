import { describe, expect, it } from 'vitest';
import { requestDigest } from '../../processors/erasure/erase.js';
import {
  deletionStatement,
  erasureLogRow,
  parseErasureArgs,
  warehouseDeletions,
  type ErasureCounts,
} from '../../processors/erasure/logic.js';

describe('erasure arguments', () => {
  it('takes a platform identity or a global id, and waits unless told not to', () => {
    expect(parseErasureArgs(['--platform', 'shopwave', '--customer', 'u-7'])).toEqual({
      subject: { kind: 'platform', platform: 'shopwave', platformCustomerId: 'u-7' },
      wait: true,
    });
    expect(parseErasureArgs(['--global=c-12', '--no-wait'])).toEqual({
      subject: { kind: 'global', globalId: 'c-12' },
      wait: false,
    });
  });

  it('refuses incomplete, mixed or unknown arguments with a usage message', () => {
    expect(() => parseErasureArgs([])).toThrow(/usage: npm run erase/);
    expect(() => parseErasureArgs(['--platform', 'shopwave'])).toThrow(/usage/);
    expect(() => parseErasureArgs(['--global', 'c-1', '--platform', 'p', '--customer', 'x'])).toThrow(/not both/);
    expect(() => parseErasureArgs(['--customer'])).toThrow(/needs a value/);
    expect(() => parseErasureArgs(['--everyone'])).toThrow(/unknown argument/);
    expect(() => parseErasureArgs(['--platform', 'a:b', '--customer', 'x'])).toThrow(/no ':'/);
  });
});

describe('warehouse deletions', () => {
  const person = { globalIds: ['c-4', 'c-5'], identityKeys: ['northbay:n-1', "shopwave:o'brien"] };

  it('covers every table that holds people, by the ids each table keeps', () => {
    const byTable = new Map(warehouseDeletions(person).map((d) => [d.table, d.where]));
    expect([...byTable.keys()].sort()).toEqual(
      [
        'dead_letter',
        'dim_customer',
        'dim_customer_identity',
        'fact_ad_decision',
        'fact_event',
        'fact_transaction',
        'fact_transaction_line',
        'feat_customer_rfm',
        'identity_merge',
        'identity_merge_rejected',
        'intent_score',
      ].sort(),
    );
    expect(byTable.get('fact_event')).toBe(
      "(platform_id = 'northbay' AND platform_customer_id = 'n-1') OR (platform_id = 'shopwave' AND platform_customer_id = 'o\\'brien')",
    );
    expect(byTable.get('identity_merge')).toBe("survivor_id IN ('c-4', 'c-5') OR merged_id IN ('c-4', 'c-5')");
    expect(byTable.get('dead_letter')).toContain(
      "original_key IN ('c-4', 'c-5', 'northbay:n-1', 'shopwave:o\\'brien')",
    );
  });

  it('asks for nothing it has no id for, and writes ALTER TABLE … DELETE mutations', () => {
    const onlyGlobal = warehouseDeletions({ globalIds: ['c-9'], identityKeys: [] });
    expect(onlyGlobal.map((d) => d.table)).not.toContain('fact_transaction');
    expect(warehouseDeletions({ globalIds: [], identityKeys: [] })).toEqual([]);
    expect(deletionStatement('patternos', { table: 'intent_score', where: "global_customer_id IN ('c-9')" })).toBe(
      "ALTER TABLE `patternos`.`intent_score` DELETE WHERE global_customer_id IN ('c-9')",
    );
  });
});

describe('erasure log', () => {
  const counts: ErasureCounts = {
    found: true,
    globalIds: 2,
    identities: 2,
    graphIndexEntries: 17,
    redisKeys: 6,
    tombstones: 4,
    commands: 2,
    warehouseRows: { fact_event: 3 },
  };

  it('keeps a keyed digest of the request and counts, never the ids asked for', () => {
    const subject = { kind: 'platform' as const, platform: 'shopwave', platformCustomerId: 'u-7781' };
    const digest = requestDigest(subject, 'secret-salt-1');
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(requestDigest(subject, 'secret-salt-1')).toBe(digest); // a repeated request is recognisable
    expect(requestDigest(subject, 'another-salt')).not.toBe(digest); // not without the secret
    expect(requestDigest({ kind: 'global', globalId: 'shopwave:u-7781' }, 'secret-salt-1')).not.toBe(digest);
    const row = erasureLogRow('e-1', subject, digest, { requestedAtMs: 1, finishedAtMs: 2 }, 'done', counts);
    expect(JSON.stringify(row)).not.toContain('u-7781');
    expect(row).toMatchObject({ erasure_id: 'e-1', subject_kind: 'platform', status: 'done', request_digest: digest });
    expect(JSON.parse(row.counts_json)).toEqual(counts);
  });
});
