// Probabilistic links are explainable in the warehouse: generated platform events through the real resolver and sink
// (Kafka, registry, Redis, ClickHouse); every PROBABILISTIC row of dim_customer_identity names the member it matched
// (an identity of the same customer) and the comparison levels and weights that add up to its match weight.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pipeline } from '../../processors/pipeline.js';
import { generateSample } from '../../processors/producers/generate.js';
import { ATTRIBUTES } from '../../processors/identity/compare.js';
import { contextPipeline, createTestContext, publishEvents, type TestContext } from '../helpers/context.js';

let ctx: TestContext;
let pipeline: Pipeline;

beforeAll(async () => {
  ctx = await createTestContext({ topics: true, warehouse: true, env: { SINK_MAX_WAIT_MS: '200' } });
  pipeline = contextPipeline(ctx, ['identity', 'sink']);
  await pipeline.start();
  const sample = generateSample({ seed: 5, customers: 150, targetTransactions: 400, salt: 'link-evidence-salt' });
  await publishEvents(
    ctx,
    sample.transactions.map((event) => ({ kind: 'transaction' as const, event })),
  );
  await pipeline.waitUntilCaughtUp(ctx.admin, 240_000);
}, 400_000);

afterAll(async () => {
  await pipeline?.stop();
  await ctx?.close();
});

interface EvidenceRow {
  identity_id: string;
  global_customer_id: string;
  match_weight: number;
  matched_identity_id: string;
  comparison_attributes: string[];
  comparison_levels: string[];
  comparison_weights: number[];
  adjustment_weight: number;
  cluster_log_odds: number;
  mapping_method: string;
}

describe('link evidence in the warehouse', () => {
  it('explains every probabilistic link by its matched member and comparison levels', async () => {
    const rows = await (
      await ctx.clickhouse.query({
        query: `SELECT identity_id, global_customer_id, match_weight, matched_identity_id, comparison_attributes,
                       comparison_levels, comparison_weights, adjustment_weight, cluster_log_odds, mapping_method
                FROM dim_customer_identity ORDER BY identity_id, link_version`,
        format: 'JSONEachRow',
      })
    ).json<EvidenceRow>();
    const probabilistic = rows.filter((r) => r.mapping_method === 'PROBABILISTIC');
    expect(probabilistic.length).toBeGreaterThan(0);
    for (const r of probabilistic) {
      expect(r.comparison_attributes).toEqual([...ATTRIBUTES]);
      expect(r.comparison_levels).toHaveLength(ATTRIBUTES.length);
      const sum = r.comparison_weights.reduce((n, w) => n + w, 0);
      expect(sum + r.adjustment_weight).toBeCloseTo(r.match_weight, 6);
      expect(r.matched_identity_id).not.toBe('');
      expect(r.matched_identity_id).not.toBe(r.identity_id);
      // A level is named for each attribute both sides had; at least one of them agreed.
      expect(r.comparison_levels.some((l) => l === 'exact' || l === 'equal')).toBe(true);
    }
    // Deterministic links carry no evidence.
    const others = rows.filter((r) => r.mapping_method !== 'PROBABILISTIC');
    expect(others.length).toBeGreaterThan(0);
    for (const r of others) expect([r.matched_identity_id, r.comparison_weights]).toEqual(['', []]);
  });
});
