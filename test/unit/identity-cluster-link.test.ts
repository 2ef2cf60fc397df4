import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decideLinks, type CandidateCluster } from '../../processors/identity/cluster-link.js';
import { NO_ATTRIBUTES } from '../../processors/identity/logic.js';
import { loadModel, scorePair } from '../../processors/identity/model.js';
import { toIdentityRecord } from '../../processors/identity/record.js';
import type { IdentityRecord } from '../../processors/identity/types.js';
import type { IdentityAttributes } from '../../schemas/generated/types.js';

const model = loadModel(readFileSync(new URL('../../processors/identity/model.json', import.meta.url), 'utf8'));
let serial = 0;
const rec = (fields: Partial<IdentityAttributes>): IdentityRecord =>
  toIdentityRecord('p', String(++serial), { ...NO_ATTRIBUTES, ...fields });
const cluster = (id: string, members: IdentityRecord[]): CandidateCluster => ({ id, size: members.length, members });

const HOME = { lastName: 'Pemberton', address: '14 Kelvin Grove', city: 'Glasgow', postcode: 'G12 8QQ' };
const anna = (over: Partial<IdentityAttributes> = {}) =>
  rec({ ...HOME, firstName: 'Anna', birthDate: '1981-03-02', ...over });
const ben = (over: Partial<IdentityAttributes> = {}) =>
  rec({ ...HOME, firstName: 'Benedict', birthDate: '1949-11-23', ...over });

describe('decideLinks', () => {
  it('joins the cluster of the same person, with the best member as evidence', () => {
    const members = [anna(), anna({ firstName: 'Ana' }), anna({ city: null })];
    const record = anna({ postcode: null });
    const { joins, refusals } = decideLinks(model, record, [cluster('c-1', members)]);
    expect(joins).toHaveLength(1);
    expect(joins[0]).toMatchObject({ id: 'c-1', key: members[0]!.key });
    expect(joins[0]!.matchWeight).toBe(scorePair(model, record, members[0]!).weight);
    expect(joins[0]!.levels).toHaveLength(9);
    expect(refusals).toEqual([]);
  });

  it('lets a record that fits two household members join one of them, never both (no chaining)', () => {
    // Surname and address only: pairwise, it links to both Anna and Benedict.
    const bridge = rec({ ...HOME });
    const annas = cluster('c-1', [anna(), anna({ firstName: 'Anne' }), anna({ postcode: null })]);
    const bens = cluster('c-2', [ben(), ben({ firstName: 'Ben' }), ben({ city: null })]);
    expect(scorePair(model, bridge, annas.members[0]!).probability).toBeGreaterThanOrEqual(model.threshold);
    expect(scorePair(model, bridge, bens.members[0]!).probability).toBeGreaterThanOrEqual(model.threshold);
    const { joins, refusals } = decideLinks(model, bridge, [annas, bens]);
    expect(joins).toHaveLength(1);
    expect(refusals).toEqual([expect.objectContaining({ reason: 'merge' })]);
  });

  it('refuses a cluster whose members contradict the record on average, though one member matches', () => {
    const blob = cluster('c-7', [anna(), ben(), ben({ firstName: 'Ben' }), ben({ address: '14 Kelvin Gr' })]);
    const { joins, refusals } = decideLinks(model, anna({ city: null }), [blob]);
    expect(joins).toEqual([]);
    expect(refusals).toEqual([expect.objectContaining({ id: 'c-7', reason: 'contradicted' })]);
  });

  it('judges even the first join as a merge when the record already has a cluster', () => {
    const bridge = rec({ ...HOME });
    const annas = cluster('c-1', [anna(), anna({ firstName: 'Anne' })]);
    const alone = decideLinks(model, bridge, [annas]);
    expect(alone.joins).toHaveLength(1);
    const own = cluster('c-2', [bridge, ben(), ben({ firstName: 'Ben' })]);
    const owned = decideLinks(model, bridge, [annas], { own });
    expect(owned.joins).toEqual([]);
    expect(owned.refusals).toEqual([expect.objectContaining({ id: 'c-1', reason: 'merge' })]);
  });

  it('merges two clusters of one person that a record bridges', () => {
    // Two halves of one person that never met (one lacks the birth date, the other the postcode and city).
    const left = cluster('c-1', [anna({ birthDate: null }), anna({ birthDate: null, firstName: 'Ann' })]);
    const right = cluster('c-2', [anna({ postcode: null, city: null }), anna({ postcode: null, city: null })]);
    const { joins } = decideLinks(model, anna(), [left, right]);
    expect(joins.map((j) => j.id).sort()).toEqual(['c-1', 'c-2']);
  });

  it('ignores clusters that no member links to', () => {
    const strangers = cluster('c-9', [rec({ firstName: 'Zed', lastName: 'Quill', postcode: 'EH1 1AA' })]);
    expect(decideLinks(model, anna(), [strangers])).toMatchObject({ joins: [], refusals: [] });
  });
});
