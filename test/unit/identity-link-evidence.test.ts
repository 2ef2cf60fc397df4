// A probabilistic link carries the evidence that produced it: the best-matching member, each attribute's level and
// log2(m/u), and the adjustments, adding up to the link's match weight; the sink stores it as parallel arrays.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decideLinks } from '../../processors/identity/cluster-link.js';
import { ATTRIBUTES } from '../../processors/identity/compare.js';
import { linkEvidence, linkRecord, NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { loadModel } from '../../processors/identity/model.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import { identityLinkRows } from '../../processors/warehouse-sink/logic.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

const model = loadModel(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8'));
const rec = (id: string, fields: Partial<IdentityAttributes>) =>
  toIdentityRecord('shop', id, { ...NO_ATTRIBUTES, ...fields });
const PERSON = {
  firstName: 'Roepstorff',
  lastName: 'Kilbride',
  address: '7 Harbour Lane',
  city: 'Dunoon',
  postcode: 'PA23 7HH',
  birthDate: '1975-06-14',
};

function joinOf(record: ReturnType<typeof rec>, member: ReturnType<typeof rec>) {
  const { joins } = decideLinks(model, record, [{ id: 'c-1', size: 1, members: [member] }]);
  expect(joins).toHaveLength(1);
  return joins[0]!;
}

describe('link evidence', () => {
  it('names the matched member and every attribute, and its weights add up to the match weight', () => {
    const member = rec('m-1', PERSON);
    const record = rec('r-1', { ...PERSON, firstName: 'Roepstorf', postcode: null });
    const join = joinOf(record, member);
    const evidence = linkEvidence(model, join);

    expect(evidence.matchedIdentityKey).toBe(member.key);
    expect(evidence.clusterLogOdds).toBe(join.clusterLogOdds);
    expect(evidence.comparisons.map((c) => c.attribute)).toEqual([...ATTRIBUTES]);
    const level = (attribute: string) => evidence.comparisons.find((c) => c.attribute === attribute);
    expect(level('lastName')).toMatchObject({ level: 'exact' });
    expect(level('lastName')!.weight).toBeGreaterThan(0);
    expect(level('firstName')!.level).toBe('jw>=0.92'); // one letter dropped
    expect(level('postcode')).toEqual({ attribute: 'postcode', level: null, weight: 0 }); // missing on one side
    expect(level('emailSha256')).toEqual({ attribute: 'emailSha256', level: null, weight: 0 });
    const sum = evidence.comparisons.reduce((n, c) => n + c.weight, 0);
    expect(sum + evidence.adjustmentWeight).toBeCloseTo(join.matchWeight, 9);
  });

  it('is kept on the link record and lands in the warehouse as parallel arrays; other links carry none', () => {
    const join = joinOf(rec('r-2', PERSON), rec('m-2', PERSON));
    const evidence = linkEvidence(model, join);
    const how = {
      method: 'PROBABILISTIC' as const,
      confidence: join.confidence,
      matchWeight: join.matchWeight,
      evidence,
    };
    const link = linkRecord({ platform: 'shop', platformCustomerId: 'r-2' }, 'g-1', how, {
      eventId: 'e',
      eventTimeMs: 1,
    });
    expect(link.evidence).toBe(evidence);
    const [row] = identityLinkRows(link).dim_customer_identity ?? [];
    expect(row).toMatchObject({
      matched_identity_id: 'shop:m-2',
      comparison_attributes: [...ATTRIBUTES],
      comparison_levels: evidence.comparisons.map((c) => c.level ?? ''),
      comparison_weights: evidence.comparisons.map((c) => c.weight),
      adjustment_weight: evidence.adjustmentWeight,
      cluster_log_odds: join.clusterLogOdds,
    });

    const plain = linkRecord(
      { platform: 'shop', platformCustomerId: 'x' },
      'g-2',
      {
        method: 'EMAIL_HASH',
        confidence: 1,
        matchWeight: null,
      },
      { eventId: 'e2', eventTimeMs: 2 },
    );
    expect(plain.evidence).toBeNull();
    expect(identityLinkRows(plain).dim_customer_identity?.[0]).toMatchObject({
      matched_identity_id: '',
      comparison_attributes: [],
      comparison_weights: [],
      adjustment_weight: 0,
    });
  });
});
