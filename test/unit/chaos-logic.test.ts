import { describe, expect, it } from 'vitest';
import {
  classifyFeatureDifference,
  clustersOf,
  compareRedis,
  compareTable,
  differingFields,
  instancesOf,
  killPlan,
  outagePlan,
  parseDependencies,
  parseInstances,
  type Hash,
  type RunState,
} from '../bench/chaos-logic.js';

function runState(
  roots: Record<string, string>,
  features: Record<string, Hash>,
  scores: Record<string, Hash> = {},
): RunState {
  return {
    roots: new Map(Object.entries(roots)),
    features: new Map(Object.entries(features)),
    scores: new Map(Object.entries(scores)),
    warehouseScores: new Map(),
  };
}

describe('dependency outages', () => {
  it('parses the services in the order given and refuses unknown ones', () => {
    expect(parseDependencies(undefined)).toEqual([]);
    expect(parseDependencies(' ')).toEqual([]);
    expect(parseDependencies('redis, kafka,clickhouse')).toEqual(['redis', 'kafka', 'clickhouse']);
    expect(parseDependencies('clickhouse,redis')).toEqual(['clickhouse', 'redis']);
    expect(() => parseDependencies('redis,registry')).toThrow(/unknown service "registry"/);
  });

  it('spreads one outage per service evenly over the replay', () => {
    expect(outagePlan(['redis', 'kafka', 'clickhouse'])).toEqual([
      { service: 'redis', progress: 0.25 },
      { service: 'kafka', progress: 0.5 },
      { service: 'clickhouse', progress: 0.75 },
    ]);
    expect(outagePlan([])).toEqual([]);
  });
});

describe('instances per part', () => {
  const parts = ['identity', 'features', 'sink'] as const;

  it('runs one of each part unless told otherwise, and names several by number', () => {
    expect(instancesOf(parseInstances(undefined, parts))).toEqual([
      { name: 'identity', part: 'identity' },
      { name: 'features', part: 'features' },
      { name: 'sink', part: 'sink' },
    ]);
    expect(instancesOf(parseInstances(' features=2, identity=3 ', parts)).map((i) => i.name)).toEqual([
      'identity#1',
      'identity#2',
      'identity#3',
      'features#1',
      'features#2',
      'sink',
    ]);
    expect(instancesOf(parseInstances('sink=1', parts)).map((i) => i.part)).toEqual([...parts]);
  });

  it('refuses unknown parts and counts outside 1..8', () => {
    expect(() => parseInstances('registry=2', parts)).toThrow(/CHAOS_INSTANCES: "registry=2"/);
    expect(() => parseInstances('features=0', parts)).toThrow(RangeError);
    expect(() => parseInstances('features=9', parts)).toThrow(RangeError);
    expect(() => parseInstances('features', parts)).toThrow(RangeError);
  });
});

describe('kill plan', () => {
  it('is the same for the same seed, ascending, within the window, of the given parts', () => {
    const plan = killPlan(7, 10, ['identity', 'features', 'sink'] as const);
    expect(killPlan(7, 10, ['identity', 'features', 'sink'] as const)).toEqual(plan);
    expect(killPlan(8, 10, ['identity', 'features', 'sink'] as const)).not.toEqual(plan);
    expect(plan).toHaveLength(10);
    expect(plan.every((k, i) => i === 0 || k.at >= plan[i - 1]!.at)).toBe(true);
    expect(plan.every((k) => k.at >= 0.05 && k.at < 0.85)).toBe(true);
    expect(new Set(killPlan(1, 200, ['a', 'b', 'c'] as const).map((k) => k.part))).toEqual(new Set(['a', 'b', 'c']));
  });

  it('plans nothing for zero kills and refuses an empty part list', () => {
    expect(killPlan(1, 0, ['a'])).toEqual([]);
    expect(() => killPlan(1, 1, [])).toThrow(RangeError);
  });
});

describe('clusters', () => {
  it('keys each root by its sorted identities, whatever the id', () => {
    const a = clustersOf(
      new Map([
        ['p:2', 'c-1'],
        ['p:1', 'c-1'],
        ['q:9', 'c-2'],
      ]),
    );
    const b = clustersOf(
      new Map([
        ['p:1', 'c-7'],
        ['q:9', 'c-3'],
        ['p:2', 'c-7'],
      ]),
    );
    expect(a.get('c-1')).toBe(b.get('c-7'));
    expect(a.get('c-2')).toBe(b.get('c-3'));
    expect(a.get('c-1')).not.toBe(a.get('c-2'));
  });
});

describe('hash comparison', () => {
  it('lists differing and one-sided fields, leaving ignored ones out', () => {
    const ignored = new Set(['updated_at_ms']);
    expect(
      differingFields({ a: '1', b: '2', updated_at_ms: '5' }, { a: '1', b: '3', updated_at_ms: '6' }, ignored),
    ).toEqual(['b']);
    expect(differingFields({ a: '1' }, { a: '1', c: '0' }, ignored)).toEqual(['c']);
    expect(differingFields(undefined, undefined, ignored)).toEqual([]);
  });

  it('calls lower counts lost, higher ones double-counted, and a mix other', () => {
    const clean = { orders_lifetime: '3', views_7d: '10', feature_time_ms: '100', recency_days: '2' };
    expect(classifyFeatureDifference(clean, { ...clean, orders_lifetime: '2' })).toBe('lost');
    expect(classifyFeatureDifference(clean, { ...clean, feature_time_ms: '90' })).toBe('lost');
    expect(classifyFeatureDifference(clean, { ...clean, views_7d: '12' })).toBe('double-counted');
    expect(classifyFeatureDifference(clean, { ...clean, views_7d: '12', orders_lifetime: '2' })).toBe('other');
    expect(classifyFeatureDifference(clean, { ...clean, recency_days: '3' })).toBe('other');
    expect(classifyFeatureDifference(clean, undefined)).toBe('lost');
    expect(classifyFeatureDifference(undefined, clean)).toBe('double-counted');
  });
});

describe('comparing two runs', () => {
  const f = (orders: string, extra: Hash = {}): Hash => ({
    orders_lifetime: orders,
    feature_time_ms: '100',
    updated_at_ms: '1',
    state_version: '1',
    ...extra,
  });

  it('matches customers across different global ids and ignores timing fields', () => {
    const clean = runState(
      { 'a:1': 'c-1', 'b:1': 'c-1', 'a:2': 'c-2' },
      { 'c-1': f('2'), 'c-2': f('1') },
      { 'c-1': { intent_score: '0.5', scored_at_ms: '1' } },
    );
    const chaos = runState(
      { 'a:1': 'c-2', 'b:1': 'c-2', 'a:2': 'c-1' },
      { 'c-2': f('2', { updated_at_ms: '9', state_version: '4' }), 'c-1': f('1') },
      { 'c-2': { intent_score: '0.5', scored_at_ms: '8' } },
    );
    const result = compareRedis(clean, chaos);
    expect(result).toMatchObject({
      customersCompared: 2,
      identities: 3,
      identitiesMissing: 0,
      identitiesExtra: 0,
      clustersOnlyClean: 0,
      clustersOnlyChaos: 0,
      featureFieldsCompared: 4,
      scoreFieldsCompared: 1,
      featureDifferences: 0,
      scoreDifferences: 0,
    });
  });

  it('counts lost and double-counted customers, score differences and clusters grouped differently', () => {
    const clean = runState(
      { 'a:1': 'c-1', 'a:2': 'c-2', 'a:3': 'c-3', 'a:4': 'c-4', 'b:4': 'c-4' },
      { 'c-1': f('2'), 'c-2': f('1'), 'c-3': f('5'), 'c-4': f('1') },
      { 'c-3': { intent_score: '0.5' } },
    );
    const chaos = runState(
      { 'a:1': 'c-1', 'a:2': 'c-2', 'a:3': 'c-3', 'a:4': 'c-4', 'b:4': 'c-5', 'x:9': 'c-6' },
      { 'c-1': f('1'), 'c-2': f('2'), 'c-3': f('5') },
      { 'c-3': { intent_score: '0.6' } },
    );
    const result = compareRedis(clean, chaos);
    expect(result).toMatchObject({
      customersCompared: 3,
      identitiesMissing: 0,
      identitiesExtra: 1,
      clustersOnlyClean: 1,
      clustersOnlyChaos: 3,
      featureDifferences: 2,
      lostCustomers: 1,
      doubleCountedCustomers: 1,
      scoreDifferences: 1,
    });
    expect(result.examples.map((e) => e.kind).sort()).toEqual(['double-counted', 'lost']);
    expect(result.clusterExamples).toEqual({ clean: ['["a:4","b:4"]'], chaos: ['["a:4"]', '["b:4"]', '["x:9"]'] });
  });
});

describe('table comparison', () => {
  it('judges exact tables by their deduplicated count and reports the others only', () => {
    expect(compareTable({ raw: 10, dedup: 10 }, { raw: 14, dedup: 10 }, true)).toMatchObject({
      lost: 0,
      doubleCounted: 0,
    });
    expect(compareTable({ raw: 10, dedup: 10 }, { raw: 9, dedup: 9 }, true)).toMatchObject({
      lost: 1,
      doubleCounted: 0,
    });
    expect(compareTable({ raw: 10, dedup: 10 }, { raw: 12, dedup: 12 }, true)).toMatchObject({
      lost: 0,
      doubleCounted: 2,
    });
    expect(compareTable({ raw: 10, dedup: 10 }, { raw: 12, dedup: 12 }, false)).toMatchObject({
      lost: 0,
      doubleCounted: 0,
    });
  });
});
